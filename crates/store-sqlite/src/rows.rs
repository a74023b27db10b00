//! Reading SQLite rows back into the store's records, and the column encodings they use.
//!
//! Timestamps are INTEGER microseconds since the Unix epoch: integer comparison is time
//! order, and Postgres keeps the same precision, so both backends read back equal values.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use store::{
    ConnectionRecord, ImportErrorRecord, LogRecord, LogStream, RunRecord, StoreError,
    TaskInstanceRecord, UserRecord, VariableRecord, XcomRecord,
};

/// A database failure, keeping its cause for logs.
pub(crate) fn db(err: sqlx::Error) -> StoreError {
    StoreError::Database(Box::new(err))
}

pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(crate) fn opt_micros(at: Option<DateTime<Utc>>) -> Option<i64> {
    at.map(micros)
}

fn time(value: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(value)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {value} is out of range")))
}

pub(crate) fn get_time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    time(row.try_get::<i64, _>(column).map_err(db)?)
}

pub(crate) fn get_opt_time(
    row: &SqliteRow,
    column: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    row.try_get::<Option<i64>, _>(column)
        .map_err(db)?
        .map(time)
        .transpose()
}

pub(crate) fn opt_time(value: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    value.map(time).transpose()
}

fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(column).map_err(db)
}

fn get_u32(row: &SqliteRow, column: &str) -> Result<u32, StoreError> {
    let value: i64 = get(row, column)?;
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} {value} is negative")))
}

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown {what} '{text}'")))
}

pub(crate) fn json(text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt(format!("invalid JSON: {err}")))
}

pub(crate) fn run(row: &SqliteRow) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        id: get(row, "id")?,
        dag_id: get(row, "dag_id")?,
        run_id: get(row, "run_id")?,
        run_type: parse(&get::<String>(row, "run_type")?, "run type")?,
        state: parse(&get::<String>(row, "state")?, "run state")?,
        logical_date: get_opt_time(row, "logical_date")?,
        data_interval_start: get_opt_time(row, "data_interval_start")?,
        data_interval_end: get_opt_time(row, "data_interval_end")?,
        conf: json(&get::<String>(row, "conf")?)?,
        version: get(row, "version")?,
        queued_at: get_time(row, "queued_at")?,
        start_date: get_opt_time(row, "start_date")?,
        end_date: get_opt_time(row, "end_date")?,
    })
}

pub(crate) fn task_instance(row: &SqliteRow) -> Result<TaskInstanceRecord, StoreError> {
    let pid: Option<i64> = get(row, "pid")?;
    Ok(TaskInstanceRecord {
        id: get(row, "id")?,
        run: get(row, "run")?,
        dag_id: get(row, "dag_id")?,
        run_id: get(row, "run_id")?,
        task_id: get(row, "task_id")?,
        map_index: get(row, "map_index")?,
        try_number: get_u32(row, "try_number")?,
        max_tries: get_u32(row, "max_tries")?,
        state: parse(&get::<String>(row, "state")?, "task state")?,
        queue: get(row, "queue")?,
        pool: get(row, "pool")?,
        pool_slots: get_u32(row, "pool_slots")?,
        priority_weight: get(row, "priority_weight")?,
        operator: get(row, "operator")?,
        queued_at: get_opt_time(row, "queued_at")?,
        start_date: get_opt_time(row, "start_date")?,
        end_date: get_opt_time(row, "end_date")?,
        next_retry_at: get_opt_time(row, "next_retry_at")?,
        hostname: get(row, "hostname")?,
        pid: pid
            .map(|pid| u32::try_from(pid).map_err(|_| StoreError::Corrupt(format!("pid {pid}"))))
            .transpose()?,
        worker_id: get(row, "worker_id")?,
        heartbeat_at: get_opt_time(row, "heartbeat_at")?,
    })
}

pub(crate) fn import_error(row: &SqliteRow) -> Result<ImportErrorRecord, StoreError> {
    Ok(ImportErrorRecord {
        id: get(row, "id")?,
        filename: get(row, "filename")?,
        message: get(row, "message")?,
        timestamp: get_time(row, "timestamp")?,
    })
}

pub(crate) fn xcom(row: &SqliteRow) -> Result<XcomRecord, StoreError> {
    Ok(XcomRecord {
        task_id: get(row, "task_id")?,
        map_index: get(row, "map_index")?,
        key: get(row, "key")?,
        value: json(&get::<String>(row, "value")?)?,
        timestamp: get_time(row, "timestamp")?,
    })
}

pub(crate) fn log(row: &SqliteRow) -> Result<LogRecord, StoreError> {
    let stream: String = get(row, "stream")?;
    Ok(LogRecord {
        seq: get(row, "seq")?,
        timestamp: get_time(row, "timestamp")?,
        stream: LogStream::parse(&stream)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown log stream '{stream}'")))?,
        line: get(row, "line")?,
    })
}

pub(crate) fn user(row: &SqliteRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: get(row, "id")?,
        username: get(row, "username")?,
        password_hash: get(row, "password_hash")?,
        role: get(row, "role")?,
        created_at: get_time(row, "created_at")?,
    })
}

/// The columns of `dags` without the definition, which is read (and cached) separately.
pub(crate) struct DagRow {
    pub dag_id: String,
    pub fileloc: String,
    pub is_paused: bool,
    pub is_active: bool,
    pub version: String,
    pub last_parsed_at: DateTime<Utc>,
}

pub(crate) fn dag_row(row: &SqliteRow) -> Result<DagRow, StoreError> {
    Ok(DagRow {
        dag_id: get(row, "dag_id")?,
        fileloc: get(row, "fileloc")?,
        is_paused: get(row, "is_paused")?,
        is_active: get(row, "is_active")?,
        version: get(row, "version")?,
        last_parsed_at: get_time(row, "last_parsed_at")?,
    })
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
pub(crate) fn packed_task_instances(json: &str) -> Result<Vec<TaskInstanceRecord>, StoreError> {
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

pub(crate) fn variable(row: &SqliteRow) -> Result<VariableRecord, StoreError> {
    Ok(VariableRecord {
        key: row.try_get("key").map_err(db)?,
        val: row.try_get("val").map_err(db)?,
        description: row.try_get("description").map_err(db)?,
        is_encrypted: row.try_get("is_encrypted").map_err(db)?,
    })
}

pub(crate) fn connection(row: &SqliteRow) -> Result<ConnectionRecord, StoreError> {
    Ok(ConnectionRecord {
        conn_id: row.try_get("conn_id").map_err(db)?,
        conn_type: row.try_get("conn_type").map_err(db)?,
        description: row.try_get("description").map_err(db)?,
        host: row.try_get("host").map_err(db)?,
        schema: row.try_get("schema").map_err(db)?,
        login: row.try_get("login").map_err(db)?,
        password: row.try_get("password").map_err(db)?,
        port: row.try_get("port").map_err(db)?,
        extra: row.try_get("extra").map_err(db)?,
        is_encrypted: row.try_get("is_encrypted").map_err(db)?,
    })
}

/// The sensor columns of a task-instance row.
pub(crate) fn sensor_progress(row: &SqliteRow) -> Result<store::SensorProgress, StoreError> {
    Ok(store::SensorProgress {
        next_poke_at: get_opt_time(row, "next_poke_at")?,
        first_poke_at: get_opt_time(row, "first_poke_at")?,
        poke_count: get_u32(row, "poke_count")?,
    })
}
