//! Retention and bulk history for [`SqlStore`]: `clean_history` deletes finished runs and
//! what hangs off them in short batches; `import_history` writes finished runs in bulk.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use store::{CleanHistory, CleanMode, CleanReport, HistoricRun, HistoryRows, StoreError};

use crate::{
    Arg, Col, Column, Dialect, Result, SqlRow, SqlStore, execute, fetch_all, to_json_text,
};

/// A `COUNT(*)` column as a row count.
fn rows_of(row: &impl SqlRow, col: impl Into<Col>) -> Result<u64> {
    let value = row.int(col)?;
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("a count of {value} rows")))
}

impl<D: Dialect> SqlStore<D> {
    /// [`store::Admin::clean_history`]: choose each batch on a read connection (so the scan
    /// past runs that stay never holds the write lock), then check and delete it in a short
    /// write transaction of its own; last, the stale heartbeats.
    pub(crate) async fn clean(&self, request: &CleanHistory) -> Result<CleanReport> {
        let started = Instant::now();
        let limit = i64::try_from(request.batch_size.get()).unwrap_or(i64::MAX);
        let mut report = CleanReport {
            mode: request.mode,
            rows: HistoryRows::default(),
            batches: 0,
            longest_batch: Duration::ZERO,
            elapsed: Duration::ZERO,
        };
        // Keys are positive on both backends; batches walk them in order, each after the last.
        let mut after = 0;
        loop {
            let chosen = {
                let mut conn = self.dialect.read().await?;
                fetch_all::<D>(
                    &mut conn,
                    "clean_history_candidates",
                    &[Arg::Time(request.before), Arg::Int(after), Arg::Int(limit)],
                )
                .await?
                .iter()
                .map(|row| Ok((row.int("id")?, row.boolean("deletable")?)))
                .collect::<Result<Vec<(i64, bool)>>>()?
            };
            // The batch walked past every run it read, the kept ones too.
            let Some(&(last, _)) = chosen.last() else {
                break;
            };
            after = last;
            let candidates: Vec<i64> = chosen
                .into_iter()
                .filter_map(|(run, deletable)| deletable.then_some(run))
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let (rows, held) = match request.mode {
                CleanMode::DryRun => self.count_batch(candidates).await?,
                CleanMode::Delete => self.delete_batch(request, candidates).await?,
            };
            report.rows += rows;
            report.batches += 1;
            report.longest_batch = report.longest_batch.max(held);
        }
        let (jobs, held) = self.clean_jobs(request).await?;
        if jobs > 0 {
            report.rows.jobs = jobs;
            report.batches += 1;
            report.longest_batch = report.longest_batch.max(held);
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// A dry run's batch: what deleting `runs` would take, read on a read connection.
    async fn count_batch(&self, runs: Vec<i64>) -> Result<(HistoryRows, Duration)> {
        let mut conn = self.dialect.read().await?;
        let held = Instant::now();
        let dag_runs = runs.len() as u64;
        let found = fetch_all::<D>(&mut conn, "clean_history_count", &[Arg::Ints(runs)]).await?;
        let row = found
            .first()
            .ok_or_else(|| StoreError::Corrupt("a count query returned no row".into()))?;
        let rows = HistoryRows {
            dag_runs,
            task_instances: rows_of(row, "task_instances")?,
            task_logs: rows_of(row, "task_logs")?,
            xcom: rows_of(row, "xcom")?,
            jobs: 0,
        };
        Ok((rows, held.elapsed()))
    }

    /// One batch in its own write transaction: the candidates that still qualify (locked, on
    /// a backend with row locks), then their logs, XComs, task instances and themselves.
    async fn delete_batch(
        &self,
        request: &CleanHistory,
        candidates: Vec<i64>,
    ) -> Result<(HistoryRows, Duration)> {
        let mut tx = self.dialect.write().await?;
        let held = Instant::now();
        let runs = fetch_all::<D>(
            &mut tx,
            "clean_history_lock_runs",
            &[Arg::Time(request.before), Arg::Ints(candidates)],
        )
        .await?
        .iter()
        .map(|row| row.int(Col::First))
        .collect::<Result<Vec<i64>>>()?;
        let mut rows = HistoryRows::default();
        if !runs.is_empty() {
            rows.task_logs = execute::<D>(
                &mut tx,
                "clean_history_delete_logs",
                &[Arg::Ints(runs.clone())],
            )
            .await?;
            rows.xcom = execute::<D>(
                &mut tx,
                "clean_history_delete_xcoms",
                &[Arg::Ints(runs.clone())],
            )
            .await?;
            rows.task_instances = execute::<D>(
                &mut tx,
                "clean_history_delete_task_instances",
                &[Arg::Ints(runs.clone())],
            )
            .await?;
            rows.dag_runs =
                execute::<D>(&mut tx, "clean_history_delete_runs", &[Arg::Ints(runs)]).await?;
        }
        self.commit(tx, &[]).await?;
        Ok((rows, held.elapsed()))
    }

    /// Stale heartbeats, deleted (or counted) in one short statement: the table holds one row
    /// per component process, so it never needs batches.
    async fn clean_jobs(&self, request: &CleanHistory) -> Result<(u64, Duration)> {
        let cutoff = [Arg::Time(request.before)];
        match request.mode {
            CleanMode::DryRun => {
                let mut conn = self.dialect.read().await?;
                let held = Instant::now();
                let found = fetch_all::<D>(&mut conn, "clean_history_count_jobs", &cutoff).await?;
                let jobs = found
                    .first()
                    .map(|row| rows_of(row, Col::First))
                    .transpose()?
                    .unwrap_or(0);
                Ok((jobs, held.elapsed()))
            }
            CleanMode::Delete => {
                let mut tx = self.dialect.write().await?;
                let held = Instant::now();
                let jobs = execute::<D>(&mut tx, "clean_history_delete_jobs", &cutoff).await?;
                self.commit(tx, &[]).await?;
                Ok((jobs, held.elapsed()))
            }
        }
    }

    /// [`store::Admin::import_history`]: checked first, then one statement per table in one
    /// transaction, the keys each insert returns feeding the next.
    pub(crate) async fn import(&self, runs: &[HistoricRun]) -> Result<HistoryRows> {
        check_history(runs)?;
        if runs.is_empty() {
            return Ok(HistoryRows::default());
        }
        let confs = runs
            .iter()
            .map(|run| to_json_text(&run.conf))
            .collect::<Result<Vec<String>>>()?;
        let run_table = Arg::Table(vec![
            Column::Texts(runs.iter().map(|r| r.dag_id.as_str()).collect()),
            Column::Texts(runs.iter().map(|r| r.run_id.as_str()).collect()),
            Column::Texts(runs.iter().map(|r| r.run_type.as_str()).collect()),
            Column::Texts(runs.iter().map(|r| r.state.as_str()).collect()),
            Column::Times(runs.iter().map(|r| r.logical_date).collect()),
            Column::Times(runs.iter().map(|r| r.data_interval_start).collect()),
            Column::Times(runs.iter().map(|r| r.data_interval_end).collect()),
            Column::Texts(confs.iter().map(String::as_str).collect()),
            Column::Texts(runs.iter().map(|r| r.version.as_str()).collect()),
            Column::Times(runs.iter().map(|r| r.queued_at).collect()),
            Column::Times(runs.iter().map(|r| r.start_date).collect()),
            Column::Times(runs.iter().map(|r| r.end_date).collect()),
        ]);
        let mut tx = self.dialect.write().await?;
        let mut keys: HashMap<(String, String), i64> = HashMap::new();
        for row in fetch_all::<D>(&mut tx, "import_history_runs", &[run_table]).await? {
            keys.insert((row.text("dag_id")?, row.text("run_id")?), row.int("id")?);
        }
        let mut written = HistoryRows {
            dag_runs: keys.len() as u64,
            ..HistoryRows::default()
        };
        // Runs stored already were skipped: so are their task instances.
        let imported: Vec<(i64, &HistoricRun)> = runs
            .iter()
            .filter_map(|run| {
                let key = keys.get(&(run.dag_id.clone(), run.run_id.clone()))?;
                Some((*key, run))
            })
            .collect();
        let tis: Vec<(i64, &HistoricRun, &store::HistoricTaskInstance)> = imported
            .iter()
            .flat_map(|(key, run)| run.task_instances.iter().map(move |ti| (*key, *run, ti)))
            .collect();
        if tis.is_empty() {
            self.commit(tx, &[]).await?;
            return Ok(written);
        }
        let ti_table = Arg::Table(vec![
            Column::Ints(tis.iter().map(|(key, _, _)| *key).collect()),
            Column::Texts(tis.iter().map(|(_, r, _)| r.dag_id.as_str()).collect()),
            Column::Texts(tis.iter().map(|(_, r, _)| r.run_id.as_str()).collect()),
            Column::Texts(tis.iter().map(|(_, _, t)| t.task_id.as_str()).collect()),
            Column::Int32s(tis.iter().map(|(_, _, t)| t.map_index).collect()),
            Column::Ints(
                tis.iter()
                    .map(|(_, _, t)| i64::from(t.try_number))
                    .collect(),
            ),
            Column::Ints(tis.iter().map(|(_, _, t)| i64::from(t.max_tries)).collect()),
            Column::Texts(tis.iter().map(|(_, _, t)| t.state.as_str()).collect()),
            Column::Texts(tis.iter().map(|(_, _, t)| t.queue.as_str()).collect()),
            Column::Texts(tis.iter().map(|(_, _, t)| t.pool.as_str()).collect()),
            Column::Ints(
                tis.iter()
                    .map(|(_, _, t)| i64::from(t.pool_slots))
                    .collect(),
            ),
            Column::Ints(tis.iter().map(|(_, _, t)| t.priority_weight).collect()),
            Column::Texts(tis.iter().map(|(_, _, t)| t.operator.as_str()).collect()),
            Column::Times(tis.iter().map(|(_, _, t)| t.queued_at).collect()),
            Column::Times(tis.iter().map(|(_, _, t)| t.start_date).collect()),
            Column::Times(tis.iter().map(|(_, _, t)| t.end_date).collect()),
        ]);
        let mut ti_keys: HashMap<(i64, String, i32), i64> = HashMap::new();
        for row in fetch_all::<D>(&mut tx, "import_history_task_instances", &[ti_table]).await? {
            ti_keys.insert(
                (
                    row.int("run")?,
                    row.text("task_id")?,
                    row.int32("map_index")?,
                ),
                row.int("id")?,
            );
        }
        written.task_instances = ti_keys.len() as u64;
        let ti_key = |run: i64, ti: &store::HistoricTaskInstance| -> Result<i64> {
            ti_keys
                .get(&(run, ti.task_id.clone(), ti.map_index))
                .copied()
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("task instance {} was not written", ti.task_id))
                })
        };

        let mut log_tis = Vec::new();
        let mut log_tries = Vec::new();
        let mut log_seqs = Vec::new();
        let mut log_lines = Vec::new();
        for (run, _, ti) in &tis {
            let key = ti_key(*run, ti)?;
            for (at, line) in ti.log.iter().enumerate() {
                log_tis.push(key);
                log_tries.push(i64::from(ti.try_number));
                log_seqs.push(i64::try_from(at).unwrap_or(i64::MAX) + 1);
                log_lines.push(line);
            }
        }
        if !log_lines.is_empty() {
            let table = Arg::Table(vec![
                Column::Ints(log_tis),
                Column::Ints(log_tries),
                Column::Ints(log_seqs),
                Column::Times(log_lines.iter().map(|l| l.timestamp).collect()),
                Column::Texts(log_lines.iter().map(|l| l.stream.as_str()).collect()),
                Column::Texts(log_lines.iter().map(|l| l.line.as_str()).collect()),
            ]);
            written.task_logs = execute::<D>(&mut tx, "import_history_logs", &[table]).await?;
        }

        let xcoms: Vec<(i64, &store::HistoricTaskInstance, &str, String)> = tis
            .iter()
            .flat_map(|(run, _, ti)| {
                ti.xcoms
                    .iter()
                    .map(move |(key, value)| Ok((*run, *ti, key.as_str(), to_json_text(value)?)))
            })
            .collect::<Result<_>>()?;
        if !xcoms.is_empty() {
            let table = Arg::Table(vec![
                Column::Ints(xcoms.iter().map(|(run, _, _, _)| *run).collect()),
                Column::Texts(
                    xcoms
                        .iter()
                        .map(|(_, t, _, _)| t.task_id.as_str())
                        .collect(),
                ),
                Column::Int32s(xcoms.iter().map(|(_, t, _, _)| t.map_index).collect()),
                Column::Texts(xcoms.iter().map(|(_, _, key, _)| *key).collect()),
                Column::Texts(xcoms.iter().map(|(_, _, _, v)| v.as_str()).collect()),
                Column::Times(xcoms.iter().map(|(_, t, _, _)| t.end_date).collect()),
            ]);
            written.xcom = execute::<D>(&mut tx, "import_history_xcoms", &[table]).await?;
        }
        self.commit(tx, &[]).await?;
        Ok(written)
    }
}

/// An import is history: every run and task instance finished, none given twice.
fn check_history(runs: &[HistoricRun]) -> Result<()> {
    let mut seen_runs = HashSet::new();
    for run in runs {
        let name = format!("run {}/{}", run.dag_id, run.run_id);
        if !run.state.is_finished() {
            return Err(StoreError::Conflict(format!(
                "{name} is {}: only finished runs are history",
                run.state
            )));
        }
        if !seen_runs.insert((run.dag_id.as_str(), run.run_id.as_str())) {
            return Err(StoreError::Conflict(format!("{name} is given twice")));
        }
        let mut seen_tis = HashSet::new();
        for ti in &run.task_instances {
            if !ti.state.is_finished() {
                return Err(StoreError::Conflict(format!(
                    "task {} of {name} is {}: only finished task instances are history",
                    ti.task_id, ti.state
                )));
            }
            if !seen_tis.insert((ti.task_id.as_str(), ti.map_index)) {
                return Err(StoreError::Conflict(format!(
                    "task {} (map index {}) of {name} is given twice",
                    ti.task_id, ti.map_index
                )));
            }
            let duplicate_key = ti
                .xcoms
                .iter()
                .enumerate()
                .any(|(at, (key, _))| ti.xcoms[..at].iter().any(|(other, _)| other == key));
            if duplicate_key {
                return Err(StoreError::Conflict(format!(
                    "an XCom key of task {} of {name} is given twice",
                    ti.task_id
                )));
            }
        }
    }
    Ok(())
}
