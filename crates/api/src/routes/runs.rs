//! `/dags/{dag_id}/dagRuns`: list (also `~` for every DAG, and the batch `list`), get,
//! trigger, patch state, delete, clear; and `/backfills`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use dag::{RunState, TaskState};
use scheduler::runs::{BackfillError, TriggerError, TriggerRequest};
use store::{ClearTaskInstance, RunFilter, RunRecord};

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Page, QueryPairs, like, order};
use crate::models::*;
use crate::routes::dags::dag_record;

pub async fn run_record(state: &AppState, dag_id: &str, run_id: &str) -> ApiResult<RunRecord> {
    state.store.get_run(dag_id, run_id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "The DagRun with dag_id: `{dag_id}` and run_id: `{run_id}` was not found"
        ))
    })
}

/// Runs of one DAG, or of every DAG for `~`.
async fn runs_of(state: &AppState, dag_id: &str) -> ApiResult<Vec<RunRecord>> {
    if dag_id != "~" {
        dag_record(state, dag_id).await?;
    }
    Ok(state
        .store
        .list_runs(&RunFilter {
            dag_id: (dag_id != "~").then(|| dag_id.to_string()),
            ..Default::default()
        })
        .await?)
}

fn run_after(run: &RunRecord) -> DateTime<Utc> {
    run.logical_date.unwrap_or(run.queued_at)
}

fn duration(run: &RunRecord) -> Option<f64> {
    Some((run.end_date? - run.start_date?).num_milliseconds() as f64 / 1000.0)
}

/// Which instant of a run a range bound applies to.
type RunInstant = fn(&RunRecord) -> Option<DateTime<Utc>>;

/// One bound: the instant, the limit, the side it must fall on, and whether equal passes.
type Bound = (RunInstant, Option<DateTime<Utc>>, std::cmp::Ordering, bool);

/// Range filters shared by the query and batch forms.
#[derive(Default)]
struct Ranges {
    bounds: Vec<Bound>,
}

impl Ranges {
    fn add(
        &mut self,
        field: RunInstant,
        gte: Option<DateTime<Utc>>,
        gt: Option<DateTime<Utc>>,
        lte: Option<DateTime<Utc>>,
        lt: Option<DateTime<Utc>>,
    ) {
        use std::cmp::Ordering::{Greater, Less};
        self.bounds.push((field, gte, Greater, true));
        self.bounds.push((field, gt, Greater, false));
        self.bounds.push((field, lte, Less, true));
        self.bounds.push((field, lt, Less, false));
    }

    fn keeps(&self, run: &RunRecord) -> bool {
        self.bounds
            .iter()
            .all(|(field, bound, direction, inclusive)| {
                let Some(bound) = bound else { return true };
                let Some(value) = field(run) else {
                    return false;
                };
                let ordering = value.cmp(bound);
                ordering == *direction || (*inclusive && ordering == std::cmp::Ordering::Equal)
            })
    }
}

fn sort_and_page(
    mut runs: Vec<RunRecord>,
    order_by: Option<&str>,
    page: Page,
) -> ApiResult<DAGRunCollectionResponse> {
    order(
        &mut runs,
        order_by,
        "id",
        &[
            ("id", |a, b| a.id.cmp(&b.id)),
            ("run_id", |a, b| a.run_id.cmp(&b.run_id)),
            ("dag_run_id", |a, b| a.run_id.cmp(&b.run_id)),
            ("dag_id", |a, b| a.dag_id.cmp(&b.dag_id)),
            ("state", |a, b| a.state.as_str().cmp(b.state.as_str())),
            ("run_type", |a, b| {
                a.run_type.as_str().cmp(b.run_type.as_str())
            }),
            ("logical_date", |a, b| a.logical_date.cmp(&b.logical_date)),
            ("run_after", |a, b| run_after(a).cmp(&run_after(b))),
            ("start_date", |a, b| a.start_date.cmp(&b.start_date)),
            ("end_date", |a, b| a.end_date.cmp(&b.end_date)),
            ("queued_at", |a, b| a.queued_at.cmp(&b.queued_at)),
            ("duration", |a, b| {
                duration(a)
                    .partial_cmp(&duration(b))
                    .unwrap_or(std::cmp::Ordering::Equal)
            }),
        ],
    )?;
    let total = runs.len() as i64;
    Ok(DAGRunCollectionResponse {
        dag_runs: page.apply(runs).iter().map(run_response).collect(),
        total_entries: total,
    })
}

fn parse_run_state(text: &str, loc: &[&str]) -> ApiResult<RunState> {
    text.parse().map_err(|_| {
        ApiError::invalid(
            loc,
            format!("Input should be 'queued', 'running', 'success' or 'failed', not '{text}'"),
            "enum",
        )
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
    let run_types = query.all("run_type");
    let pattern = query.get("run_id_pattern");
    let mut ranges = Ranges::default();
    ranges.add(
        |r| r.logical_date,
        query.time("logical_date_gte")?,
        query.time("logical_date_gt")?,
        query.time("logical_date_lte")?,
        query.time("logical_date_lt")?,
    );
    ranges.add(
        |r| Some(run_after(r)),
        query.time("run_after_gte")?,
        query.time("run_after_gt")?,
        query.time("run_after_lte")?,
        query.time("run_after_lt")?,
    );
    ranges.add(
        |r| r.start_date,
        query.time("start_date_gte")?,
        query.time("start_date_gt")?,
        query.time("start_date_lte")?,
        query.time("start_date_lt")?,
    );
    ranges.add(
        |r| r.end_date,
        query.time("end_date_gte")?,
        query.time("end_date_gt")?,
        query.time("end_date_lte")?,
        query.time("end_date_lt")?,
    );
    let runs: Vec<RunRecord> = runs_of(&state, &dag_id)
        .await?
        .into_iter()
        .filter(|r| states.is_empty() || states.contains(&r.state))
        .filter(|r| run_types.is_empty() || run_types.iter().any(|t| t == r.run_type.as_str()))
        .filter(|r| pattern.is_none_or(|p| like(p, &r.run_id)))
        .filter(|r| ranges.keeps(r))
        .collect();
    Ok(Json(sort_and_page(runs, query.get("order_by"), page)?))
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
    let mut ranges = Ranges::default();
    ranges.add(
        |r| r.logical_date,
        body.logical_date_gte,
        body.logical_date_gt,
        body.logical_date_lte,
        body.logical_date_lt,
    );
    ranges.add(
        |r| Some(run_after(r)),
        body.run_after_gte,
        body.run_after_gt,
        body.run_after_lte,
        body.run_after_lt,
    );
    ranges.add(
        |r| r.start_date,
        body.start_date_gte,
        body.start_date_gt,
        body.start_date_lte,
        body.start_date_lt,
    );
    ranges.add(
        |r| r.end_date,
        body.end_date_gte,
        body.end_date_gt,
        body.end_date_lte,
        body.end_date_lt,
    );
    let dag_ids = body.dag_ids.unwrap_or_default();
    let runs: Vec<RunRecord> = runs_of(&state, "~")
        .await?
        .into_iter()
        .filter(|r| dag_ids.is_empty() || dag_ids.contains(&r.dag_id))
        .filter(|r| states.is_empty() || states.contains(&r.state))
        .filter(|r| ranges.keeps(r))
        .filter(|r| {
            body.conf_contains
                .as_deref()
                .is_none_or(|needle| r.conf.to_string().contains(needle))
        })
        .collect();
    let page = Page {
        limit: limit.min(100) as usize,
        offset: offset as usize,
    };
    Ok(Json(sort_and_page(runs, body.order_by.as_deref(), page)?))
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
