//! The scheduler loop: reacts to store events (a run created, a task finished) by deciding the
//! affected run at once, and does its housekeeping (DAG folder, cron ticks, retries, zombies)
//! when their time comes. It sleeps until the next deadline or the next event, never a fixed
//! sleep on the path from one task to the next.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dag::schedule;
use dag::{PythonCallback, RunState, RunType, Schedule, TaskKind, TaskState};
use hooks::callbacks::{self, TryInfo, TryMoment};
use hooks::notify::NotifySettings;
use pydag::PythonSettings;
use pydag::spec::CallbackReason;
use store::secrets::{Connection, TemplateSecrets, Vault, load_template_secrets};
use store::{
    Finish, LogLine, LogStream, ScheduleOutcome, SnapshotXcoms, Store, StoreError, StoreEvent,
};
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::dag_folder::{DagFolder, NewDags};
use crate::decide::{Inputs, decide, needs_secrets, needs_xcoms};
use crate::python_callbacks::{self, CallbackSettings};
use crate::runs::{GraphCache, new_run};
use crate::sensors::{RELOAD_ALL_SENSORS, SensorConfig, SensorLoop};

/// Scheduler settings. Built with [`SchedulerConfig::new`] and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// The DAGs folder; `None` for a scheduler that only schedules runs already in the store.
    pub dags_folder: Option<PathBuf>,
    /// Full rescan of the folder even without file events (inotify can drop events).
    pub rescan_interval: Duration,
    /// Safety net: look for work made by other processes that sent no event.
    pub poll_interval: Duration,
    /// A running try whose heartbeat is older than this is failed as a zombie.
    pub zombie_threshold: Duration,
    /// At most this many missed runs are created at once when catching up.
    pub max_catchup_runs: usize,
    /// Watch the folder for changes (off in one-shot uses such as `dags test`).
    pub watch: bool,
    /// Create scheduled runs from cron ticks (off where only given runs should run, such as
    /// `dags test`).
    pub cron: bool,
    /// `core.max_map_length`: a mapped task with more instances fails.
    pub max_map_length: usize,
    /// Opens variables and connections for `switch` conditions and `expand` templates.
    pub vault: Arc<Vault>,
    /// Connections defined in the environment (`UPDRAFT_CONN_<ID>`), read by the caller.
    pub env_connections: Vec<Connection>,
    /// SMTP server, log-link base URL and action timeout for DAG-run notifications and the
    /// notifications of tries the scheduler fails itself (zombies).
    pub notify: NotifySettings,
    /// How the folder's Python DAG files are imported.
    pub python: PythonSettings,
    /// Whether DAGs first seen in the folder start paused when their file does not say
    /// (`core.dags_are_paused_at_creation`; unpaused by default, paused is Airflow's).
    pub new_dags: NewDags,
}

impl SchedulerConfig {
    pub fn new(dags_folder: Option<PathBuf>) -> Self {
        SchedulerConfig {
            dags_folder,
            rescan_interval: Duration::from_secs(30),
            poll_interval: Duration::from_secs(2),
            zombie_threshold: Duration::from_secs(60),
            max_catchup_runs: 1000,
            watch: true,
            cron: true,
            max_map_length: dag::mapping::DEFAULT_MAX_MAP_LENGTH,
            vault: Arc::new(Vault::clear()),
            env_connections: Vec::new(),
            notify: NotifySettings::default(),
            python: PythonSettings::default(),
            new_dags: NewDags::default(),
        }
    }

    pub fn with_new_dags(mut self, new_dags: NewDags) -> Self {
        self.new_dags = new_dags;
        self
    }

    pub fn with_python(mut self, python: PythonSettings) -> Self {
        self.python = python;
        self
    }

    /// What running a Python callback needs of these settings.
    fn callback_settings(&self) -> CallbackSettings<'_> {
        CallbackSettings {
            python: &self.python,
            notify: &self.notify,
            vault: &self.vault,
            env_connections: &self.env_connections,
        }
    }

    pub fn with_notify(mut self, notify: NotifySettings) -> Self {
        self.notify = notify;
        self
    }

    pub fn with_rescan_interval(mut self, interval: Duration) -> Self {
        self.rescan_interval = interval;
        self
    }

    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    pub fn with_zombie_threshold(mut self, threshold: Duration) -> Self {
        self.zombie_threshold = threshold;
        self
    }

    pub fn with_max_map_length(mut self, limit: usize) -> Self {
        self.max_map_length = limit;
        self
    }

    pub fn with_secrets(mut self, vault: Arc<Vault>, env_connections: Vec<Connection>) -> Self {
        self.vault = vault;
        self.env_connections = env_connections;
        self
    }

    pub fn without_cron(mut self) -> Self {
        self.cron = false;
        self
    }

    pub fn without_watch(mut self) -> Self {
        self.watch = false;
        self
    }
}

/// Why a scheduling pass failed; the loop waits it out (see [`Scheduler::run`]).
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the scheduler keeps of a DAG between passes.
#[derive(Debug, Clone)]
struct DagState {
    paused: bool,
    active: bool,
    /// When the next scheduled run is due; `None` for no (more) scheduled runs.
    next_due: Option<DateTime<Utc>>,
    /// The version `next_due` was computed for.
    version: String,
}

/// The scheduler. Several may run against one Postgres: every decision is a guarded
/// transaction, so two schedulers never queue a task instance twice.
pub struct Scheduler {
    config: SchedulerConfig,
    store: Arc<dyn Store>,
    graphs: GraphCache,
    dags: HashMap<String, DagState>,
    /// Tells the sensor loop which runs' waiting sensors to reload.
    sensor_runs: Option<mpsc::UnboundedSender<i64>>,
    /// Notifications being sent; off the loop so a slow SMTP server delays no decision, and
    /// awaited at shutdown (each action is bounded by its timeout).
    notifications: JoinSet<()>,
}

/// The sensor loop's task, stopped with the scheduler even when it returns early.
struct SensorTask {
    stop: watch::Sender<bool>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl SensorTask {
    async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
    }
}

impl Drop for SensorTask {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.abort();
        }
    }
}

/// Backoff between tries to reach the database during an outage: doubling from the first to
/// the last.
const OUTAGE_BACKOFF_START: Duration = Duration::from_millis(100);
const OUTAGE_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The loop's memory between wake-ups: runs to decide and when each chore is next due. It is
/// all rebuilt from the database after an outage ([`Pass::catch_up`]).
struct Pass {
    dirty: BTreeSet<i64>,
    next_rescan: DateTime<Utc>,
    next_poll: DateTime<Utc>,
    next_zombie_check: DateTime<Utc>,
    next_retry: Option<DateTime<Utc>>,
    /// This scheduler's name in the heartbeat table: host and process id.
    identity: String,
    host: String,
}

impl Pass {
    fn new(now: DateTime<Utc>) -> Pass {
        let host = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".to_string());
        Pass {
            dirty: BTreeSet::new(),
            next_rescan: now,
            next_poll: now,
            next_zombie_check: now,
            next_retry: None,
            identity: format!("{host}:{}", std::process::id()),
            host,
        }
    }

    /// After an outage: poll (every unfinished run), rescan and look for due retries now, but
    /// leave zombies for one threshold, the time a live worker needs to beat again.
    fn catch_up(&mut self, now: DateTime<Utc>, zombie_threshold: Duration) {
        self.next_rescan = now;
        self.next_poll = now;
        self.next_retry = Some(now);
        let threshold =
            chrono::Duration::from_std(zombie_threshold).unwrap_or(chrono::Duration::seconds(60));
        self.next_zombie_check = self.next_zombie_check.max(now + threshold);
    }
}

impl Scheduler {
    pub fn new(config: SchedulerConfig, store: Arc<dyn Store>) -> Self {
        Scheduler {
            config,
            store,
            graphs: GraphCache::default(),
            dags: HashMap::new(),
            sensor_runs: None,
            notifications: JoinSet::new(),
        }
    }

    /// Run until `shutdown` completes. Resumes from the database alone: every unfinished run
    /// is re-evaluated at start, and again after every database outage.
    ///
    /// A store error never stops the scheduler. When a pass fails, the scheduler logs it once,
    /// retries with backoff (100 ms doubling to 5 s) until a read succeeds, then catches up with
    /// one read of every unfinished run, rescans the folder and reloads the waiting sensors.
    /// Zombie checks wait one threshold after an outage, so workers that could not beat
    /// meanwhile are not taken for dead.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut events = self.store.subscribe();
        let (sensor_runs, sensor_rx) = mpsc::unbounded_channel();
        let (sensor_stop, sensor_stop_rx) = watch::channel(false);
        let sensor_loop = SensorLoop::new(
            self.store.clone(),
            SensorConfig {
                reload_interval: self.config.rescan_interval,
                vault: self.config.vault.clone(),
                env_connections: self.config.env_connections.clone(),
            },
        );
        let sensors = SensorTask {
            stop: sensor_stop,
            handle: Some(tokio::spawn(sensor_loop.run(sensor_rx, sensor_stop_rx))),
        };
        self.sensor_runs = Some(sensor_runs);
        let folder_changed = Arc::new(Notify::new());
        let _watcher = match (&self.config.dags_folder, self.config.watch) {
            (Some(folder), true) => watch(folder, folder_changed.clone()),
            _ => None,
        };
        let mut folder = self.config.dags_folder.clone().map(|root| {
            DagFolder::new(root)
                .with_python(self.config.python.clone(), self.config.vault.clone())
                .with_new_dags(self.config.new_dags)
        });
        let mut pass = Pass::new(Utc::now());
        tokio::pin!(shutdown);

        loop {
            let served = self
                .serve(
                    &mut pass,
                    folder.as_mut(),
                    &mut events,
                    &folder_changed,
                    shutdown.as_mut(),
                )
                .await;
            let Err(err) = served else { break };
            if !self.wait_out(err, shutdown.as_mut()).await {
                break;
            }
            // Caught up: what happened meanwhile is in the database, not in events.
            let now = Utc::now();
            pass.catch_up(now, self.config.zombie_threshold);
            if let Some(sensor_runs) = &self.sensor_runs {
                let _ = sensor_runs.send(RELOAD_ALL_SENSORS);
            }
        }
        debug!("scheduler stopping");
        sensors.stop().await;
        while self.notifications.join_next().await.is_some() {}
    }

    /// The scheduling loop proper, until `shutdown` (`Ok`) or a store error (`Err`).
    async fn serve(
        &mut self,
        pass: &mut Pass,
        mut folder: Option<&mut DagFolder>,
        events: &mut broadcast::Receiver<StoreEvent>,
        folder_changed: &Notify,
        mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), SchedulerError> {
        loop {
            let now = Utc::now();
            if now >= pass.next_rescan {
                pass.next_rescan = now + self.config.rescan_interval;
                if let Some(folder) = folder.as_deref_mut()
                    && let Some(recheck) = self.process_folder(folder, now).await?
                {
                    // A file caught mid-write is looked at again once it has settled, even
                    // if no folder event comes.
                    pass.next_rescan = pass.next_rescan.min(recheck);
                }
            }
            if now >= pass.next_poll {
                // The health endpoint reads this beat.
                self.store
                    .record_heartbeat("scheduler", &pass.identity, &pass.host, now)
                    .await?;
                self.refresh_dags().await?;
                pass.dirty.extend(self.store.unfinished_runs().await?);
                pass.next_poll = now + self.config.poll_interval;
            }
            if self.config.cron {
                let created = self.create_scheduled_runs(now).await?;
                pass.dirty.extend(created);
            }
            if now >= pass.next_zombie_check {
                self.fail_zombies(now).await?;
                pass.next_zombie_check = now + self.config.zombie_threshold / 4;
            }
            if pass.next_retry.is_some_and(|t| t <= now) {
                self.store.queue_due_retries(now).await?;
            }

            // Decide every run something happened to; a decision that ends a run can let a
            // queued run of the same DAG start, so those are decided in the same pass.
            while let Some(run) = pass.dirty.pop_first() {
                let outcome = match self.schedule(run).await {
                    Ok(outcome) => outcome,
                    Err(SchedulerError::Store(err)) if err.is_unavailable() => {
                        pass.dirty.insert(run);
                        return Err(err.into());
                    }
                    // One run that cannot be decided (a corrupt stored row, say) must not
                    // stop every other run: it is logged and tried again on the next poll.
                    Err(err) => {
                        tracing::error!(run, error = %err, "cannot decide run");
                        continue;
                    }
                };
                if outcome.expanded > 0 {
                    pass.dirty.insert(run);
                }
                if outcome.run_state.is_some_and(|s| s.is_finished()) {
                    pass.dirty.extend(self.store.unfinished_runs().await?);
                }
                drain(events, &mut pass.dirty, &*self.store).await?;
            }

            let mut deadline = pass
                .next_poll
                .min(pass.next_zombie_check)
                .min(pass.next_rescan);
            let next_due = self.dags.values().filter_map(|d| d.next_due).min();
            if let Some(due) = next_due.filter(|_| self.config.cron) {
                deadline = deadline.min(due);
            }
            pass.next_retry = self.store.next_retry_at().await?;
            if let Some(retry) = pass.next_retry {
                deadline = deadline.min(retry);
            }
            let sleep = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            while self.notifications.try_join_next().is_some() {}
            tokio::select! {
                _ = shutdown.as_mut() => return Ok(()),
                event = events.recv() => {
                    note_event(event, &mut pass.dirty, &*self.store).await?;
                    drain(events, &mut pass.dirty, &*self.store).await?;
                }
                _ = folder_changed.notified() => {
                    pass.next_rescan = Utc::now();
                }
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// After a failed pass: log it once, then retry a cheap read with backoff until the
    /// database answers (`true`) or `shutdown` completes (`false`).
    async fn wait_out(
        &self,
        err: SchedulerError,
        mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> bool {
        let SchedulerError::Store(err) = err;
        let began = tokio::time::Instant::now();
        if err.is_unavailable() {
            warn!(error = %err, "database unavailable: scheduling paused, retrying");
        } else {
            tracing::error!(error = %err, "scheduling pass failed; retrying");
        }
        let mut backoff = OUTAGE_BACKOFF_START;
        loop {
            tokio::select! {
                _ = shutdown.as_mut() => return false,
                _ = tokio::time::sleep(backoff) => {}
            }
            match self.store.next_retry_at().await {
                Ok(_) => break,
                Err(err) => debug!(error = %err, "database still unavailable"),
            }
            backoff = (backoff * 2).min(OUTAGE_BACKOFF_MAX);
        }
        info!(
            after_seconds = format!("{:.1}", began.elapsed().as_secs_f64()),
            "database reachable again: catching up"
        );
        true
    }

    /// Decide one run inside the store's transaction.
    async fn schedule(&mut self, run: i64) -> Result<ScheduleOutcome, SchedulerError> {
        let Some(record) = self.store.get_run_by_key(run).await? else {
            return Ok(ScheduleOutcome::default());
        };
        if record.state.is_finished() {
            return Ok(ScheduleOutcome::default());
        }
        let Some(graph) = self
            .graphs
            .get(&*self.store, &record.dag_id, &record.version)
            .await?
        else {
            warn!(dag_id = %record.dag_id, version = %record.version, "run's DAG version is missing");
            return Ok(ScheduleOutcome::default());
        };
        // A branching or mapping DAG's decisions read the run's XComs, in the same snapshot.
        let xcoms = if graph.dag().tasks.iter().any(needs_xcoms) {
            SnapshotXcoms::Included
        } else {
            SnapshotXcoms::Omitted
        };
        let secrets = if graph.dag().tasks.iter().any(needs_secrets) {
            match load_template_secrets(
                &*self.store,
                &self.config.vault,
                &self.config.env_connections,
            )
            .await
            {
                Ok(secrets) => secrets,
                Err(e) => {
                    // Decided without them, the template names the missing variable.
                    warn!(dag_id = %record.dag_id, error = %e, "cannot open variables and connections");
                    TemplateSecrets::default()
                }
            }
        } else {
            TemplateSecrets::default()
        };
        let previous = if graph.dag().tasks.iter().any(|t| t.depends_on_past) {
            self.previous_run_states(&record).await?
        } else {
            None
        };
        let now = Utc::now();
        let outcome = self
            .store
            .schedule_run(run, now, xcoms, &|snapshot| {
                decide(
                    &graph,
                    snapshot,
                    &Inputs {
                        now,
                        max_map_length: self.config.max_map_length,
                        secrets: &secrets,
                        previous: previous.as_ref(),
                    },
                )
            })
            .await?;
        // A paused DAG's run waits (the store read the flag in the decision's transaction,
        // so a pause or unpause is never missed); its unpause names it in an event.
        if outcome.paused {
            debug!(dag_id = %record.dag_id, run_id = %record.run_id, "run waits: its DAG is paused");
            return Ok(outcome);
        }
        if let Some(state) = outcome.run_state {
            debug!(dag_id = %record.dag_id, run_id = %record.run_id, %state, "run state");
            if state.is_finished() {
                self.notify_run_ended(graph.dag().clone(), record, state, now);
            }
        }
        // Sensors of the run may have started waiting (a decision that applied something)
        // or come back from a worker's poke (a command sensor's finish led here): the sensor
        // loop reloads the run's. The safety poll of a run of waiting file sensors reloads
        // nothing.
        let reload = graph.dag().tasks.iter().any(|t| match &t.kind {
            TaskKind::Sensor(sensor) => outcome.applied > 0 || sensor.probe.needs_worker(),
            _ => false,
        });
        if reload && let Some(sensor_runs) = &self.sensor_runs {
            let _ = sensor_runs.send(run);
        }
        Ok(outcome)
    }

    /// Send the DAG's `on_success`/`on_failure` and run its Python callback for a run this
    /// scheduler just ended (at `now`), off the loop.
    fn notify_run_ended(
        &mut self,
        dag: Arc<dag::Dag>,
        run: store::RunRecord,
        state: RunState,
        now: DateTime<Utc>,
    ) {
        let has_actions = !dag_actions(&dag, state).is_empty();
        let python =
            PythonCallback::for_run_end(state).filter(|k| dag.python_callbacks.contains(k));
        if !has_actions && python.is_none() {
            return;
        }
        // The decision that ended the run failed it for its timeout when the timeout had
        // passed (decide checks it first), which Airflow's callbacks tell apart.
        let timed_out = state == RunState::Failed
            && matches!((dag.dagrun_timeout, run.start_date),
                (Some(limit), Some(started)) if (now - started).as_seconds_f64() > limit);
        let store = self.store.clone();
        let config = self.config.clone();
        self.notifications.spawn(async move {
            let exception = if state == RunState::Failed {
                Some(
                    run_failure_message(
                        store.as_ref(),
                        &run,
                        dag.dagrun_timeout.filter(|_| timed_out),
                    )
                    .await,
                )
            } else {
                None
            };
            if has_actions {
                let secrets = callbacks::Secrets {
                    store: store.as_ref(),
                    vault: &config.vault,
                    env_connections: &config.env_connections,
                };
                let reports = callbacks::run_notifications(
                    &config.notify,
                    secrets,
                    &dag,
                    &run,
                    state,
                    exception.as_deref(),
                )
                .await;
                for report in reports {
                    info!(dag_id = %run.dag_id, run_id = %run.run_id, "notification {report}");
                }
            }
            if let Some(kind) = python {
                let reason = match (state, timed_out) {
                    (RunState::Success, _) => CallbackReason::Success,
                    (_, true) => CallbackReason::TimedOut,
                    (_, false) => CallbackReason::TaskFailure,
                };
                python_callbacks::run_dag_callback(
                    store.as_ref(),
                    config.callback_settings(),
                    &dag,
                    &run,
                    kind,
                    reason,
                    exception,
                )
                .await;
            }
        });
    }

    /// Task states of the run of the same DAG just before `run` by logical date.
    async fn previous_run_states(
        &self,
        run: &store::RunRecord,
    ) -> Result<Option<HashMap<String, Vec<TaskState>>>, SchedulerError> {
        let Some(logical_date) = run.logical_date else {
            return Ok(None);
        };
        let runs = self
            .store
            .list_runs(&store::RunFilter {
                dag_id: Some(run.dag_id.clone()),
                ..Default::default()
            })
            .await?;
        let Some(previous) = runs
            .iter()
            .filter(|r| r.logical_date.is_some_and(|d| d < logical_date))
            .max_by_key(|r| r.logical_date)
        else {
            return Ok(None);
        };
        let mut states: HashMap<String, Vec<TaskState>> = HashMap::new();
        for ti in self.store.task_instances(previous.id).await? {
            states.entry(ti.task_id).or_default().push(ti.state);
        }
        Ok(Some(states))
    }

    /// One pass over the DAG folder; returns when to look again at files that were still
    /// being written, if any.
    async fn process_folder(
        &mut self,
        folder: &mut DagFolder,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, SchedulerError> {
        let report = folder.process(&*self.store, now).await?;
        for failure in &report.errors {
            warn!(
                file = %failure.file,
                problems = failure.problems(),
                error = %failure.first_problem(),
                "DAG file has import errors"
            );
        }
        if !report.unsettled.is_empty() {
            debug!(files = ?report.unsettled, "DAG files still being written; looking again");
        }
        if !report.synced.is_empty() || !report.deactivated.is_empty() {
            info!(synced = ?report.synced, deactivated = ?report.deactivated, "DAG folder processed");
            self.refresh_dags().await?;
        }
        Ok(report.recheck_at)
    }

    /// Re-read every DAG's flags (another process may have paused one) and recompute when its
    /// next scheduled run is due if its version changed.
    async fn refresh_dags(&mut self) -> Result<(), SchedulerError> {
        let records = self.store.list_dags().await?;
        let mut fresh = HashMap::with_capacity(records.len());
        for record in records {
            let known = self.dags.remove(&record.dag_id);
            let next_due = match known {
                Some(state) if state.version == record.version => state.next_due,
                _ => {
                    let last = self
                        .store
                        .last_scheduled_logical_date(&record.dag_id)
                        .await?;
                    next_due_of(&record.dag, last)
                }
            };
            fresh.insert(
                record.dag_id.clone(),
                DagState {
                    paused: record.is_paused,
                    active: record.is_active,
                    next_due,
                    version: record.version.clone(),
                },
            );
        }
        self.dags = fresh;
        Ok(())
    }

    /// Create the scheduled runs that are due; returns their keys.
    async fn create_scheduled_runs(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, SchedulerError> {
        let due: Vec<String> = self
            .dags
            .iter()
            .filter(|(_, d)| d.active && !d.paused && d.next_due.is_some_and(|t| t <= now))
            .map(|(id, _)| id.clone())
            .collect();
        let mut created = Vec::new();
        for dag_id in due {
            let Some(record) = self.store.get_dag(&dag_id).await? else {
                continue;
            };
            let last = self.store.last_scheduled_logical_date(&dag_id).await?;
            let intervals =
                match schedule::due_runs(&record.dag, last, now, self.config.max_catchup_runs) {
                    Ok(intervals) => intervals,
                    Err(e) => {
                        warn!(%dag_id, error = %e, "cannot compute the schedule");
                        Vec::new()
                    }
                };
            let graph = dag::DagGraph::new(record.dag.clone());
            let mut newest = last;
            for interval in intervals {
                let run = new_run(
                    &graph,
                    &record.version,
                    RunType::Scheduled,
                    interval,
                    serde_json::json!({}),
                    None,
                    now,
                );
                if let Some(run) = self.store.create_run(&run).await? {
                    info!(%dag_id, run_id = %run.run_id, "scheduled run created");
                    created.push(run.id);
                }
                newest =
                    Some(newest.map_or(interval.logical_date, |n| n.max(interval.logical_date)));
            }
            if let Some(state) = self.dags.get_mut(&dag_id) {
                state.next_due = next_due_of(&record.dag, newest);
            }
        }
        Ok(created)
    }

    /// Fail (or retry) every running try whose worker stopped heartbeating.
    async fn fail_zombies(&mut self, now: DateTime<Utc>) -> Result<(), SchedulerError> {
        let threshold = chrono::Duration::from_std(self.config.zombie_threshold)
            .unwrap_or(chrono::Duration::seconds(60));
        for ti in self.store.zombies(now - threshold).await? {
            let Some(run) = self.store.get_run_by_key(ti.run).await? else {
                continue;
            };
            let task = self
                .graphs
                .get(&*self.store, &run.dag_id, &run.version)
                .await?
                .and_then(|g| g.task(&ti.task_id).cloned());
            let (state, next_retry_at) = match task {
                Some(task) if ti.try_number <= ti.max_tries => {
                    let delay = dag::retry::retry_delay_seconds(&task, ti.try_number + 1, 0.0);
                    let at = now + chrono::Duration::milliseconds((delay * 1000.0) as i64);
                    (TaskState::UpForRetry, Some(at))
                }
                _ => (TaskState::Failed, None),
            };
            let message = format!(
                "task failed: its worker {} stopped heartbeating (no heartbeat for over {}s)",
                ti.worker_id.as_deref().unwrap_or("?"),
                threshold.num_seconds()
            );
            let applied = self
                .store
                .finish_task_instance(&Finish {
                    ti: ti.id,
                    try_number: ti.try_number,
                    state,
                    end_date: now,
                    next_retry_at,
                    xcoms: Vec::new(),
                    pid: None,
                    log: vec![LogLine {
                        timestamp: now,
                        stream: LogStream::System,
                        line: message.clone(),
                    }],
                })
                .await?;
            if applied {
                warn!(dag_id = %ti.dag_id, task_id = %ti.task_id, run_id = %ti.run_id, %state, "zombie task instance");
                self.notify_zombie(&run, &ti, state, message).await?;
            }
        }
        Ok(())
    }
}

impl Scheduler {
    /// A try failed here because its worker died gets the notifications its worker would
    /// have sent (`on_failure`/`on_retry`, alert mails), and the Python callback its process
    /// would have run.
    async fn notify_zombie(
        &mut self,
        run: &store::RunRecord,
        ti: &store::TaskInstanceRecord,
        state: TaskState,
        message: String,
    ) -> Result<(), SchedulerError> {
        let Some(dag) = self
            .graphs
            .get(&*self.store, &run.dag_id, &run.version)
            .await?
            .map(|g| g.dag().clone())
        else {
            return Ok(());
        };
        let Some(task) = dag.task(&ti.task_id) else {
            return Ok(());
        };
        let moment = TryMoment::Ended(state);
        let notifications = callbacks::task_has_notifications(task, moment);
        let python = match &task.kind {
            TaskKind::Airflow(airflow) => PythonCallback::for_task_end(state).filter(|k| {
                *k != PythonCallback::OnSuccessCallback && airflow.callbacks.contains(k)
            }),
            _ => None,
        };
        if !notifications && python.is_none() {
            return Ok(());
        }
        let store = self.store.clone();
        let config = self.config.clone();
        let run = run.clone();
        let ti = ti.clone();
        self.notifications.spawn(async move {
            let Some(task) = dag.task(&ti.task_id) else {
                return;
            };
            if notifications {
                let info = TryInfo {
                    map_index: ti.map_index,
                    try_number: ti.try_number,
                    max_tries: ti.max_tries,
                    hostname: ti.hostname.clone(),
                    exception: Some(message.clone()),
                };
                let secrets = callbacks::Secrets {
                    store: store.as_ref(),
                    vault: &config.vault,
                    env_connections: &config.env_connections,
                };
                let reports = callbacks::task_notifications(
                    &config.notify,
                    secrets,
                    &dag,
                    task,
                    &run,
                    &info,
                    moment,
                )
                .await;
                callbacks::log_reports(store.as_ref(), ti.id, ti.try_number, &reports).await;
            }
            if let Some(kind) = python {
                python_callbacks::run_zombie_callback(
                    store.as_ref(),
                    config.callback_settings(),
                    &dag,
                    &run,
                    &ti,
                    kind,
                    message,
                )
                .await;
            }
        });
        Ok(())
    }
}

/// The DAG's notification actions for a run that ended in `state`.
fn dag_actions(dag: &dag::Dag, state: RunState) -> &[serde_json::Value] {
    match state {
        RunState::Success => &dag.on_success,
        RunState::Failed => &dag.on_failure,
        _ => &[],
    }
}

/// Why a failed run failed, as its notifications and callbacks report it: its timeout
/// (`timed_out` holds the limit it exceeded), or its failed tasks.
async fn run_failure_message(
    store: &dyn Store,
    run: &store::RunRecord,
    timed_out: Option<f64>,
) -> String {
    if let Some(limit) = timed_out {
        return format!(
            "run {} failed: it ran longer than its dagrun_timeout of {limit}s",
            run.run_id
        );
    }
    let failed: Vec<String> = store
        .task_instances(run.id)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|ti| ti.state == TaskState::Failed)
        .map(|ti| ti.task_id)
        .collect();
    if failed.is_empty() {
        format!("run {} failed", run.run_id)
    } else {
        format!(
            "run {} failed; failed tasks: {}",
            run.run_id,
            failed.join(", ")
        )
    }
}

fn next_due_of(dag: &dag::Dag, last: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    if dag.schedule == Schedule::None {
        return None;
    }
    match schedule::next_due_at(dag, last) {
        Ok(next) => next,
        Err(e) => {
            warn!(dag_id = %dag.dag_id, error = %e, "cannot compute the schedule");
            None
        }
    }
}

/// Take every event already waiting, without blocking.
async fn drain(
    events: &mut broadcast::Receiver<StoreEvent>,
    dirty: &mut BTreeSet<i64>,
    store: &dyn Store,
) -> Result<(), StoreError> {
    loop {
        match events.try_recv() {
            Ok(event) => note_event(Ok(event), dirty, store).await?,
            Err(broadcast::error::TryRecvError::Empty) => return Ok(()),
            Err(broadcast::error::TryRecvError::Closed) => return Ok(()),
            Err(broadcast::error::TryRecvError::Lagged(_)) => {
                dirty.extend(store.unfinished_runs().await?);
            }
        }
    }
}

async fn note_event(
    event: Result<StoreEvent, broadcast::error::RecvError>,
    dirty: &mut BTreeSet<i64>,
    store: &dyn Store,
) -> Result<(), StoreError> {
    match event {
        Ok(StoreEvent::RunChanged { run }) => {
            dirty.insert(run);
        }
        Ok(
            StoreEvent::TasksQueued
            | StoreEvent::RunProgressed { .. }
            | StoreEvent::LogAppended { .. },
        ) => {}
        // Missed events: fall back to re-deciding every unfinished run.
        Ok(StoreEvent::Missed) | Err(broadcast::error::RecvError::Lagged(_)) => {
            dirty.extend(store.unfinished_runs().await?);
        }
        Err(broadcast::error::RecvError::Closed) => {
            // The store is gone; the poll interval keeps the loop alive until shutdown.
            tokio::task::yield_now().await;
        }
    }
    Ok(())
}

/// Watch the DAGs folder and wake the scheduler on any change. `None` when watching is not
/// possible (the periodic rescan still finds changes).
fn watch(folder: &std::path::Path, changed: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                changed.notify_one();
            }
        }) {
            Ok(watcher) => watcher,
            Err(e) => {
                warn!(error = %e, "cannot watch the DAGs folder; relying on periodic rescans");
                return None;
            }
        };
    if let Err(e) = watcher.watch(folder, notify::RecursiveMode::Recursive) {
        warn!(folder = %folder.display(), error = %e, "cannot watch the DAGs folder; relying on periodic rescans");
        return None;
    }
    Some(watcher)
}
