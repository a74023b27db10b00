//! Reading Postgres rows back into the store's records.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use store::{
    ConnectionRecord, ImportErrorRecord, LogRecord, LogStream, RunRecord, StoreError,
    TaskInstanceRecord, UserRecord, VariableRecord, XcomRecord,
};

/// A database failure, keeping its cause for logs.
pub(crate) fn db(err: sqlx::Error) -> StoreError {
    StoreError::Database(Box::new(err))
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(db)
}

fn get_u32(row: &PgRow, column: &str) -> Result<u32, StoreError> {
    let value: i64 = get(row, column)?;
    u32::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("{column} {value} is out of range")))
}

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown {what} '{text}'")))
}

pub(crate) fn run(row: &PgRow) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        id: get(row, "id")?,
        dag_id: get(row, "dag_id")?,
        run_id: get(row, "run_id")?,
        run_type: parse(&get::<String>(row, "run_type")?, "run type")?,
        state: parse(&get::<String>(row, "state")?, "run state")?,
        logical_date: get(row, "logical_date")?,
        data_interval_start: get(row, "data_interval_start")?,
        data_interval_end: get(row, "data_interval_end")?,
        conf: get(row, "conf")?,
        version: get(row, "version")?,
        queued_at: get(row, "queued_at")?,
        start_date: get(row, "start_date")?,
        end_date: get(row, "end_date")?,
    })
}

pub(crate) fn task_instance(row: &PgRow) -> Result<TaskInstanceRecord, StoreError> {
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
        queued_at: get(row, "queued_at")?,
        start_date: get(row, "start_date")?,
        end_date: get(row, "end_date")?,
        next_retry_at: get(row, "next_retry_at")?,
        hostname: get(row, "hostname")?,
        pid: pid
            .map(|pid| u32::try_from(pid).map_err(|_| StoreError::Corrupt(format!("pid {pid}"))))
            .transpose()?,
        worker_id: get(row, "worker_id")?,
        heartbeat_at: get(row, "heartbeat_at")?,
    })
}

pub(crate) fn import_error(row: &PgRow) -> Result<ImportErrorRecord, StoreError> {
    Ok(ImportErrorRecord {
        id: get(row, "id")?,
        filename: get(row, "filename")?,
        message: get(row, "message")?,
        timestamp: get(row, "timestamp")?,
    })
}

pub(crate) fn xcom(row: &PgRow) -> Result<XcomRecord, StoreError> {
    Ok(XcomRecord {
        task_id: get(row, "task_id")?,
        map_index: get(row, "map_index")?,
        key: get(row, "key")?,
        value: get(row, "value")?,
        timestamp: get(row, "timestamp")?,
    })
}

pub(crate) fn log(row: &PgRow) -> Result<LogRecord, StoreError> {
    let stream: String = get(row, "stream")?;
    Ok(LogRecord {
        seq: get(row, "seq")?,
        timestamp: get(row, "timestamp")?,
        stream: LogStream::parse(&stream)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown log stream '{stream}'")))?,
        line: get(row, "line")?,
    })
}

pub(crate) fn user(row: &PgRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: get(row, "id")?,
        username: get(row, "username")?,
        password_hash: get(row, "password_hash")?,
        role: get(row, "role")?,
        created_at: get(row, "created_at")?,
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

pub(crate) fn dag_row(row: &PgRow) -> Result<DagRow, StoreError> {
    Ok(DagRow {
        dag_id: get(row, "dag_id")?,
        fileloc: get(row, "fileloc")?,
        is_paused: get(row, "is_paused")?,
        is_active: get(row, "is_active")?,
        version: get(row, "version")?,
        last_parsed_at: get(row, "last_parsed_at")?,
    })
}

pub(crate) fn variable(row: &PgRow) -> Result<VariableRecord, StoreError> {
    Ok(VariableRecord {
        key: row.try_get("key").map_err(db)?,
        val: row.try_get("val").map_err(db)?,
        description: row.try_get("description").map_err(db)?,
        is_encrypted: row.try_get("is_encrypted").map_err(db)?,
    })
}

pub(crate) fn connection(row: &PgRow) -> Result<ConnectionRecord, StoreError> {
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
pub(crate) fn sensor_progress(row: &PgRow) -> Result<store::SensorProgress, StoreError> {
    Ok(store::SensorProgress {
        next_poke_at: get(row, "next_poke_at")?,
        first_poke_at: get(row, "first_poke_at")?,
        poke_count: get_u32(row, "poke_count")?,
    })
}
