//! The dispatcher: one try of one claimed task instance. Loads its DAG version, hands the
//! try to its kind's module, and turns what the kind reports into the store's [`Finish`].
//!
//! The hot path makes a fixed number of store calls per try: the DAG definition comes from a
//! cache after the first try of a version, the run's XComs are read only when the task's
//! templates pull them, and the log goes out in batches, its last one (all of it, for a
//! short try) and the pid with the try's end.

use std::sync::Arc;

use chrono::Utc;
use dag::{Dag, TaskKind};
use hooks::callbacks::{self, TryMoment};
use store::{ClaimedTask, Finish, Store};

use crate::attempt::{Attempt, Outcome, Ran};
use crate::config::WorkerConfig;
use crate::finish;
use crate::kind;
use crate::notify::{Ended, Sent};
use crate::reporting::Reporting;
use crate::stop::{StopReason, StopSignal};
use crate::task_log::TaskLog;

/// Run one task instance that is already `running` (claimed, or made running by the caller),
/// without claiming it and without writing its end: returns the [`Finish`] to hand to
/// [`Store::finish_task_instance`]. The log is written to the store as the try runs.
///
/// This is what `dagctl tasks test` needs; the [`crate::Worker`] loop uses the same path.
pub async fn execute(store: Arc<dyn Store>, claimed: ClaimedTask, config: &WorkerConfig) -> Finish {
    // Only the try itself may stop a single direct execution (its log failing).
    let stop = StopSignal::new();
    let reporting = Arc::new(Reporting::new(config.orphan_after));
    run_try(&store, &claimed, config, &stop, &reporting, None)
        .await
        .0
}

/// Run one try and say how it ends; the [`Ended`] sends its notifications once the end is
/// committed (absent when the task could not be found).
pub(crate) async fn run_try(
    store: &Arc<dyn Store>,
    claimed: &ClaimedTask,
    config: &WorkerConfig,
    stop: &StopSignal,
    reporting: &Arc<Reporting>,
    zygotes: Option<&pydag::Zygotes>,
) -> (Finish, Option<Ended>) {
    let ti = &claimed.ti;
    let log = TaskLog::start(
        store.clone(),
        (ti.id, ti.try_number),
        config.log_cap_bytes,
        stop.clone(),
        reporting.clone(),
    );
    let (dag, mut ran) = match load(store, claimed, config, reporting, &log).await {
        Ok(dag) => {
            let base = TryBase {
                store,
                claimed,
                config,
                log: &log,
                stop,
                reporting,
            };
            let ran = dispatch(&base, &dag, zygotes).await;
            (Some(dag), ran)
        }
        Err(outcome) => (None, Ran::only(outcome)),
    };
    // What the log has not stored goes with the end, in its transaction; a log that could
    // not be stored (settled by the hand-over) fails the try.
    let mut tail = log.hand_over().await;
    if let Some(error) = log.lost() {
        if !matches!(stop.reason(), Some(StopReason::LogFailed(_))) {
            tail.lines.push(log.system_line(format!(
                "task failed: its log could not be stored ({error})"
            )));
        }
        if !matches!(ran.outcome, Outcome::Failed | Outcome::FailedForGood) {
            ran = Ran::only(Outcome::Failed);
        }
    }
    let exception = match ran.outcome {
        Outcome::Success | Outcome::Skipped => None,
        _ => Some(log.failure_message()),
    };
    let task = dag.as_ref().and_then(|dag| dag.task(&ti.task_id));
    let mut end = finish::end(claimed, task, ran.outcome, ran.xcoms, Utc::now());
    let summary = match stop.reason() {
        // Someone else set the instance's state: this try's guarded end will not apply.
        Some(reason) if reason.keeps_outside_state() => {
            format!("not recording the try's end: {reason}")
        }
        _ => end.summary,
    };
    tail.lines.push(log.system_line(summary));
    end.finish.log = tail.lines;
    end.finish.pid = tail.pid;
    let ended = dag.map(|dag| Ended {
        dag,
        task_id: ti.task_id.clone(),
        exception: exception.unwrap_or_default(),
        callbacks_left: ran.callbacks_left,
    });
    (end.finish, ended)
}

/// The run's DAG version, holding the claimed task; otherwise the outcome the try ends in.
async fn load(
    store: &Arc<dyn Store>,
    claimed: &ClaimedTask,
    config: &WorkerConfig,
    reporting: &Reporting,
    log: &TaskLog,
) -> Result<Arc<Dag>, Outcome> {
    let ti = &claimed.ti;
    let map = if ti.map_index >= 0 {
        format!(" [map_index {}]", ti.map_index)
    } else {
        String::new()
    };
    log.system(format!(
        "starting {}.{}{} of run {}, try {} of {}, on {} (worker {})",
        ti.dag_id,
        ti.task_id,
        map,
        ti.run_id,
        ti.try_number,
        ti.max_tries + 1,
        config.hostname,
        config.worker_id
    ))
    .await;
    // The store parses each version once and keeps it: versions never change. Through an
    // outage the try waits for the store rather than fail for want of it.
    let dag = match reporting
        .read(|| store.get_dag_version(&ti.dag_id, &claimed.run.version))
        .await
    {
        Ok(Some(dag)) => dag,
        Ok(None) => {
            log.system(format!(
                "DAG {} version {} is not in the store",
                ti.dag_id, claimed.run.version
            ))
            .await;
            return Err(Outcome::FailedForGood);
        }
        Err(err) => {
            log.system(format!("could not load the DAG definition: {err}"))
                .await;
            return Err(Outcome::Failed);
        }
    };
    if dag.task(&ti.task_id).is_none() {
        log.system(format!(
            "task {} is not in version {} of DAG {}",
            ti.task_id, claimed.run.version, ti.dag_id
        ))
        .await;
        return Err(Outcome::FailedForGood);
    }
    Ok(dag)
}

/// What a try has before its DAG is known.
struct TryBase<'a> {
    store: &'a Arc<dyn Store>,
    claimed: &'a ClaimedTask,
    config: &'a WorkerConfig,
    log: &'a TaskLog,
    stop: &'a StopSignal,
    reporting: &'a Reporting,
}

/// Send `on_execute`, then run the try by its task's kind.
async fn dispatch(base: &TryBase<'_>, dag: &Dag, zygotes: Option<&pydag::Zygotes>) -> Ran {
    let TryBase {
        store,
        claimed,
        config,
        log,
        stop,
        reporting,
    } = *base;
    let Some(task) = dag.task(&claimed.ti.task_id) else {
        return Ran::only(Outcome::FailedForGood);
    };
    if callbacks::task_has_notifications(task, TryMoment::Started) {
        let sent = Sent {
            store,
            claimed,
            config,
            dag,
            task,
        };
        sent.notify(TryMoment::Started, None).await;
    }
    let attempt = Attempt {
        store,
        claimed,
        config,
        dag,
        task,
        log,
        stop,
        reporting,
        zygotes,
    };
    match &task.kind {
        TaskKind::Bash { .. } | TaskKind::Python(_) => kind::process::run(&attempt).await,
        TaskKind::Http { .. }
        | TaskKind::Sql { .. }
        | TaskKind::Email { .. }
        | TaskKind::TriggerDag { .. } => kind::operators::run(&attempt).await,
        TaskKind::Sensor(sensor) => kind::sensor::run(&attempt, sensor).await,
        TaskKind::Airflow(spec) => kind::airflow::run(&attempt, spec).await,
        TaskKind::Empty => {
            log.system("empty task: nothing to run").await;
            Ran::only(Outcome::Success)
        }
        TaskKind::Switch { .. } => {
            // The scheduler evaluates switches; succeeding here would follow no branch on
            // purpose, so a switch reaching a worker is reported as the bug it is.
            log.system("switch tasks are decided by the scheduler, not by a worker")
                .await;
            Ran::only(Outcome::FailedForGood)
        }
    }
}
