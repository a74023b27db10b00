//! The DAG-definition cache: parsed versions by (dag_id, version), bounded so that neither a
//! DAG file rewritten thousands of times nor a big DAG folder grows the process without end.
//!
//! Why it is shaped so: a version never changes, so an entry never goes stale and the only
//! question is which ones to keep. Each DAG's current version is read on every DAG listing
//! and cron pass, older versions only by the runs still going on them. So the cache keeps
//! the [`VERSIONS_PER_DAG`] most recently used versions of each DAG (a file rewritten 10,000
//! times costs as much as one rewritten eight times), and at most [`MAX_TASKS`] tasks in all,
//! which holds the current version of a few thousand ordinary DAGs at once; beyond either
//! bound the least recently used version goes, and is read and parsed again if asked for.
//! Eviction scans the entries: it runs only on a miss, which has just cost a database read
//! and a JSON parse, far more than a scan.
//!
//! A version missing from the cache is read once however many callers ask for it at the
//! same moment (the scheduler's cron pass, a trigger, the sensor loop): the first reads and
//! parses it, the others wait for its result. A big DAG's definition costs several times its
//! JSON in memory while it is read and parsed (a 10,000-task DAG: 7 MB of JSON, some 40 MB
//! in flight), so reading it twice at once was the peak of a scheduler's memory.

use std::collections::HashMap;
use std::sync::Arc;

use dag::Dag;
use store::StoreError;
use tokio::sync::OnceCell;

use crate::{Arg, Col, Dialect, Result, SqlRow, SqlStore, fetch_optional};

/// Versions kept per DAG: its current one and the few that unfinished runs still use.
pub const VERSIONS_PER_DAG: usize = 8;

/// Tasks kept in all (a version weighs its task count, at least 1). A parsed task takes
/// about 1.6 KB today, so this is some 160 MB at most.
pub const MAX_TASKS: usize = 100_000;

/// The cache key: (dag_id, version).
pub(crate) type VersionKey = (String, String);

/// A version being read: the first caller reads it, the others wait on the same cell.
type Loading = Arc<OnceCell<Option<Arc<Dag>>>>;

/// Parsed DAG versions, least recently used out first.
#[derive(Debug)]
pub(crate) struct DagCache {
    entries: HashMap<VersionKey, Slot>,
    /// Versions being read from the database now.
    loading: HashMap<VersionKey, Loading>,
    /// Cached versions per dag_id.
    per_dag: HashMap<String, usize>,
    /// Sum of the entries' weights.
    weight: usize,
    /// Ticks on every use; an entry's tick says when it was last used.
    clock: u64,
    versions_per_dag: usize,
    max_weight: usize,
}

#[derive(Debug)]
struct Slot {
    dag: Arc<Dag>,
    used: u64,
    weight: usize,
}

impl Default for DagCache {
    fn default() -> Self {
        DagCache::new(VERSIONS_PER_DAG, MAX_TASKS)
    }
}

impl DagCache {
    /// A cache keeping at most `versions_per_dag` versions of one DAG and `max_weight` tasks.
    pub(crate) fn new(versions_per_dag: usize, max_weight: usize) -> DagCache {
        DagCache {
            entries: HashMap::new(),
            loading: HashMap::new(),
            per_dag: HashMap::new(),
            weight: 0,
            clock: 0,
            versions_per_dag: versions_per_dag.max(1),
            max_weight,
        }
    }

    /// The cached version, marked as just used.
    pub(crate) fn get(&mut self, key: &VersionKey) -> Option<&Arc<Dag>> {
        self.clock += 1;
        let slot = self.entries.get_mut(key)?;
        slot.used = self.clock;
        Some(&slot.dag)
    }

    /// Cache a version (replacing the same key's), then drop the least recently used ones
    /// beyond the bounds; the version just inserted always stays.
    pub(crate) fn insert(&mut self, key: VersionKey, dag: Arc<Dag>) {
        self.clock += 1;
        let weight = dag.tasks.len().max(1);
        let slot = Slot {
            dag,
            used: self.clock,
            weight,
        };
        let dag_id = key.0.clone();
        match self.entries.insert(key, slot) {
            Some(old) => self.weight -= old.weight,
            None => *self.per_dag.entry(dag_id.clone()).or_default() += 1,
        }
        self.weight += weight;
        while self
            .per_dag
            .get(&dag_id)
            .is_some_and(|n| *n > self.versions_per_dag)
        {
            let Some(oldest) = self.least_recent(Some(&dag_id)) else {
                break;
            };
            self.remove(&oldest);
        }
        while self.weight > self.max_weight && self.entries.len() > 1 {
            let Some(oldest) = self.least_recent(None) else {
                break;
            };
            self.remove(&oldest);
        }
    }

    /// How many versions are cached.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The cell of a version being read, made by the first caller to miss it.
    fn loading(&mut self, key: &VersionKey) -> Loading {
        self.loading.entry(key.clone()).or_default().clone()
    }

    /// A read through `cell` is over: later callers look in the cache (or read again).
    fn loaded(&mut self, key: &VersionKey, cell: &Loading) {
        if self.loading.get(key).is_some_and(|c| Arc::ptr_eq(c, cell)) {
            self.loading.remove(key);
        }
    }

    /// The least recently used key, of one DAG or of all, never the one used last.
    fn least_recent(&self, dag_id: Option<&str>) -> Option<VersionKey> {
        self.entries
            .iter()
            .filter(|(key, slot)| slot.used != self.clock && dag_id.is_none_or(|d| key.0 == d))
            .min_by_key(|(_, slot)| slot.used)
            .map(|(key, _)| key.clone())
    }

    fn remove(&mut self, key: &VersionKey) {
        let Some(slot) = self.entries.remove(key) else {
            return;
        };
        self.weight -= slot.weight;
        if let Some(n) = self.per_dag.get_mut(&key.0) {
            *n -= 1;
            if *n == 0 {
                self.per_dag.remove(&key.0);
            }
        }
    }
}

impl<D: Dialect> SqlStore<D> {
    /// The definition of one DAG version: from the cache, or read and parsed once however
    /// many callers ask for it at the same time.
    pub(crate) async fn definition(&self, dag_id: &str, version: &str) -> Result<Option<Arc<Dag>>> {
        let key = (dag_id.to_string(), version.to_string());
        let cell = {
            let mut cache = self.dag_cache();
            if let Some(dag) = cache.get(&key) {
                return Ok(Some(dag.clone()));
            }
            cache.loading(&key)
        };
        let read = cell
            .get_or_try_init(|| self.read_definition(dag_id, version))
            .await
            .cloned();
        let mut cache = self.dag_cache();
        cache.loaded(&key, &cell);
        let read = read?;
        if let Some(dag) = &read {
            cache.insert(key, dag.clone());
        }
        Ok(read)
    }

    /// Read and parse one stored version.
    async fn read_definition(&self, dag_id: &str, version: &str) -> Result<Option<Arc<Dag>>> {
        let row = {
            let mut conn = self.dialect.read().await?;
            fetch_optional::<D>(
                &mut conn,
                "get_dag_version",
                &[Arg::Text(dag_id), Arg::Text(version)],
            )
            .await?
        };
        let Some(row) = row else {
            return Ok(None);
        };
        let dag: Dag = serde_json::from_str(&row.text(Col::First)?).map_err(|err| {
            StoreError::Corrupt(format!("definition of {dag_id} version {version}: {err}"))
        })?;
        Ok(Some(Arc::new(dag)))
    }

    pub(crate) fn dag_cache(&self) -> std::sync::MutexGuard<'_, DagCache> {
        self.dags
            .lock()
            .expect("the DAG cache lock is never held across a panic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(dag_id: &str, tasks: usize) -> Arc<Dag> {
        let mut yaml = format!("dag_id: {dag_id}\ntasks:\n");
        for i in 0..tasks {
            yaml.push_str(&format!("  - {{id: t{i}, bash: 'echo {i}'}}\n"));
        }
        Arc::new(dag::parse_dag_str("cache.yaml", &yaml).expect("a valid DAG"))
    }

    fn key(dag_id: &str, version: usize) -> VersionKey {
        (dag_id.to_string(), format!("v{version}"))
    }

    /// A DAG rewritten N + k times leaves N versions, the newest ones.
    #[test]
    fn keeps_at_most_the_versions_per_dag() {
        let mut cache = DagCache::new(4, MAX_TASKS);
        let one = dag("d", 1);
        for version in 0..4 + 10 {
            cache.insert(key("d", version), one.clone());
            assert!(cache.len() <= 4, "{} versions after {version}", cache.len());
        }
        assert_eq!(cache.len(), 4);
        for version in 0..10 {
            assert!(cache.get(&key("d", version)).is_none(), "v{version} kept");
        }
        for version in 10..14 {
            assert!(
                cache.get(&key("d", version)).is_some(),
                "v{version} dropped"
            );
        }
    }

    /// The bound is per DAG: other DAGs' versions stay, and a version in use survives newer
    /// ones (least recently used out first, not oldest inserted).
    #[test]
    fn evicts_the_least_recently_used_version_of_that_dag() {
        let mut cache = DagCache::new(2, MAX_TASKS);
        cache.insert(key("other", 0), dag("other", 1));
        cache.insert(key("d", 0), dag("d", 1));
        cache.insert(key("d", 1), dag("d", 1));
        assert!(cache.get(&key("d", 0)).is_some());
        cache.insert(key("d", 2), dag("d", 1));
        assert!(
            cache.get(&key("d", 0)).is_some(),
            "the version just used was dropped"
        );
        assert!(
            cache.get(&key("d", 1)).is_none(),
            "the unused version was kept"
        );
        assert!(
            cache.get(&key("other", 0)).is_some(),
            "another DAG's version was dropped"
        );
        assert_eq!(cache.len(), 3);
    }

    /// The task budget bounds many DAGs together; a version bigger than the budget is still
    /// cached alone, so it is not parsed again on every read.
    #[test]
    fn keeps_within_the_task_budget() {
        let mut cache = DagCache::new(VERSIONS_PER_DAG, 30);
        for n in 0..10 {
            cache.insert(key(&format!("d{n}"), 0), dag(&format!("d{n}"), 10));
            assert!(cache.weight <= 30, "weight {}", cache.weight);
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&key("d9", 0)).is_some());
        assert!(cache.get(&key("d0", 0)).is_none());
        cache.insert(key("big", 0), dag("big", 50));
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&key("big", 0)).is_some());
        cache.insert(key("d0", 0), dag("d0", 10));
        assert_eq!(cache.len(), 1, "the budget holds after a big version");
    }

    /// Inserting a key again replaces it without counting it twice.
    #[test]
    fn reinserting_a_version_replaces_it() {
        let mut cache = DagCache::new(2, MAX_TASKS);
        cache.insert(key("d", 0), dag("d", 3));
        cache.insert(key("d", 0), dag("d", 5));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.weight, 5);
        assert_eq!(cache.per_dag.get("d"), Some(&1));
    }
}
