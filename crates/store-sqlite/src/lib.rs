//! The SQLite backend of the `Store` trait: one database file in WAL mode, for a single machine.
//!
//! Why it is shaped so: SQLite allows one writer at a time. Every write goes through a pool of
//! exactly one connection and starts with `BEGIN IMMEDIATE`, which takes the write lock before
//! the first read, so two writers never deadlock upgrading a read lock and nobody sees
//! `SQLITE_BUSY` under load; `busy_timeout` covers other processes on the same file. Reads use
//! a small pool of their own and, thanks to WAL, never wait for the writer.
//!
//! The SQL of each operation lives in `queries/<operation>.sql`, named like the Postgres
//! backend's files so the two can be diffed side by side.

mod operations;
mod rows;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dag::Dag;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use store::{StoreError, StoreEvent};
use tokio::sync::broadcast;

use crate::rows::db;

/// How many events a slow subscriber may fall behind before it sees `Lagged`.
const EVENT_CAPACITY: usize = 1024;

/// How long a statement waits for another process holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Readers: WAL lets them run beside the writer, so a few cover the API and the scheduler.
const READ_CONNECTIONS: u32 = 4;

/// A store in one SQLite file.
pub struct SqliteStore {
    /// Exactly one connection: SQLite has one writer, and queuing here is cheaper than
    /// retrying on `SQLITE_BUSY`.
    writer: SqlitePool,
    reader: SqlitePool,
    events: broadcast::Sender<StoreEvent>,
    /// Parsed definitions by (dag_id, version). Versions are immutable, so entries never go
    /// stale.
    dags: Mutex<HashMap<(String, String), Arc<Dag>>>,
    /// For [`SqliteStore::temporary`]: the folder holding the file, deleted on drop.
    _temp_dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

impl SqliteStore {
    /// Open (creating if needed) the database at a `sqlite:` URL or a plain file path.
    /// `sqlite::memory:` gives a [`temporary`](SqliteStore::temporary) database: a true
    /// in-memory database would be a different one on each connection of the pools.
    pub async fn connect(url_or_path: &str) -> store::Result<SqliteStore> {
        if url_or_path == "sqlite::memory:" || url_or_path == ":memory:" {
            Self::temporary().await
        } else if url_or_path.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url_or_path).map_err(db)?;
            let path = options.get_filename().to_path_buf();
            Self::open_with(options, &path, None).await
        } else {
            Self::open(url_or_path).await
        }
    }

    /// Open (creating the file and its folder if needed) the database at `path`.
    pub async fn open(path: impl AsRef<Path>) -> store::Result<SqliteStore> {
        let path = path.as_ref();
        let options = SqliteConnectOptions::new().filename(path);
        Self::open_with(options, path, None).await
    }

    /// A throw-away database in a fresh temporary folder, removed when the store is dropped.
    pub async fn temporary() -> store::Result<SqliteStore> {
        let dir = tempfile::Builder::new()
            .prefix("updraft-")
            .tempdir()
            .map_err(|err| StoreError::Database(Box::new(err)))?;
        let path: PathBuf = dir.path().join("updraft.db");
        let options = SqliteConnectOptions::new().filename(&path);
        Self::open_with(options, &path, Some(dir)).await
    }

    async fn open_with(
        options: SqliteConnectOptions,
        path: &Path,
        temp_dir: Option<tempfile::TempDir>,
    ) -> store::Result<SqliteStore> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|err| StoreError::Database(Box::new(err)))?;
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable in WAL mode except for the last commits on power loss, and
            // avoids an fsync per transaction.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // Idle connections are kept: reopening costs more than it saves.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .map_err(db)?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|err| StoreError::Database(Box::new(err)))?;
        // Readers open after the migrations, so they find the schema and WAL mode in place.
        let reader = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.read_only(true))
            .await
            .map_err(db)?;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Ok(SqliteStore {
            writer,
            reader,
            events,
            dags: Mutex::new(HashMap::new()),
            _temp_dir: temp_dir,
        })
    }

    /// A write transaction holding the database's write lock from its first statement.
    async fn write(&self) -> store::Result<Transaction<'static, Sqlite>> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)
    }

    /// Tell subscribers; called only after the change committed.
    fn emit(&self, event: StoreEvent) {
        // No subscriber is not an error: nobody is waiting.
        let _ = self.events.send(event);
    }

    /// Close both pools, checkpointing the WAL into the main file.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}
