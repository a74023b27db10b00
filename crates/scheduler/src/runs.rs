//! Making runs: manual triggers and scheduled ticks become `NewRun`s with their task instances.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use dag::schedule::{self, DataInterval};
use dag::{DagGraph, RunType};
use serde_json::Value;
use store::{NewRun, NewTaskInstance, RunRecord, Store, StoreError};

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
    /// Defaults to `manual__<logical date>`.
    pub run_id: Option<String>,
}

/// Parsed DAG versions with their graphs, shared across the scheduler. Versions never change,
/// so entries never go stale.
#[derive(Debug, Default, Clone)]
pub struct GraphCache {
    graphs: Arc<Mutex<GraphsByVersion>>,
}

/// Graphs by (dag_id, version).
type GraphsByVersion = HashMap<(String, String), Arc<DagGraph>>;

impl GraphCache {
    /// The graph of one DAG version, loading it from the store on first use.
    pub async fn get(
        &self,
        store: &dyn Store,
        dag_id: &str,
        version: &str,
    ) -> Result<Option<Arc<DagGraph>>, StoreError> {
        let key = (dag_id.to_string(), version.to_string());
        if let Some(graph) = self.lock().get(&key) {
            return Ok(Some(graph.clone()));
        }
        let Some(dag) = store.get_dag_version(dag_id, version).await? else {
            return Ok(None);
        };
        let graph = Arc::new(DagGraph::new(dag));
        self.lock().insert(key, graph.clone());
        Ok(Some(graph))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GraphsByVersion> {
        // A panic while holding this lock cannot leave the map inconsistent (inserts are
        // single calls), so a poisoned lock is still safe to use.
        self.graphs.lock().unwrap_or_else(|e| e.into_inner())
    }
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

/// Trigger a manual run of the DAG's current version.
pub async fn trigger(
    store: &dyn Store,
    dag_id: &str,
    request: TriggerRequest,
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
    let interval = schedule::manual_interval(request.logical_date.unwrap_or(now));
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
    store
        .create_run(&run)
        .await?
        .ok_or_else(|| TriggerError::DuplicateRunId {
            dag_id: dag_id.to_string(),
            run_id,
        })
}

/// Why a backfill could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("DAG '{0}' not found")]
    DagNotFound(String),
    #[error("cannot backfill DAG '{dag_id}': {message}")]
    Schedule { dag_id: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Create a `backfill` run for every tick of the DAG's schedule in [start, end], oldest
/// first, leaving out logical dates that already have a run. The runs start queued, so the
/// scheduler starts them in order within `max_active_runs`.
pub async fn backfill(
    store: &dyn Store,
    dag_id: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<RunRecord>, BackfillError> {
    let record = store
        .get_dag(dag_id)
        .await?
        .ok_or_else(|| BackfillError::DagNotFound(dag_id.to_string()))?;
    let intervals = schedule::intervals_between(&record.dag, start, end).map_err(|e| {
        BackfillError::Schedule {
            dag_id: dag_id.to_string(),
            message: e.to_string(),
        }
    })?;
    let existing: Vec<DateTime<Utc>> = store
        .list_runs(&store::RunFilter {
            dag_id: Some(dag_id.to_string()),
            ..Default::default()
        })
        .await?
        .into_iter()
        .filter_map(|r| r.logical_date)
        .collect();
    let graph = DagGraph::new(record.dag.clone());
    let mut created = Vec::new();
    for interval in intervals {
        if existing.contains(&interval.logical_date) {
            continue;
        }
        let run = new_run(
            &graph,
            &record.version,
            RunType::Backfill,
            interval,
            Value::Object(Default::default()),
            None,
            now,
        );
        if let Some(run) = store.create_run(&run).await? {
            created.push(run);
        }
    }
    Ok(created)
}
