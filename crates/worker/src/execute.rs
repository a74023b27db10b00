//! The dispatcher: one try of one claimed task instance. Loads its DAG version, hands the
//! try to its kind's module, and turns what the kind reports into the store's [`Finish`].
//!
//! The hot path makes a fixed number of store calls per try: the DAG definition comes from a
//! cache after the first try of a version, the run's XComs are read only when the task's
//! templates pull them, and the log goes out in batches.

use std::sync::Arc;

use chrono::Utc;
use dag::{Dag, TaskKind};
use hooks::callbacks::{self, TryMoment};
use store::{ClaimedTask, Finish, Store};
use tokio::sync::watch;

use crate::attempt::{Attempt, Outcome, Ran};
use crate::config::WorkerConfig;
use crate::finish;
use crate::kind;
use crate::notify::{Ended, Sent};
use crate::task_log::TaskLog;

/// Run one task instance that is already `running` (claimed, or made running by the caller),
/// without claiming it and without writing its end: returns the [`Finish`] to hand to
/// [`Store::finish_task_instance`]. The log is written to the store as the try runs.
///
/// This is what `dagctl tasks test` needs; the [`crate::Worker`] loop uses the same path.
pub async fn execute(store: Arc<dyn Store>, claimed: ClaimedTask, config: &WorkerConfig) -> Finish {
    // Nobody cancels a single direct execution; the sender stays alive so it never fires.
    let (_never, cancel) = watch::channel(false);
    run_try(&store, &claimed, config, cancel, None).await.0
}

/// Run one try and say how it ends; the [`Ended`] sends its notifications once the end is
/// committed (absent when the task could not be found).
pub(crate) async fn run_try(
    store: &Arc<dyn Store>,
    claimed: &ClaimedTask,
    config: &WorkerConfig,
    cancel: watch::Receiver<bool>,
    zygotes: Option<&pydag::Zygotes>,
) -> (Finish, Option<Ended>) {
    let ti = &claimed.ti;
    let log = TaskLog::start(store.clone(), ti.id, ti.try_number, config.log_cap_bytes);
    let (dag, ran) = match load(store, claimed, config, &log).await {
        Ok(dag) => {
            let ran = dispatch(store, claimed, config, &dag, &log, cancel, zygotes).await;
            (Some(dag), ran)
        }
        Err(outcome) => (None, Ran::only(outcome)),
    };
    let exception = match ran.outcome {
        Outcome::Success | Outcome::Skipped => None,
        _ => Some(log.failure_message()),
    };
    let task = dag.as_ref().and_then(|dag| dag.task(&ti.task_id));
    let end = finish::end(claimed, task, ran.outcome, ran.xcoms, Utc::now());
    log.system(end.summary).await;
    log.close().await;
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
    // The store parses each version once and keeps it: versions never change.
    let dag = match store
        .get_dag_version(&ti.dag_id, &claimed.run.version)
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

/// Send `on_execute`, then run the try by its task's kind.
async fn dispatch(
    store: &Arc<dyn Store>,
    claimed: &ClaimedTask,
    config: &WorkerConfig,
    dag: &Dag,
    log: &TaskLog,
    cancel: watch::Receiver<bool>,
    zygotes: Option<&pydag::Zygotes>,
) -> Ran {
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
        cancel,
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
