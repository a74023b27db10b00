//! The process kinds: `bash` (`bash -c command`) and `python` (the embedded runner, calling
//! a file's or inline code's `callable`). Render, run the child, collect its XComs and its
//! `return_value` (bash: the last stdout line, or for an Airflow file's task the last line of
//! stdout and stderr merged, as Airflow's BashOperator; python: the callable's return value).

use std::path::PathBuf;

use dag::model::Semantics;
use dag::template::{self, TemplateContext};
use dag::{PythonTask, TaskKind};
use pydag::spec::{SpecXcom, TryContext};
use serde_json::{Value, json};

use crate::attempt::{Attempt, Outcome, Ran};
use crate::command::{self, CommandError, Workspace};
use crate::process::ProcessSpec;
use crate::render::{self, render_json};
use crate::task_log::TrackLast;
use crate::xcom::{self, RETURN_VALUE};

/// The runner a `python` task's interpreter executes (see the file's docstring).
const PYTHON_RUNNER: &str = include_str!("../python_runner.py");

/// Run one `bash` or `python` try.
pub(crate) async fn run(attempt: &Attempt<'_>) -> Ran {
    let log = attempt.log;
    let task = attempt.task;
    // A python task's source is read first: what its templates read includes it.
    let python = match &task.kind {
        TaskKind::Python(py) => match python_source(attempt, py).await {
            Ok(source) => Some((py, source)),
            Err(err) => {
                log.system(err.to_string()).await;
                return Ran::only(Outcome::Failed);
            }
        },
        TaskKind::Bash { .. } => None,
        _ => return Ran::only(Outcome::FailedForGood),
    };
    let reads = match (&task.kind, &python) {
        (TaskKind::Bash { command }, _) => command::bash_reads(attempt, command),
        (_, Some((py, source))) => {
            let mut reads = template::reads(&source.text) | render::task_reads(attempt);
            for value in py.kwargs.values() {
                reads |= template::reads_value(value);
            }
            reads
        }
        _ => render::task_reads(attempt),
    };
    let (ctx, workspace) = match prepare(attempt, reads).await {
        Ok(prepared) => prepared,
        Err(message) => {
            log.system(message).await;
            return Ran::only(Outcome::Failed);
        }
    };
    let semantics = attempt.dag.semantics();
    let spec = match (&task.kind, &python) {
        (TaskKind::Bash { command }, _) => match semantics {
            Semantics::Updraft => {
                command::bash_spec(attempt, &workspace, command, &ctx, TrackLast::Yes).await
            }
            Semantics::Airflow => {
                command::bash_spec(attempt, &workspace, command, &ctx, TrackLast::EvenEmpty)
                    .await
                    .map(merge_stderr_into_stdout)
            }
        },
        (_, Some((py, source))) => python_spec(attempt, &workspace, py, source, &ctx).await,
        _ => return Ran::only(Outcome::FailedForGood),
    };
    let spec = match spec {
        Ok(spec) => spec,
        Err(err) => {
            log.system(err.to_string()).await;
            return Ran::only(Outcome::Failed);
        }
    };

    let exited = command::run(attempt, &workspace, &spec).await;
    let returned = match (python, semantics) {
        (None, Semantics::Updraft) => ReturnValue::LastStdoutLine,
        (None, Semantics::Airflow) => ReturnValue::LastOutputLine,
        (Some(_), _) => ReturnValue::ResultFile,
    };
    collect(attempt, &workspace, exited, returned).await
}

/// A process try's template context (with what `reads` needs) and its workspace; the error
/// is the log line saying why the try cannot start.
pub(super) async fn prepare(
    attempt: &Attempt<'_>,
    reads: template::Reads,
) -> Result<(TemplateContext, Workspace), String> {
    let ctx = render::bound_context(attempt, reads)
        .await
        .map_err(|e| e.to_string())?;
    let workspace = Workspace::new(attempt, &ctx).map_err(|e| e.to_string())?;
    Ok((ctx, workspace))
}

/// Where a finished process's `return_value` comes from.
pub(super) enum ReturnValue {
    /// bash (dag-format.md): the last non-empty line it printed on stdout, none without one.
    LastStdoutLine,
    /// bash of an Airflow file (Airflow's BashOperator): the last line of its output, stdout
    /// and stderr merged, even an empty one; `""` when it printed nothing.
    LastOutputLine,
    /// Python: the JSON the runner wrote to the try's result file.
    ResultFile,
}

/// Turn a finished process into the try's outcome and XComs, adding its `return_value`
/// (kept for a branch's choice even when pushing is off).
pub(super) async fn collect(
    attempt: &Attempt<'_>,
    workspace: &Workspace,
    exited: command::Exited,
    returned: ReturnValue,
) -> Ran {
    let log = attempt.log;
    let task = attempt.task;
    let mut outcome = exited.outcome;
    let mut xcoms = exited.xcoms;
    let wants_return = task.do_xcom_push || task.branch;
    if outcome == Outcome::Success && wants_return {
        let returned = match returned {
            ReturnValue::LastStdoutLine => Ok(exited.last_stdout_line.map(Value::String)),
            ReturnValue::LastOutputLine => Ok(Some(Value::String(
                exited.last_stdout_line.unwrap_or_default(),
            ))),
            ReturnValue::ResultFile => xcom::read_result_file(&workspace.result_file()).await,
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
    Ran {
        outcome,
        xcoms,
        callbacks_left: None,
    }
}

/// `bash -c command` with its stderr joined to its stdout before the command starts, as
/// Airflow's BashOperator runs it (one pipe for both), so that the last line read is the
/// last line written, whichever stream it went to.
///
/// Why in the child rather than by interleaving our two pipe readers: lines written to two
/// pipes microseconds apart can be read in either order, which would make the return value
/// a race. The outer shell only redirects and then becomes the spec's own `bash -c command`
/// (same process, same `$0`, same line numbers), so the command runs exactly as written; the
/// cost is one more exec. The log then shows stderr lines as stdout, as Airflow's log does.
fn merge_stderr_into_stdout(mut spec: ProcessSpec) -> ProcessSpec {
    // `bash -c SCRIPT PROGRAM ARGS…`: the script sees PROGRAM as "$0" and the spec's own
    // arguments (`-c command`) as "$@".
    let original = std::mem::take(&mut spec.args);
    spec.args = vec![
        "-c".into(),
        r#"exec 2>&1 && exec "$0" "$@""#.into(),
        spec.program.clone(),
    ];
    spec.args.extend(original);
    spec
}

/// A python task's source: its file (resolved against the DAG's folder) or inline code.
struct PythonSource {
    path: Option<PathBuf>,
    text: String,
}

async fn python_source(
    attempt: &Attempt<'_>,
    py: &PythonTask,
) -> Result<PythonSource, CommandError> {
    match &py.file {
        Some(file) => {
            let path = attempt.resolve(file);
            match tokio::fs::read_to_string(&path).await {
                Ok(text) => Ok(PythonSource {
                    path: Some(path),
                    text,
                }),
                Err(source) => Err(CommandError::ReadSource { path, source }),
            }
        }
        None => Ok(PythonSource {
            path: None,
            text: py.code.clone().unwrap_or_default(),
        }),
    }
}

async fn python_spec(
    attempt: &Attempt<'_>,
    workspace: &Workspace,
    py: &PythonTask,
    source: &PythonSource,
    ctx: &TemplateContext,
) -> Result<ProcessSpec, CommandError> {
    let args = write_runner(workspace, py, source.path.as_deref(), ctx).await?;
    let mut env = workspace.env.clone();
    env.push((
        "UPDRAFT_RETURN_VALUE_FILE".into(),
        workspace.result_file().display().to_string(),
    ));
    // The runner also passes -u; this covers interpreters that ignore it for their own
    // children.
    env.push(("PYTHONUNBUFFERED".into(), "1".into()));
    attempt
        .log
        .system(format!(
            "running python task with {}{} (in {})",
            py.interpreter,
            describe_python(py),
            workspace.cwd.display()
        ))
        .await;
    Ok(ProcessSpec {
        program: py.interpreter.clone().into(),
        args,
        cwd: workspace.cwd.clone(),
        env,
        track_last_stdout: TrackLast::No,
    })
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
async fn write_runner(
    workspace: &Workspace,
    py: &PythonTask,
    file: Option<&std::path::Path>,
    ctx: &TemplateContext,
) -> Result<Vec<std::ffi::OsString>, CommandError> {
    let mut kwargs = serde_json::Map::new();
    for (name, value) in &py.kwargs {
        let value = render_json(value, ctx).map_err(|source| CommandError::Template {
            what: format!("kwargs {name}"),
            source,
        })?;
        kwargs.insert(name.clone(), value);
    }
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
        "context": TryContext::of(ctx),
        "xcoms": SpecXcom::all(ctx),
    });
    let runner = workspace
        .write("updraft_runner.py", PYTHON_RUNNER.to_string())
        .await?;
    let spec_file = workspace.write("spec.json", spec.to_string()).await?;
    Ok(vec!["-u".into(), runner.into(), spec_file.into()])
}
