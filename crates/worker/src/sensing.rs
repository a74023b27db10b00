//! Sensors on a worker: a `command` sensor's poke (one `bash -c` per poke), and every sensor
//! in `poke` mode, which holds its slot and sleeps between pokes until done or timed out.
//!
//! Reschedule-mode sensors of the other kinds are poked by the scheduler's sensor loop and
//! reach a worker only through `dagctl tasks test`, which runs them here in poke mode.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use dag::sensor::{Probe, Sensor, SensorMode, next_poke_delay};
use dag::{Dag, Task, TaskKind};
use sensor::{PokeResult, Probes};
use serde_json::Value;
use store::{ClaimedTask, Store};
use tokio::sync::watch;

use crate::config::WorkerConfig;
use crate::execute::{Outcome, run_process};
use crate::task_log::TaskLog;

/// Run one try of a sensor task on this worker.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_sensor(
    store: &Arc<dyn Store>,
    claimed: &ClaimedTask,
    config: &WorkerConfig,
    dag: &Dag,
    task: &Task,
    sensor: &Sensor,
    log: &TaskLog,
    mut cancel: watch::Receiver<bool>,
) -> (Outcome, Vec<(String, Value)>) {
    let ti = &claimed.ti;
    // Reschedule mode: one poke, measured against the first poke of the try (stored).
    let reschedule = sensor.mode == SensorMode::Reschedule && sensor.probe.needs_worker();
    let (mut pokes, first) = if reschedule {
        let progress = store.sensor_progress(ti.id).await.ok().flatten();
        let first = progress
            .and_then(|p| p.first_poke_at)
            .or(ti.start_date)
            .unwrap_or_else(Utc::now);
        (progress.map_or(0, |p| p.poke_count), first)
    } else {
        (0, Utc::now())
    };
    let mut probe = None;
    loop {
        pokes += 1;
        let (result, what) = match &sensor.probe {
            Probe::Command { command } => {
                let shell = Task {
                    kind: TaskKind::Bash {
                        command: command.clone(),
                    },
                    do_xcom_push: false,
                    branch: false,
                    ..task.clone()
                };
                let (outcome, _) =
                    run_process(store, claimed, config, dag, &shell, log, cancel.clone()).await;
                let result = match outcome {
                    Outcome::Success => PokeResult::Done("exit code 0".into()),
                    _ => PokeResult::NotYet("not yet".into()),
                };
                (result, "command".to_string())
            }
            other => {
                if probe.is_none() {
                    match render(store, claimed, config, dag, task, other, log).await {
                        Ok(rendered) => probe = Some(rendered),
                        Err(message) => {
                            log.system(format!("sensor failed: {message}")).await;
                            return (Outcome::FailedForGood, Vec::new());
                        }
                    }
                }
                let Some(rendered) = probe.as_ref() else {
                    return (Outcome::FailedForGood, Vec::new());
                };
                let probes = Probes::new(store.clone());
                (probes.poke(rendered, Utc::now()).await, rendered.describe())
            }
        };
        let now = Utc::now();
        let elapsed = (now - first).as_seconds_f64().max(0.0);
        match result {
            PokeResult::Done(message) => {
                log.system(format!("poking {what}: done, {message} (poke {pokes})"))
                    .await;
                return (Outcome::Success, Vec::new());
            }
            PokeResult::Fail(message) => {
                log.system(format!(
                    "poking {what}: sensor failed: {message} (poke {pokes})"
                ))
                .await;
                return (Outcome::FailedForGood, Vec::new());
            }
            PokeResult::NotYet(message) if sensor.timed_out(elapsed) => {
                let outcome = if sensor.soft_fail {
                    Outcome::Skipped
                } else {
                    Outcome::FailedForGood
                };
                log.system(format!(
                    "poking {what}: {message} (poke {pokes}); timed out after {elapsed:.0}s (timeout {:.0}s): {}",
                    sensor.timeout,
                    if sensor.soft_fail { "skipped" } else { "failed" }
                ))
                .await;
                return (outcome, Vec::new());
            }
            PokeResult::NotYet(message) => {
                let delay = next_poke_delay(sensor, pokes, elapsed, sensor::jitter(ti.id, pokes));
                let next = now + chrono::Duration::milliseconds((delay * 1000.0) as i64);
                log.system(format!(
                    "poking {what}: {message} (poke {pokes}); next poke at {}",
                    next.to_rfc3339_opts(SecondsFormat::Secs, true)
                ))
                .await;
                if reschedule {
                    return (Outcome::Reschedule(next), Vec::new());
                }
                // Poke mode: hold the slot and sleep; a worker shutdown ends the try.
                let pause = Duration::from_secs_f64(delay);
                let (cancelled, nobody_cancels) = tokio::select! {
                    _ = tokio::time::sleep(pause) => (false, false),
                    stopped = cancel.wait_for(|c| *c) => (stopped.is_ok(), stopped.is_err()),
                };
                if nobody_cancels {
                    tokio::time::sleep(pause).await;
                }
                if cancelled {
                    log.system("task failed: the worker shut down while it waited")
                        .await;
                    return (Outcome::Failed, Vec::new());
                }
            }
        }
    }
}

/// Render a built-in probe with the try's context.
async fn render(
    store: &Arc<dyn Store>,
    claimed: &ClaimedTask,
    config: &WorkerConfig,
    dag: &Dag,
    task: &Task,
    probe: &Probe,
    log: &TaskLog,
) -> Result<sensor::Rendered, String> {
    let ti = &claimed.ti;
    let mut ctx = claimed
        .run
        .template_context(dag, &ti.task_id, ti.map_index, ti.try_number, &[]);
    let text = serde_json::to_string(probe).unwrap_or_default();
    if text.contains("var.") || text.contains("conn.") || text.contains("\"conn_id\":\"") {
        let secrets = store::secrets::load_template_secrets(
            store.as_ref(),
            &config.vault,
            &config.env_connections,
        )
        .await?;
        log.mask(secrets.masks);
        ctx.variables = secrets.variables;
        ctx.connections = secrets.connections;
    }
    let folder = crate::execute::dag_folder(dag);
    let _ = task;
    let connections = sensor::Connections::new(
        store.clone(),
        config.vault.clone(),
        config.env_connections.clone(),
    );
    sensor::render(probe, &ctx, folder.as_deref(), &connections).await
}

/// The instant a waiting poke ends at, for the try's summary line.
pub(crate) fn describe_next(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}
