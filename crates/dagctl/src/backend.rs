//! Choosing the store backend from `database.url`: the only place that knows both.

use std::sync::Arc;

use anyhow::{Context, Result};
use store::Store;

/// Open (and migrate) the configured database.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres") {
        let store = store_postgres::PostgresStore::connect(url)
            .await
            .with_context(|| format!("cannot open database {}", crate::settings::mask_url(url)))?;
        Ok(Arc::new(store))
    } else {
        let store = store_sqlite::SqliteStore::connect(url)
            .await
            .with_context(|| format!("cannot open database {url}"))?;
        Ok(Arc::new(store))
    }
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
