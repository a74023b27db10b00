//! Airflow's pause through the real scheduler and worker: a paused DAG's triggered run waits,
//! `queued`, and starts the moment the DAG is unpaused (the unpause's event, not a poll); a
//! running run of a DAG paused meanwhile lets its running try finish and queues nothing new;
//! a paused DAG's waiting sensor is not poked until the unpause.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use dag::{RunState, TaskState};
use scheduler::TriggerRequest;
use store::{Store, TaskInstanceRecord};
use testkit::Engine;
use testkit::engine::scheduler_config;
use worker::WorkerConfig;

use super::{load, wait_for_run};

/// Scheduler and worker whose safety poll and full rescans are an hour away: whatever
/// happens within a test happens on an event.
fn start_event_driven(store: Arc<dyn Store>) -> Engine {
    Engine::start(
        store,
        scheduler_config()
            .with_poll_interval(Duration::from_secs(3600))
            .with_rescan_interval(Duration::from_secs(3600)),
        WorkerConfig::new("pausing-worker")
            .with_concurrency(4)
            .with_poll_interval(Duration::from_secs(3600)),
    )
}

async fn trigger(store: &dyn Store, dag_id: &str) -> i64 {
    scheduler::trigger(store, dag_id, TriggerRequest::default(), Utc::now())
        .await
        .expect("trigger")
        .id
}

async fn states(store: &dyn Store, run: i64) -> Vec<(String, TaskState)> {
    let mut states: Vec<(String, TaskState)> = store
        .task_instances(run)
        .await
        .expect("tis")
        .into_iter()
        .map(|ti: TaskInstanceRecord| (ti.task_id, ti.state))
        .collect();
    states.sort_by(|a, b| a.0.cmp(&b.0));
    states
}

/// Wait (on store events, with a deadline) until the task instance is in `state`.
async fn wait_for_task(store: &dyn Store, run: i64, task_id: &str, state: TaskState) {
    let mut events = store.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = states(store, run).await;
        if now.iter().any(|(id, s)| id == task_id && *s == state) {
            return;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "{task_id} never became {state}: {now:?}");
        tokio::select! {
            _ = events.recv() => {}
            _ = tokio::time::sleep(left.min(Duration::from_millis(100))) => {}
        }
    }
}

/// A run of another DAG, triggered after whatever the test did and waited to its end: the
/// scheduler handles events in order, so by then it has had every earlier one.
async fn barrier(store: &dyn Store, dag_id: &str) {
    let run = trigger(store, dag_id).await;
    assert_eq!(wait_for_run(store, run).await, RunState::Success);
}

fn yaml_path(path: &Path) -> String {
    path.display().to_string()
}

async fn a_paused_dags_trigger_waits_and_unpausing_starts_it_at_once(store: Arc<dyn Store>) {
    let dag_id = load(
        &*store,
        "dag_id: resting\ntasks:\n  - {id: a, bash: 'true'}\n  - {id: b, bash: 'true', depends_on: [a]}\n",
    )
    .await;
    let other = load(
        &*store,
        "dag_id: busy\ntasks:\n  - {id: only, bash: 'true'}\n",
    )
    .await;
    let engine = start_event_driven(store.clone());
    store.pause_dag(&dag_id).await.expect("pause");

    let run = trigger(&*store, &dag_id).await;
    barrier(&*store, &other).await;
    let waiting = store.get_run_by_key(run).await.expect("get").expect("run");
    assert_eq!(waiting.state, RunState::Queued, "a paused DAG's run waits");
    assert!(
        states(&*store, run)
            .await
            .iter()
            .all(|(_, s)| *s == TaskState::None),
        "nothing of it is queued"
    );

    // Unpaused: it starts at once, on the unpause's event (the poll is an hour away).
    store.unpause_dag(&dag_id).await.expect("unpause");
    assert_eq!(wait_for_run(&*store, run).await, RunState::Success);
    engine.stop().await;
}

async fn pausing_a_running_run_lets_its_try_finish_and_queues_nothing_new(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = dir.path().join("gate");
    let dag_id = load(
        &*store,
        &format!(
            "dag_id: interrupted\ntasks:\n  - {{id: slow, bash: 'while [ ! -e {g} ]; do sleep 0.02; done'}}\n  - {{id: next, bash: 'true', depends_on: [slow]}}\n",
            g = yaml_path(&gate)
        ),
    )
    .await;
    let other = load(
        &*store,
        "dag_id: busy\ntasks:\n  - {id: only, bash: 'true'}\n",
    )
    .await;
    let engine = start_event_driven(store.clone());
    let run = trigger(&*store, &dag_id).await;
    wait_for_task(&*store, run, "slow", TaskState::Running).await;

    store.pause_dag(&dag_id).await.expect("pause");
    std::fs::write(&gate, "open").expect("open the gate");
    wait_for_task(&*store, run, "slow", TaskState::Success).await;
    barrier(&*store, &other).await;
    assert_eq!(
        states(&*store, run).await,
        [
            ("next".to_string(), TaskState::None),
            ("slow".to_string(), TaskState::Success)
        ],
        "the running try finished; its downstream was not queued"
    );
    assert_eq!(
        store
            .get_run_by_key(run)
            .await
            .expect("get")
            .expect("run")
            .state,
        RunState::Running
    );

    store.unpause_dag(&dag_id).await.expect("unpause");
    assert_eq!(wait_for_run(&*store, run).await, RunState::Success);
    engine.stop().await;
}

async fn a_paused_dags_waiting_sensor_is_poked_again_on_the_unpause(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("ready.csv");
    let dag_id = load(
        &*store,
        &format!(
            "dag_id: watching\ntasks:\n  - {{id: wait, sensor: {{file: '{}'}}, poke_interval: 0.2}}\n  - {{id: after, bash: 'true', depends_on: [wait]}}\n",
            yaml_path(&file)
        ),
    )
    .await;
    let engine = start_event_driven(store.clone());
    let run = trigger(&*store, &dag_id).await;
    wait_for_task(&*store, run, "wait", TaskState::UpForReschedule).await;

    store.pause_dag(&dag_id).await.expect("pause");
    std::fs::write(&file, "rows").expect("write the file");
    let waiting = store.waiting_sensors(Some(run)).await.expect("waiting");
    assert!(waiting.iter().all(|w| w.dag_paused));

    // The unpause names the run; the sensor loop, which parked it, pokes it again at once
    // (its full reload is an hour away).
    store.unpause_dag(&dag_id).await.expect("unpause");
    assert_eq!(wait_for_run(&*store, run).await, RunState::Success);
    engine.stop().await;
}

testkit::backend_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    a_paused_dags_trigger_waits_and_unpausing_starts_it_at_once,
    pausing_a_running_run_lets_its_try_finish_and_queues_nothing_new,
    a_paused_dags_waiting_sensor_is_poked_again_on_the_unpause,
);
