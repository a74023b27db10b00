//! Choosing the store backend from `database.url`: the only place that knows both.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use store::Store;

/// Open (and migrate) the configured database.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    connect(url).await.with_context(|| describe(url))
}

/// Open the configured database as a server does: while it is unavailable (not up yet, or
/// restarting), wait and retry with backoff, logging once, until it answers or `shutdown`
/// completes (`Ok(None)`). Any other failure (a bad URL, a failed migration) is returned.
pub async fn open_waiting(
    url: &str,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Option<Arc<dyn Store>>> {
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(100);
    let mut waiting_since: Option<tokio::time::Instant> = None;
    loop {
        match connect(url).await {
            Ok(store) => {
                if let Some(since) = waiting_since {
                    let waited = tokio::time::Instant::now() - since;
                    tracing::info!(
                        after_seconds = format!("{:.1}", waited.as_secs_f64()),
                        "database reachable"
                    );
                }
                return Ok(Some(store));
            }
            Err(err) if err.is_unavailable() => {
                if waiting_since.is_none() {
                    tracing::warn!(error = %err, "{}: waiting for it", describe(url));
                    waiting_since = Some(tokio::time::Instant::now());
                }
            }
            Err(err) => return Err(err).with_context(|| describe(url)),
        }
        tokio::select! {
            () = &mut shutdown => return Ok(None),
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn connect(url: &str) -> store::Result<Arc<dyn Store>> {
    if url.starts_with("postgres") {
        Ok(Arc::new(store_postgres::PostgresStore::connect(url).await?))
    } else {
        Ok(Arc::new(store_sqlite::SqliteStore::connect(url).await?))
    }
}

fn describe(url: &str) -> String {
    format!("cannot open database {}", crate::settings::mask_url(url))
}

/// A throw-away SQLite database (for `dags test`, `tasks test`, benchmarks).
pub async fn temporary() -> Result<Arc<dyn Store>> {
    let store = store_sqlite::SqliteStore::temporary()
        .await
        .context("cannot create a temporary database")?;
    Ok(Arc::new(store))
}

/// The configured database if it already exists: a SQLite file that is there, or any
/// Postgres URL (`None` when it is not reachable). Local commands that only read from it,
/// such as `dags test`, must not create one as a side effect.
pub async fn open_existing(url: &str) -> Result<Option<Arc<dyn Store>>> {
    if url.starts_with("postgres") {
        return Ok(open(url).await.ok());
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains(":memory:") || !std::path::Path::new(path).exists() {
        return Ok(None);
    }
    open(url).await.map(Some)
}
