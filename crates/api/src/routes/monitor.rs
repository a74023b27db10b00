//! `GET /api/v2/monitor/health`, `GET /api/v2/version` (no token needed) and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::{Duration, Utc};

use crate::AppState;
use crate::error::ApiResult;
use crate::models::*;

/// A component is healthy if it beat within this long (Airflow's default threshold is 30 s).
const HEALTHY_WITHIN: Duration = Duration::seconds(30);

/// A health check answers within this even when the database does not.
const HEALTH_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Health of the metadata database and of the scheduler (by its heartbeat).
#[utoipa::path(get, path = "/api/v2/monitor/health", tag = "Monitor",
    responses((status = 200, body = HealthInfoResponse)))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthInfoResponse>) {
    let read = tokio::time::timeout(
        HEALTH_READ_TIMEOUT,
        state.store.latest_heartbeat("scheduler"),
    );
    let (database, beat) = match read.await {
        Ok(Ok(beat)) => ("healthy", beat),
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "health check: database unreachable");
            ("unhealthy", None)
        }
        Err(_) => {
            tracing::debug!("health check: the database did not answer in time");
            ("unhealthy", None)
        }
    };
    let scheduler = match beat {
        Some(at) if Utc::now() - at <= HEALTHY_WITHIN => "healthy",
        _ => "unhealthy",
    };
    let beat_text = beat.map(|at| at.to_rfc3339());
    (
        StatusCode::OK,
        Json(HealthInfoResponse {
            metadatabase: BaseInfoResponse {
                status: Some(database.to_string()),
            },
            scheduler: SchedulerInfoResponse {
                status: Some(scheduler.to_string()),
                latest_scheduler_heartbeat: beat_text.clone(),
            },
            triggerer: TriggererInfoResponse {
                status: None,
                latest_triggerer_heartbeat: None,
            },
            dag_processor: Some(DagProcessorInfoResponse {
                status: Some(scheduler.to_string()),
                latest_dag_processor_heartbeat: beat_text,
            }),
        }),
    )
}

/// The server's version.
#[utoipa::path(get, path = "/api/v2/version", tag = "Version",
    responses((status = 200, body = VersionInfo)))]
pub async fn version() -> Json<VersionInfo> {
    Json(VersionInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        git_version: None,
    })
}

/// Prometheus metrics: HTTP requests, scheduling latency, and (read at scrape time) runs and
/// task instances by state and queue depth.
pub async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    crate::metrics::refresh_gauges(state.store.as_ref()).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    ))
}
