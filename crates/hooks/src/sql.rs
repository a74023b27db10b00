//! SQL statements on a user's Postgres or SQLite connection, with bound parameters, returning
//! the last statement's rows as JSON objects.
//!
//! Statements are split on `;` outside quotes, comments and Postgres dollar-quoted bodies, and
//! run in one transaction: a failing statement undoes the ones before it. Parameters are bound,
//! never pasted into the text. A list binds positional placeholders (`%s`, `?`, `?N`, `$N`),
//! each statement binding from the list's start as Airflow does; a mapping binds named ones
//! (`:name`, `%(name)s`). Placeholders are only looked for when parameters are given, so a
//! statement without them runs exactly as written.
//!
//! Connections: `conn_type` `postgres`/`postgresql` (host, port, login, password, schema as
//! the database) or `sqlite`, whose database file is `host` (Airflow's convention; a relative
//! path is relative to the worker's working directory) or, from a URI such as
//! `sqlite:////data/app.db`, the absolute path in `schema`.
//!
//! Column types become JSON: integers, floats, text, bool, null, JSON/JSONB as themselves,
//! timestamps as RFC 3339 text, dates and times as ISO text. Other Postgres types (numeric,
//! arrays, …) are refused with an error naming the column and suggesting a cast.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow, Postgres};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{
    AssertSqlSafe, Column, Connection as _, Either, Executor, Row, SqlSafeStr, Statement, TypeInfo,
    ValueRef,
};
use store::secrets::Connection;

/// Rows kept of the last statement.
pub const MAX_ROWS: usize = 1000;

/// Why statements did not run.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The connection's type is not one this crate speaks.
    #[error(
        "connection '{conn_id}' has type '{conn_type}'; sql runs on postgres or sqlite connections"
    )]
    UnsupportedConnection { conn_id: String, conn_type: String },
    /// The connection lacks something it needs (a database file, a host).
    #[error("connection '{conn_id}': {message}")]
    BadConnection { conn_id: String, message: String },
    /// The database could not be reached.
    #[error("could not connect to {target}: {message}")]
    Connect { target: String, message: String },
    /// A parameter is missing or cannot be bound to its placeholder's type.
    #[error("statement {statement}: {message}")]
    Parameter { statement: usize, message: String },
    /// The database refused a statement; `message` is the database's own.
    #[error("statement {statement} failed: {message}\n  in: {sql}")]
    Statement {
        statement: usize,
        sql: String,
        message: String,
    },
    /// A result column whose type has no JSON mapping.
    #[error(
        "column '{column}' has type {type_name}, which has no JSON mapping; cast it in the query (e.g. to text)"
    )]
    Column { column: String, type_name: String },
    /// No statement in the text.
    #[error("no SQL statement to run")]
    Empty,
    /// A spec's `parameters` is neither a list nor a mapping.
    #[error("parameters must be a list or a mapping, got {0}")]
    BadParameters(Value),
    /// The whole run took longer than allowed.
    #[error("statements did not finish within {seconds}s")]
    Timeout { seconds: f64 },
}

/// Parameters of a run.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Parameters {
    #[default]
    None,
    List(Vec<Value>),
    Map(Map<String, Value>),
}

impl Parameters {
    /// From a spec's `parameters`: absent/null, a list, or a mapping.
    pub fn from_spec(value: Option<&Value>) -> Result<Parameters, SqlError> {
        match value {
            None | Some(Value::Null) => Ok(Parameters::None),
            Some(Value::Array(items)) => Ok(Parameters::List(items.clone())),
            Some(Value::Object(map)) => Ok(Parameters::Map(map.clone())),
            Some(other) => Err(SqlError::BadParameters(other.clone())),
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlOutput {
    /// Rows of the last statement (at most [`MAX_ROWS`]), each a JSON object.
    pub rows: Vec<Value>,
    /// Whether the last statement had more rows than were kept.
    pub truncated: bool,
    /// Statements run.
    pub statements: usize,
}

/// The database a connection points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Postgres,
    Sqlite,
}

/// Run `sql` on `connection` with `parameters`, all within `timeout`.
pub async fn run(
    connection: &Connection,
    sql: &str,
    parameters: &Parameters,
    timeout: Duration,
) -> Result<SqlOutput, SqlError> {
    match tokio::time::timeout(timeout, run_unbounded(connection, sql, parameters)).await {
        Ok(result) => result,
        Err(_) => Err(SqlError::Timeout {
            seconds: timeout.as_secs_f64(),
        }),
    }
}

async fn run_unbounded(
    connection: &Connection,
    sql: &str,
    parameters: &Parameters,
) -> Result<SqlOutput, SqlError> {
    let dialect = match connection.conn_type.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => Dialect::Postgres,
        "sqlite" => Dialect::Sqlite,
        _ => {
            return Err(SqlError::UnsupportedConnection {
                conn_id: connection.conn_id.clone(),
                conn_type: connection.conn_type.clone(),
            });
        }
    };
    let statements = split(sql, dialect, parameters)?;
    if statements.is_empty() {
        return Err(SqlError::Empty);
    }
    match dialect {
        Dialect::Postgres => run_postgres(connection, &statements).await,
        Dialect::Sqlite => run_sqlite(connection, &statements).await,
    }
}

/// The SQLite database file of a connection (see the module docs).
pub fn sqlite_path(connection: &Connection) -> Result<String, SqlError> {
    let host = connection.host.as_deref().map(str::trim).unwrap_or("");
    let schema = connection.schema.as_deref().map(str::trim).unwrap_or("");
    let path = match (host.is_empty(), schema.is_empty()) {
        (false, true) => host.to_string(),
        (false, false) => format!("{host}/{schema}"),
        // A URI's path lost its leading slash on the way into `schema`.
        (true, false) if schema.starts_with('/') => schema.to_string(),
        (true, false) => format!("/{schema}"),
        (true, true) => {
            return Err(SqlError::BadConnection {
                conn_id: connection.conn_id.clone(),
                message: "a sqlite connection needs the database file in host (or a URI like sqlite:////path/to/file.db)".into(),
            });
        }
    };
    Ok(path)
}

async fn run_postgres(
    connection: &Connection,
    statements: &[Prepared],
) -> Result<SqlOutput, SqlError> {
    let host = connection
        .host
        .clone()
        .unwrap_or_else(|| "localhost".into());
    let port = connection
        .port
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(5432);
    let mut options = PgConnectOptions::new_without_pgpass()
        .host(&host)
        .port(port)
        .application_name("updraft");
    if let Some(login) = &connection.login {
        options = options.username(login);
    }
    if let Some(password) = &connection.password {
        options = options.password(password);
    }
    if let Some(database) = connection.schema.as_deref().filter(|s| !s.is_empty()) {
        options = options.database(database);
    }
    let target = format!(
        "postgres {host}:{port}/{}",
        connection.schema.as_deref().unwrap_or("")
    );
    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(|e| SqlError::Connect {
            target,
            message: database_message(&e),
        })?;
    let mut tx = conn.begin().await.map_err(|e| SqlError::Statement {
        statement: 0,
        sql: "BEGIN".into(),
        message: database_message(&e),
    })?;
    let mut output = SqlOutput {
        rows: Vec::new(),
        truncated: false,
        statements: statements.len(),
    };
    for (index, statement) in statements.iter().enumerate() {
        let number = index + 1;
        let failed = |e: sqlx::Error| SqlError::Statement {
            statement: number,
            sql: shorten(&statement.sql),
            message: database_message(&e),
        };
        let prepared = (&mut *tx)
            .prepare(AssertSqlSafe(statement.sql.clone()).into_sql_str())
            .await
            .map_err(failed)?;
        let types: Vec<String> = match prepared.parameters() {
            Some(Either::Left(types)) => types.iter().map(|t| t.name().to_string()).collect(),
            _ => Vec::new(),
        };
        let mut query = prepared.query();
        for (position, value) in statement.values.iter().enumerate() {
            let type_name = types.get(position).map(String::as_str).unwrap_or("TEXT");
            query =
                bind_postgres(query, value, type_name).map_err(|message| SqlError::Parameter {
                    statement: number,
                    message: format!("parameter {}: {message}", position + 1),
                })?;
        }
        if index + 1 < statements.len() {
            query.execute(&mut *tx).await.map_err(failed)?;
        } else {
            let rows: Vec<PgRow> = query.fetch_all(&mut *tx).await.map_err(failed)?;
            output.truncated = rows.len() > MAX_ROWS;
            for row in rows.iter().take(MAX_ROWS) {
                output.rows.push(postgres_row(row)?);
            }
        }
    }
    tx.commit().await.map_err(|e| SqlError::Statement {
        statement: statements.len(),
        sql: "COMMIT".into(),
        message: database_message(&e),
    })?;
    Ok(output)
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// Bind one JSON value as the type Postgres inferred for its placeholder.
fn bind_postgres<'q>(
    query: PgQuery<'q>,
    value: &Value,
    type_name: &str,
) -> Result<PgQuery<'q>, String> {
    let number = |v: &Value| -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    let integer = |v: &Value| -> Option<i64> {
        match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    };
    let mismatch = || format!("{value} cannot be bound as {type_name}");
    let null = value.is_null();
    Ok(match type_name {
        "INT2" => query.bind(if null {
            None
        } else {
            Some(i16::try_from(integer(value).ok_or_else(mismatch)?).map_err(|_| mismatch())?)
        }),
        "INT4" => query.bind(if null {
            None
        } else {
            Some(i32::try_from(integer(value).ok_or_else(mismatch)?).map_err(|_| mismatch())?)
        }),
        "INT8" => query.bind(if null {
            None
        } else {
            Some(integer(value).ok_or_else(mismatch)?)
        }),
        "FLOAT4" => query.bind(if null {
            None
        } else {
            Some(number(value).ok_or_else(mismatch)? as f32)
        }),
        "FLOAT8" => query.bind(if null {
            None
        } else {
            Some(number(value).ok_or_else(mismatch)?)
        }),
        "BOOL" => query.bind(match value {
            Value::Null => None,
            Value::Bool(b) => Some(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => return Err(mismatch()),
        }),
        "JSON" | "JSONB" => query.bind(if null {
            None
        } else {
            Some(sqlx::types::Json(value.clone()))
        }),
        "TIMESTAMPTZ" => query.bind(match value {
            Value::Null => None,
            Value::String(s) => Some(
                DateTime::parse_from_rfc3339(s.trim())
                    .map_err(|e| format!("'{s}' is not an RFC 3339 timestamp: {e}"))?
                    .with_timezone(&Utc),
            ),
            _ => return Err(mismatch()),
        }),
        "TIMESTAMP" => query.bind(match value {
            Value::Null => None,
            Value::String(s) => Some(
                NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%.f")
                    .or_else(|_| NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S%.f"))
                    .map_err(|e| format!("'{s}' is not a timestamp: {e}"))?,
            ),
            _ => return Err(mismatch()),
        }),
        "DATE" => query.bind(match value {
            Value::Null => None,
            Value::String(s) => Some(
                NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                    .map_err(|e| format!("'{s}' is not a date: {e}"))?,
            ),
            _ => return Err(mismatch()),
        }),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CITEXT" | "UNKNOWN" => query.bind(match value {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }),
        other => {
            return Err(format!(
                "placeholders of type {other} are not supported; cast the placeholder in the query (e.g. $1::text)"
            ));
        }
    })
}

fn postgres_row(row: &PgRow) -> Result<Value, SqlError> {
    let mut object = Map::new();
    for column in row.columns() {
        let i = column.ordinal();
        let name = column.name().to_string();
        let type_name = column.type_info().name().to_string();
        let unsupported = || SqlError::Column {
            column: name.clone(),
            type_name: type_name.clone(),
        };
        let decode_failed = |e: sqlx::Error| SqlError::Column {
            column: name.clone(),
            type_name: format!("{type_name} ({e})"),
        };
        let value = match type_name.as_str() {
            "BOOL" => json_of(row.try_get::<Option<bool>, _>(i).map_err(decode_failed)?),
            "INT2" => json_of(row.try_get::<Option<i16>, _>(i).map_err(decode_failed)?),
            "INT4" => json_of(row.try_get::<Option<i32>, _>(i).map_err(decode_failed)?),
            "INT8" => json_of(row.try_get::<Option<i64>, _>(i).map_err(decode_failed)?),
            "FLOAT4" => json_of(row.try_get::<Option<f32>, _>(i).map_err(decode_failed)?),
            "FLOAT8" => json_of(row.try_get::<Option<f64>, _>(i).map_err(decode_failed)?),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CITEXT" | "UNKNOWN" => {
                json_of(row.try_get::<Option<String>, _>(i).map_err(decode_failed)?)
            }
            "JSON" | "JSONB" => row
                .try_get::<Option<sqlx::types::Json<Value>>, _>(i)
                .map_err(decode_failed)?
                .map_or(Value::Null, |j| j.0),
            "TIMESTAMPTZ" => json_of(
                row.try_get::<Option<DateTime<Utc>>, _>(i)
                    .map_err(decode_failed)?
                    .map(|d| d.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            ),
            "TIMESTAMP" => json_of(
                row.try_get::<Option<NaiveDateTime>, _>(i)
                    .map_err(decode_failed)?
                    .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
            ),
            "DATE" => json_of(
                row.try_get::<Option<NaiveDate>, _>(i)
                    .map_err(decode_failed)?
                    .map(|d| d.to_string()),
            ),
            "TIME" => json_of(
                row.try_get::<Option<NaiveTime>, _>(i)
                    .map_err(decode_failed)?
                    .map(|d| d.to_string()),
            ),
            "VOID" => Value::Null,
            _ => return Err(unsupported()),
        };
        object.insert(name, value);
    }
    Ok(Value::Object(object))
}

async fn run_sqlite(
    connection: &Connection,
    statements: &[Prepared],
) -> Result<SqlOutput, SqlError> {
    let path = sqlite_path(connection)?;
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(30));
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| SqlError::Connect {
            target: format!("sqlite {path}"),
            message: database_message(&e),
        })?;
    let mut tx = conn.begin().await.map_err(|e| SqlError::Statement {
        statement: 0,
        sql: "BEGIN".into(),
        message: database_message(&e),
    })?;
    let mut output = SqlOutput {
        rows: Vec::new(),
        truncated: false,
        statements: statements.len(),
    };
    for (index, statement) in statements.iter().enumerate() {
        let number = index + 1;
        let failed = |e: sqlx::Error| SqlError::Statement {
            statement: number,
            sql: shorten(&statement.sql),
            message: database_message(&e),
        };
        let mut query = sqlx::query(AssertSqlSafe(statement.sql.clone()));
        for value in &statement.values {
            query = match value {
                Value::Null => query.bind(None::<String>),
                Value::Bool(b) => query.bind(*b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => query.bind(i),
                    None => query.bind(n.as_f64()),
                },
                Value::String(s) => query.bind(s.clone()),
                other => query.bind(other.to_string()),
            };
        }
        if index + 1 < statements.len() {
            query.execute(&mut *tx).await.map_err(failed)?;
        } else {
            let rows: Vec<SqliteRow> = query.fetch_all(&mut *tx).await.map_err(failed)?;
            output.truncated = rows.len() > MAX_ROWS;
            for row in rows.iter().take(MAX_ROWS) {
                output.rows.push(sqlite_row(row)?);
            }
        }
    }
    tx.commit().await.map_err(|e| SqlError::Statement {
        statement: statements.len(),
        sql: "COMMIT".into(),
        message: database_message(&e),
    })?;
    Ok(output)
}

fn sqlite_row(row: &SqliteRow) -> Result<Value, SqlError> {
    let mut object = Map::new();
    for column in row.columns() {
        let i = column.ordinal();
        let name = column.name().to_string();
        let declared = column.type_info().name().to_ascii_uppercase();
        let failed = |e: sqlx::Error| SqlError::Column {
            column: name.clone(),
            type_name: format!("{declared} ({e})"),
        };
        let raw = row.try_get_raw(i).map_err(failed)?;
        // SQLite types values, not columns: the stored value decides.
        let storage = if raw.is_null() {
            "NULL".to_string()
        } else {
            raw.type_info().name().to_ascii_uppercase()
        };
        let value = match storage.as_str() {
            "NULL" => Value::Null,
            "INTEGER" | "INT8" | "BIGINT" if declared.contains("BOOL") => {
                Value::Bool(row.try_get::<i64, _>(i).map_err(failed)? != 0)
            }
            "INTEGER" | "INT8" | "BIGINT" | "BOOLEAN" => {
                Value::from(row.try_get::<i64, _>(i).map_err(failed)?)
            }
            "REAL" => json_of(Some(row.try_get::<f64, _>(i).map_err(failed)?)),
            "TEXT" | "DATETIME" | "DATE" | "TIME" => {
                Value::String(row.try_get::<String, _>(i).map_err(failed)?)
            }
            other => {
                return Err(SqlError::Column {
                    column: name,
                    type_name: other.to_string(),
                });
            }
        };
        object.insert(name, value);
    }
    Ok(Value::Object(object))
}

fn json_of<T: serde::Serialize>(value: Option<T>) -> Value {
    value
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or(Value::Null)
}

/// The database's own message for an error (Postgres and SQLite put it there).
fn database_message(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.message().to_string(),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !text.contains(&cause_text) {
                    text.push_str(": ");
                    text.push_str(&cause_text);
                }
                source = cause.source();
            }
            text
        }
    }
}

fn shorten(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::http::truncate(&one_line, 200)
}

/// One statement ready to run: placeholders rewritten to the dialect's numbered form, and the
/// values to bind in that order.
#[derive(Debug, Clone, PartialEq)]
struct Prepared {
    sql: String,
    values: Vec<Value>,
}

/// A placeholder found in a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Placeholder {
    /// Zero-based position in the parameter list.
    Position(usize),
    Name(String),
}

/// Split `sql` into statements and rewrite their placeholders (see the module docs).
fn split(sql: &str, dialect: Dialect, parameters: &Parameters) -> Result<Vec<Prepared>, SqlError> {
    let mut out = Vec::new();
    for (index, text) in split_statements(sql).into_iter().enumerate() {
        let (sql, placeholders) = rewrite(&text, dialect, parameters);
        let mut values = Vec::with_capacity(placeholders.len());
        for placeholder in placeholders {
            let value = match (&placeholder, parameters) {
                (Placeholder::Position(i), Parameters::List(list)) => {
                    list.get(*i).cloned().ok_or_else(|| SqlError::Parameter {
                        statement: index + 1,
                        message: format!(
                            "uses parameter {} but only {} were given",
                            i + 1,
                            list.len()
                        ),
                    })?
                }
                (Placeholder::Name(name), Parameters::Map(map)) => {
                    map.get(name).cloned().ok_or_else(|| SqlError::Parameter {
                        statement: index + 1,
                        message: format!("uses parameter '{name}', which parameters do not name"),
                    })?
                }
                _ => {
                    return Err(SqlError::Parameter {
                        statement: index + 1,
                        message: "mixes positional and named placeholders".into(),
                    });
                }
            };
            values.push(value);
        }
        out.push(Prepared { sql, values });
    }
    Ok(out)
}

/// The statements of `sql`, split on `;` outside quotes, comments and dollar quotes; empty
/// ones (only whitespace and comments) left out.
fn split_statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut start = 0;
    let mut has_code = false;
    let mut scan = Scanner::new(sql);
    while let Some((pos, token)) = scan.next_token() {
        match token {
            Token::Semicolon => {
                if has_code {
                    statements.push(sql[start..pos].trim().to_string());
                }
                start = pos + 1;
                has_code = false;
            }
            Token::Comment => {}
            Token::Code if sql[pos..].starts_with(char::is_whitespace) => {}
            _ => has_code = true,
        }
    }
    if has_code {
        statements.push(sql[start..].trim().to_string());
    }
    statements
}

/// Rewrite the placeholders of one statement to `$k` (Postgres) or `?k` (SQLite), numbered by
/// first use; returns the statement and what each number refers to.
fn rewrite(
    statement: &str,
    dialect: Dialect,
    parameters: &Parameters,
) -> (String, Vec<Placeholder>) {
    if matches!(parameters, Parameters::None) {
        return (statement.to_string(), Vec::new());
    }
    let named = matches!(parameters, Parameters::Map(_));
    let mut out = String::with_capacity(statement.len());
    let mut used: Vec<Placeholder> = Vec::new();
    let mut next_position = 0;
    let mut copied = 0;
    let mut scan = Scanner::new(statement);
    let bytes = statement.as_bytes();
    while let Some((pos, token)) = scan.next_token() {
        if token != Token::Code {
            continue;
        }
        let rest = &statement[pos..];
        let found: Option<(usize, Placeholder)> = match bytes[pos] {
            b'%' if !named && rest.starts_with("%s") => {
                next_position += 1;
                Some((2, Placeholder::Position(next_position - 1)))
            }
            b'%' if named && rest.starts_with("%(") => rest.find(")s").and_then(|end| {
                let name = &rest[2..end];
                is_name(name).then(|| (end + 2, Placeholder::Name(name.to_string())))
            }),
            b'?' if !named => {
                let digits = rest[1..].bytes().take_while(u8::is_ascii_digit).count();
                if digits > 0 {
                    rest[1..=digits]
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .map(|n| (1 + digits, Placeholder::Position(n - 1)))
                } else {
                    next_position += 1;
                    Some((1, Placeholder::Position(next_position - 1)))
                }
            }
            b'$' if !named => {
                let digits = rest[1..].bytes().take_while(u8::is_ascii_digit).count();
                (digits > 0)
                    .then(|| rest[1..=digits].parse::<usize>().ok())
                    .flatten()
                    .filter(|n| *n > 0)
                    .map(|n| (1 + digits, Placeholder::Position(n - 1)))
            }
            b':' if named => {
                let prev_colon = pos > 0 && bytes[pos - 1] == b':';
                let next_colon = rest[1..].starts_with(':');
                let len = rest[1..]
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    .count();
                let name = &rest[1..=len];
                (!prev_colon && !next_colon && is_name(name))
                    .then(|| (1 + len, Placeholder::Name(name.to_string())))
            }
            _ => None,
        };
        if let Some((len, placeholder)) = found {
            let number = match used.iter().position(|p| *p == placeholder) {
                Some(i) => i + 1,
                None => {
                    used.push(placeholder);
                    used.len()
                }
            };
            out.push_str(&statement[copied..pos]);
            out.push(if dialect == Dialect::Postgres {
                '$'
            } else {
                '?'
            });
            out.push_str(&number.to_string());
            copied = pos + len;
            scan.skip_to(copied);
        }
    }
    out.push_str(&statement[copied..]);
    (out, used)
}

fn is_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// One byte of SQL outside quotes and comments.
    Code,
    /// A whole quoted string, identifier or dollar-quoted body.
    Quoted,
    Comment,
    Semicolon,
}

/// Walks SQL text, telling code from quotes and comments.
struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Scanner { text, pos: 0 }
    }

    fn skip_to(&mut self, pos: usize) {
        self.pos = pos;
    }

    /// The next token and where it starts.
    fn next_token(&mut self) -> Option<(usize, Token)> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let &b = bytes.get(start)?;
        let rest = &self.text[start..];
        let end_of =
            |found: Option<usize>, skip: usize| found.map_or(self.text.len(), |i| start + skip + i);
        let (token, end) = match b {
            b';' => (Token::Semicolon, start + 1),
            b'\'' | b'"' | b'`' => {
                // A doubled quote inside is an escaped quote: keep scanning past it.
                let mut i = start + 1;
                loop {
                    match bytes.get(i) {
                        None => break (Token::Quoted, self.text.len()),
                        Some(&q) if q == b && bytes.get(i + 1) == Some(&b) => i += 2,
                        Some(&q) if q == b => break (Token::Quoted, i + 1),
                        Some(_) => i += 1,
                    }
                }
            }
            b'-' if rest.starts_with("--") => (Token::Comment, end_of(rest.find('\n'), 0)),
            b'/' if rest.starts_with("/*") => (Token::Comment, end_of(rest[2..].find("*/"), 4)),
            b'$' => match dollar_tag(rest) {
                Some(tag) => {
                    let body = &rest[tag.len()..];
                    (Token::Quoted, end_of(body.find(tag), tag.len() * 2))
                }
                None => (Token::Code, start + 1),
            },
            _ => (
                Token::Code,
                start + rest.chars().next().map_or(1, char::len_utf8),
            ),
        };
        self.pos = end.min(self.text.len());
        Some((start, token))
    }
}

/// `$tag$` or `$$` at the start of `text`.
fn dollar_tag(text: &str) -> Option<&str> {
    let close = text[1..].find('$')? + 1;
    let tag = &text[1..close];
    (tag.is_empty() || is_name(tag)).then(|| &text[..=close])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        let sql = "create table t (a text); -- a; comment\ninsert into t values ('x;y', \"q;\"); \
                   /* ; */ select $$;$$ as d, $f$a;b$f$;;  ";
        assert_eq!(
            split_statements(sql),
            vec![
                "create table t (a text)",
                "-- a; comment\ninsert into t values ('x;y', \"q;\")",
                "/* ; */ select $$;$$ as d, $f$a;b$f$",
            ]
        );
        assert!(split_statements(" -- only a comment\n ; ").is_empty());
    }

    #[test]
    fn placeholders_are_numbered_per_dialect() {
        let list = Parameters::List(vec![json!(1), json!("a")]);
        let (sql, used) = rewrite("select %s, ? , '?', $2", Dialect::Postgres, &list);
        assert_eq!(sql, "select $1, $2 , '?', $2");
        assert_eq!(
            used,
            vec![Placeholder::Position(0), Placeholder::Position(1)]
        );
        let map = Parameters::Map(Map::new());
        let (sql, used) = rewrite("select :a::int, %(b)s, ':c', :a", Dialect::Sqlite, &map);
        assert_eq!(sql, "select ?1::int, ?2, ':c', ?1");
        assert_eq!(
            used,
            vec![Placeholder::Name("a".into()), Placeholder::Name("b".into())]
        );
        // Without parameters nothing is touched (Postgres' `?` JSON operators stay).
        let (sql, used) = rewrite("select j ? 'k'", Dialect::Postgres, &Parameters::None);
        assert_eq!(sql, "select j ? 'k'");
        assert!(used.is_empty());
    }

    #[test]
    fn missing_parameters_are_named() {
        let err = split(
            "select 1; select :day",
            Dialect::Sqlite,
            &Parameters::Map(Map::new()),
        )
        .expect_err("missing");
        assert_eq!(
            err.to_string(),
            "statement 2: uses parameter 'day', which parameters do not name"
        );
    }

    #[test]
    fn sqlite_paths() {
        let c = Connection::from_uri("db", "sqlite:////tmp/x.db").expect("uri");
        assert_eq!(sqlite_path(&c).expect("path"), "/tmp/x.db");
        let c = Connection {
            conn_type: "sqlite".into(),
            host: Some("data/x.db".into()),
            ..Connection::default()
        };
        assert_eq!(sqlite_path(&c).expect("path"), "data/x.db");
    }

    #[tokio::test]
    async fn sqlite_rows_parameters_and_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let conn = Connection {
            conn_id: "db".into(),
            conn_type: "sqlite".into(),
            host: Some(path.display().to_string()),
            ..Connection::default()
        };
        let t = Duration::from_secs(10);
        let out = run(
            &conn,
            "create table t (id integer, name text, score real, ok boolean, gone text);
             insert into t values (?, ?, 1.5, 1, null); insert into t values (2, 'b', 2.5, 0, null);
             select * from t where id >= ? order by id",
            &Parameters::List(vec![json!(1), json!("a")]),
            t,
        )
        .await
        .expect("runs");
        assert_eq!(out.statements, 4);
        assert_eq!(
            out.rows,
            vec![
                json!({"id": 1, "name": "a", "score": 1.5, "ok": true, "gone": null}),
                json!({"id": 2, "name": "b", "score": 2.5, "ok": false, "gone": null}),
            ]
        );
        let err = run(&conn, "selec 1", &Parameters::None, t)
            .await
            .expect_err("syntax");
        assert!(err.to_string().contains("syntax error"), "{err}");
        // A failing statement undoes the ones before it.
        let err = run(
            &conn,
            "insert into t values (3, 'c', 0, 0, null); insert into nope values (1)",
            &Parameters::None,
            t,
        )
        .await
        .expect_err("no table");
        assert!(err.to_string().contains("no such table: nope"), "{err}");
        let out = run(&conn, "select count(*) as n from t", &Parameters::None, t)
            .await
            .expect("count");
        assert_eq!(out.rows, vec![json!({"n": 2})]);
    }
}
