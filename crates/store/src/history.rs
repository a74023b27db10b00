//! A big finished history, generated and written in bulk through
//! [`Admin::import_history`](crate::Admin::import_history): per DAG, `runs` scheduled runs,
//! each with `tasks` task instances that left log lines and XComs. For benchmarks and tests
//! that need a database with years of runs in seconds (`dagctl bench clean`, `cargo bench -p
//! api`).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dag::{Dag, RunState, RunType, TaskState};
use serde_json::json;

use crate::{
    HistoricRun, HistoricTaskInstance, HistoryRows, LogLine, LogStream, Store, StoreError,
};

/// Runs per import: one transaction of a few thousand rows per table, short on either backend.
const RUNS_PER_IMPORT: usize = 1000;

/// Every how many runs one fails (its last task failed), so the history holds both states.
const FAILED_EVERY: usize = 20;

/// Why a history could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The generated DAG did not parse: a shape this module cannot express.
    #[error("the generated DAG {dag_id} does not parse: {message}")]
    Dag { dag_id: String, message: String },
    /// The store refused a write.
    #[error("cannot load the history of {dag_id}: {source}")]
    Store {
        dag_id: String,
        #[source]
        source: StoreError,
    },
}

/// What to generate for one DAG.
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
    /// The DAG's tags.
    pub tags: Vec<String>,
    /// The newest run's first task instance logs this many lines instead of `log_lines`: one
    /// long log among short ones.
    pub long_log: Option<usize>,
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
            tags: Vec::new(),
            long_log: None,
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

    pub fn with_xcoms(mut self, xcoms: usize) -> HistoryShape {
        self.xcoms = xcoms;
        self
    }

    pub fn with_tags(mut self, tags: &[&str]) -> HistoryShape {
        self.tags = tags.iter().map(|tag| tag.to_string()).collect();
        self
    }

    pub fn with_long_log(mut self, lines: usize) -> HistoryShape {
        self.long_log = Some(lines);
        self
    }

    /// When the newest run ends: everything of this history is older.
    pub fn end(&self) -> DateTime<Utc> {
        self.start + self.every * i32::try_from(self.runs).unwrap_or(i32::MAX)
    }

    /// The id of the `i`th task (`t00`, `t01`, …).
    pub fn task_id(i: usize) -> String {
        format!("t{i:02}")
    }

    /// The run id of the `n`th run.
    pub fn run_id(&self, n: usize) -> String {
        format!("scheduled__{}", self.logical_date(n).to_rfc3339())
    }

    /// The DAG version (file hash) its runs name.
    pub fn version(&self) -> String {
        format!("history-{}", self.runs)
    }

    fn logical_date(&self, n: usize) -> DateTime<Utc> {
        self.start + self.every * i32::try_from(n).unwrap_or(i32::MAX)
    }

    /// The `n`th run, finished as the shape says.
    pub fn run(&self, n: usize) -> HistoricRun {
        let logical_date = self.logical_date(n);
        let end = logical_date + self.every / 2;
        let failed = n % FAILED_EVERY == FAILED_EVERY - 1;
        let newest = n + 1 == self.runs;
        let tasks = (0..self.tasks)
            .map(|i| {
                let last = i + 1 == self.tasks;
                let state = if failed && last {
                    TaskState::Failed
                } else {
                    TaskState::Success
                };
                let lines = match self.long_log {
                    Some(lines) if newest && i == 0 => lines,
                    _ => self.log_lines,
                };
                self.task_instance(i, logical_date, end, state, lines)
            })
            .collect();
        HistoricRun {
            dag_id: self.dag_id.clone(),
            run_id: self.run_id(n),
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
            version: self.version(),
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
        log_lines: usize,
    ) -> HistoricTaskInstance {
        let task_id = Self::task_id(i);
        let start = logical_date + chrono::Duration::milliseconds(20);
        HistoricTaskInstance {
            log: (0..log_lines)
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
            "dag_id: {}\nschedule: '* * * * *'\nstart_date: {}\n",
            self.dag_id,
            self.start.format("%Y-%m-%d")
        );
        if !self.tags.is_empty() {
            yaml.push_str(&format!("tags: [{}]\n", self.tags.join(", ")));
        }
        yaml.push_str("tasks:\n");
        for i in 0..self.tasks {
            yaml.push_str(&format!("  - {{id: {}, bash: 'true'", Self::task_id(i)));
            if i > 0 {
                yaml.push_str(&format!(", depends_on: [{}]", Self::task_id(i - 1)));
            }
            yaml.push_str("}\n");
        }
        yaml
    }

    /// The DAG, parsed from the file [`HistoryShape`] writes for it.
    pub fn dag(&self) -> Result<Dag, HistoryError> {
        dag::parse_dag_str(&format!("{}.yaml", self.dag_id), &self.dag_yaml()).map_err(|err| {
            HistoryError::Dag {
                dag_id: self.dag_id.clone(),
                message: err.to_string(),
            }
        })
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
pub async fn load(store: &dyn Store, shape: &HistoryShape) -> Result<Loaded, HistoryError> {
    load_all(store, std::slice::from_ref(shape)).await
}

/// [`load`] for many DAGs at once: every DAG synced (paused) first, then their runs written
/// [`RUNS_PER_IMPORT`] at a time, a transaction holding the runs of several small DAGs.
pub async fn load_all(store: &dyn Store, shapes: &[HistoryShape]) -> Result<Loaded, HistoryError> {
    let started = Instant::now();
    for shape in shapes {
        let failed = |source| HistoryError::Store {
            dag_id: shape.dag_id.clone(),
            source,
        };
        let dag = shape.dag()?;
        store
            .sync_dag(&dag, &shape.version(), shape.start)
            .await
            .map_err(failed)?;
        store.pause_dag(&dag.dag_id).await.map_err(failed)?;
    }
    let mut rows = HistoryRows::default();
    let mut batch: Vec<HistoricRun> = Vec::with_capacity(RUNS_PER_IMPORT);
    for shape in shapes {
        for n in 0..shape.runs {
            batch.push(shape.run(n));
            if batch.len() == RUNS_PER_IMPORT {
                rows += import(store, &batch).await?;
                batch.clear();
            }
        }
    }
    if !batch.is_empty() {
        rows += import(store, &batch).await?;
    }
    Ok(Loaded {
        rows,
        elapsed: started.elapsed(),
    })
}

async fn import(store: &dyn Store, runs: &[HistoricRun]) -> Result<HistoryRows, HistoryError> {
    store
        .import_history(runs)
        .await
        .map_err(|source| HistoryError::Store {
            dag_id: runs
                .first()
                .map_or_else(String::new, |run| run.dag_id.clone()),
            source,
        })
}
