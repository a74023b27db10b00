//! `dagctl bench folder`: the DAG file processor on a big folder and on one file rewritten
//! over and over, through the real [`DagFolder`] and store. It times one cold pass over
//! `files` generated files of `tasks` tasks each (parse and sync every one), the pass after
//! it that finds nothing changed, and the listing of every DAG that a scheduler makes next,
//! with the process's peak RSS; then it rewrites one DAG file `rewrites` times, each rewrite
//! followed by a pass and the reads a scheduler makes of the new version (the DAG record and
//! its graph), and compares the RSS after a tenth of the rewrites with the RSS after all of
//! them: bounded version caches keep the two level. Also what the sensors benchmark reads of
//! the process's memory ([`Memory`]).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use scheduler::{DagFolder, GraphCache};
use store::Store;

use crate::cli::FolderBenchArgs;

/// The targets of issue 13, printed beside the figures.
const FOLDER_SECONDS_TARGET: f64 = 1.0;
const FOLDER_RSS_TARGET_MB: f64 = 100.0;

/// The process's resident memory, from `/proc/self/status`, in MB (10^6 bytes).
#[derive(Debug, Clone, Copy)]
pub(super) struct Memory {
    /// Resident now (`VmRSS`).
    pub now: f64,
    /// The highest it has been (`VmHWM`).
    pub peak: f64,
}

impl Memory {
    pub(super) fn read() -> Memory {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse::<f64>().ok())
                .map_or(f64::NAN, |kib| kib * 1024.0 / 1e6)
        };
        Memory {
            now: field("VmRSS:"),
            peak: field("VmHWM:"),
        }
    }
}

pub(super) async fn folder(store: Arc<dyn Store>, args: &FolderBenchArgs) -> Result<ExitCode> {
    let mut ok = cold_folder(&*store, args).await?;
    if args.rewrites > 0 {
        ok &= rewrites(&*store, args.rewrites).await?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One DAG file of `tasks` bash tasks in a chain; `mark` makes each rewrite a new version.
fn dag_file(dag_id: &str, tasks: usize, mark: usize) -> String {
    let mut yaml = format!("dag_id: {dag_id}\ntags: [bench]\ntasks:\n");
    for t in 0..tasks {
        yaml.push_str(&format!("  - {{id: t{t:02}, bash: 'echo {mark} {t}'"));
        if t > 0 {
            yaml.push_str(&format!(", depends_on: [t{:02}]", t - 1));
        }
        yaml.push_str("}\n");
    }
    yaml
}

/// The cold pass over `files` new files, and the unchanged pass after it; whether every file
/// was synced.
async fn cold_folder(store: &dyn Store, args: &FolderBenchArgs) -> Result<bool> {
    let dir = tempfile::Builder::new()
        .prefix("updraft-bench-folder-")
        .tempdir()
        .context("cannot create the DAG folder")?;
    for i in 0..args.files {
        std::fs::write(
            dir.path().join(format!("dag_{i:05}.yaml")),
            dag_file(&format!("bench_folder_{i:05}"), args.tasks, 0),
        )
        .context("cannot write a DAG file")?;
    }
    let before = Memory::read();
    let mut folder = DagFolder::new(dir.path());
    let started = Instant::now();
    let report = folder.process(store, Utc::now()).await?;
    let cold = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let again = folder.process(store, Utc::now()).await?;
    let unchanged = started.elapsed().as_secs_f64();
    // What the scheduler reads next: every DAG with its definition (its cron pass), which
    // fills the store's DAG-definition cache.
    let started = Instant::now();
    let listed = store.list_dags().await?.len();
    let list = started.elapsed().as_secs_f64();
    let after = Memory::read();
    if !report.errors.is_empty() {
        bail!("the generated files did not parse: {}", report.errors[0]);
    }
    println!(
        "folder: {} files of {} tasks parsed and synced in {cold:.2}s from cold (target <= {FOLDER_SECONDS_TARGET}): {:.0} files/s",
        report.synced.len(),
        args.tasks,
        report.synced.len() as f64 / cold,
    );
    println!(
        "folder: the next pass, nothing changed, in {unchanged:.3}s ({} synced); the {listed} DAGs listed with their definitions in {list:.3}s",
        again.synced.len()
    );
    println!(
        "folder: peak RSS {:.0} MB (target <= {FOLDER_RSS_TARGET_MB}), {:.0} MB before the pass, {:.0} MB after the passes and the listing",
        after.peak, before.now, after.now,
    );
    Ok(report.synced.len() == args.files && again.synced.is_empty())
}

/// One DAG file rewritten `count` times, each rewrite processed and its version read as the
/// scheduler reads it; whether the process kept level.
async fn rewrites(store: &dyn Store, count: usize) -> Result<bool> {
    let dir = tempfile::Builder::new()
        .prefix("updraft-bench-rewrites-")
        .tempdir()
        .context("cannot create the DAG folder")?;
    let path = dir.path().join("rewritten.yaml");
    let mut folder = DagFolder::new(dir.path());
    let graphs = GraphCache::default();
    let tenth = (count / 10).max(1);
    let mut at_tenth = Memory::read();
    let started = Instant::now();
    for n in 1..=count {
        std::fs::write(&path, dag_file("bench_rewritten", 10, n))
            .context("cannot rewrite the DAG file")?;
        let report = folder.process(store, Utc::now()).await?;
        if report.synced.len() != 1 {
            bail!("rewrite {n} was not synced: {report:?}");
        }
        // What the scheduler reads of a changed DAG: its record (cron) and the graph of its
        // version (deciding a run of it).
        let record = store
            .get_dag("bench_rewritten")
            .await?
            .context("the rewritten DAG is not stored")?;
        graphs
            .get(store, &record.dag_id, &record.version)
            .await?
            .context("the rewritten DAG's version is not stored")?;
        if n == tenth {
            at_tenth = Memory::read();
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let end = Memory::read();
    let growth = end.now - at_tenth.now;
    println!(
        "rewrites: {count} rewrites of one DAG file in {seconds:.2}s ({:.2} ms each); RSS {:.0} MB after {tenth}, {:.0} MB after {count} (growth {growth:.1} MB, target: none), peak {:.0} MB",
        1000.0 * seconds / count as f64,
        at_tenth.now,
        end.now,
        end.peak,
    );
    println!(
        "rewrites: the scheduler's graph cache holds {} versions (at most {} per DAG)",
        graphs.len(),
        scheduler::runs::GRAPHS_PER_DAG,
    );
    Ok(graphs.len() <= scheduler::runs::GRAPHS_PER_DAG)
}
