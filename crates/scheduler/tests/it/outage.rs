//! A database outage under a running scheduler and worker: Postgres's connections are reset
//! and refused for a while (through `testkit::outage::OutageProxy`), with a try running and
//! a run made meanwhile by another process. Nothing exits and nothing is lost: the try's
//! process is not killed, its end is written once the database is back, and the run made
//! during the outage is found by the catch-up read.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use dag::{RunState, TaskState};
use scheduler::TriggerRequest;
use store::Store;
use store_postgres::PostgresStore;
use testkit::outage::OutageProxy;
use testkit::postgres::ScratchDatabase;

use crate::{load, start, wait_for_run};

/// How long the database stays unreachable: longer than a pool's acquire timeout would
/// allow an operation to hide it, shorter than the zombie threshold.
const OUTAGE: Duration = Duration::from_secs(3);

async fn trigger(store: &dyn Store, dag_id: &str, n: u32) -> i64 {
    let request = TriggerRequest {
        run_id: Some(format!("outage_{n}")),
        logical_date: Some(
            Utc.with_ymd_and_hms(2026, 1, n, 0, 0, 0)
                .single()
                .expect("a date"),
        ),
        conf: None,
    };
    scheduler::trigger(store, dag_id, request, Utc::now())
        .await
        .expect("trigger")
        .id
}

async fn wait_until_running(store: &dyn Store, run: i64, task: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let tis = store.task_instances(run).await.expect("task instances");
        if tis
            .iter()
            .any(|ti| ti.task_id == task && ti.state == TaskState::Running)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{task} never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduling_rides_out_a_postgres_outage() {
    let Some(database) = ScratchDatabase::create().await else {
        return;
    };
    // Another process, unaffected by the outage: it triggers runs and reads states.
    let direct: Arc<dyn Store> = Arc::new(
        PostgresStore::connect(database.url())
            .await
            .expect("connect"),
    );
    let mut proxy = OutageProxy::start(database.url()).await;
    let through: Arc<dyn Store> = Arc::new(
        PostgresStore::connect(&proxy.url(database.url()))
            .await
            .expect("connect through the proxy"),
    );
    let dag_id = load(
        &*direct,
        "dag_id: outage\ntasks:\n  - {id: slow, bash: 'sleep 2'}\n  - {id: after, bash: 'true', depends_on: [slow]}\n",
    )
    .await;
    let engine = start(through.clone());

    let before = trigger(&*direct, &dag_id, 1).await;
    assert_eq!(wait_for_run(&*direct, before).await, RunState::Success);

    let across = trigger(&*direct, &dag_id, 2).await;
    wait_until_running(&*direct, across, "slow").await;
    proxy.cut().await;
    let down = through
        .unfinished_runs()
        .await
        .expect_err("the database is out of reach");
    assert!(down.is_unavailable(), "an outage, not a failure: {down}");
    let during = trigger(&*direct, &dag_id, 3).await;
    // The fault's length, not a wait for state.
    tokio::time::sleep(OUTAGE).await;
    proxy.restore().await;

    assert_eq!(wait_for_run(&*direct, across).await, RunState::Success);
    assert_eq!(wait_for_run(&*direct, during).await, RunState::Success);
    // The try that was running across the outage ran once: its process was not killed.
    let slow = direct
        .task_instances(across)
        .await
        .expect("task instances")
        .into_iter()
        .find(|ti| ti.task_id == "slow")
        .expect("slow");
    assert_eq!((slow.state, slow.try_number), (TaskState::Success, 1));
    // And scheduling goes on as before.
    let after = trigger(&*direct, &dag_id, 4).await;
    assert_eq!(wait_for_run(&*direct, after).await, RunState::Success);
    engine.stop().await;
}
