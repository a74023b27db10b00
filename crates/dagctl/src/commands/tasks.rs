//! `dagctl tasks …`: test one task, list tasks, states of a run, logs.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use chrono::Utc;
use dag::{RunState, TaskState};
use scheduler::TriggerRequest;
use serde_json::{Value, json};
use store::{RunDecision, SnapshotXcoms, StoreEvent, Transition};
use tokio::sync::watch;
use worker::Worker;

use super::dags::{find_dag, print_new_logs, require_dag, scratch_store};
use super::engine::{self, stopped};
use super::{parse_date, ts};
use crate::output::{Format, print_rows};
use crate::settings::Settings;
use crate::{TasksCommand, backend};

pub async fn run(settings: Settings, command: TasksCommand) -> Result<ExitCode> {
    match command {
        TasksCommand::Test {
            dag_id,
            task_id,
            logical_date,
            output,
        } => {
            test(
                &settings,
                &dag_id,
                &task_id,
                logical_date.as_deref(),
                output.format,
            )
            .await
        }
        TasksCommand::List { dag_id, output } => {
            let store = backend::open(&settings.database_url).await?;
            let record = require_dag(&*store, &dag_id).await?;
            let rows: Vec<Value> = record
                .dag
                .tasks
                .iter()
                .map(|t| {
                    json!({
                        "task_id": t.task_id,
                        "operator": t.kind.operator(),
                        "upstream": t.upstream,
                        "trigger_rule": t.trigger_rule.as_str(),
                        "retries": t.retries,
                    })
                })
                .collect();
            print_rows(
                output.format,
                &["task_id", "operator", "upstream", "trigger_rule", "retries"],
                &rows,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::StatesForDagRun {
            dag_id,
            run_id,
            output,
        } => {
            let store = backend::open(&settings.database_url).await?;
            let run = store
                .get_run(&dag_id, &run_id)
                .await?
                .ok_or_else(|| anyhow!("run '{run_id}' of DAG '{dag_id}' not found"))?;
            let rows: Vec<Value> = store
                .task_instances(run.id)
                .await?
                .into_iter()
                .map(|ti| {
                    json!({
                        "task_id": ti.task_id,
                        "map_index": ti.map_index,
                        "state": ti.state.as_str(),
                        "try_number": ti.try_number,
                        "start_date": ts(ti.start_date),
                        "end_date": ts(ti.end_date),
                        "hostname": ti.hostname,
                    })
                })
                .collect();
            print_rows(
                output.format,
                &[
                    "task_id",
                    "map_index",
                    "state",
                    "try_number",
                    "start_date",
                    "end_date",
                    "hostname",
                ],
                &rows,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::Xcom {
            dag_id,
            run_id,
            task_id,
            key,
            output,
        } => {
            let store = backend::open(&settings.database_url).await?;
            let run = store
                .get_run(&dag_id, &run_id)
                .await?
                .ok_or_else(|| anyhow!("run '{run_id}' of DAG '{dag_id}' not found"))?;
            let rows: Vec<Value> = store
                .list_xcoms(run.id, Some(&task_id))
                .await?
                .into_iter()
                .filter(|x| key.as_ref().is_none_or(|k| &x.key == k))
                .map(|x| {
                    json!({"task_id": x.task_id, "map_index": x.map_index, "key": x.key, "value": x.value})
                })
                .collect();
            print_rows(
                output.format,
                &["task_id", "map_index", "key", "value"],
                &rows,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::Logs {
            dag_id,
            run_id,
            task_id,
            try_number,
            map_index,
            follow,
        } => {
            logs(
                &settings, &dag_id, &run_id, &task_id, try_number, map_index, follow,
            )
            .await
        }
    }
}

async fn logs(
    settings: &Settings,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    try_number: Option<u32>,
    map_index: i32,
    follow: bool,
) -> Result<ExitCode> {
    let store = backend::open(&settings.database_url).await?;
    let run = store
        .get_run(dag_id, run_id)
        .await?
        .ok_or_else(|| anyhow!("run '{run_id}' of DAG '{dag_id}' not found"))?;
    let ti = store
        .task_instances(run.id)
        .await?
        .into_iter()
        .find(|ti| ti.task_id == task_id && ti.map_index == map_index)
        .ok_or_else(|| {
            anyhow!("task '{task_id}' (map index {map_index}) not found in run '{run_id}'")
        })?;
    let try_number = try_number.unwrap_or(ti.try_number.max(1));
    let mut events = store.subscribe();
    let mut after = 0;
    loop {
        // The state is read before the lines: once the try has ended, this read has every
        // line it wrote, so following can stop without losing the last ones.
        let current = store
            .get_task_instance(ti.id)
            .await?
            .ok_or_else(|| anyhow!("task instance disappeared"))?;
        let running = current.try_number == try_number
            && matches!(
                current.state,
                TaskState::Running | TaskState::Queued | TaskState::None | TaskState::Scheduled
            );
        loop {
            let lines = store.read_log(ti.id, try_number, after, 1000).await?;
            for line in &lines {
                println!(
                    "{} {}",
                    line.timestamp
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    line.line
                );
                after = line.seq;
            }
            if lines.len() < 1000 {
                break;
            }
        }
        if !follow || !running {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = events.recv() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// `tasks test`: run one task on a throw-away database, ignoring its upstream.
async fn test(
    settings: &Settings,
    dag_id: &str,
    task_id: &str,
    logical_date: Option<&str>,
    format: Format,
) -> Result<ExitCode> {
    let (dag, hash) = find_dag(settings, dag_id)?;
    if dag.task(task_id).is_none() {
        return Err(anyhow!("task '{task_id}' not found in DAG '{dag_id}'"));
    }
    let store = scratch_store(settings, &dag, &hash).await?;
    let request = TriggerRequest {
        logical_date: logical_date.map(parse_date).transpose()?,
        conf: None,
        run_id: None,
    };
    let run = scheduler::trigger(&*store, dag_id, request, Utc::now())
        .await
        .context("cannot start the run")?;
    let target = store
        .task_instances(run.id)
        .await?
        .into_iter()
        .find(|ti| ti.task_id == task_id)
        .ok_or_else(|| anyhow!("task instance of '{task_id}' was not created"))?;
    let target_id = target.id;
    store
        .schedule_run(
            run.id,
            Utc::now(),
            SnapshotXcoms::Omitted,
            &move |_snapshot| RunDecision {
                run_state: Some(RunState::Running),
                transitions: vec![Transition {
                    ti: target_id,
                    from: TaskState::None,
                    to: if dag.task(task_id).is_some_and(|t| t.kind.needs_worker()) {
                        TaskState::Queued
                    } else {
                        TaskState::Success
                    },
                }],
                ..RunDecision::default()
            },
        )
        .await?;
    let (stop, stop_rx) = watch::channel(false);
    let worker_store = store.clone();
    let worker_config = engine::worker_config(settings)?;
    let worker = tokio::spawn(async move {
        Worker::new(worker_config)
            .run(worker_store, stopped(stop_rx))
            .await
    });
    let mut events = store.subscribe();
    let mut seen = HashMap::new();
    let ti = loop {
        print_new_logs(&*store, run.id, &mut seen).await?;
        let ti = store
            .get_task_instance(target_id)
            .await?
            .ok_or_else(|| anyhow!("task instance disappeared"))?;
        if ti.state.is_finished() || ti.state == TaskState::UpForRetry {
            break ti;
        }
        tokio::select! {
            event = events.recv() => { if matches!(event, Ok(StoreEvent::TasksQueued)) { continue; } }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    };
    print_new_logs(&*store, run.id, &mut seen).await?;
    let _ = stop.send(true);
    let _ = worker.await;
    let xcoms = store.list_xcoms(run.id, Some(task_id)).await?;
    let xcom: serde_json::Map<String, Value> =
        xcoms.into_iter().map(|x| (x.key, x.value)).collect();
    match format {
        Format::Table => println!("{task_id} {}", ti.state),
        _ => println!(
            "{}",
            json!({"task_id": task_id, "state": ti.state.as_str(), "xcom": xcom})
        ),
    }
    Ok(
        if matches!(ti.state, TaskState::Success | TaskState::Skipped) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}
