//! One task entry: its id, its kind block and every common key, with `default_args` applied.

use std::collections::BTreeMap;

use serde_json::Value;

use super::check::{self, Problems, Single};
use super::node::{Kind, Node, Pos};
use crate::model::{PythonTask, SwitchCase, Task, TaskKind};
use crate::operator::{EmailSpec, HttpSpec, SqlSpec, TriggerDagSpec};
use crate::sensor::{ExternalTaskProbe, HttpProbe, Probe, Sensor, SensorMode};
use crate::trigger_rule::TriggerRule;

/// The keys that say what a task runs; a task has exactly one.
pub(crate) const KIND_KEYS: [&str; 9] = [
    "bash",
    "python",
    "empty",
    "switch",
    "sensor",
    "http",
    "sql",
    "email",
    "trigger_dag",
];

/// Keys every task may set, itself or through `default_args`.
pub(crate) const COMMON_KEYS: [&str; 27] = [
    "depends_on",
    "trigger_rule",
    "retries",
    "retry_delay",
    "retry_exponential_backoff",
    "max_retry_delay",
    "execution_timeout",
    "depends_on_past",
    "wait_for_downstream",
    "pool",
    "pool_slots",
    "priority_weight",
    "queue",
    "env",
    "cwd",
    "do_xcom_push",
    "branch",
    "expand",
    "owner",
    "email",
    "email_on_failure",
    "email_on_retry",
    "on_failure",
    "on_success",
    "on_retry",
    "on_execute",
    "doc_md",
];

/// Keys that only a `sensor` task uses; they are kept inside its spec.
pub(crate) const SENSOR_KEYS: [&str; 5] = [
    "poke_interval",
    "timeout",
    "mode",
    "soft_fail",
    "exponential_backoff",
];

/// Every key a task entry may have.
pub(crate) fn task_keys() -> Vec<&'static str> {
    let mut keys = vec!["id"];
    keys.extend(KIND_KEYS);
    keys.extend(COMMON_KEYS);
    keys.extend(SENSOR_KEYS);
    keys.dedup();
    keys
}

/// Every key `default_args` may have.
pub(crate) fn default_arg_keys() -> Vec<&'static str> {
    let mut keys: Vec<&str> = COMMON_KEYS.to_vec();
    keys.extend(SENSOR_KEYS);
    keys
}

/// A `default_args` block and how errors name it.
pub(crate) struct Defaults<'n> {
    pub node: &'n Node,
    pub name: String,
}

/// A task as parsed, before its references are resolved into full ids.
pub(crate) struct ParsedTask {
    pub task: Task,
    /// Full id of the enclosing group, `None` at top level.
    pub group: Option<String>,
    /// Where the task's id is written.
    pub pos: Pos,
    pub depends_on: Vec<(String, Pos)>,
    /// For `switch`: per case, the ids as written, to be resolved like `depends_on`.
    pub switch_targets: Vec<Vec<(String, Pos)>>,
}

/// Where a key's value came from: the task itself or a `default_args` layer.
struct Lookup<'n, 'd> {
    entry: &'n Node,
    defaults: &'d [Defaults<'n>],
    label: String,
}

impl<'n> Lookup<'n, '_> {
    /// The value of `key` and the name used for it in errors.
    fn get(&self, key: &str) -> Option<(&'n Node, String)> {
        if let Some(v) = self.entry.get(key) {
            return Some((v, format!("'{key}' in {}", self.label)));
        }
        self.inherited(key)
    }

    /// The value of `key` from `default_args` only, innermost first: a group's
    /// `default_args` override the DAG's.
    fn inherited(&self, key: &str) -> Option<(&'n Node, String)> {
        self.defaults.iter().find_map(|d| {
            d.node
                .get(key)
                .map(|v| (v, format!("'{key}' in {}", d.name)))
        })
    }
}

/// Parse one task entry. `defaults` holds the applicable `default_args`, innermost first.
pub(crate) fn parse_task(
    p: &mut Problems,
    entry: &Node,
    group: Option<&str>,
    defaults: &[Defaults<'_>],
    dag_owner: &str,
) -> Option<ParsedTask> {
    let where_group = group
        .map(|g| format!(" of group '{g}'"))
        .unwrap_or_default();
    check::map(p, entry, &format!("each entry of tasks{where_group}"))?;
    let Some(id_node) = entry.get("id") else {
        p.add(entry.pos, format!("a task{where_group} has no 'id'"));
        return None;
    };
    let short = check::string(p, id_node, "task 'id'")?;
    if let Some(problem) = check::id_problem(&short, false) {
        p.add(
            id_node.pos,
            format!("invalid task id '{short}': it {problem}"),
        );
    }
    let full = match group {
        Some(g) => format!("{g}.{short}"),
        None => short.clone(),
    };
    let label = format!("task '{full}'");
    check::known_keys(p, entry, &task_keys(), &label);
    let look = Lookup {
        entry,
        defaults,
        label: label.clone(),
    };

    let (kind, switch_targets) = parse_kind(p, entry, &look, &label);
    // A sensor whose block has errors is still a sensor: its options are not misplaced.
    let is_sensor = matches!(kind, Some(TaskKind::Sensor(_))) || entry.get("sensor").is_some();
    if !is_sensor {
        for key in SENSOR_KEYS {
            if let Some((k, _)) = entry
                .as_map()
                .unwrap_or_default()
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
            {
                p.add(
                    k.pos,
                    format!("'{key}' in {label} only applies to a sensor task"),
                );
            }
        }
    }

    let mut task = Task {
        task_id: full.clone(),
        kind: kind.unwrap_or(TaskKind::Empty),
        upstream: Vec::new(),
        trigger_rule: TriggerRule::AllSuccess,
        retries: 0,
        retry_delay: 300.0,
        retry_exponential_backoff: None,
        max_retry_delay: 86_400.0,
        execution_timeout: None,
        depends_on_past: false,
        wait_for_downstream: false,
        pool: "default_pool".to_string(),
        pool_slots: 1,
        priority_weight: 1,
        queue: "default".to_string(),
        env: BTreeMap::new(),
        cwd: None,
        do_xcom_push: true,
        branch: false,
        expand: None,
        owner: dag_owner.to_string(),
        email: Vec::new(),
        email_on_failure: true,
        email_on_retry: false,
        on_failure: Vec::new(),
        on_success: Vec::new(),
        on_retry: Vec::new(),
        on_execute: Vec::new(),
        doc_md: None,
    };

    let mut depends_on = Vec::new();
    if let Some((v, what)) = look.get("depends_on") {
        depends_on = check::strings(p, v, &what, Single::Allowed);
    }
    if let Some((v, what)) = look.get("trigger_rule")
        && let Some(name) = check::string(p, v, &what)
    {
        match name.parse::<TriggerRule>() {
            Ok(rule) => task.trigger_rule = rule,
            Err(_) => p.add(
                v.pos,
                format!(
                    "unknown trigger rule '{name}' in {label}{}",
                    check::suggestion(&name, TriggerRule::ALL.iter().map(|r| r.as_str()))
                ),
            ),
        }
    }
    set(&look, "retries", &mut task.retries, |v, w| {
        check::count(p, v, w, 0)
    });
    set(&look, "retry_delay", &mut task.retry_delay, |v, w| {
        check::duration(p, v, w)
    });
    if let Some((v, what)) = look.get("retry_exponential_backoff") {
        match &v.kind {
            Kind::Bool(false) | Kind::Null => task.retry_exponential_backoff = None,
            Kind::Bool(true) => task.retry_exponential_backoff = Some(2.0),
            Kind::Number(n) if n.as_f64().is_some_and(|m| m >= 1.0) => {
                task.retry_exponential_backoff = n.as_f64();
            }
            _ => p.add(
                v.pos,
                format!("{what} must be true, false or a multiplier of at least 1"),
            ),
        }
    }
    set(
        &look,
        "max_retry_delay",
        &mut task.max_retry_delay,
        |v, w| check::duration(p, v, w),
    );
    if let Some((v, what)) = look.get("execution_timeout") {
        task.execution_timeout = check::opt_duration(p, v, &what);
    }
    set(
        &look,
        "depends_on_past",
        &mut task.depends_on_past,
        |v, w| check::boolean(p, v, w),
    );
    set(
        &look,
        "wait_for_downstream",
        &mut task.wait_for_downstream,
        |v, w| check::boolean(p, v, w),
    );
    set(&look, "pool", &mut task.pool, |v, w| check::string(p, v, w));
    set(&look, "pool_slots", &mut task.pool_slots, |v, w| {
        check::count(p, v, w, 1)
    });
    set(
        &look,
        "priority_weight",
        &mut task.priority_weight,
        |v, w| check::integer(p, v, w),
    );
    set(&look, "queue", &mut task.queue, |v, w| {
        check::string(p, v, w)
    });
    if let Some((v, what)) = look.get("env") {
        task.env = parse_env(p, v, &what);
    }
    if let Some((v, what)) = look.get("cwd") {
        task.cwd = check::opt_string(p, v, &what);
    }
    set(&look, "do_xcom_push", &mut task.do_xcom_push, |v, w| {
        check::boolean(p, v, w)
    });
    set(&look, "branch", &mut task.branch, |v, w| {
        check::boolean(p, v, w)
    });
    if task.branch
        && !matches!(task.kind, TaskKind::Bash { .. } | TaskKind::Python(_))
        && let Some((v, _)) = look.get("branch")
    {
        p.add(
            v.pos,
            format!("'branch' in {label} needs a bash or python task; use switch otherwise"),
        );
    }
    if let Some((v, what)) = look.get("expand") {
        task.expand = parse_expand(p, v, &what);
    }
    set(&look, "owner", &mut task.owner, |v, w| {
        check::string(p, v, w)
    });
    // `email` is also a kind key; as a common key it is the alert address list, so a
    // mapping here is the kind block and is read by `parse_kind`.
    let alerts = match entry.get("email") {
        Some(v) if v.as_map().is_some() => look.inherited("email"),
        _ => look.get("email"),
    };
    if let Some((v, what)) = alerts {
        task.email = check::strings(p, v, &what, Single::Allowed)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
    }
    set(
        &look,
        "email_on_failure",
        &mut task.email_on_failure,
        |v, w| check::boolean(p, v, w),
    );
    set(&look, "email_on_retry", &mut task.email_on_retry, |v, w| {
        check::boolean(p, v, w)
    });
    for (key, slot) in [
        ("on_failure", &mut task.on_failure),
        ("on_success", &mut task.on_success),
        ("on_retry", &mut task.on_retry),
        ("on_execute", &mut task.on_execute),
    ] {
        if let Some((v, what)) = look.get(key) {
            *slot = parse_actions(p, v, &what);
        }
    }
    if let Some((v, what)) = look.get("doc_md") {
        task.doc_md = check::opt_string(p, v, &what);
    }

    Some(ParsedTask {
        task,
        group: group.map(str::to_string),
        pos: id_node.pos,
        depends_on,
        switch_targets,
    })
}

/// Overwrite `slot` with the parsed value of `key` when the key is set and valid.
fn set<'n, T>(
    look: &Lookup<'n, '_>,
    key: &str,
    slot: &mut T,
    parse: impl FnOnce(&'n Node, &str) -> Option<T>,
) {
    if let Some((v, what)) = look.get(key)
        && let Some(value) = parse(v, &what)
    {
        *slot = value;
    }
}

/// The kind block; for `switch` also the ids named by each case.
#[allow(clippy::type_complexity)]
fn parse_kind(
    p: &mut Problems,
    entry: &Node,
    look: &Lookup<'_, '_>,
    label: &str,
) -> (Option<TaskKind>, Vec<Vec<(String, Pos)>>) {
    let present: Vec<(&Node, &Node)> = entry
        .as_map()
        .unwrap_or_default()
        .iter()
        .filter(|(k, v)| match k.as_str() {
            // `email` with a list or string is the alert list, not the email kind.
            Some("email") => v.as_map().is_some(),
            Some(k) => KIND_KEYS.contains(&k),
            None => false,
        })
        .map(|(k, v)| (k, v))
        .collect();
    let (key, block) = match present.as_slice() {
        [] => {
            p.add(
                entry.get("id").map_or(entry.pos, |n| n.pos),
                format!(
                    "{label} has no kind: set exactly one of {}",
                    KIND_KEYS.join(", ")
                ),
            );
            return (None, Vec::new());
        }
        [one] => *one,
        [_, second, ..] => {
            let names: Vec<String> = present.iter().map(|(k, _)| k.key_text()).collect();
            p.add(
                second.0.pos,
                format!(
                    "{label} has {} kinds ({}); set exactly one",
                    names.len(),
                    names.join(", ")
                ),
            );
            return (None, Vec::new());
        }
    };
    let name = key.key_text();
    let what = format!("'{name}' in {label}");
    let kind = match name.as_str() {
        "bash" => check::string(p, block, &what).map(|command| TaskKind::Bash { command }),
        "python" => parse_python(p, block, &what).map(TaskKind::Python),
        "empty" => {
            if !block.is_null() && block.as_map().is_none_or(|m| !m.is_empty()) {
                p.add(
                    block.pos,
                    format!("{what} must be an empty mapping: empty: {{}}"),
                );
            }
            Some(TaskKind::Empty)
        }
        "switch" => {
            let (cases, targets) = parse_switch(p, block, &what);
            return (Some(TaskKind::Switch { cases }), targets);
        }
        "sensor" => parse_sensor(p, block, look, &what).map(|s| TaskKind::Sensor(Box::new(s))),
        "http" => check_spec(
            p,
            block,
            &what,
            &[
                "method",
                "url",
                "headers",
                "json",
                "body",
                "conn_id",
                "expect_status",
            ],
            &[&["url", "conn_id"]],
        )
        .map(|field| TaskKind::Http {
            spec: HttpSpec {
                method: field("method"),
                url: field("url"),
                headers: field("headers"),
                json: field("json"),
                body: field("body"),
                conn_id: field("conn_id"),
                expect_status: field("expect_status"),
            },
        }),
        "sql" => check_spec(
            p,
            block,
            &what,
            &["conn_id", "sql", "file", "parameters"],
            &[&["sql", "file"]],
        )
        .map(|field| TaskKind::Sql {
            spec: SqlSpec {
                conn_id: field("conn_id"),
                sql: field("sql"),
                file: field("file"),
                parameters: field("parameters"),
            },
        }),
        "email" => check_spec(
            p,
            block,
            &what,
            &["to", "cc", "subject", "html", "text"],
            &[&["to"]],
        )
        .map(|field| TaskKind::Email {
            spec: EmailSpec {
                to: field("to"),
                cc: field("cc"),
                subject: field("subject"),
                html: field("html"),
                text: field("text"),
            },
        }),
        _ => check_spec(
            p,
            block,
            &what,
            &[
                "dag_id",
                "conf",
                "wait_for_completion",
                "poke_interval",
                "allowed_states",
                "failed_states",
            ],
            &[&["dag_id"]],
        )
        .map(|field| TaskKind::TriggerDag {
            spec: TriggerDagSpec {
                dag_id: field("dag_id"),
                conf: field("conf"),
                wait_for_completion: field("wait_for_completion"),
                poke_interval: field("poke_interval"),
                allowed_states: field("allowed_states"),
                failed_states: field("failed_states"),
            },
        }),
    };
    (kind, Vec::new())
}

/// Check an operator kind's block: a mapping with known keys, and for each group in `one_of`
/// at least one of its keys present. Gives the block's fields as JSON (templates, rendered
/// when the task runs; `null` is the same as unset).
fn check_spec<'b>(
    p: &mut Problems,
    block: &'b Node,
    what: &str,
    keys: &[&str],
    one_of: &[&[&str]],
) -> Option<impl Fn(&str) -> Option<Value> + 'b> {
    check::map(p, block, what)?;
    check::known_keys(p, block, keys, what);
    for group in one_of {
        if !group.iter().any(|k| block.get(k).is_some()) {
            let names: Vec<String> = group.iter().map(|k| format!("'{k}'")).collect();
            p.add(block.pos, format!("{what} needs {}", names.join(" or ")));
        }
    }
    Some(|key: &str| block.get(key).map(Node::to_json).filter(|v| !v.is_null()))
}

fn parse_python(p: &mut Problems, block: &Node, what: &str) -> Option<PythonTask> {
    let mut python = PythonTask {
        code: None,
        file: None,
        callable: None,
        kwargs: BTreeMap::new(),
        interpreter: "python3".to_string(),
    };
    if let Some(code) = block.as_str() {
        python.code = Some(code.to_string());
        return Some(python);
    }
    if block.as_map().is_none() {
        p.add(
            block.pos,
            format!(
                "{what} must be inline code or a mapping with code or file, got {}",
                block.type_name()
            ),
        );
        return None;
    }
    check::known_keys(
        p,
        block,
        &["code", "file", "callable", "kwargs", "interpreter"],
        what,
    );
    if let Some(v) = block.get("code") {
        python.code = check::string(p, v, &format!("'code' of {what}"));
    }
    if let Some(v) = block.get("file") {
        python.file = check::string(p, v, &format!("'file' of {what}"));
    }
    match (block.get("code"), block.get("file")) {
        (Some(_), Some(f)) => p.add(
            f.pos,
            format!("{what} sets both 'code' and 'file'; set one"),
        ),
        (None, None) => p.add(block.pos, format!("{what} needs 'code' or 'file'")),
        _ => {}
    }
    if let Some(v) = block.get("callable") {
        python.callable = check::opt_string(p, v, &format!("'callable' of {what}"));
    }
    if let Some(v) = block.get("kwargs") {
        python.kwargs = check::json_map(p, v, &format!("'kwargs' of {what}"));
    }
    if let Some(v) = block.get("interpreter")
        && let Some(i) = check::string(p, v, &format!("'interpreter' of {what}"))
    {
        python.interpreter = i;
    }
    Some(python)
}

#[allow(clippy::type_complexity)]
fn parse_switch(
    p: &mut Problems,
    block: &Node,
    what: &str,
) -> (Vec<SwitchCase>, Vec<Vec<(String, Pos)>>) {
    let mut cases = Vec::new();
    let mut targets = Vec::new();
    let Some(items) = block.as_seq() else {
        p.add(
            block.pos,
            format!("{what} must be a list of {{if, then}} cases ending with an optional {{else}}, got {}", block.type_name()),
        );
        return (cases, targets);
    };
    if items.is_empty() {
        p.add(block.pos, format!("{what} has no cases"));
    }
    for (i, case) in items.iter().enumerate() {
        let case_what = format!("case {} of {what}", i + 1);
        if check::map(p, case, &case_what).is_none() {
            continue;
        }
        let ids = |p: &mut Problems, v: &Node| {
            check::strings(p, v, &format!("'then' of {case_what}"), Single::Allowed)
        };
        if let Some(otherwise) = case.get("else") {
            check::known_keys(p, case, &["else"], &case_what);
            if i + 1 != items.len() {
                p.add(
                    case.pos,
                    format!("{case_what}: 'else' must be the last case"),
                );
            }
            let named = ids(p, otherwise);
            cases.push(SwitchCase {
                condition: None,
                then: named.iter().map(|(s, _)| s.clone()).collect(),
                single: otherwise.as_str().is_some(),
            });
            targets.push(named);
            continue;
        }
        check::known_keys(p, case, &["if", "then"], &case_what);
        let condition = match case.get("if") {
            Some(v) => check::string(p, v, &format!("'if' of {case_what}")),
            None => {
                p.add(
                    case.pos,
                    format!("{case_what} needs 'if' and 'then' (or only 'else')"),
                );
                None
            }
        };
        let named = match case.get("then") {
            Some(v) => ids(p, v),
            None => {
                if condition.is_some() {
                    p.add(case.pos, format!("{case_what} needs 'then'"));
                }
                Vec::new()
            }
        };
        cases.push(SwitchCase {
            condition: Some(condition.unwrap_or_default()),
            then: named.iter().map(|(s, _)| s.clone()).collect(),
            single: case.get("then").is_some_and(|v| v.as_str().is_some()),
        });
        targets.push(named);
    }
    (cases, targets)
}

/// The sensor block, typed, with the task-level sensor options folded in and defaults
/// applied: `poke_interval` 60 s, `timeout` 7 days (Airflow's), `mode` reschedule,
/// `soft_fail` and `exponential_backoff` false.
fn parse_sensor(
    p: &mut Problems,
    block: &Node,
    look: &Lookup<'_, '_>,
    what: &str,
) -> Option<Sensor> {
    const WHAT_KEYS: [&str; 6] = ["file", "http", "sql", "external_task", "time", "command"];
    check::map(p, block, what)?;
    let mut keys: Vec<&str> = WHAT_KEYS.to_vec();
    keys.extend(SENSOR_KEYS);
    check::known_keys(p, block, &keys, what);
    let present: Vec<&str> = WHAT_KEYS
        .into_iter()
        .filter(|k| block.get(k).is_some())
        .collect();
    if present.len() != 1 {
        p.add(
            block.pos,
            format!(
                "{what} needs exactly one of {}, got {}",
                WHAT_KEYS.join(", "),
                if present.is_empty() {
                    "none".to_string()
                } else {
                    present.join(", ")
                }
            ),
        );
    }
    let mut probe = None;
    for key in &present {
        let Some(v) = block.get(key) else { continue };
        let sub = format!("'{key}' of {what}");
        let parsed = match *key {
            "file" => check::string(p, v, &sub).map(|path| Probe::File { path }),
            "command" => check::string(p, v, &sub).map(|command| Probe::Command { command }),
            "http" => parse_http_probe(p, v, &sub).map(Probe::Http),
            "sql" => {
                sub_spec(p, v, &sub, &["conn_id", "sql"], "sql");
                if v.as_map().is_some() && v.get("conn_id").is_none() {
                    p.add(v.pos, format!("{sub} needs 'conn_id'"));
                }
                let field = |p: &mut Problems, name: &str| {
                    v.get(name)
                        .and_then(|n| check::string(p, n, &format!("'{name}' of {sub}")))
                };
                match (field(p, "conn_id"), field(p, "sql")) {
                    (Some(conn_id), Some(sql)) => Some(Probe::Sql { conn_id, sql }),
                    _ => None,
                }
            }
            "external_task" => {
                sub_spec(p, v, &sub, &["dag_id", "task_id", "logical_date"], "dag_id");
                let field = |p: &mut Problems, name: &str| {
                    v.get(name)
                        .and_then(|n| check::string(p, n, &format!("'{name}' of {sub}")))
                };
                let dag_id = field(p, "dag_id");
                let task_id = field(p, "task_id");
                let logical_date = field(p, "logical_date");
                dag_id.map(|dag_id| {
                    Probe::ExternalTask(ExternalTaskProbe {
                        dag_id,
                        task_id,
                        logical_date,
                    })
                })
            }
            _ => {
                sub_spec(p, v, &sub, &["after"], "after");
                v.get("after")
                    .and_then(|n| check::string(p, n, &format!("'after' of {sub}")))
                    .map(|after| Probe::Time { after })
            }
        };
        probe = probe.or(parsed);
    }
    // Sensor options may sit in the block, on the task, or in default_args; the block's own
    // value wins over the task's, which wins over the defaults.
    let option = |key: &str| {
        block
            .get(key)
            .map(|v| (v, format!("'{key}' of {what}")))
            .or_else(|| look.get(key))
    };
    let seconds = |key: &str, default: f64, p: &mut Problems| -> f64 {
        option(key)
            .and_then(|(v, w)| check::duration(p, v, &w))
            .unwrap_or(default)
    };
    let poke_interval = seconds("poke_interval", 60.0, p);
    let timeout = seconds("timeout", 7.0 * 86_400.0, p);
    let mut mode = SensorMode::Reschedule;
    if let Some((v, w)) = option("mode")
        && let Some(m) = check::string(p, v, &w)
    {
        match m.as_str() {
            "poke" => mode = SensorMode::Poke,
            "reschedule" => mode = SensorMode::Reschedule,
            _ => p.add(
                v.pos,
                format!("{w} must be 'poke' or 'reschedule', got '{m}'"),
            ),
        }
    }
    let flag = |key: &str, p: &mut Problems| {
        option(key)
            .and_then(|(v, w)| check::boolean(p, v, &w))
            .unwrap_or(false)
    };
    let soft_fail = flag("soft_fail", p);
    let exponential_backoff = flag("exponential_backoff", p);
    Some(Sensor {
        probe: probe?,
        poke_interval,
        timeout,
        mode,
        soft_fail,
        exponential_backoff,
    })
}

/// `http: {url, method, expect_status, response_check, conn_id, headers}`.
fn parse_http_probe(p: &mut Problems, v: &Node, what: &str) -> Option<HttpProbe> {
    const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    check::map(p, v, what)?;
    check::known_keys(
        p,
        v,
        &[
            "url",
            "method",
            "expect_status",
            "response_check",
            "conn_id",
            "headers",
        ],
        what,
    );
    let text = |p: &mut Problems, name: &str| {
        v.get(name)
            .and_then(|n| check::opt_string(p, n, &format!("'{name}' of {what}")))
    };
    let url = text(p, "url");
    let conn_id = text(p, "conn_id");
    if url.is_none() && conn_id.is_none() {
        p.add(v.pos, format!("{what} needs 'url' or 'conn_id'"));
    }
    let mut method = "GET".to_string();
    if let Some(n) = v.get("method")
        && let Some(m) = check::string(p, n, &format!("'method' of {what}"))
    {
        let upper = m.to_ascii_uppercase();
        if METHODS.contains(&upper.as_str()) {
            method = upper;
        } else {
            p.add(
                n.pos,
                format!(
                    "'method' of {what} must be one of {}, got '{m}'",
                    METHODS.join(", ")
                ),
            );
        }
    }
    let mut expect_status = Vec::new();
    if let Some(n) = v.get("expect_status") {
        let items: Vec<&Node> = match n.as_seq() {
            Some(items) => items.iter().collect(),
            None => vec![n],
        };
        let mut codes = Vec::new();
        for item in items {
            match &item.kind {
                Kind::Number(num)
                    if num
                        .as_u64()
                        .is_some_and(|c| (100..=599).contains(&c)) =>
                {
                    codes.push(num.as_u64().and_then(|c| u16::try_from(c).ok()).unwrap_or(200));
                }
                _ => p.add(
                    item.pos,
                    format!("'expect_status' of {what} must be an HTTP status code (100-599) or a list of them"),
                ),
            }
        }
        if !codes.is_empty() {
            expect_status = codes;
        }
    }
    let response_check = text(p, "response_check");
    let mut headers = BTreeMap::new();
    if let Some(n) = v.get("headers") {
        headers = parse_env(p, n, &format!("'headers' of {what}"));
    }
    Some(HttpProbe {
        url: url.unwrap_or_default(),
        method,
        expect_status,
        response_check,
        conn_id,
        headers,
    })
}

fn sub_spec(p: &mut Problems, node: &Node, what: &str, keys: &[&str], required: &str) {
    if check::map(p, node, what).is_some() {
        check::known_keys(p, node, keys, what);
        if node.get(required).is_none() {
            p.add(node.pos, format!("{what} needs '{required}'"));
        }
    }
}

/// `env` values are strings; numbers and booleans are taken as their text, as a shell
/// would see them.
fn parse_env(p: &mut Problems, node: &Node, what: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    if node.is_null() {
        return env;
    }
    for (k, v) in check::map(p, node, what).unwrap_or_default() {
        let value = match &v.kind {
            Kind::Str(s) => s.clone(),
            Kind::Number(n) => n.to_string(),
            Kind::Bool(b) => b.to_string(),
            _ => {
                p.add(
                    v.pos,
                    format!(
                        "'{}' of {what} must be a string, got {}",
                        k.key_text(),
                        v.type_name()
                    ),
                );
                continue;
            }
        };
        env.insert(k.key_text(), value);
    }
    env
}

fn parse_expand(
    p: &mut Problems,
    node: &Node,
    what: &str,
) -> Option<serde_json::Map<String, Value>> {
    if node.is_null() {
        return None;
    }
    let entries = check::map(p, node, what)?;
    if entries.is_empty() {
        p.add(node.pos, format!("{what} names no argument to map over"));
    }
    let mut out = serde_json::Map::new();
    for (k, v) in entries {
        if !matches!(v.kind, Kind::Seq(_) | Kind::Str(_)) {
            p.add(
                v.pos,
                format!(
                    "'{}' of {what} must be a list or a template giving one, got {}",
                    k.key_text(),
                    v.type_name()
                ),
            );
        }
        out.insert(k.key_text(), v.to_json());
    }
    Some(out)
}

/// A notification action list: each item one of `email`, `webhook`, `bash`.
pub(crate) fn parse_actions(p: &mut Problems, node: &Node, what: &str) -> Vec<Value> {
    const ACTIONS: [&str; 3] = ["email", "webhook", "bash"];
    if node.is_null() {
        return Vec::new();
    }
    let Some(items) = node.as_seq() else {
        p.add(
            node.pos,
            format!(
                "{what} must be a list of actions (email, webhook, bash), got {}",
                node.type_name()
            ),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let item_what = format!("an action of {what}");
        let Some(entries) = check::map(p, item, &item_what) else {
            continue;
        };
        check::known_keys(p, item, &ACTIONS, &item_what);
        if entries.len() != 1 {
            p.add(
                item.pos,
                format!("{item_what} must have exactly one of email, webhook, bash"),
            );
        }
        if let Some(v) = item.get("email") {
            sub_spec(
                p,
                v,
                &format!("'email' {item_what}"),
                &["to", "cc", "subject", "html", "text"],
                "to",
            );
        }
        if let Some(v) = item.get("webhook") {
            sub_spec(
                p,
                v,
                &format!("'webhook' {item_what}"),
                &["url", "method", "headers", "json"],
                "url",
            );
        }
        if let Some(v) = item.get("bash") {
            check::string(p, v, &format!("'bash' {item_what}"));
        }
        out.push(item.to_json());
    }
    out
}
