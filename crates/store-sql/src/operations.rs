//! The store traits for [`SqlStore`]: each operation is one transaction running the backend's
//! SQL from `queries/`, with the events it causes sent after commit.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dag::{Dag, RunState, TaskState};
use serde_json::Value;
use store::{
    Admin, Catalog, Claim, ClaimedTask, CleanHistory, CleanReport, ClearTaskInstance,
    ConnectionRecord, DagFilter, DagRecord, Decide, Finish, HistoricRun, HistoryRows,
    ImportErrorRecord, ListPage, LogLine, LogRecord, LogsAndXcoms, NewRun, NewUser, Poke,
    PokeOutcome, PoolRecord, PoolStats, RunFilter, RunQueue, RunRecord, RunSnapshot, RunningTry,
    ScheduleOutcome, SensorProgress, SnapshotXcoms, StateCounts, StoreError, StoreEvent,
    TaskInstanceFilter, TaskInstanceRecord, TryOutput, UserRecord, VariableRecord, WaitingSensor,
    XcomKey, XcomRecord,
};
use tokio::sync::broadcast;

use crate::listing::Count;
use crate::transitions::{RunChange, TaskChange};
use crate::{
    Arg, Col, Column, Dialect, Result, SqlRow, SqlStore, execute, fetch_all, fetch_optional, rows,
    to_json_text,
};

impl<D: Dialect> SqlStore<D> {
    /// Every row of the read query `name`.
    async fn read_all(&self, name: &'static str, args: &[Arg<'_>]) -> Result<Vec<D::Row>> {
        let mut conn = self.dialect.read().await?;
        fetch_all::<D>(&mut conn, name, args).await
    }

    /// The first row of the read query `name`, if any.
    async fn read_optional(&self, name: &'static str, args: &[Arg<'_>]) -> Result<Option<D::Row>> {
        let mut conn = self.dialect.read().await?;
        fetch_optional::<D>(&mut conn, name, args).await
    }

    /// Run one statement in a write transaction of its own; how many rows it changed.
    async fn write_one(&self, name: &'static str, args: &[Arg<'_>]) -> Result<u64> {
        let mut tx = self.dialect.write().await?;
        let changed = execute::<D>(&mut tx, name, args).await?;
        self.commit(tx, &[]).await?;
        Ok(changed)
    }

    /// Run a `DELETE … WHERE key = $1` statement; nothing deleted is `NotFound` for `what`.
    async fn delete_one(&self, name: &'static str, key: &str, what: &str) -> Result<()> {
        if self.write_one(name, &[Arg::Text(key)]).await? == 0 {
            return Err(StoreError::NotFound(format!("{what} '{key}'")));
        }
        Ok(())
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
            last_scheduled_logical_date: row.last_scheduled_logical_date,
        })
    }

    /// Set a DAG's paused flag. Unpausing also names the DAG's unfinished runs in
    /// `RunChanged` events (read in the same transaction), so the runs that waited are decided
    /// at once rather than on the next poll.
    async fn set_paused(&self, dag_id: &str, paused: bool) -> Result<()> {
        let mut tx = self.dialect.write().await?;
        let changed = execute::<D>(
            &mut tx,
            "set_dag_paused",
            &[Arg::Text(dag_id), Arg::Bool(paused)],
        )
        .await?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("DAG '{dag_id}'")));
        }
        let mut events = Vec::new();
        if !paused {
            for row in
                fetch_all::<D>(&mut tx, "unfinished_runs_of_dag", &[Arg::Text(dag_id)]).await?
            {
                events.push(StoreEvent::RunChanged {
                    run: row.int(Col::First)?,
                });
            }
        }
        self.commit(tx, &events).await
    }

    /// Insert a run with its task instances, recording who triggered it if a user did.
    async fn insert_run(&self, new: &NewRun, user: Option<&str>) -> Result<Option<RunRecord>> {
        let tasks = &new.tasks;
        // One column per field, so all task instances go in with one statement.
        let tasks = Arg::Table(vec![
            Column::Texts(tasks.iter().map(|t| t.task_id.as_str()).collect()),
            Column::Int32s(tasks.iter().map(|t| t.map_index).collect()),
            Column::Ints(tasks.iter().map(|t| i64::from(t.max_tries)).collect()),
            Column::Texts(tasks.iter().map(|t| t.queue.as_str()).collect()),
            Column::Texts(tasks.iter().map(|t| t.pool.as_str()).collect()),
            Column::Ints(tasks.iter().map(|t| i64::from(t.pool_slots)).collect()),
            Column::Ints(tasks.iter().map(|t| t.priority_weight).collect()),
            Column::Texts(tasks.iter().map(|t| t.operator.as_str()).collect()),
        ]);
        let mut tx = self.dialect.write().await?;
        let inserted = fetch_optional::<D>(
            &mut tx,
            "insert_run",
            &[
                Arg::Text(&new.dag_id),
                Arg::Text(&new.run_id),
                Arg::Text(new.run_type.as_str()),
                Arg::OptTime(new.logical_date),
                Arg::OptTime(new.data_interval_start),
                Arg::OptTime(new.data_interval_end),
                Arg::Json(&new.conf),
                Arg::Text(&new.version),
                Arg::Time(new.now),
                Arg::OptText(user),
            ],
        )
        .await?;
        let Some(row) = inserted else {
            // A run with this run_id exists: nothing was written.
            return Ok(None);
        };
        let run = rows::run(&row)?;
        execute::<D>(
            &mut tx,
            "insert_task_instances",
            &[
                Arg::Int(run.id),
                Arg::Text(&run.dag_id),
                Arg::Text(&run.run_id),
                tasks,
            ],
        )
        .await?;
        self.commit(tx, &[StoreEvent::RunChanged { run: run.id }])
            .await?;
        Ok(Some(run))
    }

    /// Apply one try's end inside `tx`, guarded by its state and try number, with its pid
    /// and XComs; the run it ended in, or `None` when the guard refused it.
    async fn finish_one(tx: &mut D::Conn, finish: &Finish) -> Result<Option<i64>> {
        if TaskChange::checked(TaskState::Running, finish.state).is_none() {
            return Ok(None);
        }
        let finished = fetch_optional::<D>(
            tx,
            "finish_task_instance",
            &[
                Arg::Int(finish.ti),
                Arg::Int(i64::from(finish.try_number)),
                Arg::Text(finish.state.as_str()),
                Arg::Time(finish.end_date),
                Arg::OptTime(finish.next_retry_at),
                Arg::OptInt(finish.pid.map(i64::from)),
            ],
        )
        .await?;
        let Some(row) = finished else {
            // Not running at this try any more: a late or duplicate finish changes nothing.
            return Ok(None);
        };
        let run = row.int("run")?;
        let task_id = row.text("task_id")?;
        let map_index = row.int32("map_index")?;
        for (key, value) in &finish.xcoms {
            execute::<D>(
                tx,
                "upsert_xcom",
                &[
                    Arg::Int(run),
                    Arg::Text(&task_id),
                    Arg::Int32(map_index),
                    Arg::Text(key),
                    Arg::Json(value),
                    Arg::Time(finish.end_date),
                ],
            )
            .await?;
        }
        Ok(Some(run))
    }

    /// The runs of these keys, by key.
    async fn runs_by_keys(
        conn: &mut D::Conn,
        keys: BTreeSet<i64>,
    ) -> Result<HashMap<i64, RunRecord>> {
        fetch_all::<D>(
            conn,
            "runs_by_keys",
            &[Arg::Ints(keys.into_iter().collect())],
        )
        .await?
        .iter()
        .map(|row| rows::run(row).map(|run| (run.id, run)))
        .collect()
    }
}

#[async_trait]
impl<D: Dialect> Catalog for SqlStore<D> {
    async fn sync_dag(&self, dag: &Dag, version: &str, now: DateTime<Utc>) -> Result<()> {
        let definition = to_json_text(dag)?;
        let mut tx = self.dialect.write().await?;
        execute::<D>(
            &mut tx,
            "upsert_dag",
            &[
                Arg::Text(&dag.dag_id),
                Arg::Text(&dag.fileloc),
                // The DAG folder puts the setting in for files that do not say.
                Arg::Bool(dag.is_paused_upon_creation.unwrap_or(false)),
                Arg::Text(version),
                Arg::Time(now),
            ],
        )
        .await?;
        execute::<D>(
            &mut tx,
            "insert_dag_version",
            &[
                Arg::Text(&dag.dag_id),
                Arg::Text(version),
                Arg::Text(&definition),
                Arg::Time(now),
            ],
        )
        .await?;
        self.commit(tx, &[]).await
    }

    async fn deactivate_dags(&self, dag_ids: &[String]) -> Result<()> {
        if dag_ids.is_empty() {
            return Ok(());
        }
        let ids = dag_ids.iter().map(String::as_str).collect();
        self.write_one("deactivate_dags", &[Arg::Texts(ids)])
            .await?;
        Ok(())
    }

    async fn list_dags(&self) -> Result<Vec<DagRecord>> {
        let found = self.read_all("list_dags", &[]).await?;
        let mut dags = Vec::with_capacity(found.len());
        for row in &found {
            dags.push(self.dag_record(rows::dag_row(row)?).await?);
        }
        Ok(dags)
    }

    async fn page_dags(&self, filter: &DagFilter) -> Result<ListPage<DagRecord>> {
        let listed = self.dag_rows(filter, Count::Total).await?;
        let mut dags = Vec::with_capacity(listed.rows.len());
        for row in &listed.rows {
            dags.push(self.dag_record(rows::dag_row(row)?).await?);
        }
        Ok(ListPage {
            items: dags,
            total_entries: listed.total.unwrap_or_default(),
        })
    }

    async fn get_dag(&self, dag_id: &str) -> Result<Option<DagRecord>> {
        match self.read_optional("get_dag", &[Arg::Text(dag_id)]).await? {
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

    async fn delete_dag(&self, dag_id: &str) -> Result<()> {
        let mut tx = self.dialect.write().await?;
        for name in ["delete_dag_runs", "delete_dag_versions"] {
            execute::<D>(&mut tx, name, &[Arg::Text(dag_id)]).await?;
        }
        if execute::<D>(&mut tx, "delete_dag", &[Arg::Text(dag_id)]).await? == 0 {
            return Err(StoreError::NotFound(format!("DAG '{dag_id}'")));
        }
        self.commit(tx, &[]).await
    }

    async fn record_import_error(
        &self,
        filename: &str,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.write_one(
            "record_import_error",
            &[Arg::Text(filename), Arg::Text(message), Arg::Time(now)],
        )
        .await?;
        Ok(())
    }

    async fn clear_import_error(&self, filename: &str) -> Result<()> {
        self.write_one("clear_import_error", &[Arg::Text(filename)])
            .await?;
        Ok(())
    }

    async fn list_import_errors(&self) -> Result<Vec<ImportErrorRecord>> {
        self.read_all("list_import_errors", &[])
            .await?
            .iter()
            .map(rows::import_error)
            .collect()
    }
}

/// What `schedule_run` reads of a run before deciding it.
enum Snapshot {
    /// The run is gone.
    Missing,
    /// The run's DAG is paused: the run is not decided, and is in this state.
    Paused(RunState),
    Ready(Box<RunSnapshot>),
}

/// A run with its task instances and the count of running runs of its DAG, read on `conn`
/// (a write transaction when the decision is to be applied); or only that its DAG is paused.
async fn snapshot<D: Dialect>(
    conn: &mut D::Conn,
    run: i64,
    xcoms: SnapshotXcoms,
) -> Result<Snapshot> {
    let Some(row) = fetch_optional::<D>(conn, "lock_run", &[Arg::Int(run)]).await? else {
        return Ok(Snapshot::Missing);
    };
    let record = rows::run(&row)?;
    let paused = fetch_optional::<D>(conn, "dag_paused", &[Arg::Text(&record.dag_id)])
        .await?
        .map(|row| row.boolean(Col::First))
        .transpose()?
        .unwrap_or(false);
    if paused {
        return Ok(Snapshot::Paused(record.state));
    }
    let task_instances = D::snapshot_task_instances(conn, run).await?;
    let running = fetch_optional::<D>(conn, "count_running_runs", &[Arg::Text(&record.dag_id)])
        .await?
        .map(|row| row.int(Col::First))
        .transpose()?
        .unwrap_or(0);
    // Read after the task instances: a finished task seen above has its XComs here too.
    let xcoms = match xcoms {
        SnapshotXcoms::Omitted => Vec::new(),
        SnapshotXcoms::Included => {
            fetch_all::<D>(conn, "list_xcoms", &[Arg::Int(run), Arg::OptText(None)])
                .await?
                .iter()
                .map(rows::xcom)
                .collect::<Result<Vec<_>>>()?
        }
    };
    Ok(Snapshot::Ready(Box::new(RunSnapshot {
        run: record,
        task_instances,
        running_runs_of_dag: usize::try_from(running).unwrap_or(0),
        xcoms,
    })))
}

/// Append lines to a try's log inside a write transaction, numbering them after the last.
async fn insert_log_lines<D: Dialect>(
    conn: &mut D::Conn,
    ti: i64,
    try_number: u32,
    lines: &[LogLine],
) -> Result<()> {
    let try_number = i64::from(try_number);
    if D::ROW_LOCKS {
        // Appends to one log take turns, so sequence numbers never collide.
        execute::<D>(conn, "lock_log", &[Arg::Int(ti)]).await?;
    }
    let last = fetch_optional::<D>(conn, "max_log_seq", &[Arg::Int(ti), Arg::Int(try_number)])
        .await?
        .map(|row| row.int(Col::First))
        .transpose()?
        .unwrap_or(0);
    let batch = Arg::Table(vec![
        Column::Times(lines.iter().map(|l| l.timestamp).collect()),
        Column::Texts(lines.iter().map(|l| l.stream.as_str()).collect()),
        Column::Texts(lines.iter().map(|l| l.line.as_str()).collect()),
    ]);
    execute::<D>(
        conn,
        "append_log",
        &[Arg::Int(ti), Arg::Int(try_number), Arg::Int(last), batch],
    )
    .await?;
    Ok(())
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

#[async_trait]
impl<D: Dialect> RunQueue for SqlStore<D> {
    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    async fn create_run(&self, new: &NewRun) -> Result<Option<RunRecord>> {
        self.insert_run(new, None).await
    }

    async fn create_run_triggered_by(&self, new: &NewRun, user: &str) -> Result<Option<RunRecord>> {
        self.insert_run(new, Some(user)).await
    }

    async fn get_run(&self, dag_id: &str, run_id: &str) -> Result<Option<RunRecord>> {
        self.read_optional("get_run", &[Arg::Text(dag_id), Arg::Text(run_id)])
            .await?
            .as_ref()
            .map(rows::run)
            .transpose()
    }

    async fn get_run_by_key(&self, run: i64) -> Result<Option<RunRecord>> {
        self.read_optional("get_run_by_key", &[Arg::Int(run)])
            .await?
            .as_ref()
            .map(rows::run)
            .transpose()
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        self.run_rows(filter, Count::PageOnly)
            .await?
            .rows
            .iter()
            .map(rows::run)
            .collect()
    }

    async fn page_runs(&self, filter: &RunFilter) -> Result<ListPage<RunRecord>> {
        let listed = self.run_rows(filter, Count::Total).await?;
        Ok(ListPage {
            items: listed.rows.iter().map(rows::run).collect::<Result<_>>()?,
            total_entries: listed.total.unwrap_or_default(),
        })
    }

    async fn recent_runs(&self, dag_ids: &[String], per_dag: usize) -> Result<Vec<RunRecord>> {
        if dag_ids.is_empty() || per_dag == 0 {
            return Ok(Vec::new());
        }
        self.read_all(
            "recent_runs",
            &[
                Arg::Texts(dag_ids.iter().map(String::as_str).collect()),
                Arg::Int(i64::try_from(per_dag).unwrap_or(i64::MAX)),
            ],
        )
        .await?
        .iter()
        .map(rows::run)
        .collect()
    }

    async fn last_scheduled_logical_date(&self, dag_id: &str) -> Result<Option<DateTime<Utc>>> {
        let row = self
            .read_optional("last_scheduled_logical_date", &[Arg::Text(dag_id)])
            .await?;
        Ok(row
            .map(|row| row.opt_time(Col::First))
            .transpose()?
            .flatten())
    }

    async fn unfinished_runs(&self) -> Result<Vec<i64>> {
        self.read_all("unfinished_runs", &[])
            .await?
            .iter()
            .map(|row| row.int(Col::First))
            .collect()
    }

    async fn schedule_run(
        &self,
        run: i64,
        now: DateTime<Utc>,
        xcoms: SnapshotXcoms,
        decide: Decide<'_>,
    ) -> Result<ScheduleOutcome> {
        if D::DECIDE_BEFORE_LOCKING {
            // Optimistic pre-check on a read connection: most events (a task finished with no
            // downstream to release) decide nothing, and those must not take the write lock
            // that every worker's log and finish writes wait on. Only a non-empty decision is
            // taken again inside the write transaction, from a fresh snapshot.
            let mut conn = self.dialect.read().await?;
            let snapshot = match snapshot::<D>(&mut conn, run, xcoms).await? {
                Snapshot::Missing => return Err(StoreError::NotFound(format!("run {run}"))),
                Snapshot::Paused(state) => return Ok(ScheduleOutcome::paused(state)),
                Snapshot::Ready(snapshot) => *snapshot,
            };
            let decision = decide(&snapshot);
            if decision.is_empty() {
                return Ok(ScheduleOutcome {
                    run_state: Some(snapshot.run.state),
                    ..ScheduleOutcome::default()
                });
            }
        }
        let mut tx = self.dialect.write().await?;
        let snapshot = match snapshot::<D>(&mut tx, run, xcoms).await? {
            Snapshot::Missing => return Err(StoreError::NotFound(format!("run {run}"))),
            Snapshot::Paused(state) => {
                self.commit(tx, &[]).await?;
                return Ok(ScheduleOutcome::paused(state));
            }
            Snapshot::Ready(snapshot) => *snapshot,
        };
        let decision = decide(&snapshot);

        let mut outcome = ScheduleOutcome {
            run_state: Some(snapshot.run.state),
            ..ScheduleOutcome::default()
        };
        for transition in &decision.transitions {
            let Some(change) = TaskChange::checked(transition.from, transition.to) else {
                continue;
            };
            let done = execute::<D>(
                &mut tx,
                "transition_task_instance",
                &[
                    Arg::Int(transition.ti),
                    Arg::Text(change.from.as_str()),
                    Arg::Text(change.to.as_str()),
                    Arg::Bool(change.starts_try),
                    Arg::Bool(change.starts),
                    Arg::Bool(change.ends),
                    Arg::Time(now),
                ],
            )
            .await?;
            if done > 0 {
                outcome.applied += 1;
                if change.to == TaskState::Queued {
                    outcome.queued += 1;
                }
            }
        }
        if let Some(to) = decision.run_state.filter(|to| *to != snapshot.run.state) {
            let change = RunChange::new(snapshot.run.state, to);
            let done = execute::<D>(
                &mut tx,
                "transition_run",
                &[
                    Arg::Int(run),
                    Arg::Text(change.from.as_str()),
                    Arg::Text(change.to.as_str()),
                    Arg::Bool(change.starts),
                    Arg::Bool(change.ends),
                    Arg::Time(now),
                ],
            )
            .await?;
            if done > 0 {
                outcome.run_state = Some(to);
            }
        }
        for xcom in &decision.xcoms {
            execute::<D>(
                &mut tx,
                "upsert_xcom",
                &[
                    Arg::Int(run),
                    Arg::Text(&xcom.task_id),
                    Arg::Int32(xcom.map_index),
                    Arg::Text(&xcom.key),
                    Arg::Json(&xcom.value),
                    Arg::Time(now),
                ],
            )
            .await?;
        }
        for expansion in &decision.expansions {
            let placed =
                execute::<D>(&mut tx, "expand_task_instance", &[Arg::Int(expansion.ti)]).await?;
            if placed > 0 {
                execute::<D>(
                    &mut tx,
                    "insert_mapped_instances",
                    &[Arg::Int(expansion.ti), Arg::Int(i64::from(expansion.count))],
                )
                .await?;
                outcome.expanded += 1;
            }
        }
        for log in &decision.logs {
            insert_log_lines::<D>(
                &mut tx,
                log.ti,
                log.try_number,
                std::slice::from_ref(&log.line),
            )
            .await?;
        }
        // No RunChanged: the decision already is the run's fixpoint, and re-deciding it
        // would cost one more write transaction on every hop.
        let mut events = Vec::with_capacity(2);
        if outcome.queued > 0 {
            events.push(StoreEvent::TasksQueued);
        }
        if outcome.applied > 0 || outcome.expanded > 0 || decision.run_state.is_some() {
            events.push(StoreEvent::RunProgressed { run });
        }
        self.commit(tx, &events).await?;
        Ok(outcome)
    }

    async fn task_instances(&self, run: i64) -> Result<Vec<TaskInstanceRecord>> {
        self.read_all("task_instances", &[Arg::Int(run)])
            .await?
            .iter()
            .map(rows::task_instance)
            .collect()
    }

    async fn get_task_instance(&self, ti: i64) -> Result<Option<TaskInstanceRecord>> {
        self.read_optional("get_task_instance", &[Arg::Int(ti)])
            .await?
            .as_ref()
            .map(rows::task_instance)
            .transpose()
    }

    async fn task_instances_by_keys(&self, keys: &[i64]) -> Result<Vec<TaskInstanceRecord>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.read_all("task_instances_by_keys", &[Arg::Ints(keys.to_vec())])
            .await?
            .iter()
            .map(rows::task_instance)
            .collect()
    }

    async fn list_task_instances(
        &self,
        filter: &TaskInstanceFilter,
    ) -> Result<Vec<TaskInstanceRecord>> {
        self.task_instance_rows(filter, Count::PageOnly)
            .await?
            .rows
            .iter()
            .map(rows::task_instance)
            .collect()
    }

    async fn page_task_instances(
        &self,
        filter: &TaskInstanceFilter,
    ) -> Result<ListPage<(TaskInstanceRecord, RunRecord)>> {
        let listed = self.task_instance_rows(filter, Count::Total).await?;
        let instances = listed
            .rows
            .iter()
            .map(rows::task_instance)
            .collect::<Result<Vec<_>>>()?;
        // The page's runs in one read; an instance's run is never deleted before it.
        let keys: BTreeSet<i64> = instances.iter().map(|ti| ti.run).collect();
        let mut runs = HashMap::new();
        if !keys.is_empty() {
            for row in self
                .read_all("runs_by_keys", &[Arg::Ints(keys.into_iter().collect())])
                .await?
            {
                let run = rows::run(&row)?;
                runs.insert(run.id, run);
            }
        }
        let items = instances
            .into_iter()
            .filter_map(|ti| runs.get(&ti.run).cloned().map(|run| (ti, run)))
            .collect();
        Ok(ListPage {
            items,
            total_entries: listed.total.unwrap_or_default(),
        })
    }

    async fn claim_task_instances(&self, claim: &Claim) -> Result<Vec<ClaimedTask>> {
        if claim.limit == 0 || claim.queues.is_empty() {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
        let mut tx = self.dialect.write().await?;
        if D::ROW_LOCKS {
            // Claimers take pool slots one at a time.
            fetch_all::<D>(&mut tx, "lock_pools", &[]).await?;
        }
        let mut claimed = fetch_all::<D>(
            &mut tx,
            "claim_task_instances",
            &[
                Arg::Time(claim.now),
                Arg::Text(&claim.hostname),
                Arg::Text(&claim.worker_id),
                Arg::Texts(claim.queues.iter().map(String::as_str).collect()),
                Arg::Int(limit),
            ],
        )
        .await?
        .iter()
        .map(rows::task_instance)
        .collect::<Result<Vec<_>>>()?;
        if claimed.is_empty() {
            self.commit(tx, &[]).await?;
            return Ok(Vec::new());
        }
        let runs = Self::runs_by_keys(&mut tx, claimed.iter().map(|ti| ti.run).collect()).await?;
        let started: Vec<StoreEvent> = runs
            .keys()
            .map(|&run| StoreEvent::RunProgressed { run })
            .collect();
        self.commit(tx, &started).await?;
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
                    .get(&ti.run)
                    .cloned()
                    .ok_or_else(|| StoreError::Corrupt(format!("run {} is missing", ti.run)))?;
                Ok(ClaimedTask { ti, run })
            })
            .collect()
    }

    async fn heartbeat(&self, worker_id: &str, now: DateTime<Utc>) -> Result<Vec<RunningTry>> {
        let mut tx = self.dialect.write().await?;
        let rows = fetch_all::<D>(
            &mut tx,
            "heartbeat",
            &[Arg::Text(worker_id), Arg::Time(now)],
        )
        .await?;
        self.commit(tx, &[]).await?;
        rows.iter().map(rows::running_try).collect()
    }

    async fn finish_task_instances(&self, finishes: &[Finish]) -> Result<Vec<bool>> {
        if finishes.is_empty() {
            return Ok(Vec::new());
        }
        // Rows are taken in key order, as a heartbeat takes them, so that the two never
        // deadlock on Postgres; answers go back in the order given.
        let mut order: Vec<usize> = (0..finishes.len()).collect();
        order.sort_by_key(|&i| (finishes[i].ti, finishes[i].try_number));
        let mut tx = self.dialect.write().await?;
        let mut applied = vec![false; finishes.len()];
        let mut events = Vec::new();
        for i in order {
            let finish = &finishes[i];
            // The lines are the try's whatever became of its instance: stored even when the
            // guard below refuses the end.
            if !finish.log.is_empty() {
                insert_log_lines::<D>(&mut tx, finish.ti, finish.try_number, &finish.log).await?;
                events.push(StoreEvent::LogAppended { ti: finish.ti });
            }
            let Some(run) = Self::finish_one(&mut *tx, finish).await? else {
                continue;
            };
            applied[i] = true;
            let changed = StoreEvent::RunChanged { run };
            if !events.contains(&changed) {
                events.push(changed);
            }
        }
        self.commit(tx, &events).await?;
        Ok(applied)
    }

    async fn zombies(&self, stale_before: DateTime<Utc>) -> Result<Vec<TaskInstanceRecord>> {
        self.read_all("zombies", &[Arg::Time(stale_before)])
            .await?
            .iter()
            .map(rows::task_instance)
            .collect()
    }

    async fn queue_due_retries(&self, now: DateTime<Utc>) -> Result<Vec<i64>> {
        let mut tx = self.dialect.write().await?;
        execute::<D>(&mut tx, "clear_retry_xcoms", &[Arg::Time(now)]).await?;
        let runs = fetch_all::<D>(&mut tx, "queue_due_retries", &[Arg::Time(now)])
            .await?
            .iter()
            .map(|row| row.int(Col::First))
            .collect::<Result<BTreeSet<i64>>>()?;
        let events: &[StoreEvent] = if runs.is_empty() {
            &[]
        } else {
            &[StoreEvent::TasksQueued]
        };
        self.commit(tx, events).await?;
        Ok(runs.into_iter().collect())
    }

    async fn next_retry_at(&self) -> Result<Option<DateTime<Utc>>> {
        let row = self.read_optional("next_retry_at", &[]).await?;
        Ok(row
            .map(|row| row.opt_time(Col::First))
            .transpose()?
            .flatten())
    }

    async fn delete_run(&self, run: i64) -> Result<()> {
        let mut tx = self.dialect.write().await?;
        if execute::<D>(&mut tx, "delete_run", &[Arg::Int(run)]).await? == 0 {
            return Err(StoreError::NotFound(format!("DAG run {run}")));
        }
        self.commit(tx, &[]).await
    }

    async fn set_run_state(
        &self,
        run: i64,
        state: RunState,
        now: DateTime<Utc>,
    ) -> Result<RunRecord> {
        let mut tx = self.dialect.write().await?;
        // The run's lock first, as schedule_run takes it: a decision in flight finishes
        // before this change, or sees it.
        let current = fetch_optional::<D>(&mut tx, "lock_run", &[Arg::Int(run)])
            .await?
            .as_ref()
            .map(rows::run)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("DAG run {run}")))?;
        for (from, to) in store::hand_marks(state) {
            execute::<D>(
                &mut tx,
                "mark_unfinished",
                &[
                    Arg::Int(run),
                    Arg::Texts(from.iter().map(|s| s.as_str()).collect()),
                    Arg::Text(to.as_str()),
                    Arg::Time(now),
                ],
            )
            .await?;
        }
        let row = fetch_optional::<D>(
            &mut tx,
            "set_run_state",
            &[
                Arg::Int(run),
                Arg::Text(state.as_str()),
                Arg::Bool(state.is_finished()),
                Arg::Time(now),
                Arg::Text(current.state.as_str()),
            ],
        )
        .await?
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
        let mut tx = self.dialect.write().await?;
        if D::ROW_LOCKS {
            // The run's lock first, as schedule_run takes it, then the instance as it now is.
            let run = fetch_optional::<D>(&mut tx, "run_of_task_instance", &[Arg::Int(ti)])
                .await?
                .map(|row| row.int(Col::First))
                .transpose()?
                .ok_or_else(|| StoreError::NotFound(format!("task instance {ti}")))?;
            execute::<D>(&mut tx, "lock_run", &[Arg::Int(run)]).await?;
        }
        let current = fetch_optional::<D>(&mut tx, "get_task_instance", &[Arg::Int(ti)])
            .await?
            .as_ref()
            .map(rows::task_instance)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("task instance {ti}")))?;
        let row = fetch_optional::<D>(
            &mut tx,
            "set_task_instance_state",
            &[
                Arg::Int(ti),
                Arg::Text(state.as_str()),
                Arg::Time(now),
                Arg::Text(current.state.as_str()),
            ],
        )
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("task instance {ti} changed meanwhile")))?;
        let record = rows::task_instance(&row)?;
        execute::<D>(
            &mut tx,
            "reopen_run",
            &[Arg::Int(current.run), Arg::Text(RunState::Running.as_str())],
        )
        .await?;
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
        let mut tx = self.dialect.write().await?;
        if D::ROW_LOCKS {
            // The run's lock first, as schedule_run takes it: a decision in flight must not
            // finish the run from instances read before this clear.
            execute::<D>(&mut tx, "lock_run", &[Arg::Int(run)]).await?;
        }
        let mut cleared = Vec::new();
        for one in clear {
            let row = fetch_optional::<D>(
                &mut tx,
                "clear_task_instance",
                &[
                    Arg::Int(one.ti),
                    Arg::Int(run),
                    Arg::Int(i64::from(one.max_tries)),
                ],
            )
            .await?;
            let Some(row) = row else { continue };
            let record = rows::task_instance(&row)?;
            execute::<D>(
                &mut tx,
                "delete_task_xcoms",
                &[
                    Arg::Int(run),
                    Arg::Text(&record.task_id),
                    Arg::Int32(record.map_index),
                ],
            )
            .await?;
            cleared.push(record);
        }
        if !cleared.is_empty() {
            execute::<D>(
                &mut tx,
                "reopen_run",
                &[Arg::Int(run), Arg::Text(RunState::Queued.as_str())],
            )
            .await?;
        }
        let events: &[StoreEvent] = if cleared.is_empty() {
            &[]
        } else {
            &[StoreEvent::RunChanged { run }]
        };
        self.commit(tx, events).await?;
        Ok(cleared)
    }

    async fn waiting_sensors(&self, run: Option<i64>) -> Result<Vec<WaitingSensor>> {
        let mut conn = self.dialect.read().await?;
        let found = fetch_all::<D>(&mut conn, "waiting_sensors", &[Arg::OptInt(run)]).await?;
        let mut waiting = Vec::with_capacity(found.len());
        for row in &found {
            waiting.push((
                rows::task_instance(row)?,
                rows::sensor_progress(row)?,
                row.boolean("dag_paused")?,
            ));
        }
        let runs =
            Self::runs_by_keys(&mut conn, waiting.iter().map(|(ti, ..)| ti.run).collect()).await?;
        Ok(waiting
            .into_iter()
            .filter_map(|(ti, progress, dag_paused)| {
                let run = runs.get(&ti.run)?.clone();
                Some(WaitingSensor {
                    ti,
                    run,
                    progress,
                    dag_paused,
                })
            })
            .collect())
    }

    async fn record_pokes(&self, pokes: &[Poke]) -> Result<Vec<bool>> {
        if pokes.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.dialect.write().await?;
        let mut applied = Vec::with_capacity(pokes.len());
        let mut changed = BTreeSet::new();
        let mut queued = false;
        for poke in pokes {
            let (state, next_poke_at, counted) = poke_effect(poke);
            if TaskChange::checked(TaskState::UpForReschedule, state).is_none() {
                applied.push(false);
                continue;
            }
            let run = fetch_optional::<D>(
                &mut tx,
                "record_poke",
                &[
                    Arg::Int(poke.ti),
                    Arg::Int(i64::from(poke.try_number)),
                    Arg::Int(i64::from(poke.poke_count)),
                    Arg::Text(state.as_str()),
                    Arg::Time(poke.now),
                    Arg::OptTime(next_poke_at),
                    Arg::Bool(counted),
                ],
            )
            .await?;
            let Some(run) = run else {
                applied.push(false);
                continue;
            };
            let run = run.int(Col::First)?;
            if !poke.log.is_empty() {
                insert_log_lines::<D>(&mut tx, poke.ti, poke.try_number, &poke.log).await?;
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
        self.read_optional("sensor_progress", &[Arg::Int(ti)])
            .await?
            .as_ref()
            .map(rows::sensor_progress)
            .transpose()
    }
}

#[async_trait]
impl<D: Dialect> LogsAndXcoms for SqlStore<D> {
    async fn append_log(&self, ti: i64, try_number: u32, lines: &[LogLine]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.dialect.write().await?;
        insert_log_lines::<D>(&mut tx, ti, try_number, lines).await?;
        self.commit(tx, &[StoreEvent::LogAppended { ti }]).await
    }

    async fn append_try_output(&self, output: &TryOutput<'_>) -> Result<()> {
        if output.lines.is_empty() && output.pid.is_none() {
            return Ok(());
        }
        let mut tx = self.dialect.write().await?;
        if let Some(pid) = output.pid {
            execute::<D>(
                &mut tx,
                "set_task_pid",
                &[
                    Arg::Int(output.ti),
                    Arg::Int(i64::from(output.try_number)),
                    Arg::Int(i64::from(pid)),
                ],
            )
            .await?;
        }
        let events: &[StoreEvent] = if output.lines.is_empty() {
            &[]
        } else {
            insert_log_lines::<D>(&mut tx, output.ti, output.try_number, output.lines).await?;
            &[StoreEvent::LogAppended { ti: output.ti }]
        };
        self.commit(tx, events).await
    }

    async fn read_log(
        &self,
        ti: i64,
        try_number: u32,
        after: i64,
        limit: usize,
    ) -> Result<Vec<LogRecord>> {
        self.read_all(
            "read_log",
            &[
                Arg::Int(ti),
                Arg::Int(i64::from(try_number)),
                Arg::Int(after),
                Arg::Int(i64::try_from(limit).unwrap_or(i64::MAX)),
            ],
        )
        .await?
        .iter()
        .map(rows::log)
        .collect()
    }

    async fn get_xcom(&self, key: &XcomKey) -> Result<Option<Value>> {
        self.read_optional(
            "get_xcom",
            &[
                Arg::Int(key.run),
                Arg::Text(&key.task_id),
                Arg::Int32(key.map_index),
                Arg::Text(&key.key),
            ],
        )
        .await?
        .map(|row| row.json(Col::First))
        .transpose()
    }

    async fn list_xcoms(&self, run: i64, task_id: Option<&str>) -> Result<Vec<XcomRecord>> {
        self.read_all("list_xcoms", &[Arg::Int(run), Arg::OptText(task_id)])
            .await?
            .iter()
            .map(rows::xcom)
            .collect()
    }
}

#[async_trait]
impl<D: Dialect> Admin for SqlStore<D> {
    fn backend(&self) -> &'static str {
        D::NAME
    }

    async fn record_heartbeat(
        &self,
        component: &str,
        id: &str,
        hostname: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.write_one(
            "record_heartbeat",
            &[
                Arg::Text(component),
                Arg::Text(id),
                Arg::Text(hostname),
                Arg::Time(now),
            ],
        )
        .await?;
        Ok(())
    }

    async fn latest_heartbeat(&self, component: &str) -> Result<Option<DateTime<Utc>>> {
        let row = self
            .read_optional("latest_heartbeat", &[Arg::Text(component)])
            .await?;
        Ok(row
            .map(|row| row.opt_time(Col::First))
            .transpose()?
            .flatten())
    }

    async fn state_counts(&self) -> Result<StateCounts> {
        let mut conn = self.dialect.read().await?;
        let mut counts = Vec::with_capacity(3);
        for name in [
            "count_runs_by_state",
            "count_task_instances_by_state",
            "count_queued_by_queue",
        ] {
            let pairs = fetch_all::<D>(&mut conn, name, &[])
                .await?
                .iter()
                .map(rows::state_count)
                .collect::<Result<Vec<_>>>()?;
            counts.push(pairs);
        }
        let queued_by_queue = counts.pop().unwrap_or_default();
        let task_instances = counts.pop().unwrap_or_default();
        let runs = counts.pop().unwrap_or_default();
        Ok(StateCounts {
            runs,
            task_instances,
            queued_by_queue,
        })
    }

    async fn set_variable(&self, variable: &VariableRecord) -> Result<()> {
        self.write_one(
            "set_variable",
            &[
                Arg::Text(&variable.key),
                Arg::Text(&variable.val),
                Arg::OptText(variable.description.as_deref()),
                Arg::Bool(variable.is_encrypted),
            ],
        )
        .await?;
        Ok(())
    }

    async fn get_variable(&self, key: &str) -> Result<Option<VariableRecord>> {
        self.read_optional("get_variable", &[Arg::Text(key)])
            .await?
            .as_ref()
            .map(rows::variable)
            .transpose()
    }

    async fn list_variables(&self) -> Result<Vec<VariableRecord>> {
        self.read_all("list_variables", &[])
            .await?
            .iter()
            .map(rows::variable)
            .collect()
    }

    async fn delete_variable(&self, key: &str) -> Result<()> {
        self.delete_one("delete_variable", key, "variable").await
    }

    async fn set_connection(&self, connection: &ConnectionRecord) -> Result<()> {
        self.write_one(
            "set_connection",
            &[
                Arg::Text(&connection.conn_id),
                Arg::Text(&connection.conn_type),
                Arg::OptText(connection.description.as_deref()),
                Arg::OptText(connection.host.as_deref()),
                Arg::OptText(connection.schema.as_deref()),
                Arg::OptText(connection.login.as_deref()),
                Arg::OptText(connection.password.as_deref()),
                Arg::OptInt32(connection.port),
                Arg::OptText(connection.extra.as_deref()),
                Arg::Bool(connection.is_encrypted),
            ],
        )
        .await?;
        Ok(())
    }

    async fn get_connection(&self, conn_id: &str) -> Result<Option<ConnectionRecord>> {
        self.read_optional("get_connection", &[Arg::Text(conn_id)])
            .await?
            .as_ref()
            .map(rows::connection)
            .transpose()
    }

    async fn list_connections(&self) -> Result<Vec<ConnectionRecord>> {
        self.read_all("list_connections", &[])
            .await?
            .iter()
            .map(rows::connection)
            .collect()
    }

    async fn delete_connection(&self, conn_id: &str) -> Result<()> {
        self.delete_one("delete_connection", conn_id, "connection")
            .await
    }

    async fn set_pool(&self, pool: &PoolRecord) -> Result<()> {
        self.write_one(
            "set_pool",
            &[
                Arg::Text(&pool.name),
                Arg::Int(pool.slots),
                Arg::OptText(pool.description.as_deref()),
            ],
        )
        .await?;
        Ok(())
    }

    async fn list_pools(&self) -> Result<Vec<PoolStats>> {
        self.read_all("list_pools", &[])
            .await?
            .iter()
            .map(rows::pool_stats)
            .collect()
    }

    async fn delete_pool(&self, name: &str) -> Result<()> {
        if name == "default_pool" {
            return Err(StoreError::Conflict(
                "default_pool cannot be deleted".into(),
            ));
        }
        self.delete_one("delete_pool", name, "pool").await
    }

    async fn create_user(&self, user: &NewUser) -> Result<UserRecord> {
        let mut tx = self.dialect.write().await?;
        let created = fetch_optional::<D>(
            &mut tx,
            "create_user",
            &[
                Arg::Text(&user.username),
                Arg::Text(&user.password_hash),
                Arg::Text(&user.role),
                Arg::OptText(user.first_name.as_deref()),
                Arg::OptText(user.last_name.as_deref()),
                Arg::OptText(user.email.as_deref()),
                Arg::Time(user.now),
            ],
        )
        .await?;
        let Some(row) = created else {
            // Either the username or the email is taken; the username is the one to report
            // when both are.
            let taken = fetch_optional::<D>(&mut tx, "get_user", &[Arg::Text(&user.username)])
                .await?
                .is_some();
            return Err(StoreError::Conflict(match (&user.email, taken) {
                (Some(email), false) => format!("a user with email '{email}' already exists"),
                _ => format!("user '{}' already exists", user.username),
            }));
        };
        let record = rows::user(&row)?;
        self.commit(tx, &[]).await?;
        Ok(record)
    }

    async fn get_user(&self, username: &str) -> Result<Option<UserRecord>> {
        self.read_optional("get_user", &[Arg::Text(username)])
            .await?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        self.read_all("list_users", &[])
            .await?
            .iter()
            .map(rows::user)
            .collect()
    }

    async fn delete_user(&self, username: &str) -> Result<()> {
        self.delete_one("delete_user", username, "user").await
    }

    async fn clean_history(&self, request: &CleanHistory) -> Result<CleanReport> {
        self.clean(request).await
    }

    async fn import_history(&self, runs: &[HistoricRun]) -> Result<HistoryRows> {
        self.import(runs).await
    }

    async fn refresh_statistics(&self) -> Result<()> {
        self.write_one("refresh_statistics", &[]).await?;
        Ok(())
    }
}
