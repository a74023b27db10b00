//! The operator kinds, run inside the worker rather than as a child process: `http`, `sql`,
//! `email` and `trigger_dag`. Each renders its typed spec with the task's template context
//! (as a `bash` command is rendered), talks to the outside world through the `hooks` crate,
//! and writes what it did into the try's log, one clear line per step.
//!
//! The whole try is bounded by `execution_timeout` and stops when the worker shuts down;
//! requests and statements without one are bounded by [`DEFAULT_TIMEOUT`].

use std::time::Duration;

use chrono::Utc;
use dag::operator::text_field;
use dag::template::{self, Reads, TemplateContext, TemplateError};
use dag::{EmailSpec, HttpSpec, RunState, SqlSpec, TaskKind, TriggerDagSpec};
use hooks::http::{HttpError, HttpRequest};
use hooks::mail::{Mail, MailError};
use hooks::notify::render_strings;
use hooks::sql::{self, Parameters, SqlError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use store::runs::{TriggerError, TriggerRequest};
use store::secrets::{Connection, SecretError};
use store::{StoreError, StoreEvent};
use tokio::sync::broadcast;

use crate::attempt::{Attempt, Outcome, Ran};
use crate::render::{self, ContextError, render_json};
use crate::stop::StopReason;
use crate::xcom::{self, RETURN_VALUE};

/// The bound on one request or statement run when the task sets no `execution_timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How often a waiting `trigger_dag` looks at its child run when no store event woke it.
const DEFAULT_POKE_INTERVAL: Duration = Duration::from_secs(5);

/// Why an operator try failed. The text is the try's last log line (and so the failure
/// notifications' `exception`); "task failed: …" marks failures of the work itself.
#[derive(Debug, thiserror::Error)]
enum OperatorError {
    /// The template context could not be built.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// A string of the spec did not render.
    #[error("template error in the {kind} spec: {source}")]
    Template {
        kind: &'static str,
        #[source]
        source: TemplateError,
    },
    /// `trigger_dag`'s `conf` did not render.
    #[error("template error in trigger_dag conf: {0}")]
    Conf(#[source] TemplateError),
    /// The spec lacks a field or a field has the wrong type, once rendered.
    #[error("{0}")]
    Invalid(String),
    /// The connection is not defined, or the store could not be asked for it.
    #[error(transparent)]
    Connection(sensor::ConnectionError),
    /// The stored connection could not be decrypted (the vault's message alone, as tasks
    /// have always logged it).
    #[error(transparent)]
    OpenConnection(SecretError),
    /// The rendered http spec is malformed.
    #[error(transparent)]
    HttpSpec(HttpError),
    /// The request failed or got an unexpected status.
    #[error("task failed: {0}")]
    Http(#[source] HttpError),
    /// `parameters` of the rendered sql spec is malformed.
    #[error(transparent)]
    SqlSpec(SqlError),
    /// A statement failed.
    #[error("task failed: {0}")]
    Sql(#[source] SqlError),
    /// The sql file could not be read.
    #[error("could not read sql file {}: {source}", .path.display())]
    SqlFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The mail was not sent.
    #[error("task failed: email not sent: {0}")]
    Mail(#[source] MailError),
    /// The store failed while making the run.
    #[error("could not trigger DAG '{dag_id}': {source}")]
    TriggerStore {
        dag_id: String,
        #[source]
        source: TriggerError,
    },
    /// The run could not be made (unknown or inactive DAG, bad conf).
    #[error("task failed: could not trigger DAG '{dag_id}': {source}")]
    Trigger {
        dag_id: String,
        #[source]
        source: TriggerError,
    },
    /// The triggered run could not be read while waiting for it.
    #[error("could not read run {run_id} of {dag_id}: {source}")]
    ReadRun {
        run_id: String,
        dag_id: String,
        #[source]
        source: StoreError,
    },
    /// The triggered run was deleted while waiting for it.
    #[error("run {run_id} of {dag_id} disappeared")]
    RunGone { run_id: String, dag_id: String },
    /// The triggered run ended in a failed state (the message names it).
    #[error("task failed: {0}")]
    RunFailed(String),
    /// `execution_timeout` passed.
    #[error("task failed: execution_timeout exceeded")]
    TimedOut,
    /// The try was asked to stop (the worker's shutdown, a change from outside).
    #[error("{}", .0.outcome_line())]
    Stopped(StopReason),
}

type Result<T> = std::result::Result<T, OperatorError>;

/// Run one `http`, `sql`, `email` or `trigger_dag` try.
pub(crate) async fn run(attempt: &Attempt<'_>) -> Ran {
    let log = attempt.log;
    let timeout = attempt.timeout();
    let work = operate(attempt, timeout);
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        result = work => result,
        () = deadline => Err(OperatorError::TimedOut),
        reason = attempt.stop.stopped() => Err(OperatorError::Stopped(reason)),
    };
    match result {
        Ok(value) => {
            let mut xcoms = Vec::new();
            if let Some(value) = value.filter(|_| attempt.task.do_xcom_push) {
                if let Err(err) = xcom::check_size(RETURN_VALUE, &value) {
                    log.system(err.to_string()).await;
                    return Ran::only(Outcome::Failed);
                }
                xcoms.push((RETURN_VALUE.to_string(), value));
            }
            Ran {
                outcome: Outcome::Success,
                xcoms,
                callbacks_left: None,
            }
        }
        Err(err) => {
            log.system(err.to_string()).await;
            Ran::only(Outcome::Failed)
        }
    }
}

/// The try itself: `Ok` with the `return_value` to push, or why it failed.
async fn operate(attempt: &Attempt<'_>, timeout: Option<Duration>) -> Result<Option<Value>> {
    let kind = &attempt.task.kind;
    let reads = render::task_reads(attempt) | spec_reads(kind);
    let ctx = render::bound_context(attempt, reads).await?;
    let limit = timeout.unwrap_or(DEFAULT_TIMEOUT);
    match kind {
        TaskKind::Http { spec } => http(attempt, spec, &ctx, limit).await,
        TaskKind::Sql { spec } => sql(attempt, spec, &ctx, limit).await,
        TaskKind::Email { spec } => email(attempt, spec, &ctx).await.map(|()| None),
        TaskKind::TriggerDag { spec } => trigger_dag(attempt, spec, &ctx).await,
        other => Err(OperatorError::Invalid(format!(
            "task kind '{}' does not run in the worker",
            other.operator()
        ))),
    }
}

/// What the templates of an operator's spec read.
fn spec_reads(kind: &TaskKind) -> Reads {
    let json = match kind {
        TaskKind::Http { spec } => serde_json::to_value(spec),
        TaskKind::Sql { spec } => serde_json::to_value(spec),
        TaskKind::Email { spec } => serde_json::to_value(spec),
        TaskKind::TriggerDag { spec } => serde_json::to_value(spec),
        _ => return Reads::default(),
    };
    // A spec of JSON fields always serializes; reading everything is the safe answer if not.
    json.map_or(
        Reads {
            xcoms: true,
            variables: true,
            connections: true,
        },
        |value| template::reads_value(&value),
    )
}

/// Render every string of a spec as text.
fn render<S: Serialize + DeserializeOwned>(
    spec: &S,
    ctx: &TemplateContext,
    kind: &'static str,
) -> Result<S> {
    let invalid =
        |err: serde_json::Error| OperatorError::Invalid(format!("the {kind} spec: {err}"));
    let value = serde_json::to_value(spec).map_err(invalid)?;
    let rendered =
        render_strings(&value, ctx).map_err(|source| OperatorError::Template { kind, source })?;
    serde_json::from_value(rendered).map_err(invalid)
}

/// A connection by id: from the environment (`UPDRAFT_CONN_<ID>`) first, as templates see
/// them, else from the store; its password is masked in the log from now on.
async fn connection(attempt: &Attempt<'_>, conn_id: &str) -> Result<Connection> {
    let config = attempt.config;
    let found = sensor::find_connection(
        attempt.store.as_ref(),
        &config.vault,
        &config.env_connections,
        conn_id,
    )
    .await
    .map_err(|err| match err {
        sensor::ConnectionError::Open { source, .. } => OperatorError::OpenConnection(source),
        other => OperatorError::Connection(other),
    })?;
    if let Some(password) = &found.password {
        attempt.log.mask(vec![password.clone()]);
    }
    Ok(found)
}

async fn http(
    attempt: &Attempt<'_>,
    spec: &HttpSpec,
    ctx: &TemplateContext,
    limit: Duration,
) -> Result<Option<Value>> {
    let log = attempt.log;
    let spec = render(spec, ctx, "http")?;
    let conn = match text_field(spec.conn_id.as_ref()) {
        Some(id) => Some(connection(attempt, &id).await?),
        None => None,
    };
    let request =
        HttpRequest::from_spec(&spec, conn.as_ref(), limit).map_err(OperatorError::HttpSpec)?;
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
            Err(OperatorError::Http(err))
        }
    }
}

async fn sql(
    attempt: &Attempt<'_>,
    spec: &SqlSpec,
    ctx: &TemplateContext,
    limit: Duration,
) -> Result<Option<Value>> {
    let log = attempt.log;
    let conn_id = text_field(spec.conn_id.as_ref())
        .ok_or_else(|| OperatorError::Invalid("a sql task needs conn_id".into()))?;
    let statements = match (
        text_field(spec.sql.as_ref()),
        text_field(spec.file.as_ref()),
    ) {
        (Some(text), _) => text,
        (None, Some(file)) => {
            let path = attempt.resolve(&file);
            let text = tokio::fs::read_to_string(&path).await.map_err(|source| {
                OperatorError::SqlFile {
                    path: path.clone(),
                    source,
                }
            })?;
            log.system(format!("sql: statements from {}", path.display()))
                .await;
            text
        }
        (None, None) => {
            return Err(OperatorError::Invalid(
                "a sql task needs sql or file".into(),
            ));
        }
    };
    // The statements are rendered like every other string of the spec (a file too).
    let unrendered = SqlSpec {
        conn_id: Some(Value::String(conn_id)),
        sql: Some(Value::String(statements)),
        file: None,
        parameters: spec.parameters.clone(),
    };
    let rendered = render(&unrendered, ctx, "sql")?;
    let text = |field: Option<Value>| match field {
        Some(Value::String(s)) => s,
        _ => String::new(),
    };
    let statements = text(rendered.sql);
    let parameters =
        Parameters::from_spec(rendered.parameters.as_ref()).map_err(OperatorError::SqlSpec)?;
    let conn_id = text(rendered.conn_id);
    let conn = connection(attempt, &conn_id).await?;
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
            Err(OperatorError::Sql(err))
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

async fn email(attempt: &Attempt<'_>, spec: &EmailSpec, ctx: &TemplateContext) -> Result<()> {
    let log = attempt.log;
    let spec = render(spec, ctx, "email")?;
    let mail = Mail::from_spec(&spec, &format!("Updraft: {}.{}", ctx.dag_id, ctx.task_id));
    let smtp = &attempt.config.notify.smtp;
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
            Err(OperatorError::Mail(err))
        }
    }
}

/// States given as a list of names in the spec's field `key`, or the default.
fn states(field: Option<&Value>, key: &str, default: &[RunState]) -> Result<Vec<RunState>> {
    let invalid = |message: String| OperatorError::Invalid(message);
    let Some(value) = field.filter(|v| !v.is_null()) else {
        return Ok(default.to_vec());
    };
    let names: Vec<String> = match value {
        Value::String(s) => s.split(',').map(|s| s.trim().to_string()).collect(),
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid(format!("{key}: {v} is not a state name")))
            })
            .collect::<Result<_>>()?,
        other => {
            return Err(invalid(format!(
                "{key} must be a list of run states, got {other}"
            )));
        }
    };
    names
        .iter()
        .map(|name| {
            RunState::ALL
                .into_iter()
                .find(|s| s.as_str() == name)
                .ok_or_else(|| {
                    invalid(format!(
                        "{key}: '{name}' is not a run state (queued, running, success, failed)"
                    ))
                })
        })
        .collect()
}

fn flag(field: Option<&Value>, key: &str) -> Result<bool> {
    match field {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(OperatorError::Invalid(format!(
            "{key} must be true or false, got {other}"
        ))),
    }
}

fn poke_interval(field: Option<&Value>) -> Result<Duration> {
    match field {
        None | Some(Value::Null) => Ok(DEFAULT_POKE_INTERVAL),
        Some(Value::Number(n)) => Ok(Duration::from_secs_f64(n.as_f64().unwrap_or(5.0).max(0.01))),
        Some(Value::String(s)) => Ok(Duration::from_secs_f64(
            dag::duration::parse_duration(s)
                .map_err(|e| OperatorError::Invalid(format!("poke_interval: {e}")))?
                .max(0.01),
        )),
        Some(other) => Err(OperatorError::Invalid(format!(
            "poke_interval must be a duration, got {other}"
        ))),
    }
}

async fn trigger_dag(
    attempt: &Attempt<'_>,
    raw: &TriggerDagSpec,
    ctx: &TemplateContext,
) -> Result<Option<Value>> {
    let log = attempt.log;
    let store = attempt.store;
    let claimed = attempt.claimed;
    // `conf` is data: a string that is exactly one `{{ expr }}` yields the value itself.
    let conf = match raw.conf.as_ref().filter(|c| !c.is_null()) {
        None => None,
        Some(conf) => Some(render_json(conf, ctx).map_err(OperatorError::Conf)?),
    };
    let rest = TriggerDagSpec {
        conf: None,
        ..raw.clone()
    };
    let spec = render(&rest, ctx, "trigger_dag")?;
    let dag_id = text_field(spec.dag_id.as_ref())
        .ok_or_else(|| OperatorError::Invalid("trigger_dag needs dag_id".into()))?;
    let wait = flag(spec.wait_for_completion.as_ref(), "wait_for_completion")?;
    let allowed = states(
        spec.allowed_states.as_ref(),
        "allowed_states",
        &[RunState::Success],
    )?;
    let failed = states(
        spec.failed_states.as_ref(),
        "failed_states",
        &[RunState::Failed],
    )?;
    let poke_interval = poke_interval(spec.poke_interval.as_ref())?;
    // Subscribe before creating the run, so its end cannot slip between the two.
    let mut events = store.subscribe();
    // Microseconds in the run id, so that two tasks triggering the same DAG at once make two
    // runs (a manual run id otherwise has whole seconds).
    let now = Utc::now();
    let request = TriggerRequest {
        logical_date: Some(now),
        conf: conf.clone(),
        run_id: Some(format!(
            "manual__{}",
            now.to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
        )),
    };
    let run = match store::runs::trigger(store.as_ref(), &dag_id, request, now).await {
        Ok(run) => run,
        Err(source @ TriggerError::Store(_)) => {
            return Err(OperatorError::TriggerStore { dag_id, source });
        }
        Err(source) => {
            log.note_error(source.to_string());
            return Err(OperatorError::Trigger { dag_id, source });
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
            .map_err(|source| OperatorError::ReadRun {
                run_id: run.run_id.clone(),
                dag_id: dag_id.clone(),
                source,
            })?
            .ok_or_else(|| OperatorError::RunGone {
                run_id: run.run_id.clone(),
                dag_id: dag_id.clone(),
            })?;
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
            return Err(OperatorError::RunFailed(message));
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
