//! Running a child process for a try from a command spec: the try's workspace (working
//! directory, temporary folder, environment), then spawn, wait within the limits, and turn
//! how it ended into an [`Outcome`] with the XComs it pushed through `$UPDRAFT_XCOM_FILE`.
//!
//! Used by every kind that starts a process: `bash` and `python` tasks, `command` sensors.

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use dag::template::{Reads, TemplateContext};
use serde_json::Value;
use store::ClaimedTask;
use tempfile::TempDir;

use crate::attempt::{Attempt, Outcome};
use crate::process::{self, Ending, Limits, ProcessSpec};
use crate::render::{self, render_text};
use crate::task_log::TrackLast;
use crate::xcom;

/// Airflow's exit code for "skip this task".
pub const SKIP_EXIT_CODE: i32 = 99;

/// Why a try's process could not be prepared or started. Each message is the log line.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    /// The task's `cwd` names a folder that is not there.
    #[error("working directory {} does not exist", .0.display())]
    NoCwd(PathBuf),
    /// No `cwd`, no DAG folder, and the worker's own folder cannot be read.
    #[error(
        "no working directory: the DAG's folder is missing and the worker's cannot be read: {0}"
    )]
    NoWorkerCwd(#[source] std::io::Error),
    /// A python task's `file` could not be read.
    #[error("could not read python file {}: {source}", .path.display())]
    ReadSource {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The try's temporary folder could not be made (a full disk, a read-only or missing
    /// folder, a file where the folder should be).
    #[error("cannot create the try's workspace in {}: {source}", .root.display())]
    Workspace {
        root: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A template of the task did not render (`env NAME`, `bash command`, …).
    #[error("template error in {what}: {source}")]
    Template {
        what: String,
        #[source]
        source: dag::template::TemplateError,
    },
    /// A file the process needs could not be written into the temporary folder.
    #[error("cannot write {} in the try's workspace: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Something the process needs could not be set up (the message says what).
    #[error("{0}")]
    Prepare(String),
    /// The program could not be started.
    #[error("could not start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where a try's process runs and what it is given: created before the command is rendered,
/// removed (with its temporary folder) when dropped.
pub(crate) struct Workspace {
    /// Holds the temporary folder for as long as the process may use it.
    temp: TempDir,
    pub cwd: PathBuf,
    /// The task's rendered `env`, then the variables every task process gets.
    pub env: Vec<(String, String)>,
}

impl Workspace {
    /// The workspace of `attempt`'s try, its `env` rendered with `ctx`.
    pub(crate) fn new(
        attempt: &Attempt<'_>,
        ctx: &TemplateContext,
    ) -> Result<Workspace, CommandError> {
        let cwd = working_dir(attempt)?;
        let root = attempt
            .config
            .workspace_root
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let temp = tempfile::Builder::new()
            .prefix("updraft-try-")
            .tempdir_in(&root)
            .map_err(|source| CommandError::Workspace { root, source })?;
        let mut env = Vec::new();
        for (name, value) in &attempt.task.env {
            let value = render_text(value, ctx).map_err(|source| CommandError::Template {
                what: format!("env {name}"),
                source,
            })?;
            env.push((name.clone(), value));
        }
        let mut workspace = Workspace { temp, cwd, env };
        let xcom_file = workspace.xcom_file();
        workspace.env.extend(task_env(attempt.claimed, &xcom_file));
        Ok(workspace)
    }

    /// Where the process pushes XComs, one JSON line each.
    pub(crate) fn xcom_file(&self) -> PathBuf {
        self.temp.path().join("xcom.jsonl")
    }

    /// Where an Airflow task's `Variable.set` and `Variable.delete` are written, one JSON
    /// line each, for the worker to store after the try.
    pub(crate) fn variable_file(&self) -> PathBuf {
        self.temp.path().join("variables.jsonl")
    }

    /// Where an Airflow task's process writes the name of each failure or retry callback it
    /// is about to run, so that they are not run again after it ends.
    pub(crate) fn callbacks_ran_file(&self) -> PathBuf {
        self.temp.path().join("callbacks_ran")
    }

    /// Where a Python callable's return value is written.
    pub(crate) fn result_file(&self) -> PathBuf {
        self.temp.path().join("return_value.json")
    }

    /// Write a file the process needs into the temporary folder.
    pub(crate) async fn write(&self, name: &str, text: String) -> Result<PathBuf, CommandError> {
        let path = self.temp.path().join(name);
        tokio::fs::write(&path, text)
            .await
            .map_err(|source| CommandError::Write {
                path: path.clone(),
                source,
            })?;
        Ok(path)
    }
}

/// `bash -c command` in `workspace`, the command rendered with `ctx` and logged.
pub(crate) async fn bash_spec(
    attempt: &Attempt<'_>,
    workspace: &Workspace,
    command: &str,
    ctx: &TemplateContext,
    track_last_stdout: TrackLast,
) -> Result<ProcessSpec, CommandError> {
    let command = render_text(command, ctx).map_err(|source| CommandError::Template {
        what: "bash command".to_string(),
        source,
    })?;
    attempt
        .log
        .system(format!(
            "running: bash -c {} (in {})",
            process::loggable(&command),
            workspace.cwd.display()
        ))
        .await;
    Ok(ProcessSpec {
        program: "bash".into(),
        args: vec!["-c".into(), command.into()],
        cwd: workspace.cwd.clone(),
        env: workspace.env.clone(),
        track_last_stdout,
    })
}

/// What the templates of a `bash -c command` try read, with the task's `env` and `expand`.
pub(crate) fn bash_reads(attempt: &Attempt<'_>, command: &str) -> Reads {
    dag::template::reads(command) | render::task_reads(attempt)
}

/// How a process of a try ended.
pub(crate) struct Exited {
    pub outcome: Outcome,
    /// What it pushed through `$UPDRAFT_XCOM_FILE` (nothing when reading that failed).
    pub xcoms: Vec<(String, Value)>,
    /// Its last non-empty stdout line, when the spec asked for it.
    pub last_stdout_line: Option<String>,
    /// The code it exited with, when it exited on its own.
    pub exit_code: Option<i32>,
}

impl Exited {
    fn failed() -> Exited {
        Exited {
            outcome: Outcome::Failed,
            xcoms: Vec::new(),
            last_stdout_line: None,
            exit_code: None,
        }
    }
}

/// Spawn `spec` in `workspace`, wait for it within the task's `execution_timeout` (or until
/// the try is stopped), and write how it ended into the try's log.
pub(crate) async fn run(
    attempt: &Attempt<'_>,
    workspace: &Workspace,
    spec: &ProcessSpec,
) -> Exited {
    let log = attempt.log;
    // Stopped while it was being prepared (its store reads waited out an outage, say): a
    // process started now would be killed at once, or run beside its retry.
    if let Some(reason) = attempt.stop.reason() {
        log.system(reason.outcome_line()).await;
        return Exited::failed();
    }
    let running = match process::spawn(spec, log) {
        Ok(running) => running,
        Err(source) => {
            let err = CommandError::Spawn {
                program: spec.program.to_string_lossy().into_owned(),
                source,
            };
            log.system(err.to_string()).await;
            return Exited::failed();
        }
    };
    supervise(attempt, workspace, running).await
}

/// Wait for a started try within its limits (see [`run`]), and collect how it ended.
pub(crate) async fn supervise(
    attempt: &Attempt<'_>,
    workspace: &Workspace,
    running: process::Running,
) -> Exited {
    let log = attempt.log;
    log.note_pid(running.pid()).await;
    let limits = Limits {
        timeout: attempt.timeout(),
        kill_grace: attempt.config.kill_grace,
    };
    let finished = running.wait(limits, attempt.stop, log).await;
    if let Some(line) = &finished.last_stderr_line {
        log.note_error(line.clone());
    }
    let (outcome, line) = match &finished.ending {
        Ending::Exited(0) => (Outcome::Success, "task exited with code 0".to_string()),
        Ending::Exited(SKIP_EXIT_CODE) => (
            Outcome::Skipped,
            format!("task exited with code {SKIP_EXIT_CODE}: skipped"),
        ),
        Ending::Exited(127) => (
            Outcome::Failed,
            "task exited with code 127: command not found".to_string(),
        ),
        Ending::Exited(126) => (
            Outcome::Failed,
            "task exited with code 126: command found but not executable".to_string(),
        ),
        Ending::Exited(code) => (Outcome::Failed, format!("task exited with code {code}")),
        Ending::Signaled(signal) => (
            Outcome::Failed,
            format!(
                "task was killed by {} ({signal})",
                process::signal_name(*signal)
            ),
        ),
        Ending::TimedOut => (
            Outcome::Failed,
            "task failed: execution_timeout exceeded".to_string(),
        ),
        Ending::Stopped(reason) => (Outcome::Failed, reason.outcome_line()),
    };
    log.system(line).await;
    let exit_code = match finished.ending {
        Ending::Exited(code) => Some(code),
        _ => None,
    };
    match xcom::read_xcom_file(&workspace.xcom_file()).await {
        Ok(xcoms) => Exited {
            outcome,
            xcoms,
            last_stdout_line: finished.last_stdout_line,
            exit_code,
        },
        Err(err) => {
            log.system(err.to_string()).await;
            Exited::failed()
        }
    }
}

/// `cwd` if set (and present), else the DAG file's folder, else the worker's own.
fn working_dir(attempt: &Attempt<'_>) -> Result<PathBuf, CommandError> {
    if let Some(cwd) = &attempt.task.cwd {
        let path = attempt.resolve(cwd);
        return if path.is_dir() {
            Ok(path)
        } else {
            Err(CommandError::NoCwd(path))
        };
    }
    match attempt.dag_folder().filter(|f| f.is_dir()) {
        Some(folder) => Ok(folder),
        None => std::env::current_dir().map_err(CommandError::NoWorkerCwd),
    }
}

/// The variables dag-format.md promises every task process.
fn task_env(claimed: &ClaimedTask, xcom_file: &Path) -> Vec<(String, String)> {
    let ti = &claimed.ti;
    let mut env = vec![
        ("UPDRAFT_DAG_ID", ti.dag_id.clone()),
        ("UPDRAFT_TASK_ID", ti.task_id.clone()),
        ("UPDRAFT_RUN_ID", ti.run_id.clone()),
        ("UPDRAFT_TRY_NUMBER", ti.try_number.to_string()),
        ("UPDRAFT_MAP_INDEX", ti.map_index.to_string()),
        ("UPDRAFT_XCOM_FILE", xcom_file.display().to_string()),
        ("AIRFLOW_CTX_DAG_ID", ti.dag_id.clone()),
        ("AIRFLOW_CTX_TASK_ID", ti.task_id.clone()),
        ("AIRFLOW_CTX_DAG_RUN_ID", ti.run_id.clone()),
        ("AIRFLOW_CTX_TRY_NUMBER", ti.try_number.to_string()),
    ];
    // A run without a logical date (possible in Airflow 3) gets no date variables rather
    // than made-up ones.
    if let Some(date) = claimed.run.logical_date {
        env.push(("UPDRAFT_LOGICAL_DATE", airflow_ts(date)));
        env.push(("UPDRAFT_DS", date.format("%Y-%m-%d").to_string()));
        env.push(("AIRFLOW_CTX_LOGICAL_DATE", airflow_ts(date)));
    }
    env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A timestamp as Airflow writes `ts`: `2024-01-01T00:00:00+00:00`.
pub(crate) fn airflow_ts(date: DateTime<Utc>) -> String {
    date.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}
