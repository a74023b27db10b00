//! Notifications: action lists (`on_failure`, `on_success`, `on_retry`, `on_execute` and the
//! DAG's `on_success`/`on_failure`) and the default alert mail of tasks with `email`.
//!
//! Actions are `{email: {to, cc, subject, html | text}}`, `{webhook: {url, method, headers,
//! json}}` and `{bash: "cmd"}`; every string in them is rendered with the task's template
//! context, which the caller extends with `exception` (the failure message) and `log_url`.
//! Each action runs under a timeout and reports how it went; a failed action is logged
//! (`tracing::warn`) and returned as a report, never raised: a notification must not change
//! the state of what it reports on.

use std::path::Path;
use std::time::Duration;

use dag::template::{self, TemplateContext};
use serde_json::Value;

use crate::http::{HttpError, HttpRequest};
use crate::mail::{self, Mail, MailBody, MailError, SmtpSettings};

/// Why one notification action failed; the text is what its report says.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// A template in the action did not render.
    #[error("template error: {0}")]
    Template(#[source] template::TemplateError),
    /// The mail was not sent.
    #[error(transparent)]
    Mail(#[from] MailError),
    /// The webhook's request is malformed or failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The action (or its command) ran past the notification timeout, in seconds.
    #[error("did not finish within {0}s")]
    TimedOut(f64),
    /// `bash` could not be started.
    #[error("could not start bash: {0}")]
    BashStart(#[source] std::io::Error),
    /// The command exited unsuccessfully: its status and last stderr line.
    #[error("{status}{}", .last_stderr.as_ref().map(|l| format!(": {l}")).unwrap_or_default())]
    BashFailed {
        status: std::process::ExitStatus,
        last_stderr: Option<String>,
    },
    /// Not one of `email`, `webhook`, `bash`.
    #[error("unknown action {0}")]
    Unknown(Value),
}

/// A spec from an action's rendered JSON. Every field of a spec takes any JSON, so only a
/// spec that is not a mapping fails, and it reads as one with nothing set.
fn spec_of<S: serde::de::DeserializeOwned + Default>(value: &Value) -> S {
    serde_json::from_value(value.clone()).unwrap_or_default()
}

/// Settings for sending notifications.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub smtp: SmtpSettings,
    /// Bounds each action (a webhook, a mail, a command).
    pub timeout: Duration,
    /// `api.base_url`, for log links.
    pub base_url: String,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            smtp: SmtpSettings::default(),
            timeout: Duration::from_secs(60),
            base_url: "http://127.0.0.1:8080".to_string(),
        }
    }
}

impl NotifySettings {
    /// The link to one try's log in the web UI.
    pub fn log_url(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: i32,
        try_number: u32,
    ) -> String {
        let base = self.base_url.trim_end_matches('/');
        let mut url = match url::Url::parse(&format!("{base}/")) {
            Ok(url) => url,
            // A malformed base still gives a readable link rather than none.
            Err(_) => {
                return format!(
                    "{base}/dags/{dag_id}/runs/{run_id}/tasks/{task_id}?try_number={try_number}"
                );
            }
        };
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            segments.extend(["dags", dag_id, "runs", run_id, "tasks", task_id]);
        }
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("try_number", &try_number.to_string());
            if map_index >= 0 {
                query.append_pair("map_index", &map_index.to_string());
            }
        }
        url.to_string()
    }
}

/// How one action went.
#[derive(Debug)]
pub struct ActionReport {
    /// The list it came from (`on_failure`, `email_on_failure`, …).
    pub list: String,
    /// What it did, e.g. `email to a@example.com`.
    pub action: String,
    /// `Err` holds why it failed.
    pub result: Result<(), ActionError>,
}

impl std::fmt::Display for ActionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.result {
            Ok(()) => write!(f, "{}: {} done", self.list, self.action),
            Err(e) => write!(
                f,
                "{}: {} failed (the state stays as it is): {e}",
                self.list, self.action
            ),
        }
    }
}

/// Run every action of `actions` in order, each bounded by the settings' timeout. `list`
/// names the list for reports; `cwd` is where `bash` actions run.
pub async fn run_actions(
    settings: &NotifySettings,
    list: &str,
    actions: &[Value],
    ctx: &TemplateContext,
    cwd: Option<&Path>,
) -> Vec<ActionReport> {
    let mut reports = Vec::with_capacity(actions.len());
    for action in actions {
        let (label, result) =
            match tokio::time::timeout(settings.timeout, run_action(settings, action, ctx, cwd))
                .await
            {
                Ok(done) => done,
                Err(_) => (
                    describe(action),
                    Err(ActionError::TimedOut(settings.timeout.as_secs_f64())),
                ),
            };
        let report = ActionReport {
            list: list.to_string(),
            action: label,
            result,
        };
        if report.result.is_err() {
            tracing::warn!(dag_id = %ctx.dag_id, task_id = %ctx.task_id, run_id = %ctx.run_id, "{report}");
        }
        reports.push(report);
    }
    reports
}

fn describe(action: &Value) -> String {
    if let Some(spec) = action.get("email") {
        format!("email to {}", mail::addresses(spec.get("to")).join(", "))
    } else if let Some(spec) = action.get("webhook") {
        format!(
            "webhook {}",
            spec.get("url").and_then(Value::as_str).unwrap_or("?")
        )
    } else {
        "bash command".to_string()
    }
}

async fn run_action(
    settings: &NotifySettings,
    action: &Value,
    ctx: &TemplateContext,
    cwd: Option<&Path>,
) -> (String, Result<(), ActionError>) {
    let rendered = match render_strings(action, ctx) {
        Ok(rendered) => rendered,
        Err(e) => return (describe(action), Err(ActionError::Template(e))),
    };
    let label = describe(&rendered);
    let result = if let Some(spec) = rendered.get("email") {
        let subject = format!("Updraft notification: {}.{}", ctx.dag_id, ctx.task_id);
        let mail = Mail::from_spec(&spec_of(spec), &subject);
        mail::send(&settings.smtp, &mail)
            .await
            .map_err(ActionError::from)
    } else if let Some(spec) = rendered.get("webhook") {
        webhook(spec, settings.timeout).await
    } else if let Some(command) = rendered.get("bash").and_then(Value::as_str) {
        bash(command, cwd, settings.timeout).await
    } else {
        Err(ActionError::Unknown(action.clone()))
    };
    (label, result)
}

async fn webhook(spec: &Value, timeout: Duration) -> Result<(), ActionError> {
    let mut spec = spec.clone();
    // A webhook posts by default: it is telling someone something.
    if let Value::Object(map) = &mut spec
        && map.get("method").is_none_or(Value::is_null)
    {
        map.insert("method".into(), Value::String("POST".into()));
    }
    let request = HttpRequest::from_spec(&spec_of(&spec), None, timeout)?;
    request.send().await?;
    Ok(())
}

async fn bash(command: &str, cwd: Option<&Path>, timeout: Duration) -> Result<(), ActionError> {
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    // Like task processes, notification commands get no database credentials.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("UPDRAFT__") || name.contains("DATABASE_URL") {
            cmd.env_remove(name.as_ref());
        }
    }
    if let Some(cwd) = cwd.filter(|c| c.is_dir()) {
        cmd.current_dir(cwd);
    }
    let output = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| ActionError::TimedOut(timeout.as_secs_f64()))?
        .map_err(ActionError::BashStart)?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        Err(ActionError::BashFailed {
            status: output.status,
            last_stderr: last.map(str::to_string),
        })
    }
}

/// Render every string inside `value` as text.
pub fn render_strings(
    value: &Value,
    ctx: &TemplateContext,
) -> Result<Value, template::TemplateError> {
    Ok(match value {
        Value::String(text) if text.contains("{{") || text.contains("{%") => {
            Value::String(template::render(text, ctx)?)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_strings(v, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_strings(v, ctx)?)))
                .collect::<Result<_, template::TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

/// Why the default alert mail is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    Failure,
    Retry,
}

/// What the default alert mail says about one try.
#[derive(Debug, Clone)]
pub struct Alert {
    pub kind: AlertKind,
    pub to: Vec<String>,
    pub dag_id: String,
    pub task_id: String,
    pub map_index: i32,
    pub run_id: String,
    /// RFC 3339, if the run has one.
    pub logical_date: Option<String>,
    pub try_number: u32,
    /// Tries allowed in all (retries + 1).
    pub tries: u32,
    pub error: String,
    pub log_url: String,
    pub hostname: Option<String>,
}

impl Alert {
    /// The mail: subject `Updraft alert: dag.task failed (run R, try N)`, and a body with the
    /// DAG, task, run, logical date, try, error and log link.
    pub fn mail(&self) -> Mail {
        let task = if self.map_index >= 0 {
            format!("{}.{}[{}]", self.dag_id, self.task_id, self.map_index)
        } else {
            format!("{}.{}", self.dag_id, self.task_id)
        };
        let outcome = match self.kind {
            AlertKind::Failure => "failed",
            AlertKind::Retry => "is up for retry",
        };
        let subject = format!(
            "Updraft alert: {task} {outcome} (run {}, try {})",
            self.run_id, self.try_number
        );
        let mut body = format!(
            "Task {task} {outcome}.\n\n\
             DAG:          {}\n\
             Task:         {}\n\
             Run:          {}\n\
             Logical date: {}\n\
             Try:          {} of {}\n",
            self.dag_id,
            self.task_id,
            self.run_id,
            self.logical_date.as_deref().unwrap_or("-"),
            self.try_number,
            self.tries,
        );
        if let Some(host) = &self.hostname {
            body.push_str(&format!("Host:         {host}\n"));
        }
        body.push_str(&format!(
            "\nError:\n{}\n\nLog: {}\n",
            self.error, self.log_url
        ));
        Mail {
            to: self.to.clone(),
            cc: Vec::new(),
            subject,
            body: MailBody::Text(body),
        }
    }
}

/// Send the default alert mail, bounded by the settings' timeout.
pub async fn send_alert(settings: &NotifySettings, alert: &Alert) -> ActionReport {
    let list = match alert.kind {
        AlertKind::Failure => "email_on_failure",
        AlertKind::Retry => "email_on_retry",
    };
    let mail = alert.mail();
    let result =
        match tokio::time::timeout(settings.timeout, mail::send(&settings.smtp, &mail)).await {
            Ok(sent) => sent.map_err(ActionError::from),
            Err(_) => Err(ActionError::TimedOut(settings.timeout.as_secs_f64())),
        };
    let report = ActionReport {
        list: list.to_string(),
        action: format!("alert mail to {}", alert.to.join(", ")),
        result,
    };
    if report.result.is_err() {
        tracing::warn!(dag_id = %alert.dag_id, task_id = %alert.task_id, run_id = %alert.run_id, "{report}");
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log_urls_escape_their_parts() {
        let settings = NotifySettings {
            base_url: "http://host:8080/updraft/".into(),
            ..NotifySettings::default()
        };
        assert_eq!(
            settings.log_url("d", "manual__2024-01-01T00:00:00+00:00", "g.t", -1, 2),
            "http://host:8080/updraft/dags/d/runs/manual__2024-01-01T00:00:00+00:00/tasks/g.t?try_number=2"
        );
        assert!(
            settings
                .log_url("d", "r", "t", 3, 1)
                .ends_with("try_number=1&map_index=3")
        );
    }

    #[test]
    fn alert_mails_carry_what_went_wrong() {
        let mail = Alert {
            kind: AlertKind::Failure,
            to: vec!["ops@example.com".into()],
            dag_id: "etl".into(),
            task_id: "load".into(),
            map_index: -1,
            run_id: "manual__x".into(),
            logical_date: Some("2024-01-01T00:00:00+00:00".into()),
            try_number: 2,
            tries: 2,
            error: "row count 0".into(),
            log_url: "http://x/log".into(),
            hostname: None,
        }
        .mail();
        assert_eq!(
            mail.subject,
            "Updraft alert: etl.load failed (run manual__x, try 2)"
        );
        let MailBody::Text(body) = mail.body else {
            panic!("text body")
        };
        for needle in [
            "etl",
            "load",
            "manual__x",
            "2024-01-01",
            "row count 0",
            "http://x/log",
        ] {
            assert!(body.contains(needle), "{needle} missing from {body}");
        }
    }

    #[tokio::test]
    async fn failing_actions_are_reported_not_raised() {
        let settings = NotifySettings {
            timeout: Duration::from_secs(5),
            ..NotifySettings::default()
        };
        let ctx = TemplateContext {
            dag_id: "d".into(),
            task_id: "t".into(),
            ..TemplateContext::default()
        };
        let reports = run_actions(
            &settings,
            "on_failure",
            &[
                json!({"bash": "echo {{ dag.dag_id }} >&2; exit 3"}),
                json!({"bash": "true"}),
                json!({"bash": "echo {{ nope }}"}),
            ],
            &ctx,
            None,
        )
        .await;
        assert_eq!(reports.len(), 3);
        let first = reports[0].result.as_ref().expect_err("fails").to_string();
        assert!(
            first.contains("exit status: 3") && first.ends_with(": d"),
            "{first}"
        );
        assert!(reports[1].result.is_ok(), "{}", reports[1]);
        let third = reports[2]
            .result
            .as_ref()
            .expect_err("undefined")
            .to_string();
        assert!(
            third.contains("template error") && third.contains("nope"),
            "{third}"
        );
    }
}
