//! The Postgres backend of the `Store` trait: many schedulers and workers on one database.
//!
//! Why it is shaped so: Postgres is the coordination point between processes. Claims take rows
//! with `FOR UPDATE SKIP LOCKED`, so workers never wait on each other nor take the same task
//! instance; `schedule_run` locks its run row (blocking), so two schedulers decide one after
//! the other on what the previous one wrote. Every change worth waking for is announced with
//! `pg_notify` inside its transaction (Postgres delivers it at commit); a listener task turns
//! other processes' notifications into [`StoreEvent`]s, while this process's own events are
//! sent straight after commit and skipped when they come back.
//!
//! The SQL of each operation lives in `queries/<operation>.sql`, named like the SQLite
//! backend's files so the two can be diffed side by side.

mod events;
mod operations;
mod rows;
mod scratch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dag::Dag;
use sqlx::postgres::{PgPool, PgPoolOptions};
use store::{StoreError, StoreEvent};
use tokio::sync::broadcast;

use crate::events::{Listener, Origin};
use crate::rows::db;

pub use crate::scratch::{create_scratch_database, drop_scratch_database, with_database};

/// How many events a slow subscriber may fall behind before it sees `Lagged`.
const EVENT_CAPACITY: usize = 1024;

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
            acquire_timeout: Duration::from_secs(30),
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

/// A store in a Postgres database.
pub struct PostgresStore {
    pool: PgPool,
    events: broadcast::Sender<StoreEvent>,
    /// Tags this store's notifications, so the listener can skip its own.
    origin: Origin,
    /// Parsed definitions by (dag_id, version). Versions are immutable, so entries never go
    /// stale.
    dags: Mutex<HashMap<(String, String), Arc<Dag>>>,
    /// Forwards other processes' notifications; stopped when the store is dropped.
    _listener: Listener,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

impl PostgresStore {
    /// Connect with default pool settings and apply pending migrations.
    pub async fn connect(url: &str) -> store::Result<PostgresStore> {
        Self::connect_with(PostgresConfig::new(url)).await
    }

    /// Connect and apply pending migrations. Several processes may do this at once: the
    /// migrator serializes them with an advisory lock.
    pub async fn connect_with(config: PostgresConfig) -> store::Result<PostgresStore> {
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect(&config.url)
            .await
            .map_err(db)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|err| StoreError::Database(Box::new(err)))?;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let origin = Origin::new();
        let listener = Listener::start(&pool, origin.clone(), events.clone()).await?;
        Ok(PostgresStore {
            pool,
            events,
            origin,
            dags: Mutex::new(HashMap::new()),
            _listener: listener,
        })
    }

    /// Close the pool; the listener stops with the store.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
