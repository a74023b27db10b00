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

/// Versions kept per DAG, as the store's DAG-definition cache does: its current one and the
/// few that unfinished runs still use.
pub const GRAPHS_PER_DAG: usize = 8;

/// Tasks kept in all (a graph weighs its task count, at least 1), as the store's cache.
pub const GRAPH_CACHE_MAX_TASKS: usize = 100_000;

/// Parsed DAG versions with their graphs, shared across the scheduler. Versions never change,
/// so entries never go stale; the cache is bounded like the store's DAG-definition cache (the
/// [`GRAPHS_PER_DAG`] most recently used versions of each DAG, [`GRAPH_CACHE_MAX_TASKS`]
/// tasks in all, least recently used out first), so a DAG file rewritten thousands of times
/// does not grow the scheduler. An evicted version is read from the store again when a run
/// of it needs deciding.
#[derive(Debug, Clone)]
pub struct GraphCache {
    graphs: Arc<Mutex<GraphsByVersion>>,
}

impl Default for GraphCache {
    fn default() -> Self {
        GraphCache::new(GRAPHS_PER_DAG, GRAPH_CACHE_MAX_TASKS)
    }
}

/// Graphs by (dag_id, version), each with the tick of its last use.
#[derive(Debug)]
struct GraphsByVersion {
    entries: HashMap<(String, String), Slot>,
    /// Cached versions per dag_id.
    versions: HashMap<String, usize>,
    /// Sum of the entries' task counts.
    tasks: usize,
    clock: u64,
    per_dag: usize,
    max_tasks: usize,
}

#[derive(Debug)]
struct Slot {
    graph: Arc<DagGraph>,
    used: u64,
    tasks: usize,
}

impl GraphsByVersion {
    fn get(&mut self, key: &(String, String)) -> Option<Arc<DagGraph>> {
        self.clock += 1;
        let slot = self.entries.get_mut(key)?;
        slot.used = self.clock;
        Some(slot.graph.clone())
    }

    /// Keep `graph`, then drop the least recently used graphs beyond the bounds (never the
    /// one just kept). A miss has just cost a store read, so a scan of the entries is cheap.
    fn insert(&mut self, key: (String, String), graph: Arc<DagGraph>) {
        self.clock += 1;
        let tasks = graph.dag().tasks.len().max(1);
        let dag_id = key.0.clone();
        let slot = Slot {
            graph,
            used: self.clock,
            tasks,
        };
        match self.entries.insert(key, slot) {
            Some(old) => self.tasks -= old.tasks,
            None => *self.versions.entry(dag_id.clone()).or_default() += 1,
        }
        self.tasks += tasks;
        while self
            .versions
            .get(&dag_id)
            .is_some_and(|n| *n > self.per_dag)
        {
            if !self.evict(Some(&dag_id)) {
                break;
            }
        }
        while self.tasks > self.max_tasks && self.entries.len() > 1 {
            if !self.evict(None) {
                break;
            }
        }
    }

    /// Drop the least recently used graph (of one DAG, or of all) but the one used last;
    /// whether there was one.
    fn evict(&mut self, dag_id: Option<&str>) -> bool {
        let oldest = self
            .entries
            .iter()
            .filter(|(key, slot)| slot.used != self.clock && dag_id.is_none_or(|d| key.0 == d))
            .min_by_key(|(_, slot)| slot.used)
            .map(|(key, _)| key.clone());
        let Some(slot) = oldest.as_ref().and_then(|key| self.entries.remove(key)) else {
            return false;
        };
        self.tasks -= slot.tasks;
        if let Some(key) = oldest
            && let Some(n) = self.versions.get_mut(&key.0)
        {
            *n -= 1;
            if *n == 0 {
                self.versions.remove(&key.0);
            }
        }
        true
    }
}

impl GraphCache {
    /// A cache keeping at most `per_dag` versions of one DAG and `max_tasks` tasks in all.
    pub fn new(per_dag: usize, max_tasks: usize) -> Self {
        GraphCache {
            graphs: Arc::new(Mutex::new(GraphsByVersion {
                entries: HashMap::new(),
                versions: HashMap::new(),
                tasks: 0,
                clock: 0,
                per_dag: per_dag.max(1),
                max_tasks,
            })),
        }
    }

    /// The graph of one DAG version, loading it from the store on first use.
    pub async fn get(
        &self,
        store: &dyn Catalog,
        dag_id: &str,
        version: &str,
    ) -> Result<Option<Arc<DagGraph>>, StoreError> {
        let key = (dag_id.to_string(), version.to_string());
        if let Some(graph) = self.lock().get(&key) {
            return Ok(Some(graph));
        }
        let Some(dag) = store.get_dag_version(dag_id, version).await? else {
            return Ok(None);
        };
        let graph = Arc::new(DagGraph::new(dag));
        self.lock().insert(key, graph.clone());
        Ok(Some(graph))
    }

    /// How many versions' graphs are cached.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no graph is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GraphsByVersion> {
        // A panic while holding this lock cannot leave the map inconsistent (inserts and
        // evictions are single map calls), so a poisoned lock is still safe to use.
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

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::conformance::{at, chain_dag};

    /// A DAG rewritten more times than the cache keeps versions of it: the cache holds at most
    /// its bound, and an evicted version is read again from the store, as it was.
    async fn rewritten_dag_keeps_the_cache_bounded(store: Arc<dyn Store>) {
        const KEPT: usize = 3;
        let cache = GraphCache::new(KEPT, GRAPH_CACHE_MAX_TASKS);
        for v in 0..KEPT + 5 {
            let dag = chain_dag("rewritten", &[&format!("t{v}")]);
            let version = format!("v{v}");
            store
                .sync_dag(&dag, &version, at(v as i64))
                .await
                .expect("sync");
            let graph = cache
                .get(&*store, "rewritten", &version)
                .await
                .expect("read")
                .expect("the version");
            assert_eq!(graph.dag().tasks[0].task_id, format!("t{v}"));
            assert!(cache.len() <= KEPT, "{} graphs after v{v}", cache.len());
        }
        // Another DAG's version does not count against this one's bound.
        let other = chain_dag("other", &["a"]);
        store.sync_dag(&other, "o1", at(100)).await.expect("sync");
        cache.get(&*store, "other", "o1").await.expect("read");
        assert_eq!(cache.len(), KEPT + 1);
        let first = cache
            .get(&*store, "rewritten", "v0")
            .await
            .expect("read")
            .expect("v0 is still stored");
        assert_eq!(first.dag().tasks[0].task_id, "t0");
        assert_eq!(cache.len(), KEPT + 1);
    }

    testkit::backend_tests!(
        #[tokio::test]
        rewritten_dag_keeps_the_cache_bounded
    );
}
