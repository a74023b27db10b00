//! The `airflow` kind: a task of an Airflow Python DAG file. The embedded host loads the DAG
//! version's stored source, sets the operator's template fields as rendered here, and calls
//! its `execute` (or callable) with Airflow's context; XComs, the return value, the log,
//! timeouts and exit codes go through the worker as for a `python` task.
//!
//! A try is forked from the worker's warm zygote for the DAG version when there is one
//! (`pydag::Zygotes`); otherwise, or when the file does not load warm, the host starts cold
//! (`updraft_host.py run`), which then reports any load failure in the try's log.
//!
//! The try's process runs the task's own Python callbacks. When it fails without having
//! reached its failure callbacks (killed after the kill grace, by a signal, or when the
//! worker shut down), the try hands back what running them later needs, and they run once
//! its end is committed (`notify`).

use std::collections::BTreeMap;

use dag::template::{Reads, TemplateContext};
use dag::{AirflowTask, PythonCallback};
use pydag::spec::RunSpec;

use super::process::{ReturnValue, collect, prepare};
use crate::attempt::{Attempt, CallbacksLeft, Outcome, Ran};
use crate::command::{self, CommandError, Workspace};
use crate::process::{self, ProcessSpec, Running};
use crate::render::{self, render_json};
use crate::task_log::TrackLast;

/// Run one try of an `airflow` task.
pub(crate) async fn run(attempt: &Attempt<'_>, spec: &AirflowTask) -> Ran {
    let log = attempt.log;
    // Python code may pull any XCom and read any variable or connection.
    let reads = Reads {
        xcoms: true,
        variables: true,
        connections: true,
    } | render::task_reads(attempt);
    let (ctx, workspace) = match prepare(attempt, reads).await {
        Ok(prepared) => prepared,
        Err(message) => {
            log.system(message).await;
            return Ran::only(Outcome::Failed);
        }
    };
    let process = match host_spec(attempt, &workspace, spec, &ctx).await {
        Ok(process) => process,
        Err(HostSpecError::NoSource(err)) => {
            log.system(err.to_string()).await;
            return Ran::only(Outcome::FailedForGood);
        }
        Err(HostSpecError::Command(err)) => {
            log.system(err.to_string()).await;
            return Ran::only(Outcome::Failed);
        }
    };
    // Stopped while it was being prepared: fork nothing (the cold path checks as well).
    if let Some(reason) = attempt.stop.reason() {
        log.system(reason.outcome_line()).await;
        return Ran::only(Outcome::Failed);
    }
    let exited = match fork_warm(attempt, &process).await {
        Some(running) => command::supervise(attempt, &workspace, running).await,
        None => {
            log.system(format!(
                "running {} {} of {} with {} (in {})",
                spec.operator,
                attempt.task.task_id,
                attempt.dag.fileloc,
                attempt.config.python.interpreter,
                workspace.cwd.display()
            ))
            .await;
            command::run(attempt, &workspace, &process.cold).await
        }
    };
    // Airflow writes a variable at once, so a failed try's writes stand too.
    apply_variable_writes(attempt, &workspace.variable_file()).await;
    let fail_for_good = exited.exit_code == Some(pydag::NO_RETRY_EXIT_CODE);
    let mut ran = collect(attempt, &workspace, exited, ReturnValue::ResultFile).await;
    if fail_for_good && ran.outcome == Outcome::Failed {
        log.system("the task raised AirflowFailException (or its sensor timed out): no retry")
            .await;
        ran.outcome = Outcome::FailedForGood;
    }
    if matches!(ran.outcome, Outcome::Failed | Outcome::FailedForGood) {
        ran.callbacks_left = callbacks_left(attempt, &workspace, spec, process.spec).await;
    }
    ran
}

/// The failure and retry callbacks of a failed try, when the task has some and its process
/// never reached them (it records them in the try's folder before running them).
async fn callbacks_left(
    attempt: &Attempt<'_>,
    workspace: &Workspace,
    task: &AirflowTask,
    spec: RunSpec,
) -> Option<CallbacksLeft> {
    let failure_callbacks = [
        PythonCallback::OnFailureCallback,
        PythonCallback::OnRetryCallback,
    ];
    if !failure_callbacks.iter().any(|c| task.callbacks.contains(c)) {
        return None;
    }
    if tokio::fs::try_exists(workspace.callbacks_ran_file())
        .await
        .unwrap_or(false)
    {
        return None;
    }
    // The try's folder goes with the try: nothing may point into it.
    let xcom_file = workspace.xcom_file().display().to_string();
    let env = workspace
        .env
        .iter()
        .filter(|(_, value)| *value != xcom_file)
        .cloned()
        .collect();
    Some(CallbacksLeft {
        spec,
        cwd: workspace.cwd.clone(),
        env,
        masks: attempt.log.masks(),
    })
}

/// One line of `$UPDRAFT_VARIABLE_FILE`: `Variable.set` or `Variable.delete` in the task.
#[derive(Debug, serde::Deserialize)]
struct VariableWrite {
    key: String,
    value: Option<String>,
    #[serde(default)]
    delete: bool,
}

/// Store the variables the try set or deleted, in order, sealed as `variables set` seals
/// them and keeping a variable's description. A bad line is logged and skipped.
async fn apply_variable_writes(attempt: &Attempt<'_>, path: &std::path::Path) {
    let Ok(text) = tokio::fs::read_to_string(path).await else {
        return;
    };
    let log = attempt.log;
    for (index, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let write: VariableWrite = match serde_json::from_str(line) {
            Ok(write) => write,
            Err(err) => {
                log.system(format!(
                    "$UPDRAFT_VARIABLE_FILE line {}: not a variable write: {err}",
                    index + 1
                ))
                .await;
                continue;
            }
        };
        let result = match (write.delete, &write.value) {
            (true, _) => match attempt.store.delete_variable(&write.key).await {
                Err(store::StoreError::NotFound(_)) => Ok(()),
                other => other,
            },
            (false, Some(value)) => {
                let description = match attempt.store.get_variable(&write.key).await {
                    Ok(existing) => existing.and_then(|v| v.description),
                    Err(_) => None,
                };
                let record =
                    attempt
                        .config
                        .vault
                        .seal_variable(&write.key, value, description.as_deref());
                attempt.store.set_variable(&record).await
            }
            (false, None) => {
                log.system(format!(
                    "$UPDRAFT_VARIABLE_FILE line {}: variable {} has neither a value nor delete",
                    index + 1,
                    write.key
                ))
                .await;
                continue;
            }
        };
        match result {
            Ok(()) => {
                let did = if write.delete { "deleted" } else { "set" };
                log.system(format!("variable {} {did} by the task", write.key))
                    .await;
            }
            Err(err) => {
                log.system(format!("could not store variable {}: {err}", write.key))
                    .await;
            }
        }
    }
}

/// The try's spec written into its folder, and the two ways to start it.
struct HostTry {
    /// The spec (its `load` part is what a zygote must have loaded to fork this try).
    spec: RunSpec,
    /// The try as forked from a zygote.
    warm: pydag::TryRequest,
    /// The try as a process of its own.
    cold: ProcessSpec,
}

/// Fork the try from the worker's zygote for its DAG version; `None` means run it cold.
async fn fork_warm(attempt: &Attempt<'_>, process: &HostTry) -> Option<Running> {
    let zygotes = attempt.zygotes?;
    match zygotes.fork(process.spec.load(), &process.warm).await {
        Ok(forked) => {
            attempt
                .log
                .system(format!(
                    "running {} of {} in a warm Python process (pid {}, in {})",
                    attempt.task.task_id,
                    attempt.dag.fileloc,
                    forked.pid,
                    process.warm.cwd.display()
                ))
                .await;
            Some(process::adopt(forked, attempt.log))
        }
        Err(err) => {
            tracing::debug!(task = %attempt.task.task_id, error = %err, "running the try cold");
            None
        }
    }
}

/// Why the host's spec could not be made.
enum HostSpecError {
    /// The DAG version has no Python source: no try of it can ever run.
    NoSource(pydag::spec::SpecError),
    /// A field did not render, or the spec could not be written.
    Command(CommandError),
}

impl From<CommandError> for HostSpecError {
    fn from(err: CommandError) -> Self {
        HostSpecError::Command(err)
    }
}

/// The host's spec for this try, written into the try's folder, and how to start it.
async fn host_spec(
    attempt: &Attempt<'_>,
    workspace: &Workspace,
    spec: &AirflowTask,
    ctx: &TemplateContext,
) -> Result<HostTry, HostSpecError> {
    let host = pydag::host_script().map_err(|e| CommandError::Prepare(e.to_string()))?;
    let mut fields = BTreeMap::new();
    for (name, value) in &spec.fields {
        let rendered = render_json(value, ctx).map_err(|source| CommandError::Template {
            what: format!("template field {name}"),
            source,
        })?;
        fields.insert(name.clone(), rendered);
    }
    let document = RunSpec::task(attempt.dag, ctx, &attempt.config.notify)
        .map_err(HostSpecError::NoSource)?
        .with_fields(fields);
    let spec_file = workspace.write("spec.json", document.to_json()).await?;
    let mut env = workspace.env.clone();
    env.push((
        "UPDRAFT_RETURN_VALUE_FILE".into(),
        workspace.result_file().display().to_string(),
    ));
    env.push((
        "UPDRAFT_VARIABLE_FILE".into(),
        workspace.variable_file().display().to_string(),
    ));
    env.push((
        "UPDRAFT_CALLBACKS_RAN_FILE".into(),
        workspace.callbacks_ran_file().display().to_string(),
    ));
    env.push(("PYTHONUNBUFFERED".into(), "1".into()));
    env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
    let interpreter = &attempt.config.python.interpreter;
    Ok(HostTry {
        spec: document,
        warm: pydag::TryRequest {
            spec: spec_file.clone(),
            cwd: workspace.cwd.clone(),
            env: env.clone(),
        },
        cold: ProcessSpec {
            program: interpreter.into(),
            args: vec!["-u".into(), host.into(), "run".into(), spec_file.into()],
            cwd: workspace.cwd.clone(),
            env,
            track_last_stdout: TrackLast::No,
        },
    })
}
