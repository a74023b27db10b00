//! `/dags/{dag_id}/dagRuns`: list (also `~` for every DAG, and the batch `list`), get,
//! trigger, patch state, delete, clear; and `/backfills`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use dag::{RunState, RunType, TaskState};
use scheduler::runs::{BackfillError, TriggerError, TriggerRequest};
use store::{ClearTaskInstance, RunFilter, RunOrder, RunRecord, TimeRange};

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, QueryPairs, parse_run_state, sort};
use crate::models::*;
use crate::routes::dags::{count, dag_record};

pub async fn run_record(state: &AppState, dag_id: &str, run_id: &str) -> ApiResult<RunRecord> {
    state.store.get_run(dag_id, run_id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "The DagRun with dag_id: `{dag_id}` and run_id: `{run_id}` was not found"
        ))
    })
}

/// The order keys of a run listing, by their API names.
const RUN_ORDERS: &[(&str, RunOrder)] = &[
    ("id", RunOrder::Id),
    ("run_id", RunOrder::RunId),
    ("dag_run_id", RunOrder::RunId),
    ("dag_id", RunOrder::DagId),
    ("state", RunOrder::State),
    ("run_type", RunOrder::RunType),
    ("logical_date", RunOrder::LogicalDate),
    ("run_after", RunOrder::RunAfter),
    ("start_date", RunOrder::StartDate),
    ("end_date", RunOrder::EndDate),
    ("queued_at", RunOrder::QueuedAt),
    ("duration", RunOrder::Duration),
];

/// The bounds `{name}_gte`, `_gt`, `_lte` and `_lt` of the query string.
fn query_range(query: &QueryPairs, name: &str) -> ApiResult<TimeRange> {
    Ok(TimeRange {
        gte: query.time(&format!("{name}_gte"))?,
        gt: query.time(&format!("{name}_gt"))?,
        lte: query.time(&format!("{name}_lte"))?,
        lt: query.time(&format!("{name}_lt"))?,
    })
}

/// One page of the runs `filter` lists, with the count of every match.
async fn run_page(state: &AppState, filter: &RunFilter) -> ApiResult<DAGRunCollectionResponse> {
    let listed = state.store.page_runs(filter).await?;
    Ok(DAGRunCollectionResponse {
        dag_runs: listed.items.iter().map(run_response).collect(),
        total_entries: count(listed.total_entries),
    })
}

/// Runs of a DAG (`~`: of every DAG).
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns", tag = "DagRun",
    params(("dag_id" = String, Path),
        ("limit" = Option<i64>, Query, minimum = 0), ("offset" = Option<i64>, Query, minimum = 0),
        ("state" = Option<Vec<String>>, Query), ("run_type" = Option<Vec<String>>, Query),
        ("run_id_pattern" = Option<String>, Query),
        ("logical_date_gte" = Option<DateTime<Utc>>, Query), ("logical_date_gt" = Option<DateTime<Utc>>, Query),
        ("logical_date_lte" = Option<DateTime<Utc>>, Query), ("logical_date_lt" = Option<DateTime<Utc>>, Query),
        ("run_after_gte" = Option<DateTime<Utc>>, Query), ("run_after_gt" = Option<DateTime<Utc>>, Query),
        ("run_after_lte" = Option<DateTime<Utc>>, Query), ("run_after_lt" = Option<DateTime<Utc>>, Query),
        ("start_date_gte" = Option<DateTime<Utc>>, Query), ("start_date_lte" = Option<DateTime<Utc>>, Query),
        ("end_date_gte" = Option<DateTime<Utc>>, Query), ("end_date_lte" = Option<DateTime<Utc>>, Query),
        ("order_by" = Option<String>, Query)),
    responses((status = 200, body = DAGRunCollectionResponse)))]
pub async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    Path(dag_id): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<DAGRunCollectionResponse>> {
    caller.require(Role::Viewer)?;
    let page = query.page()?;
    let states = query
        .all("state")
        .iter()
        .map(|s| parse_run_state(s, &["query", "state"]))
        .collect::<ApiResult<Vec<_>>>()?;
    // Airflow takes any text as a run type: a name no Updraft run has (its `asset_triggered`,
    // say) matches nothing.
    let asked_types = query.all("run_type");
    let run_types: Vec<RunType> = asked_types.iter().filter_map(|t| t.parse().ok()).collect();
    let filter = RunFilter {
        dag_id: (dag_id != "~").then(|| dag_id.clone()),
        states,
        run_types,
        run_id_pattern: query.get("run_id_pattern").map(str::to_string),
        logical_date: query_range(&query, "logical_date")?,
        run_after: query_range(&query, "run_after")?,
        start_date: query_range(&query, "start_date")?,
        end_date: query_range(&query, "end_date")?,
        order: sort(query.get("order_by"), "id", RUN_ORDERS)?,
        limit: Some(page.limit),
        offset: page.offset,
        ..Default::default()
    };
    if dag_id != "~" {
        dag_record(&state, &dag_id).await?;
    }
    if !asked_types.is_empty() && filter.run_types.is_empty() {
        // Only run types no Updraft run has.
        return Ok(Json(DAGRunCollectionResponse {
            dag_runs: Vec::new(),
            total_entries: 0,
        }));
    }
    Ok(Json(run_page(&state, &filter).await?))
}

/// Runs of several DAGs at once (`dag_id` must be `~`).
#[utoipa::path(post, path = "/api/v2/dags/{dag_id}/dagRuns/list", tag = "DagRun",
    params(("dag_id" = String, Path)),
    request_body = DAGRunsBatchBody,
    responses((status = 200, body = DAGRunCollectionResponse)))]
pub async fn list_runs_batch(
    State(state): State<AppState>,
    caller: Caller,
    Path(dag_id): Path<String>,
    Body(body): Body<DAGRunsBatchBody>,
) -> ApiResult<Json<DAGRunCollectionResponse>> {
    caller.require(Role::Viewer)?;
    if dag_id != "~" {
        return Err(ApiError::bad_request(
            "The dag_id of the batch endpoint must be '~'; filter with dag_ids",
        ));
    }
    let limit = body.page_limit.unwrap_or(100);
    let offset = body.page_offset.unwrap_or(0);
    if limit < 0 || offset < 0 {
        return Err(ApiError::invalid(
            &["body", "page_limit"],
            "Input should be greater than or equal to 0",
            "greater_than_equal",
        ));
    }
    let states = body
        .states
        .iter()
        .flatten()
        .flatten()
        .map(|s| parse_run_state(s, &["body", "states"]))
        .collect::<ApiResult<Vec<_>>>()?;
    let filter = RunFilter {
        dag_ids: body.dag_ids.unwrap_or_default(),
        states,
        logical_date: TimeRange {
            gte: body.logical_date_gte,
            gt: body.logical_date_gt,
            lte: body.logical_date_lte,
            lt: body.logical_date_lt,
        },
        run_after: TimeRange {
            gte: body.run_after_gte,
            gt: body.run_after_gt,
            lte: body.run_after_lte,
            lt: body.run_after_lt,
        },
        start_date: TimeRange {
            gte: body.start_date_gte,
            gt: body.start_date_gt,
            lte: body.start_date_lte,
            lt: body.start_date_lt,
        },
        end_date: TimeRange {
            gte: body.end_date_gte,
            gt: body.end_date_gt,
            lte: body.end_date_lte,
            lt: body.end_date_lt,
        },
        conf_contains: body.conf_contains,
        order: sort(body.order_by.as_deref(), "id", RUN_ORDERS)?,
        limit: Some(usize::try_from(limit.min(100)).unwrap_or(100)),
        offset: usize::try_from(offset).unwrap_or(usize::MAX),
        ..Default::default()
    };
    Ok(Json(run_page(&state, &filter).await?))
}

/// One run.
#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}", tag = "DagRun",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path)),
    responses((status = 200, body = DAGRunResponse)))]
pub async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    Path((dag_id, run_id)): Path<(String, String)>,
) -> ApiResult<Json<DAGRunResponse>> {
    caller.require(Role::Viewer)?;
    Ok(Json(run_response(
        &run_record(&state, &dag_id, &run_id).await?,
    )))
}

/// Trigger a run. `logical_date` must be given; null means the trigger time.
#[utoipa::path(post, path = "/api/v2/dags/{dag_id}/dagRuns", tag = "DagRun",
    params(("dag_id" = String, Path)),
    request_body = TriggerDAGRunPostBody,
    responses((status = 200, body = DAGRunResponse)))]
pub async fn trigger_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(dag_id): Path<String>,
    Body(body): Body<TriggerDAGRunPostBody>,
) -> ApiResult<Json<DAGRunResponse>> {
    caller.require(Role::User)?;
    if let Some(run_id) = &body.dag_run_id
        && (run_id.is_empty() || run_id.len() > 250)
    {
        return Err(ApiError::invalid(
            &["body", "dag_run_id"],
            "dag_run_id must be 1 to 250 characters",
            "value_error",
        ));
    }
    let request = TriggerRequest {
        logical_date: body.logical_date,
        conf: body.conf.map(serde_json::Value::Object),
        run_id: body.dag_run_id,
    };
    let run = scheduler::runs::trigger_by(
        state.store.as_ref(),
        &dag_id,
        request,
        Some(&caller.username),
        Utc::now(),
    )
    .await
    .map_err(|err| match err {
        TriggerError::DagNotFound(_) => {
            ApiError::not_found(format!("DAG with dag_id: '{dag_id}' not found"))
        }
        TriggerError::DuplicateRunId { .. } => ApiError::conflict(err.to_string()),
        TriggerError::Store(store) => ApiError::from(store),
        other => ApiError::bad_request(other.to_string()),
    })?;
    Ok(Json(run_response(&run)))
}

/// Set a run's state: `success` or `failed` (marking its unfinished tasks), or `queued`.
#[utoipa::path(patch, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}", tag = "DagRun",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path),
        ("update_mask" = Option<Vec<String>>, Query)),
    request_body = DAGRunPatchBody,
    responses((status = 200, body = DAGRunResponse)))]
pub async fn patch_run(
    State(state): State<AppState>,
    caller: Caller,
    Path((dag_id, run_id)): Path<(String, String)>,
    query: QueryPairs,
    Body(body): Body<DAGRunPatchBody>,
) -> ApiResult<Json<DAGRunResponse>> {
    caller.require(Role::User)?;
    let mask = query.all("update_mask");
    if let Some(bad) = mask.iter().find(|f| *f != "state" && *f != "note") {
        return Err(ApiError::bad_request(format!(
            "Invalid field `{bad}` in update mask"
        )));
    }
    let run = run_record(&state, &dag_id, &run_id).await?;
    let wants_state = mask.is_empty() || mask.iter().any(|f| f == "state");
    let Some(text) = body.state.filter(|_| wants_state) else {
        return Ok(Json(run_response(&run)));
    };
    let target = match text.as_str() {
        "queued" => RunState::Queued,
        "success" => RunState::Success,
        "failed" => RunState::Failed,
        other => {
            return Err(ApiError::invalid(
                &["body", "state"],
                format!("Input should be 'queued', 'success' or 'failed', not '{other}'"),
                "enum",
            ));
        }
    };
    let updated = state
        .store
        .set_run_state(run.id, target, Utc::now())
        .await?;
    Ok(Json(run_response(&updated)))
}

/// Delete a run with its task instances.
#[utoipa::path(delete, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}", tag = "DagRun",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path)),
    responses((status = 204)))]
pub async fn delete_run(
    State(state): State<AppState>,
    caller: Caller,
    Path((dag_id, run_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Role::User)?;
    let run = run_record(&state, &dag_id, &run_id).await?;
    state.store.delete_run(run.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What clearing a run answers: the instances a dry run would clear, or the cleared run.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ResponseClearDagRun {
    TaskInstances(TaskInstanceCollectionResponse),
    Run(Box<DAGRunResponse>),
}

/// Clear a run: its task instances (only failed ones with `only_failed`) run again. With
/// `dry_run` (the default) nothing changes and the instances that would be cleared are listed.
#[utoipa::path(post, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/clear", tag = "DagRun",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path)),
    request_body = DAGRunClearBody,
    responses((status = 200, description = "With dry_run, the task instances that would be cleared; else the run.",
        body = ResponseClearDagRun)))]
pub async fn clear_run(
    State(state): State<AppState>,
    caller: Caller,
    Path((dag_id, run_id)): Path<(String, String)>,
    Body(body): Body<DAGRunClearBody>,
) -> ApiResult<Json<ResponseClearDagRun>> {
    caller.require(Role::User)?;
    let record = dag_record(&state, &dag_id).await?;
    let run = run_record(&state, &dag_id, &run_id).await?;
    let tis = state.store.task_instances(run.id).await?;
    let chosen: Vec<&store::TaskInstanceRecord> = tis
        .iter()
        .filter(|ti| clearable(ti.state))
        .filter(|ti| {
            !body.only_failed || matches!(ti.state, TaskState::Failed | TaskState::UpstreamFailed)
        })
        .collect();
    if body.dry_run {
        return Ok(Json(ResponseClearDagRun::TaskInstances(
            TaskInstanceCollectionResponse {
                total_entries: chosen.len() as i64,
                task_instances: chosen.iter().map(|ti| ti_response(ti, &run)).collect(),
            },
        )));
    }
    let clear = clear_list(&record.dag, &chosen);
    state
        .store
        .clear_task_instances(run.id, &clear, Utc::now())
        .await?;
    let run = run_record(&state, &dag_id, &run_id).await?;
    Ok(Json(ResponseClearDagRun::Run(Box::new(run_response(&run)))))
}

/// States a clear resets: all but "no status" (nothing to clear). A running try is stopped by
/// its worker within a second, as in Airflow.
pub fn clearable(state: TaskState) -> bool {
    state != TaskState::None
}

/// What to clear, with each instance's tries from now on (Airflow: try number + retries).
pub fn clear_list(dag: &dag::Dag, tis: &[&store::TaskInstanceRecord]) -> Vec<ClearTaskInstance> {
    tis.iter()
        .map(|ti| {
            let retries = dag.task(&ti.task_id).map_or(0, |task| task.retries);
            ClearTaskInstance {
                ti: ti.id,
                max_tries: ti.try_number + retries,
            }
        })
        .collect()
}

/// Create backfill runs for every scheduled tick in [from_date, to_date].
#[utoipa::path(post, path = "/api/v2/backfills", tag = "Backfill",
    request_body = BackfillPostBody,
    responses((status = 200, body = BackfillResponse)))]
pub async fn create_backfill(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<BackfillPostBody>,
) -> ApiResult<Json<BackfillResponse>> {
    caller.require(Role::User)?;
    if body.from_date > body.to_date {
        return Err(ApiError::bad_request(
            "from_date must be on or before to_date",
        ));
    }
    let record = dag_record(&state, &body.dag_id).await?;
    let now = Utc::now();
    let runs = scheduler::runs::backfill(
        state.store.as_ref(),
        &body.dag_id,
        body.from_date,
        body.to_date,
        Some(&caller.username),
        now,
    )
    .await
    .map_err(|err| match err {
        BackfillError::DagNotFound(id) => {
            ApiError::not_found(format!("DAG with dag_id: '{id}' not found"))
        }
        BackfillError::Schedule { .. } => ApiError::conflict(err.to_string()),
        BackfillError::Store(store) => ApiError::from(store),
    })?;
    Ok(Json(BackfillResponse {
        id: runs.first().map_or(0, |r| r.id),
        dag_id: body.dag_id.clone(),
        from_date: body.from_date,
        to_date: body.to_date,
        dag_run_conf: body
            .dag_run_conf
            .map(|m| m.into_iter().collect())
            .unwrap_or_default(),
        is_paused: record.is_paused,
        reprocess_behavior: body
            .reprocess_behavior
            .unwrap_or_else(|| "none".to_string()),
        max_active_runs: body
            .max_active_runs
            .unwrap_or(i64::from(record.dag.max_active_runs)),
        created_at: now,
        completed_at: None,
        updated_at: now,
        dag_display_name: body.dag_id,
        dag_run_ids: runs.into_iter().map(|r| r.run_id).collect(),
    }))
}
