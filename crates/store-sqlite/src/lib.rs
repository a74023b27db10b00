//! The SQLite backend of the store: one database file in WAL mode, for a single machine.
//!
//! Why it is shaped so: SQLite allows one writer at a time. Every write goes through a pool of
//! exactly one connection and starts with `BEGIN IMMEDIATE`, which takes the write lock before
//! the first read, so two writers never deadlock upgrading a read lock and nobody sees
//! `SQLITE_BUSY` under load; `busy_timeout` covers other processes on the same file. Reads use
//! a small pool of their own and, thanks to WAL, never wait for the writer. Because the one
//! writer serializes every write, this backend takes no row locks, and `schedule_run` decides
//! on a read connection first so that a decision that changes nothing never waits for it.
//!
//! The operations themselves are `store-sql`'s; this crate holds the connections, the SQL of
//! each operation in `queries/<operation>.sql` (named like the Postgres backend's files so the
//! two can be diffed side by side), and the type mapping in `rows.rs`.

mod rows;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Sqlite as Db, Transaction};
use store::{StoreError, StoreEvent, TaskInstanceRecord};
use store_sql::{Arg, Dialect, FileDialect, SqlStore};
use tokio::sync::broadcast;

use crate::rows::{Row, db};

include!(concat!(env!("OUT_DIR"), "/queries.rs"));

/// A store in one SQLite file.
pub type SqliteStore = SqlStore<Sqlite>;

/// How long a statement waits for another process holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Readers: WAL lets them run beside the writer, so a few cover the API and the scheduler.
const READ_CONNECTIONS: u32 = 4;

/// The SQLite dialect of [`SqlStore`]: its connections and type mapping.
pub struct Sqlite {
    /// Exactly one connection: SQLite has one writer, and queuing here is cheaper than
    /// retrying on `SQLITE_BUSY`.
    writer: SqlitePool,
    reader: SqlitePool,
    /// For [`SqliteStore::temporary`]: the folder holding the file, deleted on drop.
    _temp_dir: Option<tempfile::TempDir>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

impl Sqlite {
    async fn open_with(
        options: SqliteConnectOptions,
        path: &Path,
        temp_dir: Option<tempfile::TempDir>,
    ) -> store::Result<Sqlite> {
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
        Ok(Sqlite {
            writer,
            reader,
            _temp_dir: temp_dir,
        })
    }
}

impl Dialect for Sqlite {
    type Conn = SqliteConnection;
    type Tx = Transaction<'static, Db>;
    type Read = PoolConnection<Db>;
    type Row = Row;

    const NAME: &'static str = "sqlite";
    const ROW_LOCKS: bool = false;
    const DECIDE_BEFORE_LOCKING: bool = true;

    /// A `sqlite:` URL or a plain file path. `sqlite::memory:` gives a
    /// [`temporary`](SqliteStore::temporary) database: a true in-memory database would be a
    /// different one on each connection of the pools.
    async fn connect(
        url_or_path: &str,
        _events: &broadcast::Sender<StoreEvent>,
    ) -> store::Result<Sqlite> {
        if url_or_path == "sqlite::memory:" || url_or_path == ":memory:" {
            Self::temporary().await
        } else if url_or_path.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url_or_path).map_err(db)?;
            let path = options.get_filename().to_path_buf();
            Self::open_with(options, &path, None).await
        } else {
            Self::open(Path::new(url_or_path)).await
        }
    }

    /// Close both pools, checkpointing the WAL into the main file.
    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    fn sql(name: &str) -> Option<&'static str> {
        query_sql(name)
    }

    /// A write transaction holding the database's write lock from its first statement.
    async fn write(&self) -> store::Result<Self::Tx> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)
    }

    async fn read(&self) -> store::Result<Self::Read> {
        self.reader.acquire().await.map_err(db)
    }

    async fn commit(&self, tx: Self::Tx, _events: &[StoreEvent]) -> store::Result<()> {
        tx.commit().await.map_err(db)
    }

    async fn execute(
        conn: &mut SqliteConnection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> store::Result<u64> {
        let done = rows::bind(sql, args)?.execute(conn).await.map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn fetch_all(
        conn: &mut SqliteConnection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> store::Result<Vec<Row>> {
        let found = rows::bind(sql, args)?.fetch_all(conn).await.map_err(db)?;
        Ok(found.into_iter().map(Row).collect())
    }

    async fn fetch_optional(
        conn: &mut SqliteConnection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> store::Result<Option<Row>> {
        let found = rows::bind(sql, args)?
            .fetch_optional(conn)
            .await
            .map_err(db)?;
        Ok(found.map(Row))
    }

    async fn snapshot_task_instances(
        conn: &mut SqliteConnection,
        run: i64,
    ) -> store::Result<Vec<TaskInstanceRecord>> {
        let sql = store_sql::query::<Sqlite>("task_instances_packed")?;
        let packed: String = sqlx::query_scalar(sql)
            .bind(run)
            .fetch_one(conn)
            .await
            .map_err(db)?;
        rows::packed_task_instances(&packed)
    }
}

impl FileDialect for Sqlite {
    async fn open(path: &Path) -> store::Result<Sqlite> {
        let options = SqliteConnectOptions::new().filename(path);
        Self::open_with(options, path, None).await
    }

    async fn temporary() -> store::Result<Sqlite> {
        let dir = tempfile::Builder::new()
            .prefix("updraft-")
            .tempdir()
            .map_err(|err| StoreError::Database(Box::new(err)))?;
        let path: PathBuf = dir.path().join("updraft.db");
        let options = SqliteConnectOptions::new().filename(&path);
        Self::open_with(options, &path, Some(dir)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every query the core runs is a file in `queries/`.
    #[test]
    fn has_every_query_the_core_runs() {
        let missing: Vec<&str> = store_sql::QUERIES
            .iter()
            .copied()
            .filter(|name| Sqlite::sql(name).is_none())
            .collect();
        assert_eq!(missing, Vec::<&str>::new());
        assert!(Sqlite::sql("task_instances_packed").is_some());
    }

    /// The DAG-definition cache keeps a bounded number of versions of a DAG rewritten over
    /// and over, and a version it dropped is read again from the database as it was stored.
    #[tokio::test]
    async fn dag_cache_is_bounded_and_rereads_evicted_versions() {
        use store::Catalog;
        use testkit::conformance::{at, chain_dag};

        let store = SqliteStore::temporary().await.expect("temporary store");
        let kept = store_sql::DAG_CACHE_VERSIONS_PER_DAG;
        for v in 0..kept + 5 {
            let dag = chain_dag("rewritten", &[&format!("t{v}")]);
            let version = format!("v{v}");
            store.sync_dag(&dag, &version, at(100)).await.expect("sync");
            let read = store
                .get_dag_version("rewritten", &version)
                .await
                .expect("read")
                .expect("stored");
            assert_eq!(read.tasks[0].task_id, format!("t{v}"));
            assert!(store.cached_dag_versions() <= kept);
        }
        assert_eq!(store.cached_dag_versions(), kept);
        let first = store
            .get_dag_version("rewritten", "v0")
            .await
            .expect("read")
            .expect("v0 is still stored");
        assert_eq!(first.tasks[0].task_id, "t0");
        assert_eq!(first.dag_id, "rewritten");
        assert_eq!(store.cached_dag_versions(), kept);
    }

    /// Callers asking at once for a version not yet cached share one read: they get the same
    /// parsed definition, not a copy each.
    #[tokio::test]
    async fn dag_cache_reads_a_version_once_for_concurrent_callers() {
        use store::Catalog;
        use testkit::conformance::{at, chain_dag};

        let store = SqliteStore::temporary().await.expect("temporary store");
        let dag = chain_dag("shared", &["a", "b"]);
        store.sync_dag(&dag, "v1", at(1)).await.expect("sync");
        let (one, two, three) = tokio::join!(
            store.get_dag_version("shared", "v1"),
            store.get_dag_version("shared", "v1"),
            store.get_dag_version("shared", "v1"),
        );
        let one = one.expect("read").expect("stored");
        for other in [two, three] {
            let other = other.expect("read").expect("stored");
            assert!(std::sync::Arc::ptr_eq(&one, &other), "read twice");
        }
        assert_eq!(store.cached_dag_versions(), 1);
    }
}
