//! The worker: claims queued task instances and runs each try as a child process, streaming
//! its log to the store and writing its end state and XComs.
//!
//! Why it is shaped so: [`Worker::run`] sleeps on store events (`TasksQueued`), on a try
//! finishing (a slot frees up) and on a slow poll that is only a safety net, so a queued task
//! starts within a claim's round trip. Each try is one [`execute`] call, which is also what
//! `dagctl tasks test` uses to run one task instance without claiming it.
//!
//! Shutdown: when the `shutdown` future completes the worker stops claiming, sends SIGTERM to
//! the process group of every running try (SIGKILL after the kill grace), and finishes those
//! tries as failed — `up_for_retry` when they have tries left — before returning. Killing
//! rather than waiting keeps a restart or deploy bounded by the kill grace, and the retry
//! runs the task again on a live worker.
//!
//! How a try is built (each module uses only those below it; none uses the dispatcher):
//! - `execute` is the dispatcher: it loads the run's DAG version, builds the try's
//!   `attempt::Attempt` (store, claimed task, DAG and task, log, config, cancel signal),
//!   hands it to the kind's module by `TaskKind`, and turns the kind's `Ran` into the store's
//!   `Finish` with `finish`; `notify` sends the try's notifications.
//! - `kind::process` (`bash`, `python`), `kind::operators` (`http`, `sql`, `email`,
//!   `trigger_dag`) and `kind::sensor` (command pokes, poke-mode sensors) are the kinds.
//! - The pieces kinds share: `render` (the template context with only the XComs and secrets
//!   the templates read, `expand` bound), `command` (a child process from a command spec, in
//!   the try's workspace), `process` (spawning and waiting), `task_log`, `xcom`.
//!
//! To add a kind: a `TaskKind` variant in `dag`, a module `kind/<name>.rs` with
//! `pub(crate) async fn run(attempt: &Attempt<'_>) -> Ran` built from the shared pieces, and
//! one arm in `execute::dispatch`.

mod attempt;
mod command;
mod config;
mod execute;
mod finish;
mod kind;
mod notify;
mod process;
mod render;
mod task_log;
pub mod xcom;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use store::{Claim, Finish, Store, StoreEvent};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

pub use command::SKIP_EXIT_CODE;
pub use config::WorkerConfig;
pub use execute::execute;

/// Attempts to write a try's end before leaving it to the zombie detector.
const FINISH_ATTEMPTS: u32 = 4;

/// A worker process's main loop. Build with [`Worker::new`], start with [`Worker::run`].
#[derive(Debug)]
pub struct Worker {
    config: WorkerConfig,
}

impl Worker {
    pub fn new(config: WorkerConfig) -> Self {
        Worker { config }
    }

    /// Claim and run task instances until `shutdown` completes; returns once every running
    /// try has been killed and finished (see the crate docs). Store errors are logged and
    /// retried on the next wake-up, never fatal.
    pub async fn run(self, store: Arc<dyn Store>, shutdown: impl Future<Output = ()>) {
        let config = Arc::new(self.config);
        // Subscribe before the first claim, so nothing queued in between is missed.
        let mut events = store.subscribe();
        let mut events_open = true;
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let heartbeat = tokio::spawn(heartbeat_loop(store.clone(), config.clone()));
        let mut running: JoinSet<()> = JoinSet::new();
        // Warm Python parents for the tasks of Airflow DAG files, kept for this loop's life.
        let zygotes = if config.warm_python {
            match pydag::Zygotes::new(config.python.clone()) {
                Ok(zygotes) => Some(Arc::new(zygotes)),
                Err(err) => {
                    tracing::warn!(error = %err, "no warm Python parents: Python tasks start cold");
                    None
                }
            }
        } else {
            None
        };
        let mut poll = tokio::time::interval(config.poll_interval);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The loop claims once on entry; the first poll is one interval later.
        poll.reset();
        tokio::pin!(shutdown);

        let mut claim_now = true;
        loop {
            if claim_now {
                claim_now = false;
                let free = config.concurrency.saturating_sub(running.len());
                if free > 0 {
                    // Claiming fills every free slot or takes everything queued, so there is
                    // no point claiming again before something changes.
                    for task in claim(store.as_ref(), &config, free).await {
                        let store = store.clone();
                        let config = config.clone();
                        let cancel = cancel_rx.clone();
                        let zygotes = zygotes.clone();
                        running.spawn(async move {
                            let (finish, ended) = execute::run_try(
                                &store,
                                &task,
                                &config,
                                cancel,
                                zygotes.as_deref(),
                            )
                            .await;
                            // Notifications follow the committed end, and never change it.
                            if write_finish(store.as_ref(), &finish).await
                                && let Some(ended) = ended
                            {
                                ended.notify(&store, &task, &config, finish.state).await;
                            }
                        });
                    }
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                event = events.recv(), if events_open => match event {
                    Ok(StoreEvent::TasksQueued | StoreEvent::Missed)
                    | Err(broadcast::error::RecvError::Lagged(_)) => {
                        claim_now = true;
                    }
                    Ok(
                        StoreEvent::RunChanged { .. }
                        | StoreEvent::RunProgressed { .. }
                        | StoreEvent::LogAppended { .. },
                    ) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        tracing::warn!("store events closed; claiming on the poll interval only");
                        events_open = false;
                    }
                },
                Some(joined) = running.join_next(), if !running.is_empty() => {
                    if let Err(err) = joined {
                        tracing::error!(error = %err, "a task try panicked; its task instance is left to the zombie detector");
                    }
                    claim_now = true;
                }
                _ = poll.tick() => claim_now = true,
            }
        }

        if !running.is_empty() {
            tracing::info!(
                running = running.len(),
                "worker shutting down: killing running tries"
            );
        }
        // Receivers that already finished don't matter; the send only fails with none left.
        let _ = cancel_tx.send(true);
        while let Some(joined) = running.join_next().await {
            if let Err(err) = joined {
                tracing::error!(error = %err, "a task try panicked during shutdown");
            }
        }
        heartbeat.abort();
    }
}

async fn claim(store: &dyn Store, config: &WorkerConfig, limit: usize) -> Vec<store::ClaimedTask> {
    let request = Claim {
        worker_id: config.worker_id.clone(),
        hostname: config.hostname.clone(),
        queues: config.queues.clone(),
        limit,
        now: Utc::now(),
    };
    match store.claim_task_instances(&request).await {
        Ok(claimed) => {
            // Scheduling latency: queued by the scheduler → taken by a worker.
            for task in &claimed {
                if let Some(queued) = task.ti.queued_at {
                    let waited = (request.now - queued).as_seconds_f64().max(0.0);
                    metrics::histogram!("updraft_task_scheduling_latency_seconds").record(waited);
                }
            }
            claimed
        }
        Err(err) => {
            tracing::warn!(error = %err, "claiming task instances failed");
            Vec::new()
        }
    }
}

/// Write a try's end, retrying briefly on store errors. If it still fails, the instance stays
/// `running` and the scheduler's zombie detection fails it once heartbeats stop.
/// Returns whether this end was written.
async fn write_finish(store: &dyn Store, finish: &Finish) -> bool {
    let mut backoff = Duration::from_millis(100);
    for attempt in 1..=FINISH_ATTEMPTS {
        match store.finish_task_instance(finish).await {
            Ok(true) => return true,
            Ok(false) => {
                tracing::warn!(
                    ti = finish.ti,
                    try_number = finish.try_number,
                    "try was no longer running when it finished (cleared or failed as a zombie)"
                );
                return false;
            }
            Err(err) if attempt < FINISH_ATTEMPTS => {
                tracing::warn!(ti = finish.ti, error = %err, "writing a try's end failed; retrying");
                // Only on the error path: the store is failing, so back off.
                tokio::time::sleep(backoff).await;
                backoff *= 4;
            }
            Err(err) => {
                tracing::error!(ti = finish.ti, error = %err, "could not write a try's end");
            }
        }
    }
    false
}

async fn heartbeat_loop(store: Arc<dyn Store>, config: Arc<WorkerConfig>) {
    let mut interval = tokio::time::interval(config.heartbeat_interval);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let now = Utc::now();
        if let Err(err) = store.heartbeat(&config.worker_id, now).await {
            tracing::warn!(error = %err, "worker heartbeat failed");
        }
        // The health shown in the UI reads this beat; like the scheduler's, not worth stopping for.
        if let Err(err) = store
            .record_heartbeat("worker", &config.worker_id, &config.hostname, now)
            .await
        {
            tracing::warn!(error = %err, "worker heartbeat not recorded");
        }
    }
}
