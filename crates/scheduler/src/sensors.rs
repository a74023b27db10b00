//! The sensor loop: pokes every waiting (`up_for_reschedule`) sensor when its time comes, on
//! the scheduler, with no worker process, so thousands can wait at once.
//!
//! Why it is shaped so: waiting sensors sit in a min-heap keyed by their next poke time, each
//! with its probe rendered once per try. Due sensors are poked together with bounded
//! concurrency, and the round's results are written in one store call of guarded pokes
//! ([`Store::record_pokes`]). A sensor that is done becomes `success` in that write, whose
//! `RunChanged` event makes the scheduler decide the run at once, so its downstream starts
//! within milliseconds. A `command` sensor's turn is handed to a worker (`queued`); the
//! worker's finish brings it back here (`up_for_reschedule`) if it is not done.
//!
//! The loop keeps nothing the database does not have: it loads every waiting sensor at start
//! (so a restart resumes, with `timeout` still measured from the stored first poke), the
//! scheduler tells it which runs to reload, and a periodic full reload finds sensors other
//! schedulers set waiting. Several loops on one Postgres may poke the same sensor; the guard
//! on its poke count lets exactly one poke apply.
//!
//! A paused DAG's sensors are not poked (Airflow queues nothing of a paused DAG): the loop
//! *parks* their runs, as it does the runs of pokes the store refused (the DAG was paused
//! meanwhile, the instance cleared, or another scheduler poked first), and reloads a parked
//! run when a `RunChanged` event names it, which an unpause sends for every unfinished run.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use dag::sensor::{Sensor, next_poke_delay};
use dag::{TaskKind, TaskState};
use futures::StreamExt;
use sensor::{Connections, PokeResult, Probes, Rendered};
use store::secrets::{Connection, Vault, load_template_secrets};
use store::{
    LogLine, LogStream, Poke, PokeOutcome, RunRecord, SensorProgress, Store, StoreError,
    StoreEvent, WaitingSensor,
};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{debug, warn};

/// Sent on the loop's channel instead of a run key: reload every waiting sensor (after a
/// database outage, when the scheduler catches up).
pub(crate) const RELOAD_ALL_SENSORS: i64 = -1;

/// How soon a reload that failed is tried again.
const RELOAD_RETRY: chrono::Duration = chrono::Duration::seconds(1);

/// An outage is the scheduler's to report, once; anything else is worth a warning each time.
fn log_store_error(err: &StoreError, what: &str) {
    if err.is_unavailable() {
        debug!(error = %err, "{what}");
    } else {
        warn!(error = %err, "{what}");
    }
}

/// Probes in flight at once (HTTP and SQL probes wait on the network).
const MAX_CONCURRENT_PROBES: usize = 64;

/// Most pokes written in one store call.
const MAX_POKES_PER_ROUND: usize = 1000;

/// What the sensor loop needs from the scheduler's configuration.
#[derive(Debug, Clone)]
pub(crate) struct SensorConfig {
    /// Full reload of waiting sensors, for those other schedulers set waiting.
    pub reload_interval: Duration,
    pub vault: Arc<Vault>,
    pub env_connections: Vec<Connection>,
}

/// One waiting sensor: only what its pokes need, since thousands wait at once. The run's
/// record and the sensor's spec are shared (one run's sensors hold one copy of its record,
/// one DAG version's instances one copy of each spec), so an entry is a few words and its
/// rendered probe.
struct Entry {
    ti: i64,
    map_index: i32,
    try_number: u32,
    progress: SensorProgress,
    /// The run, shared by its waiting sensors (for the template context).
    run: Arc<RunRecord>,
    /// The run's DAG version's sensors (kept while one of its instances waits) and this
    /// instance's task among them.
    version: Arc<VersionSensors>,
    task: Arc<SensorTask>,
    /// The probe rendered for this try; `None` until the first poke needs it.
    rendered: Option<Arc<Rendered>>,
}

impl Entry {
    fn due(&self) -> DateTime<Utc> {
        self.progress
            .next_poke_at
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// The heap key: a popped key whose poke count is stale is skipped (lazy deletion).
    fn key(&self) -> Reverse<(DateTime<Utc>, i64, u32)> {
        Reverse((self.due(), self.ti, self.progress.poke_count))
    }
}

pub(crate) struct SensorLoop {
    store: Arc<dyn Store>,
    config: SensorConfig,
    probes: Probes,
    connections: Connections,
    entries: HashMap<i64, Entry>,
    heap: BinaryHeap<Reverse<(DateTime<Utc>, i64, u32)>>,
    /// Why an entry's probe could not be rendered; its next poke fails the sensor.
    render_errors: HashMap<i64, String>,
    /// The sensors of the DAG versions of waiting instances, by (dag_id, version); a version
    /// no entry holds any more is dropped after the next load (versions never change, so a
    /// kept one never goes stale).
    versions: HashMap<(String, String), Arc<VersionSensors>>,
    /// Runs with sensors not poked for now: their DAG is paused, or a poke of theirs was
    /// refused. Reloaded when an event says the run changed.
    parked: BTreeSet<i64>,
}

/// One sensor task of a DAG version: its id and spec.
struct SensorTask {
    task_id: String,
    sensor: Sensor,
}

/// The sensor tasks of one DAG version, for finding thousands of instances' specs at once.
struct VersionSensors {
    sensors: HashMap<String, Arc<SensorTask>>,
    /// The DAG file's folder, for relative file paths.
    folder: Option<Arc<Path>>,
}

impl VersionSensors {
    fn of(dag: &dag::Dag) -> VersionSensors {
        VersionSensors {
            sensors: dag
                .tasks
                .iter()
                .filter_map(|t| match &t.kind {
                    TaskKind::Sensor(sensor) => Some((
                        t.task_id.clone(),
                        Arc::new(SensorTask {
                            task_id: t.task_id.clone(),
                            sensor: (**sensor).clone(),
                        }),
                    )),
                    _ => None,
                })
                .collect(),
            folder: Path::new(&dag.fileloc)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| Arc::from(std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))),
        }
    }
}

impl SensorLoop {
    pub(crate) fn new(store: Arc<dyn Store>, config: SensorConfig) -> SensorLoop {
        SensorLoop {
            probes: Probes::new(store.clone()),
            connections: Connections::new(
                store.clone(),
                config.vault.clone(),
                config.env_connections.clone(),
            ),
            store,
            config,
            entries: HashMap::new(),
            heap: BinaryHeap::new(),
            render_errors: HashMap::new(),
            versions: HashMap::new(),
            parked: BTreeSet::new(),
        }
    }

    /// Poke until `stop` says so. `runs` names runs whose waiting sensors may have changed.
    /// Store errors are logged and retried on the next round, never fatal.
    pub(crate) async fn run(
        mut self,
        mut runs: mpsc::UnboundedReceiver<i64>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut events = self.store.subscribe();
        let mut next_reload = Utc::now();
        loop {
            let now = Utc::now();
            if now >= next_reload {
                next_reload = match self.load(None).await {
                    Ok(()) => {
                        now + chrono::Duration::from_std(self.config.reload_interval)
                            .unwrap_or(chrono::Duration::seconds(30))
                    }
                    Err(e) => {
                        // Soon again: a sensor not loaded is a sensor not poked.
                        log_store_error(&e, "cannot load waiting sensors; retrying");
                        now + RELOAD_RETRY
                    }
                };
            }
            if let Err(e) = self.poke_due(Utc::now()).await {
                log_store_error(&e, "sensor pokes could not be written; retrying");
                // The entries stay; back off a little so a failing store is not hammered.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let mut deadline = next_reload;
            if let Some(Reverse((due, _, _))) = self.heap.peek() {
                deadline = deadline.min(*due);
            }
            let sleep = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return;
                    }
                }
                run = runs.recv() => {
                    let Some(run) = run else { return };
                    let mut changed = vec![run];
                    while let Ok(run) = runs.try_recv() {
                        changed.push(run);
                    }
                    changed.sort_unstable();
                    changed.dedup();
                    if changed.contains(&RELOAD_ALL_SENSORS) {
                        next_reload = Utc::now();
                        continue;
                    }
                    for run in changed {
                        if let Err(e) = self.load(Some(run)).await {
                            // The whole reload covers this run too.
                            log_store_error(&e, "cannot load a run's waiting sensors; retrying");
                            next_reload = next_reload.min(Utc::now() + RELOAD_RETRY);
                        }
                    }
                }
                event = events.recv() => {
                    let mut woken = Vec::new();
                    let mut event = event;
                    loop {
                        match event {
                            Ok(StoreEvent::RunChanged { run }) if self.parked.remove(&run) => {
                                woken.push(run);
                            }
                            // Events lost: a full reload finds what they would have said.
                            Err(broadcast::error::RecvError::Lagged(_))
                            | Ok(StoreEvent::Missed) => next_reload = Utc::now(),
                            Ok(_) => {}
                            Err(broadcast::error::RecvError::Closed) => return,
                        }
                        event = match events.try_recv() {
                            Ok(next) => Ok(next),
                            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                                Err(broadcast::error::RecvError::Lagged(n))
                            }
                            Err(_) => break,
                        };
                    }
                    for run in woken {
                        if let Err(e) = self.load(Some(run)).await {
                            log_store_error(&e, "cannot load a run's waiting sensors; retrying");
                            self.parked.insert(run);
                            next_reload = next_reload.min(Utc::now() + RELOAD_RETRY);
                        }
                    }
                }
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// (Re)load waiting sensors of one run, or of all; entries whose instance moved on are
    /// dropped when their run is reloaded.
    async fn load(&mut self, run: Option<i64>) -> Result<(), StoreError> {
        let mut waiting = self.store.waiting_sensors(run).await?;
        match run {
            Some(run) => {
                self.parked.remove(&run);
            }
            None => self.parked.clear(),
        }
        // A paused DAG's sensors wait unpoked, their runs parked until an event names them.
        waiting.retain(|w| {
            if w.dag_paused {
                self.parked.insert(w.ti.run);
            }
            !w.dag_paused
        });
        let fresh: HashSet<i64> = waiting.iter().map(|w| w.ti.id).collect();
        self.entries
            .retain(|ti, entry| run.is_some_and(|r| entry.run.id != r) || fresh.contains(ti));
        // Each run's record once, however many of its sensors wait.
        let mut runs: HashMap<i64, Arc<RunRecord>> = HashMap::new();
        for WaitingSensor {
            ti,
            run: run_record,
            progress,
            ..
        } in waiting
        {
            if let Some(entry) = self.entries.get_mut(&ti.id) {
                let same_try = entry.try_number == ti.try_number;
                if same_try && entry.progress == progress {
                    continue;
                }
                if !same_try {
                    entry.rendered = None;
                    entry.try_number = ti.try_number;
                }
                entry.progress = progress;
                self.heap.push(entry.key());
                continue;
            }
            let key = (run_record.dag_id.clone(), run_record.version.clone());
            let version = match self.versions.get(&key) {
                Some(version) => version.clone(),
                None => {
                    let Some(dag) = self.store.get_dag_version(&key.0, &key.1).await? else {
                        continue;
                    };
                    let version = Arc::new(VersionSensors::of(&dag));
                    self.versions.insert(key, version.clone());
                    version
                }
            };
            let Some(task) = version.sensors.get(&ti.task_id).cloned() else {
                continue;
            };
            let run = runs
                .entry(run_record.id)
                .or_insert_with(|| Arc::new(run_record))
                .clone();
            let entry = Entry {
                ti: ti.id,
                map_index: ti.map_index,
                try_number: ti.try_number,
                progress,
                run,
                version,
                task,
                rendered: None,
            };
            self.heap.push(entry.key());
            self.entries.insert(entry.ti, entry);
        }
        self.forget_unused_versions();
        Ok(())
    }

    /// Drop the versions no waiting entry holds: a DAG rewritten many times keeps only the
    /// versions whose instances still wait.
    fn forget_unused_versions(&mut self) {
        self.versions
            .retain(|_, version| Arc::strong_count(version) > 1);
    }

    /// Poke every sensor that is due and write the results.
    async fn poke_due(&mut self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut due = Vec::new();
        while let Some(Reverse((at, ti, pokes))) = self.heap.peek().copied() {
            if at > now || due.len() >= MAX_POKES_PER_ROUND {
                break;
            }
            self.heap.pop();
            let current = self
                .entries
                .get(&ti)
                .is_some_and(|e| e.progress.poke_count == pokes && e.due() == at);
            if current {
                due.push(ti);
            }
        }
        if due.is_empty() {
            return Ok(());
        }
        due.sort_unstable();
        due.dedup();
        for &ti in &due {
            self.render(ti).await;
        }
        let mut pokes = Vec::with_capacity(due.len());
        let mut outcomes = Vec::with_capacity(due.len());
        let results = self.poke_all(&due, now).await;
        for (ti, result) in due.iter().copied().zip(results) {
            let Some(entry) = self.entries.get(&ti) else {
                continue;
            };
            let poke = self.decide_poke(entry, result, now);
            outcomes.push((ti, poke.outcome));
            pokes.push(poke);
        }
        let applied = match self.store.record_pokes(&pokes).await {
            Ok(applied) => applied,
            Err(e) => {
                // Nothing was written: every sensor of the round is due again.
                for ti in &due {
                    if let Some(entry) = self.entries.get(ti) {
                        self.heap.push(entry.key());
                    }
                }
                return Err(e);
            }
        };
        for ((ti, outcome), applied) in outcomes.into_iter().zip(applied) {
            match outcome {
                PokeOutcome::Wait { next_poke_at } if applied => {
                    if let Some(entry) = self.entries.get_mut(&ti) {
                        let progress = &mut entry.progress;
                        progress.first_poke_at.get_or_insert(now);
                        progress.poke_count += 1;
                        progress.next_poke_at = Some(next_poke_at);
                        self.heap.push(entry.key());
                    }
                }
                _ => {
                    // Settled, handed to a worker, or refused (changed by someone else, or
                    // its DAG paused): either way not waiting here any more. A refused poke's
                    // run is parked, so the next event about it (an unpause's) reloads it.
                    if let Some(entry) = self.entries.remove(&ti)
                        && !applied
                    {
                        self.parked.insert(entry.run.id);
                    }
                    self.render_errors.remove(&ti);
                }
            }
        }
        debug!(pokes = pokes.len(), "sensor round");
        Ok(())
    }

    /// Poke the given sensors with bounded concurrency; results in the order given. `None`
    /// for sensors that poke on a worker or could not be rendered.
    async fn poke_all(&self, due: &[i64], now: DateTime<Utc>) -> Vec<Option<PokeResult>> {
        let probes = &self.probes;
        let entries = &self.entries;
        futures::stream::iter(due.iter().copied())
            .map(|ti| async move {
                let rendered = entries.get(&ti)?.rendered.clone()?;
                if matches!(*rendered, Rendered::Command) {
                    return None;
                }
                Some(probes.poke(&rendered, now).await)
            })
            .buffered(MAX_CONCURRENT_PROBES)
            .collect()
            .await
    }

    /// Render an entry's probe for its try, once. A template error is kept as a failed
    /// render (the entry's `rendered` stays `None`, and the poke fails the sensor).
    async fn render(&mut self, ti: i64) {
        let Some(entry) = self.entries.get(&ti) else {
            return;
        };
        if entry.rendered.is_some() {
            return;
        }
        let run = &entry.run;
        let Ok(Some(dag)) = self.store.get_dag_version(&run.dag_id, &run.version).await else {
            return;
        };
        let probe = &entry.task.sensor.probe;
        let mut ctx = run.template_context(
            &dag,
            &entry.task.task_id,
            entry.map_index,
            entry.try_number,
            &[],
        );
        // The context holds what it needs; the DAG may leave the store's cache.
        drop(dag);
        if sensor::needs_secrets(probe) {
            match load_template_secrets(
                &*self.store,
                &self.config.vault,
                &self.config.env_connections,
            )
            .await
            {
                Ok(secrets) => {
                    ctx.variables = secrets.variables;
                    ctx.connections = secrets.connections;
                }
                Err(e) => warn!(error = %e, "cannot open variables and connections for a sensor"),
            }
        }
        let rendered = sensor::render(
            probe,
            &ctx,
            entry.version.folder.as_deref(),
            &self.connections,
        )
        .await;
        if let Some(entry) = self.entries.get_mut(&ti) {
            match rendered {
                Ok(rendered) => entry.rendered = Some(Arc::new(rendered)),
                Err(err) => {
                    entry.rendered = None;
                    self.render_errors.insert(ti, err.to_string());
                }
            }
        }
    }

    /// The poke to write for one sensor and what its probe found.
    fn decide_poke(&self, entry: &Entry, result: Option<PokeResult>, now: DateTime<Utc>) -> Poke {
        let sensor = &entry.task.sensor;
        let progress = entry.progress;
        let number = progress.poke_count + 1;
        let first = progress.first_poke_at.unwrap_or(now);
        let elapsed = (now - first).as_seconds_f64().max(0.0);
        let what = entry
            .rendered
            .as_ref()
            .map_or_else(|| sensor.probe.name().to_string(), |r| r.describe());
        let timed_out_state = if sensor.soft_fail {
            TaskState::Skipped
        } else {
            TaskState::Failed
        };
        let (outcome, line) = match result {
            Some(PokeResult::Done(message)) => (
                PokeOutcome::Settle(TaskState::Success),
                format!("poking {what}: done, {message} (poke {number})"),
            ),
            Some(PokeResult::Fail(message)) => (
                PokeOutcome::Settle(TaskState::Failed),
                format!("poking {what}: sensor failed: {message} (poke {number})"),
            ),
            Some(PokeResult::NotYet(message)) if sensor.timed_out(elapsed) => (
                PokeOutcome::Settle(timed_out_state),
                format!(
                    "poking {what}: {message} (poke {number}); timed out after {:.0}s (timeout {:.0}s): {}",
                    elapsed, sensor.timeout, timed_out_state
                ),
            ),
            Some(PokeResult::NotYet(message)) => {
                let delay =
                    next_poke_delay(sensor, number, elapsed, sensor::jitter(entry.ti, number));
                let next = now + chrono::Duration::milliseconds((delay * 1000.0) as i64);
                (
                    PokeOutcome::Wait { next_poke_at: next },
                    format!(
                        "poking {what}: {message} (poke {number}); next poke at {}",
                        next.to_rfc3339_opts(SecondsFormat::Secs, true)
                    ),
                )
            }
            None => match self.render_errors.get(&entry.ti) {
                Some(message) => (
                    PokeOutcome::Settle(TaskState::Failed),
                    format!("sensor failed: {message}"),
                ),
                // Not rendered for want of the DAG version (a store hiccup): try again later.
                None if !sensor.probe.needs_worker() => {
                    let next = now
                        + chrono::Duration::milliseconds((sensor.poke_interval * 1000.0) as i64);
                    (
                        PokeOutcome::Wait { next_poke_at: next },
                        format!("could not prepare the {what} probe; trying again (poke {number})"),
                    )
                }
                // A command sensor: the worker pokes, unless its time is up.
                None if progress.first_poke_at.is_some() && sensor.timed_out(elapsed) => (
                    PokeOutcome::Settle(timed_out_state),
                    format!(
                        "{what} sensor timed out after {:.0}s (timeout {:.0}s): {}",
                        elapsed, sensor.timeout, timed_out_state
                    ),
                ),
                None => (PokeOutcome::Queue, String::new()),
            },
        };
        let log = if line.is_empty() {
            Vec::new()
        } else {
            vec![LogLine {
                timestamp: now,
                stream: LogStream::System,
                line,
            }]
        };
        Poke {
            ti: entry.ti,
            try_number: entry.try_number,
            poke_count: progress.poke_count,
            now,
            outcome,
            log,
        }
    }
}
