//! `dagctl dags …`: list, validate, test, trigger, pause, runs.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use chrono::Utc;
use dag::{Dag, RunState};
use scheduler::dag_folder::load_dag_file;
use scheduler::{DagFolder, TriggerRequest};
use serde_json::{Value, json};
use store::{RunFilter, RunRecord, Store, StoreEvent};

use super::engine::{self, Engine};
use super::{parse_conf, parse_date, ts};
use crate::output::{Format, print_object, print_rows};
use crate::settings::Settings;
use crate::{DagsCommand, backend};

pub async fn run(settings: Settings, command: DagsCommand) -> Result<ExitCode> {
    match command {
        DagsCommand::Validate { paths } => validate(&settings, paths),
        DagsCommand::Test {
            dag_id,
            logical_date,
            conf,
            output,
        } => {
            test(
                &settings,
                &dag_id,
                logical_date.as_deref(),
                conf.as_deref(),
                output.format,
            )
            .await
        }
        DagsCommand::List(output) => {
            let store = backend::open(&settings.database_url).await?;
            let rows: Vec<Value> = store
                .list_dags()
                .await?
                .into_iter()
                .map(|d| {
                    json!({
                        "dag_id": d.dag_id,
                        "fileloc": d.fileloc,
                        "is_paused": d.is_paused,
                        "is_active": d.is_active,
                        "schedule": schedule_text(&d.dag),
                        "owner": d.dag.owner,
                        "tags": d.dag.tags,
                    })
                })
                .collect();
            print_rows(
                output.format,
                &[
                    "dag_id",
                    "fileloc",
                    "schedule",
                    "is_paused",
                    "is_active",
                    "owner",
                    "tags",
                ],
                &rows,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        DagsCommand::ListImportErrors(output) => {
            let store = backend::open(&settings.database_url).await?;
            let rows: Vec<Value> = store
                .list_import_errors()
                .await?
                .into_iter()
                .map(|e| json!({"filename": e.filename, "timestamp": ts(Some(e.timestamp)), "message": e.message}))
                .collect();
            print_rows(output.format, &["filename", "timestamp", "message"], &rows)?;
            Ok(ExitCode::SUCCESS)
        }
        DagsCommand::Trigger {
            dag_id,
            conf,
            logical_date,
            run_id,
            output,
        } => {
            let store = backend::open(&settings.database_url).await?;
            let request = TriggerRequest {
                logical_date: logical_date.as_deref().map(parse_date).transpose()?,
                conf: parse_conf(conf.as_deref())?,
                run_id,
            };
            let run = scheduler::trigger(&*store, &dag_id, request, Utc::now()).await?;
            match output.format {
                Format::Table => println!("{}", run.run_id),
                format => print_object(format, &run_json(&run))?,
            }
            Ok(ExitCode::SUCCESS)
        }
        DagsCommand::Backfill {
            dag_id,
            start_date,
            end_date,
            output,
        } => {
            let store = backend::open(&settings.database_url).await?;
            let runs = scheduler::backfill(
                &*store,
                &dag_id,
                parse_date(&start_date)?,
                parse_date(&end_date)?,
                Utc::now(),
            )
            .await?;
            match output.format {
                Format::Table => {
                    for run in &runs {
                        println!("{}", run.run_id);
                    }
                    eprintln!("{} backfill run(s) created for DAG '{dag_id}'", runs.len());
                }
                format => {
                    let rows: Vec<Value> = runs.iter().map(run_json).collect();
                    print_rows(format, &[], &rows)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DagsCommand::Pause { dag_id } => {
            let store = backend::open(&settings.database_url).await?;
            require_dag(&*store, &dag_id).await?;
            store.pause_dag(&dag_id).await?;
            println!("DAG '{dag_id}' paused");
            Ok(ExitCode::SUCCESS)
        }
        DagsCommand::Unpause { dag_id } => {
            let store = backend::open(&settings.database_url).await?;
            require_dag(&*store, &dag_id).await?;
            store.unpause_dag(&dag_id).await?;
            println!("DAG '{dag_id}' unpaused");
            Ok(ExitCode::SUCCESS)
        }
        DagsCommand::ListRuns {
            dag_id,
            state,
            output,
        } => {
            let store = backend::open(&settings.database_url).await?;
            require_dag(&*store, &dag_id).await?;
            let state = state
                .map(|s| s.parse::<RunState>().map_err(|e| anyhow!("--state: {e}")))
                .transpose()?;
            let runs = store
                .list_runs(&RunFilter {
                    dag_id: Some(dag_id),
                    state,
                    limit: None,
                    offset: 0,
                })
                .await?;
            let rows: Vec<Value> = runs.iter().map(run_json).collect();
            print_rows(
                output.format,
                &[
                    "dag_id",
                    "run_id",
                    "state",
                    "run_type",
                    "logical_date",
                    "start_date",
                    "end_date",
                ],
                &rows,
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn require_dag(store: &dyn Store, dag_id: &str) -> Result<store::DagRecord> {
    store
        .get_dag(dag_id)
        .await?
        .ok_or_else(|| anyhow!("DAG '{dag_id}' not found"))
}

pub fn run_json(run: &RunRecord) -> Value {
    json!({
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "state": run.state.as_str(),
        "run_type": run.run_type.as_str(),
        "logical_date": ts(run.logical_date),
        "data_interval_start": ts(run.data_interval_start),
        "data_interval_end": ts(run.data_interval_end),
        "start_date": ts(run.start_date),
        "end_date": ts(run.end_date),
        "conf": run.conf,
    })
}

fn schedule_text(dag: &Dag) -> Value {
    match &dag.schedule {
        dag::Schedule::None => Value::Null,
        dag::Schedule::Once => json!("@once"),
        dag::Schedule::Cron(expr) => json!(expr),
    }
}

/// Parse every file under the given paths (default: the DAGs folder).
fn validate(settings: &Settings, paths: Vec<PathBuf>) -> Result<ExitCode> {
    let paths = if paths.is_empty() {
        vec![settings.dags_folder.clone()]
    } else {
        paths
    };
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files.extend(DagFolder::new(&path).list_files());
        } else {
            files.push(path);
        }
    }
    let mut failed = 0usize;
    let mut owners: HashMap<String, PathBuf> = HashMap::new();
    for file in &files {
        match load_dag_file(file) {
            Ok((dag, _)) => {
                if let Some(other) = owners.get(&dag.dag_id) {
                    println!(
                        "{}:1:1: dag_id '{}' is already defined in {}",
                        file.display(),
                        dag.dag_id,
                        other.display()
                    );
                    failed += 1;
                } else {
                    owners.insert(dag.dag_id.clone(), file.clone());
                }
            }
            Err(message) => {
                println!("{message}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} file(s) invalid", files.len());
        Ok(ExitCode::FAILURE)
    } else {
        eprintln!("{} file(s) valid", files.len());
        Ok(ExitCode::SUCCESS)
    }
}

/// Find the file in the DAGs folder that defines `dag_id`.
pub fn find_dag(settings: &Settings, dag_id: &str) -> Result<(Dag, String)> {
    let files = DagFolder::new(&settings.dags_folder).list_files();
    let mut broken = Vec::new();
    for file in files {
        match load_dag_file(&file) {
            Ok((dag, hash)) if dag.dag_id == dag_id => return Ok((dag, hash)),
            Ok(_) => {}
            Err(message) => {
                if file.file_stem().is_some_and(|s| s == dag_id) {
                    broken.push(message);
                }
            }
        }
    }
    if !broken.is_empty() {
        bail!("DAG '{dag_id}' has import errors:\n{}", broken.join("\n"));
    }
    bail!(
        "DAG '{dag_id}' not found in {}",
        settings.dags_folder.display()
    )
}

/// A throw-away database holding just this DAG, unpaused, with the configured database's
/// variables, connections (still sealed) and pools, as a run there would see them. The DAGs
/// its `trigger_dag` tasks name (when the name is no template) come along, so they can run.
pub async fn scratch_store(settings: &Settings, dag: &Dag, hash: &str) -> Result<Arc<dyn Store>> {
    let store = backend::temporary().await?;
    store.sync_dag(dag, hash, Utc::now()).await?;
    store.unpause_dag(&dag.dag_id).await?;
    let mut synced = vec![dag.dag_id.clone()];
    let mut pending = triggered_dag_ids(dag);
    while let Some(dag_id) = pending.pop() {
        if synced.contains(&dag_id) {
            continue;
        }
        synced.push(dag_id.clone());
        // A target that is missing or broken fails its trigger_dag task, with the reason.
        if let Ok((target, target_hash)) = find_dag(settings, &dag_id) {
            store.sync_dag(&target, &target_hash, Utc::now()).await?;
            store.unpause_dag(&target.dag_id).await?;
            pending.extend(triggered_dag_ids(&target));
        }
    }
    if let Some(source) = backend::open_existing(&settings.database_url).await? {
        for variable in source.list_variables().await? {
            store.set_variable(&variable).await?;
        }
        for connection in source.list_connections().await? {
            store.set_connection(&connection).await?;
        }
        for pool in source.list_pools().await? {
            store.set_pool(&pool.pool).await?;
        }
    }
    Ok(store)
}

/// The literal `dag_id`s of a DAG's `trigger_dag` tasks.
fn triggered_dag_ids(dag: &Dag) -> Vec<String> {
    dag.tasks
        .iter()
        .filter_map(|task| match &task.kind {
            dag::TaskKind::TriggerDag { spec } => spec.get("dag_id")?.as_str(),
            _ => None,
        })
        .filter(|id| !id.contains("{{"))
        .map(str::to_string)
        .collect()
}

/// `dags test`: one whole run in-process on a throw-away database.
async fn test(
    settings: &Settings,
    dag_id: &str,
    logical_date: Option<&str>,
    conf: Option<&str>,
    format: Format,
) -> Result<ExitCode> {
    let (dag, hash) = find_dag(settings, dag_id)?;
    let store = scratch_store(settings, &dag, &hash).await?;
    let request = TriggerRequest {
        logical_date: logical_date.map(parse_date).transpose()?,
        conf: parse_conf(conf)?,
        run_id: None,
    };
    let run = scheduler::trigger(&*store, dag_id, request, Utc::now())
        .await
        .context("cannot start the run")?;
    let engine = Engine::start(
        store.clone(),
        engine::scheduler_config(settings, None)?
            .without_watch()
            .without_cron()
            .with_poll_interval(Duration::from_millis(500)),
        Some(engine::worker_config(settings)?),
    );
    let (stop_follower, follower_stopped) = tokio::sync::watch::channel(false);
    let follower = tokio::spawn(stream_logs(store.clone(), run.id, follower_stopped));
    let finished = engine::wait_for_run(&*store, run.id).await;
    let _ = stop_follower.send(true);
    let _ = follower.await;
    engine.stop().await?;
    let finished = finished?;
    let tis = store.task_instances(run.id).await?;
    let mut tasks = BTreeMap::new();
    for ti in &tis {
        let key = if ti.map_index >= 0 {
            format!("{}[{}]", ti.task_id, ti.map_index)
        } else {
            ti.task_id.clone()
        };
        tasks.insert(key, ti.state.as_str());
    }
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string(&json!({"state": finished.state.as_str(), "tasks": tasks}))?
        ),
        Format::Yaml => print!(
            "{}",
            serde_saphyr::to_string(&json!({"state": finished.state.as_str(), "tasks": tasks}))?
        ),
        Format::Table => {
            let rows: Vec<Value> = tasks
                .iter()
                .map(|(task, state)| json!({"task_id": task, "state": state}))
                .collect();
            print_rows(Format::Table, &["task_id", "state"], &rows)?;
            println!("run {} {}", finished.run_id, finished.state);
        }
    }
    Ok(if finished.state == RunState::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Print task log lines to stderr as they arrive, until `stop` says so (then once more).
async fn stream_logs(
    store: Arc<dyn Store>,
    run: i64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut events = store.subscribe();
    let mut seen = HashMap::new();
    loop {
        if print_new_logs(&*store, run, &mut seen).await.is_err() || *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = stop.changed() => {}
            event = events.recv() => {
                if matches!(event, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
                if matches!(event, Ok(StoreEvent::TasksQueued)) {
                    continue;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// Print the lines of every task instance of the run not printed yet.
pub async fn print_new_logs(
    store: &dyn Store,
    run: i64,
    seen: &mut HashMap<(i64, u32), i64>,
) -> Result<()> {
    for ti in store.task_instances(run).await? {
        for try_number in 1..=ti.try_number.max(1) {
            let after = seen.entry((ti.id, try_number)).or_insert(0);
            let lines = store.read_log(ti.id, try_number, *after, 10_000).await?;
            for line in &lines {
                let index = if ti.map_index >= 0 {
                    format!("[{}]", ti.map_index)
                } else {
                    String::new()
                };
                eprintln!(
                    "[{}{} try {}] {} {}",
                    ti.task_id,
                    index,
                    try_number,
                    line.timestamp.format("%H:%M:%S%.3f"),
                    line.line
                );
                *after = line.seq;
            }
        }
    }
    Ok(())
}
