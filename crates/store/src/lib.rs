//! The `Store` trait: every read and state change Updraft makes, as whole domain operations.
//!
//! Why it is shaped so: each method is one atomic operation inside the backend (one
//! transaction, every state change guarded by the state it expects), so no transaction leaks
//! out and no caller can leave state half-written. The scheduler's decisions are pure functions
//! from the `dag` crate that the store runs *inside* its transaction
//! ([`RunQueue::schedule_run`]), which keeps "read the run, decide, write the decisions" atomic
//! even with several schedulers on one Postgres.
//!
//! Backends: `store-sqlite` (embedded, default) and `store-postgres`, both the one SQL core of
//! `store-sql` over their own dialect. Both pass the same conformance suite (`testkit`).

pub mod history;
pub mod outage;
mod records;
pub mod runs;
pub mod secrets;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dag::{Dag, RunState, TaskState};
use serde_json::Value;
use tokio::sync::broadcast;

pub use records::*;

/// Task states that are not finished: what a hand-set run state sweeps up.
const UNFINISHED: [TaskState; 6] = [
    TaskState::None,
    TaskState::Scheduled,
    TaskState::Queued,
    TaskState::Running,
    TaskState::UpForRetry,
    TaskState::UpForReschedule,
];

/// What [`RunQueue::set_run_state`] does to the run's unfinished task instances, as
/// (from these states, to this state) steps in order: Airflow's "mark run success" makes them
/// all `success`; "mark run failed" fails the running ones and skips the rest.
pub fn hand_marks(state: RunState) -> Vec<(Vec<TaskState>, TaskState)> {
    match state {
        RunState::Success => vec![(UNFINISHED.to_vec(), TaskState::Success)],
        RunState::Failed => vec![
            (vec![TaskState::Running], TaskState::Failed),
            (UNFINISHED.to_vec(), TaskState::Skipped),
        ],
        RunState::Queued | RunState::Running => Vec::new(),
    }
}

/// Errors of every store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The operation conflicts with what is stored (a duplicate id, say).
    #[error("{0}")]
    Conflict(String),
    /// Stored data could not be read back (a corrupt definition, an unknown state name).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The database failed; the text is for logs, never for API clients.
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database cannot be reached just now: the connection was refused or dropped, the
    /// server is shutting down or starting, or no connection came free in time. Nothing was
    /// changed; the same operation may succeed later. The text is for logs.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Whether this is an outage to wait out rather than a failure of the operation itself.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Something changed that a sleeping scheduler or worker may want to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// A run was created, or one of its task instances finished: re-evaluate it.
    RunChanged { run: i64 },
    /// Task instances were queued: workers should claim.
    TasksQueued,
    /// The run or its task instances changed in a way that needs no decision (a worker
    /// claimed a task, or a decision was applied), but whoever watches the run sees it.
    RunProgressed { run: i64 },
    /// Lines were appended to the log of task instance `ti`.
    LogAppended { ti: i64 },
    /// Events from other processes may have been lost (the connection that carries them was
    /// down and is back): catch up with one read, as after a lagged receiver.
    Missed,
}

/// The scheduler's decision for one run, computed from a [`RunSnapshot`] inside the
/// transaction of [`RunQueue::schedule_run`].
pub type Decide<'a> = &'a (dyn Fn(&RunSnapshot) -> RunDecision + Send + Sync);

/// All persistence: the sum of the capability traits below. Implemented by `store-sql`'s
/// `SqlStore` for both backends; every type that has the four capabilities is a `Store`, so
/// callers hold `Arc<dyn Store>` or ask for the narrowest capability they need.
pub trait Store: Catalog + RunQueue + LogsAndXcoms + Admin {}

impl<T: Catalog + RunQueue + LogsAndXcoms + Admin + ?Sized> Store for T {}

/// The DAG catalog: what the file processor parsed (DAGs and their immutable versions), the
/// files that failed to parse, and the operator actions on whole DAGs.
#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// Insert or update a DAG from a parsed file: marks it active, records `version` (the
    /// file hash) with its definition if new. A new DAG is paused if it says
    /// `is_paused_upon_creation: true`; the DAG folder puts `core.dags_are_paused_at_creation`
    /// (Airflow's default: paused) in for files that do not say, so a DAG synced otherwise
    /// (tests, benchmarks, `dags test`) starts unpaused. A DAG already stored keeps its
    /// paused flag.
    async fn sync_dag(&self, dag: &Dag, version: &str, now: DateTime<Utc>) -> Result<()>;

    /// Mark DAGs inactive (their file is gone); their history stays.
    async fn deactivate_dags(&self, dag_ids: &[String]) -> Result<()>;

    /// Every DAG, active or not, ordered by id.
    async fn list_dags(&self) -> Result<Vec<DagRecord>>;

    /// The DAGs matching `filter`, one page of them in its order, and how many match in all:
    /// the database filters, sorts, pages and counts them (the count on the same filter).
    async fn page_dags(&self, filter: &DagFilter) -> Result<ListPage<DagRecord>>;

    async fn get_dag(&self, dag_id: &str) -> Result<Option<DagRecord>>;

    /// The definition a run started with. Backends parse each version once and keep it
    /// (versions never change), so callers need no cache of their own.
    async fn get_dag_version(&self, dag_id: &str, version: &str) -> Result<Option<Arc<Dag>>>;

    /// Pause a DAG: no run of it is decided until it is unpaused ([`RunQueue::schedule_run`]),
    /// so its runs wait and its running tries finish, as in Airflow.
    async fn pause_dag(&self, dag_id: &str) -> Result<()>;

    /// Unpause a DAG, emitting `RunChanged` for each of its unfinished runs, so the runs that
    /// waited start at once.
    async fn unpause_dag(&self, dag_id: &str) -> Result<()>;

    /// Delete a DAG with its versions, runs, task instances, XComs and logs; a missing DAG is
    /// `NotFound`. If its file is still in the DAG folder it comes back on the next parse.
    async fn delete_dag(&self, dag_id: &str) -> Result<()>;

    /// Record (replace) the import error of one file.
    async fn record_import_error(
        &self,
        filename: &str,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Clear the import error of one file, if any.
    async fn clear_import_error(&self, filename: &str) -> Result<()>;

    async fn list_import_errors(&self) -> Result<Vec<ImportErrorRecord>>;
}

/// Runs and the work queue: creating and deciding runs, the life of a task instance from
/// queued to finished (claims, heartbeats, retries, zombies, sensors' pokes), the operator
/// actions on runs and task instances, and the events that wake schedulers and workers.
#[async_trait]
pub trait RunQueue: Send + Sync + 'static {
    /// Events from this store's commits (and, on Postgres, other processes' commits).
    fn subscribe(&self) -> broadcast::Receiver<StoreEvent>;

    /// Create a run in state `queued` with one task instance (state `none`) per task.
    /// Returns `None`, changing nothing, if the DAG already has a run with this `run_id`.
    async fn create_run(&self, run: &NewRun) -> Result<Option<RunRecord>>;

    /// [`RunQueue::create_run`] for a run a user triggered, recording their name with it in
    /// the same transaction (Airflow's `triggering_user_name`). The default, for stores that
    /// wrap another in tests, creates the run without it.
    async fn create_run_triggered_by(&self, run: &NewRun, user: &str) -> Result<Option<RunRecord>> {
        let _ = user;
        self.create_run(run).await
    }

    async fn get_run(&self, dag_id: &str, run_id: &str) -> Result<Option<RunRecord>>;

    async fn get_run_by_key(&self, run: i64) -> Result<Option<RunRecord>>;

    /// Runs matching the filter, in its order (newest first by default), its page of them
    /// when it has a limit or an offset.
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>>;

    /// [`RunQueue::list_runs`] and how many runs match in all: the database filters, sorts,
    /// pages and counts them (the count on the same filter).
    async fn page_runs(&self, filter: &RunFilter) -> Result<ListPage<RunRecord>>;

    /// The newest `per_dag` runs (by `queued_at`) of each of these DAGs, in one read: by DAG
    /// id, newest first within a DAG (the DAG list's strips of recent runs).
    async fn recent_runs(&self, dag_ids: &[String], per_dag: usize) -> Result<Vec<RunRecord>>;

    /// The newest logical date among the DAG's scheduled runs, for cron catch-up.
    async fn last_scheduled_logical_date(&self, dag_id: &str) -> Result<Option<DateTime<Utc>>>;

    /// Keys of runs not yet finished (queued or running) whose DAG is not paused, oldest
    /// first: the runs a scheduler has to decide. A paused DAG's runs come back when it is
    /// unpaused ([`Catalog::unpause_dag`] names them in events).
    async fn unfinished_runs(&self) -> Result<Vec<i64>>;

    /// Atomically: lock the run, read it with its task instances, call `decide`, and apply
    /// the decision, each transition guarded by the state `decide` saw. Returns what changed.
    /// Emits `TasksQueued` if it queued anything, but never `RunChanged`: the decision is
    /// meant to be the run's fixpoint, so deciding again would change nothing.
    /// A run whose DAG is paused is not decided: `decide` is not called, nothing changes,
    /// and the outcome says `paused` (the flag is read in the same transaction).
    /// With `SnapshotXcoms::Included` the snapshot carries the run's XComs, read in the same
    /// transaction, for decisions that read a branch's choice or render `expand`.
    async fn schedule_run(
        &self,
        run: i64,
        now: DateTime<Utc>,
        xcoms: SnapshotXcoms,
        decide: Decide<'_>,
    ) -> Result<ScheduleOutcome>;

    async fn task_instances(&self, run: i64) -> Result<Vec<TaskInstanceRecord>>;

    async fn get_task_instance(&self, ti: i64) -> Result<Option<TaskInstanceRecord>>;

    /// The task instances of these keys that exist, in no particular order.
    async fn task_instances_by_keys(&self, keys: &[i64]) -> Result<Vec<TaskInstanceRecord>>;

    /// Task instances matching the filter (any run when `run_id` is `None`, any DAG when
    /// `dag_id` is `None`), in its order (by run, then map index by default), its page of
    /// them when it has a limit or an offset.
    async fn list_task_instances(
        &self,
        filter: &TaskInstanceFilter,
    ) -> Result<Vec<TaskInstanceRecord>>;

    /// [`RunQueue::list_task_instances`], each instance with its run, and how many match in
    /// all: the database filters, sorts, pages and counts them (the count on the same filter).
    async fn page_task_instances(
        &self,
        filter: &TaskInstanceFilter,
    ) -> Result<ListPage<(TaskInstanceRecord, RunRecord)>>;

    /// Atomically move up to `claim.limit` queued task instances of `claim.queues` to
    /// `running`, highest priority first, never the same one to two claimers.
    async fn claim_task_instances(&self, claim: &Claim) -> Result<Vec<ClaimedTask>>;

    /// Refresh the heartbeat of every running task instance of this worker; returns those
    /// tries, which are what the store still has this worker running (an instance marked,
    /// cleared or failed as a zombie meanwhile is not among them).
    async fn heartbeat(&self, worker_id: &str, now: DateTime<Utc>) -> Result<Vec<RunningTry>>;

    /// End running tries, in one transaction: each guarded by `running` and its try number,
    /// so a late or duplicate finish changes nothing (its `false`). A finish's XComs, pid
    /// and last log lines are written with it; one `RunChanged` goes out per run ended in.
    async fn finish_task_instances(&self, finishes: &[Finish]) -> Result<Vec<bool>>;

    /// [`RunQueue::finish_task_instances`] of one try.
    async fn finish_task_instance(&self, finish: &Finish) -> Result<bool> {
        let applied = self
            .finish_task_instances(std::slice::from_ref(finish))
            .await?;
        Ok(applied.first().copied().unwrap_or(false))
    }

    /// Running task instances whose heartbeat is older than `stale_before`.
    async fn zombies(&self, stale_before: DateTime<Utc>) -> Result<Vec<TaskInstanceRecord>>;

    /// Queue every `up_for_retry` instance whose delay has passed (try number + 1), except
    /// those of paused DAGs, which wait until the DAG is unpaused. Returns the runs touched.
    async fn queue_due_retries(&self, now: DateTime<Utc>) -> Result<Vec<i64>>;

    /// The earliest pending retry of a DAG that is not paused, to sleep until it.
    async fn next_retry_at(&self) -> Result<Option<DateTime<Utc>>>;

    /// Delete a run with its task instances, XComs and logs; a missing run is `NotFound`.
    async fn delete_run(&self, run: i64) -> Result<()>;

    /// Set a run's state by hand, as Airflow's "mark success/failed": to `success`, every
    /// unfinished task instance becomes `success`; to `failed`, running ones become `failed`
    /// and the other unfinished ones `skipped`; to `queued`, only the run's state changes.
    /// Emits `RunChanged`. Returns the run as it now is.
    async fn set_run_state(
        &self,
        run: i64,
        state: RunState,
        now: DateTime<Utc>,
    ) -> Result<RunRecord>;

    /// Set one task instance's state by hand (mark success, failed or skipped). A finished run
    /// goes back to `running` so the scheduler decides it again (downstream may now run).
    /// Emits `RunChanged`. Returns the instance as it now is.
    async fn set_task_instance_state(
        &self,
        ti: i64,
        state: TaskState,
        now: DateTime<Utc>,
    ) -> Result<TaskInstanceRecord>;

    /// Clear task instances of one run so they run again: each goes back to `none` with
    /// `max_tries` as given (Airflow: try number + retries), its XComs deleted; running and
    /// queued instances are left alone. The run goes back to `queued` if it had finished.
    /// Emits `RunChanged`. Returns the instances cleared.
    async fn clear_task_instances(
        &self,
        run: i64,
        clear: &[ClearTaskInstance],
        now: DateTime<Utc>,
    ) -> Result<Vec<TaskInstanceRecord>>;

    /// Sensor instances waiting between pokes (`up_for_reschedule`) with their runs, of one
    /// run or of all, soonest poke first; those of paused DAGs say so (`dag_paused`).
    async fn waiting_sensors(&self, run: Option<i64>) -> Result<Vec<WaitingSensor>>;

    /// Apply pokes, each guarded by `up_for_reschedule`, its try number and poke count, and
    /// its DAG not being paused, all in one transaction; a poke whose guard failed changes
    /// nothing (another scheduler poked first, the instance was cleared, or the DAG paused). Returns, per poke, whether it applied. Emits
    /// `RunChanged` for runs whose sensors settled and `TasksQueued` if any was queued.
    async fn record_pokes(&self, pokes: &[Poke]) -> Result<Vec<bool>>;

    /// A sensor instance's progress in its current try (`None`: no such instance).
    async fn sensor_progress(&self, ti: i64) -> Result<Option<SensorProgress>>;
}

/// What tries leave behind for people and for their downstream: log lines and XComs.
#[async_trait]
pub trait LogsAndXcoms: Send + Sync + 'static {
    /// Append lines to a try's log (numbered in order of arrival).
    async fn append_log(&self, ti: i64, try_number: u32, lines: &[LogLine]) -> Result<()>;

    /// What a running try reports before its end, in one write: its log lines, appended as
    /// by `append_log`, and its process id, recorded while that try is still running.
    async fn append_try_output(&self, output: &TryOutput<'_>) -> Result<()>;

    /// Lines of a try's log with sequence number greater than `after`, at most `limit`.
    async fn read_log(
        &self,
        ti: i64,
        try_number: u32,
        after: i64,
        limit: usize,
    ) -> Result<Vec<LogRecord>>;

    async fn get_xcom(&self, key: &XcomKey) -> Result<Option<Value>>;

    /// XComs of one run, optionally of one task, ordered by task, map index and key.
    async fn list_xcoms(&self, run: i64, task_id: Option<&str>) -> Result<Vec<XcomRecord>>;
}

/// Administration and secrets: variables, connections, pools, users, the components'
/// heartbeats and the state counts that health and metrics read, and which backend this is.
#[async_trait]
pub trait Admin: Send + Sync + 'static {
    /// Which backend this is (`sqlite`, `postgres`), for logs and benchmarks.
    fn backend(&self) -> &'static str;

    /// Record that a component (`scheduler`, `worker`, …) with this id is alive.
    async fn record_heartbeat(
        &self,
        component: &str,
        id: &str,
        hostname: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// The newest heartbeat of any instance of a component.
    async fn latest_heartbeat(&self, component: &str) -> Result<Option<DateTime<Utc>>>;

    /// How many runs and task instances are in each state, and queued instances per queue,
    /// for metrics.
    async fn state_counts(&self) -> Result<StateCounts>;

    /// Insert or replace a variable (as sealed by [`secrets::Vault`]).
    async fn set_variable(&self, variable: &VariableRecord) -> Result<()>;

    async fn get_variable(&self, key: &str) -> Result<Option<VariableRecord>>;

    /// Every variable, ordered by key.
    async fn list_variables(&self) -> Result<Vec<VariableRecord>>;

    /// Delete a variable; a missing one is `NotFound`.
    async fn delete_variable(&self, key: &str) -> Result<()>;

    /// Insert or replace a connection (as sealed by [`secrets::Vault`]).
    async fn set_connection(&self, connection: &ConnectionRecord) -> Result<()>;

    async fn get_connection(&self, conn_id: &str) -> Result<Option<ConnectionRecord>>;

    /// Every connection, ordered by id.
    async fn list_connections(&self) -> Result<Vec<ConnectionRecord>>;

    /// Delete a connection; a missing one is `NotFound`.
    async fn delete_connection(&self, conn_id: &str) -> Result<()>;

    /// Insert or replace a pool.
    async fn set_pool(&self, pool: &PoolRecord) -> Result<()>;

    /// Every pool with its occupancy, ordered by name.
    async fn list_pools(&self) -> Result<Vec<PoolStats>>;

    /// Delete a pool; `default_pool` cannot be deleted (`Conflict`), a missing one is
    /// `NotFound`.
    async fn delete_pool(&self, name: &str) -> Result<()>;

    /// Create a user; a duplicate username is a `Conflict`.
    async fn create_user(&self, user: &NewUser) -> Result<UserRecord>;

    async fn get_user(&self, username: &str) -> Result<Option<UserRecord>>;

    async fn list_users(&self) -> Result<Vec<UserRecord>>;

    /// Delete a user; a missing one is `NotFound`.
    async fn delete_user(&self, username: &str) -> Result<()>;

    /// Retention: delete finished runs (`success`, `failed`) that ended before
    /// `request.before`, with everything keyed by them (task instances, their log lines,
    /// XComs), and component heartbeats older than it; in a dry run, count the same in the
    /// same batches and delete nothing.
    ///
    /// A run's age is its `end_date`, and `queued_at` (when the row was made) for a finished
    /// run without one. Not the logical date: a backfill made today for 2020 is today's
    /// history, and deleting it by its logical date would take it away the day it ran. Not
    /// `start_date` either: it is empty for a run marked finished before it started.
    ///
    /// Never deleted: an unfinished run; each DAG's newest scheduled run (where its cron
    /// schedule stands, [`RunQueue::last_scheduled_logical_date`]); each DAG's newest run by
    /// logical date, and the run just before each unfinished run by logical date (the
    /// "previous run" that `depends_on_past` and `wait_for_downstream` read). Component
    /// heartbeats keep each component's newest row, so health still says when it last beat.
    /// Import errors stay: there is one per broken file, replaced on every parse and cleared
    /// when the file is fixed or removed, so they never grow old, and deleting one would hide
    /// a broken file until it changes again. DAG versions stay too: they grow with edits, not
    /// with time, and runs name the version they ran.
    ///
    /// Runs go `batch_size` at a time, each batch its own short transaction whose conditions
    /// are checked again inside it (on Postgres with the runs' row locks), so a run reopened
    /// meanwhile is kept. Emits no events.
    async fn clean_history(&self, request: &CleanHistory) -> Result<CleanReport>;

    /// Write finished runs as they happened, with their task instances, log lines and XComs,
    /// in one transaction, in bulk (one statement per table): to load a big history. A run
    /// whose `(dag_id, run_id)` is stored already is skipped with everything of it. An
    /// unfinished run or task instance, or a run or task instance given twice, is a
    /// `Conflict`, and nothing is written. Returns the rows written per table. Emits no
    /// events: finished runs need no decision.
    async fn import_history(&self, runs: &[HistoricRun]) -> Result<HistoryRows>;

    /// Refresh the query planner's statistics of every table (`ANALYZE`), so that listings
    /// are planned for the rows there are: after a bulk load such as `import_history`, which
    /// writes faster than a database notices (Postgres's autovacuum catches up within
    /// minutes; SQLite keeps no statistics until asked).
    async fn refresh_statistics(&self) -> Result<()>;
}
