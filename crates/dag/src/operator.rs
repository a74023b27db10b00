//! The specs of the task kinds that talk to the outside world: `http`, `sql`, `email` and
//! `trigger_dag`.
//!
//! Every field is a template: it is rendered with the task's context just before the try uses
//! it, so a field holds whatever the DAG file wrote there (a string, a number, a list, a
//! mapping) and its type is checked on the rendered value, by the client that uses it
//! (`hooks`) or by the worker. A field the file did not set is `None`.
//!
//! **Stored shape:** a `Dag` is stored as JSON, and these specs serialize to the mapping the
//! file wrote (`{"url": …, "method": …}`, unset keys left out), the shape stored before the
//! specs were typed, so stored definitions load either way.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `http: {method, url, headers, json | body, conn_id, expect_status}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpSpec {
    /// A method name (`GET` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Value>,
    /// Absolute, or relative to the connection's base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Value>,
    /// A mapping of header name to value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Value>,
    /// A JSON body; not with `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    /// A text body; not with `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// The connection giving the base URL, auth and default headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_id: Option<Value>,
    /// A status or list of statuses that count as success (any 2xx when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<Value>,
}

/// `sql: {conn_id, sql | file, parameters}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SqlSpec {
    /// The Postgres or SQLite connection the statements run on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_id: Option<Value>,
    /// The statements, separated by `;`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<Value>,
    /// A file holding the statements, relative to the DAG file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<Value>,
    /// A list (positional placeholders) or a mapping (named ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

/// `email: {to, cc, subject, html | text}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmailSpec {
    /// Addresses: a list, or a string separated by commas or semicolons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cc: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Value>,
    /// An HTML body; wins over `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Value>,
}

/// `trigger_dag: {dag_id, conf, wait_for_completion, poke_interval, allowed_states,
/// failed_states}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TriggerDagSpec {
    /// The DAG to make a run of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dag_id: Option<Value>,
    /// The new run's conf, rendered as data: a string that is one `{{ expr }}` yields its
    /// value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf: Option<Value>,
    /// Wait for the new run to end (`true`/`false`, or their text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_completion: Option<Value>,
    /// How often a waiting task looks at the run: seconds or a duration string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poke_interval: Option<Value>,
    /// Run states that count as success: a list or a comma-separated string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_states: Option<Value>,
    /// Run states that count as failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_states: Option<Value>,
}

/// A field's text when it is a non-blank string, trimmed.
pub fn text_field(field: Option<&Value>) -> Option<String> {
    match field {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}
