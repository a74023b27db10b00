//! A fresh store for one test on each backend, and the macro that makes a test per backend,
//! so that one backend failing never hides the other's result.

use std::future::Future;
use std::sync::Arc;

use store::Store;
use store_postgres::{PostgresConfig, PostgresStore};
use store_sqlite::SqliteStore;

use crate::postgres::ScratchDatabase;

/// The store backends a test can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite database file in a temporary folder.
    Sqlite,
    /// A scratch database on the test Postgres server.
    Postgres,
}

/// One test's store. Its database goes with it: the SQLite folder with the store, the
/// Postgres scratch database with its guard, dropped after the store.
pub struct TestStore {
    store: Arc<dyn Store>,
    /// Declared after `store`, so it is dropped after the store's connections close.
    _database: Option<ScratchDatabase>,
}

impl TestStore {
    /// A fresh store on `backend`, or `None` when that backend cannot be reached and this
    /// is not CI (see [`crate::ci::unavailable`]).
    pub async fn open(backend: Backend) -> Option<TestStore> {
        match backend {
            Backend::Sqlite => Some(TestStore::sqlite().await),
            Backend::Postgres => TestStore::postgres().await,
        }
    }

    /// A store on a new SQLite database in a temporary folder.
    pub async fn sqlite() -> TestStore {
        let store = SqliteStore::temporary()
            .await
            .expect("a temporary SQLite database");
        TestStore {
            store: Arc::new(store),
            _database: None,
        }
    }

    /// A store on a new scratch Postgres database, or `None` as [`ScratchDatabase::create`].
    pub async fn postgres() -> Option<TestStore> {
        let database = ScratchDatabase::create().await?;
        let store = connect_postgres(database.url()).await;
        Some(TestStore {
            store: Arc::new(store),
            _database: Some(database),
        })
    }

    /// The store, to hand to the code under test.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
}

/// A Postgres store on `url` with room for the conformance suite's concurrent cases (racing
/// claimers and schedulers each hold a connection).
pub async fn connect_postgres(url: &str) -> PostgresStore {
    PostgresStore::connect_with(PostgresConfig::new(url).with_max_connections(12))
        .await
        .expect("connect to the test database")
}

/// Run `case` on a fresh store of `backend`, skipping it when the backend cannot be reached
/// outside CI. The store's database is dropped afterwards, also when the case panics.
pub async fn run_on<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(fixture) = TestStore::open(backend).await else {
        return;
    };
    case(fixture.store()).await;
}

/// For each `case` (an `async fn(Arc<dyn Store>)` in scope), a module of that name with one
/// test per backend, `case::sqlite` and `case::postgres`, each carrying `#[$test]`:
///
/// ```text
/// testkit::backend_tests!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
///     trigger_rules, cron_runs);
/// ```
#[macro_export]
macro_rules! backend_tests {
    (#[$test:meta] $($case:ident),+ $(,)?) => {
        $(
            mod $case {
                #[$test]
                async fn sqlite() {
                    $crate::run_on($crate::Backend::Sqlite, super::$case).await;
                }

                #[$test]
                async fn postgres() {
                    $crate::run_on($crate::Backend::Postgres, super::$case).await;
                }
            }
        )+
    };
}
