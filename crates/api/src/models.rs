//! Request and response bodies, with Airflow 3's field names and types, and their
//! conversions from store records. Every request body denies unknown fields. Each model
//! derives both serde directions, so that `dagctl` sends and reads the very types the server
//! reads and sends; serde attributes only ever describe the server's JSON (the OpenAPI
//! document is built from them).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dag::{Dag, Schedule, Task};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{DagRecord, ImportErrorRecord, PoolStats, RunRecord, TaskInstanceRecord};
use utoipa::ToSchema;

// --- DAGs -------------------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DagTagResponse {
    pub name: String,
    pub dag_id: String,
    pub dag_display_name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DAGResponse {
    pub dag_id: String,
    pub dag_display_name: String,
    pub is_paused: bool,
    pub is_stale: bool,
    pub last_parsed_time: Option<DateTime<Utc>>,
    pub last_parse_duration: Option<f64>,
    pub last_expired: Option<DateTime<Utc>>,
    pub bundle_name: Option<String>,
    pub bundle_version: Option<String>,
    pub relative_fileloc: Option<String>,
    pub fileloc: String,
    pub description: Option<String>,
    pub timetable_summary: Option<String>,
    pub timetable_description: Option<String>,
    pub timetable_partitioned: bool,
    pub timetable_periodic: bool,
    pub tags: Vec<DagTagResponse>,
    pub max_active_tasks: i64,
    pub max_active_runs: Option<i64>,
    pub max_consecutive_failed_dag_runs: i64,
    pub has_task_concurrency_limits: bool,
    pub has_import_errors: bool,
    pub next_dagrun_logical_date: Option<DateTime<Utc>>,
    pub next_dagrun_data_interval_start: Option<DateTime<Utc>>,
    pub next_dagrun_data_interval_end: Option<DateTime<Utc>>,
    pub next_dagrun_run_after: Option<DateTime<Utc>>,
    pub owners: Vec<String>,
    pub file_token: String,
    pub is_backfillable: bool,
    pub allowed_run_types: Option<Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DAGCollectionResponse {
    pub dags: Vec<DAGResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DagVersionResponse {
    pub id: String,
    pub version_number: i64,
    pub dag_id: String,
    pub bundle_name: Option<String>,
    pub bundle_version: Option<String>,
    pub created_at: DateTime<Utc>,
    pub dag_display_name: String,
    pub bundle_url: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DAGDetailsResponse {
    #[serde(flatten)]
    pub dag: DAGResponse,
    pub catchup: bool,
    pub dag_run_timeout: Option<String>,
    pub asset_expression: Option<BTreeMap<String, Value>>,
    pub doc_md: Option<String>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub is_paused_upon_creation: Option<bool>,
    pub params: Option<BTreeMap<String, Value>>,
    pub render_template_as_native_obj: bool,
    pub template_search_path: Option<Vec<String>>,
    pub timezone: Option<String>,
    pub last_parsed: Option<DateTime<Utc>>,
    pub default_args: Option<BTreeMap<String, Value>>,
    pub owner_links: Option<BTreeMap<String, String>>,
    pub is_favorite: bool,
    pub active_runs_count: i64,
    pub concurrency: i64,
    pub latest_dag_version: Option<DagVersionResponse>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DAGPatchBody {
    pub is_paused: bool,
}

/// A stable UUID-shaped id from a text (a DAG version hash), for fields Airflow types as UUID.
pub fn uuid_from_text(text: &str) -> String {
    let mut hex: String = text
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(32)
        .collect();
    while hex.len() < 32 {
        hex.push('0');
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A UUID-shaped id for a numeric key.
pub fn uuid_from_key(key: i64) -> String {
    format!("00000000-0000-4000-8000-{:012x}", key & 0xffff_ffff_ffff)
}

fn schedule_summary(dag: &Dag) -> Option<String> {
    match &dag.schedule {
        Schedule::None => None,
        Schedule::Once => Some("@once".to_string()),
        Schedule::Cron(expr) => Some(expr.clone()),
    }
}

/// A DAG as the API shows it at `now`: `next_dagrun_*` are the scheduled run the scheduler
/// makes next, from the schedule and the DAG's newest scheduled run.
pub fn dag_response(
    record: &DagRecord,
    has_import_errors: bool,
    now: DateTime<Utc>,
) -> DAGResponse {
    let dag = &record.dag;
    let next = match dag::schedule::next_run(dag, record.last_scheduled_logical_date, now) {
        Ok(next) => next,
        // A DAG's schedule was checked when its file was parsed; one that cannot be evaluated
        // now (a time zone gone from the database, say) has no next run to show.
        Err(err) => {
            tracing::debug!(dag_id = %record.dag_id, error = %err, "no next run");
            None
        }
    };
    DAGResponse {
        dag_id: record.dag_id.clone(),
        dag_display_name: record.dag_id.clone(),
        is_paused: record.is_paused,
        is_stale: !record.is_active,
        last_parsed_time: Some(record.last_parsed_at),
        last_parse_duration: None,
        last_expired: None,
        bundle_name: Some("dags-folder".to_string()),
        bundle_version: None,
        relative_fileloc: Some(record.fileloc.clone()),
        fileloc: record.fileloc.clone(),
        description: dag.description.clone(),
        timetable_summary: schedule_summary(dag),
        timetable_description: schedule_summary(dag),
        timetable_partitioned: false,
        timetable_periodic: matches!(dag.schedule, Schedule::Cron(_)),
        tags: dag
            .tags
            .iter()
            .map(|tag| DagTagResponse {
                name: tag.clone(),
                dag_id: record.dag_id.clone(),
                dag_display_name: record.dag_id.clone(),
            })
            .collect(),
        max_active_tasks: i64::from(dag.max_active_tasks),
        max_active_runs: Some(i64::from(dag.max_active_runs)),
        max_consecutive_failed_dag_runs: 0,
        has_task_concurrency_limits: false,
        has_import_errors,
        next_dagrun_logical_date: next.map(|n| n.interval.logical_date),
        next_dagrun_data_interval_start: next.map(|n| n.interval.start),
        next_dagrun_data_interval_end: next.map(|n| n.interval.end),
        next_dagrun_run_after: next.map(|n| n.run_after),
        owners: vec![dag.owner.clone()],
        file_token: record.version.clone(),
        is_backfillable: !matches!(dag.schedule, Schedule::None),
        allowed_run_types: None,
    }
}

pub fn dag_details(
    record: &DagRecord,
    has_import_errors: bool,
    active_runs: i64,
    now: DateTime<Utc>,
) -> DAGDetailsResponse {
    let dag = &record.dag;
    DAGDetailsResponse {
        dag: dag_response(record, has_import_errors, now),
        catchup: dag.catchup,
        dag_run_timeout: dag.dagrun_timeout.map(iso_duration),
        asset_expression: None,
        doc_md: dag.doc_md.clone(),
        start_date: dag.start_date,
        end_date: dag.end_date,
        is_paused_upon_creation: dag.is_paused_upon_creation,
        params: Some(
            dag.params
                .iter()
                .map(|(name, param)| {
                    (
                        name.clone(),
                        serde_json::json!({
                            "value": param.default,
                            "schema": {"type": param.kind, "enum": param.choices,
                                       "minimum": param.minimum, "maximum": param.maximum},
                            "description": param.description,
                        }),
                    )
                })
                .collect(),
        ),
        render_template_as_native_obj: false,
        template_search_path: None,
        timezone: Some(dag.timezone.clone()),
        last_parsed: Some(record.last_parsed_at),
        default_args: None,
        owner_links: None,
        is_favorite: false,
        active_runs_count: active_runs,
        concurrency: i64::from(dag.max_active_tasks),
        latest_dag_version: Some(version_response(
            record,
            &record.version,
            record.last_parsed_at,
        )),
    }
}

pub fn version_response(
    record: &DagRecord,
    version: &str,
    at: DateTime<Utc>,
) -> DagVersionResponse {
    DagVersionResponse {
        id: uuid_from_text(version),
        version_number: 1,
        dag_id: record.dag_id.clone(),
        bundle_name: Some("dags-folder".to_string()),
        bundle_version: None,
        created_at: at,
        dag_display_name: record.dag_id.clone(),
        bundle_url: None,
    }
}

/// Seconds as an ISO 8601 duration (`P1DT2H3M4S`), as Airflow renders timedeltas in text.
pub fn iso_duration(seconds: f64) -> String {
    let total = seconds.max(0.0);
    let days = (total / 86_400.0).floor();
    let rest = total - days * 86_400.0;
    let hours = (rest / 3600.0).floor();
    let minutes = ((rest - hours * 3600.0) / 60.0).floor();
    let secs = rest - hours * 3600.0 - minutes * 60.0;
    format!("P{days}DT{hours}H{minutes}M{secs}S")
}

// --- tasks ------------------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TimeDelta {
    #[serde(rename = "__type")]
    pub kind: String,
    pub days: i64,
    pub seconds: i64,
    pub microseconds: i64,
}

impl TimeDelta {
    pub fn from_seconds(seconds: f64) -> TimeDelta {
        let micros = (seconds * 1_000_000.0).round() as i64;
        TimeDelta {
            kind: "TimeDelta".to_string(),
            days: micros / 86_400_000_000,
            seconds: (micros % 86_400_000_000) / 1_000_000,
            microseconds: micros % 1_000_000,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskResponse {
    pub task_id: String,
    pub task_display_name: String,
    pub owner: Option<String>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub trigger_rule: String,
    pub depends_on_past: bool,
    pub wait_for_downstream: bool,
    pub retries: f64,
    pub queue: String,
    pub pool: String,
    pub pool_slots: f64,
    pub execution_timeout: Option<TimeDelta>,
    pub retry_delay: Option<TimeDelta>,
    pub retry_exponential_backoff: f64,
    pub priority_weight: f64,
    pub weight_rule: String,
    pub ui_color: String,
    pub ui_fgcolor: String,
    pub template_fields: Vec<String>,
    pub downstream_task_ids: Vec<String>,
    pub doc_md: Option<String>,
    pub operator_name: String,
    pub params: Option<BTreeMap<String, Value>>,
    pub class_ref: Option<BTreeMap<String, Value>>,
    pub is_mapped: bool,
    pub extra_links: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskCollectionResponse {
    pub tasks: Vec<TaskResponse>,
    pub total_entries: i64,
}

pub fn task_response(dag: &Dag, task: &Task) -> TaskResponse {
    TaskResponse {
        task_id: task.task_id.clone(),
        task_display_name: task.task_id.clone(),
        owner: Some(task.owner.clone()),
        start_date: dag.start_date,
        end_date: dag.end_date,
        trigger_rule: task.trigger_rule.as_str().to_string(),
        depends_on_past: task.depends_on_past,
        wait_for_downstream: task.wait_for_downstream,
        retries: f64::from(task.retries),
        queue: task.queue.clone(),
        pool: task.pool.clone(),
        pool_slots: f64::from(task.pool_slots),
        execution_timeout: task.execution_timeout.map(TimeDelta::from_seconds),
        retry_delay: Some(TimeDelta::from_seconds(task.retry_delay)),
        retry_exponential_backoff: task.retry_exponential_backoff.unwrap_or(0.0),
        priority_weight: task.priority_weight as f64,
        weight_rule: "downstream".to_string(),
        ui_color: "#fff".to_string(),
        ui_fgcolor: "#000".to_string(),
        template_fields: Vec::new(),
        downstream_task_ids: dag
            .tasks
            .iter()
            .filter(|t| t.upstream.contains(&task.task_id))
            .map(|t| t.task_id.clone())
            .collect(),
        doc_md: task.doc_md.clone(),
        operator_name: task.kind.operator().to_string(),
        params: None,
        class_ref: None,
        is_mapped: task.expand.is_some(),
        extra_links: Vec::new(),
    }
}

// --- DAG runs ---------------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DAGRunResponse {
    pub dag_run_id: String,
    pub dag_id: String,
    pub logical_date: Option<DateTime<Utc>>,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub data_interval_end: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    pub last_scheduling_decision: Option<DateTime<Utc>>,
    pub run_type: String,
    pub state: String,
    pub triggered_by: Option<String>,
    pub triggering_user_name: Option<String>,
    pub conf: Option<BTreeMap<String, Value>>,
    pub note: Option<String>,
    pub dag_versions: Vec<DagVersionResponse>,
    pub bundle_version: Option<String>,
    pub dag_display_name: String,
    pub partition_key: Option<String>,
    pub partition_date: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DAGRunCollectionResponse {
    pub dag_runs: Vec<DAGRunResponse>,
    pub total_entries: i64,
}

pub fn run_response(run: &RunRecord) -> DAGRunResponse {
    let conf = match &run.conf {
        Value::Object(map) => Some(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        _ => None,
    };
    DAGRunResponse {
        dag_run_id: run.run_id.clone(),
        dag_id: run.dag_id.clone(),
        logical_date: run.logical_date,
        queued_at: Some(run.queued_at),
        start_date: run.start_date,
        end_date: run.end_date,
        duration: match (run.start_date, run.end_date) {
            (Some(start), Some(end)) => Some((end - start).num_milliseconds() as f64 / 1000.0),
            _ => None,
        },
        data_interval_start: run.data_interval_start,
        data_interval_end: run.data_interval_end,
        run_after: run.logical_date.unwrap_or(run.queued_at),
        last_scheduling_decision: None,
        run_type: run.run_type.as_str().to_string(),
        state: run.state.as_str().to_string(),
        triggered_by: Some(
            match run.run_type {
                dag::RunType::Scheduled => "timetable",
                dag::RunType::Manual => "rest_api",
                dag::RunType::Backfill => "backfill",
            }
            .to_string(),
        ),
        triggering_user_name: run.triggering_user_name.clone(),
        conf,
        note: None,
        dag_versions: vec![DagVersionResponse {
            id: uuid_from_text(&run.version),
            version_number: 1,
            dag_id: run.dag_id.clone(),
            bundle_name: Some("dags-folder".to_string()),
            bundle_version: None,
            created_at: run.queued_at,
            dag_display_name: run.dag_id.clone(),
            bundle_url: None,
        }],
        bundle_version: None,
        dag_display_name: run.dag_id.clone(),
        partition_key: None,
        partition_date: None,
    }
}

/// `POST …/dagRuns`. `logical_date` must be present (it may be null).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerDAGRunPostBody {
    pub dag_run_id: Option<String>,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub data_interval_end: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "present")]
    #[schema(required = true)]
    pub logical_date: Option<DateTime<Utc>>,
    pub run_after: Option<DateTime<Utc>>,
    #[schema(value_type = Option<Object>)]
    pub conf: Option<serde_json::Map<String, Value>>,
    pub note: Option<String>,
    pub partition_key: Option<String>,
}

/// A field that must be given but may be null.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DAGRunPatchBody {
    /// `queued`, `success` or `failed`.
    pub state: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DAGRunClearBody {
    #[serde(default = "yes")]
    pub dry_run: bool,
    #[serde(default)]
    pub only_failed: bool,
    #[serde(default)]
    pub only_new: bool,
    pub run_on_latest_version: Option<bool>,
    pub note: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct DAGRunsBatchBody {
    pub order_by: Option<String>,
    pub page_offset: Option<i64>,
    pub page_limit: Option<i64>,
    pub dag_ids: Option<Vec<String>>,
    pub states: Option<Vec<Option<String>>>,
    pub run_after_gte: Option<DateTime<Utc>>,
    pub run_after_gt: Option<DateTime<Utc>>,
    pub run_after_lte: Option<DateTime<Utc>>,
    pub run_after_lt: Option<DateTime<Utc>>,
    pub logical_date_gte: Option<DateTime<Utc>>,
    pub logical_date_gt: Option<DateTime<Utc>>,
    pub logical_date_lte: Option<DateTime<Utc>>,
    pub logical_date_lt: Option<DateTime<Utc>>,
    pub start_date_gte: Option<DateTime<Utc>>,
    pub start_date_gt: Option<DateTime<Utc>>,
    pub start_date_lte: Option<DateTime<Utc>>,
    pub start_date_lt: Option<DateTime<Utc>>,
    pub end_date_gte: Option<DateTime<Utc>>,
    pub end_date_gt: Option<DateTime<Utc>>,
    pub end_date_lte: Option<DateTime<Utc>>,
    pub end_date_lt: Option<DateTime<Utc>>,
    pub duration_gte: Option<f64>,
    pub duration_gt: Option<f64>,
    pub duration_lte: Option<f64>,
    pub duration_lt: Option<f64>,
    pub conf_contains: Option<String>,
}

// --- task instances ---------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskInstanceResponse {
    pub id: String,
    pub task_id: String,
    pub dag_id: String,
    pub dag_run_id: String,
    pub map_index: i64,
    pub logical_date: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    pub state: Option<String>,
    pub try_number: i64,
    pub max_tries: i64,
    pub task_display_name: String,
    pub dag_display_name: String,
    pub hostname: Option<String>,
    pub unixname: Option<String>,
    pub pool: String,
    pub pool_slots: i64,
    pub queue: Option<String>,
    pub priority_weight: Option<i64>,
    pub operator: Option<String>,
    pub operator_name: Option<String>,
    pub queued_when: Option<DateTime<Utc>>,
    pub scheduled_when: Option<DateTime<Utc>>,
    pub pid: Option<i64>,
    pub executor: Option<String>,
    pub executor_config: String,
    pub note: Option<String>,
    pub rendered_map_index: Option<String>,
    pub rendered_fields: BTreeMap<String, Value>,
    pub trigger: Option<BTreeMap<String, Value>>,
    pub triggerer_job: Option<BTreeMap<String, Value>>,
    pub dag_version: Option<DagVersionResponse>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskInstanceCollectionResponse {
    pub task_instances: Vec<TaskInstanceResponse>,
    pub total_entries: i64,
}

pub fn ti_response(ti: &TaskInstanceRecord, run: &RunRecord) -> TaskInstanceResponse {
    TaskInstanceResponse {
        id: uuid_from_key(ti.id),
        task_id: ti.task_id.clone(),
        dag_id: ti.dag_id.clone(),
        dag_run_id: ti.run_id.clone(),
        map_index: i64::from(ti.map_index),
        logical_date: run.logical_date,
        run_after: run.logical_date.unwrap_or(run.queued_at),
        start_date: ti.start_date,
        end_date: ti.end_date,
        duration: match (ti.start_date, ti.end_date) {
            (Some(start), Some(end)) => Some((end - start).num_milliseconds() as f64 / 1000.0),
            _ => None,
        },
        state: match ti.state {
            dag::TaskState::None => None,
            state => Some(state.as_str().to_string()),
        },
        try_number: i64::from(ti.try_number),
        max_tries: i64::from(ti.max_tries),
        task_display_name: ti.task_id.clone(),
        dag_display_name: ti.dag_id.clone(),
        hostname: ti.hostname.clone(),
        unixname: None,
        pool: ti.pool.clone(),
        pool_slots: i64::from(ti.pool_slots),
        queue: Some(ti.queue.clone()),
        priority_weight: Some(ti.priority_weight),
        operator: Some(ti.operator.clone()),
        operator_name: Some(ti.operator.clone()),
        queued_when: ti.queued_at,
        scheduled_when: None,
        pid: ti.pid.map(i64::from),
        executor: None,
        executor_config: "{}".to_string(),
        note: None,
        rendered_map_index: (ti.map_index >= 0).then(|| ti.map_index.to_string()),
        rendered_fields: BTreeMap::new(),
        trigger: None,
        triggerer_job: None,
        dag_version: None,
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTaskInstanceBody {
    /// `success`, `failed` or `skipped`.
    pub new_state: Option<String>,
    pub note: Option<String>,
    #[serde(default)]
    pub include_upstream: bool,
    #[serde(default)]
    pub include_downstream: bool,
    #[serde(default)]
    pub include_future: bool,
    #[serde(default)]
    pub include_past: bool,
}

/// A task id, or `[task_id, map_index]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TaskIdSpec {
    Id(String),
    Mapped(String, i32),
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearTaskInstancesBody {
    #[serde(default = "yes")]
    pub dry_run: bool,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    #[serde(default = "yes")]
    pub only_failed: bool,
    #[serde(default)]
    pub only_running: bool,
    #[serde(default)]
    pub reset_dag_runs: bool,
    /// Task ids, or `[task_id, map_index]` pairs.
    #[schema(value_type = Option<Vec<Value>>)]
    pub task_ids: Option<Vec<TaskIdSpec>>,
    pub dag_run_id: Option<String>,
    #[serde(default)]
    pub include_upstream: bool,
    #[serde(default)]
    pub include_downstream: bool,
    #[serde(default)]
    pub include_future: bool,
    #[serde(default)]
    pub include_past: bool,
    pub run_on_latest_version: Option<bool>,
    pub note: Option<String>,
    pub prevent_running_task: Option<bool>,
}

// --- logs and XCom ----------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StructuredLogMessage {
    pub timestamp: Option<DateTime<Utc>>,
    pub event: String,
    /// `stdout` or `stderr`.
    pub stream: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskInstancesLogResponse {
    pub content: Vec<StructuredLogMessage>,
    pub continuation_token: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct XComResponse {
    pub key: String,
    pub timestamp: DateTime<Utc>,
    pub logical_date: Option<DateTime<Utc>>,
    pub map_index: i64,
    pub task_id: String,
    pub dag_id: String,
    pub run_id: String,
    pub dag_display_name: String,
    pub task_display_name: String,
    pub run_after: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct XComResponseNative {
    #[serde(flatten)]
    pub entry: XComResponse,
    pub value: Value,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct XComCollectionResponse {
    pub xcom_entries: Vec<XComResponse>,
    pub total_entries: i64,
}

// --- variables, connections, pools, import errors --------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VariableResponse {
    pub key: String,
    pub value: String,
    pub description: Option<String>,
    pub is_encrypted: bool,
    pub team_name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VariableCollectionResponse {
    pub variables: Vec<VariableResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariableBody {
    pub key: String,
    /// Any JSON; a non-string value is stored as its JSON text.
    pub value: Value,
    pub description: Option<String>,
    pub team_name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConnectionResponse {
    pub connection_id: String,
    pub conn_type: String,
    pub description: Option<String>,
    pub host: Option<String>,
    pub login: Option<String>,
    pub schema: Option<String>,
    pub port: Option<i64>,
    pub password: Option<String>,
    pub extra: Option<String>,
    pub team_name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConnectionCollectionResponse {
    pub connections: Vec<ConnectionResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionBody {
    pub connection_id: String,
    pub conn_type: String,
    pub description: Option<String>,
    pub host: Option<String>,
    pub login: Option<String>,
    pub schema: Option<String>,
    pub port: Option<i32>,
    pub password: Option<String>,
    pub extra: Option<String>,
    pub team_name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PoolResponse {
    pub name: String,
    pub slots: i64,
    pub description: Option<String>,
    pub include_deferred: bool,
    pub occupied_slots: i64,
    pub running_slots: i64,
    pub queued_slots: i64,
    pub scheduled_slots: i64,
    pub open_slots: i64,
    pub deferred_slots: i64,
    pub team_name: Option<String>,
}

pub fn pool_response(stats: &PoolStats) -> PoolResponse {
    PoolResponse {
        name: stats.pool.name.clone(),
        slots: stats.pool.slots,
        description: stats.pool.description.clone(),
        include_deferred: false,
        occupied_slots: stats.running_slots,
        running_slots: stats.running_slots,
        queued_slots: stats.queued_slots,
        scheduled_slots: 0,
        open_slots: if stats.pool.slots < 0 {
            -1
        } else {
            (stats.pool.slots - stats.running_slots).max(0)
        },
        deferred_slots: 0,
        team_name: None,
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PoolCollectionResponse {
    pub pools: Vec<PoolResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolBody {
    pub name: String,
    pub slots: i64,
    pub description: Option<String>,
    #[serde(default)]
    pub include_deferred: bool,
    pub team_name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolPatchBody {
    pub pool: Option<String>,
    pub slots: Option<i64>,
    pub description: Option<String>,
    pub include_deferred: Option<bool>,
    pub team_name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportErrorResponse {
    pub import_error_id: i64,
    pub timestamp: DateTime<Utc>,
    pub filename: String,
    pub bundle_name: Option<String>,
    pub stack_trace: String,
}

pub fn import_error_response(record: &ImportErrorRecord) -> ImportErrorResponse {
    ImportErrorResponse {
        import_error_id: record.id,
        timestamp: record.timestamp,
        filename: record.filename.clone(),
        bundle_name: Some("dags-folder".to_string()),
        stack_trace: record.message.clone(),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportErrorCollectionResponse {
    pub import_errors: Vec<ImportErrorResponse>,
    pub total_entries: i64,
}

// --- backfills, users, auth -------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillPostBody {
    pub dag_id: String,
    pub from_date: DateTime<Utc>,
    pub to_date: DateTime<Utc>,
    #[serde(default)]
    pub run_backwards: bool,
    #[schema(value_type = Option<Object>)]
    pub dag_run_conf: Option<serde_json::Map<String, Value>>,
    pub reprocess_behavior: Option<String>,
    pub max_active_runs: Option<i64>,
    pub run_on_latest_version: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BackfillResponse {
    pub id: i64,
    pub dag_id: String,
    pub from_date: DateTime<Utc>,
    pub to_date: DateTime<Utc>,
    pub dag_run_conf: BTreeMap<String, Value>,
    pub is_paused: bool,
    pub reprocess_behavior: String,
    pub max_active_runs: i64,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub dag_display_name: String,
    /// Updraft: the run ids the backfill created.
    pub dag_run_ids: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    pub access_token: String,
}

/// A user, with Airflow's (FAB) `email`, `first_name` and `last_name`: each empty when the
/// user was created without it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserResponse {
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserCollectionResponse {
    pub users: Vec<UserResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    pub username: String,
    pub password: String,
    /// `Admin`, `Op`, `User` or `Viewer`.
    pub role: String,
    /// An address of the form `name@domain`, one user's only (compared without case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1)]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1)]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1)]
    pub last_name: Option<String>,
}

/// Whether `text` looks like an email address: `local@domain`, both parts non-empty, one
/// `@`, no spaces, the domain neither starting nor ending with a dot. What a typo breaks, not
/// RFC 5322: the server never sends mail to it.
pub fn is_email_address(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !text.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

// --- monitor ----------------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BaseInfoResponse {
    pub status: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SchedulerInfoResponse {
    pub status: Option<String>,
    pub latest_scheduler_heartbeat: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TriggererInfoResponse {
    pub status: Option<String>,
    pub latest_triggerer_heartbeat: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DagProcessorInfoResponse {
    pub status: Option<String>,
    pub latest_dag_processor_heartbeat: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthInfoResponse {
    pub metadatabase: BaseInfoResponse,
    pub scheduler: SchedulerInfoResponse,
    pub triggerer: TriggererInfoResponse,
    pub dag_processor: Option<DagProcessorInfoResponse>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionInfo {
    pub version: String,
    pub git_version: Option<String>,
}
