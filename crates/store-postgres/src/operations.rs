//! `impl Store for PostgresStore`: each operation is one transaction running the SQL in
//! `queries/`; changes worth waking for are announced with `pg_notify` before commit.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dag::{Dag, RunState, TaskState};
use serde_json::Value;
use sqlx::Row;
use store::{
    Claim, ClaimedTask, ClearTaskInstance, ConnectionRecord, DagRecord, Decide, Finish,
    ImportErrorRecord, LogLine, LogRecord, NewRun, NewUser, PoolRecord, PoolStats, RunFilter,
    RunRecord, RunSnapshot, ScheduleOutcome, SnapshotXcoms, Store, StoreError, StoreEvent,
    TaskInstanceFilter, TaskInstanceRecord, UserRecord, VariableRecord, XcomKey, XcomRecord,
};
use store::{Poke, PokeOutcome, SensorProgress, WaitingSensor};
use tokio::sync::broadcast;

use crate::PostgresStore;
use crate::rows::{self, db};

type Result<T> = store::Result<T>;

macro_rules! query {
    ($name:literal) => {
        sqlx::query::<sqlx::Postgres>(include_str!(concat!("../queries/", $name, ".sql")))
    };
}

macro_rules! query_scalar {
    ($ty:ty, $name:literal) => {
        sqlx::query_scalar::<sqlx::Postgres, $ty>(include_str!(concat!(
            "../queries/",
            $name,
            ".sql"
        )))
    };
}

type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

impl PostgresStore {
    /// Announce `events` to other processes and commit; then tell this process's subscribers.
    /// The notifications are part of the transaction: Postgres delivers them only at commit,
    /// and never if it rolls back.
    async fn commit(&self, mut tx: Tx, events: &[StoreEvent]) -> Result<()> {
        for event in events {
            query!("notify")
                .bind(crate::events::CHANNEL)
                .bind(self.origin.payload(event))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        for event in events {
            // No subscriber is not an error: nobody is waiting.
            let _ = self.events.send(event.clone());
        }
        Ok(())
    }

    /// The definition of one DAG version, parsed once per store.
    async fn definition(&self, dag_id: &str, version: &str) -> Result<Option<Arc<Dag>>> {
        let key = (dag_id.to_string(), version.to_string());
        if let Some(dag) = self.cached(&key) {
            return Ok(Some(dag));
        }
        let text: Option<String> = query_scalar!(String, "get_dag_version")
            .bind(dag_id)
            .bind(version)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        let Some(text) = text else {
            return Ok(None);
        };
        let dag: Dag = serde_json::from_str(&text).map_err(|err| {
            StoreError::Corrupt(format!("definition of {dag_id} version {version}: {err}"))
        })?;
        let dag = Arc::new(dag);
        self.dags
            .lock()
            .expect("the DAG cache lock is never held across a panic")
            .insert(key, dag.clone());
        Ok(Some(dag))
    }

    fn cached(&self, key: &(String, String)) -> Option<Arc<Dag>> {
        self.dags
            .lock()
            .expect("the DAG cache lock is never held across a panic")
            .get(key)
            .cloned()
    }

    async fn dag_record(&self, row: rows::DagRow) -> Result<DagRecord> {
        let dag = self
            .definition(&row.dag_id, &row.version)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "DAG {} has no stored version {}",
                    row.dag_id, row.version
                ))
            })?;
        Ok(DagRecord {
            dag_id: row.dag_id,
            fileloc: row.fileloc,
            is_paused: row.is_paused,
            is_active: row.is_active,
            version: row.version,
            last_parsed_at: row.last_parsed_at,
            dag,
        })
    }

    async fn set_paused(&self, dag_id: &str, paused: bool) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let done = query!("set_dag_paused")
            .bind(dag_id)
            .bind(paused)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("DAG '{dag_id}'")));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    async fn sync_dag(&self, dag: &Dag, version: &str, now: DateTime<Utc>) -> Result<()> {
        let definition =
            serde_json::to_string(dag).map_err(|err| StoreError::Corrupt(err.to_string()))?;
        let mut tx = self.pool.begin().await.map_err(db)?;
        query!("upsert_dag")
            .bind(&dag.dag_id)
            .bind(&dag.fileloc)
            .bind(dag.is_paused_upon_creation)
            .bind(version)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        query!("insert_dag_version")
            .bind(&dag.dag_id)
            .bind(version)
            .bind(&definition)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn deactivate_dags(&self, dag_ids: &[String]) -> Result<()> {
        if dag_ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        query!("deactivate_dags")
            .bind(dag_ids)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn list_dags(&self) -> Result<Vec<DagRecord>> {
        let found = query!("list_dags")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let mut dags = Vec::with_capacity(found.len());
        for row in &found {
            dags.push(self.dag_record(rows::dag_row(row)?).await?);
        }
        Ok(dags)
    }

    async fn get_dag(&self, dag_id: &str) -> Result<Option<DagRecord>> {
        let found = query!("get_dag")
            .bind(dag_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        match found {
            Some(row) => Ok(Some(self.dag_record(rows::dag_row(&row)?).await?)),
            None => Ok(None),
        }
    }

    async fn get_dag_version(&self, dag_id: &str, version: &str) -> Result<Option<Arc<Dag>>> {
        self.definition(dag_id, version).await
    }

    async fn pause_dag(&self, dag_id: &str) -> Result<()> {
        self.set_paused(dag_id, true).await
    }

    async fn unpause_dag(&self, dag_id: &str) -> Result<()> {
        self.set_paused(dag_id, false).await
    }

    async fn record_import_error(
        &self,
        filename: &str,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        query!("record_import_error")
            .bind(filename)
            .bind(message)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn clear_import_error(&self, filename: &str) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        query!("clear_import_error")
            .bind(filename)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn list_import_errors(&self) -> Result<Vec<ImportErrorRecord>> {
        let found = query!("list_import_errors")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        found.iter().map(rows::import_error).collect()
    }

    async fn create_run(&self, new: &NewRun) -> Result<Option<RunRecord>> {
        // One array per column, so all task instances go in with one statement.
        let tasks = &new.tasks;
        let task_ids: Vec<&str> = tasks.iter().map(|t| t.task_id.as_str()).collect();
        let map_indexes: Vec<i32> = tasks.iter().map(|t| t.map_index).collect();
        let max_tries: Vec<i64> = tasks.iter().map(|t| i64::from(t.max_tries)).collect();
        let queues: Vec<&str> = tasks.iter().map(|t| t.queue.as_str()).collect();
        let pools: Vec<&str> = tasks.iter().map(|t| t.pool.as_str()).collect();
        let pool_slots: Vec<i64> = tasks.iter().map(|t| i64::from(t.pool_slots)).collect();
        let priorities: Vec<i64> = tasks.iter().map(|t| t.priority_weight).collect();
        let operators: Vec<&str> = tasks.iter().map(|t| t.operator.as_str()).collect();
        let mut tx = self.pool.begin().await.map_err(db)?;
        let inserted = query!("insert_run")
            .bind(&new.dag_id)
            .bind(&new.run_id)
            .bind(new.run_type.as_str())
            .bind(new.logical_date)
            .bind(new.data_interval_start)
            .bind(new.data_interval_end)
            .bind(&new.conf)
            .bind(&new.version)
            .bind(new.now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some(row) = inserted else {
            // A run with this run_id exists: nothing was written.
            return Ok(None);
        };
        let run = rows::run(&row)?;
        query!("insert_task_instances")
            .bind(run.id)
            .bind(&run.dag_id)
            .bind(&run.run_id)
            .bind(&task_ids)
            .bind(&map_indexes)
            .bind(&max_tries)
            .bind(&queues)
            .bind(&pools)
            .bind(&pool_slots)
            .bind(&priorities)
            .bind(&operators)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        self.commit(tx, &[StoreEvent::RunChanged { run: run.id }])
            .await?;
        Ok(Some(run))
    }

    async fn get_run(&self, dag_id: &str, run_id: &str) -> Result<Option<RunRecord>> {
        query!("get_run")
            .bind(dag_id)
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::run)
            .transpose()
    }

    async fn get_run_by_key(&self, run: i64) -> Result<Option<RunRecord>> {
        query!("get_run_by_key")
            .bind(run)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::run)
            .transpose()
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        let limit = filter
            .limit
            .map(|limit| i64::try_from(limit).unwrap_or(i64::MAX));
        let offset = i64::try_from(filter.offset).unwrap_or(i64::MAX);
        query!("list_runs")
            .bind(filter.dag_id.as_deref())
            .bind(filter.state.map(RunState::as_str))
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(rows::run)
            .collect()
    }

    async fn last_scheduled_logical_date(&self, dag_id: &str) -> Result<Option<DateTime<Utc>>> {
        query_scalar!(Option<DateTime<Utc>>, "last_scheduled_logical_date")
            .bind(dag_id)
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }

    async fn unfinished_runs(&self) -> Result<Vec<i64>> {
        query_scalar!(i64, "unfinished_runs")
            .fetch_all(&self.pool)
            .await
            .map_err(db)
    }

    async fn schedule_run(
        &self,
        run: i64,
        now: DateTime<Utc>,
        xcoms: SnapshotXcoms,
        decide: Decide<'_>,
    ) -> Result<ScheduleOutcome> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let row = query!("lock_run")
            .bind(run)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::NotFound(format!("run {run}")))?;
        let record = rows::run(&row)?;
        let task_instances = query!("task_instances")
            .bind(run)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?
            .iter()
            .map(rows::task_instance)
            .collect::<Result<Vec<_>>>()?;
        let running: i64 = query_scalar!(i64, "count_running_runs")
            .bind(&record.dag_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        // Read after the task instances: a finished task seen above has its XComs here too.
        let xcoms = match xcoms {
            SnapshotXcoms::Omitted => Vec::new(),
            SnapshotXcoms::Included => query!("list_xcoms")
                .bind(run)
                .bind(None::<&str>)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?
                .iter()
                .map(rows::xcom)
                .collect::<Result<Vec<_>>>()?,
        };
        let snapshot = RunSnapshot {
            run: record,
            task_instances,
            running_runs_of_dag: usize::try_from(running).unwrap_or(0),
            xcoms,
        };
        let decision = decide(&snapshot);

        let mut outcome = ScheduleOutcome {
            run_state: Some(snapshot.run.state),
            ..ScheduleOutcome::default()
        };
        for transition in &decision.transitions {
            let to = transition.to;
            let done = query!("transition_task_instance")
                .bind(transition.ti)
                .bind(transition.from.as_str())
                .bind(to.as_str())
                .bind(to == TaskState::Queued || to == TaskState::UpForReschedule)
                .bind(to == TaskState::Running || to.is_finished())
                .bind(to.is_finished())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            if done.rows_affected() > 0 {
                outcome.applied += 1;
                if to == TaskState::Queued {
                    outcome.queued += 1;
                }
            }
        }
        if let Some(to) = decision.run_state.filter(|to| *to != snapshot.run.state) {
            let done = query!("transition_run")
                .bind(run)
                .bind(snapshot.run.state.as_str())
                .bind(to.as_str())
                .bind(to == RunState::Running)
                .bind(to.is_finished())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            if done.rows_affected() > 0 {
                outcome.run_state = Some(to);
            }
        }
        for xcom in &decision.xcoms {
            query!("upsert_xcom")
                .bind(run)
                .bind(&xcom.task_id)
                .bind(xcom.map_index)
                .bind(&xcom.key)
                .bind(&xcom.value)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        for expansion in &decision.expansions {
            let placed = query!("expand_task_instance")
                .bind(expansion.ti)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            if placed.rows_affected() > 0 {
                query!("insert_mapped_instances")
                    .bind(expansion.ti)
                    .bind(i64::from(expansion.count))
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                outcome.expanded += 1;
            }
        }
        for log in &decision.logs {
            insert_log_lines(
                &mut tx,
                log.ti,
                log.try_number,
                std::slice::from_ref(&log.line),
            )
            .await?;
        }
        let mut events = Vec::new();
        // No RunChanged: the decision already is the run's fixpoint, and re-deciding it
        // would cost one more write transaction on every hop.
        if outcome.queued > 0 {
            events.push(StoreEvent::TasksQueued);
        }
        self.commit(tx, &events).await?;
        Ok(outcome)
    }

    async fn task_instances(&self, run: i64) -> Result<Vec<TaskInstanceRecord>> {
        query!("task_instances")
            .bind(run)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(rows::task_instance)
            .collect()
    }

    async fn get_task_instance(&self, ti: i64) -> Result<Option<TaskInstanceRecord>> {
        query!("get_task_instance")
            .bind(ti)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::task_instance)
            .transpose()
    }

    async fn claim_task_instances(&self, claim: &Claim) -> Result<Vec<ClaimedTask>> {
        if claim.limit == 0 || claim.queues.is_empty() {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await.map_err(db)?;
        query!("lock_pools").fetch_all(&mut *tx).await.map_err(db)?;
        let mut claimed = query!("claim_task_instances")
            .bind(claim.now)
            .bind(&claim.hostname)
            .bind(&claim.worker_id)
            .bind(&claim.queues)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?
            .iter()
            .map(rows::task_instance)
            .collect::<Result<Vec<_>>>()?;
        if claimed.is_empty() {
            tx.commit().await.map_err(db)?;
            return Ok(Vec::new());
        }
        let run_keys: BTreeSet<i64> = claimed.iter().map(|ti| ti.run).collect();
        let run_keys: Vec<i64> = run_keys.into_iter().collect();
        let runs = query!("runs_by_keys")
            .bind(&run_keys)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?
            .iter()
            .map(rows::run)
            .collect::<Result<Vec<_>>>()?;
        tx.commit().await.map_err(db)?;
        // RETURNING gives no order: hand them out in claim order.
        claimed.sort_by(|a, b| {
            b.priority_weight
                .cmp(&a.priority_weight)
                .then(a.queued_at.cmp(&b.queued_at))
                .then(a.id.cmp(&b.id))
        });
        claimed
            .into_iter()
            .map(|ti| {
                let run = runs
                    .iter()
                    .find(|run| run.id == ti.run)
                    .cloned()
                    .ok_or_else(|| StoreError::Corrupt(format!("run {} is missing", ti.run)))?;
                Ok(ClaimedTask { ti, run })
            })
            .collect()
    }

    async fn set_task_pid(&self, ti: i64, try_number: u32, pid: u32) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        query!("set_task_pid")
            .bind(ti)
            .bind(i64::from(try_number))
            .bind(i64::from(pid))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn heartbeat(&self, worker_id: &str, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        query!("heartbeat")
            .bind(worker_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn finish_task_instance(&self, finish: &Finish) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let finished = query!("finish_task_instance")
            .bind(finish.ti)
            .bind(i64::from(finish.try_number))
            .bind(finish.state.as_str())
            .bind(finish.end_date)
            .bind(finish.next_retry_at)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some(row) = finished else {
            // Not running at this try any more: a late or duplicate finish changes nothing.
            return Ok(false);
        };
        let run: i64 = row.try_get("run").map_err(db)?;
        let task_id: String = row.try_get("task_id").map_err(db)?;
        let map_index: i32 = row.try_get("map_index").map_err(db)?;
        for (key, value) in &finish.xcoms {
            query!("upsert_xcom")
                .bind(run)
                .bind(&task_id)
                .bind(map_index)
                .bind(key)
                .bind(value)
                .bind(finish.end_date)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        self.commit(tx, &[StoreEvent::RunChanged { run }]).await?;
        Ok(true)
    }

    async fn zombies(&self, stale_before: DateTime<Utc>) -> Result<Vec<TaskInstanceRecord>> {
        query!("zombies")
            .bind(stale_before)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(rows::task_instance)
            .collect()
    }

    async fn queue_due_retries(&self, now: DateTime<Utc>) -> Result<Vec<i64>> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        query!("clear_retry_xcoms")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let runs: BTreeSet<i64> = query_scalar!(i64, "queue_due_retries")
            .bind(now)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?
            .into_iter()
            .collect();
        let events: &[StoreEvent] = if runs.is_empty() {
            &[]
        } else {
            &[StoreEvent::TasksQueued]
        };
        self.commit(tx, events).await?;
        Ok(runs.into_iter().collect())
    }

    async fn next_retry_at(&self) -> Result<Option<DateTime<Utc>>> {
        query_scalar!(Option<DateTime<Utc>>, "next_retry_at")
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }

    async fn list_task_instances(
        &self,
        filter: &TaskInstanceFilter,
    ) -> Result<Vec<TaskInstanceRecord>> {
        query!("list_task_instances")
            .bind(filter.dag_id.as_deref())
            .bind(filter.run_id.as_deref())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(rows::task_instance)
            .collect()
    }

    async fn delete_dag(&self, dag_id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        for statement in [query!("delete_dag_runs"), query!("delete_dag_versions")] {
            statement.bind(dag_id).execute(&mut *tx).await.map_err(db)?;
        }
        let done = query!("delete_dag")
            .bind(dag_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("DAG '{dag_id}'")));
        }
        tx.commit().await.map_err(db)
    }

    async fn delete_run(&self, run: i64) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let done = query!("delete_run")
            .bind(run)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("DAG run {run}")));
        }
        tx.commit().await.map_err(db)
    }

    async fn set_run_state(
        &self,
        run: i64,
        state: RunState,
        now: DateTime<Utc>,
    ) -> Result<RunRecord> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // The run's lock first, as schedule_run takes it: a decision in flight finishes
        // before this change, or sees it.
        let current = query!("lock_run")
            .bind(run)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::run)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("DAG run {run}")))?;
        for (from, to) in store::hand_marks(state) {
            let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
            query!("mark_unfinished")
                .bind(run)
                .bind(&from)
                .bind(to.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let row = query!("set_run_state")
            .bind(run)
            .bind(state.as_str())
            .bind(state.is_finished())
            .bind(now)
            .bind(current.state.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::Conflict(format!("DAG run {run} changed meanwhile")))?;
        let record = rows::run(&row)?;
        self.commit(tx, &[StoreEvent::RunChanged { run }]).await?;
        Ok(record)
    }

    async fn set_task_instance_state(
        &self,
        ti: i64,
        state: TaskState,
        now: DateTime<Utc>,
    ) -> Result<TaskInstanceRecord> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let run: Option<i64> = query_scalar!(i64, "run_of_task_instance")
            .bind(ti)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let run = run.ok_or_else(|| StoreError::NotFound(format!("task instance {ti}")))?;
        // The run's lock first, as schedule_run takes it, then the instance as it now is.
        query!("lock_run")
            .bind(run)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let current = query!("get_task_instance")
            .bind(ti)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::task_instance)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("task instance {ti}")))?;
        let row = query!("set_task_instance_state")
            .bind(ti)
            .bind(state.as_str())
            .bind(now)
            .bind(current.state.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::Conflict(format!("task instance {ti} changed meanwhile")))?;
        let record = rows::task_instance(&row)?;
        query!("reopen_run")
            .bind(current.run)
            .bind(RunState::Running.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        self.commit(tx, &[StoreEvent::RunChanged { run: current.run }])
            .await?;
        Ok(record)
    }

    async fn clear_task_instances(
        &self,
        run: i64,
        clear: &[ClearTaskInstance],
        _now: DateTime<Utc>,
    ) -> Result<Vec<TaskInstanceRecord>> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // The run's lock first, as schedule_run takes it: a decision in flight must not
        // finish the run from instances read before this clear.
        query!("lock_run")
            .bind(run)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let mut cleared = Vec::new();
        for one in clear {
            let row = query!("clear_task_instance")
                .bind(one.ti)
                .bind(run)
                .bind(i64::from(one.max_tries))
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            let Some(row) = row else { continue };
            let record = rows::task_instance(&row)?;
            query!("delete_task_xcoms")
                .bind(run)
                .bind(&record.task_id)
                .bind(record.map_index)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            cleared.push(record);
        }
        if !cleared.is_empty() {
            query!("reopen_run")
                .bind(run)
                .bind(RunState::Queued.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let events = if cleared.is_empty() {
            Vec::new()
        } else {
            vec![StoreEvent::RunChanged { run }]
        };
        self.commit(tx, &events).await?;
        Ok(cleared)
    }

    async fn record_heartbeat(
        &self,
        component: &str,
        id: &str,
        hostname: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        query!("record_heartbeat")
            .bind(component)
            .bind(id)
            .bind(hostname)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn state_counts(&self) -> Result<store::StateCounts> {
        let mut counts = Vec::new();
        for statement in [
            query!("count_runs_by_state"),
            query!("count_task_instances_by_state"),
            query!("count_queued_by_queue"),
        ] {
            let rows = statement.fetch_all(&self.pool).await.map_err(db)?;
            let mut pairs = Vec::with_capacity(rows.len());
            for row in rows {
                let name: String = row.try_get("state").map_err(db)?;
                let n: i64 = row.try_get("n").map_err(db)?;
                pairs.push((name, n));
            }
            counts.push(pairs);
        }
        let queued_by_queue = counts.pop().unwrap_or_default();
        let task_instances = counts.pop().unwrap_or_default();
        let runs = counts.pop().unwrap_or_default();
        Ok(store::StateCounts {
            runs,
            task_instances,
            queued_by_queue,
        })
    }

    async fn latest_heartbeat(&self, component: &str) -> Result<Option<DateTime<Utc>>> {
        query_scalar!(Option<DateTime<Utc>>, "latest_heartbeat")
            .bind(component)
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }

    async fn get_xcom(&self, key: &XcomKey) -> Result<Option<Value>> {
        query_scalar!(Value, "get_xcom")
            .bind(key.run)
            .bind(&key.task_id)
            .bind(key.map_index)
            .bind(&key.key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
    }

    async fn list_xcoms(&self, run: i64, task_id: Option<&str>) -> Result<Vec<XcomRecord>> {
        query!("list_xcoms")
            .bind(run)
            .bind(task_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(rows::xcom)
            .collect()
    }

    async fn append_log(&self, ti: i64, try_number: u32, lines: &[LogLine]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        insert_log_lines(&mut tx, ti, try_number, lines).await?;
        tx.commit().await.map_err(db)
    }

    async fn read_log(
        &self,
        ti: i64,
        try_number: u32,
        after: i64,
        limit: usize,
    ) -> Result<Vec<LogRecord>> {
        query!("read_log")
            .bind(ti)
            .bind(i64::from(try_number))
            .bind(after)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(rows::log)
            .collect()
    }

    async fn create_user(&self, user: &NewUser) -> Result<UserRecord> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let created = query!("create_user")
            .bind(&user.username)
            .bind(&user.password_hash)
            .bind(&user.role)
            .bind(user.now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some(row) = created else {
            return Err(StoreError::Conflict(format!(
                "user '{}' already exists",
                user.username
            )));
        };
        let record = rows::user(&row)?;
        tx.commit().await.map_err(db)?;
        Ok(record)
    }

    async fn get_user(&self, username: &str) -> Result<Option<UserRecord>> {
        query!("get_user")
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        query!("list_users")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(rows::user)
            .collect()
    }

    async fn delete_user(&self, username: &str) -> Result<()> {
        self.delete_one(query!("delete_user"), username, "user")
            .await
    }
    async fn set_variable(&self, variable: &VariableRecord) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        query!("set_variable")
            .bind(&variable.key)
            .bind(&variable.val)
            .bind(&variable.description)
            .bind(variable.is_encrypted)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn get_variable(&self, key: &str) -> Result<Option<VariableRecord>> {
        query!("get_variable")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::variable)
            .transpose()
    }

    async fn list_variables(&self) -> Result<Vec<VariableRecord>> {
        query!("list_variables")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(rows::variable)
            .collect()
    }

    async fn delete_variable(&self, key: &str) -> Result<()> {
        self.delete_one(query!("delete_variable"), key, "variable")
            .await
    }

    async fn set_connection(&self, connection: &ConnectionRecord) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        query!("set_connection")
            .bind(&connection.conn_id)
            .bind(&connection.conn_type)
            .bind(&connection.description)
            .bind(&connection.host)
            .bind(&connection.schema)
            .bind(&connection.login)
            .bind(&connection.password)
            .bind(connection.port)
            .bind(&connection.extra)
            .bind(connection.is_encrypted)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn get_connection(&self, conn_id: &str) -> Result<Option<ConnectionRecord>> {
        query!("get_connection")
            .bind(conn_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::connection)
            .transpose()
    }

    async fn list_connections(&self) -> Result<Vec<ConnectionRecord>> {
        query!("list_connections")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(rows::connection)
            .collect()
    }

    async fn delete_connection(&self, conn_id: &str) -> Result<()> {
        self.delete_one(query!("delete_connection"), conn_id, "connection")
            .await
    }
    async fn set_pool(&self, pool: &PoolRecord) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        query!("set_pool")
            .bind(&pool.name)
            .bind(pool.slots)
            .bind(&pool.description)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn list_pools(&self) -> Result<Vec<PoolStats>> {
        query!("list_pools")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(|row| {
                Ok(PoolStats {
                    pool: PoolRecord {
                        name: row.try_get("name").map_err(db)?,
                        slots: row.try_get("slots").map_err(db)?,
                        description: row.try_get("description").map_err(db)?,
                    },
                    running_slots: row.try_get("running_slots").map_err(db)?,
                    queued_slots: row.try_get("queued_slots").map_err(db)?,
                })
            })
            .collect()
    }

    async fn delete_pool(&self, name: &str) -> Result<()> {
        if name == "default_pool" {
            return Err(StoreError::Conflict(
                "default_pool cannot be deleted".into(),
            ));
        }
        self.delete_one(query!("delete_pool"), name, "pool").await
    }

    // --- sensors ---

    async fn waiting_sensors(&self, run: Option<i64>) -> Result<Vec<WaitingSensor>> {
        let found = query!("waiting_sensors")
            .bind(run)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let mut waiting = Vec::with_capacity(found.len());
        for row in &found {
            waiting.push((rows::task_instance(row)?, rows::sensor_progress(row)?));
        }
        let run_keys: BTreeSet<i64> = waiting.iter().map(|(ti, _)| ti.run).collect();
        let run_keys: Vec<i64> = run_keys.into_iter().collect();
        let runs = query!("runs_by_keys")
            .bind(&run_keys)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(|row| rows::run(row).map(|run| (run.id, run)))
            .collect::<Result<std::collections::HashMap<_, _>>>()?;
        Ok(waiting
            .into_iter()
            .filter_map(|(ti, progress)| {
                let run = runs.get(&ti.run)?.clone();
                Some(WaitingSensor { ti, run, progress })
            })
            .collect())
    }

    async fn record_pokes(&self, pokes: &[Poke]) -> Result<Vec<bool>> {
        if pokes.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        let mut applied = Vec::with_capacity(pokes.len());
        let mut changed = BTreeSet::new();
        let mut queued = false;
        for poke in pokes {
            let (state, next_poke_at, counted) = poke_effect(poke);
            let run: Option<i64> = query_scalar!(i64, "record_poke")
                .bind(poke.ti)
                .bind(i64::from(poke.try_number))
                .bind(i64::from(poke.poke_count))
                .bind(state.as_str())
                .bind(poke.now)
                .bind(next_poke_at)
                .bind(counted)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            let Some(run) = run else {
                applied.push(false);
                continue;
            };
            if !poke.log.is_empty() {
                insert_log_lines(&mut tx, poke.ti, poke.try_number, &poke.log).await?;
            }
            if state.is_finished() {
                changed.insert(run);
            }
            queued |= state == TaskState::Queued;
            applied.push(true);
        }
        let mut events: Vec<StoreEvent> = changed
            .into_iter()
            .map(|run| StoreEvent::RunChanged { run })
            .collect();
        if queued {
            events.push(StoreEvent::TasksQueued);
        }
        self.commit(tx, &events).await?;
        Ok(applied)
    }

    async fn sensor_progress(&self, ti: i64) -> Result<Option<SensorProgress>> {
        query!("sensor_progress")
            .bind(ti)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::sensor_progress)
            .transpose()
    }
}

/// Append lines to a try's log inside a transaction, numbering them after the last.
async fn insert_log_lines(
    conn: &mut sqlx::PgConnection,
    ti: i64,
    try_number: u32,
    lines: &[LogLine],
) -> Result<()> {
    let timestamps: Vec<DateTime<Utc>> = lines.iter().map(|l| l.timestamp).collect();
    let streams: Vec<&str> = lines.iter().map(|l| l.stream.as_str()).collect();
    let texts: Vec<&str> = lines.iter().map(|l| l.line.as_str()).collect();
    query!("lock_log")
        .bind(ti)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let last: i64 = query_scalar!(i64, "max_log_seq")
        .bind(ti)
        .bind(i64::from(try_number))
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    query!("append_log")
        .bind(ti)
        .bind(i64::from(try_number))
        .bind(last)
        .bind(&timestamps)
        .bind(&streams)
        .bind(&texts)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(())
}

impl PostgresStore {
    /// Run a `DELETE … WHERE key = $1` statement; nothing deleted is `NotFound` for `what`.
    async fn delete_one(
        &self,
        statement: sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>,
        key: &str,
        what: &str,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let done = statement
            .bind(key.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("{what} '{key}'")));
        }
        Ok(())
    }
}

/// The state a poke moves its instance to, its next poke time, and whether it counts as a
/// poke.
fn poke_effect(poke: &Poke) -> (TaskState, Option<DateTime<Utc>>, bool) {
    match poke.outcome {
        PokeOutcome::Wait { next_poke_at } => {
            (TaskState::UpForReschedule, Some(next_poke_at), true)
        }
        PokeOutcome::Settle(state) => (state, None, true),
        PokeOutcome::Queue => (TaskState::Queued, None, false),
    }
}
