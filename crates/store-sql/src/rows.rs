//! Reading rows back into the store's records, once for every backend, through [`SqlRow`].

use chrono::{DateTime, Utc};
use store::{
    ConnectionRecord, ImportErrorRecord, LogRecord, LogStream, PoolRecord, PoolStats, RunRecord,
    SensorProgress, StoreError, TaskInstanceRecord, UserRecord, VariableRecord, XcomRecord,
};

use crate::{Result, SqlRow};

/// A count column (try numbers, slots, pokes), which is never negative.
fn count(row: &impl SqlRow, column: &'static str) -> Result<u32> {
    let value = row.int(column)?;
    u32::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("{column} {value} is out of range")))
}

/// A `(id, try_number)` row.
pub fn running_try(row: &impl SqlRow) -> Result<store::RunningTry> {
    Ok(store::RunningTry {
        ti: row.int("id")?,
        try_number: count(row, "try_number")?,
    })
}

/// A state or type name, parsed.
pub fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown {what} '{text}'")))
}

pub fn run(row: &impl SqlRow) -> Result<RunRecord> {
    Ok(RunRecord {
        id: row.int("id")?,
        dag_id: row.text("dag_id")?,
        run_id: row.text("run_id")?,
        run_type: parse(&row.text("run_type")?, "run type")?,
        state: parse(&row.text("state")?, "run state")?,
        logical_date: row.opt_time("logical_date")?,
        data_interval_start: row.opt_time("data_interval_start")?,
        data_interval_end: row.opt_time("data_interval_end")?,
        conf: row.json("conf")?,
        version: row.text("version")?,
        queued_at: row.time("queued_at")?,
        start_date: row.opt_time("start_date")?,
        end_date: row.opt_time("end_date")?,
        triggering_user_name: row.opt_text("triggering_user_name")?,
    })
}

pub fn task_instance(row: &impl SqlRow) -> Result<TaskInstanceRecord> {
    let pid = row.opt_int("pid")?;
    Ok(TaskInstanceRecord {
        id: row.int("id")?,
        run: row.int("run")?,
        dag_id: row.text("dag_id")?,
        run_id: row.text("run_id")?,
        task_id: row.text("task_id")?,
        map_index: row.int32("map_index")?,
        try_number: count(row, "try_number")?,
        max_tries: count(row, "max_tries")?,
        state: parse(&row.text("state")?, "task state")?,
        queue: row.text("queue")?,
        pool: row.text("pool")?,
        pool_slots: count(row, "pool_slots")?,
        priority_weight: row.int("priority_weight")?,
        operator: row.text("operator")?,
        queued_at: row.opt_time("queued_at")?,
        start_date: row.opt_time("start_date")?,
        end_date: row.opt_time("end_date")?,
        next_retry_at: row.opt_time("next_retry_at")?,
        hostname: row.opt_text("hostname")?,
        pid: pid
            .map(|pid| u32::try_from(pid).map_err(|_| StoreError::Corrupt(format!("pid {pid}"))))
            .transpose()?,
        worker_id: row.opt_text("worker_id")?,
        heartbeat_at: row.opt_time("heartbeat_at")?,
    })
}

pub fn import_error(row: &impl SqlRow) -> Result<ImportErrorRecord> {
    Ok(ImportErrorRecord {
        id: row.int("id")?,
        filename: row.text("filename")?,
        message: row.text("message")?,
        timestamp: row.time("timestamp")?,
    })
}

pub fn xcom(row: &impl SqlRow) -> Result<XcomRecord> {
    Ok(XcomRecord {
        task_id: row.text("task_id")?,
        map_index: row.int32("map_index")?,
        key: row.text("key")?,
        value: row.json("value")?,
        timestamp: row.time("timestamp")?,
    })
}

pub fn log(row: &impl SqlRow) -> Result<LogRecord> {
    let stream = row.text("stream")?;
    Ok(LogRecord {
        seq: row.int("seq")?,
        timestamp: row.time("timestamp")?,
        stream: LogStream::parse(&stream)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown log stream '{stream}'")))?,
        line: row.text("line")?,
    })
}

pub fn user(row: &impl SqlRow) -> Result<UserRecord> {
    Ok(UserRecord {
        id: row.int("id")?,
        username: row.text("username")?,
        password_hash: row.text("password_hash")?,
        role: row.text("role")?,
        first_name: row.opt_text("first_name")?,
        last_name: row.opt_text("last_name")?,
        email: row.opt_text("email")?,
        created_at: row.time("created_at")?,
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
    pub last_scheduled_logical_date: Option<DateTime<Utc>>,
}

pub(crate) fn dag_row(row: &impl SqlRow) -> Result<DagRow> {
    Ok(DagRow {
        dag_id: row.text("dag_id")?,
        fileloc: row.text("fileloc")?,
        is_paused: row.boolean("is_paused")?,
        is_active: row.boolean("is_active")?,
        version: row.text("version")?,
        last_parsed_at: row.time("last_parsed_at")?,
        last_scheduled_logical_date: row.opt_time("last_scheduled_logical_date")?,
    })
}

pub fn variable(row: &impl SqlRow) -> Result<VariableRecord> {
    Ok(VariableRecord {
        key: row.text("key")?,
        val: row.text("val")?,
        description: row.opt_text("description")?,
        is_encrypted: row.boolean("is_encrypted")?,
    })
}

pub fn connection(row: &impl SqlRow) -> Result<ConnectionRecord> {
    Ok(ConnectionRecord {
        conn_id: row.text("conn_id")?,
        conn_type: row.text("conn_type")?,
        description: row.opt_text("description")?,
        host: row.opt_text("host")?,
        schema: row.opt_text("schema")?,
        login: row.opt_text("login")?,
        password: row.opt_text("password")?,
        port: row.opt_int32("port")?,
        extra: row.opt_text("extra")?,
        is_encrypted: row.boolean("is_encrypted")?,
    })
}

pub fn pool_stats(row: &impl SqlRow) -> Result<PoolStats> {
    Ok(PoolStats {
        pool: PoolRecord {
            name: row.text("name")?,
            slots: row.int("slots")?,
            description: row.opt_text("description")?,
        },
        running_slots: row.int("running_slots")?,
        queued_slots: row.int("queued_slots")?,
    })
}

/// The sensor columns of a task-instance row.
pub fn sensor_progress(row: &impl SqlRow) -> Result<SensorProgress> {
    Ok(SensorProgress {
        next_poke_at: row.opt_time("next_poke_at")?,
        first_poke_at: row.opt_time("first_poke_at")?,
        poke_count: count(row, "poke_count")?,
    })
}

/// A `(state, n)` row of the state counts.
pub(crate) fn state_count(row: &impl SqlRow) -> Result<(String, i64)> {
    Ok((row.text("state")?, row.int("n")?))
}
