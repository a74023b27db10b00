//! Throw-away databases on a Postgres server, for tests and benchmarks that need an empty
//! schema of their own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::rows::db;

/// Create an empty database `updraft_test_<unique>` on the server of `admin_url` (a role
/// allowed to create databases) and return the URL that reaches it.
pub async fn create_scratch_database(admin_url: &str) -> store::Result<String> {
    let name = unique_name();
    let mut admin = PgConnection::connect(admin_url).await.map_err(db)?;
    // The name is made here from digits and underscores only, so it needs no quoting.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .map_err(db)?;
    // A failed close leaves nothing behind that matters: the server ends the session.
    let _ = admin.close().await;
    Ok(with_database(admin_url, &name))
}

/// Drop a database made by [`create_scratch_database`], ending its open connections.
pub async fn drop_scratch_database(admin_url: &str, database_url: &str) -> store::Result<()> {
    let name = database_name(database_url)
        .filter(|name| {
            name.starts_with("updraft_test_")
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .ok_or_else(|| {
            store::StoreError::NotFound(format!("scratch database in {database_url}"))
        })?;
    let mut admin = PgConnection::connect(admin_url).await.map_err(db)?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .map_err(db)?;
    let _ = admin.close().await;
    Ok(())
}

fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "updraft_test_{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Where the database name sits in a URL: (start of the path, end of the path).
fn path_span(url: &str) -> (usize, usize) {
    let end = url.find('?').unwrap_or(url.len());
    let authority = url.find("://").map_or(0, |i| i + 3);
    let start = url[authority..end]
        .find('/')
        .map_or(end, |slash| authority + slash);
    (start, end)
}

/// The same server URL with another database name, keeping any `?options`.
pub fn with_database(url: &str, database: &str) -> String {
    let (start, end) = path_span(url);
    format!("{}/{database}{}", &url[..start], &url[end..])
}

fn database_name(url: &str) -> Option<&str> {
    let (start, end) = path_span(url);
    url.get(start + 1..end).filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_replace_the_path() {
        let cases = [
            ("postgres://u@h:5432/postgres", "postgres://u@h:5432/x"),
            (
                "postgres://u@h/postgres?sslmode=disable",
                "postgres://u@h/x?sslmode=disable",
            ),
            ("postgres://h", "postgres://h/x"),
            (
                "postgres://h?application_name=a",
                "postgres://h/x?application_name=a",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(with_database(url, "x"), expected, "{url}");
            assert_eq!(database_name(expected), Some("x"), "{expected}");
        }
        assert_eq!(database_name("postgres://h"), None);
    }
}
