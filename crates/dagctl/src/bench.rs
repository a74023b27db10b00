//! `dagctl bench`: per-hop latency (upstream end → downstream start) along a chain of no-op
//! tasks, and throughput of a wide fan-out, through the real scheduler, worker and store;
//! `dagctl bench sensors`: many file sensors waiting at once (memory, CPU per poke round,
//! time to release them all); `dagctl bench python`: Airflow Python DAG files (see
//! [`python`]); `dagctl bench clean`: retention on a big history (see [`clean`]).

mod clean;
mod python;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use scheduler::TriggerRequest;
use store::Store;

use crate::backend;
use crate::cli::BenchArgs;
use crate::commands::engine::{self, Engine};
use crate::settings::Settings;

pub async fn run(settings: Settings, args: BenchArgs) -> Result<ExitCode> {
    let mut scratch: Option<(String, String)> = None;
    let store: Arc<dyn Store> = match args.backend.as_str() {
        "sqlite" => backend::temporary().await?,
        "postgres" => {
            let admin = args
                .database_url
                .clone()
                .or_else(|| std::env::var("UPDRAFT_BENCH_POSTGRES_URL").ok())
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let url = store_postgres::create_scratch_database(&admin)
                .await
                .with_context(|| {
                    format!(
                        "cannot create a benchmark database via {}",
                        crate::settings::mask_url(&admin)
                    )
                })?;
            let store = backend::open(&url).await?;
            scratch = Some((admin, url));
            store
        }
        other => bail!("unknown backend '{other}': use sqlite or postgres"),
    };
    println!("backend: {}", store.backend());
    let other = match &args.what {
        Some(crate::cli::BenchWhat::Sensors(sensor_args)) => {
            Some(sensors(&settings, store.clone(), sensor_args).await)
        }
        Some(crate::cli::BenchWhat::Python(python_args)) => {
            Some(python::run(&settings, store.clone(), python_args).await)
        }
        Some(crate::cli::BenchWhat::Clean(clean_args)) => {
            Some(clean::run(store.clone(), clean_args).await)
        }
        None => None,
    };
    if let Some(outcome) = other {
        drop(store);
        if let Some((admin, url)) = scratch
            && let Err(e) = store_postgres::drop_scratch_database(&admin, &url).await
        {
            eprintln!("warning: could not drop the benchmark database: {e}");
        }
        return outcome;
    }

    let mut config = engine::worker_config(&settings)?.with_concurrency(args.concurrency);
    config = config.with_heartbeat_interval(std::time::Duration::from_secs(5));
    let engine = bench_engine(&settings, store.clone(), config)?;

    let chain = chain_dag("bench_chain", args.chain);
    let report = run_dag(&*store, &chain).await?;
    let tis = store.task_instances(report.run).await?;
    let hops = chain_hops(&tis, args.chain);
    println!(
        "chain of {}: {} in {:.2}s; per-hop latency (upstream end -> downstream start) {}",
        args.chain,
        report.state,
        report.seconds,
        spread(&hops),
    );

    let fan = fan_out_dag(args.fan_out);
    let (statements, cpu) = (store_sql::statements_sent(), cpu_seconds());
    let report = run_dag(&*store, &fan).await?;
    let (statements, cpu) = (
        store_sql::statements_sent() - statements,
        cpu_seconds() - cpu,
    );
    let tis = store.task_instances(report.run).await?;
    let leaves: Vec<_> = tis
        .iter()
        .filter(|t| t.task_id.starts_with("leaf"))
        .collect();
    let first_start = leaves.iter().filter_map(|t| t.start_date).min();
    let last_end = leaves.iter().filter_map(|t| t.end_date).max();
    let span = match (first_start, last_end) {
        (Some(a), Some(b)) => (b - a).as_seconds_f64(),
        _ => f64::NAN,
    };
    println!(
        "fan-out of {}: {} in {:.2}s; {:.0} tasks/s (first leaf start -> last leaf end {:.2}s) with worker concurrency {}",
        args.fan_out,
        report.state,
        report.seconds,
        leaves.len() as f64 / span,
        span,
        args.concurrency,
    );
    // Where a task's time goes, in this process (scheduler, worker and store together; the
    // task processes themselves are not counted).
    let tasks = tis.len().max(1) as f64;
    println!(
        "fan-out per task: {:.1} store statements, {:.2} ms CPU in this process",
        statements as f64 / tasks,
        cpu * 1000.0 / tasks,
    );
    engine.stop().await?;
    drop(store);
    if let Some((admin, url)) = scratch {
        // The database is the benchmark's own; a failed drop leaves only an empty scratch copy.
        if let Err(e) = store_postgres::drop_scratch_database(&admin, &url).await {
            eprintln!("warning: could not drop the benchmark database: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A scheduler (no folder watch, no cron: the bench triggers every run) and a worker with
/// `worker` settings, on `store`.
fn bench_engine(
    settings: &Settings,
    store: Arc<dyn Store>,
    worker: worker::WorkerConfig,
) -> Result<Engine> {
    Ok(Engine::start(
        store,
        engine::scheduler_config(settings, None)?
            .without_watch()
            .without_cron(),
        Some(worker),
    ))
}

struct RunReport {
    run: i64,
    state: dag::RunState,
    seconds: f64,
}

async fn run_dag(store: &dyn Store, yaml: &str) -> Result<RunReport> {
    let dag = dag::parse_dag_str("bench.yaml", yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
    let version = format!("bench-{}", Utc::now().timestamp_micros());
    store.sync_dag(&dag, &version, Utc::now()).await?;
    run_synced(store, &dag.dag_id).await
}

/// Unpause an already synced DAG, trigger it, and wait for the run to finish.
async fn run_synced(store: &dyn Store, dag_id: &str) -> Result<RunReport> {
    store.unpause_dag(dag_id).await?;
    let started = Instant::now();
    // Its own run id: the same DAG may be run several times within one second.
    let request = TriggerRequest {
        run_id: Some(format!("bench__{}", Utc::now().timestamp_micros())),
        ..TriggerRequest::default()
    };
    let run = scheduler::trigger(store, dag_id, request, Utc::now()).await?;
    let done = engine::wait_for_run(store, run.id).await?;
    Ok(RunReport {
        run: run.id,
        state: done.state,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Per-hop latencies in ms (upstream end -> downstream start) along a chain `t0000`, `t0001`, …
fn chain_hops(tis: &[store::TaskInstanceRecord], n: usize) -> Vec<f64> {
    let mut hops = Vec::with_capacity(n);
    for i in 1..n {
        let up = tis.iter().find(|t| t.task_id == format!("t{:04}", i - 1));
        let down = tis.iter().find(|t| t.task_id == format!("t{i:04}"));
        if let (Some(end), Some(start)) =
            (up.and_then(|t| t.end_date), down.and_then(|t| t.start_date))
        {
            hops.push((start - end).as_seconds_f64() * 1000.0);
        }
    }
    hops.sort_by(f64::total_cmp);
    hops
}

/// `p50 …, p95 …, p99 …, max …` of sorted milliseconds.
fn spread(sorted: &[f64]) -> String {
    format!(
        "p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(sorted, 0.50),
        percentile(sorted, 0.95),
        percentile(sorted, 0.99),
        sorted.last().copied().unwrap_or(f64::NAN),
    )
}

fn chain_dag(dag_id: &str, n: usize) -> String {
    let mut yaml = format!("dag_id: {dag_id}\nmax_active_tasks: 64\ntasks:\n");
    for i in 0..n {
        yaml.push_str(&format!("  - {{id: t{i:04}, bash: 'true'"));
        if i > 0 {
            yaml.push_str(&format!(", depends_on: [t{:04}]", i - 1));
        }
        yaml.push_str("}\n");
    }
    yaml
}

fn fan_out_dag(n: usize) -> String {
    let mut yaml = format!(
        "dag_id: bench_fan_out\nmax_active_tasks: {n}\ntasks:\n  - {{id: root, bash: 'true'}}\n"
    );
    for i in 0..n {
        yaml.push_str(&format!(
            "  - {{id: leaf{i:04}, bash: 'true', depends_on: [root]}}\n"
        ));
    }
    yaml
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// `dagctl bench sensors`: one run of `count` file sensors waiting for files that do not
/// exist, measured over several poke rounds, then released by creating every file.
async fn sensors(
    settings: &Settings,
    store: Arc<dyn Store>,
    args: &crate::cli::SensorBenchArgs,
) -> Result<ExitCode> {
    let dir = tempfile::Builder::new()
        .prefix("updraft-bench-sensors-")
        .tempdir()
        .context("cannot create the folder for the sensors' files")?;
    let mut yaml = String::from("dag_id: bench_sensors\ntasks:\n");
    for i in 0..args.count {
        yaml.push_str(&format!(
            "  - {{id: s{i:05}, sensor: {{file: '{}'}}, poke_interval: {}}}\n",
            dir.path().join(format!("f{i:05}")).display(),
            args.poke_interval
        ));
    }
    let dag =
        dag::parse_dag_str("bench_sensors.yaml", &yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
    let version = format!("bench-{}", Utc::now().timestamp_micros());
    store.sync_dag(&dag, &version, Utc::now()).await?;
    store.unpause_dag(&dag.dag_id).await?;
    let engine = bench_engine(settings, store.clone(), engine::worker_config(settings)?)?;
    let started = Instant::now();
    let run =
        scheduler::trigger(&*store, &dag.dag_id, TriggerRequest::default(), Utc::now()).await?;
    // Every sensor waiting and poked once.
    let (mut pokes, mut waiting) = (0u64, 0usize);
    while waiting < args.count || pokes < args.count as u64 {
        if started.elapsed().as_secs_f64() > 120.0 + 10.0 * args.poke_interval {
            bail!("only {waiting} of {} sensors started waiting", args.count);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        (waiting, pokes) = waiting_and_pokes(&*store).await?;
    }
    println!(
        "{} file sensors waiting (up_for_reschedule) and poked once {:.2}s after the trigger; poke_interval {}s",
        args.count,
        started.elapsed().as_secs_f64(),
        args.poke_interval
    );
    // Rounds: sample pokes and CPU once per poke interval (sampling costs one read of every
    // waiting sensor, included in the CPU figures).
    let mut last = (Instant::now(), cpu_seconds(), pokes);
    for round in 1..=args.rounds {
        tokio::time::sleep(std::time::Duration::from_secs_f64(args.poke_interval)).await;
        let (_, total) = waiting_and_pokes(&*store).await?;
        let now = (Instant::now(), cpu_seconds(), total);
        let wall = now.0.duration_since(last.0).as_secs_f64();
        let cpu = now.1 - last.1;
        let done = now.2.saturating_sub(last.2);
        println!(
            "round {round}: {done} pokes in {wall:.2}s = {:.0} pokes/s; CPU {cpu:.3}s ({:.1}% of a core, {:.1} us per poke)",
            done as f64 / wall,
            100.0 * cpu / wall,
            if done > 0 {
                1e6 * cpu / done as f64
            } else {
                f64::NAN
            },
        );
        last = now;
    }
    println!("peak RSS (VmHWM) while waiting: {}", peak_rss());
    // Release: create every file, then wait for the run to succeed.
    let released = Instant::now();
    for i in 0..args.count {
        std::fs::write(dir.path().join(format!("f{i:05}")), b"")
            .context("cannot create a sensor's file")?;
    }
    let created = released.elapsed().as_secs_f64();
    let done = engine::wait_for_run(&*store, run.id).await?;
    let tis = store.task_instances(run.id).await?;
    let succeeded = tis
        .iter()
        .filter(|t| t.state == dag::TaskState::Success)
        .count();
    println!(
        "released: files created in {created:.2}s; run {} with {succeeded} of {} sensors succeeded {:.2}s after the first file (poke_interval {}s bounds it)",
        done.state,
        args.count,
        released.elapsed().as_secs_f64(),
        args.poke_interval
    );
    println!("peak RSS (VmHWM) overall: {}", peak_rss());
    engine.stop().await?;
    Ok(
        if done.state == dag::RunState::Success && succeeded == args.count {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// Sensors waiting now, and pokes made so far by all of them.
async fn waiting_and_pokes(store: &dyn Store) -> Result<(usize, u64)> {
    let waiting = store.waiting_sensors(None).await?;
    let pokes = waiting
        .iter()
        .map(|w| u64::from(w.progress.poke_count))
        .sum();
    Ok((waiting.len(), pokes))
}

/// User + system CPU seconds of this process, from `/proc/self/stat` (clock ticks of 1/100 s,
/// Linux's USER_HZ).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state.
    (ticks(11) + ticks(12)) / 100.0
}

/// The process's peak resident set, from `/proc/self/status`.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}
