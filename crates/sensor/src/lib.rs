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
use serde_json::{Value, json};
use store::{RunFilter, Store};

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
        conn_id: String,
        sql: String,
    },
    /// Runs on a worker; the command is rendered there with the task's environment.
    Command,
}

/// An HTTP probe ready to send.
#[derive(Debug, Clone)]
pub struct RenderedHttp {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub expect_status: Vec<u16>,
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
            Rendered::Http(http) => format!("http {} {}", http.method, http.url),
            Rendered::Sql { conn_id, .. } => format!("sql on {conn_id}"),
            Rendered::Command => "command".to_string(),
        }
    }
}

/// Render a probe's templates. `dag_folder` anchors relative file paths (as a task's `cwd`).
pub fn render(
    probe: &Probe,
    ctx: &TemplateContext,
    dag_folder: Option<&Path>,
) -> Result<Rendered, String> {
    let text = |what: &str, value: &str| {
        if value.contains("{{") || value.contains("{%") {
            template::render(value, ctx).map_err(|e| format!("template error in {what}: {e}"))
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
                after: parse_instant(&rendered).ok_or_else(|| {
                    format!("time.after '{rendered}' is not an RFC 3339 time or a date")
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
                    Some(parse_instant(&rendered).ok_or_else(|| {
                        format!(
                            "external_task.logical_date '{rendered}' is not an RFC 3339 time or a date"
                        )
                    })?)
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
        Probe::Http(http) => Rendered::Http(Box::new(render_http(http, ctx, &text)?)),
        Probe::Sql { conn_id, sql } => Rendered::Sql {
            conn_id: text("sql.conn_id", conn_id)?,
            sql: text("sql.sql", sql)?,
        },
        Probe::Command { .. } => Rendered::Command,
    })
}

fn render_http(
    http: &HttpProbe,
    ctx: &TemplateContext,
    text: &dyn Fn(&str, &str) -> Result<String, String>,
) -> Result<RenderedHttp, String> {
    let mut url = text("http.url", &http.url)?;
    if let Some(conn_id) = &http.conn_id {
        let conn = ctx
            .connections
            .get(conn_id)
            .ok_or_else(|| format!("http connection '{conn_id}' is not defined"))?;
        url = join_url(&base_url(conn), &url);
    }
    let mut headers = Vec::new();
    for (name, value) in &http.headers {
        headers.push((name.clone(), text(&format!("http.headers.{name}"), value)?));
    }
    Ok(RenderedHttp {
        method: http.method.clone(),
        url,
        headers,
        expect_status: http.expect_status.clone(),
        response_check: http.response_check.clone(),
        context: Box::new(ctx.clone()),
    })
}

/// The base URL of an HTTP connection's template value: its host (with its scheme, or the
/// connection's `schema` as the scheme, else http) and port.
fn base_url(conn: &Value) -> String {
    let field = |name: &str| conn.get(name).and_then(Value::as_str).unwrap_or_default();
    let host = field("host");
    let mut base = if host.contains("://") {
        host.to_string()
    } else {
        let scheme = match field("schema") {
            "" => "http",
            scheme => scheme,
        };
        format!("{scheme}://{host}")
    };
    if let Some(port) = conn.get("port").and_then(Value::as_i64) {
        base = format!("{}:{port}", base.trim_end_matches('/'));
    }
    base
}

fn join_url(base: &str, url: &str) -> String {
    if url.contains("://") {
        url.to_string()
    } else if url.is_empty() {
        base.to_string()
    } else {
        format!(
            "{}/{}",
            base.trim_end_matches('/'),
            url.trim_start_matches('/')
        )
    }
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

/// What probes need besides the rendered probe: the store (external tasks) and a shared
/// HTTP client.
#[derive(Clone)]
pub struct Probes {
    store: Arc<dyn Store>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes").finish_non_exhaustive()
    }
}

/// How long one HTTP poke may take before it counts as "not yet".
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

impl Probes {
    pub fn new(store: Arc<dyn Store>) -> Probes {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .unwrap_or_default();
        Probes { store, http }
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
            Rendered::Sql { conn_id, .. } => PokeResult::Fail(format!(
                "sql sensors are not available yet (connection '{conn_id}')"
            )),
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
        let method = match reqwest::Method::from_bytes(http.method.as_bytes()) {
            Ok(method) => method,
            Err(_) => return PokeResult::Fail(format!("bad HTTP method '{}'", http.method)),
        };
        let mut request = self.http.request(method, &http.url);
        for (name, value) in &http.headers {
            request = request.header(name, value);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return PokeResult::NotYet(format!("request failed: {e}")),
        };
        let status = response.status().as_u16();
        let headers: BTreeMap<String, Value> = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    Value::String(v.to_str().unwrap_or_default().to_string()),
                )
            })
            .collect();
        let text = match response.text().await {
            Ok(text) => text,
            Err(e) => return PokeResult::NotYet(format!("status {status}, body unreadable: {e}")),
        };
        if !http.expect_status.contains(&status) {
            return PokeResult::NotYet(format!("status {status}"));
        }
        let Some(check) = &http.response_check else {
            return PokeResult::Done(format!("status {status}"));
        };
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let mut ctx = (*http.context).clone();
        ctx.extra.insert(
            "response".into(),
            json!({"status": status, "status_code": status, "text": text, "json": json, "headers": headers}),
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
    let mut x = (ti as u64) ^ (u64::from(pokes) << 40) ^ 0x5EED;
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
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

    #[test]
    fn urls_from_connections() {
        assert_eq!(
            base_url(&json!({"host": "api.example.com", "schema": "https", "port": 8443})),
            "https://api.example.com:8443"
        );
        assert_eq!(
            base_url(&json!({"host": "http://127.0.0.1", "port": 80})),
            "http://127.0.0.1:80"
        );
        assert_eq!(join_url("http://h:1/", "/health"), "http://h:1/health");
        assert_eq!(join_url("http://h:1", "http://x/y"), "http://x/y");
    }
}
