//! The store conformance suite against Postgres, each case in a fresh database.
//!
//! The server comes from `UPDRAFT_TEST_POSTGRES_URL` (default: local trust auth). Each case
//! creates `updraft_test_<unique>` and drops it afterwards, also when the case panics. An
//! unreachable server skips the cases, except with `CI=true`, where it fails them.

use std::sync::Arc;
use std::time::Duration;

use store::{RunQueue, Store};
use testkit::backend::connect_postgres;
use testkit::conformance::{at, chain_dag, new_run};
use testkit::postgres::ScratchDatabase;

testkit::store_conformance!(testkit::Backend::Postgres);

/// Two stores on one database, as two processes would be: a commit in one wakes the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_processes_commits_arrive_as_events() {
    let Some(database) = ScratchDatabase::create().await else {
        return;
    };
    let other = connect_postgres(database.url()).await;
    let store: Arc<dyn Store> = Arc::new(connect_postgres(database.url()).await);
    let mut events = store.subscribe();
    let mut own = other.subscribe();
    let dag = chain_dag("shared", &["t"]);
    let run = other
        .create_run(&new_run(&dag, "r1", at(0)))
        .await
        .expect("create")
        .expect("new");
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("the other store's commit arrives")
        .expect("channel open");
    assert_eq!(event, store::StoreEvent::RunChanged { run: run.id });
    // The writing store hears its own event exactly once.
    assert_eq!(
        own.recv().await.expect("own event"),
        store::StoreEvent::RunChanged { run: run.id }
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), own.recv())
            .await
            .is_err(),
        "own notifications are not sent twice"
    );
}
