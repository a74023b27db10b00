//! Template rendering with Jinja semantics (strict undefined) and Updraft's context.
//!
//! The context mirrors Airflow's (`ds`, `ti.xcom_pull`, `macros.ds_add`, …) so that templates
//! written for Airflow render the same here. Rendering is bounded by fuel, so a runaway
//! template fails instead of hanging the scheduler or a worker.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, SecondsFormat, Timelike, Utc};
use minijinja::value::{Kwargs, Object, ObjectRepr, Serde, from_args};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior, Value as JValue};
use serde_json::Value;

use crate::model::Semantics;

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
    /// Variables by key, for `var.value.KEY` and `var.json.KEY`.
    pub variables: BTreeMap<String, String>,
    /// Connections by id, each an object with `conn_type`, `host`, `port`, `login`,
    /// `password`, `schema` and `extra` (parsed JSON), for `conn.ID`.
    pub connections: BTreeMap<String, Value>,
    /// Whose `xcom_pull` rules apply (`default`, a mapped task's lone value): the DAG's
    /// [`Dag::semantics`](crate::Dag::semantics).
    pub semantics: Semantics,
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

/// Instructions one render may execute: generous for real templates (a loop over a
/// thousand mapped values), small enough that `{% for i in range(10**9) %}` stops quickly.
const FUEL: u64 = 2_000_000;

/// What templates read from their context that costs a query to load: a try or a decision
/// loads the run's XComs, or opens variables and connections, only when its templates read
/// them. The answer errs on the side of loading: any mention counts, even in plain text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reads {
    /// Calls `xcom_pull`.
    pub xcoms: bool,
    /// Names `var.` (`var.value.K`, `var.json.K`).
    pub variables: bool,
    /// Names `conn.` (`conn.ID`).
    pub connections: bool,
}

impl Reads {
    /// Whether variables or connections have to be opened.
    pub fn secrets(self) -> bool {
        self.variables || self.connections
    }
}

impl std::ops::BitOr for Reads {
    type Output = Reads;

    fn bitor(self, other: Reads) -> Reads {
        Reads {
            xcoms: self.xcoms || other.xcoms,
            variables: self.variables || other.variables,
            connections: self.connections || other.connections,
        }
    }
}

impl std::ops::BitOrAssign for Reads {
    fn bitor_assign(&mut self, other: Reads) {
        *self = *self | other;
    }
}

/// What the template (or expression) `text` reads; see [`Reads`].
pub fn reads(text: &str) -> Reads {
    Reads {
        xcoms: text.contains("xcom_pull"),
        variables: text.contains("var."),
        connections: text.contains("conn."),
    }
}

/// What the templates anywhere in a JSON value (keys included) read.
pub fn reads_value(value: &Value) -> Reads {
    reads(&value.to_string())
}

/// Render a template to text.
pub fn render(template: &str, ctx: &TemplateContext) -> Result<String, TemplateError> {
    let env = environment();
    let values = context(ctx);
    let compiled = env
        .template_from_str(template)
        .map_err(|e| describe(&e, template, Source::Template, &values))?;
    compiled
        .render(values.to_value())
        .map_err(|e| describe(&e, template, Source::Template, &values))
}

/// Render every string inside a JSON value; a string that is exactly one `{{ expr }}` yields
/// the expression's value itself (a list stays a list).
pub fn render_value(value: &Value, ctx: &TemplateContext) -> Result<Value, TemplateError> {
    match value {
        Value::String(text) => match single_expression(text) {
            Some(expr) => eval_expr(expr, ctx),
            None => render(text, ctx).map(Value::String),
        },
        Value::Array(items) => items
            .iter()
            .map(|v| render_value(v, ctx))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| Ok((k.clone(), render_value(v, ctx)?)))
            .collect::<Result<_, _>>()
            .map(Value::Object),
        other => Ok(other.clone()),
    }
}

/// Evaluate an expression (no braces), e.g. a `switch` condition.
pub fn eval_expr(expr: &str, ctx: &TemplateContext) -> Result<Value, TemplateError> {
    let env = environment();
    let values = context(ctx);
    let compiled = env
        .compile_expression(expr)
        .map_err(|e| describe(&e, expr, Source::Expression, &values))?;
    let result = compiled
        .eval(values.to_value())
        .map_err(|e| describe(&e, expr, Source::Expression, &values))?;
    if result.is_undefined() {
        if let Some(missing) = missing_variable_or_connection(expr, &values) {
            return Err(TemplateError(format!(
                "{missing} in expression '{}'",
                shorten(expr)
            )));
        }
        return Err(TemplateError(format!(
            "expression '{expr}' is undefined{}",
            undefined_hint(expr, Source::Expression, &values)
        )));
    }
    serde_json::to_value(&result)
        .map_err(|e| TemplateError(format!("expression '{expr}' has no JSON value: {e}")))
}

/// The inner expression of a string that is exactly one `{{ … }}`, if it is one.
fn single_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") || inner.contains("{#")
    {
        return None;
    }
    Some(inner.trim())
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    // Templates render shell commands and JSON, never HTML.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_filter("shell_quote", |s: String| shell_quote(&s));
    env.add_filter("ds_add", ds_add);
    env.add_filter("ds_nodash", |s: String| s.replace('-', ""));
    env
}

/// The names a template sees, as one object so that the lookups stay typed.
struct Names {
    map: BTreeMap<String, JValue>,
}

impl Names {
    fn to_value(&self) -> JValue {
        JValue::from(self.map.clone())
    }
}

fn context(ctx: &TemplateContext) -> Names {
    let mut map: BTreeMap<String, JValue> = BTreeMap::new();
    // `expand` names and notification extras come first so that the standard names win
    // over an argument that happens to share one.
    for (k, v) in &ctx.extra {
        map.insert(k.clone(), JValue::from(Serde(v)));
    }
    let date =
        |d: Option<DateTime<Utc>>| d.map_or(JValue::UNDEFINED, |d| JValue::from_object(Date(d)));
    if let Some(logical) = ctx.logical_date {
        map.insert("ds".into(), logical.format("%Y-%m-%d").to_string().into());
        map.insert(
            "ds_nodash".into(),
            logical.format("%Y%m%d").to_string().into(),
        );
        map.insert(
            "ts".into(),
            logical.to_rfc3339_opts(SecondsFormat::Secs, false).into(),
        );
        map.insert(
            "ts_nodash".into(),
            logical.format("%Y%m%dT%H%M%S").to_string().into(),
        );
        map.insert("logical_date".into(), date(Some(logical)));
    }
    if ctx.data_interval_start.is_some() {
        map.insert("data_interval_start".into(), date(ctx.data_interval_start));
    }
    if ctx.data_interval_end.is_some() {
        map.insert("data_interval_end".into(), date(ctx.data_interval_end));
    }
    let conf = JValue::from(Serde(&ctx.conf));
    map.insert("run_id".into(), ctx.run_id.clone().into());
    let mut dag_run: BTreeMap<&str, JValue> = BTreeMap::new();
    dag_run.insert("conf", conf.clone());
    dag_run.insert("run_id", ctx.run_id.clone().into());
    dag_run.insert("run_type", ctx.run_type.clone().into());
    dag_run.insert("logical_date", date(ctx.logical_date));
    dag_run.insert("dag_id", ctx.dag_id.clone().into());
    map.insert("dag_run".into(), object(dag_run));
    map.insert("conf".into(), conf);
    map.insert("params".into(), JValue::from(Serde(&ctx.params)));
    map.insert(
        "dag".into(),
        object([("dag_id", JValue::from(ctx.dag_id.clone()))]),
    );
    map.insert(
        "task".into(),
        object([("task_id", JValue::from(ctx.task_id.clone()))]),
    );
    map.insert(
        "ti".into(),
        JValue::from_object(TaskInstance {
            dag_id: ctx.dag_id.clone(),
            task_id: ctx.task_id.clone(),
            run_id: ctx.run_id.clone(),
            try_number: ctx.try_number,
            map_index: ctx.map_index,
            xcoms: Arc::new(ctx.xcoms.clone()),
            semantics: ctx.semantics,
        }),
    );
    let json: BTreeMap<&String, Value> = ctx
        .variables
        .iter()
        .filter_map(|(k, v)| serde_json::from_str(v).ok().map(|parsed| (k, parsed)))
        .collect();
    map.insert(
        "var".into(),
        object([
            ("value", JValue::from(Serde(&ctx.variables))),
            ("json", JValue::from(Serde(&json))),
        ]),
    );
    map.insert("conn".into(), JValue::from(Serde(&ctx.connections)));
    map.insert(
        "macros".into(),
        object([
            ("ds_add", JValue::from_function(ds_add)),
            ("ds_format", JValue::from_function(ds_format)),
        ]),
    );
    Names { map }
}

/// Whether a source text is a whole template or a bare expression.
#[derive(Debug, Clone, Copy)]
enum Source {
    Template,
    Expression,
}

/// A template-side map with fixed attribute names.
fn object<'a>(entries: impl IntoIterator<Item = (&'a str, JValue)>) -> JValue {
    JValue::from(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<BTreeMap<String, JValue>>(),
    )
}

/// Turn an engine error into a message that names the template and, for an undefined
/// name, the name.
fn describe(e: &Error, source: &str, kind: Source, names: &Names) -> TemplateError {
    let mut message = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    if e.kind() == ErrorKind::UndefinedError {
        let hint = undefined_hint(source, kind, names);
        if !hint.is_empty() {
            message = hint.trim_start_matches(": ").to_string();
        } else if let Some(missing) = missing_variable_or_connection(source, names) {
            message = missing;
        }
    } else if e.kind() == ErrorKind::OutOfFuel {
        message = "the template ran too long (out of fuel); is there a runaway loop?".to_string();
    }
    let line = e.line().map(|l| format!(" line {l}")).unwrap_or_default();
    let what = match kind {
        Source::Template => "template",
        Source::Expression => "expression",
    };
    TemplateError(format!("{message} in {what}{line} '{}'", shorten(source)))
}

/// "undefined variable 'foo'" for the first top-level name the template uses that the
/// context lacks, or nothing when every top-level name exists (then an attribute was
/// missing and the engine's message says which).
fn undefined_hint(source: &str, kind: Source, names: &Names) -> String {
    let env = environment();
    let used: HashSet<String> = match kind {
        Source::Template => env
            .template_from_str(source)
            .map(|t| t.undeclared_variables(false)),
        Source::Expression => env
            .compile_expression(source)
            .map(|x| x.undeclared_variables(false)),
    }
    .unwrap_or_default();
    let builtins = [
        "range",
        "dict",
        "namespace",
        "debug",
        "loop",
        "true",
        "false",
        "none",
    ];
    let mut missing: Vec<&String> = used
        .iter()
        .filter(|n| !names.map.contains_key(*n) && !builtins.contains(&n.as_str()))
        .collect();
    missing.sort();
    match missing.first() {
        None => String::new(),
        Some(name) => format!(": undefined variable '{name}'"),
    }
}

/// The first `var.value.K`, `var.json.K` or `conn.ID` the source names that does not exist,
/// said plainly: the engine only knows that some attribute was undefined.
fn missing_variable_or_connection(source: &str, names: &Names) -> Option<String> {
    let has = |top: &str, path: &[&str]| {
        let mut value = names.map.get(top)?.clone();
        for key in path {
            value = value.get_attr(key).ok().filter(|v| !v.is_undefined())?;
        }
        Some(())
    };
    let ident = |rest: &str| -> String {
        rest.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect()
    };
    for (prefix, path, what) in [
        ("var.value.", "value", "variable"),
        ("var.json.", "json", "variable"),
    ] {
        for (at, _) in source.match_indices(prefix) {
            let key = ident(&source[at + prefix.len()..]);
            if !key.is_empty() && has("var", &[path, &key]).is_none() {
                return Some(
                    if path == "json" && has("var", &["value", &key]).is_some() {
                        format!("variable '{key}' is not valid JSON (var.json.{key})")
                    } else {
                        format!(
                            "{what} '{key}' is not set (set it with `dagctl variables set {key} VALUE`)"
                        )
                    },
                );
            }
        }
    }
    for (at, _) in source.match_indices("conn.") {
        let id = ident(&source[at + "conn.".len()..]);
        if !id.is_empty() && has("conn", &[&id]).is_none() {
            return Some(format!(
                "connection '{id}' does not exist (add it with `dagctl connections add {id} --conn-uri URI`)"
            ));
        }
    }
    None
}

fn shorten(source: &str) -> String {
    const MAX: usize = 80;
    if source.chars().count() <= MAX {
        source.to_string()
    } else {
        let head: String = source.chars().take(MAX).collect();
        format!("{head}…")
    }
}

/// Quote for POSIX shells as Python's `shlex.quote` does: safe text stays as is, anything
/// else is single-quoted with embedded single quotes spliced in.
pub fn shell_quote(text: &str) -> String {
    if text.is_empty() {
        return "''".to_string();
    }
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c);
    if text.chars().all(safe) {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', r#"'"'"'"#))
}

/// `ds` plus `days` days, as `YYYY-MM-DD`.
fn ds_add(ds: String, days: i64) -> Result<String, Error> {
    let date = NaiveDate::parse_from_str(&ds, "%Y-%m-%d").map_err(|e| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("ds_add: '{ds}' is not a YYYY-MM-DD date: {e}"),
        )
    })?;
    let shifted = date
        .checked_add_signed(chrono::Duration::days(days))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("ds_add: {ds} + {days} days is out of range"),
            )
        })?;
    Ok(shifted.format("%Y-%m-%d").to_string())
}

/// Reformat a date string from one strftime format to another (Python's directives).
fn ds_format(ds: String, input: String, output: String) -> Result<String, Error> {
    let parsed = NaiveDateTime::parse_from_str(&ds, &input)
        .or_else(|_| {
            NaiveDate::parse_from_str(&ds, &input).map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("ds_format: '{ds}' does not match format '{input}': {e}"),
            )
        })?;
    strftime(&parsed, &output)
}

/// Format without panicking on a bad directive (chrono reports it through `fmt::Error`).
fn strftime(dt: &NaiveDateTime, format: &str) -> Result<String, Error> {
    use std::fmt::Write;
    let mut out = String::new();
    write!(out, "{}", dt.format(format)).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("invalid date format '{format}'"),
        )
    })?;
    Ok(out)
}

/// A datetime as templates see it: printed as Airflow prints one, with `strftime`,
/// `isoformat` and the usual fields.
#[derive(Debug)]
struct Date(DateTime<Utc>);

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Secs, false))
    }
}

impl Object for Date {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        let d = &self.0;
        Some(JValue::from(match key.as_str()? {
            "year" => i64::from(d.year()),
            "month" => i64::from(d.month()),
            "day" => i64::from(d.day()),
            "hour" => i64::from(d.hour()),
            "minute" => i64::from(d.minute()),
            "second" => i64::from(d.second()),
            _ => return None,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[JValue],
    ) -> Result<JValue, Error> {
        match method {
            "strftime" => {
                let (format,): (String,) = from_args(args)?;
                strftime(&self.0.naive_utc(), &format).map(JValue::from)
            }
            "isoformat" => Ok(JValue::from(self.to_string())),
            "timestamp" => Ok(JValue::from(self.0.timestamp() as f64)),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_ref(), f)
    }
}

/// `ti` in templates.
#[derive(Debug)]
struct TaskInstance {
    dag_id: String,
    task_id: String,
    run_id: String,
    try_number: u32,
    map_index: i32,
    xcoms: Arc<Vec<XcomValue>>,
    semantics: Semantics,
}

impl Object for TaskInstance {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        Some(match key.as_str()? {
            "task_id" => JValue::from(self.task_id.clone()),
            "dag_id" => JValue::from(self.dag_id.clone()),
            "run_id" => JValue::from(self.run_id.clone()),
            "try_number" => JValue::from(self.try_number),
            "map_index" => JValue::from(self.map_index),
            _ => return None,
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[JValue],
    ) -> Result<JValue, Error> {
        if method != "xcom_pull" {
            return Err(Error::from(ErrorKind::UnknownMethod));
        }
        let call = PullCall::parse(args)?;
        if call.dag_id.as_ref().is_some_and(|d| *d != self.dag_id) {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "xcom_pull: pulling from another DAG is not supported",
            ));
        }
        let pull = XcomPull {
            xcoms: &self.xcoms,
            key: &call.key,
        };
        match self.semantics {
            Semantics::Updraft => self.pull_updraft(&call, &pull),
            Semantics::Airflow => self.pull_airflow(&call, &pull),
        }
    }
}

impl TaskInstance {
    /// dag-format.md's `xcom_pull`: a mapped task always gives a list, and `default` stands
    /// for whatever was not pushed.
    fn pull_updraft(&self, call: &PullCall, pull: &XcomPull<'_>) -> Result<JValue, Error> {
        let default = call.default.clone();
        let map_indexes = call.map_indexes.as_ref();
        let indexes = map_indexes.map(int_list).transpose()?;
        // One index asked for as an integer gives that instance's value bare.
        let single = map_indexes.is_none_or(|v| v.as_i64().is_some());
        match &call.task_ids {
            TaskIds::Own => {
                // Omitted task_ids means the calling task; a mapped instance reads its own.
                let own = indexes.or_else(|| (self.map_index >= 0).then(|| vec![self.map_index]));
                Ok(pull
                    .one(&self.task_id, own.as_deref(), single)
                    .unwrap_or(default))
            }
            TaskIds::One(id) => Ok(pull.one(id, indexes.as_deref(), single).unwrap_or(default)),
            TaskIds::Many(ids) => {
                let values: Vec<Option<JValue>> = ids
                    .iter()
                    .map(|id| pull.one(id, indexes.as_deref(), single))
                    .collect();
                if values.iter().all(Option::is_none) {
                    return Ok(default);
                }
                Ok(JValue::from(
                    values
                        .into_iter()
                        .map(|v| v.unwrap_or_else(|| default.clone()))
                        .collect::<Vec<_>>(),
                ))
            }
        }
    }

    /// Airflow 3.3's `xcom_pull` (the task SDK's `RuntimeTaskInstance.xcom_pull`). Without
    /// `map_indexes`, every instance's value of each task is gathered into one flat list, a
    /// task that pushed nothing adding `None` (never `default`), and one task asked for by a
    /// single id gives its lone value bare. With `map_indexes` (an integer, `None` meaning the
    /// unmapped value, or a list), each task × index gives its value or `default`, bare when
    /// one id and one index were asked for.
    fn pull_airflow(&self, call: &PullCall, pull: &XcomPull<'_>) -> Result<JValue, Error> {
        let (ids, single_task): (Vec<&str>, bool) = match &call.task_ids {
            TaskIds::Own => (vec![self.task_id.as_str()], true),
            TaskIds::One(id) => (vec![id.as_str()], true),
            TaskIds::Many(ids) => (ids.iter().map(String::as_str).collect(), false),
        };
        if !call.map_indexes_given {
            let mut values = Vec::new();
            for id in ids {
                let found = pull.all(id);
                if found.is_empty() {
                    values.push(JValue::from(()));
                } else {
                    values.extend(found);
                }
            }
            if single_task && values.len() == 1 {
                return Ok(values.swap_remove(0));
            }
            return Ok(JValue::from(values));
        }
        let (indexes, single_index) = match &call.map_indexes {
            // `map_indexes=None` pulls as from an unmapped task: map index -1.
            None => (vec![-1], true),
            Some(v) => (int_list(v)?, v.as_i64().is_some()),
        };
        let mut values: Vec<JValue> = ids
            .iter()
            .flat_map(|id| indexes.iter().map(move |index| (*id, *index)))
            .map(|(id, index)| pull.at(id, index).unwrap_or_else(|| call.default.clone()))
            .collect();
        if single_task && single_index && !values.is_empty() {
            return Ok(values.swap_remove(0));
        }
        Ok(JValue::from(values))
    }
}

/// Which tasks an `xcom_pull` names.
enum TaskIds {
    /// `task_ids` omitted or `None`: the calling task.
    Own,
    /// One id, as a string.
    One(String),
    /// A list of ids, in the order given.
    Many(Vec<String>),
}

/// The arguments of one `ti.xcom_pull(…)` call, as both rule sets read them.
struct PullCall {
    task_ids: TaskIds,
    key: String,
    /// `map_indexes` unless omitted or `None`.
    map_indexes: Option<JValue>,
    /// Whether `map_indexes` was passed at all: Airflow tells `map_indexes=None` from leaving
    /// it out.
    map_indexes_given: bool,
    /// `default`, `None` when not given.
    default: JValue,
    dag_id: Option<String>,
}

impl PullCall {
    fn parse(args: &[JValue]) -> Result<PullCall, Error> {
        let (positional, kwargs): (Option<JValue>, Kwargs) = from_args(args)?;
        let task_ids = match positional {
            Some(_) if kwargs.has("task_ids") => {
                return Err(Error::new(
                    ErrorKind::TooManyArguments,
                    "xcom_pull: task_ids given twice",
                ));
            }
            Some(v) => Some(v),
            None => kwargs.get::<Option<JValue>>("task_ids")?,
        };
        let key: Option<String> = kwargs.get("key")?;
        let map_indexes_given = kwargs.has("map_indexes");
        let map_indexes: Option<JValue> = kwargs.get("map_indexes")?;
        let default: Option<JValue> = kwargs.get("default")?;
        let dag_id: Option<String> = kwargs.get("dag_id")?;
        kwargs.assert_all_used()?;
        Ok(PullCall {
            task_ids: task_ids_of(task_ids)?,
            key: key.unwrap_or_else(|| "return_value".to_string()),
            map_indexes,
            map_indexes_given,
            default: default.unwrap_or(JValue::from(())),
            dag_id,
        })
    }
}

fn task_ids_of(value: Option<JValue>) -> Result<TaskIds, Error> {
    let Some(value) = value.filter(|v| !v.is_none() && !v.is_undefined()) else {
        return Ok(TaskIds::Own);
    };
    if let Some(id) = value.as_str() {
        return Ok(TaskIds::One(id.to_string()));
    }
    let ids: Vec<String> = value
        .try_iter()
        .map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                "xcom_pull: task_ids must be a task id or a list of task ids",
            )
        })?
        .map(|v| v.as_str().map(str::to_string))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                "xcom_pull: task_ids must be strings",
            )
        })?;
    Ok(TaskIds::Many(ids))
}

fn int_list(v: &JValue) -> Result<Vec<i32>, Error> {
    let bad = || {
        Error::new(
            ErrorKind::InvalidOperation,
            "xcom_pull: map_indexes must be an integer or a list of integers",
        )
    };
    if let Some(i) = v.as_i64() {
        return i32::try_from(i).map(|i| vec![i]).map_err(|_| bad());
    }
    v.try_iter()
        .map_err(|_| bad())?
        .map(|x| {
            x.as_i64()
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(bad)
        })
        .collect()
}

/// XComs of one key, for `xcom_pull`.
struct XcomPull<'a> {
    xcoms: &'a [XcomValue],
    key: &'a str,
}

impl XcomPull<'_> {
    /// dag-format.md's value of `task_id`: what it pushed, or the list of its mapped
    /// instances' values in map_index order (always a list for a mapped task, unless one
    /// index was asked for). `None` when nothing was pushed.
    fn one(&self, task_id: &str, indexes: Option<&[i32]>, single: bool) -> Option<JValue> {
        let mut found: Vec<&XcomValue> = self
            .xcoms
            .iter()
            .filter(|x| x.task_id == task_id && x.key == self.key)
            .filter(|x| indexes.is_none_or(|ix| ix.contains(&x.map_index)))
            .collect();
        if found.is_empty() {
            return None;
        }
        let mapped = found.iter().any(|x| x.map_index >= 0);
        match indexes {
            Some(ix) if single && ix.len() == 1 => {
                found.first().map(|x| JValue::from(Serde(&x.value)))
            }
            Some(ix) => {
                // In the order asked for.
                let values = ix
                    .iter()
                    .filter_map(|i| found.iter().find(|x| x.map_index == *i))
                    .map(|x| JValue::from(Serde(&x.value)))
                    .collect::<Vec<_>>();
                Some(JValue::from(values))
            }
            None if mapped => {
                found.retain(|x| x.map_index >= 0);
                found.sort_by_key(|x| x.map_index);
                Some(JValue::from(
                    found
                        .iter()
                        .map(|x| JValue::from(Serde(&x.value)))
                        .collect::<Vec<_>>(),
                ))
            }
            None => found.last().map(|x| JValue::from(Serde(&x.value))),
        }
    }

    /// Every value `task_id` pushed, in map_index order (one for an unmapped task).
    fn all(&self, task_id: &str) -> Vec<JValue> {
        let mut found: Vec<&XcomValue> = self
            .xcoms
            .iter()
            .filter(|x| x.task_id == task_id && x.key == self.key)
            .collect();
        found.sort_by_key(|x| x.map_index);
        found
            .into_iter()
            .map(|x| JValue::from(Serde(&x.value)))
            .collect()
    }

    /// The value instance `map_index` of `task_id` pushed (-1: the unmapped task's).
    fn at(&self, task_id: &str, map_index: i32) -> Option<JValue> {
        self.xcoms
            .iter()
            .find(|x| x.task_id == task_id && x.key == self.key && x.map_index == map_index)
            .map(|x| JValue::from(Serde(&x.value)))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A run where `extract` pushed two keys, `mapped` has two instances, `one` is a mapped
    /// task with a single instance, and the calling task `report` pushed its own value.
    fn context(semantics: Semantics) -> TemplateContext {
        let xcom = |task: &str, map_index: i32, key: &str, value: Value| XcomValue {
            task_id: task.into(),
            map_index,
            key: key.into(),
            value,
        };
        TemplateContext {
            dag_id: "d".into(),
            task_id: "report".into(),
            map_index: -1,
            xcoms: vec![
                xcom("extract", -1, "return_value", json!({"rows": 5})),
                xcom("extract", -1, "row_count", json!(1500)),
                xcom("mapped", 1, "return_value", json!("b")),
                xcom("mapped", 0, "return_value", json!("a")),
                xcom("one", 0, "return_value", json!("only")),
                xcom("report", -1, "return_value", json!("mine")),
            ],
            semantics,
            ..TemplateContext::default()
        }
    }

    /// Each template rendered under dag-format.md's rules and under Airflow's.
    fn check(cases: &[(&str, &str, &str)], ctx: impl Fn(Semantics) -> TemplateContext) {
        for (template, updraft, airflow) in cases {
            for (semantics, expected) in
                [(Semantics::Updraft, updraft), (Semantics::Airflow, airflow)]
            {
                let got = render(template, &ctx(semantics))
                    .unwrap_or_else(|e| panic!("{template} ({semantics:?}): {e}"));
                assert_eq!(&got, expected, "{template} ({semantics:?})");
            }
        }
    }

    #[test]
    fn xcom_pull_follows_the_dags_rules() {
        check(
            &[
                // Where the two agree.
                (
                    "{{ ti.xcom_pull('extract') }}",
                    "{'rows': 5}",
                    "{'rows': 5}",
                ),
                (
                    "{{ ti.xcom_pull('extract', key='row_count') }}",
                    "1500",
                    "1500",
                ),
                ("{{ ti.xcom_pull('mapped') }}", "['a', 'b']", "['a', 'b']"),
                ("{{ ti.xcom_pull('mapped', map_indexes=1) }}", "b", "b"),
                ("{{ ti.xcom_pull('missing') }}", "None", "None"),
                ("{{ ti.xcom_pull() }}", "mine", "mine"),
                // A mapped task with one instance: dag-format keeps the list.
                ("{{ ti.xcom_pull('one') }}", "['only']", "only"),
                ("{{ ti.xcom_pull(task_ids='one') }}", "['only']", "only"),
                // `default` for nothing pushed: Airflow 3.3 ignores it without map_indexes.
                (
                    "{{ ti.xcom_pull('missing', default='fallback') }}",
                    "fallback",
                    "None",
                ),
                (
                    "{{ ti.xcom_pull('extract', key='nope', default=0) }}",
                    "0",
                    "None",
                ),
                (
                    "{{ ti.xcom_pull(['extract', 'missing'], default=0) }}",
                    "[{'rows': 5}, 0]",
                    "[{'rows': 5}, None]",
                ),
                // A list of ids: Airflow flattens mapped values into one list.
                (
                    "{{ ti.xcom_pull(['extract', 'mapped']) }}",
                    "[{'rows': 5}, ['a', 'b']]",
                    "[{'rows': 5}, 'a', 'b']",
                ),
                ("{{ ti.xcom_pull(['one']) }}", "[['only']]", "['only']"),
                // Explicit map_indexes: Airflow's default fills each missing instance.
                (
                    "{{ ti.xcom_pull('mapped', map_indexes=[1, 7], default='-') }}",
                    "['b']",
                    "['b', '-']",
                ),
                (
                    "{{ ti.xcom_pull('mapped', map_indexes=7, default='-') }}",
                    "-",
                    "-",
                ),
                // map_indexes=None: Airflow reads the unmapped value only.
                (
                    "{{ ti.xcom_pull('extract', map_indexes=None) }}",
                    "{'rows': 5}",
                    "{'rows': 5}",
                ),
                (
                    "{{ ti.xcom_pull('one', map_indexes=None, default='d') }}",
                    "['only']",
                    "d",
                ),
            ],
            context,
        );
    }

    #[test]
    fn a_mapped_instance_pulling_its_own_task() {
        // dag-format: its own value; Airflow: every instance's, as for any task.
        let mapped = |semantics| TemplateContext {
            task_id: "mapped".into(),
            map_index: 1,
            ..context(semantics)
        };
        check(&[("{{ ti.xcom_pull() }}", "b", "['a', 'b']")], mapped);
    }

    #[test]
    fn a_single_expression_keeps_the_pulled_value() {
        let pulled = |semantics| {
            render_value(&json!("{{ ti.xcom_pull('one') }}"), &context(semantics)).expect("renders")
        };
        assert_eq!(pulled(Semantics::Updraft), json!(["only"]));
        assert_eq!(pulled(Semantics::Airflow), json!("only"));
    }

    #[test]
    fn the_sequence_form_for_a_mapped_producer_stays_a_list() {
        // What an Airflow file's XComArg of a mapped task renders to for `expand`: a list
        // even of one, and empty when nothing was pushed (Airflow's LazyXComSequence).
        let ctx = context(Semantics::Airflow);
        let sequence = |id: &str| {
            let template =
                format!("{{{{ ti.xcom_pull(task_ids=['{id}']) | reject('none') | list }}}}");
            render_value(&json!(template), &ctx).expect("renders")
        };
        assert_eq!(sequence("one"), json!(["only"]));
        assert_eq!(sequence("mapped"), json!(["a", "b"]));
        assert_eq!(sequence("missing"), json!([]));
    }
}
