//! Making runs: scheduled ticks and backfills; manual triggers live in `store::runs` (shared
//! with the worker's `trigger_dag` tasks) and are re-exported here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use dag::schedule;
use dag::{DagGraph, RunType};
use serde_json::Value;
use store::{Catalog, RunRecord, Store, StoreError};

pub use store::runs::{
    TriggerError, TriggerRequest, new_run, priority_weights, trigger, trigger_by,
};

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
        store: &dyn Catalog,
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
/// scheduler starts them in order within `max_active_runs` (and, as every run, only while
/// the DAG is not paused). `user`, the user who asked for the backfill, is recorded with
/// each run.
pub async fn backfill(
    store: &dyn Store,
    dag_id: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    user: Option<&str>,
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
        let made = match user {
            Some(user) => store.create_run_triggered_by(&run, user).await?,
            None => store.create_run(&run).await?,
        };
        if let Some(run) = made {
            created.push(run);
        }
    }
    Ok(created)
}
