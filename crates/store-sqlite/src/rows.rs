//! SQLite's type mapping: the neutral values of `store-sql` to and from SQLite columns.
//!
//! Timestamps are INTEGER microseconds since the Unix epoch: integer comparison is time
//! order, and Postgres keeps the same precision, so both backends read back equal values.
//! JSON is TEXT, and lists and tables are bound as one JSON array, read with `json_each`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Decode, Row as _, Sqlite, Type};
use store::{StoreError, TaskInstanceRecord};
use store_sql::{Arg, Col, Column, SqlRow, rows::parse};

type Result<T> = store::Result<T>;

/// A database failure, keeping its cause for logs: [`StoreError::Unavailable`] when the file
/// could not be reached or stayed locked past the busy timeout (I/O errors, `SQLITE_BUSY`,
/// `SQLITE_LOCKED`, no connection in time), else [`StoreError::Database`].
pub(crate) fn db(err: sqlx::Error) -> StoreError {
    let unavailable = match &err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // The primary result code is the low byte of the extended one.
        sqlx::Error::Database(e) => e
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6)),
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(Box::new(err))
    } else {
        StoreError::Database(Box::new(err))
    }
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn time(value: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(value)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {value} is out of range")))
}

fn opt_time(value: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    value.map(time).transpose()
}

fn to_json_text(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|err| StoreError::Corrupt(err.to_string()))
}

/// One JSON value of a table cell, as `json_each` hands it to the query.
fn cell(column: &Column<'_>, at: usize) -> Value {
    match column {
        Column::Ints(values) => Value::from(values[at]),
        Column::Int32s(values) => Value::from(values[at]),
        Column::Texts(values) => Value::from(values[at]),
        Column::Times(values) => Value::from(micros(values[at])),
    }
}

fn column_len(column: &Column<'_>) -> usize {
    match column {
        Column::Ints(values) => values.len(),
        Column::Int32s(values) => values.len(),
        Column::Texts(values) => values.len(),
        Column::Times(values) => values.len(),
    }
}

/// The query `sql` with `args` bound in SQLite's encodings.
pub(crate) fn bind(
    sql: &'static str,
    args: &[Arg<'_>],
) -> Result<sqlx::query::Query<'static, Sqlite, SqliteArguments>> {
    let mut query = sqlx::query::<Sqlite>(sql);
    for arg in args {
        query = match arg {
            Arg::Int(value) => query.bind(*value),
            Arg::OptInt(value) => query.bind(*value),
            Arg::Int32(value) => query.bind(*value),
            Arg::OptInt32(value) => query.bind(*value),
            Arg::Text(value) => query.bind(*value),
            Arg::OptText(value) => query.bind(*value),
            Arg::Bool(value) => query.bind(*value),
            Arg::Time(at) => query.bind(micros(*at)),
            Arg::OptTime(at) => query.bind(at.map(micros)),
            Arg::Json(value) => query.bind(to_json_text(value)?),
            Arg::Texts(values) => query.bind(to_json_text(values)?),
            Arg::Ints(values) => query.bind(to_json_text(values)?),
            Arg::Table(columns) => {
                let rows = columns.first().map_or(0, column_len);
                let table: Vec<Value> = (0..rows)
                    .map(|at| Value::Array(columns.iter().map(|c| cell(c, at)).collect()))
                    .collect();
                query.bind(to_json_text(&Value::Array(table))?)
            }
        };
    }
    Ok(query)
}

/// A SQLite row, read through `store-sql`'s neutral [`SqlRow`].
pub struct Row(pub(crate) SqliteRow);

impl Row {
    fn get<'r, T: Decode<'r, Sqlite> + Type<Sqlite>>(&'r self, col: Col) -> Result<T> {
        match col {
            Col::Named(name) => self.0.try_get(name),
            Col::First => self.0.try_get(0),
        }
        .map_err(db)
    }
}

impl SqlRow for Row {
    fn int(&self, col: impl Into<Col>) -> Result<i64> {
        self.get(col.into())
    }
    fn opt_int(&self, col: impl Into<Col>) -> Result<Option<i64>> {
        self.get(col.into())
    }
    fn int32(&self, col: impl Into<Col>) -> Result<i32> {
        self.get(col.into())
    }
    fn opt_int32(&self, col: impl Into<Col>) -> Result<Option<i32>> {
        self.get(col.into())
    }
    fn text(&self, col: impl Into<Col>) -> Result<String> {
        self.get(col.into())
    }
    fn opt_text(&self, col: impl Into<Col>) -> Result<Option<String>> {
        self.get(col.into())
    }
    fn boolean(&self, col: impl Into<Col>) -> Result<bool> {
        self.get(col.into())
    }
    fn time(&self, col: impl Into<Col>) -> Result<DateTime<Utc>> {
        time(self.get(col.into())?)
    }
    fn opt_time(&self, col: impl Into<Col>) -> Result<Option<DateTime<Utc>>> {
        opt_time(self.get(col.into())?)
    }
    fn json(&self, col: impl Into<Col>) -> Result<Value> {
        let text: String = self.get(col.into())?;
        serde_json::from_str(&text)
            .map_err(|err| StoreError::Corrupt(format!("invalid JSON: {err}")))
    }
}

/// One task instance as packed by `task_instances_packed.sql` (a JSON array, same order).
#[derive(serde::Deserialize)]
struct PackedTaskInstance(
    i64,
    i64,
    String,
    String,
    String,
    i32,
    i64,
    i64,
    String,
    String,
    String,
    i64,
    i64,
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

/// Unpack the task instances of `task_instances_packed.sql`.
pub(crate) fn packed_task_instances(json: &str) -> Result<Vec<TaskInstanceRecord>> {
    let packed: Vec<PackedTaskInstance> = serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("packed task instances: {e}")))?;
    let count = |value: i64, what: &str| {
        u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value}")))
    };
    packed
        .into_iter()
        .map(|p| {
            Ok(TaskInstanceRecord {
                id: p.0,
                run: p.1,
                dag_id: p.2,
                run_id: p.3,
                task_id: p.4,
                map_index: p.5,
                try_number: count(p.6, "try_number")?,
                max_tries: count(p.7, "max_tries")?,
                state: parse(&p.8, "task state")?,
                queue: p.9,
                pool: p.10,
                pool_slots: count(p.11, "pool_slots")?,
                priority_weight: p.12,
                operator: p.13,
                queued_at: opt_time(p.14)?,
                start_date: opt_time(p.15)?,
                end_date: opt_time(p.16)?,
                next_retry_at: opt_time(p.17)?,
                hostname: p.18,
                pid: p.19.map(|pid| count(pid, "pid")).transpose()?,
                worker_id: p.20,
                heartbeat_at: opt_time(p.21)?,
            })
        })
        .collect()
}
