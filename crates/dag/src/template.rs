//! Template rendering with Jinja semantics (strict undefined) and Updraft's context.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// What a template can see. Built by the worker (or scheduler) for one task instance.
#[derive(Debug, Clone, Default)]
pub struct TemplateContext {
    pub dag_id: String,
    pub task_id: String,
    pub run_id: String,
    /// `scheduled`, `manual`, `backfill`.
    pub run_type: String,
    pub logical_date: Option<DateTime<Utc>>,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub data_interval_end: Option<DateTime<Utc>>,
    pub conf: Value,
    /// Param defaults merged with conf.
    pub params: BTreeMap<String, Value>,
    pub try_number: u32,
    pub map_index: i32,
    /// XComs of the run, for `ti.xcom_pull`.
    pub xcoms: Vec<XcomValue>,
    /// Extra names (bound by `expand`, or `exception`/`log_url` in notifications).
    pub extra: BTreeMap<String, Value>,
}

/// One XCom visible to templates.
#[derive(Debug, Clone, PartialEq)]
pub struct XcomValue {
    pub task_id: String,
    pub map_index: i32,
    pub key: String,
    pub value: Value,
}

/// A template that failed to render; the message names the problem (and undefined name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// Render a template to text.
pub fn render(template: &str, ctx: &TemplateContext) -> Result<String, TemplateError> {
    let _ = (template, ctx);
    todo!()
}

/// Render every string inside a JSON value; a string that is exactly one `{{ expr }}` yields
/// the expression's value itself (a list stays a list).
pub fn render_value(value: &Value, ctx: &TemplateContext) -> Result<Value, TemplateError> {
    let _ = (value, ctx);
    todo!()
}

/// Evaluate an expression (no braces), e.g. a `switch` condition.
pub fn eval_expr(expr: &str, ctx: &TemplateContext) -> Result<Value, TemplateError> {
    let _ = (expr, ctx);
    todo!()
}
