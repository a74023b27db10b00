//! The worker: claims queued task instances and runs each try as a child process, streaming
//! its log to the store and writing its end state and XComs.
//!
//! Why it is shaped so: [`Worker::run`] sleeps on store events (`TasksQueued`), on a try
//! finishing (a slot frees up) and on a slow poll that is only a safety net, so a queued task
//! starts within a claim's round trip. Each try is one [`execute`] call, which is also what
//! `dagctl tasks test` uses to run one task instance without claiming it.
//!
//! Shutdown: when the `shutdown` future completes the worker stops claiming at once and lets
//! its running tries finish within the shutdown grace (`worker.shutdown_grace`), still
//! heartbeating for them. Those still running then are killed (SIGTERM to the process
//! group, SIGKILL after the kill grace) and finished as failed — `up_for_retry` when they
//! have tries left, their log saying the worker was shutting down — and `run` returns once
//! every end is written. A deploy thus loses no short try, and stays bounded by the two
//! graces; a killed try runs again on a live worker.
//!
//! Stopping one try: every try has its own stop signal (`stop`), with a reason. Besides the
//! shutdown, a try is stopped (by the same kill path as a timeout, within a second) when its
//! task instance changes from outside — marked success or failed, cleared, deleted —, seen
//! on `RunChanged` with one read of the run, and on every heartbeat with one read of the
//! running instances, for events that never reached this process (`outside`); and when its
//! log cannot be stored. Its guarded end then changes nothing, as expected.
//!
//! Store outages (`StoreError::Unavailable`) neither kill nor lose a try: log lines are held
//! until the store is back (`task_log`), a try's end is retried until written, keeping its
//! slot, and each outage is logged once, when it starts and when it ends
//! (`store::outage::Outage`, shared by the claim loop, the heartbeat and the tries). But a
//! worker whose heartbeat has not reached the store for longer than the zombie threshold
//! (`WorkerConfig::orphan_after`) knows the scheduler fails its tries as zombies and retries
//! them, so it kills them, lest two tries of one task run at once (`heartbeat`).
//!
//! How a try is built (each module uses only those below it; none uses the dispatcher):
//! - `execute` is the dispatcher: it loads the run's DAG version, builds the try's
//!   `attempt::Attempt` (store, claimed task, DAG and task, log, config, stop signal),
//!   hands it to the kind's module by `TaskKind`, and turns the kind's `Ran` into the store's
//!   `Finish` with `finish`; `notify` sends the try's notifications.
//! - `kind::process` (`bash`, `python`), `kind::operators` (`http`, `sql`, `email`,
//!   `trigger_dag`) and `kind::sensor` (command pokes, poke-mode sensors) are the kinds.
//! - The pieces kinds share: `render` (the template context with only the XComs and secrets
//!   the templates read, `expand` bound), `command` (a child process from a command spec, in
//!   the try's workspace), `process` (spawning and waiting), `task_log`, `xcom`.
//!
//! Around the tries, for the loop: `tries` (the running tries and their stop signals),
//! `finisher` (their ends, written in batches), `heartbeat`, `outside`, `reporting` (the
//! shared outage and the retry backoff).
//!
//! To add a kind: a `TaskKind` variant in `dag`, a module `kind/<name>.rs` with
//! `pub(crate) async fn run(attempt: &Attempt<'_>) -> Ran` built from the shared pieces, and
//! one arm in `execute::dispatch`.

mod attempt;
mod command;
mod config;
mod execute;
mod finish;
mod finisher;
mod heartbeat;
mod kind;
mod notify;
mod outside;
mod process;
mod render;
mod reporting;
mod stop;
mod task_log;
mod tries;
pub mod xcom;

use std::future::Future;
use std::sync::Arc;

use chrono::Utc;
use store::{Claim, Store, StoreEvent};
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

pub use command::SKIP_EXIT_CODE;
pub use config::WorkerConfig;
pub use execute::execute;

use crate::finisher::{Finisher, Written};
use crate::reporting::Reporting;
use crate::stop::StopReason;
use crate::tries::{Tries, TryKey};

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
    /// try has finished, or been killed after the shutdown grace, and its end is written (see
    /// the crate docs). Store errors are logged and retried on the next wake-up, never fatal.
    pub async fn run(self, store: Arc<dyn Store>, shutdown: impl Future<Output = ()>) {
        let config = Arc::new(self.config);
        // Subscribe before the first claim, so nothing queued or changed in between is missed.
        let mut events = store.subscribe();
        let mut events_open = true;
        let tries = Arc::new(Tries::default());
        let reporting = Arc::new(Reporting::new(config.orphan_after));
        let background = [
            tokio::spawn(heartbeat::beat(
                store.clone(),
                config.clone(),
                tries.clone(),
                reporting.clone(),
            )),
            tokio::spawn(heartbeat::stop_orphans(config.clone(), tries.clone())),
            tokio::spawn(outside::watch_runs(
                store.clone(),
                tries.clone(),
                reporting.clone(),
                store.subscribe(),
            )),
        ];
        let finisher = Finisher::start(store.clone(), reporting.clone());
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
                    let sent = Instant::now();
                    for task in claim(store.as_ref(), &config, &reporting, free).await {
                        let stop = tries.add(&task.ti, sent);
                        let store = store.clone();
                        let config = config.clone();
                        let tries = tries.clone();
                        let reporting = reporting.clone();
                        let zygotes = zygotes.clone();
                        let finisher = finisher.clone();
                        running.spawn(async move {
                            let (finish, ended) = execute::run_try(
                                &store,
                                &task,
                                &config,
                                &stop,
                                &reporting,
                                zygotes.as_deref(),
                            )
                            .await;
                            // Nothing is left to stop: whatever changes from now on, the
                            // guarded finish settles it.
                            tries.remove(TryKey::of(&task.ti));
                            let state = finish.state;
                            let (ti, try_number) = (finish.ti, finish.try_number);
                            match finisher.write(finish).await {
                                // Notifications follow the committed end, and never change it.
                                Written::Applied => {
                                    if let Some(ended) = ended {
                                        ended.notify(&store, &task, &config, state).await;
                                    }
                                }
                                Written::Refused => match stop.reason() {
                                    // The try was stopped because its instance is no longer
                                    // its own.
                                    Some(reason) if reason.expects_refused_finish() => {
                                        tracing::debug!(
                                            ti,
                                            try_number,
                                            "the try's end was not recorded: {reason}"
                                        );
                                    }
                                    _ => tracing::warn!(
                                        ti,
                                        try_number,
                                        "try was no longer running when it finished (cleared \
                                         or failed as a zombie)"
                                    ),
                                },
                                Written::Failed => {}
                            }
                        });
                    }
                }
            }
            tokio::select! {
                // A shutdown wins over work that is ready at the same moment: nothing is
                // claimed once it has begun.
                biased;
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
                    // Every slot freed by now is claimed for at once, in one claim.
                    for joined in std::iter::once(joined).chain(std::iter::from_fn(|| running.try_join_next())) {
                        if let Err(err) = joined {
                            tracing::error!(error = %err, "a task try panicked; its task instance is left to the zombie detector");
                        }
                    }
                    claim_now = true;
                }
                _ = poll.tick() => claim_now = true,
            }
        }
        drop(events);

        reporting.begin_shutdown();
        let grace = config.shutdown_grace;
        if !running.is_empty() {
            tracing::info!(
                running = running.len(),
                grace_secs = grace.as_secs_f64(),
                "worker shutting down: claiming no more, letting running tries finish"
            );
        }
        // The heartbeat and the checks go on meanwhile: the tries still running are alive.
        let grace_over = tokio::time::sleep(grace);
        tokio::pin!(grace_over);
        let mut killing = false;
        while !running.is_empty() {
            tokio::select! {
                Some(joined) = running.join_next() => {
                    if let Err(err) = joined {
                        tracing::error!(error = %err, "a task try panicked during shutdown");
                    }
                }
                () = &mut grace_over, if !killing => {
                    killing = true;
                    let stopped = tries.stop_all(&StopReason::Shutdown { grace });
                    tracing::info!(
                        tries = stopped,
                        "worker shutting down: the grace is over, killing the tries still running"
                    );
                }
            }
        }
        for task in background {
            task.abort();
        }
    }
}

async fn claim(
    store: &dyn Store,
    config: &WorkerConfig,
    reporting: &Reporting,
    limit: usize,
) -> Vec<store::ClaimedTask> {
    let request = Claim {
        worker_id: config.worker_id.clone(),
        hostname: config.hostname.clone(),
        queues: config.queues.clone(),
        limit,
        now: Utc::now(),
    };
    match store.claim_task_instances(&request).await {
        Ok(claimed) => {
            reporting.outage.succeeded();
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
            if !reporting.outage.failed(&err) {
                tracing::warn!(error = %err, "claiming task instances failed");
            }
            Vec::new()
        }
    }
}
