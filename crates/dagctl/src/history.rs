//! A big finished history, generated and written in bulk through
//! [`store::Admin::import_history`]: `runs` scheduled runs of one DAG, each with `tasks` task
//! instances that left log lines and XComs. For benchmarks and tests that need a database
//! with years of runs in seconds.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use dag::{RunState, RunType, TaskState};
use serde_json::json;
use store::{HistoricRun, HistoricTaskInstance, HistoryRows, LogLine, LogStream, Store};

/// Runs per import: one transaction of a few thousand rows per table, short on either backend.
const RUNS_PER_IMPORT: usize = 1000;

/// Every how many runs one fails (its last task failed), so the history holds both states.
const FAILED_EVERY: usize = 20;

/// What to generate.
#[derive(Debug, Clone)]
pub struct HistoryShape {
    /// The DAG the runs belong to; synced first as a chain of `tasks` bash tasks.
    pub dag_id: String,
    pub runs: usize,
    /// Task instances per run.
    pub tasks: usize,
    /// Log lines per task instance.
    pub log_lines: usize,
    /// XComs per task instance.
    pub xcoms: usize,
    /// The first run's logical date; each next run `every` later, ending within it.
    pub start: DateTime<Utc>,
    pub every: chrono::Duration,
}

impl HistoryShape {
    /// `runs` runs of `dag_id`, one a minute, ending a day before `now`: three tasks each,
    /// with three log lines and one XCom per task instance.
    pub fn new(dag_id: &str, runs: usize, now: DateTime<Utc>) -> HistoryShape {
        let every = chrono::Duration::minutes(1);
        let span = every * i32::try_from(runs).unwrap_or(i32::MAX);
        HistoryShape {
            dag_id: dag_id.to_string(),
            runs,
            tasks: 3,
            log_lines: 3,
            xcoms: 1,
            start: now - span - chrono::Duration::days(1),
            every,
        }
    }

    pub fn with_tasks(mut self, tasks: usize) -> HistoryShape {
        self.tasks = tasks;
        self
    }

    pub fn with_log_lines(mut self, log_lines: usize) -> HistoryShape {
        self.log_lines = log_lines;
        self
    }

    /// When the newest run ends: everything of this history is older.
    pub fn end(&self) -> DateTime<Utc> {
        self.start + self.every * i32::try_from(self.runs).unwrap_or(i32::MAX)
    }

    fn task_id(i: usize) -> String {
        format!("t{i:02}")
    }

    /// The `n`th run, finished as the shape says.
    fn run(&self, n: usize, version: &str) -> HistoricRun {
        let offset = i32::try_from(n).unwrap_or(i32::MAX);
        let logical_date = self.start + self.every * offset;
        let end = logical_date + self.every / 2;
        let failed = n % FAILED_EVERY == FAILED_EVERY - 1;
        let tasks = (0..self.tasks)
            .map(|i| {
                let last = i + 1 == self.tasks;
                let state = if failed && last {
                    TaskState::Failed
                } else {
                    TaskState::Success
                };
                self.task_instance(i, logical_date, end, state)
            })
            .collect();
        HistoricRun {
            dag_id: self.dag_id.clone(),
            run_id: format!("scheduled__{}", logical_date.to_rfc3339()),
            run_type: RunType::Scheduled,
            state: if failed {
                RunState::Failed
            } else {
                RunState::Success
            },
            logical_date,
            data_interval_start: logical_date,
            data_interval_end: logical_date + self.every,
            conf: json!({}),
            version: version.to_string(),
            queued_at: logical_date,
            start_date: logical_date + chrono::Duration::milliseconds(10),
            end_date: end,
            task_instances: tasks,
        }
    }

    fn task_instance(
        &self,
        i: usize,
        logical_date: DateTime<Utc>,
        end: DateTime<Utc>,
        state: TaskState,
    ) -> HistoricTaskInstance {
        let task_id = Self::task_id(i);
        let start = logical_date + chrono::Duration::milliseconds(20);
        HistoricTaskInstance {
            log: (0..self.log_lines)
                .map(|l| LogLine {
                    timestamp: start
                        + chrono::Duration::milliseconds(i64::try_from(l).unwrap_or(0)),
                    stream: LogStream::Stdout,
                    line: format!("{task_id}: processed batch {l} of {logical_date}"),
                })
                .collect(),
            xcoms: (0..self.xcoms)
                .map(|x| {
                    let key = if x == 0 {
                        "return_value".to_string()
                    } else {
                        format!("key_{x}")
                    };
                    (key, json!({"rows": 1000 + i, "task": task_id}))
                })
                .collect(),
            task_id,
            map_index: -1,
            try_number: 1,
            max_tries: 0,
            state,
            queue: "default".to_string(),
            pool: "default_pool".to_string(),
            pool_slots: 1,
            priority_weight: 1,
            operator: "BashOperator".to_string(),
            queued_at: logical_date + chrono::Duration::milliseconds(15),
            start_date: start,
            end_date: end,
        }
    }

    /// The DAG the history belongs to, as a file would define it.
    fn dag_yaml(&self) -> String {
        let mut yaml = format!(
            "dag_id: {}\nschedule: '* * * * *'\nstart_date: {}\ntasks:\n",
            self.dag_id,
            self.start.format("%Y-%m-%d")
        );
        for i in 0..self.tasks {
            yaml.push_str(&format!("  - {{id: {}, bash: 'true'", Self::task_id(i)));
            if i > 0 {
                yaml.push_str(&format!(", depends_on: [{}]", Self::task_id(i - 1)));
            }
            yaml.push_str("}\n");
        }
        yaml
    }
}

/// What [`load`] wrote, and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Loaded {
    pub rows: HistoryRows,
    pub elapsed: Duration,
}

/// Sync the shape's DAG (paused, so no scheduler adds runs to the history) and write its
/// history, [`RUNS_PER_IMPORT`] runs per transaction. Runs stored already are skipped.
pub async fn load(store: &dyn Store, shape: &HistoryShape) -> Result<Loaded> {
    let started = Instant::now();
    let dag = dag::parse_dag_str(&format!("{}.yaml", shape.dag_id), &shape.dag_yaml())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let version = format!("history-{}", shape.runs);
    store.sync_dag(&dag, &version, shape.start).await?;
    store.pause_dag(&dag.dag_id).await?;
    let mut rows = HistoryRows::default();
    let mut next = 0;
    while next < shape.runs {
        let upto = (next + RUNS_PER_IMPORT).min(shape.runs);
        let runs: Vec<HistoricRun> = (next..upto).map(|n| shape.run(n, &version)).collect();
        rows += store
            .import_history(&runs)
            .await
            .with_context(|| format!("cannot import runs {next}..{upto}"))?;
        next = upto;
    }
    Ok(Loaded {
        rows,
        elapsed: started.elapsed(),
    })
}
