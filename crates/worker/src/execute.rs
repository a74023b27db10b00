//! One try of one claimed task instance: load its DAG version, render the task, run it,
//! collect its XComs, and decide the state it ends in.
//!
//! The hot path makes a fixed number of store calls per try: the DAG definition comes from a
//! cache after the first try of a version, the run's XComs are read only when the task
//! mentions `xcom_pull`, and the log goes out in batches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use dag::mapping::Expansion;
use dag::retry::retry_delay_seconds;
use dag::template::{self, TemplateContext, TemplateError};
use dag::{Dag, PythonTask, Task, TaskKind, TaskState};
use hooks::callbacks::{self, TryInfo, TryMoment};
use serde_json::{Value, json};
use store::{ClaimedTask, Finish, Store};
use tokio::sync::watch;

use crate::config::WorkerConfig;
use crate::operators;
use crate::process::{self, Ending, Limits, ProcessSpec};
use crate::task_log::{TaskLog, TrackLast};
use crate::xcom::{self, RETURN_VALUE};

/// Airflow's exit code for "skip this task".
pub const SKIP_EXIT_CODE: i32 = 99;

/// The runner a `python` task's interpreter executes (see the file's docstring).
const PYTHON_RUNNER: &str = include_str!("python_runner.py");

/// Run one task instance that is already `running` (claimed, or made running by the caller),
/// without claiming it and without writing its end: returns the [`Finish`] to hand to
/// [`Store::finish_task_instance`]. The log is written to the store as the try runs.
///
/// This is what `dagctl tasks test` needs; the [`crate::Worker`] loop uses the same path.
pub async fn execute(store: Arc<dyn Store>, claimed: ClaimedTask, config: &WorkerConfig) -> Finish {
    // Nobody cancels a single direct execution; the sender stays alive so it never fires.
    let (_never, cancel) = watch::channel(false);
    run_try(&store, &claimed, config, cancel).await.0
}

/// What the notifications of a finished try need, kept until its end is committed.
pub(crate) struct Ended {
    dag: Arc<Dag>,
    task_id: String,
    exception: String,
}

impl Ended {
    /// Send the task's notifications for the committed end `state` of `claimed`'s try, and
    /// note how each went in the try's log. Never changes any state.
    pub(crate) async fn notify(
        &self,
        store: &Arc<dyn Store>,
        claimed: &ClaimedTask,
        config: &WorkerConfig,
        state: TaskState,
    ) {
        let Some(task) = self.dag.task(&self.task_id) else {
            return;
        };
        let moment = TryMoment::Ended(state);
        if !callbacks::task_has_notifications(task, moment) {
            return;
        }
        let exception = matches!(state, TaskState::Failed | TaskState::UpForRetry)
            .then_some(self.exception.as_str());
        notify_try(store, claimed, config, &self.dag, task, moment, exception).await;
    }
}

/// Send a task's notifications for one moment of a try and log the reports in the try's log.
async fn notify_try(
    store: &Arc<dyn Store>,
    claimed: &ClaimedTask,
    config: &WorkerConfig,
    dag: &Dag,
    task: &Task,
    moment: TryMoment,
    exception: Option<&str>,
) {
    let ti = &claimed.ti;
    let info = TryInfo {
        map_index: ti.map_index,
        try_number: ti.try_number,
        max_tries: ti.max_tries,
        hostname: Some(config.hostname.clone()),
        exception: exception.map(str::to_string),
    };
    let secrets = callbacks::Secrets {
        store: store.as_ref(),
        vault: &config.vault,
        env_connections: &config.env_connections,
    };
    let reports = callbacks::task_notifications(
        &config.notify,
        secrets,
        dag,
        task,
        &claimed.run,
        &info,
        moment,
    )
    .await;
    callbacks::log_reports(store.as_ref(), ti.id, ti.try_number, &reports).await;
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

/// What a try produced.
struct Attempt {
    /// Why it failed, for failure notifications.
    exception: Option<String>,
    outcome: Outcome,
    xcoms: Vec<(String, Value)>,
    /// The task, when it could be found, for its retry settings.
    task: Option<(Arc<Dag>, String)>,
}

impl Attempt {
    fn failed(outcome: Outcome) -> Self {
        Attempt {
            outcome,
            xcoms: Vec::new(),
            task: None,
            exception: None,
        }
    }
}

pub(crate) async fn run_try(
    store: &Arc<dyn Store>,
    claimed: &ClaimedTask,
    config: &WorkerConfig,
    cancel: watch::Receiver<bool>,
) -> (Finish, Option<Ended>) {
    let ti = &claimed.ti;
    let log = TaskLog::start(store.clone(), ti.id, ti.try_number, config.log_cap_bytes);
    let mut attempt = attempt(store, claimed, config, &log, cancel).await;
    if attempt.outcome != Outcome::Success && attempt.outcome != Outcome::Skipped {
        attempt.exception = Some(log.failure_message());
    }
    let now = Utc::now();
    let task = attempt
        .task
        .as_ref()
        .and_then(|(dag, task_id)| dag.task(task_id));
    let (state, next_retry_at) = match attempt.outcome {
        Outcome::Success => (TaskState::Success, None),
        Outcome::Reschedule(at) => (TaskState::UpForReschedule, Some(at)),
        Outcome::Skipped => (TaskState::Skipped, None),
        Outcome::Failed if ti.try_number <= ti.max_tries => {
            let delay = task
                .map(|t| retry_delay_seconds(t, ti.try_number + 1, jitter(ti.id, ti.try_number)))
                .unwrap_or(0.0);
            let at = now + chrono::Duration::milliseconds((delay * 1000.0) as i64);
            (TaskState::UpForRetry, Some(at))
        }
        Outcome::Failed | Outcome::FailedForGood => (TaskState::Failed, None),
    };
    let summary = match next_retry_at {
        Some(at) if state == TaskState::UpForReschedule => format!(
            "not done yet; up for reschedule, next poke at {}",
            crate::sensing::describe_next(at)
        ),
        Some(at) => format!(
            "try {} of {} failed; up for retry at {}",
            ti.try_number,
            ti.max_tries + 1,
            at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        None => format!("task ended: {}", state.as_str()),
    };
    log.system(summary).await;
    log.close().await;
    let ended = attempt.task.map(|(dag, task_id)| Ended {
        dag,
        task_id,
        exception: attempt.exception.unwrap_or_default(),
    });
    let finish = Finish {
        ti: ti.id,
        try_number: ti.try_number,
        state,
        end_date: now,
        next_retry_at,
        xcoms: attempt.xcoms,
    };
    (finish, ended)
}

/// A jitter in [0, 1) that is the same for the same try, so a retry's delay is reproducible.
fn jitter(ti: i64, try_number: u32) -> f64 {
    // splitmix64: a cheap, well-mixed hash of the two numbers.
    let mut x = (ti as u64) ^ (u64::from(try_number) << 48);
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

async fn attempt(
    store: &Arc<dyn Store>,
    claimed: &ClaimedTask,
    config: &WorkerConfig,
    log: &TaskLog,
    cancel: watch::Receiver<bool>,
) -> Attempt {
    let ti = &claimed.ti;
    let map = if ti.map_index >= 0 {
        format!(" [map_index {}]", ti.map_index)
    } else {
        String::new()
    };
    log.system(format!(
        "starting {}.{}{} of run {}, try {} of {}, on {} (worker {})",
        ti.dag_id,
        ti.task_id,
        map,
        ti.run_id,
        ti.try_number,
        ti.max_tries + 1,
        config.hostname,
        config.worker_id
    ))
    .await;
    // The store parses each version once and keeps it: versions never change.
    let dag = match store
        .get_dag_version(&ti.dag_id, &claimed.run.version)
        .await
    {
        Ok(Some(dag)) => dag,
        Ok(None) => {
            log.system(format!(
                "DAG {} version {} is not in the store",
                ti.dag_id, claimed.run.version
            ))
            .await;
            return Attempt::failed(Outcome::FailedForGood);
        }
        Err(err) => {
            log.system(format!("could not load the DAG definition: {err}"))
                .await;
            return Attempt::failed(Outcome::Failed);
        }
    };
    let Some(task) = dag.task(&ti.task_id) else {
        log.system(format!(
            "task {} is not in version {} of DAG {}",
            ti.task_id, claimed.run.version, ti.dag_id
        ))
        .await;
        return Attempt::failed(Outcome::FailedForGood);
    };
    if callbacks::task_has_notifications(task, TryMoment::Started) {
        notify_try(store, claimed, config, &dag, task, TryMoment::Started, None).await;
    }
    let (outcome, xcoms) = match &task.kind {
        TaskKind::Bash { .. } | TaskKind::Python(_) => {
            run_process(store, claimed, config, &dag, task, log, cancel).await
        }
        TaskKind::Http { .. }
        | TaskKind::Sql { .. }
        | TaskKind::Email { .. }
        | TaskKind::TriggerDag { .. } => {
            operators::run(store, claimed, config, &dag, task, log, cancel).await
        }
        TaskKind::Empty => {
            log.system("empty task: nothing to run").await;
            (Outcome::Success, Vec::new())
        }
        TaskKind::Sensor(sensor) => {
            crate::sensing::run_sensor(store, claimed, config, &dag, task, sensor, log, cancel)
                .await
        }
        TaskKind::Switch { .. } => {
            // The scheduler evaluates switches; succeeding here would follow no branch on
            // purpose, so a switch reaching a worker is reported as the bug it is.
            log.system("switch tasks are decided by the scheduler, not by a worker")
                .await;
            (Outcome::FailedForGood, Vec::new())
        }
    };
    Attempt {
        outcome,
        xcoms,
        task: Some((dag.clone(), task.task_id.clone())),
        exception: None,
    }
}

/// A `bash` or `python` try: render, spawn, wait, and collect XComs.
pub(crate) async fn run_process(
    store: &Arc<dyn Store>,
    claimed: &ClaimedTask,
    config: &WorkerConfig,
    dag: &Dag,
    task: &Task,
    log: &TaskLog,
    cancel: watch::Receiver<bool>,
) -> (Outcome, Vec<(String, Value)>) {
    let ti = &claimed.ti;
    let dag_folder = dag_folder(dag);
    let python_source = match &task.kind {
        TaskKind::Python(py) => match &py.file {
            Some(file) => {
                let path = resolve(dag_folder.as_deref(), file);
                match tokio::fs::read_to_string(&path).await {
                    Ok(text) => Some((Some(path), text)),
                    Err(err) => {
                        log.system(format!(
                            "could not read python file {}: {err}",
                            path.display()
                        ))
                        .await;
                        return (Outcome::Failed, Vec::new());
                    }
                }
            }
            None => Some((None, py.code.clone().unwrap_or_default())),
        },
        _ => None,
    };

    let mut ctx = match context(
        store.as_ref(),
        config,
        log,
        claimed,
        dag,
        task,
        python_source.as_ref(),
    )
    .await
    {
        Ok(ctx) => ctx,
        Err(message) => {
            log.system(message).await;
            return (Outcome::Failed, Vec::new());
        }
    };
    match bind_expand(task, &ctx) {
        Ok(bound) => ctx.extra.extend(bound),
        Err(message) => {
            log.system(message).await;
            return (Outcome::Failed, Vec::new());
        }
    }

    let cwd = match working_dir(task, dag_folder.as_deref()) {
        Ok(cwd) => cwd,
        Err(message) => {
            log.system(message).await;
            return (Outcome::Failed, Vec::new());
        }
    };
    let temp = match tempfile::Builder::new().prefix("updraft-try-").tempdir() {
        Ok(temp) => temp,
        Err(err) => {
            log.system(format!(
                "could not create the try's temporary folder: {err}"
            ))
            .await;
            return (Outcome::Failed, Vec::new());
        }
    };
    let xcom_file = temp.path().join("xcom.jsonl");
    let result_file = temp.path().join("return_value.json");

    let mut env = Vec::new();
    for (name, value) in &task.env {
        match render_text(value, &ctx) {
            Ok(value) => env.push((name.clone(), value)),
            Err(err) => {
                log.system(format!("template error in env {name}: {err}"))
                    .await;
                return (Outcome::Failed, Vec::new());
            }
        }
    }
    env.extend(task_env(claimed, &xcom_file));

    let spec = match &task.kind {
        TaskKind::Bash { command } => {
            let command = match render_text(command, &ctx) {
                Ok(command) => command,
                Err(err) => {
                    log.system(format!("template error in bash command: {err}"))
                        .await;
                    return (Outcome::Failed, Vec::new());
                }
            };
            log.system(format!(
                "running: bash -c {} (in {})",
                process::loggable(&command),
                cwd.display()
            ))
            .await;
            ProcessSpec {
                program: "bash".into(),
                args: vec!["-c".into(), command.into()],
                cwd,
                env,
                track_last_stdout: TrackLast::Yes,
            }
        }
        TaskKind::Python(py) => {
            let file = python_source.and_then(|(path, _)| path);
            match python_spec(py, file, &ctx, temp.path()).await {
                Ok(args) => {
                    env.push((
                        "UPDRAFT_RETURN_VALUE_FILE".into(),
                        result_file.display().to_string(),
                    ));
                    // The runner also passes -u; this covers interpreters that ignore it
                    // for their own children.
                    env.push(("PYTHONUNBUFFERED".into(), "1".into()));
                    log.system(format!(
                        "running python task with {}{} (in {})",
                        py.interpreter,
                        describe_python(py),
                        cwd.display()
                    ))
                    .await;
                    ProcessSpec {
                        program: py.interpreter.clone().into(),
                        args,
                        cwd,
                        env,
                        track_last_stdout: TrackLast::No,
                    }
                }
                Err(message) => {
                    log.system(message).await;
                    return (Outcome::Failed, Vec::new());
                }
            }
        }
        _ => return (Outcome::FailedForGood, Vec::new()),
    };

    let running = match process::spawn(&spec, log) {
        Ok(running) => running,
        Err(err) => {
            log.system(format!(
                "could not start {}: {err}",
                spec.program.to_string_lossy()
            ))
            .await;
            return (Outcome::Failed, Vec::new());
        }
    };
    if let Err(err) = store
        .set_task_pid(ti.id, ti.try_number, running.pid())
        .await
    {
        tracing::warn!(ti = ti.id, error = %err, "could not record the task's pid");
    }
    let limits = Limits {
        timeout: task
            .execution_timeout
            .filter(|t| t.is_finite() && *t >= 0.0)
            .map(Duration::from_secs_f64),
        kill_grace: config.kill_grace,
    };
    let finished = running.wait(limits, cancel, log).await;
    if let Some(line) = &finished.last_stderr_line {
        log.note_error(line.clone());
    }
    let mut outcome = match finished.ending {
        Ending::Exited(0) => {
            log.system("task exited with code 0").await;
            Outcome::Success
        }
        Ending::Exited(SKIP_EXIT_CODE) => {
            log.system(format!("task exited with code {SKIP_EXIT_CODE}: skipped"))
                .await;
            Outcome::Skipped
        }
        Ending::Exited(127) => {
            log.system("task exited with code 127: command not found")
                .await;
            Outcome::Failed
        }
        Ending::Exited(126) => {
            log.system("task exited with code 126: command found but not executable")
                .await;
            Outcome::Failed
        }
        Ending::Exited(code) => {
            log.system(format!("task exited with code {code}")).await;
            Outcome::Failed
        }
        Ending::Signaled(signal) => {
            log.system(format!(
                "task was killed by {} ({signal})",
                process::signal_name(signal)
            ))
            .await;
            Outcome::Failed
        }
        Ending::TimedOut => {
            log.system("task failed: execution_timeout exceeded").await;
            Outcome::Failed
        }
        Ending::Cancelled => {
            log.system("task failed: the worker shut down while it ran")
                .await;
            Outcome::Failed
        }
    };

    let mut xcoms = match xcom::read_xcom_file(&xcom_file).await {
        Ok(pushed) => pushed,
        Err(err) => {
            log.system(err.to_string()).await;
            return (Outcome::Failed, Vec::new());
        }
    };
    // The branch choice is kept as `return_value` even when pushing is off.
    let wants_return = task.do_xcom_push || task.branch;
    if outcome == Outcome::Success && wants_return {
        let returned = match &task.kind {
            TaskKind::Bash { .. } => Ok(finished.last_stdout_line.map(Value::String)),
            _ => xcom::read_result_file(&result_file).await,
        };
        match returned {
            Ok(Some(value)) => {
                if let Err(err) = xcom::check_size(RETURN_VALUE, &value) {
                    log.system(err.to_string()).await;
                    outcome = Outcome::Failed;
                } else {
                    xcoms.retain(|(key, _)| key != RETURN_VALUE);
                    xcoms.push((RETURN_VALUE.to_string(), value));
                }
            }
            Ok(None) => {}
            Err(err) => {
                log.system(err.to_string()).await;
                outcome = Outcome::Failed;
            }
        }
    }
    (outcome, xcoms)
}

/// The template context of a try. The run's XComs are read only when something of the task
/// mentions `xcom_pull`.
pub(crate) async fn context(
    store: &dyn Store,
    config: &WorkerConfig,
    log: &TaskLog,
    claimed: &ClaimedTask,
    dag: &Dag,
    task: &Task,
    python_source: Option<&(Option<PathBuf>, String)>,
) -> Result<TemplateContext, String> {
    let ti = &claimed.ti;
    let run = &claimed.run;
    let source = python_source.map(|(_, text)| text.as_str());
    let xcoms = if mentions(task, source, "xcom_pull") {
        store
            .list_xcoms(run.id, None)
            .await
            .map_err(|err| format!("could not read the run's XComs: {err}"))?
    } else {
        Vec::new()
    };
    let mut ctx = run.template_context(dag, &ti.task_id, ti.map_index, ti.try_number, &xcoms);
    if mentions(task, source, "var.") || mentions(task, source, "conn.") {
        let secrets =
            store::secrets::load_template_secrets(store, &config.vault, &config.env_connections)
                .await?;
        log.mask(secrets.masks);
        ctx.variables = secrets.variables;
        ctx.connections = secrets.connections;
    }
    Ok(ctx)
}

/// Whether any text the try renders (or its Python source) mentions `needle`: reading XComs,
/// variables and connections costs queries, so a try only does it when it may use them.
fn mentions(task: &Task, python_source: Option<&str>, needle: &str) -> bool {
    let in_value = |v: &Value| v.to_string().contains(needle);
    let in_kind = match &task.kind {
        TaskKind::Bash { command } => command.contains(needle),
        TaskKind::Python(py) => {
            python_source.is_some_and(|s| s.contains(needle)) || py.kwargs.values().any(in_value)
        }
        TaskKind::Http { spec }
        | TaskKind::Sql { spec }
        | TaskKind::Email { spec }
        | TaskKind::TriggerDag { spec } => in_value(spec),
        _ => false,
    };
    in_kind
        || task.env.values().any(|v| v.contains(needle))
        || task
            .expand
            .as_ref()
            .is_some_and(|e| e.values().any(in_value))
}

/// The names a mapped instance binds: `expand` rendered now (its upstream is done, so it
/// yields what the scheduler expanded), picked at this instance's map index.
pub(crate) fn bind_expand(
    task: &Task,
    ctx: &TemplateContext,
) -> Result<BTreeMap<String, Value>, String> {
    let Ok(index) = usize::try_from(ctx.map_index) else {
        return Ok(BTreeMap::new());
    };
    match Expansion::of(task, ctx) {
        None => Ok(BTreeMap::new()),
        Some(Err(message)) => Err(message),
        Some(Ok(expansion)) => expansion.bind(index).ok_or_else(|| {
            format!(
                "map_index {index} is out of range: expand yields {} instances now",
                expansion.len()
            )
        }),
    }
}

fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// Render text, skipping the template engine for plain text (most commands).
fn render_text(text: &str, ctx: &TemplateContext) -> Result<String, TemplateError> {
    if is_template(text) {
        template::render(text, ctx)
    } else {
        Ok(text.to_string())
    }
}

fn has_template(value: &Value) -> bool {
    match value {
        Value::String(text) => is_template(text),
        Value::Array(items) => items.iter().any(has_template),
        Value::Object(map) => map.values().any(has_template),
        _ => false,
    }
}

pub(crate) fn render_json(value: &Value, ctx: &TemplateContext) -> Result<Value, TemplateError> {
    if has_template(value) {
        template::render_value(value, ctx)
    } else {
        Ok(value.clone())
    }
}

/// The folder of the DAG file, if it has one.
pub(crate) fn dag_folder(dag: &Dag) -> Option<PathBuf> {
    // Absolute, so that a path resolved against it stays right once the process runs in it.
    Path::new(&dag.fileloc)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
}

/// `path` as written in the DAG: relative paths are relative to the DAG file's folder.
pub(crate) fn resolve(dag_folder: Option<&Path>, path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    match dag_folder {
        Some(folder) if path.is_relative() => folder.join(path),
        _ => path,
    }
}

/// `cwd` if set (and present), else the DAG file's folder, else the worker's own.
fn working_dir(task: &Task, dag_folder: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(cwd) = &task.cwd {
        let path = resolve(dag_folder, cwd);
        return if path.is_dir() {
            Ok(path)
        } else {
            Err(format!(
                "working directory {} does not exist",
                path.display()
            ))
        };
    }
    match dag_folder.filter(|f| f.is_dir()) {
        Some(folder) => Ok(folder.to_path_buf()),
        None => std::env::current_dir()
            .map_err(|err| format!("no working directory: the DAG's folder is missing and the worker's cannot be read: {err}")),
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
fn airflow_ts(date: DateTime<Utc>) -> String {
    date.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn describe_python(py: &PythonTask) -> String {
    let mut text = match &py.file {
        Some(file) => format!(", file {file}"),
        None => ", inline code".to_string(),
    };
    if let Some(callable) = &py.callable {
        text.push_str(&format!(", callable {callable}"));
    }
    text
}

/// Write the runner and its spec into the try's folder; returns the interpreter's arguments.
async fn python_spec(
    py: &PythonTask,
    file: Option<PathBuf>,
    ctx: &TemplateContext,
    temp: &Path,
) -> Result<Vec<std::ffi::OsString>, String> {
    let mut kwargs = serde_json::Map::new();
    for (name, value) in &py.kwargs {
        let value = render_json(value, ctx)
            .map_err(|err| format!("template error in kwargs {name}: {err}"))?;
        kwargs.insert(name.clone(), value);
    }
    let date = |d: Option<DateTime<Utc>>| d.map(airflow_ts);
    let logical = ctx.logical_date;
    let mut context = json!({
        "ds": logical.map(|d| d.format("%Y-%m-%d").to_string()),
        "ds_nodash": logical.map(|d| d.format("%Y%m%d").to_string()),
        "ts": date(logical),
        "ts_nodash": logical.map(|d| d.format("%Y%m%dT%H%M%S").to_string()),
        "logical_date": date(logical),
        "data_interval_start": date(ctx.data_interval_start),
        "data_interval_end": date(ctx.data_interval_end),
        "run_id": ctx.run_id,
        "conf": ctx.conf,
        "params": ctx.params,
        "map_index": ctx.map_index,
        "try_number": ctx.try_number,
        "dag_run": {
            "dag_id": ctx.dag_id,
            "run_id": ctx.run_id,
            "run_type": ctx.run_type,
            "logical_date": date(logical),
            "data_interval_start": date(ctx.data_interval_start),
            "data_interval_end": date(ctx.data_interval_end),
            "conf": ctx.conf,
        },
    });
    if let Value::Object(map) = &mut context {
        for (name, value) in &ctx.extra {
            map.insert(name.clone(), value.clone());
        }
    }
    let xcoms: Vec<Value> = ctx
        .xcoms
        .iter()
        .map(|x| json!({"task_id": x.task_id, "map_index": x.map_index, "key": x.key, "value": x.value}))
        .collect();
    let spec = json!({
        "dag_id": ctx.dag_id,
        "task_id": ctx.task_id,
        "run_id": ctx.run_id,
        "try_number": ctx.try_number,
        "map_index": ctx.map_index,
        "code": py.code,
        "file": file.map(|f| f.display().to_string()),
        "callable": py.callable,
        "kwargs": kwargs,
        "context": context,
        "xcoms": xcoms,
    });
    let runner = temp.join("updraft_runner.py");
    let spec_file = temp.join("spec.json");
    let write = |path: PathBuf, text: String| async move {
        tokio::fs::write(&path, text)
            .await
            .map_err(|err| format!("could not write {}: {err}", path.display()))
    };
    write(runner.clone(), PYTHON_RUNNER.to_string()).await?;
    write(spec_file.clone(), spec.to_string()).await?;
    Ok(vec!["-u".into(), runner.into(), spec_file.into()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_in_range_and_reproducible() {
        for ti in [0, 1, 42, i64::MAX, -5] {
            for try_number in [1, 2, 9] {
                let j = jitter(ti, try_number);
                assert!((0.0..1.0).contains(&j), "{j}");
                assert_eq!(j, jitter(ti, try_number));
            }
        }
        assert_ne!(jitter(1, 1), jitter(2, 1));
    }

    #[test]
    fn templates_are_recognised() {
        assert!(is_template("echo {{ ds }}"));
        assert!(is_template("{% if x %}y{% endif %}"));
        assert!(!is_template("echo ${HOME} {a,b}"));
    }
}
