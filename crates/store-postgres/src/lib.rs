//! The Postgres backend of the store: many schedulers and workers on one database.
//!
//! Why it is shaped so: Postgres is the coordination point between processes. Claims take rows
//! with `FOR UPDATE SKIP LOCKED`, so workers never wait on each other nor take the same task
//! instance; `schedule_run` locks its run row (blocking), so two schedulers decide one after
//! the other on what the previous one wrote. Every change worth waking for is announced with
//! `pg_notify` inside its transaction (Postgres delivers it at commit); a listener task turns
//! other processes' notifications into [`StoreEvent`]s, while this process's own events are
//! sent straight after commit and skipped when they come back.
//!
//! The operations themselves are `store-sql`'s; this crate holds the pool and the locks, the
//! SQL of each operation in `queries/<operation>.sql` (named like the SQLite backend's files
//! so the two can be diffed side by side), the listener, and the type mapping in `rows.rs`.

mod events;
mod rows;
mod scratch;

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres as Db, Transaction};
use store::{StoreError, StoreEvent};
use store_sql::{Arg, ConfiguredDialect, Dialect, SqlStore};
use tokio::sync::broadcast;

use crate::events::{Listener, Origin};
use crate::rows::{Row, db};

pub use crate::scratch::{create_scratch_database, drop_scratch_database, with_database};

include!(concat!(env!("OUT_DIR"), "/queries.rs"));

/// A store in a Postgres database.
pub type PostgresStore = SqlStore<Postgres>;

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    url: String,
    max_connections: u32,
    acquire_timeout: Duration,
}

impl PostgresConfig {
    pub fn new(url: impl Into<String>) -> PostgresConfig {
        PostgresConfig {
            url: url.into(),
            max_connections: 10,
            // Past this an operation fails as unavailable rather than hanging: during an
            // outage a server answers 503 and a scheduler backs off, within seconds.
            acquire_timeout: Duration::from_secs(5),
        }
    }

    /// Connections in the pool, the event listener's included.
    pub fn with_max_connections(mut self, max_connections: u32) -> PostgresConfig {
        // The listener keeps one connection for itself; the operations need at least one more.
        self.max_connections = max_connections.max(2);
        self
    }

    /// How long an operation waits for a free connection (and the first connect may take).
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> PostgresConfig {
        self.acquire_timeout = timeout;
        self
    }
}

/// The Postgres dialect of [`SqlStore`]: its pool, notifications and type mapping.
pub struct Postgres {
    pool: PgPool,
    /// Tags this store's notifications, so the listener can skip its own.
    origin: Origin,
    /// Forwards other processes' notifications; stopped when the store is dropped.
    _listener: Listener,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

impl Dialect for Postgres {
    type Conn = PgConnection;
    type Tx = Transaction<'static, Db>;
    type Read = PoolConnection<Db>;
    type Row = Row;

    const NAME: &'static str = "postgres";
    const ROW_LOCKS: bool = true;
    const DECIDE_BEFORE_LOCKING: bool = false;

    /// Connect with default pool settings and apply pending migrations.
    async fn connect(url: &str, events: &broadcast::Sender<StoreEvent>) -> store::Result<Postgres> {
        Self::connect_with(PostgresConfig::new(url), events).await
    }

    /// Close the pool; the listener stops with the store.
    async fn close(&self) {
        self.pool.close().await;
    }

    fn sql(name: &str) -> Option<&'static str> {
        query_sql(name)
    }

    async fn write(&self) -> store::Result<Self::Tx> {
        self.pool.begin().await.map_err(db)
    }

    async fn read(&self) -> store::Result<Self::Read> {
        self.pool.acquire().await.map_err(db)
    }

    /// Announce `events` to other processes and commit. The notifications are part of the
    /// transaction: Postgres delivers them only at commit, and never if it rolls back.
    async fn commit(&self, mut tx: Self::Tx, events: &[StoreEvent]) -> store::Result<()> {
        if !events.is_empty() {
            let notify = store_sql::query::<Postgres>("notify")?;
            for event in events {
                let Some(payload) = self.origin.payload(event) else {
                    continue;
                };
                store_sql::note_statement();
                Self::execute(
                    &mut tx,
                    notify,
                    &[Arg::Text(crate::events::CHANNEL), Arg::Text(&payload)],
                )
                .await?;
            }
        }
        tx.commit().await.map_err(db)
    }

    async fn execute(
        conn: &mut PgConnection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> store::Result<u64> {
        let done = rows::bind(sql, args).execute(conn).await.map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn fetch_all(
        conn: &mut PgConnection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> store::Result<Vec<Row>> {
        let found = rows::bind(sql, args).fetch_all(conn).await.map_err(db)?;
        Ok(found.into_iter().map(Row).collect())
    }

    async fn fetch_optional(
        conn: &mut PgConnection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> store::Result<Option<Row>> {
        let found = rows::bind(sql, args)
            .fetch_optional(conn)
            .await
            .map_err(db)?;
        Ok(found.map(Row))
    }
}

impl ConfiguredDialect for Postgres {
    type Config = PostgresConfig;

    /// Connect and apply pending migrations. Several processes may do this at once: the
    /// migrator serializes them with an advisory lock.
    async fn connect_with(
        config: PostgresConfig,
        events: &broadcast::Sender<StoreEvent>,
    ) -> store::Result<Postgres> {
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect(&config.url)
            .await
            .map_err(db)?;
        MIGRATOR.run(&pool).await.map_err(|err| match err {
            sqlx::migrate::MigrateError::Execute(err) => db(err),
            other => StoreError::Database(Box::new(other)),
        })?;
        let origin = Origin::new();
        let listener = Listener::start(&pool, origin.clone(), events.clone()).await?;
        Ok(Postgres {
            pool,
            origin,
            _listener: listener,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every query the core runs, the row locks' included, is a file in `queries/`.
    #[test]
    fn has_every_query_the_core_runs() {
        let missing: Vec<&str> = store_sql::QUERIES
            .iter()
            .chain(store_sql::ROW_LOCK_QUERIES)
            .copied()
            .filter(|name| Postgres::sql(name).is_none())
            .collect();
        assert_eq!(missing, Vec::<&str>::new());
        assert!(Postgres::sql("notify").is_some());
    }
}
