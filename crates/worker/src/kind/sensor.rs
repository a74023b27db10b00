//! The sensor kind on a worker: a `command` sensor's poke (one `bash -c` per poke), and every
//! sensor in `poke` mode, which holds its slot and sleeps between pokes until done or timed
//! out.
//!
//! Reschedule-mode sensors of the other kinds are poked by the scheduler's sensor loop and
//! reach a worker only through `dagctl tasks test`, which runs them here in poke mode.

use std::time::Duration;

use chrono::Utc;
use dag::sensor::{Probe, Sensor, SensorMode, next_poke_delay};
use sensor::{PokeResult, Probes, RenderError};

use crate::attempt::{Attempt, Outcome, Ran};
use crate::command::{self, Workspace};
use crate::finish::describe_instant;
use crate::render::{self, ContextError};
use crate::task_log::TrackLast;

/// Why a built-in probe could not be rendered for this try.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    /// Variables or connections could not be opened.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// A template of the probe failed, or its connection is missing.
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// Run one try of a sensor task on this worker.
pub(crate) async fn run(attempt: &Attempt<'_>, sensor: &Sensor) -> Ran {
    let log = attempt.log;
    let ti = &attempt.claimed.ti;
    // Reschedule mode: one poke, measured against the first poke of the try (stored).
    let reschedule = sensor.mode == SensorMode::Reschedule && sensor.probe.needs_worker();
    let (mut pokes, first) = if reschedule {
        let progress = attempt.store.sensor_progress(ti.id).await.ok().flatten();
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
                let result = match command_poke(attempt, command).await {
                    Outcome::Success => PokeResult::Done("exit code 0".into()),
                    _ => PokeResult::NotYet("not yet".into()),
                };
                (result, "command".to_string())
            }
            other => {
                if probe.is_none() {
                    match render_probe(attempt, other).await {
                        Ok(rendered) => probe = Some(rendered),
                        Err(err) => {
                            log.system(format!("sensor failed: {err}")).await;
                            return Ran::only(Outcome::FailedForGood);
                        }
                    }
                }
                let Some(rendered) = probe.as_ref() else {
                    return Ran::only(Outcome::FailedForGood);
                };
                let probes = Probes::new(attempt.store.clone());
                (probes.poke(rendered, Utc::now()).await, rendered.describe())
            }
        };
        let now = Utc::now();
        let elapsed = (now - first).as_seconds_f64().max(0.0);
        match result {
            PokeResult::Done(message) => {
                log.system(format!("poking {what}: done, {message} (poke {pokes})"))
                    .await;
                return Ran::only(Outcome::Success);
            }
            PokeResult::Fail(message) => {
                log.system(format!(
                    "poking {what}: sensor failed: {message} (poke {pokes})"
                ))
                .await;
                return Ran::only(Outcome::FailedForGood);
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
                return Ran::only(outcome);
            }
            PokeResult::NotYet(message) => {
                let delay = next_poke_delay(sensor, pokes, elapsed, sensor::jitter(ti.id, pokes));
                let next = now + chrono::Duration::milliseconds((delay * 1000.0) as i64);
                log.system(format!(
                    "poking {what}: {message} (poke {pokes}); next poke at {}",
                    describe_instant(next)
                ))
                .await;
                if reschedule {
                    return Ran::only(Outcome::Reschedule(next));
                }
                // Poke mode: hold the slot and sleep; a stop (the worker's shutdown, a change
                // from outside) ends the try.
                let pause = Duration::from_secs_f64(delay);
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    reason = attempt.stop.stopped() => {
                        log.system(reason.outcome_line()).await;
                        return Ran::only(Outcome::Failed);
                    }
                }
            }
        }
    }
}

/// One poke of a `command` sensor: `bash -c command` in the task's workspace, rendered with
/// the try's context as a `bash` task's command is.
async fn command_poke(attempt: &Attempt<'_>, command: &str) -> Outcome {
    let log = attempt.log;
    let reads = command::bash_reads(attempt, command);
    let ctx = match render::bound_context(attempt, reads).await {
        Ok(ctx) => ctx,
        Err(err) => {
            log.system(err.to_string()).await;
            return Outcome::Failed;
        }
    };
    let prepared = match Workspace::new(attempt, &ctx) {
        Ok(workspace) => command::bash_spec(attempt, &workspace, command, &ctx, TrackLast::Yes)
            .await
            .map(|spec| (workspace, spec)),
        Err(err) => Err(err),
    };
    match prepared {
        Ok((workspace, spec)) => command::run(attempt, &workspace, &spec).await.outcome,
        Err(err) => {
            log.system(err.to_string()).await;
            Outcome::Failed
        }
    }
}

/// Render a built-in probe with the try's context (no XComs: probes cannot pull them).
async fn render_probe(
    attempt: &Attempt<'_>,
    probe: &Probe,
) -> Result<sensor::Rendered, ProbeError> {
    let ti = &attempt.claimed.ti;
    let config = attempt.config;
    let mut ctx = attempt.claimed.run.template_context(
        attempt.dag,
        &ti.task_id,
        ti.map_index,
        ti.try_number,
        &[],
    );
    if sensor::needs_secrets(probe) {
        render::open_secrets(attempt, &mut ctx).await?;
    }
    let folder = attempt.dag_folder();
    let connections = sensor::Connections::new(
        attempt.store.clone(),
        config.vault.clone(),
        config.env_connections.clone(),
    );
    Ok(sensor::render(probe, &ctx, folder.as_deref(), &connections).await?)
}
