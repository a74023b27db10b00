//! Task instances of a run: list (`~` for any DAG or run), get (by map index), mark
//! (patch state), clear, logs by try, XCom entries.

use std::collections::{BTreeSet, HashMap};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use dag::TaskState;
use store::{RunRecord, TaskInstanceFilter, TaskInstanceRecord};

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, QueryPairs, like, order, path_int};
use crate::models::*;
use crate::routes::dags::dag_record;
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

/// Instances of a run with their run, for `~` paths too.
async fn instances(
    state: &AppState,
    dag_id: &str,
    run_id: &str,
) -> ApiResult<Vec<(TaskInstanceRecord, RunRecord)>> {
    if dag_id != "~" {
        dag_record(state, dag_id).await?;
        if run_id != "~" {
            let run = run_record(state, dag_id, run_id).await?;
            let tis = state.store.task_instances(run.id).await?;
            return Ok(tis.into_iter().map(|ti| (ti, run.clone())).collect());
        }
    }
    let tis = state
        .store
        .list_task_instances(&TaskInstanceFilter {
            dag_id: (dag_id != "~").then(|| dag_id.to_string()),
            run_id: (run_id != "~").then(|| run_id.to_string()),
        })
        .await?;
    let mut runs: HashMap<i64, RunRecord> = HashMap::new();
    let mut out = Vec::with_capacity(tis.len());
    for ti in tis {
        let run = match runs.get(&ti.run) {
            Some(run) => run.clone(),
            None => match state.store.get_run_by_key(ti.run).await? {
                Some(run) => runs.entry(ti.run).or_insert(run).clone(),
                None => continue,
            },
        };
        out.push((ti, run));
    }
    Ok(out)
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
    let tis = state.store.task_instances(run.id).await?;
    if let Some(ti) = tis
        .iter()
        .find(|ti| ti.task_id == task_id && ti.map_index == map_index)
    {
        return Ok((ti.clone(), run));
    }
    if map_index == -1 && tis.iter().any(|ti| ti.task_id == task_id) {
        return Err(ApiError::not_found(format!(
            "Task instance '{task_id}' is mapped, add the map_index value to the URL"
        )));
    }
    if record.dag.task(task_id).is_none() && !tis.iter().any(|ti| ti.task_id == task_id) {
        return Err(ApiError::not_found(format!(
            "Task '{task_id}' not found in DAG '{dag_id}'"
        )));
    }
    Err(ApiError::not_found(format!(
        "Task instance with dag_id: `{dag_id}`, run_id: `{run_id}`, task_id: `{task_id}` \
         and map_index: `{map_index}` was not found"
    )))
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
    let ints = |key: &str| -> ApiResult<Vec<i64>> {
        query
            .all(key)
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
            .collect()
    };
    let map_indexes = ints("map_index")?;
    let tries = ints("try_number")?;
    let pools = query.all("pool");
    let queues = query.all("queue");
    let task_id = query.get("task_id");
    let pattern = query.get("task_display_name_pattern");
    let mut rows: Vec<(TaskInstanceRecord, RunRecord)> = instances(&state, &dag_id, &run_id)
        .await?
        .into_iter()
        .filter(|(ti, _)| states.is_empty() || states.contains(&ti.state))
        .filter(|(ti, _)| map_indexes.is_empty() || map_indexes.contains(&i64::from(ti.map_index)))
        .filter(|(ti, _)| tries.is_empty() || tries.contains(&i64::from(ti.try_number)))
        .filter(|(ti, _)| pools.is_empty() || pools.contains(&ti.pool))
        .filter(|(ti, _)| queues.is_empty() || queues.contains(&ti.queue))
        .filter(|(ti, _)| task_id.is_none_or(|t| ti.task_id == t))
        .filter(|(ti, _)| pattern.is_none_or(|p| like(p, &ti.task_id)))
        .collect();
    order(
        &mut rows,
        query.get("order_by"),
        "map_index",
        &[
            ("id", |a, b| a.0.id.cmp(&b.0.id)),
            ("map_index", |a, b| {
                (a.0.run, a.0.map_index, a.0.id).cmp(&(b.0.run, b.0.map_index, b.0.id))
            }),
            ("task_id", |a, b| a.0.task_id.cmp(&b.0.task_id)),
            ("state", |a, b| a.0.state.as_str().cmp(b.0.state.as_str())),
            ("start_date", |a, b| a.0.start_date.cmp(&b.0.start_date)),
            ("end_date", |a, b| a.0.end_date.cmp(&b.0.end_date)),
            ("try_number", |a, b| a.0.try_number.cmp(&b.0.try_number)),
            ("priority_weight", |a, b| {
                a.0.priority_weight.cmp(&b.0.priority_weight)
            }),
            ("pool", |a, b| a.0.pool.cmp(&b.0.pool)),
            ("queue", |a, b| a.0.queue.cmp(&b.0.queue)),
            ("run_id", |a, b| a.0.run_id.cmp(&b.0.run_id)),
            ("logical_date", |a, b| {
                a.1.logical_date.cmp(&b.1.logical_date)
            }),
        ],
    )?;
    let total = rows.len() as i64;
    Ok(Json(TaskInstanceCollectionResponse {
        task_instances: page
            .apply(rows)
            .iter()
            .map(|(ti, run)| ti_response(ti, run))
            .collect(),
        total_entries: total,
    }))
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
    let rows: Vec<(TaskInstanceRecord, RunRecord)> = instances(&state, &dag_id, &run_id)
        .await?
        .into_iter()
        .filter(|(ti, _)| ti.task_id == task_id && ti.map_index >= 0)
        .collect();
    if rows.is_empty() {
        return Err(ApiError::not_found(format!(
            "Task id {task_id} is not mapped"
        )));
    }
    let total = rows.len() as i64;
    Ok(Json(TaskInstanceCollectionResponse {
        task_instances: page
            .apply(rows)
            .iter()
            .map(|(ti, run)| ti_response(ti, run))
            .collect(),
        total_entries: total,
    }))
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
        None => state
            .store
            .list_runs(&store::RunFilter {
                dag_id: Some(dag_id.clone()),
                ..Default::default()
            })
            .await?
            .into_iter()
            .filter(|r| {
                let at = r.logical_date.unwrap_or(r.queued_at);
                body.start_date.is_none_or(|s| at >= s) && body.end_date.is_none_or(|e| at <= e)
            })
            .collect(),
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

/// The log of one try, as structured lines; `token` continues after the last line read.
/// With `Accept: application/x-ndjson`, one JSON object per line.
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
    query.boolean("full_content")?;
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
    let lines = state
        .store
        .read_log(ti.id, try_number, after, 100_000)
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
