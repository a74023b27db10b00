//! One try as the task kinds see it: the [`Attempt`] context (claimed task, its DAG and task,
//! log, config, store, stop signal) and the [`Ran`] a kind hands back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::WorkerConfig;
use crate::reporting::Reporting;
use crate::stop::StopSignal;
use crate::task_log::TaskLog;
use chrono::{DateTime, Utc};
use dag::{Dag, Task};
use serde_json::Value;
use store::{ClaimedTask, Store};

/// Everything a task kind needs to run one try. The template context is not in here: each
/// kind decides what it renders (and so which XComs and secrets to load) before loading it.
pub(crate) struct Attempt<'a> {
    pub store: &'a Arc<dyn Store>,
    pub claimed: &'a ClaimedTask,
    pub config: &'a WorkerConfig,
    /// The run's DAG version, and the task of the claimed instance in it.
    pub dag: &'a Dag,
    pub task: &'a Task,
    /// The try's log; system lines written here also make the failure message.
    pub log: &'a TaskLog,
    /// Set when the try must stop before its end (the worker's shutdown grace ran out, its
    /// task instance changed from outside, its log cannot be stored): it stops and fails.
    pub stop: &'a StopSignal,
    /// Where the try's store reads wait out an outage.
    pub reporting: &'a Reporting,
    /// The worker's warm Python parents for `airflow` tasks (none: every try runs cold).
    pub zygotes: Option<&'a pydag::Zygotes>,
}

impl Attempt<'_> {
    /// The task's `execution_timeout`, when it sets a usable one.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.task
            .execution_timeout
            .filter(|t| t.is_finite() && *t >= 0.0)
            .map(Duration::from_secs_f64)
    }

    /// The folder of the DAG file, if it has one.
    pub(crate) fn dag_folder(&self) -> Option<PathBuf> {
        // Absolute, so that a path resolved against it stays right once the process runs in it.
        Path::new(&self.dag.fileloc)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
    }

    /// `path` as written in the DAG: relative paths are relative to the DAG file's folder.
    pub(crate) fn resolve(&self, path: &str) -> PathBuf {
        resolve(self.dag_folder().as_deref(), path)
    }
}

/// `path` relative to `dag_folder` when it is relative and there is a folder.
pub(crate) fn resolve(dag_folder: Option<&Path>, path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    match dag_folder {
        Some(folder) if path.is_relative() => folder.join(path),
        _ => path,
    }
}

/// How a try went, before retries are taken into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Skipped,
    /// Failed; retried if tries remain.
    Failed,
    /// Failed in a way no retry can fix (an unsupported task kind, a task missing from its
    /// DAG version), or a sensor that timed out.
    FailedForGood,
    /// A sensor that is not done yet: `up_for_reschedule` until its next poke, slot freed.
    Reschedule(DateTime<Utc>),
}

/// What a task kind hands back: how the try went and the XComs it pushed.
#[derive(Debug)]
pub(crate) struct Ran {
    pub outcome: Outcome,
    pub xcoms: Vec<(String, Value)>,
    /// The Python failure and retry callbacks the try's process did not get to run (it was
    /// killed first): run once the try's end is committed.
    pub callbacks_left: Option<CallbacksLeft>,
}

impl Ran {
    /// An outcome without XComs.
    pub(crate) fn only(outcome: Outcome) -> Ran {
        Ran {
            outcome,
            xcoms: Vec::new(),
            callbacks_left: None,
        }
    }
}

/// What running a try's Python callbacks after its process ended needs: the try's spec (its
/// rendered fields and context), where it ran, and the secrets its log masks.
#[derive(Debug, Clone)]
pub(crate) struct CallbacksLeft {
    pub spec: pydag::spec::RunSpec,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub masks: Vec<String>,
}
