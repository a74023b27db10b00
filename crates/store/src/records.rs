//! The rows the store reads and writes, as plain structs shared by every backend.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dag::{Dag, RunState, RunType, TaskState};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A DAG as stored: its current definition and its scheduling flags.
#[derive(Debug, Clone)]
pub struct DagRecord {
    pub dag_id: String,
    pub fileloc: String,
    pub is_paused: bool,
    /// False once its file is gone; its runs stay.
    pub is_active: bool,
    /// Hash of the file the current definition came from.
    pub version: String,
    pub last_parsed_at: DateTime<Utc>,
    pub dag: Arc<Dag>,
    /// The logical date of the DAG's newest scheduled run: where its schedule stands, from
    /// which the next scheduled run follows (`dag::schedule::next_run`).
    pub last_scheduled_logical_date: Option<DateTime<Utc>>,
}

/// A file that failed to parse or validate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportErrorRecord {
    pub id: i64,
    pub filename: String,
    /// Every problem, one per line, each `file:line:col: message`.
    pub message: String,
    pub timestamp: DateTime<Utc>,
}

/// A run to create, with the task instances it starts with.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub dag_id: String,
    pub run_id: String,
    pub run_type: RunType,
    pub logical_date: Option<DateTime<Utc>>,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub data_interval_end: Option<DateTime<Utc>>,
    pub conf: Value,
    /// The DAG version (file hash) the run keeps to the end.
    pub version: String,
    pub now: DateTime<Utc>,
    pub tasks: Vec<NewTaskInstance>,
}

/// One task instance to create with a run.
#[derive(Debug, Clone)]
pub struct NewTaskInstance {
    pub task_id: String,
    /// −1 when unmapped.
    pub map_index: i32,
    /// Retries allowed: a try fails for good once `try_number > max_tries`.
    pub max_tries: u32,
    pub queue: String,
    pub pool: String,
    pub pool_slots: u32,
    pub priority_weight: i64,
    /// Airflow's operator name, for display.
    pub operator: String,
}

impl NewTaskInstance {
    /// The unmapped instance of `task`, with the task's own retry and routing settings.
    pub fn of(task: &dag::Task, priority_weight: i64) -> Self {
        NewTaskInstance {
            task_id: task.task_id.clone(),
            map_index: -1,
            max_tries: task.retries,
            queue: task.queue.clone(),
            pool: task.pool.clone(),
            pool_slots: task.pool_slots,
            priority_weight,
            operator: task.kind.operator().to_string(),
        }
    }
}

/// A DAG run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Store key, unique across DAGs.
    pub id: i64,
    pub dag_id: String,
    pub run_id: String,
    pub run_type: RunType,
    pub state: RunState,
    pub logical_date: Option<DateTime<Utc>>,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub data_interval_end: Option<DateTime<Utc>>,
    pub conf: Value,
    pub version: String,
    pub queued_at: DateTime<Utc>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    /// Who triggered the run, when a user did (through the API): Airflow's
    /// `triggering_user_name`. `None` for scheduled runs and runs other runs triggered.
    #[serde(default)]
    pub triggering_user_name: Option<String>,
}

impl RunRecord {
    /// What templates of `task_id` (map index `map_index`, try `try_number`) see in this run:
    /// dates and ids from the run, params as the DAG's defaults merged with the run's conf.
    pub fn template_context(
        &self,
        dag: &Dag,
        task_id: &str,
        map_index: i32,
        try_number: u32,
        xcoms: &[XcomRecord],
    ) -> dag::template::TemplateContext {
        let mut params: std::collections::BTreeMap<String, Value> = dag
            .params
            .iter()
            .map(|(name, param)| (name.clone(), param.default.clone()))
            .collect();
        if let Value::Object(conf) = &self.conf {
            for (name, value) in conf {
                params.insert(name.clone(), value.clone());
            }
        }
        dag::template::TemplateContext {
            dag_id: self.dag_id.clone(),
            task_id: task_id.to_string(),
            run_id: self.run_id.clone(),
            run_type: self.run_type.as_str().to_string(),
            logical_date: self.logical_date,
            data_interval_start: self.data_interval_start,
            data_interval_end: self.data_interval_end,
            conf: self.conf.clone(),
            params,
            try_number,
            map_index,
            xcoms: xcoms
                .iter()
                .map(|x| dag::template::XcomValue {
                    task_id: x.task_id.clone(),
                    map_index: x.map_index,
                    key: x.key.clone(),
                    value: x.value.clone(),
                })
                .collect(),
            extra: Default::default(),
            variables: Default::default(),
            connections: Default::default(),
            semantics: dag.semantics(),
        }
    }
}

/// Which way a listing is sorted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortDirection {
    #[default]
    Ascending,
    Descending,
}

/// How a listing is ordered: by `key`, ties by the store key in the same direction, so pages
/// never overlap. An empty value (a run not started yet has no start date) sorts before every
/// other when ascending, after them when descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort<K> {
    pub key: K,
    pub direction: SortDirection,
}

impl<K> Sort<K> {
    pub fn ascending(key: K) -> Sort<K> {
        Sort {
            key,
            direction: SortDirection::Ascending,
        }
    }

    pub fn descending(key: K) -> Sort<K> {
        Sort {
            key,
            direction: SortDirection::Descending,
        }
    }
}

/// Bounds on an instant, each optional; an empty instant is outside every bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub gte: Option<DateTime<Utc>>,
    pub gt: Option<DateTime<Utc>>,
    pub lte: Option<DateTime<Utc>>,
    pub lt: Option<DateTime<Utc>>,
}

/// One page of a listing, and how many items match its filter in all.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage<T> {
    pub items: Vec<T>,
    /// Every match, across all pages (Airflow's `total_entries`).
    pub total_entries: u64,
}

/// What runs are ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOrder {
    Id,
    RunId,
    DagId,
    State,
    RunType,
    LogicalDate,
    /// The logical date, or when the run was queued for a run without one.
    RunAfter,
    StartDate,
    EndDate,
    QueuedAt,
    /// From start to end; empty until the run has ended.
    Duration,
}

/// Newest first: by `queued_at`, descending.
impl Default for Sort<RunOrder> {
    fn default() -> Self {
        Sort::descending(RunOrder::QueuedAt)
    }
}

/// Which runs to list: every condition given must hold (an empty list is no condition), in
/// `order`, `limit` of them after skipping `offset`.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub dag_id: Option<String>,
    /// Runs of any of these DAGs.
    pub dag_ids: Vec<String>,
    /// Runs in any of these states.
    pub states: Vec<RunState>,
    pub run_types: Vec<RunType>,
    /// Run ids matching this SQL `LIKE` pattern (`%`, `_`) anywhere, ignoring case.
    pub run_id_pattern: Option<String>,
    pub logical_date: TimeRange,
    /// The logical date, or `queued_at` for a run without one (Airflow's `run_after`).
    pub run_after: TimeRange,
    pub start_date: TimeRange,
    pub end_date: TimeRange,
    /// Runs whose conf, as JSON text, contains this text.
    pub conf_contains: Option<String>,
    /// Newest first by default.
    pub order: Sort<RunOrder>,
    pub limit: Option<usize>,
    pub offset: usize,
}

/// One task instance: one task (or one map index of it) in one run, at its latest try.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInstanceRecord {
    /// Store key.
    pub id: i64,
    /// Key of the run.
    pub run: i64,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i32,
    /// 0 until first queued; each queueing for a new try adds one.
    pub try_number: u32,
    pub max_tries: u32,
    pub state: TaskState,
    pub queue: String,
    pub pool: String,
    pub pool_slots: u32,
    pub priority_weight: i64,
    pub operator: String,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    /// When an `up_for_retry` instance may be queued again.
    pub next_retry_at: Option<DateTime<Utc>>,
    pub hostname: Option<String>,
    /// Process id of the running try's process.
    pub pid: Option<u32>,
    /// The worker that claimed the running try; its heartbeat keeps the try alive.
    pub worker_id: Option<String>,
    pub heartbeat_at: Option<DateTime<Utc>>,
}

/// What a scheduler sees of a run when deciding.
#[derive(Debug, Clone)]
pub struct RunSnapshot {
    pub run: RunRecord,
    pub task_instances: Vec<TaskInstanceRecord>,
    /// Runs of the same DAG in state `running` (this one included if running).
    pub running_runs_of_dag: usize,
    /// The run's XComs, when asked for with [`SnapshotXcoms::Included`]; else empty.
    pub xcoms: Vec<XcomRecord>,
}

/// Whether a run snapshot carries the run's XComs (they cost a read per decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotXcoms {
    Included,
    Omitted,
}

/// A scheduler's decision for one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunDecision {
    /// Move the run to this state (from the state in the snapshot).
    pub run_state: Option<RunState>,
    /// Task-instance transitions, each applied only if the instance is still in `from`.
    pub transitions: Vec<Transition>,
    /// XComs of tasks the scheduler settles itself (a `switch` task's choice).
    pub xcoms: Vec<DecidedXcom>,
    /// Log lines of tasks the scheduler settles itself (why a `switch` failed).
    pub logs: Vec<DecidedLog>,
    /// Mapped tasks to expand: each unmapped placeholder instance becomes map index 0 and
    /// gains siblings up to `count`, all in state `none`, to be decided next time.
    pub expansions: Vec<Expansion>,
}

/// Expand the placeholder instance `ti` (map index −1, state `none`) into `count` instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expansion {
    pub ti: i64,
    pub count: u32,
}

impl RunDecision {
    /// Nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.run_state.is_none()
            && self.transitions.is_empty()
            && self.xcoms.is_empty()
            && self.logs.is_empty()
            && self.expansions.is_empty()
    }
}

/// An XCom written with a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct DecidedXcom {
    pub task_id: String,
    pub map_index: i32,
    pub key: String,
    pub value: Value,
}

/// A log line written with a decision, to the given task instance and try.
#[derive(Debug, Clone, PartialEq)]
pub struct DecidedLog {
    pub ti: i64,
    pub try_number: u32,
    pub line: LogLine,
}

/// One guarded task-instance transition.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub ti: i64,
    pub from: TaskState,
    pub to: TaskState,
}

/// What [`crate::RunQueue::schedule_run`] changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduleOutcome {
    /// Task instances moved to `queued` (workers should claim).
    pub queued: usize,
    /// Transitions applied (guards that held).
    pub applied: usize,
    /// The run's state after the decision.
    pub run_state: Option<RunState>,
    /// Mapped tasks expanded: their new instances want deciding at once.
    pub expanded: usize,
    /// The run's DAG is paused: the run was not decided and nothing changed. It waits, as in
    /// Airflow, until the DAG is unpaused (its running tries finish meanwhile).
    pub paused: bool,
}

impl ScheduleOutcome {
    /// A run of a paused DAG, left as it is (in `state`).
    pub fn paused(state: RunState) -> ScheduleOutcome {
        ScheduleOutcome {
            run_state: Some(state),
            paused: true,
            ..ScheduleOutcome::default()
        }
    }
}

/// A worker's request for work.
#[derive(Debug, Clone)]
pub struct Claim {
    pub worker_id: String,
    pub hostname: String,
    pub queues: Vec<String>,
    pub limit: usize,
    pub now: DateTime<Utc>,
}

/// One try a worker runs: its task instance and try number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunningTry {
    pub ti: i64,
    pub try_number: u32,
}

/// A claimed task instance, now `running`, with the run it belongs to.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub ti: TaskInstanceRecord,
    pub run: RunRecord,
}

/// The end of a running try.
#[derive(Debug, Clone)]
pub struct Finish {
    pub ti: i64,
    pub try_number: u32,
    /// success, failed, skipped, up_for_retry (or up_for_reschedule).
    pub state: TaskState,
    pub end_date: DateTime<Utc>,
    /// For `up_for_retry`: when the next try may start.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// XComs pushed by the try, written with the state change.
    pub xcoms: Vec<(String, Value)>,
    /// The try's process id, when it had one that was not recorded yet.
    pub pid: Option<u32>,
    /// The try's last log lines, not appended yet: stored in the same transaction, even
    /// when the guard refuses the end (they are the try's, whatever became of its instance).
    pub log: Vec<LogLine>,
}

/// What a running try has produced since it last reported: its process id once it is
/// known, and log lines, stored together in one write.
#[derive(Debug, Clone, Copy)]
pub struct TryOutput<'a> {
    pub ti: i64,
    pub try_number: u32,
    /// Recorded only while the try is still running (guarded like its end).
    pub pid: Option<u32>,
    pub lines: &'a [LogLine],
}

/// Identifies one XCom value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XcomKey {
    pub run: i64,
    pub task_id: String,
    pub map_index: i32,
    pub key: String,
}

/// A stored XCom value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XcomRecord {
    pub task_id: String,
    pub map_index: i32,
    pub key: String,
    pub value: Value,
    pub timestamp: DateTime<Utc>,
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// Lines Updraft itself writes (start, exit status, timeout, cap reached).
    System,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
            LogStream::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<LogStream> {
        match s {
            "stdout" => Some(LogStream::Stdout),
            "stderr" => Some(LogStream::Stderr),
            "system" => Some(LogStream::System),
            _ => None,
        }
    }
}

/// A log line to append.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub timestamp: DateTime<Utc>,
    pub stream: LogStream,
    pub line: String,
}

/// A stored log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Order of arrival within the try, from 1.
    pub seq: i64,
    pub timestamp: DateTime<Utc>,
    pub stream: LogStream,
    pub line: String,
}

/// A user to create. The password is already hashed (argon2) by the caller.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub role: String,
    /// Airflow's `first_name`, `last_name` and `email`, each `None` when not given. An email
    /// belongs to one user at most (compared without case): a second is a `Conflict`.
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub now: DateTime<Utc>,
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A variable as stored. `val` is a Fernet token when `is_encrypted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariableRecord {
    pub key: String,
    pub val: String,
    pub description: Option<String>,
    pub is_encrypted: bool,
}

/// A connection as stored. `password` and `extra` are Fernet tokens when `is_encrypted`; read
/// and write connections through [`crate::secrets::Vault`], which seals and opens them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    pub conn_id: String,
    pub conn_type: String,
    pub description: Option<String>,
    pub host: Option<String>,
    pub schema: Option<String>,
    pub login: Option<String>,
    pub password: Option<String>,
    pub port: Option<i32>,
    pub extra: Option<String>,
    pub is_encrypted: bool,
}

/// A pool: at most `slots` slots taken by running task instances at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRecord {
    pub name: String,
    pub slots: i64,
    pub description: Option<String>,
}

/// A pool with the slots its task instances take now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    pub pool: PoolRecord,
    pub running_slots: i64,
    pub queued_slots: i64,
}

/// What task instances are ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskInstanceOrder {
    Id,
    /// By run, then map index (Airflow's default: a run's instances together, mapped ones in
    /// order).
    MapIndex,
    TaskId,
    State,
    StartDate,
    EndDate,
    TryNumber,
    PriorityWeight,
    Pool,
    Queue,
    RunId,
    /// The logical date of the instance's run.
    LogicalDate,
}

/// By run, then map index, ascending.
impl Default for Sort<TaskInstanceOrder> {
    fn default() -> Self {
        Sort::ascending(TaskInstanceOrder::MapIndex)
    }
}

/// Which task instances [`RunQueue::list_task_instances`](crate::RunQueue::list_task_instances)
/// returns: every condition given must hold (an empty list is no condition), in `order`,
/// `limit` of them after skipping `offset`.
#[derive(Debug, Clone, Default)]
pub struct TaskInstanceFilter {
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    /// Instances of any of these runs (store keys).
    pub runs: Vec<i64>,
    pub task_id: Option<String>,
    /// Task ids matching this SQL `LIKE` pattern (`%`, `_`) anywhere, ignoring case.
    pub task_id_pattern: Option<String>,
    pub states: Vec<TaskState>,
    pub map_indexes: Vec<i32>,
    /// Only mapped instances (map index 0 and up), with `Some(true)`; only unmapped ones with
    /// `Some(false)`.
    pub mapped: Option<bool>,
    pub try_numbers: Vec<u32>,
    pub pools: Vec<String>,
    pub queues: Vec<String>,
    pub order: Sort<TaskInstanceOrder>,
    pub limit: Option<usize>,
    pub offset: usize,
}

/// What DAGs are ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DagOrder {
    DagId,
    IsPaused,
    LastParsedAt,
    Fileloc,
}

/// Whether a DAG must carry any or all of the tags asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TagsMatch {
    #[default]
    Any,
    All,
}

/// Which DAGs [`Catalog::page_dags`](crate::Catalog::page_dags) returns: every condition given
/// must hold (an empty list is no condition), in `order`, `limit` of them after skipping
/// `offset`.
#[derive(Debug, Clone, Default)]
pub struct DagFilter {
    /// Any of these DAGs.
    pub dag_ids: Vec<String>,
    /// `Some(true)`: only DAGs whose file is still there (Airflow's `exclude_stale`).
    pub is_active: Option<bool>,
    pub is_paused: Option<bool>,
    /// DAG ids matching this SQL `LIKE` pattern (`%`, `_`) anywhere, ignoring case.
    pub dag_id_pattern: Option<String>,
    /// DAGs whose owner is any of these.
    pub owners: Vec<String>,
    /// DAGs with any (or all, as `tags_match` says) of these tags.
    pub tags: Vec<String>,
    pub tags_match: TagsMatch,
    /// Whether the DAG's file has an import error now.
    pub has_import_errors: Option<bool>,
    /// The state of the DAG's newest run (by `queued_at`); a DAG without runs has none.
    pub last_run_state: Option<RunState>,
    pub order: Sort<DagOrder>,
    pub limit: Option<usize>,
    pub offset: usize,
}

/// By DAG id, ascending.
impl Default for Sort<DagOrder> {
    fn default() -> Self {
        Sort::ascending(DagOrder::DagId)
    }
}

/// One task instance to clear, with the tries it may take from now on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearTaskInstance {
    pub ti: i64,
    pub max_tries: u32,
}

/// Counts by state, read in one go for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// (run state, count).
    pub runs: Vec<(String, i64)>,
    /// (task state, count).
    pub task_instances: Vec<(String, i64)>,
    /// (queue, queued instances).
    pub queued_by_queue: Vec<(String, i64)>,
}

// --- sensors ---

/// Where a sensor instance stands in its current try.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorProgress {
    /// When the next poke is due (set while `up_for_reschedule`).
    pub next_poke_at: Option<DateTime<Utc>>,
    /// The first poke of the try: `timeout` is measured from it, across reschedules.
    pub first_poke_at: Option<DateTime<Utc>>,
    /// Pokes of the try so far.
    pub poke_count: u32,
}

/// A sensor instance between pokes (`up_for_reschedule`), with its run.
#[derive(Debug, Clone)]
pub struct WaitingSensor {
    pub ti: TaskInstanceRecord,
    pub run: RunRecord,
    pub progress: SensorProgress,
    /// Its DAG is paused: it is not poked (a poke would be refused) until the unpause, whose
    /// `RunChanged` names its run.
    pub dag_paused: bool,
}

/// One poke of a waiting sensor, applied only if the instance is still waiting at this try
/// and poke count.
#[derive(Debug, Clone)]
pub struct Poke {
    pub ti: i64,
    pub try_number: u32,
    /// The poke count the poker saw (the guard).
    pub poke_count: u32,
    pub now: DateTime<Utc>,
    pub outcome: PokeOutcome,
    /// Lines for the try's log, written with the poke.
    pub log: Vec<LogLine>,
}

/// What a poke leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PokeOutcome {
    /// Not yet: poke again at this time (stays `up_for_reschedule`).
    Wait { next_poke_at: DateTime<Utc> },
    /// Settled: `success`, `failed` (timed out, or an error no retry can fix) or `skipped`.
    Settle(TaskState),
    /// The poke runs on a worker (a `command` sensor): queued, keeping its try number. Not
    /// counted as a poke here; the worker's finish counts it.
    Queue,
}

// --- retention and bulk history ---

/// Whether [`Admin::clean_history`](crate::Admin::clean_history) deletes, or only counts
/// what it would delete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanMode {
    #[default]
    Delete,
    /// Count, in the same batches, and delete nothing.
    DryRun,
}

/// What [`Admin::clean_history`](crate::Admin::clean_history) removes: finished history that
/// ended before `before`, `batch_size` runs per transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanHistory {
    /// The cutoff: finished runs that ended before it go (see `clean_history` for which are
    /// kept anyway), and component heartbeats older than it.
    pub before: DateTime<Utc>,
    /// Runs deleted per transaction. Each batch is one short transaction, so no writer waits
    /// for the whole clean (SQLite's one write lock, Postgres's row locks).
    pub batch_size: NonZeroUsize,
    pub mode: CleanMode,
}

impl CleanHistory {
    /// Runs per transaction unless told otherwise: a few thousand rows per table, a few tens of
    /// milliseconds of lock on either backend.
    pub const DEFAULT_BATCH_SIZE: NonZeroUsize = NonZeroUsize::new(1000).expect("1000 is not 0");

    /// Delete what ended before `before`, in batches of the default size.
    pub fn new(before: DateTime<Utc>) -> CleanHistory {
        CleanHistory {
            before,
            batch_size: Self::DEFAULT_BATCH_SIZE,
            mode: CleanMode::Delete,
        }
    }

    pub fn with_batch_size(mut self, batch_size: NonZeroUsize) -> CleanHistory {
        self.batch_size = batch_size;
        self
    }

    pub fn with_mode(mut self, mode: CleanMode) -> CleanHistory {
        self.mode = mode;
        self
    }
}

/// Rows per table of the run history (and the `jobs` heartbeats), as deleted by a clean or
/// written by an import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRows {
    pub dag_runs: u64,
    pub task_instances: u64,
    pub task_logs: u64,
    pub xcom: u64,
    pub jobs: u64,
}

impl HistoryRows {
    /// (table name, rows), in the order a clean deletes them (children first).
    pub fn tables(&self) -> [(&'static str, u64); 5] {
        [
            ("task_logs", self.task_logs),
            ("xcom", self.xcom),
            ("task_instances", self.task_instances),
            ("dag_runs", self.dag_runs),
            ("jobs", self.jobs),
        ]
    }

    /// Every row of every table.
    pub fn total(&self) -> u64 {
        self.tables().iter().map(|(_, rows)| rows).sum()
    }
}

impl std::ops::AddAssign for HistoryRows {
    fn add_assign(&mut self, other: HistoryRows) {
        self.dag_runs += other.dag_runs;
        self.task_instances += other.task_instances;
        self.task_logs += other.task_logs;
        self.xcom += other.xcom;
        self.jobs += other.jobs;
    }
}

/// What a clean did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanReport {
    pub mode: CleanMode,
    /// Rows deleted per table (in a dry run: that would be deleted).
    pub rows: HistoryRows,
    /// Transactions that deleted (or counted) something.
    pub batches: usize,
    /// How long the longest batch held its transaction, from its first statement to its
    /// commit: what a writer waiting behind it waited at most.
    pub longest_batch: Duration,
    /// The whole clean, batches and the reads choosing them.
    pub elapsed: Duration,
}

/// A finished run as it happened, with its task instances and what they left behind, for
/// [`Admin::import_history`](crate::Admin::import_history).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoricRun {
    pub dag_id: String,
    pub run_id: String,
    pub run_type: RunType,
    /// `success` or `failed`: history is finished.
    pub state: RunState,
    pub logical_date: DateTime<Utc>,
    pub data_interval_start: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
    pub conf: Value,
    /// The DAG version (file hash) it ran; a stored version, for the run's pages to show.
    pub version: String,
    pub queued_at: DateTime<Utc>,
    pub start_date: DateTime<Utc>,
    pub end_date: DateTime<Utc>,
    pub task_instances: Vec<HistoricTaskInstance>,
}

/// One finished task instance of a [`HistoricRun`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistoricTaskInstance {
    pub task_id: String,
    /// −1 when unmapped.
    pub map_index: i32,
    pub try_number: u32,
    pub max_tries: u32,
    /// A finished state (success, failed, skipped, upstream_failed, removed).
    pub state: TaskState,
    pub queue: String,
    pub pool: String,
    pub pool_slots: u32,
    pub priority_weight: i64,
    pub operator: String,
    pub queued_at: DateTime<Utc>,
    pub start_date: DateTime<Utc>,
    pub end_date: DateTime<Utc>,
    /// The log of its try `try_number`, numbered from 1 in this order.
    pub log: Vec<LogLine>,
    /// XComs it pushed (key, value), stamped with its end date.
    pub xcoms: Vec<(String, Value)>,
}
