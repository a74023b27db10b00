//! A store that fails on demand, for the worker's fault tests: it passes every call to a real
//! store, except that while it is down every call fails as an outage
//! (`StoreError::Unavailable`), and log batches holding a chosen text fail as a database
//! error; and one whose events never arrive. The test observes through the real store, which
//! never fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dag::{Dag, RunState, TaskState};
use serde_json::Value;
use store::*;
use tokio::sync::broadcast;

/// Which calls a test counts, to know that the worker has met the outage.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    Heartbeat,
    Claim,
    Finish,
    AppendLog,
    Other,
}

pub struct FaultyStore {
    inner: Arc<dyn Store>,
    down: AtomicBool,
    /// While set, only the writes of tries' ends fail as unavailable.
    finishes_down: AtomicBool,
    /// Log batches with a line containing this fail with `StoreError::Database`.
    refused: std::sync::Mutex<Option<String>>,
    refused_heartbeats: AtomicUsize,
    refused_finishes: AtomicUsize,
    /// When set, subscribers get this channel, on which nothing is ever sent: the events of
    /// another process that never arrive (SQLite across processes).
    silent: Option<broadcast::Sender<StoreEvent>>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<FaultyStore> {
        Arc::new(FaultyStore::passing(inner))
    }

    /// A store whose subscribers never hear of any change.
    pub fn without_events(inner: Arc<dyn Store>) -> Arc<FaultyStore> {
        Arc::new(FaultyStore {
            silent: Some(broadcast::channel(1).0),
            ..FaultyStore::passing(inner)
        })
    }

    fn passing(inner: Arc<dyn Store>) -> FaultyStore {
        FaultyStore {
            inner,
            down: AtomicBool::new(false),
            finishes_down: AtomicBool::new(false),
            refused: std::sync::Mutex::new(None),
            refused_heartbeats: AtomicUsize::new(0),
            refused_finishes: AtomicUsize::new(0),
            silent: None,
        }
    }

    /// Take the database away (every call fails as unavailable) or bring it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Make only the writes of tries' ends fail as unavailable, or stop that.
    pub fn set_finishes_down(&self, down: bool) {
        self.finishes_down.store(down, Ordering::SeqCst);
    }

    /// Make every log batch with a line containing `text` fail with a database error.
    pub fn refuse_log_lines_with(&self, text: &str) {
        *self.refused.lock().expect("refused") = Some(text.to_string());
    }

    /// Heartbeats refused as unavailable so far.
    pub fn refused_heartbeats(&self) -> usize {
        self.refused_heartbeats.load(Ordering::SeqCst)
    }

    /// Try ends refused as unavailable so far.
    pub fn refused_finishes(&self) -> usize {
        self.refused_finishes.load(Ordering::SeqCst)
    }

    fn check(&self, op: Op) -> Result<()> {
        let finish_down = matches!(op, Op::Finish) && self.finishes_down.load(Ordering::SeqCst);
        if !self.down.load(Ordering::SeqCst) && !finish_down {
            return Ok(());
        }
        let counter = match op {
            Op::Heartbeat => Some(&self.refused_heartbeats),
            Op::Finish => Some(&self.refused_finishes),
            Op::Claim | Op::AppendLog | Op::Other => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        Err(StoreError::Unavailable("connection refused (test)".into()))
    }

    fn refuses(&self, lines: &[LogLine]) -> bool {
        let refused = self.refused.lock().expect("refused");
        refused
            .as_deref()
            .is_some_and(|text| lines.iter().any(|l| l.line.contains(text)))
    }
}

#[async_trait]
impl Catalog for FaultyStore {
    async fn sync_dag(&self, dag: &Dag, version: &str, now: DateTime<Utc>) -> Result<()> {
        self.check(Op::Other)?;
        self.inner.sync_dag(dag, version, now).await
    }

    async fn deactivate_dags(&self, dag_ids: &[String]) -> Result<()> {
        self.check(Op::Other)?;
        self.inner.deactivate_dags(dag_ids).await
    }

    async fn list_dags(&self) -> Result<Vec<DagRecord>> {
        self.check(Op::Other)?;
        self.inner.list_dags().await
    }

    async fn page_dags(&self, filter: &DagFilter) -> Result<ListPage<DagRecord>> {
        self.check(Op::Other)?;
        self.inner.page_dags(filter).await
    }

    async fn get_dag(&self, dag_id: &str) -> Result<Option<DagRecord>> {
        self.check(Op::Other)?;
        self.inner.get_dag(dag_id).await
    }

    async fn get_dag_version(&self, dag_id: &str, version: &str) -> Result<Option<Arc<Dag>>> {
        self.check(Op::Other)?;
        self.inner.get_dag_version(dag_id, version).await
    }

    async fn pause_dag(&self, dag_id: &str) -> Result<()> {
        self.check(Op::Other)?;
        self.inner.pause_dag(dag_id).await
    }

    async fn unpause_dag(&self, dag_id: &str) -> Result<()> {
        self.check(Op::Other)?;
        self.inner.unpause_dag(dag_id).await
    }

    async fn delete_dag(&self, dag_id: &str) -> Result<()> {
        self.check(Op::Other)?;
        self.inner.delete_dag(dag_id).await
    }

    async fn record_import_error(
        &self,
        filename: &str,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.check(Op::Other)?;
        self.inner.record_import_error(filename, message, now).await
    }

    async fn clear_import_error(&self, filename: &str) -> Result<()> {
        self.check(Op::Other)?;
        self.inner.clear_import_error(filename).await
    }

    async fn list_import_errors(&self) -> Result<Vec<ImportErrorRecord>> {
        self.check(Op::Other)?;
        self.inner.list_import_errors().await
    }
}

#[async_trait]
impl RunQueue for FaultyStore {
    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        match &self.silent {
            Some(silent) => silent.subscribe(),
            None => self.inner.subscribe(),
        }
    }

    async fn create_run(&self, run: &NewRun) -> Result<Option<RunRecord>> {
        self.check(Op::Other)?;
        self.inner.create_run(run).await
    }

    async fn get_run(&self, dag_id: &str, run_id: &str) -> Result<Option<RunRecord>> {
        self.check(Op::Other)?;
        self.inner.get_run(dag_id, run_id).await
    }

    async fn get_run_by_key(&self, run: i64) -> Result<Option<RunRecord>> {
        self.check(Op::Other)?;
        self.inner.get_run_by_key(run).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        self.check(Op::Other)?;
        self.inner.list_runs(filter).await
    }

    async fn page_runs(&self, filter: &RunFilter) -> Result<ListPage<RunRecord>> {
        self.check(Op::Other)?;
        self.inner.page_runs(filter).await
    }

    async fn recent_runs(&self, dag_ids: &[String], per_dag: usize) -> Result<Vec<RunRecord>> {
        self.check(Op::Other)?;
        self.inner.recent_runs(dag_ids, per_dag).await
    }

    async fn last_scheduled_logical_date(&self, dag_id: &str) -> Result<Option<DateTime<Utc>>> {
        self.check(Op::Other)?;
        self.inner.last_scheduled_logical_date(dag_id).await
    }

    async fn unfinished_runs(&self) -> Result<Vec<i64>> {
        self.check(Op::Other)?;
        self.inner.unfinished_runs().await
    }

    async fn schedule_run(
        &self,
        run: i64,
        now: DateTime<Utc>,
        xcoms: SnapshotXcoms,
        decide: Decide<'_>,
    ) -> Result<ScheduleOutcome> {
        self.check(Op::Other)?;
        self.inner.schedule_run(run, now, xcoms, decide).await
    }

    async fn task_instances(&self, run: i64) -> Result<Vec<TaskInstanceRecord>> {
        self.check(Op::Other)?;
        self.inner.task_instances(run).await
    }

    async fn get_task_instance(&self, ti: i64) -> Result<Option<TaskInstanceRecord>> {
        self.check(Op::Other)?;
        self.inner.get_task_instance(ti).await
    }

    async fn task_instances_by_keys(&self, keys: &[i64]) -> Result<Vec<TaskInstanceRecord>> {
        self.check(Op::Other)?;
        self.inner.task_instances_by_keys(keys).await
    }

    async fn list_task_instances(
        &self,
        filter: &TaskInstanceFilter,
    ) -> Result<Vec<TaskInstanceRecord>> {
        self.check(Op::Other)?;
        self.inner.list_task_instances(filter).await
    }

    async fn page_task_instances(
        &self,
        filter: &TaskInstanceFilter,
    ) -> Result<ListPage<(TaskInstanceRecord, RunRecord)>> {
        self.check(Op::Other)?;
        self.inner.page_task_instances(filter).await
    }

    async fn claim_task_instances(&self, claim: &Claim) -> Result<Vec<ClaimedTask>> {
        self.check(Op::Claim)?;
        self.inner.claim_task_instances(claim).await
    }

    async fn heartbeat(&self, worker_id: &str, now: DateTime<Utc>) -> Result<Vec<RunningTry>> {
        self.check(Op::Heartbeat)?;
        self.inner.heartbeat(worker_id, now).await
    }

    async fn finish_task_instances(&self, finishes: &[Finish]) -> Result<Vec<bool>> {
        self.check(Op::Finish)?;
        if finishes.iter().any(|f| self.refuses(&f.log)) {
            return Err(StoreError::Database(
                "invalid byte sequence for encoding".into(),
            ));
        }
        self.inner.finish_task_instances(finishes).await
    }

    async fn zombies(&self, stale_before: DateTime<Utc>) -> Result<Vec<TaskInstanceRecord>> {
        self.check(Op::Other)?;
        self.inner.zombies(stale_before).await
    }

    async fn queue_due_retries(&self, now: DateTime<Utc>) -> Result<Vec<i64>> {
        self.check(Op::Other)?;
        self.inner.queue_due_retries(now).await
    }

    async fn next_retry_at(&self) -> Result<Option<DateTime<Utc>>> {
        self.check(Op::Other)?;
        self.inner.next_retry_at().await
    }

    async fn delete_run(&self, run: i64) -> Result<()> {
        self.check(Op::Other)?;
        self.inner.delete_run(run).await
    }

    async fn set_run_state(
        &self,
        run: i64,
        state: RunState,
        now: DateTime<Utc>,
    ) -> Result<RunRecord> {
        self.check(Op::Other)?;
        self.inner.set_run_state(run, state, now).await
    }

    async fn set_task_instance_state(
        &self,
        ti: i64,
        state: TaskState,
        now: DateTime<Utc>,
    ) -> Result<TaskInstanceRecord> {
        self.check(Op::Other)?;
        self.inner.set_task_instance_state(ti, state, now).await
    }

    async fn clear_task_instances(
        &self,
        run: i64,
        clear: &[ClearTaskInstance],
        now: DateTime<Utc>,
    ) -> Result<Vec<TaskInstanceRecord>> {
        self.check(Op::Other)?;
        self.inner.clear_task_instances(run, clear, now).await
    }

    async fn waiting_sensors(&self, run: Option<i64>) -> Result<Vec<WaitingSensor>> {
        self.check(Op::Other)?;
        self.inner.waiting_sensors(run).await
    }

    async fn record_pokes(&self, pokes: &[Poke]) -> Result<Vec<bool>> {
        self.check(Op::Other)?;
        self.inner.record_pokes(pokes).await
    }

    async fn sensor_progress(&self, ti: i64) -> Result<Option<SensorProgress>> {
        self.check(Op::Other)?;
        self.inner.sensor_progress(ti).await
    }
}

#[async_trait]
impl LogsAndXcoms for FaultyStore {
    async fn append_log(&self, ti: i64, try_number: u32, lines: &[LogLine]) -> Result<()> {
        self.check(Op::AppendLog)?;
        if self.refuses(lines) {
            return Err(StoreError::Database(
                "invalid byte sequence for encoding".into(),
            ));
        }
        self.inner.append_log(ti, try_number, lines).await
    }

    async fn append_try_output(&self, output: &TryOutput<'_>) -> Result<()> {
        self.check(Op::AppendLog)?;
        if self.refuses(output.lines) {
            return Err(StoreError::Database(
                "invalid byte sequence for encoding".into(),
            ));
        }
        self.inner.append_try_output(output).await
    }

    async fn read_log(
        &self,
        ti: i64,
        try_number: u32,
        after: i64,
        limit: usize,
    ) -> Result<Vec<LogRecord>> {
        self.check(Op::Other)?;
        self.inner.read_log(ti, try_number, after, limit).await
    }

    async fn get_xcom(&self, key: &XcomKey) -> Result<Option<Value>> {
        self.check(Op::Other)?;
        self.inner.get_xcom(key).await
    }

    async fn list_xcoms(&self, run: i64, task_id: Option<&str>) -> Result<Vec<XcomRecord>> {
        self.check(Op::Other)?;
        self.inner.list_xcoms(run, task_id).await
    }
}

#[async_trait]
impl Admin for FaultyStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn record_heartbeat(
        &self,
        component: &str,
        id: &str,
        hostname: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.check(Op::Other)?;
        self.inner
            .record_heartbeat(component, id, hostname, now)
            .await
    }

    async fn latest_heartbeat(&self, component: &str) -> Result<Option<DateTime<Utc>>> {
        self.check(Op::Other)?;
        self.inner.latest_heartbeat(component).await
    }

    async fn state_counts(&self) -> Result<StateCounts> {
        self.check(Op::Other)?;
        self.inner.state_counts().await
    }

    async fn set_variable(&self, variable: &VariableRecord) -> Result<()> {
        self.check(Op::Other)?;
        self.inner.set_variable(variable).await
    }

    async fn get_variable(&self, key: &str) -> Result<Option<VariableRecord>> {
        self.check(Op::Other)?;
        self.inner.get_variable(key).await
    }

    async fn list_variables(&self) -> Result<Vec<VariableRecord>> {
        self.check(Op::Other)?;
        self.inner.list_variables().await
    }

    async fn delete_variable(&self, key: &str) -> Result<()> {
        self.check(Op::Other)?;
        self.inner.delete_variable(key).await
    }

    async fn set_connection(&self, connection: &ConnectionRecord) -> Result<()> {
        self.check(Op::Other)?;
        self.inner.set_connection(connection).await
    }

    async fn get_connection(&self, conn_id: &str) -> Result<Option<ConnectionRecord>> {
        self.check(Op::Other)?;
        self.inner.get_connection(conn_id).await
    }

    async fn list_connections(&self) -> Result<Vec<ConnectionRecord>> {
        self.check(Op::Other)?;
        self.inner.list_connections().await
    }

    async fn delete_connection(&self, conn_id: &str) -> Result<()> {
        self.check(Op::Other)?;
        self.inner.delete_connection(conn_id).await
    }

    async fn set_pool(&self, pool: &PoolRecord) -> Result<()> {
        self.check(Op::Other)?;
        self.inner.set_pool(pool).await
    }

    async fn list_pools(&self) -> Result<Vec<PoolStats>> {
        self.check(Op::Other)?;
        self.inner.list_pools().await
    }

    async fn delete_pool(&self, name: &str) -> Result<()> {
        self.check(Op::Other)?;
        self.inner.delete_pool(name).await
    }

    async fn create_user(&self, user: &NewUser) -> Result<UserRecord> {
        self.check(Op::Other)?;
        self.inner.create_user(user).await
    }

    async fn get_user(&self, username: &str) -> Result<Option<UserRecord>> {
        self.check(Op::Other)?;
        self.inner.get_user(username).await
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        self.check(Op::Other)?;
        self.inner.list_users().await
    }

    async fn delete_user(&self, username: &str) -> Result<()> {
        self.check(Op::Other)?;
        self.inner.delete_user(username).await
    }

    async fn clean_history(&self, request: &CleanHistory) -> Result<CleanReport> {
        self.check(Op::Other)?;
        self.inner.clean_history(request).await
    }

    async fn import_history(&self, runs: &[HistoricRun]) -> Result<HistoryRows> {
        self.check(Op::Other)?;
        self.inner.import_history(runs).await
    }

    async fn refresh_statistics(&self) -> Result<()> {
        self.check(Op::Other)?;
        self.inner.refresh_statistics().await
    }
}
