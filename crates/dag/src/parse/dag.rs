//! The top level of a DAG file: DAG keys, params, groups, and dependency resolution.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::check::{self, Problems, Single};
use super::node::{Node, Pos};
use super::task::{self, Defaults, ParsedTask};
use crate::graph::find_cycle;
use crate::model::{Dag, Group, Param, Schedule};
use crate::schedule::validate_cron;

const DAG_KEYS: [&str; 22] = [
    "dag_id",
    "description",
    "schedule",
    "start_date",
    "end_date",
    "timezone",
    "catchup",
    "data_intervals",
    "dagrun_timeout",
    "max_active_runs",
    "max_active_tasks",
    "is_paused_upon_creation",
    "tags",
    "owner",
    "params",
    "default_args",
    "on_success",
    "on_failure",
    "tasks",
    "groups",
    "edges",
    "doc_md",
];

const GROUP_KEYS: [&str; 5] = ["id", "tooltip", "default_args", "tasks", "groups"];

const PARAM_KEYS: [&str; 6] = [
    "default",
    "type",
    "description",
    "enum",
    "minimum",
    "maximum",
];

const PARAM_TYPES: [&str; 7] = [
    "string", "integer", "number", "boolean", "array", "object", "null",
];

/// Build the DAG from the document root, recording every problem in `p`.
pub(crate) fn build(p: &mut Problems, path: &str, root: &Node) -> Option<Dag> {
    if root.is_null() {
        p.add(
            root.pos,
            "the file is empty: a DAG file needs at least 'tasks'",
        );
        return None;
    }
    check::map(p, root, "a DAG file")?;
    check::known_keys(p, root, &DAG_KEYS, "the DAG");
    let get = |key: &str| root.get(key);
    let what = |key: &str| format!("'{key}'");

    let dag_id = match get("dag_id") {
        Some(v) => check::string(p, v, &what("dag_id")).map(|id| (id, v.pos)),
        None => Some((file_stem(path), root.pos)),
    };
    let dag_id = match dag_id {
        Some((id, pos)) => {
            if let Some(problem) = check::id_problem(&id, true) {
                let origin = if get("dag_id").is_some() {
                    ""
                } else {
                    " (from the file name)"
                };
                p.add(pos, format!("invalid dag_id '{id}'{origin}: it {problem}"));
            }
            id
        }
        None => file_stem(path),
    };

    let mut tz = Tz::UTC;
    let mut timezone = "UTC".to_string();
    if let Some(v) = get("timezone")
        && let Some(name) = check::string(p, v, &what("timezone"))
    {
        match name.parse::<Tz>() {
            Ok(parsed) => {
                tz = parsed;
                timezone = name;
            }
            Err(_) => p.add(
                v.pos,
                format!(
                    "unknown timezone '{name}'{}",
                    check::suggestion(&name, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()))
                ),
            ),
        }
    }

    let start_date = get("start_date").and_then(|v| date(p, v, "start_date", tz));
    let end_date = get("end_date").and_then(|v| date(p, v, "end_date", tz));
    if let (Some(s), Some(e), Some(v)) = (start_date, end_date, get("end_date"))
        && e < s
    {
        p.add(
            v.pos,
            format!(
                "end_date {} is before start_date {}",
                e.to_rfc3339(),
                s.to_rfc3339()
            ),
        );
    }

    let schedule = match get("schedule") {
        None => Schedule::None,
        Some(v) if v.is_null() => Schedule::None,
        Some(v) => match check::string(p, v, &what("schedule")) {
            None => Schedule::None,
            Some(expr) => {
                if get("start_date").is_none() {
                    p.add(v.pos, format!("schedule '{expr}' needs a start_date"));
                }
                if expr.trim() == "@once" {
                    Schedule::Once
                } else {
                    if let Err(e) = validate_cron(&expr) {
                        p.add(v.pos, e.0);
                    }
                    Schedule::Cron(expr)
                }
            }
        },
    };

    let flag = |p: &mut Problems, key: &str| {
        get(key)
            .and_then(|v| check::boolean(p, v, &what(key)))
            .unwrap_or(false)
    };
    let catchup = flag(p, "catchup");
    let data_intervals = flag(p, "data_intervals");
    let is_paused_upon_creation = get("is_paused_upon_creation")
        .and_then(|v| check::boolean(p, v, &what("is_paused_upon_creation")));
    let dagrun_timeout =
        get("dagrun_timeout").and_then(|v| check::opt_duration(p, v, &what("dagrun_timeout")));
    let max_active_runs = get("max_active_runs")
        .and_then(|v| check::count(p, v, &what("max_active_runs"), 1))
        .unwrap_or(16);
    let max_active_tasks = get("max_active_tasks")
        .and_then(|v| check::count(p, v, &what("max_active_tasks"), 1))
        .unwrap_or(16);
    let tags = get("tags")
        .map(|v| check::strings(p, v, &what("tags"), Single::Refused))
        .unwrap_or_default()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let description =
        get("description").and_then(|v| check::opt_string(p, v, &what("description")));
    let doc_md = get("doc_md").and_then(|v| check::opt_string(p, v, &what("doc_md")));
    let params = get("params")
        .map(|v| parse_params(p, v))
        .unwrap_or_default();
    let on_success = get("on_success")
        .map(|v| task::parse_actions(p, v, "'on_success' of the DAG"))
        .unwrap_or_default();
    let on_failure = get("on_failure")
        .map(|v| task::parse_actions(p, v, "'on_failure' of the DAG"))
        .unwrap_or_default();

    let mut defaults = Vec::new();
    if let Some(v) = get("default_args")
        && !v.is_null()
        && check::map(p, v, "'default_args'").is_some()
    {
        check::known_keys(p, v, &task::default_arg_keys(), "default_args");
        defaults.push(Defaults {
            node: v,
            name: "default_args".to_string(),
        });
    }
    // The DAG's owner: its own key, else the default tasks get, else "updraft".
    let owner_node = get("owner").or_else(|| defaults.first().and_then(|d| d.node.get("owner")));
    let owner = owner_node
        .and_then(|v| check::string(p, v, &what("owner")))
        .unwrap_or_else(|| "updraft".to_string());

    let mut tree = Tree::default();
    let tasks_node = get("tasks");
    let groups_node = get("groups");
    if tasks_node.is_none() && groups_node.is_none() {
        p.add(root.pos, "the DAG has no 'tasks'");
    }
    collect(
        p,
        &mut tree,
        tasks_node,
        groups_node,
        None,
        &defaults,
        &owner,
    );
    if (tasks_node.is_some() || groups_node.is_some()) && tree.tasks.is_empty() {
        let at = tasks_node.or(groups_node).map_or(root.pos, |n| n.pos);
        p.add(at, "the DAG has no tasks");
    }

    let edges = get("edges")
        .map(|v| check::strings(p, v, &what("edges"), Single::Refused))
        .unwrap_or_default();
    resolve(p, &mut tree, &edges);

    Some(Dag {
        dag_id,
        description,
        schedule,
        start_date,
        end_date,
        timezone,
        catchup,
        data_intervals,
        dagrun_timeout,
        max_active_runs,
        max_active_tasks,
        is_paused_upon_creation,
        tags,
        owner,
        params,
        on_success,
        on_failure,
        doc_md,
        tasks: tree.tasks.into_iter().map(|t| t.task).collect(),
        groups: tree.groups,
        fileloc: path.to_string(),
        python_source: None,
        python_callbacks: Default::default(),
    })
}

fn file_stem(path: &str) -> String {
    std::path::Path::new(path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A date (`2024-01-01`, midnight) or a datetime; without an offset it is wall-clock time
/// in the DAG's time zone.
fn date(p: &mut Problems, node: &Node, key: &str, tz: Tz) -> Option<DateTime<Utc>> {
    if node.is_null() {
        return None;
    }
    let text = check::string(p, node, &format!("'{key}'"))?;
    let text = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.with_timezone(&Utc));
    }
    let naive = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .or_else(|| {
            [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M",
                "%Y-%m-%d %H:%M",
            ]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        });
    let Some(naive) = naive else {
        p.add(
            node.pos,
            format!("invalid {key} '{text}': expected a date (2024-01-01) or an RFC 3339 datetime (2024-01-01T06:00:00+00:00)"),
        );
        return None;
    };
    // An ambiguous wall-clock time (DST fall-back) means its first occurrence.
    match tz.from_local_datetime(&naive).earliest() {
        Some(local) => Some(local.with_timezone(&Utc)),
        None => {
            p.add(
                node.pos,
                format!("invalid {key} '{text}': that time does not exist in {tz} (a DST gap)"),
            );
            None
        }
    }
}

fn parse_params(p: &mut Problems, node: &Node) -> BTreeMap<String, Param> {
    let mut params = BTreeMap::new();
    if node.is_null() {
        return params;
    }
    for (k, v) in check::map(p, node, "'params'").unwrap_or_default() {
        let name = k.key_text();
        let what = format!("param '{name}'");
        // The long form is a mapping that says `default` or `type`; any other mapping is
        // simply a default value that happens to be an object.
        let long = v.as_map().is_some() && (v.get("default").is_some() || v.get("type").is_some());
        let mut param = Param {
            default: v.to_json(),
            kind: None,
            description: None,
            choices: None,
            minimum: None,
            maximum: None,
        };
        if long {
            check::known_keys(p, v, &PARAM_KEYS, &what);
            param.default = v.get("default").map(Node::to_json).unwrap_or_default();
            if let Some(t) = v.get("type") {
                param.kind = check::string(p, t, &format!("'type' of {what}"));
                if let Some(kind) = &param.kind
                    && !PARAM_TYPES.contains(&kind.as_str())
                {
                    p.add(
                        t.pos,
                        format!(
                            "unknown type '{kind}' of {what}{}",
                            check::suggestion(kind, PARAM_TYPES)
                        ),
                    );
                }
            }
            param.description = v
                .get("description")
                .and_then(|d| check::opt_string(p, d, &format!("'description' of {what}")));
            if let Some(e) = v.get("enum") {
                match e.as_seq() {
                    Some(items) => param.choices = Some(items.iter().map(Node::to_json).collect()),
                    None => p.add(
                        e.pos,
                        format!("'enum' of {what} must be a list, got {}", e.type_name()),
                    ),
                }
            }
            param.minimum = v
                .get("minimum")
                .and_then(|m| check::number(p, m, &format!("'minimum' of {what}")));
            param.maximum = v
                .get("maximum")
                .and_then(|m| check::number(p, m, &format!("'maximum' of {what}")));
        }
        params.insert(name, param);
    }
    params
}

/// Tasks and groups flattened, with what resolution needs.
#[derive(Default)]
struct Tree {
    tasks: Vec<ParsedTask>,
    groups: Vec<Group>,
    /// Full id → where it was first defined, across tasks and groups.
    ids: HashMap<String, Pos>,
    /// Group full id → position of its id, for errors.
    group_pos: HashMap<String, Pos>,
}

fn collect(
    p: &mut Problems,
    tree: &mut Tree,
    tasks: Option<&Node>,
    groups: Option<&Node>,
    group: Option<&str>,
    defaults: &[Defaults<'_>],
    owner: &str,
) {
    let scope = group
        .map(|g| format!(" of group '{g}'"))
        .unwrap_or_default();
    if let Some(list) = tasks.filter(|n| !n.is_null()) {
        let Some(items) = list.as_seq() else {
            p.add(
                list.pos,
                format!("'tasks'{scope} must be a list, got {}", list.type_name()),
            );
            return;
        };
        for entry in items {
            if let Some(parsed) = task::parse_task(p, entry, group, defaults, owner) {
                register(p, tree, &parsed.task.task_id, parsed.pos, "task");
                tree.tasks.push(parsed);
            }
        }
    }
    let Some(list) = groups.filter(|n| !n.is_null()) else {
        return;
    };
    let Some(items) = list.as_seq() else {
        p.add(
            list.pos,
            format!("'groups'{scope} must be a list, got {}", list.type_name()),
        );
        return;
    };
    for entry in items {
        if check::map(p, entry, &format!("each entry of groups{scope}")).is_none() {
            continue;
        }
        let Some(id_node) = entry.get("id") else {
            p.add(entry.pos, format!("a group{scope} has no 'id'"));
            continue;
        };
        let Some(short) = check::string(p, id_node, "group 'id'") else {
            continue;
        };
        if let Some(problem) = check::id_problem(&short, false) {
            p.add(
                id_node.pos,
                format!("invalid group id '{short}': it {problem}"),
            );
        }
        let full = match group {
            Some(g) => format!("{g}.{short}"),
            None => short,
        };
        let label = format!("group '{full}'");
        check::known_keys(p, entry, &GROUP_KEYS, &label);
        register(p, tree, &full, id_node.pos, "group");
        tree.group_pos.insert(full.clone(), id_node.pos);
        let tooltip = entry
            .get("tooltip")
            .and_then(|t| check::opt_string(p, t, &format!("'tooltip' of {label}")));
        let mut layers: Vec<Defaults<'_>> = Vec::new();
        if let Some(d) = entry.get("default_args")
            && !d.is_null()
            && check::map(p, d, &format!("'default_args' of {label}")).is_some()
        {
            check::known_keys(
                p,
                d,
                &task::default_arg_keys(),
                &format!("default_args of {label}"),
            );
            layers.push(Defaults {
                node: d,
                name: format!("default_args of {label}"),
            });
        }
        layers.extend(defaults.iter().map(|d| Defaults {
            node: d.node,
            name: d.name.clone(),
        }));
        let first = tree.tasks.len();
        let group_index = tree.groups.len();
        tree.groups.push(Group {
            group_id: full.clone(),
            tooltip,
            tasks: Vec::new(),
        });
        collect(
            p,
            tree,
            entry.get("tasks"),
            entry.get("groups"),
            Some(&full),
            &layers,
            owner,
        );
        let members = tree.tasks[first..]
            .iter()
            .map(|t| t.task.task_id.clone())
            .collect();
        tree.groups[group_index].tasks = members;
    }
}

fn register(p: &mut Problems, tree: &mut Tree, id: &str, pos: Pos, what: &str) {
    if let Some(first) = tree.ids.get(id) {
        p.add(
            pos,
            format!(
                "duplicate {what} id '{id}' (already defined at line {}, column {})",
                first.line, first.column
            ),
        );
    } else {
        tree.ids.insert(id.to_string(), pos);
    }
}

/// What an id names.
#[derive(Clone)]
enum Target {
    Task(usize),
    Group(String),
}

/// Resolve `depends_on`, `edges` and switch targets into each task's `upstream`, then
/// check for self-loops and cycles.
fn resolve(p: &mut Problems, tree: &mut Tree, edges: &[(String, Pos)]) {
    let task_index: HashMap<String, usize> = tree
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.task.task_id.clone(), i))
        .collect();
    let group_ids: HashSet<String> = tree.groups.iter().map(|g| g.group_id.clone()).collect();
    let lookup = |id: &str| -> Option<Target> {
        if let Some(&i) = task_index.get(id) {
            Some(Target::Task(i))
        } else if group_ids.contains(id) {
            Some(Target::Group(id.to_string()))
        } else {
            None
        }
    };
    // Inside a group a short id names a sibling first, else it is a full id.
    let in_scope = |scope: Option<&str>, id: &str| -> Option<(String, Target)> {
        if let Some(g) = scope {
            let sibling = format!("{g}.{id}");
            if let Some(t) = lookup(&sibling) {
                return Some((sibling, t));
            }
        }
        lookup(id).map(|t| (id.to_string(), t))
    };

    // Every dependency as (upstream, downstream, where it was written).
    let mut pending: Vec<(Target, Target, Pos)> = Vec::new();
    for (i, parsed) in tree.tasks.iter().enumerate() {
        let me = &parsed.task.task_id;
        for (id, pos) in &parsed.depends_on {
            match in_scope(parsed.group.as_deref(), id) {
                Some((_, up)) => pending.push((up, Target::Task(i), *pos)),
                None => p.add(
                    *pos,
                    format!(
                        "unknown task '{id}' in depends_on of '{me}'{}",
                        check::suggestion(id, task_index.keys().map(String::as_str))
                    ),
                ),
            }
        }
    }
    for (text, pos) in edges {
        match parse_chain(text) {
            Err(message) => p.add(*pos, format!("invalid edge '{text}': {message}")),
            Ok(links) => {
                for (up_ids, down_ids) in links {
                    for up in &up_ids {
                        for down in &down_ids {
                            let (Some(u), Some(d)) = (lookup(up), lookup(down)) else {
                                continue;
                            };
                            pending.push((u, d, *pos));
                        }
                    }
                    for id in up_ids.iter().chain(&down_ids) {
                        if lookup(id).is_none() {
                            p.add(
                                *pos,
                                format!(
                                    "unknown task '{id}' in edges{}",
                                    check::suggestion(id, task_index.keys().map(String::as_str))
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    // Switch targets are stored as full ids (a group id stays a group id).
    for parsed in &mut tree.tasks {
        let me = parsed.task.task_id.clone();
        if let crate::model::TaskKind::Switch { cases } = &mut parsed.task.kind {
            for (case, named) in cases.iter_mut().zip(&parsed.switch_targets) {
                case.then = named
                    .iter()
                    .filter_map(|(id, pos)| match in_scope(parsed.group.as_deref(), id) {
                        Some((full, _)) => Some(full),
                        None => {
                            p.add(*pos, format!("unknown task '{id}' in switch of '{me}'"));
                            None
                        }
                    })
                    .collect();
            }
        }
    }

    // A link naming a group means the group's roots or leaves, and those depend on the links
    // inside the group. So links are applied innermost first (by the deepest group holding
    // both ends), task-to-task before group links at the same depth, and a group's roots and
    // leaves are read from the links applied so far.
    let prefixes = |id: &str| -> Vec<String> {
        let parts: Vec<&str> = id.split('.').collect();
        (1..=parts.len()).map(|n| parts[..n].join(".")).collect()
    };
    let containers = |t: &Target| -> Vec<String> {
        match t {
            Target::Task(i) => tree.tasks[*i]
                .group
                .as_deref()
                .map(prefixes)
                .unwrap_or_default(),
            Target::Group(g) => prefixes(g),
        }
    };
    let mut ordered: Vec<(usize, bool, &Target, &Target, Pos)> = pending
        .iter()
        .map(|(u, d, pos)| {
            let (cu, cd) = (containers(u), containers(d));
            let depth = cu.iter().zip(&cd).take_while(|(a, b)| a == b).count();
            let group_link = matches!(u, Target::Group(_)) || matches!(d, Target::Group(_));
            (depth, group_link, u, d, *pos)
        })
        .collect();
    ordered.sort_by_key(|(depth, group_link, ..)| (std::cmp::Reverse(*depth), *group_link));

    let members: HashMap<String, Vec<usize>> = tree
        .groups
        .iter()
        .map(|g| {
            let inside = g.tasks.iter().filter_map(|t| task_index.get(t).copied());
            (g.group_id.clone(), inside.collect())
        })
        .collect();
    let mut upstream: Vec<Vec<usize>> = vec![Vec::new(); tree.tasks.len()];
    for (_, _, u, d, pos) in ordered {
        let ups = match u {
            Target::Task(i) => vec![*i],
            Target::Group(g) => {
                let inside = members.get(g).map(Vec::as_slice).unwrap_or_default();
                inside
                    .iter()
                    .copied()
                    .filter(|t| !inside.iter().any(|d| upstream[*d].contains(t)))
                    .collect()
            }
        };
        let downs: Vec<usize> = match d {
            Target::Task(i) => vec![*i],
            Target::Group(g) => {
                let inside = members.get(g).map(Vec::as_slice).unwrap_or_default();
                inside
                    .iter()
                    .copied()
                    .filter(|t| !upstream[*t].iter().any(|u| inside.contains(u)))
                    .collect()
            }
        };
        for &up in &ups {
            for &down in &downs {
                if up == down {
                    p.add(
                        pos,
                        format!("task '{}' depends on itself", tree.tasks[up].task.task_id),
                    );
                } else if !upstream[down].contains(&up) {
                    upstream[down].push(up);
                }
            }
        }
    }
    let ids: Vec<String> = tree.tasks.iter().map(|t| t.task.task_id.clone()).collect();
    for (parsed, ups) in tree.tasks.iter_mut().zip(&upstream) {
        parsed.task.upstream = ups.iter().map(|&u| ids[u].clone()).collect();
    }

    let flat: Vec<crate::model::Task> = tree.tasks.iter().map(|t| t.task.clone()).collect();
    if let Some(cycle) = find_cycle(&flat) {
        let at = cycle
            .first()
            .and_then(|id| task_index.get(id))
            .map_or(Pos::START, |&i| tree.tasks[i].pos);
        p.add(at, format!("cycle: {}", cycle.join(" -> ")));
    }
}

/// One link of a chain: every id on the left is upstream of every id on the right.
type Link = (Vec<String>, Vec<String>);

/// Split `a >> b >> [c, d] << e` into links, as Airflow's bitshift operators mean them.
fn parse_chain(text: &str) -> Result<Vec<Link>, String> {
    let mut operands: Vec<Vec<String>> = Vec::new();
    let mut operators: Vec<bool> = Vec::new(); // true for `>>`
    let mut rest = text.trim();
    loop {
        let next = [rest.find(">>"), rest.find("<<")]
            .into_iter()
            .flatten()
            .min();
        let (operand, tail) = match next {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        operands.push(parse_operand(operand.trim())?);
        match tail {
            Some(t) => {
                operators.push(t.starts_with(">>"));
                rest = t[2..].trim_start();
            }
            None => break,
        }
    }
    if operators.is_empty() {
        return Err("expected ids joined by >> or <<, e.g. 'a >> b'".to_string());
    }
    Ok(operators
        .iter()
        .enumerate()
        .map(|(i, &right)| {
            let (l, r) = (operands[i].clone(), operands[i + 1].clone());
            if right { (l, r) } else { (r, l) }
        })
        .collect())
}

fn parse_operand(text: &str) -> Result<Vec<String>, String> {
    let ids: Vec<String> = match text.strip_prefix('[') {
        Some(inner) => {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| format!("'{text}' opens a list without closing it"))?;
            inner
                .split(',')
                .map(|s| s.trim().trim_matches(['"', '\'']).to_string())
                .filter(|s| !s.is_empty())
                .collect()
        }
        None => vec![text.trim_matches(['"', '\'']).to_string()],
    };
    if ids.is_empty() || ids.iter().any(String::is_empty) {
        return Err("an operand of >> or << is empty".to_string());
    }
    if let Some(bad) = ids.iter().find(|id| {
        id.chars()
            .any(|c| !(c.is_ascii_alphanumeric() || "_-.".contains(c)))
    }) {
        return Err(format!("'{bad}' is not a task or group id"));
    }
    Ok(ids)
}
