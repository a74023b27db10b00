//! The read models pages need beyond `/api/v2`, each one request: the recent runs and next run
//! of a page of DAGs, a DAG's structure (tasks, groups, edges) for the grid and the graph, the
//! grid itself (recent runs × task instances, mapped tasks summed up), the DAG file's text,
//! the components' health, and a task instance's arguments rendered with its context.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use dag::mapping::Expansion;
use dag::template::{self, TemplateContext};
use dag::{Dag, Schedule, Task, TaskKind, TaskState};
use serde::Serialize;
use serde_json::Value;
use store::{DagFilter, RunFilter, RunRecord, TaskInstanceFilter, TaskInstanceRecord};

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryPairs;
use crate::routes::dags::dag_record;
use crate::routes::task_instances::one_instance;

/// Runs shown in a DAG list row's strip.
const STRIP_RUNS: usize = 14;
/// Most DAGs one summary request may name.
const SUMMARY_MAX: usize = 100;
/// Runs in the grid by default, and at most.
const GRID_RUNS: i64 = 25;
const GRID_RUNS_MAX: i64 = 100;
/// A component is healthy if it beat within this long.
const HEALTHY_WITHIN: chrono::Duration = chrono::Duration::seconds(30);

/// A run as the pages show it.
#[derive(Debug, Serialize)]
pub struct RunBrief {
    pub run_id: String,
    pub state: &'static str,
    pub run_type: &'static str,
    pub logical_date: Option<DateTime<Utc>>,
    pub queued_at: DateTime<Utc>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
}

impl From<&RunRecord> for RunBrief {
    fn from(run: &RunRecord) -> RunBrief {
        RunBrief {
            run_id: run.run_id.clone(),
            state: run.state.as_str(),
            run_type: run.run_type.as_str(),
            logical_date: run.logical_date,
            queued_at: run.queued_at,
            start_date: run.start_date,
            end_date: run.end_date,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DagSummary {
    /// Oldest first, the newest last.
    pub recent_runs: Vec<RunBrief>,
    /// When the next scheduled run is due, if the schedule has one.
    pub next_run_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct DagSummaries {
    pub dags: BTreeMap<String, DagSummary>,
}

/// `GET /ui/dags/summary?dag_ids=a,b`: recent runs and next run of the listed DAGs.
pub async fn dag_summaries(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> ApiResult<Json<DagSummaries>> {
    caller.require(Role::Viewer)?;
    let ids = query.all("dag_ids");
    if ids.len() > SUMMARY_MAX {
        return Err(ApiError::invalid(
            &["query", "dag_ids"],
            format!("At most {SUMMARY_MAX} DAGs per request"),
            "too_long",
        ));
    }
    let mut dags = BTreeMap::new();
    if ids.is_empty() {
        return Ok(Json(DagSummaries { dags }));
    }
    // The DAGs in one read, each with where its schedule stands.
    let records = state
        .store
        .page_dags(&DagFilter {
            dag_ids: ids,
            ..Default::default()
        })
        .await?
        .items;
    let listed: Vec<String> = records.iter().map(|r| r.dag_id.clone()).collect();
    let mut recent: HashMap<String, Vec<RunRecord>> = HashMap::new();
    for run in state.store.recent_runs(&listed, STRIP_RUNS).await? {
        recent.entry(run.dag_id.clone()).or_default().push(run);
    }
    let now = Utc::now();
    for record in records {
        let mut runs = recent.remove(&record.dag_id).unwrap_or_default();
        runs.reverse();
        let next_run_at = if record.is_paused {
            None
        } else {
            next_run_at(&record.dag, record.last_scheduled_logical_date, now)
        };
        dags.insert(
            record.dag_id,
            DagSummary {
                recent_runs: runs.iter().map(RunBrief::from).collect(),
                next_run_at,
            },
        );
    }
    Ok(Json(DagSummaries { dags }))
}

/// When the next scheduled run is due: after the last scheduled one, or, when that is in the
/// past and the DAG does not catch up, the next tick from now.
fn next_run_at(
    dag: &Dag,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if matches!(dag.schedule, Schedule::None) {
        return None;
    }
    let next = dag::schedule::next_due_at(dag, last).ok().flatten()?;
    if next >= now || dag.catchup || matches!(dag.schedule, Schedule::Once) {
        return Some(next);
    }
    dag::schedule::next_due_at(dag, Some(now)).ok().flatten()
}

#[derive(Debug, Serialize)]
pub struct TaskNode {
    pub task_id: String,
    /// The id within its group.
    pub label: String,
    /// The innermost group holding the task.
    pub group_id: Option<String>,
    pub operator: String,
    pub is_mapped: bool,
    pub trigger_rule: &'static str,
    pub upstream: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct GroupNode {
    pub group_id: String,
    pub label: String,
    pub parent_id: Option<String>,
    pub tooltip: Option<String>,
}

/// What the grid rows and the graph are drawn from.
#[derive(Debug, Serialize)]
pub struct Structure {
    pub dag_id: String,
    pub version: String,
    /// In file order.
    pub tasks: Vec<TaskNode>,
    /// Outer groups before the groups inside them.
    pub groups: Vec<GroupNode>,
}

fn structure_of(dag: &Dag, version: &str) -> Structure {
    let mut groups: Vec<GroupNode> = dag
        .groups
        .iter()
        .map(|g| GroupNode {
            group_id: g.group_id.clone(),
            label: last_segment(&g.group_id).to_string(),
            parent_id: parent_of(&g.group_id, |id| {
                dag.groups.iter().any(|g| g.group_id == id)
            }),
            tooltip: g.tooltip.clone(),
        })
        .collect();
    groups.sort_by_key(|g| g.group_id.matches('.').count());
    let tasks = dag
        .tasks
        .iter()
        .map(|t| TaskNode {
            task_id: t.task_id.clone(),
            label: last_segment(&t.task_id).to_string(),
            group_id: parent_of(&t.task_id, |id| dag.groups.iter().any(|g| g.group_id == id)),
            operator: t.kind.operator().to_string(),
            is_mapped: t.expand.is_some(),
            trigger_rule: t.trigger_rule.as_str(),
            upstream: t.upstream.clone(),
        })
        .collect();
    Structure {
        dag_id: dag.dag_id.clone(),
        version: version.to_string(),
        tasks,
        groups,
    }
}

fn last_segment(id: &str) -> &str {
    id.rsplit_once('.').map_or(id, |(_, last)| last)
}

/// The longest proper dotted prefix of `id` that is a group.
fn parent_of(id: &str, is_group: impl Fn(&str) -> bool) -> Option<String> {
    let mut prefix = id;
    while let Some((head, _)) = prefix.rsplit_once('.') {
        if is_group(head) {
            return Some(head.to_string());
        }
        prefix = head;
    }
    None
}

/// `GET /ui/dags/{dag_id}/structure?version=`: the DAG's tasks, groups and edges, of its
/// current version or of the version a run used.
pub async fn structure(
    State(state): State<AppState>,
    caller: Caller,
    Path(dag_id): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<Structure>> {
    caller.require(Role::Viewer)?;
    let record = dag_record(&state, &dag_id).await?;
    let Some(version) = query.get("version").filter(|v| *v != record.version) else {
        return Ok(Json(structure_of(&record.dag, &record.version)));
    };
    let dag = state
        .store
        .get_dag_version(&dag_id, version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("DAG '{dag_id}' has no version '{version}'")))?;
    Ok(Json(structure_of(&dag, version)))
}

/// One cell of the grid: a task in a run, mapped instances summed up.
#[derive(Debug, Serialize)]
pub struct GridCell {
    pub task_id: String,
    /// The state shown: the most telling of its instances' states.
    pub state: &'static str,
    pub try_number: u32,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    /// How many mapped instances, for a mapped task; `None` otherwise.
    pub mapped_count: Option<usize>,
    /// Mapped instances by state.
    pub states: Option<BTreeMap<&'static str, usize>>,
}

#[derive(Debug, Serialize)]
pub struct GridRun {
    #[serde(flatten)]
    pub run: RunBrief,
    pub version: String,
    pub cells: Vec<GridCell>,
}

#[derive(Debug, Serialize)]
pub struct Grid {
    pub structure: Structure,
    /// Oldest first.
    pub runs: Vec<GridRun>,
    /// Whether older runs exist beyond this page (as far as a full page suggests).
    pub has_older: bool,
}

/// `GET /ui/dags/{dag_id}/grid?limit=25&offset=0`: the recent runs and their task instances.
pub async fn grid(
    State(state): State<AppState>,
    caller: Caller,
    Path(dag_id): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<Grid>> {
    caller.require(Role::Viewer)?;
    let record = dag_record(&state, &dag_id).await?;
    let limit = query.int("limit", 1, GRID_RUNS_MAX)?.unwrap_or(GRID_RUNS) as usize;
    let offset = query.int("offset", 0, i64::MAX)?.unwrap_or(0) as usize;
    let mut runs = state
        .store
        .list_runs(&RunFilter {
            dag_id: Some(dag_id.clone()),
            limit: Some(limit),
            offset,
            ..Default::default()
        })
        .await?;
    runs.reverse();
    // Every instance of the page's runs in one read, then each run's cells.
    let mut by_run: HashMap<i64, Vec<TaskInstanceRecord>> = HashMap::new();
    if !runs.is_empty() {
        let instances = state
            .store
            .list_task_instances(&TaskInstanceFilter {
                runs: runs.iter().map(|run| run.id).collect(),
                ..Default::default()
            })
            .await?;
        for ti in instances {
            by_run.entry(ti.run).or_default().push(ti);
        }
    }
    let grid_runs: Vec<GridRun> = runs
        .iter()
        .map(|run| GridRun {
            run: RunBrief::from(run),
            version: run.version.clone(),
            cells: cells(by_run.remove(&run.id).unwrap_or_default()),
        })
        .collect();
    Ok(Json(Grid {
        structure: structure_of(&record.dag, &record.version),
        has_older: grid_runs.len() == limit,
        runs: grid_runs,
    }))
}

/// How telling a state is when mapped instances are summed into one cell (highest wins), as
/// Airflow's grid orders them.
fn weight(state: TaskState) -> u8 {
    match state {
        TaskState::Failed => 10,
        TaskState::UpstreamFailed => 9,
        TaskState::UpForRetry => 8,
        TaskState::UpForReschedule => 7,
        TaskState::Running => 6,
        TaskState::Queued => 5,
        TaskState::Scheduled => 4,
        TaskState::None => 3,
        TaskState::Removed => 2,
        TaskState::Skipped => 1,
        TaskState::Success => 0,
    }
}

fn cells(mut instances: Vec<TaskInstanceRecord>) -> Vec<GridCell> {
    instances.sort_by(|a, b| {
        a.task_id
            .cmp(&b.task_id)
            .then(a.map_index.cmp(&b.map_index))
    });
    let mut cells: Vec<GridCell> = Vec::new();
    for ti in instances {
        let mapped = ti.map_index >= 0;
        match cells.last_mut() {
            Some(cell) if cell.task_id == ti.task_id && mapped => {
                let states = cell.states.get_or_insert_with(BTreeMap::new);
                *states.entry(ti.state.as_str()).or_default() += 1;
                cell.mapped_count = Some(cell.mapped_count.unwrap_or(0) + 1);
                if weight(ti.state) > weight(parse_state(cell.state)) {
                    cell.state = ti.state.as_str();
                }
                cell.try_number = cell.try_number.max(ti.try_number);
                cell.start_date = earliest(cell.start_date, ti.start_date);
                cell.end_date = latest(cell.end_date, ti.end_date);
            }
            _ => cells.push(GridCell {
                task_id: ti.task_id.clone(),
                state: ti.state.as_str(),
                try_number: ti.try_number,
                start_date: ti.start_date,
                end_date: ti.end_date,
                mapped_count: mapped.then_some(1),
                states: mapped.then(|| BTreeMap::from([(ti.state.as_str(), 1)])),
            }),
        }
    }
    cells
}

fn parse_state(text: &str) -> TaskState {
    TaskState::ALL
        .into_iter()
        .find(|s| s.as_str() == text)
        .unwrap_or(TaskState::None)
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn latest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[derive(Debug, Serialize)]
pub struct Code {
    pub fileloc: String,
    /// The file's text, or `None` when this server cannot read it.
    pub content: Option<String>,
    /// Why there is no text.
    pub error: Option<String>,
}

/// `GET /ui/dags/{dag_id}/code`: the text of the DAG's file, as this server reads it now.
pub async fn code(
    State(state): State<AppState>,
    caller: Caller,
    Path(dag_id): Path<String>,
) -> ApiResult<Json<Code>> {
    caller.require(Role::Viewer)?;
    let record = dag_record(&state, &dag_id).await?;
    let (content, error) = match tokio::fs::read_to_string(&record.fileloc).await {
        Ok(text) => (Some(text), None),
        Err(err) => (
            None,
            Some(format!(
                "This API server cannot read {}: {err}",
                record.fileloc
            )),
        ),
    };
    Ok(Json(Code {
        fileloc: record.fileloc,
        content,
        error,
    }))
}

#[derive(Debug, Serialize)]
pub struct ComponentHealth {
    pub status: &'static str,
    pub latest_heartbeat: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct Health {
    pub scheduler: ComponentHealth,
    pub worker: ComponentHealth,
}

/// `GET /ui/health`: the scheduler's and the workers' newest heartbeats.
pub async fn health(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Health>> {
    caller.require(Role::Viewer)?;
    let now = Utc::now();
    let read = async |component: &str| -> ApiResult<ComponentHealth> {
        let beat = state.store.latest_heartbeat(component).await?;
        Ok(ComponentHealth {
            status: match beat {
                Some(at) if now - at <= HEALTHY_WITHIN => "healthy",
                _ => "unhealthy",
            },
            latest_heartbeat: beat,
        })
    };
    Ok(Json(Health {
        scheduler: read("scheduler").await?,
        worker: read("worker").await?,
    }))
}

/// One templated argument of a task instance: as the DAG file has it, and as rendered for
/// this instance.
#[derive(Debug, Serialize, PartialEq)]
pub struct RenderedField {
    /// Airflow's name where there is one (`bash_command`, `op_kwargs.x`), else the spec's key.
    pub name: String,
    pub template: Value,
    /// `None` when it did not render (`error`) or was left as written (`note`).
    pub rendered: Option<Value>,
    pub error: Option<String>,
    pub note: Option<String>,
}

/// What the rendered-templates tab shows.
#[derive(Debug, Serialize)]
pub struct Rendered {
    pub task_id: String,
    pub map_index: i32,
    pub try_number: u32,
    /// How the values were rendered.
    pub note: String,
    pub fields: Vec<RenderedField>,
}

/// `GET /ui/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/rendered?map_index=`: the task's
/// templated arguments rendered with this instance's context (the run's params, conf, dates
/// and XComs, and a mapped instance's arguments), from the DAG version the run used. Runs keep
/// no copy of what a try rendered, so this renders on request; variables and connections are
/// opened only by a try, so arguments that read them are shown as written.
pub async fn rendered(
    State(state): State<AppState>,
    caller: Caller,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    query: QueryPairs,
) -> ApiResult<Json<Rendered>> {
    caller.require(Role::Viewer)?;
    let map_index = query
        .int("map_index", -1, i64::from(i32::MAX))?
        .unwrap_or(-1) as i32;
    let (ti, run) = one_instance(&state, &dag_id, &run_id, &task_id, map_index).await?;
    let dag = match state.store.get_dag_version(&dag_id, &run.version).await? {
        Some(dag) => dag,
        None => dag_record(&state, &dag_id).await?.dag,
    };
    let task = dag.task(&task_id).ok_or_else(|| {
        ApiError::not_found(format!(
            "Task '{task_id}' is not in the version of DAG '{dag_id}' that run '{run_id}' used"
        ))
    })?;
    let xcoms = state.store.list_xcoms(run.id, None).await?;
    let try_number = ti.try_number.max(1);
    let ctx = run.template_context(&dag, &task_id, map_index, try_number, &xcoms);
    Ok(Json(Rendered {
        task_id,
        map_index,
        try_number,
        note: "Rendered now with this instance's context: the run's params and conf, its dates, \
               its XComs as they are now, and a mapped instance's arguments."
            .to_string(),
        fields: rendered_fields(task, ctx),
    }))
}

/// How a field's strings render: as text (a command) or as data (a lone `{{ expr }}` keeps
/// its value's type, as kwargs and operator specs do).
#[derive(Clone, Copy)]
enum RenderAs {
    Text,
    Data,
}

/// The task's templated arguments rendered with `ctx`; a mapped instance's `expand` arguments
/// come first and are bound into `ctx` for the others, as a try binds them.
pub fn rendered_fields(task: &Task, mut ctx: TemplateContext) -> Vec<RenderedField> {
    let mut fields = Vec::new();
    if let (Some(expand), Ok(index)) = (&task.expand, usize::try_from(ctx.map_index)) {
        let template = Value::Object(expand.clone());
        let bound = match Expansion::of(task, &ctx) {
            Some(Ok(expansion)) => expansion.bind(index).ok_or_else(|| {
                format!(
                    "map index {index} is out of range: expand yields {} instances now",
                    expansion.len()
                )
            }),
            Some(Err(message)) => Err(message),
            None => Ok(BTreeMap::new()),
        };
        match bound {
            Ok(bound) => {
                fields.push(RenderedField {
                    name: "expand".to_string(),
                    template,
                    rendered: Some(Value::Object(bound.clone().into_iter().collect())),
                    error: None,
                    note: None,
                });
                ctx.extra.extend(bound);
            }
            Err(message) => fields.push(RenderedField {
                name: "expand".to_string(),
                template,
                rendered: None,
                error: Some(message),
                note: None,
            }),
        }
    }
    for (name, template, how) in kind_fields(&task.kind) {
        fields.push(render_field(name, template, how, &ctx));
    }
    for (key, value) in &task.env {
        fields.push(render_field(
            format!("env.{key}"),
            Value::String(value.clone()),
            RenderAs::Text,
            &ctx,
        ));
    }
    fields
}

/// The templated arguments of a task's kind, by name.
fn kind_fields(kind: &TaskKind) -> Vec<(String, Value, RenderAs)> {
    match kind {
        TaskKind::Bash { command } => vec![(
            "bash_command".to_string(),
            Value::String(command.clone()),
            RenderAs::Text,
        )],
        TaskKind::Python(py) => py
            .kwargs
            .iter()
            .map(|(name, value)| (format!("op_kwargs.{name}"), value.clone(), RenderAs::Data))
            .collect(),
        TaskKind::Empty | TaskKind::Switch { .. } => Vec::new(),
        other => {
            // A spec or a probe: each of its keys, without the kind's tag and unset keys.
            let mut map = match serde_json::to_value(other) {
                Ok(Value::Object(map)) => map,
                _ => return Vec::new(),
            };
            map.remove("kind");
            if map.len() == 1
                && let Some(Value::Object(spec)) = map.remove("spec")
            {
                map = spec;
            }
            map.into_iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(name, value)| (name, value, RenderAs::Data))
                .collect()
        }
    }
}

fn render_field(
    name: String,
    template: Value,
    how: RenderAs,
    ctx: &TemplateContext,
) -> RenderedField {
    let mut field = RenderedField {
        name,
        template,
        rendered: None,
        error: None,
        note: None,
    };
    if template::reads_value(&field.template).secrets() {
        field.note = Some(
            "It reads variables or connections, which only a try opens: shown as written."
                .to_string(),
        );
        return field;
    }
    let result = match (&field.template, how) {
        (Value::String(text), RenderAs::Text) => template::render(text, ctx).map(Value::String),
        (value, _) => template::render_value(value, ctx),
    };
    match result {
        Ok(value) => field.rendered = Some(value),
        Err(err) => field.error = Some(err.to_string()),
    }
    field
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(dag: &Dag, task_id: &str, map_index: i32) -> TemplateContext {
        TemplateContext {
            dag_id: dag.dag_id.clone(),
            task_id: task_id.to_string(),
            run_id: "manual__1".to_string(),
            run_type: "manual".to_string(),
            params: BTreeMap::from([("who".to_string(), Value::from("world"))]),
            try_number: 1,
            map_index,
            ..TemplateContext::default()
        }
    }

    #[test]
    fn a_tasks_templates_render_with_its_instances_context() {
        let dag = dag::parse_dag_str(
            "rendered.yaml",
            r#"
params: {who: {default: world}}
tasks:
  - id: greet
    bash: "echo hello {{ params.who }} from {{ run_id }}"
    env: {TARGET: "{{ params.who }}", TOKEN: "{{ var.value.token }}"}
  - id: each
    bash: "echo item {{ item }}"
    expand: {item: [a, b, c]}
  - id: broken
    bash: "echo {{ no_such_name }}"
"#,
        )
        .expect("the DAG parses");
        let greet = rendered_fields(
            dag.task("greet").expect("greet"),
            context(&dag, "greet", -1),
        );
        assert_eq!(greet[0].name, "bash_command");
        assert_eq!(
            greet[0].rendered,
            Some(Value::from("echo hello world from manual__1"))
        );
        let target = greet.iter().find(|f| f.name == "env.TARGET").expect("env");
        assert_eq!(target.rendered, Some(Value::from("world")));
        // Secrets are opened only by a try: the field is shown as written.
        let token = greet.iter().find(|f| f.name == "env.TOKEN").expect("env");
        assert_eq!(token.rendered, None);
        assert!(token.note.is_some());

        let each = rendered_fields(dag.task("each").expect("each"), context(&dag, "each", 1));
        assert_eq!(each[0].name, "expand");
        assert_eq!(each[0].rendered, Some(serde_json::json!({"item": "b"})));
        assert_eq!(each[1].rendered, Some(Value::from("echo item b")));
        let beyond = rendered_fields(dag.task("each").expect("each"), context(&dag, "each", 7));
        assert!(
            beyond[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("out of range"))
        );

        let broken = rendered_fields(
            dag.task("broken").expect("broken"),
            context(&dag, "broken", -1),
        );
        assert!(broken[0].rendered.is_none());
        assert!(
            broken[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("no_such_name"))
        );
    }
}
