//! `/dags`: list, get, details, patch (pause), delete, tasks.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, State};
use chrono::Utc;
use dag::RunState;
use store::{DagFilter, DagOrder, RunFilter, TagsMatch};

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, QueryPairs, order, parse_run_state, sort};
use crate::models::*;

/// Files with an import error, to mark their DAGs.
async fn broken_files(state: &AppState) -> ApiResult<HashSet<String>> {
    Ok(state
        .store
        .list_import_errors()
        .await?
        .into_iter()
        .map(|e| e.filename)
        .collect())
}

pub async fn dag_record(state: &AppState, dag_id: &str) -> ApiResult<store::DagRecord> {
    state
        .store
        .get_dag(dag_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("DAG with dag_id: '{dag_id}' not found")))
}

/// List DAGs.
#[utoipa::path(get, path = "/api/v2/dags", tag = "DAG",
    params(
        ("limit" = Option<i64>, Query, minimum = 0), ("offset" = Option<i64>, Query, minimum = 0),
        ("tags" = Option<Vec<String>>, Query), ("tags_match_mode" = Option<String>, Query),
        ("owners" = Option<Vec<String>>, Query), ("dag_id_pattern" = Option<String>, Query),
        ("dag_display_name_pattern" = Option<String>, Query),
        ("exclude_stale" = Option<bool>, Query), ("paused" = Option<bool>, Query),
        ("has_import_errors" = Option<bool>, Query),
        ("last_dag_run_state" = Option<String>, Query),
        ("order_by" = Option<String>, Query),
    ),
    responses((status = 200, body = DAGCollectionResponse)))]
pub async fn list_dags(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> ApiResult<Json<DAGCollectionResponse>> {
    caller.require(Role::Viewer)?;
    let page = query.page()?;
    let tags_match = match query.get("tags_match_mode") {
        None | Some("any") => TagsMatch::Any,
        Some("all") => TagsMatch::All,
        Some(other) => {
            return Err(ApiError::invalid(
                &["query", "tags_match_mode"],
                format!("Input should be 'any' or 'all', not '{other}'"),
                "enum",
            ));
        }
    };
    let last_run_state = query
        .get("last_dag_run_state")
        .map(|text| parse_run_state(text, &["query", "last_dag_run_state"]))
        .transpose()?;
    let order = sort(
        query.get("order_by"),
        "dag_id",
        &[
            ("dag_id", DagOrder::DagId),
            ("dag_display_name", DagOrder::DagId),
            ("is_paused", DagOrder::IsPaused),
            ("last_parsed_time", DagOrder::LastParsedAt),
            ("fileloc", DagOrder::Fileloc),
        ],
    )?;
    let filter = DagFilter {
        dag_ids: Vec::new(),
        is_active: (query.boolean("exclude_stale")?.unwrap_or(true)).then_some(true),
        is_paused: query.boolean("paused")?,
        dag_id_pattern: query
            .get("dag_id_pattern")
            .or(query.get("dag_display_name_pattern"))
            .map(str::to_string),
        owners: query.all("owners"),
        tags: query.all("tags"),
        tags_match,
        has_import_errors: query.boolean("has_import_errors")?,
        last_run_state,
        order,
        limit: Some(page.limit),
        offset: page.offset,
    };
    let listed = state.store.page_dags(&filter).await?;
    let broken = broken_files(&state).await?;
    let now = Utc::now();
    Ok(Json(DAGCollectionResponse {
        dags: listed
            .items
            .iter()
            .map(|d| dag_response(d, broken.contains(&d.fileloc), now))
            .collect(),
        total_entries: count(listed.total_entries),
    }))
}

/// A store's count as the API's `total_entries`.
pub fn count(total: u64) -> i64 {
    i64::try_from(total).unwrap_or(i64::MAX)
}

/// One DAG.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}", tag = "DAG",
    params(("dag_id" = String, Path)),
    responses((status = 200, body = DAGResponse)))]
pub async fn get_dag(
    State(state): State<AppState>,
    caller: Caller,
    Path(dag_id): Path<String>,
) -> ApiResult<Json<DAGResponse>> {
    caller.require(Role::Viewer)?;
    let record = dag_record(&state, &dag_id).await?;
    let broken = broken_files(&state).await?;
    Ok(Json(dag_response(
        &record,
        broken.contains(&record.fileloc),
        Utc::now(),
    )))
}

/// One DAG with its schedule, params and defaults.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/details", tag = "DAG",
    params(("dag_id" = String, Path)),
    responses((status = 200, body = DAGDetailsResponse)))]
pub async fn get_dag_details(
    State(state): State<AppState>,
    caller: Caller,
    Path(dag_id): Path<String>,
) -> ApiResult<Json<DAGDetailsResponse>> {
    caller.require(Role::Viewer)?;
    let record = dag_record(&state, &dag_id).await?;
    let broken = broken_files(&state).await?;
    let active = state
        .store
        .page_runs(&RunFilter {
            dag_id: Some(dag_id.clone()),
            states: vec![RunState::Queued, RunState::Running],
            limit: Some(0),
            ..Default::default()
        })
        .await?
        .total_entries;
    Ok(Json(dag_details(
        &record,
        broken.contains(&record.fileloc),
        count(active),
        Utc::now(),
    )))
}

/// Pause or unpause a DAG.
#[utoipa::path(patch, path = "/api/v2/dags/{dag_id}", tag = "DAG",
    params(("dag_id" = String, Path), ("update_mask" = Option<Vec<String>>, Query)),
    request_body = DAGPatchBody,
    responses((status = 200, body = DAGResponse)))]
pub async fn patch_dag(
    State(state): State<AppState>,
    caller: Caller,
    Path(dag_id): Path<String>,
    query: QueryPairs,
    Body(body): Body<DAGPatchBody>,
) -> ApiResult<Json<DAGResponse>> {
    caller.require(Role::User)?;
    let mask = query.all("update_mask");
    if mask.iter().any(|field| field != "is_paused") {
        return Err(ApiError::bad_request(
            "Only `is_paused` field can be updated through the REST API",
        ));
    }
    dag_record(&state, &dag_id).await?;
    if body.is_paused {
        state.store.pause_dag(&dag_id).await?;
    } else {
        state.store.unpause_dag(&dag_id).await?;
    }
    let record = dag_record(&state, &dag_id).await?;
    let broken = broken_files(&state).await?;
    Ok(Json(dag_response(
        &record,
        broken.contains(&record.fileloc),
        Utc::now(),
    )))
}

/// Delete a DAG's metadata: runs, task instances, XComs, logs. Its file, if still in the
/// DAG folder, brings it back on the next parse.
#[utoipa::path(delete, path = "/api/v2/dags/{dag_id}", tag = "DAG",
    params(("dag_id" = String, Path)),
    responses((status = 200, body = Object)))]
pub async fn delete_dag(
    State(state): State<AppState>,
    caller: Caller,
    Path(dag_id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require(Role::User)?;
    dag_record(&state, &dag_id).await?;
    state.store.delete_dag(&dag_id).await?;
    Ok(Json(serde_json::json!({})))
}

/// The DAG's tasks.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/tasks", tag = "Task",
    params(("dag_id" = String, Path), ("order_by" = Option<String>, Query)),
    responses((status = 200, body = TaskCollectionResponse)))]
pub async fn list_tasks(
    State(state): State<AppState>,
    caller: Caller,
    Path(dag_id): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<TaskCollectionResponse>> {
    caller.require(Role::Viewer)?;
    let record = dag_record(&state, &dag_id).await?;
    let mut tasks: Vec<TaskResponse> = record
        .dag
        .tasks
        .iter()
        .map(|t| task_response(&record.dag, t))
        .collect();
    order(
        &mut tasks,
        query.get("order_by"),
        "task_id",
        &[
            ("task_id", |a, b| a.task_id.cmp(&b.task_id)),
            ("operator_name", |a, b| {
                a.operator_name.cmp(&b.operator_name)
            }),
            ("start_date", |a, b| a.start_date.cmp(&b.start_date)),
        ],
    )?;
    let total = tasks.len() as i64;
    Ok(Json(TaskCollectionResponse {
        tasks,
        total_entries: total,
    }))
}

/// One task of the DAG.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/tasks/{task_id}", tag = "Task",
    params(("dag_id" = String, Path), ("task_id" = String, Path)),
    responses((status = 200, body = TaskResponse)))]
pub async fn get_task(
    State(state): State<AppState>,
    caller: Caller,
    Path((dag_id, task_id)): Path<(String, String)>,
) -> ApiResult<Json<TaskResponse>> {
    caller.require(Role::Viewer)?;
    let record = dag_record(&state, &dag_id).await?;
    let task = record
        .dag
        .tasks
        .iter()
        .find(|t| t.task_id == task_id)
        .ok_or_else(|| ApiError::not_found(format!("Task with id '{task_id}' not found")))?;
    Ok(Json(task_response(&record.dag, task)))
}
