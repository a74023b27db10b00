//! The validated DAG model: what a DAG file means once parsed, with every default applied.
//!
//! A `Dag` is serialized as JSON into the store (its *version*), so a run keeps the exact
//! definition it started with and a worker in another process sees the same tasks.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::operator::{EmailSpec, HttpSpec, SqlSpec, TriggerDagSpec};
use crate::sensor::Sensor;
use crate::trigger_rule::TriggerRule;

/// A parsed and validated DAG. Tasks are flattened out of their groups and carry full ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dag {
    pub dag_id: String,
    pub description: Option<String>,
    pub schedule: Schedule,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    /// IANA time zone name the cron expression is evaluated in.
    pub timezone: String,
    pub catchup: bool,
    /// Airflow 2 interval semantics: the run for [previous tick, tick) is made at `tick`.
    pub data_intervals: bool,
    /// Seconds after which a still-running run is failed.
    pub dagrun_timeout: Option<f64>,
    pub max_active_runs: u32,
    pub max_active_tasks: u32,
    /// Whether the DAG starts paused when it is first stored; `None` when the file does not
    /// say, and the scheduler's `core.dags_are_paused_at_creation` decides (Airflow's
    /// default: paused). A DAG already stored keeps its paused flag.
    #[serde(default)]
    pub is_paused_upon_creation: Option<bool>,
    pub tags: Vec<String>,
    pub owner: String,
    pub params: BTreeMap<String, Param>,
    pub on_success: Vec<Value>,
    pub on_failure: Vec<Value>,
    pub doc_md: Option<String>,
    /// Every task, groups flattened, in file order. `upstream` holds resolved full ids.
    pub tasks: Vec<Task>,
    /// Every group by full id, for display (tooltips) and for branch targets naming a group.
    pub groups: Vec<Group>,
    /// Path of the file the DAG came from, as found in the DAGs folder.
    pub fileloc: String,
    /// The text of the Airflow Python file that defined the DAG, kept with the version so a
    /// worker without the DAGs folder can load it to run its `airflow` tasks. `Some` also
    /// means the DAG follows Airflow's semantics where dag-format.md differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python_source: Option<String>,
    /// The DAG-level Python callbacks the Airflow file defines (`on_success_callback`,
    /// `on_failure_callback`), run by the scheduler through the host's callback mode once a
    /// run's end has committed. Empty for YAML and JSON DAGs, and in versions stored before
    /// callbacks were recorded.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub python_callbacks: BTreeSet<PythonCallback>,
}

/// When runs are made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "expr", rename_all = "snake_case")]
pub enum Schedule {
    /// Manual runs only (`schedule: null`).
    None,
    /// One run at `start_date`.
    Once,
    /// A 5-field cron expression; presets such as `@daily` are stored as written.
    Cron(String),
}

/// A `params` entry: a default and an optional JSON-schema-like type description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub default: Value,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub description: Option<String>,
    #[serde(rename = "enum")]
    pub choices: Option<Vec<Value>>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
}

/// A task group, kept for display and for edges naming the group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Full id: the group path joined with `.`.
    pub group_id: String,
    pub tooltip: Option<String>,
    /// Full ids of the tasks directly or indirectly inside the group.
    pub tasks: Vec<String>,
}

/// One task with every default applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Full id: group path and short id joined with `.`.
    pub task_id: String,
    pub kind: TaskKind,
    /// Full ids of direct upstream tasks, from `depends_on` and `edges`, without duplicates.
    pub upstream: Vec<String>,
    pub trigger_rule: TriggerRule,
    pub retries: u32,
    /// Seconds.
    pub retry_delay: f64,
    /// Multiplier for exponential backoff (`true` means 2); `None` for a fixed delay.
    pub retry_exponential_backoff: Option<f64>,
    /// Seconds.
    pub max_retry_delay: f64,
    /// Seconds.
    pub execution_timeout: Option<f64>,
    pub depends_on_past: bool,
    pub wait_for_downstream: bool,
    pub pool: String,
    pub pool_slots: u32,
    pub priority_weight: i64,
    pub queue: String,
    pub env: BTreeMap<String, String>,
    /// Working directory; `None` means the DAG file's folder.
    pub cwd: Option<String>,
    pub do_xcom_push: bool,
    pub branch: bool,
    /// Dynamic task mapping: argument name → literal list or template string, in file order
    /// (the last key varies fastest in the cross product).
    pub expand: Option<serde_json::Map<String, Value>>,
    pub owner: String,
    pub email: Vec<String>,
    pub email_on_failure: bool,
    pub email_on_retry: bool,
    pub on_failure: Vec<Value>,
    pub on_success: Vec<Value>,
    pub on_retry: Vec<Value>,
    pub on_execute: Vec<Value>,
    pub doc_md: Option<String>,
}

/// What a task runs. Serialized with its kind as `kind` (`{"kind": "http", "spec": …}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskKind {
    /// `bash -c command` (rendered).
    Bash { command: String },
    /// A Python process running inline `code` or a `file`, optionally calling `callable`.
    Python(PythonTask),
    /// Does nothing and succeeds.
    Empty,
    /// Evaluated by the scheduler: the first case whose `if` is true is followed.
    Switch { cases: Vec<SwitchCase> },
    /// Waits for something: poked by the scheduler's sensor loop, or on a worker.
    Sensor(Box<Sensor>),
    /// One HTTP request through `hooks`.
    Http { spec: HttpSpec },
    /// Statements on a user's Postgres or SQLite connection.
    Sql { spec: SqlSpec },
    /// One mail over SMTP.
    Email { spec: EmailSpec },
    /// A run of another DAG, optionally waited for.
    TriggerDag { spec: TriggerDagSpec },
    /// An operator of an Airflow Python DAG file, run by loading the file in Python and
    /// calling the operator's `execute` (or its callable) with the task context.
    Airflow(AirflowTask),
}

impl TaskKind {
    /// The operator name shown to users, after Airflow's operator classes.
    pub fn operator(&self) -> &str {
        match self {
            TaskKind::Bash { .. } => "BashOperator",
            TaskKind::Python(_) => "PythonOperator",
            TaskKind::Empty => "EmptyOperator",
            TaskKind::Switch { .. } => "BranchOperator",
            TaskKind::Sensor(sensor) => match sensor.probe {
                crate::sensor::Probe::File { .. } => "FileSensor",
                crate::sensor::Probe::Http(_) => "HttpSensor",
                crate::sensor::Probe::Sql { .. } => "SqlSensor",
                crate::sensor::Probe::ExternalTask(_) => "ExternalTaskSensor",
                crate::sensor::Probe::Time { .. } => "DateTimeSensor",
                crate::sensor::Probe::Command { .. } => "BashSensor",
            },
            TaskKind::Http { .. } => "HttpOperator",
            TaskKind::Sql { .. } => "SQLExecuteQueryOperator",
            TaskKind::Email { .. } => "EmailOperator",
            TaskKind::TriggerDag { .. } => "TriggerDagRunOperator",
            TaskKind::Airflow(task) => &task.operator,
        }
    }

    /// True for kinds that need a worker process; `empty` and `switch` are decided in place.
    pub fn needs_worker(&self) -> bool {
        !matches!(self, TaskKind::Empty | TaskKind::Switch { .. })
    }
}

/// `python:` in either form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PythonTask {
    /// Inline source (the string form, or `code:`).
    pub code: Option<String>,
    /// A file relative to the DAG file's folder.
    pub file: Option<String>,
    /// Function to call; its return value becomes `return_value`.
    pub callable: Option<String>,
    pub kwargs: BTreeMap<String, Value>,
    /// Interpreter to run, default `python3`.
    pub interpreter: String,
}

/// A task of an Airflow Python DAG that runs in Python.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirflowTask {
    /// The operator's class name, shown to users (`PythonOperator`, `_PythonDecoratedOperator`,
    /// a user's own subclass…).
    pub operator: String,
    /// The operator's template fields that hold Jinja, as JSON: rendered by the worker before
    /// the try and set on the operator in Python.
    pub fields: BTreeMap<String, Value>,
    /// The Python callbacks the operator has (set on it or through `default_args`). The try's
    /// process runs them itself; the worker or the scheduler runs a failure or retry callback
    /// through the host's callback mode when the process could not (killed, or its worker
    /// died). Empty in versions stored before callbacks were recorded.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub callbacks: BTreeSet<PythonCallback>,
}

/// A Python callback of an Airflow DAG or task, by the attribute that holds it; serialized
/// as that name (`on_failure_callback`), in DAG documents and in the host's callback mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PythonCallback {
    /// A task's, before `execute` (run by the try's process only).
    OnExecuteCallback,
    /// A task's after a successful try; a DAG's after a successful run.
    OnSuccessCallback,
    /// A task's after a failed try with no retry left; a DAG's after a failed run.
    OnFailureCallback,
    /// A task's after a failed try that will be retried.
    OnRetryCallback,
}

impl PythonCallback {
    /// The attribute's name, as Airflow spells it.
    pub fn name(self) -> &'static str {
        match self {
            PythonCallback::OnExecuteCallback => "on_execute_callback",
            PythonCallback::OnSuccessCallback => "on_success_callback",
            PythonCallback::OnFailureCallback => "on_failure_callback",
            PythonCallback::OnRetryCallback => "on_retry_callback",
        }
    }

    /// The callback with this attribute name.
    pub fn from_name(name: &str) -> Option<PythonCallback> {
        [
            PythonCallback::OnExecuteCallback,
            PythonCallback::OnSuccessCallback,
            PythonCallback::OnFailureCallback,
            PythonCallback::OnRetryCallback,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }

    /// The callback a task's try that ended in `state` calls, if any: on_success for
    /// success, on_retry for up_for_retry, on_failure for failed.
    pub fn for_task_end(state: crate::TaskState) -> Option<PythonCallback> {
        match state {
            crate::TaskState::Success => Some(PythonCallback::OnSuccessCallback),
            crate::TaskState::UpForRetry => Some(PythonCallback::OnRetryCallback),
            crate::TaskState::Failed => Some(PythonCallback::OnFailureCallback),
            _ => None,
        }
    }

    /// The callback a DAG's run that ended in `state` calls, if any.
    pub fn for_run_end(state: crate::RunState) -> Option<PythonCallback> {
        match state {
            crate::RunState::Success => Some(PythonCallback::OnSuccessCallback),
            crate::RunState::Failed => Some(PythonCallback::OnFailureCallback),
            _ => None,
        }
    }
}

impl std::fmt::Display for PythonCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One `switch` case: `if` is an expression (no braces); `None` means `else`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwitchCase {
    pub condition: Option<String>,
    pub then: Vec<String>,
    /// `then` was written as one id (a string): the switch's `return_value` is that id, not a
    /// list of one.
    #[serde(default)]
    pub single: bool,
}

impl Dag {
    /// The task with this full id.
    pub fn task(&self, task_id: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.task_id == task_id)
    }

    /// Whose rules the DAG follows where dag-format.md deliberately differs from Airflow: an
    /// Airflow Python file was written against Airflow's, so it keeps them; a YAML or JSON
    /// file was written against dag-format.md. The one place that choice is made.
    pub fn semantics(&self) -> Semantics {
        if self.python_source.is_some() {
            Semantics::Airflow
        } else {
            Semantics::Updraft
        }
    }
}

/// The rule set for the few places where dag-format.md deliberately differs from Airflow 3
/// (the bash return value, `xcom_pull`'s `default` and mapped values, branch targets); see
/// `docs/airflow-differences.md`. Taken from [`Dag::semantics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Semantics {
    /// dag-format.md's rules: YAML and JSON DAGs, and any context built without a DAG.
    #[default]
    Updraft,
    /// Airflow 3.3's rules: DAGs from Airflow Python files.
    Airflow,
}
