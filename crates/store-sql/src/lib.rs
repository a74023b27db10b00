//! `SqlStore`: the one implementation of the store traits, over a small [`Dialect`] that each
//! SQL backend (`store-sqlite`, `store-postgres`) provides.
//!
//! Why it is shaped so: the two backends ran the same operations with the same guards, the
//! same events and the same record mapping, and differed only in their SQL texts, their
//! connections and locking, and how a value travels to and from a column. So the operations
//! live here once, and a backend plugs in exactly those three things:
//!
//! - **SQL texts**, named by the file name under the backend's `queries/` ([`Dialect::sql`]);
//!   both backends build with `query_table.rs` (next to this crate's `src/`), which turns
//!   their folder into a name→text table, so a new query is a new file and no Rust edit in
//!   the backend. [`QUERIES`] lists every name used here, and each backend tests that it
//!   has them all.
//! - **Connections and locking**: where a write transaction comes from and how it commits
//!   (SQLite: the one writer with `BEGIN IMMEDIATE`; Postgres: the pool, with `pg_notify`
//!   inside the transaction), where reads go, and whether the backend takes row locks
//!   ([`Dialect::ROW_LOCKS`]) or decides before locking ([`Dialect::DECIDE_BEFORE_LOCKING`]).
//! - **Type mapping**: the core passes values as the neutral [`Arg`] and reads rows through the
//!   neutral [`SqlRow`], and each dialect maps them to its column types (SQLite: integer
//!   microseconds, JSON text, lists as JSON text; Postgres: timestamptz, jsonb, arrays).
//!
//! The neutral values are chosen over code generic in `sqlx::Database`: that would need a
//! `where` clause of encode and decode bounds on every operation for every value type, while
//! here the core names no sqlx type at all and the mapping is one `match` per backend.
//!
//! `Store` is the sum of capability traits, and methods of supertraits need their trait in
//! scope on a concrete type; so `SqlStore` derefs to `dyn Store`, and a caller holding a
//! concrete store with only `Store` imported reaches every method as before the split.

mod dag_cache;
mod history;
mod listing;
mod operations;
pub mod rows;
mod transitions;

use std::future::Future;
use std::ops::DerefMut;
use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use store::{StoreError, StoreEvent};
use tokio::sync::broadcast;

use crate::dag_cache::DagCache;

pub use dag_cache::{
    MAX_TASKS as DAG_CACHE_MAX_TASKS, VERSIONS_PER_DAG as DAG_CACHE_VERSIONS_PER_DAG,
};
pub use transitions::TaskChange;

type Result<T> = store::Result<T>;

/// How many events a slow subscriber may fall behind before it sees `Lagged`.
const EVENT_CAPACITY: usize = 1024;

/// Every query the core runs on every backend, by file name (without `.sql`).
pub const QUERIES: &[&str] = &[
    "append_log",
    "claim_task_instances",
    "clean_history_candidates",
    "clean_history_count",
    "clean_history_count_jobs",
    "clean_history_delete_jobs",
    "clean_history_delete_logs",
    "clean_history_delete_runs",
    "clean_history_delete_task_instances",
    "clean_history_delete_xcoms",
    "clean_history_lock_runs",
    "clear_import_error",
    "clear_retry_xcoms",
    "clear_task_instance",
    "count_queued_by_queue",
    "count_runs_by_state",
    "count_running_runs",
    "dag_paused",
    "count_task_instances_by_state",
    "create_user",
    "deactivate_dags",
    "delete_connection",
    "delete_dag",
    "delete_dag_runs",
    "delete_dag_versions",
    "delete_pool",
    "delete_run",
    "delete_task_xcoms",
    "delete_user",
    "delete_variable",
    "expand_task_instance",
    "finish_task_instance",
    "get_connection",
    "get_dag",
    "get_dag_version",
    "get_run",
    "get_run_by_key",
    "get_task_instance",
    "get_user",
    "get_variable",
    "get_xcom",
    "heartbeat",
    "import_history_logs",
    "import_history_runs",
    "import_history_task_instances",
    "import_history_xcoms",
    "insert_dag_version",
    "insert_mapped_instances",
    "insert_run",
    "insert_task_instances",
    "last_scheduled_logical_date",
    "latest_heartbeat",
    "list_connections",
    "list_dags",
    "list_import_errors",
    "list_pools",
    "list_users",
    "list_variables",
    "list_xcoms",
    "lock_run",
    "mark_unfinished",
    "max_log_seq",
    "next_retry_at",
    "page_dag_runs",
    "page_dag_task_instances",
    "page_dags",
    "page_run_task_instances",
    "page_runs",
    "page_runs_of_dags",
    "page_task_instances",
    "queue_due_retries",
    "read_log",
    "recent_runs",
    "record_heartbeat",
    "record_import_error",
    "record_poke",
    "refresh_statistics",
    "reopen_run",
    "run_filter",
    "runs_by_keys",
    "sensor_progress",
    "set_connection",
    "set_dag_paused",
    "set_pool",
    "set_run_state",
    "set_task_instance_state",
    "set_task_pid",
    "set_variable",
    "task_instance_filter",
    "task_instances",
    "task_instances_by_keys",
    "transition_run",
    "transition_task_instance",
    "unfinished_runs",
    "unfinished_runs_of_dag",
    "upsert_dag",
    "upsert_xcom",
    "waiting_sensors",
    "zombies",
];

/// The queries a backend with [`Dialect::ROW_LOCKS`] runs in addition to [`QUERIES`].
pub const ROW_LOCK_QUERIES: &[&str] = &["lock_log", "lock_pools", "run_of_task_instance"];

/// One parameter of a query, in backend-neutral form.
#[derive(Debug, Clone)]
pub enum Arg<'a> {
    Int(i64),
    OptInt(Option<i64>),
    /// A 32-bit column (map indexes, ports).
    Int32(i32),
    OptInt32(Option<i32>),
    Text(&'a str),
    OptText(Option<&'a str>),
    Bool(bool),
    Time(DateTime<Utc>),
    OptTime(Option<DateTime<Utc>>),
    Json(&'a serde_json::Value),
    /// A list of texts to match with `IN`/`ANY`.
    Texts(Vec<&'a str>),
    /// A list of integers to match with `IN`/`ANY`.
    Ints(Vec<i64>),
    /// Many rows for one statement, given column by column, all columns of one length.
    /// SQLite binds it as one JSON array of rows; Postgres as one array per column.
    Table(Vec<Column<'a>>),
}

/// One column of an [`Arg::Table`].
#[derive(Debug, Clone)]
pub enum Column<'a> {
    Ints(Vec<i64>),
    Int32s(Vec<i32>),
    Texts(Vec<&'a str>),
    Times(Vec<DateTime<Utc>>),
}

/// Which column of a row to read.
#[derive(Debug, Clone, Copy)]
pub enum Col {
    /// The column of this name.
    Named(&'static str),
    /// The first column: the value of a one-column query.
    First,
}

impl From<&'static str> for Col {
    fn from(name: &'static str) -> Col {
        Col::Named(name)
    }
}

/// A row read back from a backend, in backend-neutral values.
pub trait SqlRow: Send + Sync {
    fn int(&self, col: impl Into<Col>) -> Result<i64>;
    fn opt_int(&self, col: impl Into<Col>) -> Result<Option<i64>>;
    fn int32(&self, col: impl Into<Col>) -> Result<i32>;
    fn opt_int32(&self, col: impl Into<Col>) -> Result<Option<i32>>;
    fn text(&self, col: impl Into<Col>) -> Result<String>;
    fn opt_text(&self, col: impl Into<Col>) -> Result<Option<String>>;
    fn boolean(&self, col: impl Into<Col>) -> Result<bool>;
    fn time(&self, col: impl Into<Col>) -> Result<DateTime<Utc>>;
    fn opt_time(&self, col: impl Into<Col>) -> Result<Option<DateTime<Utc>>>;
    fn json(&self, col: impl Into<Col>) -> Result<serde_json::Value>;
}

/// What a SQL backend provides: its SQL texts, its connections and locking, and its type
/// mapping. Everything else is [`SqlStore`]'s.
pub trait Dialect: Send + Sync + Sized + 'static {
    /// The backend's connection type; transactions and read connections deref to it.
    type Conn: Send;
    /// A write transaction, ended by [`Dialect::commit`] (dropped: rolled back).
    type Tx: DerefMut<Target = Self::Conn> + Send;
    /// A pooled connection for reads outside any write transaction.
    type Read: DerefMut<Target = Self::Conn> + Send;
    type Row: SqlRow;

    /// The backend's name (`sqlite`, `postgres`), for logs and benchmarks.
    const NAME: &'static str;

    /// Whether writers coordinate with row locks (the queries in [`ROW_LOCK_QUERIES`]). A
    /// backend without them serializes every write transaction instead.
    const ROW_LOCKS: bool;

    /// Whether `schedule_run` first decides on a read connection and takes the write
    /// transaction only when the decision changes something: for a backend whose one write
    /// lock every writer waits on.
    const DECIDE_BEFORE_LOCKING: bool;

    /// Connect to the database at `url` and apply pending migrations; `events` is the store's
    /// channel, for a backend that hears other processes' commits.
    fn connect(
        url: &str,
        events: &broadcast::Sender<StoreEvent>,
    ) -> impl Future<Output = Result<Self>> + Send;

    /// Close the connections.
    fn close(&self) -> impl Future<Output = ()> + Send;

    /// The SQL text of the query `name` (a file name under `queries/`, without `.sql`).
    fn sql(name: &str) -> Option<&'static str>;

    /// Begin a write transaction.
    fn write(&self) -> impl Future<Output = Result<Self::Tx>> + Send;

    /// A connection for reads.
    fn read(&self) -> impl Future<Output = Result<Self::Read>> + Send;

    /// Commit `tx`, announcing `events` to other processes first where the backend does so.
    /// The store sends them to this process's subscribers after this returns.
    fn commit(
        &self,
        tx: Self::Tx,
        events: &[StoreEvent],
    ) -> impl Future<Output = Result<()>> + Send;

    /// Run a statement; how many rows it changed.
    fn execute(
        conn: &mut Self::Conn,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Run a query; every row.
    fn fetch_all(
        conn: &mut Self::Conn,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Vec<Self::Row>>> + Send;

    /// Run a query; its first row, if any.
    fn fetch_optional(
        conn: &mut Self::Conn,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Option<Self::Row>>> + Send;

    /// The task instances of one run for a snapshot. A backend may read them in a packed
    /// form of its own (SQLite reads them as one JSON value); by default, `task_instances`.
    fn snapshot_task_instances(
        conn: &mut Self::Conn,
        run: i64,
    ) -> impl Future<Output = Result<Vec<store::TaskInstanceRecord>>> + Send {
        async move {
            let sql = query::<Self>("task_instances")?;
            Self::fetch_all(conn, sql, &[Arg::Int(run)])
                .await?
                .iter()
                .map(rows::task_instance)
                .collect()
        }
    }
}

/// A SQL backend that opens a database file (or makes a throw-away one).
pub trait FileDialect: Dialect {
    /// Open (creating the file and its folder if needed) the database at `path`.
    fn open(path: &Path) -> impl Future<Output = Result<Self>> + Send;
    /// A throw-away database, removed when the dialect is dropped.
    fn temporary() -> impl Future<Output = Result<Self>> + Send;
}

/// A SQL backend with connection settings beyond the URL.
pub trait ConfiguredDialect: Dialect {
    type Config: Send;
    /// Connect with `config` and apply pending migrations.
    fn connect_with(
        config: Self::Config,
        events: &broadcast::Sender<StoreEvent>,
    ) -> impl Future<Output = Result<Self>> + Send;
}

/// Named statements sent by every store of this process, for benchmarks (statements per
/// task); transaction control (`BEGIN`, `COMMIT`) is not counted.
static STATEMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Count a statement a dialect sends itself (Postgres's notifications).
pub fn note_statement() {
    STATEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// How many named statements the stores of this process have sent so far.
pub fn statements_sent() -> u64 {
    STATEMENTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Run the statement `name` on `conn`; how many rows it changed.
pub(crate) async fn execute<D: Dialect>(
    conn: &mut D::Conn,
    name: &'static str,
    args: &[Arg<'_>],
) -> Result<u64> {
    STATEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    D::execute(conn, query::<D>(name)?, args).await
}

/// Run the query `name` on `conn`; every row.
pub(crate) async fn fetch_all<D: Dialect>(
    conn: &mut D::Conn,
    name: &'static str,
    args: &[Arg<'_>],
) -> Result<Vec<D::Row>> {
    STATEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    D::fetch_all(conn, query::<D>(name)?, args).await
}

/// Run the query `name` on `conn`; its first row, if any.
pub(crate) async fn fetch_optional<D: Dialect>(
    conn: &mut D::Conn,
    name: &'static str,
    args: &[Arg<'_>],
) -> Result<Option<D::Row>> {
    STATEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    D::fetch_optional(conn, query::<D>(name)?, args).await
}

pub(crate) fn to_json_text(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|err| StoreError::Corrupt(err.to_string()))
}

/// A query named by its file was not found in the backend: a build without that file.
#[derive(Debug, thiserror::Error)]
#[error("this backend has no query `{0}`")]
pub struct MissingQuery(&'static str);

/// The SQL of the query `name` in dialect `D`.
pub fn query<D: Dialect>(name: &'static str) -> Result<&'static str> {
    D::sql(name).ok_or_else(|| StoreError::Database(Box::new(MissingQuery(name))))
}

/// The store of every SQL backend: the operations of the store traits, once, over `D`.
pub struct SqlStore<D: Dialect> {
    dialect: D,
    events: broadcast::Sender<StoreEvent>,
    /// Parsed definitions by (dag_id, version), bounded (see [`dag_cache`]). Versions are
    /// immutable, so entries never go stale.
    dags: Mutex<DagCache>,
}

impl<D: Dialect> std::fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &D::NAME)
            .finish_non_exhaustive()
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Connect to the database at `url` and apply pending migrations.
    pub async fn connect(url: &str) -> Result<SqlStore<D>> {
        let events = broadcast::channel(EVENT_CAPACITY).0;
        let dialect = D::connect(url, &events).await?;
        Ok(SqlStore::new(dialect, events))
    }

    fn new(dialect: D, events: broadcast::Sender<StoreEvent>) -> SqlStore<D> {
        SqlStore {
            dialect,
            events,
            dags: Mutex::new(DagCache::default()),
        }
    }

    /// How many parsed DAG versions the store holds in its cache (for tests and benchmarks).
    pub fn cached_dag_versions(&self) -> usize {
        self.dag_cache().len()
    }

    /// Close the backend's connections.
    pub async fn close(&self) {
        self.dialect.close().await;
    }

    /// Commit `tx`, then tell this process's subscribers about `events`.
    async fn commit(&self, tx: D::Tx, events: &[StoreEvent]) -> Result<()> {
        self.dialect.commit(tx, events).await?;
        for event in events {
            // No subscriber is not an error: nobody is waiting.
            let _ = self.events.send(event.clone());
        }
        Ok(())
    }
}

impl<D: FileDialect> SqlStore<D> {
    /// Open (creating the file and its folder if needed) the database at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqlStore<D>> {
        let dialect = D::open(path.as_ref()).await?;
        Ok(SqlStore::new(dialect, broadcast::channel(EVENT_CAPACITY).0))
    }

    /// A throw-away database, removed when the store is dropped.
    pub async fn temporary() -> Result<SqlStore<D>> {
        let dialect = D::temporary().await?;
        Ok(SqlStore::new(dialect, broadcast::channel(EVENT_CAPACITY).0))
    }
}

impl<D: ConfiguredDialect> SqlStore<D> {
    /// Connect with `config` and apply pending migrations.
    pub async fn connect_with(config: D::Config) -> Result<SqlStore<D>> {
        let events = broadcast::channel(EVENT_CAPACITY).0;
        let dialect = D::connect_with(config, &events).await?;
        Ok(SqlStore::new(dialect, events))
    }
}
