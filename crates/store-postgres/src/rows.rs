//! Postgres's type mapping: the neutral values of `store-sql` to and from Postgres columns
//! (timestamptz, jsonb, native arrays; a table as one array per column).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Decode, Postgres, Row as _, Type};
use store::StoreError;
use store_sql::{Arg, Col, Column, SqlRow};

type Result<T> = store::Result<T>;

/// A database failure, keeping its cause for logs: [`StoreError::Unavailable`] when the server
/// could not be reached or went away (connection errors, SQLSTATE class 08, a server shutting
/// down or starting up, too many connections), else [`StoreError::Database`].
pub(crate) fn db(err: sqlx::Error) -> StoreError {
    let unavailable = match &err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(Box::new(err))
    } else {
        StoreError::Database(Box::new(err))
    }
}

/// The query `sql` with `args` bound in Postgres's types.
pub(crate) fn bind(
    sql: &'static str,
    args: &[Arg<'_>],
) -> sqlx::query::Query<'static, Postgres, PgArguments> {
    let mut query = sqlx::query::<Postgres>(sql);
    for arg in args {
        query = match arg {
            Arg::Int(value) => query.bind(*value),
            Arg::OptInt(value) => query.bind(*value),
            Arg::Int32(value) => query.bind(*value),
            Arg::OptInt32(value) => query.bind(*value),
            Arg::Text(value) => query.bind(*value),
            Arg::OptText(value) => query.bind(*value),
            Arg::Bool(value) => query.bind(*value),
            Arg::Time(at) => query.bind(*at),
            Arg::OptTime(at) => query.bind(*at),
            Arg::Json(value) => query.bind(*value),
            Arg::Texts(values) => query.bind(values),
            Arg::Ints(values) => query.bind(values),
            Arg::Table(columns) => columns.iter().fold(query, |query, column| match column {
                Column::Ints(values) => query.bind(values),
                Column::Int32s(values) => query.bind(values),
                Column::Texts(values) => query.bind(values),
                Column::Times(values) => query.bind(values),
            }),
        };
    }
    query
}

/// A Postgres row, read through `store-sql`'s neutral [`SqlRow`].
pub struct Row(pub(crate) PgRow);

impl Row {
    fn get<'r, T: Decode<'r, Postgres> + Type<Postgres>>(&'r self, col: Col) -> Result<T> {
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
        self.get(col.into())
    }
    fn opt_time(&self, col: impl Into<Col>) -> Result<Option<DateTime<Utc>>> {
        self.get(col.into())
    }
    fn json(&self, col: impl Into<Col>) -> Result<Value> {
        self.get(col.into())
    }
}
