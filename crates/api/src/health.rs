//! `GET /api/v2/monitor/health` and `GET /api/v2/version`, in Airflow 3's shapes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::AppState;

/// Health of the metadata database, checked with a real query; the scheduler entry reports
/// healthy because it runs in the same deployment as the API (per-process heartbeats come
/// with the multi-scheduler work).
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let db = match state.store.list_import_errors().await {
        Ok(_) => "healthy",
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            "unhealthy"
        }
    };
    let status = if db == "healthy" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "metadatabase": {"status": db},
            "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": null},
            "triggerer": {"status": null, "latest_triggerer_heartbeat": null},
            "dag_processor": {"status": "healthy", "latest_dag_processor_heartbeat": null},
        })),
    )
}

pub async fn version() -> Json<Value> {
    Json(json!({"version": env!("CARGO_PKG_VERSION"), "git_version": null}))
}
