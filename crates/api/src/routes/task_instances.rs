//! Task instances of a run: list (`~` for any DAG or run), get (by map index), mark
//! (patch state), clear, logs by try, XCom entries.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use dag::TaskState;
use store::{RunRecord, TaskInstanceFilter, TaskInstanceOrder, TaskInstanceRecord, TimeRange};

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, QueryPairs, path_int, sort};
use crate::models::*;
use crate::routes::dags::{count, dag_record};
use crate::routes::runs::{clear_list, clearable, run_record};

fn parse_task_state(text: &str, loc: &[&str]) -> ApiResult<TaskState> {
    if text == "no_status" || text == "none" {
        return Ok(TaskState::None);
    }
    TaskState::ALL
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| ApiError::invalid(loc, format!("'{text}' is not a task state"), "enum"))
}

/// The filter of the task instances under a path: of one run, of one DAG's runs, or of every
/// run of every DAG (`~`), checking that the DAG and the run named exist.
async fn scope(state: &AppState, dag_id: &str, run_id: &str) -> ApiResult<TaskInstanceFilter> {
    let mut filter = TaskInstanceFilter::default();
    if dag_id != "~" {
        dag_record(state, dag_id).await?;
        filter.dag_id = Some(dag_id.to_string());
        if run_id != "~" {
            filter.runs = vec![run_record(state, dag_id, run_id).await?.id];
        }
    } else if run_id != "~" {
        filter.run_id = Some(run_id.to_string());
    }
    Ok(filter)
}

/// One page of the task instances `filter` lists, with the count of every match.
async fn instance_page(
    state: &AppState,
    filter: &TaskInstanceFilter,
) -> ApiResult<TaskInstanceCollectionResponse> {
    let listed = state.store.page_task_instances(filter).await?;
    Ok(TaskInstanceCollectionResponse {
        task_instances: listed
            .items
            .iter()
            .map(|(ti, run)| ti_response(ti, run))
            .collect(),
        total_entries: count(listed.total_entries),
    })
}

/// One task instance of a run by task id and map index, with its run; 404s that say which
/// part is missing.
pub(crate) async fn one_instance(
    state: &AppState,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    map_index: i32,
) -> ApiResult<(TaskInstanceRecord, RunRecord)> {
    let record = dag_record(state, dag_id).await?;
    let run = run_record(state, dag_id, run_id).await?;
    let tis = state
        .store
        .list_task_instances(&TaskInstanceFilter {
            runs: vec![run.id],
            task_id: Some(task_id.to_string()),
            ..Default::default()
        })
        .await?;
    if let Some(ti) = tis.iter().find(|ti| ti.map_index == map_index) {
        return Ok((ti.clone(), run));
    }
    if map_index == -1 && !tis.is_empty() {
        return Err(ApiError::not_found(format!(
            "Task instance '{task_id}' is mapped, add the map_index value to the URL"
        )));
    }
    if record.dag.task(task_id).is_none() && tis.is_empty() {
        return Err(ApiError::not_found(format!(
            "Task '{task_id}' not found in DAG '{dag_id}'"
        )));
    }
    Err(ApiError::not_found(format!(
        "Task instance with dag_id: `{dag_id}`, run_id: `{run_id}`, task_id: `{task_id}` \
         and map_index: `{map_index}` was not found"
    )))
}

/// The values of a repeated integer query parameter that a column of type `T` can hold, and
/// whether any was asked for: a value outside the column's range matches nothing (as in
/// Airflow, where such a filter finds no row), and one that is no integer is a 422.
fn ints<T: TryFrom<i64>>(query: &QueryPairs, key: &str) -> ApiResult<(Vec<T>, bool)> {
    let asked = query.all(key);
    let values = asked
        .iter()
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                ApiError::invalid(
                    &["query", key],
                    "Input should be a valid integer",
                    "int_parsing",
                )
            })
        })
        .collect::<ApiResult<Vec<i64>>>()?;
    let held = values
        .into_iter()
        .filter_map(|v| T::try_from(v).ok())
        .collect();
    Ok((held, !asked.is_empty()))
}

/// Task instances of a run (`~` for any DAG or run).
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances", tag = "Task Instance",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path),
        ("limit" = Option<i64>, Query, minimum = 0), ("offset" = Option<i64>, Query, minimum = 0),
        ("state" = Option<Vec<String>>, Query), ("task_id" = Option<String>, Query),
        ("map_index" = Option<Vec<i64>>, Query), ("pool" = Option<Vec<String>>, Query),
        ("queue" = Option<Vec<String>>, Query), ("try_number" = Option<Vec<i64>>, Query),
        ("task_display_name_pattern" = Option<String>, Query),
        ("order_by" = Option<String>, Query)),
    responses((status = 200, body = TaskInstanceCollectionResponse)))]
pub async fn list_task_instances(
    State(state): State<AppState>,
    caller: Caller,
    Path((dag_id, run_id)): Path<(String, String)>,
    query: QueryPairs,
) -> ApiResult<Json<TaskInstanceCollectionResponse>> {
    caller.require(Role::Viewer)?;
    let page = query.page()?;
    let states = query
        .all("state")
        .iter()
        .map(|s| parse_task_state(s, &["query", "state"]))
        .collect::<ApiResult<Vec<_>>>()?;
    let (map_indexes, map_index_asked) = ints::<i32>(&query, "map_index")?;
    let (try_numbers, try_number_asked) = ints::<u32>(&query, "try_number")?;
    let order = sort(
        query.get("order_by"),
        "map_index",
        &[
            ("id", TaskInstanceOrder::Id),
            ("map_index", TaskInstanceOrder::MapIndex),
            ("task_id", TaskInstanceOrder::TaskId),
            ("state", TaskInstanceOrder::State),
            ("start_date", TaskInstanceOrder::StartDate),
            ("end_date", TaskInstanceOrder::EndDate),
            ("try_number", TaskInstanceOrder::TryNumber),
            ("priority_weight", TaskInstanceOrder::PriorityWeight),
            ("pool", TaskInstanceOrder::Pool),
            ("queue", TaskInstanceOrder::Queue),
            ("run_id", TaskInstanceOrder::RunId),
            ("logical_date", TaskInstanceOrder::LogicalDate),
        ],
    )?;
    let filter = TaskInstanceFilter {
        task_id: query.get("task_id").map(str::to_string),
        task_id_pattern: query.get("task_display_name_pattern").map(str::to_string),
        states,
        map_indexes,
        try_numbers,
        pools: query.all("pool"),
        queues: query.all("queue"),
        order,
        limit: Some(page.limit),
        offset: page.offset,
        ..scope(&state, &dag_id, &run_id).await?
    };
    if (map_index_asked && filter.map_indexes.is_empty())
        || (try_number_asked && filter.try_numbers.is_empty())
    {
        // Only values no instance can have.
        return Ok(Json(TaskInstanceCollectionResponse {
            task_instances: Vec::new(),
            total_entries: 0,
        }));
    }
    Ok(Json(instance_page(&state, &filter).await?))
}

/// One unmapped task instance.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}", tag = "Task Instance",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path)),
    responses((status = 200, body = TaskInstanceResponse)))]
pub async fn get_task_instance(
    State(state): State<AppState>,
    caller: Caller,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
) -> ApiResult<Json<TaskInstanceResponse>> {
    caller.require(Role::Viewer)?;
    let (ti, run) = one_instance(&state, &dag_id, &run_id, &task_id, -1).await?;
    Ok(Json(ti_response(&ti, &run)))
}

/// One mapped task instance.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}", tag = "Task Instance",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path),
        ("map_index" = i32, Path)),
    responses((status = 200, body = TaskInstanceResponse)))]
pub async fn get_mapped_task_instance(
    State(state): State<AppState>,
    caller: Caller,
    Path((dag_id, run_id, task_id, map_index)): Path<(String, String, String, String)>,
) -> ApiResult<Json<TaskInstanceResponse>> {
    caller.require(Role::Viewer)?;
    let map_index = path_int(&map_index, "map_index")?;
    let (ti, run) = one_instance(&state, &dag_id, &run_id, &task_id, map_index).await?;
    Ok(Json(ti_response(&ti, &run)))
}

/// Every mapped instance of a task in a run.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/listMapped", tag = "Task Instance",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path),
        ("limit" = Option<i64>, Query, minimum = 0), ("offset" = Option<i64>, Query, minimum = 0)),
    responses((status = 200, body = TaskInstanceCollectionResponse)))]
pub async fn list_mapped(
    State(state): State<AppState>,
    caller: Caller,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    query: QueryPairs,
) -> ApiResult<Json<TaskInstanceCollectionResponse>> {
    caller.require(Role::Viewer)?;
    let page = query.page()?;
    let filter = TaskInstanceFilter {
        task_id: Some(task_id.clone()),
        mapped: Some(true),
        limit: Some(page.limit),
        offset: page.offset,
        ..scope(&state, &dag_id, &run_id).await?
    };
    let listed = instance_page(&state, &filter).await?;
    if listed.total_entries == 0 {
        return Err(ApiError::not_found(format!(
            "Task id {task_id} is not mapped"
        )));
    }
    Ok(Json(listed))
}

async fn patch(
    state: &AppState,
    caller: &Caller,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    map_index: i32,
    body: PatchTaskInstanceBody,
) -> ApiResult<Json<TaskInstanceCollectionResponse>> {
    caller.require(Role::User)?;
    let (ti, run) = one_instance(state, dag_id, run_id, task_id, map_index).await?;
    let Some(text) = body.new_state else {
        return Ok(Json(TaskInstanceCollectionResponse {
            task_instances: vec![ti_response(&ti, &run)],
            total_entries: 1,
        }));
    };
    let target = match text.as_str() {
        "success" => TaskState::Success,
        "failed" => TaskState::Failed,
        "skipped" => TaskState::Skipped,
        other => {
            return Err(ApiError::invalid(
                &["body", "new_state"],
                format!("Input should be 'success', 'failed' or 'skipped', not '{other}'"),
                "enum",
            ));
        }
    };
    let mut changed = Vec::new();
    if ti.state != target {
        changed.push(
            state
                .store
                .set_task_instance_state(ti.id, target, Utc::now())
                .await?,
        );
    }
    if body.include_downstream || body.include_upstream {
        let record = dag_record(state, dag_id).await?;
        let related = related_tasks(
            &record.dag,
            task_id,
            body.include_upstream,
            body.include_downstream,
        );
        for other in state.store.task_instances(run.id).await? {
            if related.contains(&other.task_id) && other.state != target {
                changed.push(
                    state
                        .store
                        .set_task_instance_state(other.id, target, Utc::now())
                        .await?,
                );
            }
        }
    }
    let run = run_record(state, dag_id, run_id).await?;
    Ok(Json(TaskInstanceCollectionResponse {
        total_entries: changed.len() as i64,
        task_instances: changed.iter().map(|ti| ti_response(ti, &run)).collect(),
    }))
}

/// Tasks upstream and/or downstream of `task_id` (not itself), transitively.
fn related_tasks(
    dag: &dag::Dag,
    task_id: &str,
    upstream: bool,
    downstream: bool,
) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![task_id.to_string()];
    while let Some(current) = stack.pop() {
        for task in &dag.tasks {
            let next = if downstream && task.upstream.contains(&current) {
                Some(task.task_id.clone())
            } else {
                None
            };
            let prev = if upstream && task.task_id == current {
                task.upstream.clone()
            } else {
                Vec::new()
            };
            for id in next.into_iter().chain(prev) {
                if id != task_id && found.insert(id.clone()) {
                    stack.push(id);
                }
            }
        }
    }
    found
}

/// Mark an unmapped task instance `success`, `failed` or `skipped`.
#[utoipa::path(patch, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}", tag = "Task Instance",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path),
        ("map_index" = Option<i32>, Query), ("update_mask" = Option<Vec<String>>, Query)),
    request_body = PatchTaskInstanceBody,
    responses((status = 200, body = TaskInstanceCollectionResponse)))]
pub async fn patch_task_instance(
    State(state): State<AppState>,
    caller: Caller,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    query: QueryPairs,
    Body(body): Body<PatchTaskInstanceBody>,
) -> ApiResult<Json<TaskInstanceCollectionResponse>> {
    let map_index = query
        .int("map_index", -1, i64::from(i32::MAX))?
        .unwrap_or(-1) as i32;
    patch(&state, &caller, &dag_id, &run_id, &task_id, map_index, body).await
}

/// Mark a mapped task instance.
#[utoipa::path(patch, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}", tag = "Task Instance",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path),
        ("map_index" = i32, Path), ("update_mask" = Option<Vec<String>>, Query)),
    request_body = PatchTaskInstanceBody,
    responses((status = 200, body = TaskInstanceCollectionResponse)))]
pub async fn patch_mapped_task_instance(
    State(state): State<AppState>,
    caller: Caller,
    Path((dag_id, run_id, task_id, map_index)): Path<(String, String, String, String)>,
    Body(body): Body<PatchTaskInstanceBody>,
) -> ApiResult<Json<TaskInstanceCollectionResponse>> {
    let map_index = path_int(&map_index, "map_index")?;
    patch(&state, &caller, &dag_id, &run_id, &task_id, map_index, body).await
}

/// Clear task instances so they run again. `dry_run` (the default) only lists them.
#[utoipa::path(post, path = "/api/v2/dags/{dag_id}/clearTaskInstances", tag = "Task Instance",
    params(("dag_id" = String, Path)),
    request_body = ClearTaskInstancesBody,
    responses((status = 200, body = TaskInstanceCollectionResponse)))]
pub async fn clear_task_instances(
    State(state): State<AppState>,
    caller: Caller,
    Path(dag_id): Path<String>,
    Body(body): Body<ClearTaskInstancesBody>,
) -> ApiResult<Json<TaskInstanceCollectionResponse>> {
    caller.require(Role::User)?;
    let record = dag_record(&state, &dag_id).await?;
    let runs: Vec<RunRecord> = match &body.dag_run_id {
        Some(run_id) => vec![run_record(&state, &dag_id, run_id).await?],
        None => {
            state
                .store
                .list_runs(&store::RunFilter {
                    dag_id: Some(dag_id.clone()),
                    run_after: TimeRange {
                        gte: body.start_date,
                        lte: body.end_date,
                        ..TimeRange::default()
                    },
                    ..Default::default()
                })
                .await?
        }
    };
    // Which (task, map index) pairs: the named ones (all if none named) plus their relatives.
    let mut named: Vec<(String, Option<i32>)> = Vec::new();
    for spec in body.task_ids.iter().flatten() {
        let (task_id, map_index) = match spec {
            TaskIdSpec::Id(id) => (id.clone(), None),
            TaskIdSpec::Mapped(id, index) => (id.clone(), Some(*index)),
        };
        if record.dag.task(&task_id).is_none() {
            return Err(ApiError::not_found(format!(
                "Task '{task_id}' not found in DAG '{dag_id}'"
            )));
        }
        named.push((task_id, map_index));
    }
    let mut tasks: BTreeSet<String> = named.iter().map(|(id, _)| id.clone()).collect();
    for (id, _) in &named {
        tasks.extend(related_tasks(
            &record.dag,
            id,
            body.include_upstream,
            body.include_downstream,
        ));
    }
    let mut affected = Vec::new();
    for run in &runs {
        let tis = state.store.task_instances(run.id).await?;
        let chosen: Vec<&TaskInstanceRecord> = tis
            .iter()
            .filter(|ti| {
                named.is_empty()
                    || named.iter().any(|(id, index)| {
                        *id == ti.task_id && index.is_none_or(|i| i == ti.map_index)
                    })
                    || (tasks.contains(&ti.task_id)
                        && !named.iter().any(|(id, _)| *id == ti.task_id))
            })
            .filter(|ti| {
                if body.only_running {
                    ti.state == TaskState::Running
                } else if body.only_failed {
                    matches!(ti.state, TaskState::Failed | TaskState::UpstreamFailed)
                } else {
                    clearable(ti.state)
                }
            })
            .collect();
        if chosen.is_empty() {
            continue;
        }
        if body.dry_run {
            affected.extend(chosen.iter().map(|ti| ti_response(ti, run)));
        } else {
            let clear = clear_list(&record.dag, &chosen);
            let cleared = state
                .store
                .clear_task_instances(run.id, &clear, Utc::now())
                .await?;
            affected.extend(cleared.iter().map(|ti| ti_response(ti, run)));
        }
    }
    Ok(Json(TaskInstanceCollectionResponse {
        total_entries: affected.len() as i64,
        task_instances: affected,
    }))
}

/// Lines a log page holds: a page of a long log is read and sent in a few milliseconds, and
/// `token` goes on from its last line.
const LOG_PAGE_LINES: usize = 2_000;
/// Lines `full_content=true` reads at most.
const LOG_FULL_LINES: usize = 100_000;

/// The log of one try, as structured lines, a page of at most 2,000 (`full_content`: up to
/// 100,000); `token` continues after the last line read. With `Accept:
/// application/x-ndjson`, one JSON object per line.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}", tag = "Task Instance",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path),
        ("try_number" = i64, Path, minimum = 0), ("map_index" = Option<i64>, Query),
        ("full_content" = Option<bool>, Query), ("token" = Option<String>, Query)),
    responses((status = 200, description = "The log lines",
        content((TaskInstancesLogResponse = "application/json"), (String = "application/x-ndjson")))))]
pub async fn get_log(
    State(state): State<AppState>,
    caller: Caller,
    Path((dag_id, run_id, task_id, try_number)): Path<(String, String, String, String)>,
    query: QueryPairs,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require(Role::Viewer)?;
    let try_number: u32 = path_int(&try_number, "try_number")?;
    let map_index = query
        .int("map_index", -1, i64::from(i32::MAX))?
        .unwrap_or(-1) as i32;
    let after: i64 = match query.get("token") {
        None | Some("") => 0,
        Some(token) => token
            .parse()
            .map_err(|_| ApiError::bad_request(format!("Invalid continuation token '{token}'")))?,
    };
    let (ti, _) = one_instance(&state, &dag_id, &run_id, &task_id, map_index).await?;
    if try_number > ti.try_number.max(1) {
        return Err(ApiError::not_found(format!(
            "Try {try_number} of task instance '{task_id}' does not exist (latest is {})",
            ti.try_number
        )));
    }
    let full = query.boolean("full_content")?.unwrap_or(false);
    let limit = if full { LOG_FULL_LINES } else { LOG_PAGE_LINES };
    let lines = state
        .store
        .read_log(ti.id, try_number, after, limit)
        .await?;
    let last = lines.last().map_or(after, |l| l.seq);
    let content: Vec<StructuredLogMessage> = lines
        .into_iter()
        .map(|line| StructuredLogMessage {
            timestamp: Some(line.timestamp),
            event: line.line,
            stream: line.stream.as_str().to_string(),
        })
        .collect();
    let wants_ndjson = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/x-ndjson"));
    if wants_ndjson {
        let mut body = String::new();
        for message in &content {
            body.push_str(&serde_json::to_string(message).map_err(ApiError::internal)?);
            body.push('\n');
        }
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            body,
        )
            .into_response());
    }
    Ok(Json(TaskInstancesLogResponse {
        content,
        continuation_token: Some(last.to_string()),
    })
    .into_response())
}

fn xcom_entry(run: &RunRecord, x: &store::XcomRecord) -> XComResponse {
    XComResponse {
        key: x.key.clone(),
        timestamp: x.timestamp,
        logical_date: run.logical_date,
        map_index: i64::from(x.map_index),
        task_id: x.task_id.clone(),
        dag_id: run.dag_id.clone(),
        run_id: run.run_id.clone(),
        dag_display_name: run.dag_id.clone(),
        task_display_name: x.task_id.clone(),
        run_after: run.logical_date.unwrap_or(run.queued_at),
    }
}

/// XCom entries of a task instance (`~` for every task of the run).
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries", tag = "XCom",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path),
        ("xcom_key" = Option<String>, Query), ("map_index" = Option<i64>, Query),
        ("limit" = Option<i64>, Query, minimum = 0), ("offset" = Option<i64>, Query, minimum = 0)),
    responses((status = 200, body = XComCollectionResponse)))]
pub async fn list_xcoms(
    State(state): State<AppState>,
    caller: Caller,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    query: QueryPairs,
) -> ApiResult<Json<XComCollectionResponse>> {
    caller.require(Role::Viewer)?;
    let page = query.page()?;
    let map_index = query.int("map_index", -1, i64::from(i32::MAX))?;
    let key = query.get("xcom_key");
    dag_record(&state, &dag_id).await?;
    let run = run_record(&state, &dag_id, &run_id).await?;
    let task_filter = (task_id != "~").then_some(task_id.as_str());
    let entries: Vec<store::XcomRecord> = state
        .store
        .list_xcoms(run.id, task_filter)
        .await?
        .into_iter()
        .filter(|x| map_index.is_none_or(|m| i64::from(x.map_index) == m))
        .filter(|x| key.is_none_or(|k| x.key == k))
        .collect();
    let total = entries.len() as i64;
    Ok(Json(XComCollectionResponse {
        xcom_entries: page
            .apply(entries)
            .iter()
            .map(|x| xcom_entry(&run, x))
            .collect(),
        total_entries: total,
    }))
}

/// One XCom entry with its value.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key}", tag = "XCom",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path),
        ("xcom_key" = String, Path), ("map_index" = Option<i64>, Query),
        ("deserialize" = Option<bool>, Query), ("stringify" = Option<bool>, Query)),
    responses((status = 200, body = XComResponseNative)))]
pub async fn get_xcom(
    State(state): State<AppState>,
    caller: Caller,
    Path((dag_id, run_id, task_id, key)): Path<(String, String, String, String)>,
    query: QueryPairs,
) -> ApiResult<Json<XComResponseNative>> {
    caller.require(Role::Viewer)?;
    let map_index = query
        .int("map_index", -1, i64::from(i32::MAX))?
        .unwrap_or(-1) as i32;
    query.boolean("deserialize")?;
    let stringify = query.boolean("stringify")?.unwrap_or(false);
    dag_record(&state, &dag_id).await?;
    let run = run_record(&state, &dag_id, &run_id).await?;
    let entry = state
        .store
        .list_xcoms(run.id, Some(&task_id))
        .await?
        .into_iter()
        .find(|x| x.key == key && x.map_index == map_index)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "XCom entry with key: `{key}` not found for task '{task_id}' (map_index {map_index})"
            ))
        })?;
    let value = if stringify {
        serde_json::Value::String(entry.value.to_string())
    } else {
        entry.value.clone()
    };
    Ok(Json(XComResponseNative {
        entry: xcom_entry(&run, &entry),
        value,
    }))
}
