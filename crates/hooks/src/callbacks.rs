//! When a task try or a run ends, which notifications go out: a task's `on_success`,
//! `on_failure`, `on_retry` (and `on_execute` when a try starts) with the default alert mail,
//! and a DAG's run-level `on_success`/`on_failure`.
//!
//! The worker calls [`task_ended`] after it committed a try's end; the scheduler calls it for
//! tries it fails itself (a worker that died), and calls [`run_ended`] when a run ends. Each
//! returns its reports for the caller to log; none changes any state.

use std::path::PathBuf;

use chrono::SecondsFormat;
use dag::{Dag, RunState, Task, TaskState};
use serde_json::Value;
use store::secrets::{Connection, Vault, load_template_secrets};
use store::{RunRecord, Store};

use crate::notify::{ActionReport, Alert, AlertKind, NotifySettings, run_actions, send_alert};

/// What the notification needs besides settings: where to read secrets for templates.
#[derive(Clone, Copy)]
pub struct Secrets<'a> {
    pub store: &'a dyn Store,
    pub vault: &'a Vault,
    pub env_connections: &'a [Connection],
}

/// One try of one task instance, as notifications describe it.
#[derive(Debug, Clone)]
pub struct TryInfo {
    pub map_index: i32,
    pub try_number: u32,
    pub max_tries: u32,
    pub hostname: Option<String>,
    /// The failure message, for failures and retries (`exception` in templates).
    pub exception: Option<String>,
}

/// Which moment of a try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryMoment {
    /// The try starts (`on_execute`).
    Started,
    /// The try ended in this state.
    Ended(TaskState),
}

/// Whether `task` has anything to send at `moment` (so callers skip the work otherwise).
pub fn task_has_notifications(task: &Task, moment: TryMoment) -> bool {
    match moment {
        TryMoment::Started => !task.on_execute.is_empty(),
        TryMoment::Ended(TaskState::Success) => !task.on_success.is_empty(),
        TryMoment::Ended(TaskState::Failed) => {
            !task.on_failure.is_empty() || (task.email_on_failure && !task.email.is_empty())
        }
        TryMoment::Ended(TaskState::UpForRetry) => {
            !task.on_retry.is_empty() || (task.email_on_retry && !task.email.is_empty())
        }
        TryMoment::Ended(_) => false,
    }
}

fn folder_of(dag: &Dag) -> Option<PathBuf> {
    std::path::Path::new(&dag.fileloc)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.to_path_buf())
}

fn mentions_secrets(actions: &[Value]) -> bool {
    actions
        .iter()
        .any(|a| dag::template::reads_value(a).secrets())
}

/// Append what notifications reported to a try's log, one system line each. A failed write
/// is logged, never raised: notifications never change a task's state.
pub async fn log_reports(
    store: &dyn store::Store,
    ti: i64,
    try_number: u32,
    reports: &[ActionReport],
) {
    if reports.is_empty() {
        return;
    }
    let lines: Vec<store::LogLine> = reports
        .iter()
        .map(|report| store::LogLine {
            timestamp: chrono::Utc::now(),
            stream: store::LogStream::System,
            line: format!("notification {report}"),
        })
        .collect();
    if let Err(err) = store.append_log(ti, try_number, &lines).await {
        tracing::warn!(ti, error = %err, "could not log notification reports");
    }
}

/// Send what `task` asks for at `moment` of try `info` of `run`.
pub async fn task_notifications(
    settings: &NotifySettings,
    secrets: Secrets<'_>,
    dag: &Dag,
    task: &Task,
    run: &RunRecord,
    info: &TryInfo,
    moment: TryMoment,
) -> Vec<ActionReport> {
    let exception = info.exception.as_deref();
    let (list, actions, alert) = match moment {
        TryMoment::Started => ("on_execute", &task.on_execute, None),
        TryMoment::Ended(TaskState::Success) => ("on_success", &task.on_success, None),
        TryMoment::Ended(TaskState::Failed) => (
            "on_failure",
            &task.on_failure,
            task.email_on_failure.then_some(AlertKind::Failure),
        ),
        TryMoment::Ended(TaskState::UpForRetry) => (
            "on_retry",
            &task.on_retry,
            task.email_on_retry.then_some(AlertKind::Retry),
        ),
        TryMoment::Ended(_) => return Vec::new(),
    };
    let log_url = settings.log_url(
        &run.dag_id,
        &run.run_id,
        &task.task_id,
        info.map_index,
        info.try_number,
    );
    let mut reports = Vec::new();
    if !actions.is_empty() {
        let mut ctx =
            run.template_context(dag, &task.task_id, info.map_index, info.try_number, &[]);
        if mentions_secrets(actions) {
            match load_template_secrets(secrets.store, secrets.vault, secrets.env_connections).await
            {
                Ok(opened) => {
                    ctx.variables = opened.variables;
                    ctx.connections = opened.connections;
                }
                Err(e) => {
                    tracing::warn!(dag_id = %run.dag_id, error = %e, "notifications render without variables and connections")
                }
            }
        }
        ctx.extra.insert(
            "exception".into(),
            Value::String(exception.unwrap_or_default().to_string()),
        );
        ctx.extra
            .insert("log_url".into(), Value::String(log_url.clone()));
        let cwd = folder_of(dag);
        reports.extend(run_actions(settings, list, actions, &ctx, cwd.as_deref()).await);
    }
    if let Some(kind) = alert.filter(|_| !task.email.is_empty()) {
        let alert = Alert {
            kind,
            to: task.email.clone(),
            dag_id: run.dag_id.clone(),
            task_id: task.task_id.clone(),
            map_index: info.map_index,
            run_id: run.run_id.clone(),
            logical_date: run
                .logical_date
                .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, false)),
            try_number: info.try_number,
            tries: info.max_tries + 1,
            error: exception.unwrap_or("unknown error").to_string(),
            log_url,
            hostname: info.hostname.clone(),
        };
        reports.push(send_alert(settings, &alert).await);
    }
    reports
}

/// Send a DAG's `on_success`/`on_failure` for a run that ended in `state`. `exception` says
/// why a failed run failed (its failed tasks).
pub async fn run_notifications(
    settings: &NotifySettings,
    secrets: Secrets<'_>,
    dag: &Dag,
    run: &RunRecord,
    state: RunState,
    exception: Option<&str>,
) -> Vec<ActionReport> {
    let (list, actions) = match state {
        RunState::Success => ("dag on_success", &dag.on_success),
        RunState::Failed => ("dag on_failure", &dag.on_failure),
        _ => return Vec::new(),
    };
    if actions.is_empty() {
        return Vec::new();
    }
    let mut ctx = run.template_context(dag, "", -1, 0, &[]);
    if mentions_secrets(actions) {
        match load_template_secrets(secrets.store, secrets.vault, secrets.env_connections).await {
            Ok(opened) => {
                ctx.variables = opened.variables;
                ctx.connections = opened.connections;
            }
            Err(e) => {
                tracing::warn!(dag_id = %run.dag_id, error = %e, "notifications render without variables and connections")
            }
        }
    }
    let base = settings.base_url.trim_end_matches('/');
    let log_url = match url::Url::parse(&format!("{base}/")) {
        Ok(mut url) => {
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.pop_if_empty();
                segments.extend(["dags", &run.dag_id, "runs", &run.run_id]);
            }
            url.to_string()
        }
        Err(_) => format!("{base}/dags/{}/runs/{}", run.dag_id, run.run_id),
    };
    ctx.extra.insert(
        "exception".into(),
        Value::String(exception.unwrap_or_default().to_string()),
    );
    ctx.extra.insert("log_url".into(), Value::String(log_url));
    let cwd = folder_of(dag);
    run_actions(settings, list, actions, &ctx, cwd.as_deref()).await
}
