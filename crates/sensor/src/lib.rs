//! The probes of sensors: render a sensor's templates once, then poke — check whether what it
//! waits for is there — as often as needed.
//!
//! Why a crate of its own: the scheduler's sensor loop pokes reschedule-mode sensors and a
//! worker pokes poke-mode ones, with the same functions, and neither may depend on the other.
//! A poke never changes state; the caller turns its [`PokeResult`] into one guarded store
//! transition.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use dag::sensor::{ExternalTaskProbe, HttpProbe, Probe};
use dag::template::{self, TemplateContext};
use dag::{RunState, TaskState};
use hooks::http::{ExpectStatus, HttpError, HttpRequest, RequestBody, RequestParts};
use hooks::sql::{Parameters, SqlError};
use serde_json::{Value, json};
use store::secrets::{Connection, Vault};
use store::{Admin, RunFilter, RunQueue};

/// What one poke found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PokeResult {
    /// What the sensor waits for is there.
    Done(String),
    /// Not yet; poke again later.
    NotYet(String),
    /// It can never be there (the external task failed): the sensor fails without retry.
    Fail(String),
}

/// A probe with its templates rendered: rendered once per try and poked many times.
#[derive(Debug, Clone)]
pub enum Rendered {
    File {
        /// The path as the user wrote it, rendered (for the log).
        shown: String,
        path: PathBuf,
    },
    Time {
        after: DateTime<Utc>,
    },
    ExternalTask {
        dag_id: String,
        task_id: Option<String>,
        logical_date: Option<DateTime<Utc>>,
    },
    Http(Box<RenderedHttp>),
    Sql {
        connection: Box<Connection>,
        sql: String,
    },
    /// Runs on a worker; the command is rendered there with the task's environment.
    Command,
}

/// An HTTP probe ready to send.
#[derive(Debug, Clone)]
pub struct RenderedHttp {
    pub request: HttpRequest,
    pub response_check: Option<String>,
    /// The context `response_check` is evaluated in (`response` is added per poke).
    pub context: Box<TemplateContext>,
}

impl Rendered {
    /// How the poke log names what is awaited: `file /x`, `time 2024-…`.
    pub fn describe(&self) -> String {
        match self {
            Rendered::File { shown, .. } => format!("file {shown}"),
            Rendered::Time { after } => format!("time {}", after.to_rfc3339()),
            Rendered::ExternalTask {
                dag_id, task_id, ..
            } => match task_id {
                Some(task_id) => format!("external task {dag_id}.{task_id}"),
                None => format!("external DAG run of {dag_id}"),
            },
            Rendered::Http(http) => format!("http {} {}", http.request.method, http.request.url),
            Rendered::Sql { connection, .. } => format!("sql on {}", connection.conn_id),
            Rendered::Command => "command".to_string(),
        }
    }
}

/// Why a probe could not be rendered for a try; the text is what its log says.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template of the probe failed; `what` names the field (`http.url`, `file`, …).
    #[error("template error in {what}: {source}")]
    Template {
        what: String,
        #[source]
        source: template::TemplateError,
    },
    /// A time field did not render to an instant.
    #[error("{what} '{value}' is not an RFC 3339 time or a date")]
    NotAnInstant { what: &'static str, value: String },
    /// The probe's connection could not be had.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The rendered HTTP request is malformed.
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// Why a connection could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The store could not be asked.
    #[error("could not read connection '{conn_id}': {source}")]
    Read {
        conn_id: String,
        #[source]
        source: store::StoreError,
    },
    /// Neither the environment nor the store has it; the message says how to define it.
    #[error("connection '{0}' is not defined: {hint}", hint = define_hint(.0))]
    NotDefined(String),
    /// The stored connection could not be decrypted.
    #[error("connection '{conn_id}': {source}")]
    Open {
        conn_id: String,
        #[source]
        source: store::secrets::SecretError,
    },
}

/// How a user defines connection `conn_id`: through the server, or for one process (such as
/// `dagctl dags test`) in the environment when the id can be a variable name.
fn define_hint(conn_id: &str) -> String {
    let command = format!("add it with `dagctl connections add {conn_id} --conn-uri URI`");
    if conn_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        format!(
            "{command}, or set UPDRAFT_CONN_{}=URI in the environment",
            conn_id.to_ascii_uppercase()
        )
    } else {
        command
    }
}

/// Whether rendering `probe` needs variables and connections opened (see
/// [`Probe::needs_secrets`]).
pub fn needs_secrets(probe: &Probe) -> bool {
    probe.needs_secrets()
}

/// Render a probe's templates; `connection` looks up the probe's `conn_id` (HTTP and SQL).
/// `dag_folder` anchors relative file paths (as a task's `cwd`).
pub async fn render(
    probe: &Probe,
    ctx: &TemplateContext,
    dag_folder: Option<&Path>,
    lookup: &Connections,
) -> Result<Rendered, RenderError> {
    let text = |what: &str, value: &str| {
        if value.contains("{{") || value.contains("{%") {
            template::render(value, ctx).map_err(|source| RenderError::Template {
                what: what.to_string(),
                source,
            })
        } else {
            Ok(value.to_string())
        }
    };
    Ok(match probe {
        Probe::File { path } => {
            let shown = text("file", path)?;
            let path = PathBuf::from(&shown);
            let path = match dag_folder {
                Some(folder) if path.is_relative() => folder.join(path),
                _ => path,
            };
            Rendered::File { shown, path }
        }
        Probe::Time { after } => {
            let rendered = text("time.after", after)?;
            Rendered::Time {
                after: parse_instant(&rendered).ok_or_else(|| RenderError::NotAnInstant {
                    what: "time.after",
                    value: rendered.clone(),
                })?,
            }
        }
        Probe::ExternalTask(ExternalTaskProbe {
            dag_id,
            task_id,
            logical_date,
        }) => {
            let logical_date = match logical_date {
                None => ctx.logical_date,
                Some(t) => {
                    let rendered = text("external_task.logical_date", t)?;
                    Some(
                        parse_instant(&rendered).ok_or_else(|| RenderError::NotAnInstant {
                            what: "external_task.logical_date",
                            value: rendered.clone(),
                        })?,
                    )
                }
            };
            Rendered::ExternalTask {
                dag_id: text("external_task.dag_id", dag_id)?,
                task_id: task_id
                    .as_deref()
                    .map(|t| text("external_task.task_id", t))
                    .transpose()?,
                logical_date,
            }
        }
        Probe::Http(http) => {
            let connection = match &http.conn_id {
                Some(conn_id) => Some(lookup.get(&text("http.conn_id", conn_id)?).await?),
                None => None,
            };
            Rendered::Http(Box::new(render_http(
                http,
                ctx,
                &text,
                connection.as_ref(),
            )?))
        }
        Probe::Sql { conn_id, sql } => Rendered::Sql {
            connection: Box::new(lookup.get(&text("sql.conn_id", conn_id)?).await?),
            sql: text("sql.sql", sql)?,
        },
        Probe::Command { .. } => Rendered::Command,
    })
}

fn render_http(
    http: &HttpProbe,
    ctx: &TemplateContext,
    text: &dyn Fn(&str, &str) -> Result<String, RenderError>,
    connection: Option<&Connection>,
) -> Result<RenderedHttp, RenderError> {
    let mut headers = BTreeMap::new();
    for (name, value) in &http.headers {
        headers.insert(name.clone(), text(&format!("http.headers.{name}"), value)?);
    }
    let parts = RequestParts {
        method: http.method.clone(),
        url: text("http.url", &http.url)?,
        headers,
        body: RequestBody::None,
        expect_status: if http.expect_status.is_empty() {
            ExpectStatus::AnySuccess
        } else {
            ExpectStatus::Codes(http.expect_status.clone())
        },
    };
    let request = HttpRequest::new(parts, connection, HTTP_TIMEOUT)?;
    Ok(RenderedHttp {
        request,
        response_check: http.response_check.clone(),
        context: Box::new(ctx.clone()),
    })
}

/// Looks connections up by id: the environment's first (`UPDRAFT_CONN_<ID>`, read by the
/// caller), then the store's, opened with the vault.
#[derive(Clone)]
pub struct Connections {
    store: Arc<dyn Admin>,
    vault: Arc<Vault>,
    env: Vec<Connection>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections").finish_non_exhaustive()
    }
}

impl Connections {
    pub fn new(store: Arc<dyn Admin>, vault: Arc<Vault>, env: Vec<Connection>) -> Connections {
        Connections { store, vault, env }
    }

    /// The connection `conn_id`, from the environment first.
    pub async fn get(&self, conn_id: &str) -> Result<Connection, ConnectionError> {
        find_connection(self.store.as_ref(), &self.vault, &self.env, conn_id).await
    }
}

/// The connection `conn_id` as a task sees it: from the environment (`env`) first, else the
/// store's, opened with the vault. The one lookup probes and worker tasks share.
pub async fn find_connection(
    store: &dyn Admin,
    vault: &Vault,
    env: &[Connection],
    conn_id: &str,
) -> Result<Connection, ConnectionError> {
    if let Some(found) = env.iter().find(|c| c.conn_id == conn_id) {
        return Ok(found.clone());
    }
    let record = store
        .get_connection(conn_id)
        .await
        .map_err(|source| ConnectionError::Read {
            conn_id: conn_id.to_string(),
            source,
        })?
        .ok_or_else(|| ConnectionError::NotDefined(conn_id.to_string()))?;
    vault
        .open_connection(&record)
        .map_err(|source| ConnectionError::Open {
            conn_id: conn_id.to_string(),
            source,
        })
}

/// An RFC 3339 time, `YYYY-MM-DD HH:MM:SS` (UTC), or a date (its midnight UTC).
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return Some(t.and_utc());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// What probes need besides the rendered probe: the store (external tasks).
#[derive(Clone)]
pub struct Probes {
    store: Arc<dyn RunQueue>,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes").finish_non_exhaustive()
    }
}

/// How long one HTTP poke may take before it counts as "not yet".
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one SQL poke may take before it counts as "not yet".
const SQL_TIMEOUT: Duration = Duration::from_secs(60);

impl Probes {
    pub fn new(store: Arc<dyn RunQueue>) -> Probes {
        Probes { store }
    }

    /// Poke once at `now`.
    pub async fn poke(&self, probe: &Rendered, now: DateTime<Utc>) -> PokeResult {
        match probe {
            Rendered::File { shown, path } => poke_file(shown, path).await,
            Rendered::Time { after } => {
                if now >= *after {
                    PokeResult::Done(format!("it is past {}", after.to_rfc3339()))
                } else {
                    PokeResult::NotYet(format!("{}s to go", (*after - now).num_seconds().max(0)))
                }
            }
            Rendered::ExternalTask {
                dag_id,
                task_id,
                logical_date,
            } => {
                self.poke_external(dag_id, task_id.as_deref(), *logical_date)
                    .await
            }
            Rendered::Http(http) => self.poke_http(http).await,
            Rendered::Sql { connection, sql } => poke_sql(connection, sql).await,
            Rendered::Command => {
                PokeResult::Fail("a command sensor pokes on a worker, not here".into())
            }
        }
    }

    async fn poke_external(
        &self,
        dag_id: &str,
        task_id: Option<&str>,
        logical_date: Option<DateTime<Utc>>,
    ) -> PokeResult {
        let Some(logical_date) = logical_date else {
            return PokeResult::Fail("no logical date to look for the external run at".into());
        };
        let runs = match self
            .store
            .list_runs(&RunFilter {
                dag_id: Some(dag_id.to_string()),
                ..RunFilter::default()
            })
            .await
        {
            Ok(runs) => runs,
            Err(e) => return PokeResult::NotYet(format!("cannot read runs of {dag_id}: {e}")),
        };
        // Templates render dates to the second; a date given so matches the run in that
        // second.
        let whole_seconds = logical_date.timestamp_subsec_nanos() == 0;
        let Some(run) = runs.into_iter().find(|r| {
            r.logical_date.is_some_and(|d| {
                d == logical_date || (whole_seconds && d.timestamp() == logical_date.timestamp())
            })
        }) else {
            return PokeResult::NotYet(format!(
                "no run of {dag_id} at {} yet",
                logical_date.to_rfc3339()
            ));
        };
        let Some(task_id) = task_id else {
            return match run.state {
                RunState::Success => PokeResult::Done(format!("run {} succeeded", run.run_id)),
                RunState::Failed => PokeResult::Fail(format!("run {} failed", run.run_id)),
                state => PokeResult::NotYet(format!("run {} is {state}", run.run_id)),
            };
        };
        let tis = match self.store.task_instances(run.id).await {
            Ok(tis) => tis,
            Err(e) => return PokeResult::NotYet(format!("cannot read run {}: {e}", run.run_id)),
        };
        let states: Vec<TaskState> = tis
            .iter()
            .filter(|ti| ti.task_id == task_id)
            .map(|ti| ti.state)
            .collect();
        if states.is_empty() {
            return PokeResult::Fail(format!(
                "run {} of {dag_id} has no task '{task_id}'",
                run.run_id
            ));
        }
        if states.iter().all(|s| *s == TaskState::Success) {
            PokeResult::Done(format!("{dag_id}.{task_id} succeeded in {}", run.run_id))
        } else if let Some(bad) = states
            .iter()
            .find(|s| matches!(s, TaskState::Failed | TaskState::UpstreamFailed))
        {
            PokeResult::Fail(format!("{dag_id}.{task_id} is {bad} in {}", run.run_id))
        } else {
            let shown: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
            PokeResult::NotYet(format!(
                "{dag_id}.{task_id} is {} in {}",
                shown.join(", "),
                run.run_id
            ))
        }
    }

    async fn poke_http(&self, http: &RenderedHttp) -> PokeResult {
        let response = match http.request.send().await {
            Ok(response) => response,
            Err(HttpError::UnexpectedStatus { status, .. }) => {
                return PokeResult::NotYet(format!("status {status}"));
            }
            Err(HttpError::BadSpec(message)) => return PokeResult::Fail(message),
            Err(e) => return PokeResult::NotYet(e.to_string()),
        };
        let status = response.status;
        let Some(check) = &http.response_check else {
            return PokeResult::Done(format!("status {status}"));
        };
        let text = match &response.body {
            Value::String(text) if !response.is_json => text.clone(),
            other => other.to_string(),
        };
        let json = if response.is_json {
            response.body.clone()
        } else {
            Value::Null
        };
        let mut ctx = (*http.context).clone();
        ctx.extra.insert(
            "response".into(),
            json!({"status": status, "status_code": status, "text": text, "json": json}),
        );
        match template::eval_expr(check, &ctx) {
            Ok(value) if dag::sensor::truthy(&value) => {
                PokeResult::Done(format!("status {status}, response_check holds"))
            }
            Ok(_) => PokeResult::NotYet(format!("status {status}, response_check is false")),
            Err(e) => PokeResult::Fail(format!("cannot evaluate response_check '{check}': {e}")),
        }
    }
}

/// Run the query; done when the first cell of the first row is truthy. A database that
/// cannot be reached is "not yet"; a statement the database refuses fails the sensor.
async fn poke_sql(connection: &Connection, sql: &str) -> PokeResult {
    match hooks::sql::run(connection, sql, &Parameters::None, SQL_TIMEOUT).await {
        Ok(output) => {
            let first = output
                .rows
                .first()
                .and_then(|row| row.as_object())
                .and_then(|row| row.values().next().cloned());
            match first {
                Some(value) if dag::sensor::truthy(&value) => {
                    PokeResult::Done(format!("first cell is {value}"))
                }
                Some(value) => PokeResult::NotYet(format!("first cell is {value}")),
                None => PokeResult::NotYet("no rows".into()),
            }
        }
        Err(e @ (SqlError::Connect { .. } | SqlError::Timeout { .. })) => {
            PokeResult::NotYet(e.to_string())
        }
        Err(e) => PokeResult::Fail(e.to_string()),
    }
}

fn has_glob(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

async fn poke_file(shown: &str, path: &Path) -> PokeResult {
    let text = path.to_string_lossy();
    if !has_glob(&text) {
        // One stat: cheaper inline than a trip to the blocking pool, even for thousands.
        return match std::fs::exists(path) {
            Ok(true) => PokeResult::Done(format!("{shown} exists")),
            Ok(false) => PokeResult::NotYet("not there yet".into()),
            Err(e) => PokeResult::NotYet(format!("cannot look: {e}")),
        };
    }
    let path = path.to_path_buf();
    let shown = shown.to_string();
    tokio::task::spawn_blocking(move || match glob_first(&path) {
        Ok(Some(found)) => PokeResult::Done(format!("{} matches {shown}", found.display())),
        Ok(None) => PokeResult::NotYet("nothing matches yet".into()),
        Err(e) => PokeResult::Fail(e),
    })
    .await
    .unwrap_or_else(|e| PokeResult::NotYet(format!("the file probe stopped: {e}")))
}

/// The first path matching a glob pattern: the folders before the first component with a
/// pattern are walked, as deep as the pattern has components (any depth with `**`).
fn glob_first(pattern: &Path) -> Result<Option<PathBuf>, String> {
    let text = pattern.to_string_lossy().to_string();
    let matcher = globset::GlobBuilder::new(&text)
        .literal_separator(true)
        .build()
        .map_err(|e| format!("bad file pattern '{text}': {e}"))?
        .compile_matcher();
    let mut base = PathBuf::new();
    let mut rest = 0usize;
    let mut deep = false;
    for component in pattern.components() {
        let part = component.as_os_str().to_string_lossy();
        if rest == 0 && !has_glob(&part) {
            base.push(component);
        } else {
            rest += 1;
            deep |= part == "**";
        }
    }
    let mut stack = vec![(base, 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if matcher.is_match(&path) {
                return Ok(Some(path));
            }
            if (deep || depth + 1 < rest) && entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((path, depth + 1));
            }
        }
    }
    Ok(None)
}

/// A jitter in [0, 1) that is the same for the same instance and poke, for backoff.
pub fn jitter(ti: i64, pokes: u32) -> f64 {
    dag::retry::jitter((ti as u64) ^ (u64::from(pokes) << 40) ^ 0x5EED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants() {
        let t = |s: &str| parse_instant(s).map(|t| t.to_rfc3339());
        assert_eq!(
            t("2024-01-02T03:04:05+01:00").as_deref(),
            Some("2024-01-02T02:04:05+00:00")
        );
        assert_eq!(
            t("2024-01-02").as_deref(),
            Some("2024-01-02T00:00:00+00:00")
        );
        assert_eq!(
            t("2024-01-02 10:00:00").as_deref(),
            Some("2024-01-02T10:00:00+00:00")
        );
        assert_eq!(t("soon"), None);
    }

    #[test]
    fn globs_find_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pattern = dir.path().join("in/*.csv");
        assert_eq!(glob_first(&pattern), Ok(None));
        std::fs::create_dir_all(dir.path().join("in")).expect("mkdir");
        std::fs::write(dir.path().join("in/a.txt"), "x").expect("write");
        assert_eq!(glob_first(&pattern), Ok(None));
        std::fs::write(dir.path().join("in/b.csv"), "x").expect("write");
        assert_eq!(glob_first(&pattern), Ok(Some(dir.path().join("in/b.csv"))));
        let deep = dir.path().join("**/b.csv");
        assert_eq!(glob_first(&deep), Ok(Some(dir.path().join("in/b.csv"))));
    }
}
