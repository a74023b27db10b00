//! Scratch Postgres databases for tests: made on the server of `UPDRAFT_TEST_POSTGRES_URL`,
//! and dropped when their guard goes, even when the test panics.

use std::any::Any;
use std::future::Future;
use std::time::Duration;

use crate::ci;

/// The server tests use when `UPDRAFT_TEST_POSTGRES_URL` is unset: local, trust auth.
pub const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long creating a database may take before the server counts as unreachable.
const CREATE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a guard waits for its database to be dropped; past it the database is left
/// behind (and said so) rather than hanging the test.
const DROP_TIMEOUT: Duration = Duration::from_secs(30);

/// The server tests make their scratch databases on: a role allowed to create databases.
pub fn server_url() -> String {
    std::env::var("UPDRAFT_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_SERVER_URL.to_string())
}

/// An empty database of its own for one test, dropped (with its open connections ended) when
/// this guard is dropped, be it at the end of the test or while a panic unwinds.
#[derive(Debug)]
pub struct ScratchDatabase {
    /// The server's maintenance URL, which the drop connects to.
    server: String,
    /// The URL that reaches this database.
    url: String,
}

impl ScratchDatabase {
    /// A new database, or `None` when the server cannot be reached and this is not CI (see
    /// [`ci::unavailable`]).
    pub async fn create() -> Option<ScratchDatabase> {
        let server = server_url();
        let created = tokio::time::timeout(
            CREATE_TIMEOUT,
            store_postgres::create_scratch_database(&server),
        )
        .await;
        match created {
            Ok(Ok(url)) => Some(ScratchDatabase { server, url }),
            Ok(Err(err)) => ci::unavailable(&format!("Postgres at {server}"), err),
            Err(_) => ci::unavailable(&format!("Postgres at {server}"), "timed out"),
        }
    }

    /// [`ScratchDatabase::create`] for a test without a runtime of its own.
    pub fn create_blocking() -> Option<ScratchDatabase> {
        match on_own_thread(ScratchDatabase::create) {
            Ok(database) => database,
            // A CI failure (or any other) is the test's own: pass it on.
            Err(OwnThreadFailure::Panic(panic)) => std::panic::resume_unwind(panic),
            Err(OwnThreadFailure::Start(err)) => {
                panic!("no thread to create a test database on: {err}")
            }
        }
    }

    /// The URL that reaches this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The maintenance URL of the server it lives on.
    pub fn server_url(&self) -> &str {
        &self.server
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        // The test's own runtime may be the one unwinding, or be blocked on this very drop, so
        // the drop runs on a thread and runtime of its own. Nothing here may panic: a panic
        // while unwinding would abort the whole test binary.
        let (server, url) = (self.server.clone(), self.url.clone());
        let dropped = on_own_thread(move || async move {
            tokio::time::timeout(
                DROP_TIMEOUT,
                store_postgres::drop_scratch_database(&server, &url),
            )
            .await
        });
        let why = match dropped {
            Ok(Ok(Ok(()))) => return,
            Ok(Ok(Err(err))) => err.to_string(),
            Ok(Err(_)) => format!("timed out after {DROP_TIMEOUT:?}"),
            Err(OwnThreadFailure::Start(err)) => format!("no thread to drop it on: {err}"),
            Err(OwnThreadFailure::Panic(_)) => "the drop panicked".to_string(),
        };
        eprintln!("could not drop test database {}: {why}", self.url);
    }
}

/// A server Postgres tests can use, for tests that make their databases through something
/// else (`dagctl bench` makes its own): proven by making and dropping a scratch database.
pub fn reachable_server_blocking() -> Option<String> {
    ScratchDatabase::create_blocking().map(|probe| probe.server_url().to_string())
}

/// Why work handed to a thread of its own did not finish.
enum OwnThreadFailure {
    /// The thread or its runtime could not be started.
    Start(std::io::Error),
    /// The work panicked; the payload, to pass on.
    Panic(Box<dyn Any + Send>),
}

/// Run the future `make` returns to completion on a new thread with a small runtime of its
/// own, and wait for it.
fn on_own_thread<Fut, T>(make: impl FnOnce() -> Fut + Send + 'static) -> Result<T, OwnThreadFailure>
where
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let thread = std::thread::Builder::new()
        .name("scratch-database".to_string())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(runtime.block_on(make()))
        })
        .map_err(OwnThreadFailure::Start)?;
    match thread.join() {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(OwnThreadFailure::Start(err)),
        Err(panic) => Err(OwnThreadFailure::Panic(panic)),
    }
}
