//! Prometheus metrics. One recorder per process (installed on first use), so counters from
//! every component in the process — HTTP requests here, scheduling latency in the worker —
//! land in one `/metrics` page; state gauges are read from the store at scrape time.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use store::Admin;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Seconds: from a task instance queued to a worker claiming it, and HTTP durations.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Install the process's recorder (idempotent). `None` if another recorder was installed
/// first, in which case `/metrics` shows only the gauges read at scrape time.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), &BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(err) => {
                    tracing::warn!(error = %err, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// The text exposition of every metric.
pub fn render() -> String {
    install().map(PrometheusHandle::render).unwrap_or_default()
}

/// Set the state gauges from the store.
pub async fn refresh_gauges(store: &dyn Admin) -> store::Result<()> {
    let counts = store.state_counts().await?;
    for state in dag::RunState::ALL {
        let n = counts
            .runs
            .iter()
            .find(|(s, _)| s == state.as_str())
            .map_or(0, |(_, n)| *n);
        metrics::gauge!("updraft_dag_runs", "state" => state.as_str()).set(n as f64);
    }
    for state in dag::TaskState::ALL {
        let n = counts
            .task_instances
            .iter()
            .find(|(s, _)| s == state.as_str())
            .map_or(0, |(_, n)| *n);
        metrics::gauge!("updraft_task_instances", "state" => state.as_str()).set(n as f64);
    }
    let mut total = 0;
    for (queue, n) in &counts.queued_by_queue {
        total += n;
        metrics::gauge!("updraft_queue_depth", "queue" => queue.clone()).set(*n as f64);
    }
    metrics::gauge!("updraft_queued_task_instances").set(total as f64);
    Ok(())
}

/// Middleware counting requests by method, matched route and status, with durations.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("updraft_http_requests_total",
        "method" => method.clone(), "route" => route.clone(), "status" => status)
    .increment(1);
    metrics::histogram!("updraft_http_request_duration_seconds",
        "method" => method, "route" => route)
    .record(started.elapsed().as_secs_f64());
    response
}
