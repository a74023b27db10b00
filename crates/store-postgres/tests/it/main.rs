//! The store conformance suite against Postgres, each case in a fresh database.
//!
//! The server comes from `UPDRAFT_TEST_POSTGRES_URL` (default: local trust auth). Each case
//! creates `updraft_test_<unique>` and drops it afterwards. An unreachable server skips the
//! cases, except with `CI=true`, where it fails them.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use store::Store;
use store::conformance::{Fixture, Teardown};
use store_postgres::{
    PostgresConfig, PostgresStore, create_scratch_database, drop_scratch_database,
};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn server_url() -> String {
    std::env::var("UPDRAFT_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

/// A connection to the server's maintenance database, or `None` (having said why) to skip.
async fn admin() -> Option<PgConnection> {
    let url = server_url();
    let connected = tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&url)).await;
    match connected {
        Ok(Ok(conn)) => Some(conn),
        failed => {
            let reason = match failed {
                Ok(Err(err)) => err.to_string(),
                _ => "timed out".to_string(),
            };
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("Postgres not reachable at {url} ({reason}); CI requires it");
            }
            eprintln!(
                "skipping: Postgres not reachable at {url} ({reason}) (set CI=true to require it)"
            );
            None
        }
    }
}

/// A new empty database: its URL, and the teardown that drops it.
async fn fresh_database() -> Option<(String, Teardown)> {
    // Checked first so an unreachable server skips (or fails in CI) with a clear message.
    let maintenance = admin().await?;
    let _ = maintenance.close().await;
    let server = server_url();
    let url = create_scratch_database(&server)
        .await
        .expect("create the test database");
    let dropped_url = url.clone();
    let teardown: Teardown = Box::pin(async move {
        if let Err(err) = drop_scratch_database(&server, &dropped_url).await {
            eprintln!("could not drop test database {dropped_url}: {err}");
        }
    });
    Some((url, teardown))
}

async fn connect(url: &str) -> PostgresStore {
    PostgresStore::connect_with(PostgresConfig::new(url).with_max_connections(12))
        .await
        .expect("connect to the test database")
}

async fn fresh() -> Option<Fixture> {
    let (url, teardown) = fresh_database().await?;
    let store = connect(&url).await;
    Some(Fixture::new(Arc::new(store)).with_teardown(teardown))
}

store::store_conformance!(fresh);

/// Two stores on one database, as two processes would be: a commit in one wakes the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_processes_commits_arrive_as_events() {
    let Some((url, teardown)) = fresh_database().await else {
        return;
    };
    let other = connect(&url).await;
    let fixture = Fixture::new(Arc::new(connect(&url).await)).with_teardown(teardown);
    store::conformance::run(fixture, move |store: Arc<dyn Store>| async move {
        let mut events = store.subscribe();
        let mut own = other.subscribe();
        let dag = store::conformance::chain_dag("shared", &["t"]);
        let run = other
            .create_run(&store::conformance::new_run(
                &dag,
                "r1",
                store::conformance::at(0),
            ))
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
    })
    .await;
}
