//! The Python callbacks the scheduler runs itself, through the host's callback mode
//! (`pydag::CallbackRun`), off its loop and after the state they follow has committed: a
//! DAG's `on_success_callback`/`on_failure_callback` when one of its runs ends, and a task's
//! `on_failure_callback`/`on_retry_callback` when its try was failed because its worker died
//! (the try's own process never got to run them).
//!
//! A DAG's callback gets Airflow 3's DAG-callback context: that of the run's last task
//! instance (the last by task id in natural order, as Airflow picks it), with `reason` and,
//! for a failed run, `exception`. Its output goes to the scheduler's log; a zombie's task
//! callback's output also goes to the try's log. A callback that fails is logged and changes
//! nothing.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use chrono::Utc;
use dag::mapping::Expansion;
use dag::template::TemplateContext;
use dag::{Dag, PythonCallback};
use hooks::notify::NotifySettings;
use pydag::spec::{CallbackReason, CallbackRequest, RunSpec};
use pydag::{CallbackRun, PythonSettings};
use store::secrets::{Connection, Vault, load_template_secrets};
use store::{LogLine, LogStream, RunRecord, Store, TaskInstanceRecord};
use tracing::{info, warn};

/// What running a callback needs of the scheduler's settings.
#[derive(Clone, Copy)]
pub(crate) struct CallbackSettings<'a> {
    pub python: &'a PythonSettings,
    pub notify: &'a NotifySettings,
    pub vault: &'a Vault,
    pub env_connections: &'a [Connection],
}

/// Run `dag`'s `kind` callbacks for `run`, which ended for `reason` (`exception` says why a
/// failed run failed).
pub(crate) async fn run_dag_callback(
    store: &dyn Store,
    settings: CallbackSettings<'_>,
    dag: &Dag,
    run: &RunRecord,
    kind: PythonCallback,
    reason: CallbackReason,
    exception: Option<String>,
) {
    let last = match store.task_instances(run.id).await {
        Ok(tis) => last_task_instance(tis),
        Err(err) => {
            warn!(dag_id = %run.dag_id, run_id = %run.run_id, error = %err, "a DAG callback runs without its run's task instances");
            None
        }
    };
    let mut ctx = match &last {
        Some(ti) => run.template_context(dag, &ti.task_id, ti.map_index, ti.try_number, &[]),
        None => run.template_context(dag, "", -1, 0, &[]),
    };
    let masks = open_context(store, settings, run, &mut ctx).await;
    let request = CallbackRequest::new(kind, reason, exception);
    let spec = match RunSpec::dag_callback(dag, &ctx, settings.notify, request) {
        Ok(spec) => spec,
        Err(err) => {
            warn!(dag_id = %run.dag_id, run_id = %run.run_id, callback = %kind, error = %err, "DAG callback not run");
            return;
        }
    };
    run_logged(settings, spec, masks, None).await;
}

/// Run the `kind` callback of the task of `ti`, whose try was failed because its worker
/// stopped heartbeating (`message` says so, as the callback's `exception`).
pub(crate) async fn run_zombie_callback(
    store: &dyn Store,
    settings: CallbackSettings<'_>,
    dag: &Dag,
    run: &RunRecord,
    ti: &TaskInstanceRecord,
    kind: PythonCallback,
    message: String,
) {
    let Some(task) = dag.task(&ti.task_id) else {
        return;
    };
    let mut ctx = run.template_context(dag, &ti.task_id, ti.map_index, ti.try_number, &[]);
    let masks = open_context(store, settings, run, &mut ctx).await;
    // A mapped instance's operator needs the values its index binds.
    if let (Ok(index), Some(Ok(expansion))) =
        (usize::try_from(ti.map_index), Expansion::of(task, &ctx))
        && let Some(bound) = expansion.bind(index)
    {
        ctx.extra.extend(bound);
    }
    let request = CallbackRequest::new(kind, CallbackReason::TaskFailure, Some(message));
    let spec = match RunSpec::task(dag, &ctx, settings.notify) {
        Ok(spec) => spec.with_callback(request),
        Err(err) => {
            warn!(dag_id = %run.dag_id, task_id = %ti.task_id, callback = %kind, error = %err, "task callback not run");
            return;
        }
    };
    let mut lines = vec![LogLine {
        timestamp: Utc::now(),
        stream: LogStream::System,
        line: format!("the try's worker is gone: the scheduler runs its {kind}"),
    }];
    lines.extend(run_logged(settings, spec, masks, Some(&ti.task_id)).await);
    if let Err(err) = store.append_log(ti.id, ti.try_number, &lines).await {
        warn!(ti = ti.id, error = %err, "could not log a Python callback's output");
    }
}

/// The run's XComs, variables and connections put into `ctx`, as a try's context has them;
/// returns the secrets to mask in the callback's output.
async fn open_context(
    store: &dyn Store,
    settings: CallbackSettings<'_>,
    run: &RunRecord,
    ctx: &mut TemplateContext,
) -> Vec<String> {
    match store.list_xcoms(run.id, None).await {
        Ok(xcoms) => {
            ctx.xcoms = xcoms
                .into_iter()
                .map(|x| dag::template::XcomValue {
                    task_id: x.task_id,
                    map_index: x.map_index,
                    key: x.key,
                    value: x.value,
                })
                .collect();
        }
        Err(err) => {
            warn!(dag_id = %run.dag_id, run_id = %run.run_id, error = %err, "a callback runs without the run's XComs");
        }
    }
    match load_template_secrets(store, settings.vault, settings.env_connections).await {
        Ok(secrets) => {
            ctx.variables = secrets.variables;
            ctx.connections = secrets.connections;
            secrets.masks
        }
        Err(err) => {
            warn!(dag_id = %run.dag_id, error = %err, "a callback runs without variables and connections");
            Vec::new()
        }
    }
}

/// Run `spec`'s callback, writing its output and how it ended to the scheduler's log;
/// returns the same as lines for a try's log.
async fn run_logged(
    settings: CallbackSettings<'_>,
    spec: RunSpec,
    masks: Vec<String>,
    task_id: Option<&str>,
) -> Vec<LogLine> {
    let Some(kind) = spec.callback().map(CallbackRequest::kind) else {
        return Vec::new();
    };
    let dag_id = spec.dag_id().to_string();
    let run_id = spec.run_id().to_string();
    let task = task_id.unwrap_or("");
    let run = CallbackRun {
        cwd: working_dir(spec.load().dag_folder()),
        spec,
        env: Vec::new(),
        timeout: settings.python.import_timeout,
        masks,
    };
    let system = |line: String| LogLine {
        timestamp: Utc::now(),
        stream: LogStream::System,
        line,
    };
    let mut lines = Vec::new();
    match run.run(settings.python).await {
        Ok(output) => {
            for line in &output.lines {
                info!(%dag_id, %run_id, task_id = %task, callback = %kind, "{}", line.line);
            }
            lines.extend(output.lines);
            if output.ended == pydag::CallbackEnd::Succeeded {
                info!(%dag_id, %run_id, task_id = %task, callback = %kind, "Python callback {}", output.ended);
            } else {
                warn!(%dag_id, %run_id, task_id = %task, callback = %kind, "Python callback {}", output.ended);
            }
            lines.push(system(format!("{kind} {}", output.ended)));
        }
        Err(err) => {
            warn!(%dag_id, %run_id, task_id = %task, callback = %kind, error = %err, "Python callback could not run");
            lines.push(system(format!("{kind} could not run: {err}")));
        }
    }
    lines
}

/// The DAG file's folder when it is there, else the temporary directory.
fn working_dir(folder: Option<&Path>) -> PathBuf {
    folder
        .filter(|f| f.is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

/// Airflow's "last" task instance of a run: the last by task id in natural order (digits
/// compared as numbers), then by map index.
fn last_task_instance(tis: Vec<TaskInstanceRecord>) -> Option<TaskInstanceRecord> {
    tis.into_iter()
        .max_by(|a, b| natural_cmp(&a.task_id, &b.task_id).then(a.map_index.cmp(&b.map_index)))
}

/// Compare two ids with their runs of digits as numbers: `t9` < `t10`.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
                let (na, nb) = (digits(a), digits(b));
                let (da, db) = (
                    a[..na].trim_start_matches('0'),
                    b[..nb].trim_start_matches('0'),
                );
                let order = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
                if order != Ordering::Equal {
                    return order;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                a = &a[x.len_utf8()..];
                b = &b[y.len_utf8()..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_naturally() {
        let mut ids = vec!["t10", "t9", "b", "a.t2", "a.t10", "t09x", "t9"];
        ids.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(ids, ["a.t2", "a.t10", "b", "t9", "t9", "t09x", "t10"]);
    }
}
