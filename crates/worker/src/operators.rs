//! The task kinds that run inside the worker rather than as a child process: `http`, `sql`,
//! `email` and `trigger_dag`. Each renders its spec with the task's template context (as a
//! `bash` command is rendered), talks to the outside world through the `hooks` crate, and
//! writes what it did into the try's log, one clear line per step.
//!
//! The whole try is bounded by `execution_timeout` and stops when the worker shuts down;
//! requests and statements without one are bounded by [`DEFAULT_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use dag::template::TemplateContext;
use dag::{Dag, RunState, Task, TaskKind};
use hooks::http::HttpRequest;
use hooks::mail::Mail;
use hooks::notify::render_strings;
use hooks::sql::{self, Parameters};
use serde_json::Value;
use store::runs::{TriggerError, TriggerRequest};
use store::secrets::Connection;
use store::{ClaimedTask, Store, StoreEvent};
use tokio::sync::{broadcast, watch};

use crate::config::WorkerConfig;
use crate::execute::{self, Outcome};
use crate::task_log::TaskLog;
use crate::xcom::{self, RETURN_VALUE};

/// The bound on one request or statement run when the task sets no `execution_timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How often a waiting `trigger_dag` looks at its child run when no store event woke it.
const DEFAULT_POKE_INTERVAL: Duration = Duration::from_secs(5);

type Result<T> = std::result::Result<T, String>;

/// Run one `http`, `sql`, `email` or `trigger_dag` try.
pub(crate) async fn run(
    store: &Arc<dyn Store>,
    claimed: &ClaimedTask,
    config: &WorkerConfig,
    dag: &Dag,
    task: &Task,
    log: &TaskLog,
    mut cancel: watch::Receiver<bool>,
) -> (Outcome, Vec<(String, Value)>) {
    let timeout = task
        .execution_timeout
        .filter(|t| t.is_finite() && *t >= 0.0)
        .map(Duration::from_secs_f64);
    let work = operate(store, claimed, config, dag, task, log, timeout);
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        result = work => result,
        () = deadline => Err("task failed: execution_timeout exceeded".to_string()),
        _ = cancel.wait_for(|stop| *stop) => Err("task failed: the worker shut down while it ran".to_string()),
    };
    match result {
        Ok(value) => {
            let mut xcoms = Vec::new();
            if let Some(value) = value.filter(|_| task.do_xcom_push) {
                if let Err(err) = xcom::check_size(RETURN_VALUE, &value) {
                    log.system(err.to_string()).await;
                    return (Outcome::Failed, Vec::new());
                }
                xcoms.push((RETURN_VALUE.to_string(), value));
            }
            (Outcome::Success, xcoms)
        }
        Err(message) => {
            log.system(message).await;
            (Outcome::Failed, Vec::new())
        }
    }
}

/// The try itself: `Ok` with the `return_value` to push, or `Err` with the line saying why it
/// failed.
async fn operate(
    store: &Arc<dyn Store>,
    claimed: &ClaimedTask,
    config: &WorkerConfig,
    dag: &Dag,
    task: &Task,
    log: &TaskLog,
    timeout: Option<Duration>,
) -> Result<Option<Value>> {
    let mut ctx = execute::context(store.as_ref(), config, log, claimed, dag, task, None).await?;
    ctx.extra.extend(execute::bind_expand(task, &ctx)?);
    let limit = timeout.unwrap_or(DEFAULT_TIMEOUT);
    match &task.kind {
        TaskKind::Http { spec } => http(store, config, log, spec, &ctx, limit).await,
        TaskKind::Sql { spec } => sql(store, config, log, dag, spec, &ctx, limit).await,
        TaskKind::Email { spec } => email(config, log, spec, &ctx).await.map(|()| None),
        TaskKind::TriggerDag { spec } => trigger_dag(store, claimed, log, spec, &ctx).await,
        other => Err(format!(
            "task kind '{}' does not run in the worker",
            other.operator()
        )),
    }
}

fn render(spec: &Value, ctx: &TemplateContext, kind: &str) -> Result<Value> {
    render_strings(spec, ctx).map_err(|e| format!("template error in the {kind} spec: {e}"))
}

fn string_field(spec: &Value, key: &str) -> Option<String> {
    match spec.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// A connection by id: from the environment (`UPDRAFT_CONN_<ID>`) first, as templates see
/// them, else from the store; its password is masked in the log from now on.
async fn connection(
    store: &dyn Store,
    config: &WorkerConfig,
    log: &TaskLog,
    conn_id: &str,
) -> Result<Connection> {
    let found = match config.env_connections.iter().find(|c| c.conn_id == conn_id) {
        Some(conn) => conn.clone(),
        None => {
            let record = store
                .get_connection(conn_id)
                .await
                .map_err(|e| format!("could not read connection '{conn_id}': {e}"))?
                .ok_or_else(|| format!("connection '{conn_id}' is not defined"))?;
            config
                .vault
                .open_connection(&record)
                .map_err(|e| e.to_string())?
        }
    };
    if let Some(password) = &found.password {
        log.mask(vec![password.clone()]);
    }
    Ok(found)
}

async fn http(
    store: &Arc<dyn Store>,
    config: &WorkerConfig,
    log: &TaskLog,
    spec: &Value,
    ctx: &TemplateContext,
    limit: Duration,
) -> Result<Option<Value>> {
    let spec = render(spec, ctx, "http")?;
    let conn = match string_field(&spec, "conn_id") {
        Some(id) => Some(connection(store.as_ref(), config, log, &id).await?),
        None => None,
    };
    let request = HttpRequest::from_spec(&spec, conn.as_ref(), limit).map_err(|e| e.to_string())?;
    log.system(format!(
        "http: {} {}{}",
        request.method,
        request.url,
        conn.as_ref()
            .map(|c| format!(" (connection {})", c.conn_id))
            .unwrap_or_default()
    ))
    .await;
    match request.send().await {
        Ok(response) => {
            log.system(format!(
                "http: {} answered HTTP {}, {} body",
                request.url,
                response.status,
                if response.is_json { "JSON" } else { "text" }
            ))
            .await;
            Ok(Some(response.body))
        }
        Err(err) => {
            log.note_error(err.to_string());
            Err(format!("task failed: {err}"))
        }
    }
}

async fn sql(
    store: &Arc<dyn Store>,
    config: &WorkerConfig,
    log: &TaskLog,
    dag: &Dag,
    spec: &Value,
    ctx: &TemplateContext,
    limit: Duration,
) -> Result<Option<Value>> {
    let conn_id = string_field(spec, "conn_id").ok_or("a sql task needs conn_id")?;
    let statements = match (string_field(spec, "sql"), string_field(spec, "file")) {
        (Some(text), _) => text,
        (None, Some(file)) => {
            let path = execute::resolve(execute::dag_folder(dag).as_deref(), &file);
            let text = tokio::fs::read_to_string(&path)
                .await
                .map_err(|e| format!("could not read sql file {}: {e}", path.display()))?;
            log.system(format!("sql: statements from {}", path.display()))
                .await;
            text
        }
        (None, None) => return Err("a sql task needs sql or file".into()),
    };
    // The statements are rendered like every other string of the spec (a file too).
    let rendered = render(
        &serde_json::json!({"sql": statements, "parameters": spec.get("parameters"), "conn_id": conn_id}),
        ctx,
        "sql",
    )?;
    let statements = rendered["sql"].as_str().unwrap_or_default().to_string();
    let parameters = Parameters::from_spec(rendered.get("parameters"))?;
    let conn_id = rendered["conn_id"].as_str().unwrap_or_default().to_string();
    let conn = connection(store.as_ref(), config, log, &conn_id).await?;
    log.system(format!(
        "sql: running on connection {} ({}): {}",
        conn.conn_id,
        conn.conn_type,
        one_line(&statements, 300)
    ))
    .await;
    match sql::run(&conn, &statements, &parameters, limit).await {
        Ok(output) => {
            log.system(format!(
                "sql: {} statement(s) done; the last returned {} row(s){}",
                output.statements,
                output.rows.len(),
                if output.truncated {
                    format!(" (only the first {} are kept)", sql::MAX_ROWS)
                } else {
                    String::new()
                }
            ))
            .await;
            Ok(Some(Value::Array(output.rows)))
        }
        Err(err) => {
            log.note_error(err.to_string());
            Err(format!("task failed: {err}"))
        }
    }
}

fn one_line(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        line
    } else {
        format!("{}…", line.chars().take(max).collect::<String>())
    }
}

async fn email(
    config: &WorkerConfig,
    log: &TaskLog,
    spec: &Value,
    ctx: &TemplateContext,
) -> Result<()> {
    let spec = render(spec, ctx, "email")?;
    let mail = Mail::from_spec(&spec, &format!("Updraft: {}.{}", ctx.dag_id, ctx.task_id));
    let smtp = &config.notify.smtp;
    log.system(format!(
        "email: sending '{}' to {} via SMTP {}:{}",
        mail.subject,
        mail.to.join(", "),
        smtp.host,
        smtp.port
    ))
    .await;
    match hooks::mail::send(smtp, &mail).await {
        Ok(()) => {
            log.system("email: sent").await;
            Ok(())
        }
        Err(err) => {
            log.note_error(err.to_string());
            Err(format!("task failed: email not sent: {err}"))
        }
    }
}

/// States given as a list of names in the spec, or the default.
fn states(spec: &Value, key: &str, default: &[RunState]) -> Result<Vec<RunState>> {
    let Some(value) = spec.get(key).filter(|v| !v.is_null()) else {
        return Ok(default.to_vec());
    };
    let names: Vec<String> = match value {
        Value::String(s) => s.split(',').map(|s| s.trim().to_string()).collect(),
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{key}: {v} is not a state name"))
            })
            .collect::<Result<_>>()?,
        other => return Err(format!("{key} must be a list of run states, got {other}")),
    };
    names
        .iter()
        .map(|name| {
            RunState::ALL
                .into_iter()
                .find(|s| s.as_str() == name)
                .ok_or_else(|| {
                    format!("{key}: '{name}' is not a run state (queued, running, success, failed)")
                })
        })
        .collect()
}

fn flag(spec: &Value, key: &str) -> Result<bool> {
    match spec.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(format!("{key} must be true or false, got {other}")),
    }
}

async fn trigger_dag(
    store: &Arc<dyn Store>,
    claimed: &ClaimedTask,
    log: &TaskLog,
    raw: &Value,
    ctx: &TemplateContext,
) -> Result<Option<Value>> {
    // `conf` is data: a string that is exactly one `{{ expr }}` yields the value itself.
    let conf = match raw.get("conf") {
        None | Some(Value::Null) => None,
        Some(conf) => Some(
            execute::render_json(conf, ctx)
                .map_err(|e| format!("template error in trigger_dag conf: {e}"))?,
        ),
    };
    let mut rest = raw.clone();
    if let Value::Object(map) = &mut rest {
        map.remove("conf");
    }
    let spec = render(&rest, ctx, "trigger_dag")?;
    let dag_id = string_field(&spec, "dag_id").ok_or("trigger_dag needs dag_id")?;
    let wait = flag(&spec, "wait_for_completion")?;
    let allowed = states(&spec, "allowed_states", &[RunState::Success])?;
    let failed = states(&spec, "failed_states", &[RunState::Failed])?;
    let poke_interval = match spec.get("poke_interval") {
        None | Some(Value::Null) => DEFAULT_POKE_INTERVAL,
        Some(Value::Number(n)) => Duration::from_secs_f64(n.as_f64().unwrap_or(5.0).max(0.01)),
        Some(Value::String(s)) => Duration::from_secs_f64(
            dag::duration::parse_duration(s)
                .map_err(|e| format!("poke_interval: {e}"))?
                .max(0.01),
        ),
        Some(other) => return Err(format!("poke_interval must be a duration, got {other}")),
    };
    // Subscribe before creating the run, so its end cannot slip between the two.
    let mut events = store.subscribe();
    let request = TriggerRequest {
        logical_date: None,
        conf: conf.clone(),
        run_id: None,
    };
    let run = match store::runs::trigger(store.as_ref(), &dag_id, request, Utc::now()).await {
        Ok(run) => run,
        Err(TriggerError::Store(e)) => {
            return Err(format!("could not trigger DAG '{dag_id}': {e}"));
        }
        Err(e) => {
            log.note_error(e.to_string());
            return Err(format!(
                "task failed: could not trigger DAG '{dag_id}': {e}"
            ));
        }
    };
    log.system(format!(
        "trigger_dag: created run {} of DAG {} (from run {} of {}){}",
        run.run_id,
        dag_id,
        claimed.run.run_id,
        claimed.run.dag_id,
        conf.map(|c| format!(" with conf {c}")).unwrap_or_default()
    ))
    .await;
    let run_id = Value::String(run.run_id.clone());
    if !wait {
        return Ok(Some(run_id));
    }
    log.system(format!(
        "trigger_dag: waiting for run {} of {} to end in {}",
        run.run_id,
        dag_id,
        allowed
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" or ")
    ))
    .await;
    loop {
        let current = store
            .get_run_by_key(run.id)
            .await
            .map_err(|e| format!("could not read run {} of {dag_id}: {e}", run.run_id))?
            .ok_or_else(|| format!("run {} of {dag_id} disappeared", run.run_id))?;
        if allowed.contains(&current.state) {
            log.system(format!(
                "trigger_dag: run {} of {} ended {}",
                run.run_id, dag_id, current.state
            ))
            .await;
            return Ok(Some(run_id));
        }
        if failed.contains(&current.state) || current.state.is_finished() {
            let message = format!(
                "triggered run {} of DAG {} ended {}",
                run.run_id, dag_id, current.state
            );
            log.note_error(message.clone());
            return Err(format!("task failed: {message}"));
        }
        // Woken by the child's own changes; the poke interval covers events from other
        // processes that this store does not relay.
        tokio::select! {
            event = events.recv() => {
                if let Err(broadcast::error::RecvError::Closed) = event {
                    tokio::time::sleep(poke_interval).await;
                }
                if let Ok(StoreEvent::RunChanged { run: changed }) = event && changed != run.id {
                    continue;
                }
            }
            () = tokio::time::sleep(poke_interval) => {}
        }
    }
}
