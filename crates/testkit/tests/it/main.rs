//! The test kit's own promises: a scratch database is gone once its guard is, even when the
//! test holding it panics, and also when the guard is dropped outside any runtime.

use std::time::Duration;

use store_postgres::PostgresStore;
use testkit::postgres::ScratchDatabase;

/// Whether a database answers at `url`, within a few seconds.
async fn exists(url: &str) -> bool {
    // Dropped, not closed: closing waits for the store's listener connection, which only
    // goes with the store.
    let connected = tokio::time::timeout(Duration::from_secs(5), PostgresStore::connect(url)).await;
    matches!(connected, Ok(Ok(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_test_still_drops_its_database() {
    let Some(database) = ScratchDatabase::create().await else {
        return;
    };
    let url = database.url().to_string();
    assert!(exists(&url).await, "the scratch database answers");
    let case = tokio::spawn(async move {
        let _held = database;
        panic!("the case fails while holding its database");
    });
    assert!(case.await.expect_err("the case panicked").is_panic());
    assert!(!exists(&url).await, "{url} was dropped");
}

#[tokio::test]
async fn a_single_threaded_test_drops_its_database() {
    let Some(database) = ScratchDatabase::create().await else {
        return;
    };
    let url = database.url().to_string();
    drop(database);
    assert!(!exists(&url).await, "{url} was dropped");
}

#[test]
fn a_test_without_a_runtime_drops_its_database() {
    let Some(database) = ScratchDatabase::create_blocking() else {
        return;
    };
    let url = database.url().to_string();
    drop(database);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    assert!(!runtime.block_on(exists(&url)), "{url} was dropped");
}
