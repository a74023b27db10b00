//! Making runs: the run and task instances a trigger or a schedule tick creates, and manual
//! triggers with their `conf` checked against the DAG's params. Shared by the scheduler, the
//! CLI, the API and the worker's `trigger_dag` tasks, which is why it lives beside the trait.

use std::collections::HashMap;

use chrono::{DateTime, SubsecRound, Utc};
use dag::schedule::{self, DataInterval};
use dag::{DagGraph, RunType};
use serde_json::Value;

use crate::{NewRun, NewTaskInstance, RunRecord, Store, StoreError};

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("DAG '{0}' not found")]
    DagNotFound(String),
    #[error("DAG '{0}' is not active: its file is gone")]
    DagInactive(String),
    #[error("DAG '{dag_id}' already has a run with run_id '{run_id}'")]
    DuplicateRunId { dag_id: String, run_id: String },
    #[error("conf must be a JSON object, got {0}")]
    BadConf(String),
    /// A param's value (from conf or its default) does not fit its declaration.
    #[error("invalid conf for DAG '{dag_id}': {message}")]
    BadParams { dag_id: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A manual trigger request.
#[derive(Debug, Clone, Default)]
pub struct TriggerRequest {
    /// Defaults to the trigger time.
    pub logical_date: Option<DateTime<Utc>>,
    pub conf: Option<Value>,
    /// Defaults to `manual__<logical date>`, with microseconds ([`schedule::run_id`]).
    pub run_id: Option<String>,
}

/// Airflow's `downstream` weight rule: a task's weight is its own plus all its downstream's.
pub fn priority_weights(graph: &DagGraph) -> HashMap<String, i64> {
    graph
        .dag()
        .tasks
        .iter()
        .map(|task| {
            let downstream: i64 = graph
                .descendants(&task.task_id)
                .into_iter()
                .filter_map(|id| graph.task(id))
                .map(|t| t.priority_weight)
                .sum();
            (task.task_id.clone(), task.priority_weight + downstream)
        })
        .collect()
}

/// The run to create for `interval`, with one task instance per task.
pub fn new_run(
    graph: &DagGraph,
    version: &str,
    run_type: RunType,
    interval: DataInterval,
    conf: Value,
    run_id: Option<String>,
    now: DateTime<Utc>,
) -> NewRun {
    let weights = priority_weights(graph);
    let dag = graph.dag();
    NewRun {
        dag_id: dag.dag_id.clone(),
        run_id: run_id.unwrap_or_else(|| schedule::run_id(run_type, interval.logical_date)),
        run_type,
        logical_date: Some(interval.logical_date),
        data_interval_start: Some(interval.start),
        data_interval_end: Some(interval.end),
        conf,
        version: version.to_string(),
        now,
        tasks: dag
            .tasks
            .iter()
            .map(|task| NewTaskInstance::of(task, weights[&task.task_id]))
            .collect(),
    }
}

/// Trigger a manual run of the DAG's current version. A run of a paused DAG is made all the
/// same and waits, `queued`, until the DAG is unpaused.
pub async fn trigger(
    store: &dyn Store,
    dag_id: &str,
    request: TriggerRequest,
    now: DateTime<Utc>,
) -> Result<RunRecord, TriggerError> {
    trigger_by(store, dag_id, request, None, now).await
}

/// [`trigger`], recording the user who triggered the run, if a user did.
pub async fn trigger_by(
    store: &dyn Store,
    dag_id: &str,
    request: TriggerRequest,
    user: Option<&str>,
    now: DateTime<Utc>,
) -> Result<RunRecord, TriggerError> {
    let record = store
        .get_dag(dag_id)
        .await?
        .ok_or_else(|| TriggerError::DagNotFound(dag_id.to_string()))?;
    if !record.is_active {
        return Err(TriggerError::DagInactive(dag_id.to_string()));
    }
    let conf = match request.conf {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(Value::Object(map)) => Value::Object(map),
        Some(other) => return Err(TriggerError::BadConf(other.to_string())),
    };
    if let Value::Object(map) = &conf {
        dag::params::resolve_params(&record.dag, map).map_err(|message| {
            TriggerError::BadParams {
                dag_id: dag_id.to_string(),
                message,
            }
        })?;
    }
    // The store keeps microseconds: the run id is made from the logical date as stored.
    let logical_date = request.logical_date.unwrap_or(now).trunc_subsecs(6);
    let interval = schedule::manual_interval(logical_date);
    let graph = DagGraph::new(record.dag.clone());
    let run = new_run(
        &graph,
        &record.version,
        RunType::Manual,
        interval,
        conf,
        request.run_id,
        now,
    );
    let run_id = run.run_id.clone();
    let created = match user {
        Some(user) => store.create_run_triggered_by(&run, user).await?,
        None => store.create_run(&run).await?,
    };
    created.ok_or_else(|| TriggerError::DuplicateRunId {
        dag_id: dag_id.to_string(),
        run_id,
    })
}
