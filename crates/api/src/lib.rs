//! The HTTP side of Updraft: the REST API under `/api/v2` in Airflow 3's shapes, JWT auth
//! with roles, the OpenAPI document generated from the handlers (with an offline Swagger UI),
//! Prometheus metrics, and the web UI (`ui`). Only this crate names axum.

pub mod auth;
pub mod error;
mod extract;
pub mod metrics;
pub mod models;
mod openapi;
mod routes;
pub mod ui;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use store::Store;
use store::secrets::Vault;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use auth::{Role, TokenKeys};

/// Largest request body accepted (a 413 beyond it).
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Seals and opens variables and connections.
    pub vault: Arc<Vault>,
    pub tokens: Arc<TokenKeys>,
    /// A hash to verify against when a login names no user, so both paths cost the same.
    dummy_hash: Arc<str>,
    /// How long a request may take before it is answered 408.
    pub request_timeout: Duration,
    /// The web UI's page events.
    pub live: Arc<ui::live::Hub>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, vault: Arc<Vault>, tokens: TokenKeys) -> AppState {
        let dummy_hash = auth::hash_password("updraft-no-such-user")
            .unwrap_or_else(|_| "$argon2id$v=19$m=19456,t=2,p=1$invalid".to_string());
        AppState {
            store,
            vault,
            tokens: Arc::new(tokens),
            dummy_hash: dummy_hash.into(),
            request_timeout: Duration::from_secs(60),
            live: Arc::new(ui::live::Hub::default()),
        }
    }
}

/// The application's routes; tests call it directly or serve it on a loopback port.
pub fn app(state: AppState) -> Router {
    metrics::install();
    let request_id = HeaderName::from_static("x-request-id");
    let timeout = state.request_timeout;
    let (api, document) = openapi::router().split_for_parts();
    let document = Arc::new(openapi::finish(document));
    let spec = document.clone();
    Router::new()
        .merge(api)
        .route(
            "/api/v2/openapi.json",
            axum::routing::get(move || {
                let spec = spec.clone();
                async move { axum::Json(spec.as_ref().clone()) }
            }),
        )
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs")
                .url("/api/v2/docs/openapi.json", document.as_ref().clone()),
        )
        .route("/metrics", axum::routing::get(routes::monitor::metrics))
        .merge(ui::router())
        .fallback(|| async { error::ApiError::new(StatusCode::NOT_FOUND, "Not Found") })
        .with_state(state)
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %request.method(),
                    uri = %request.uri(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Serve the API on `listener` until `shutdown` completes, then finish open requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let live = state.live.clone();
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Pages left open hold streams that never end by themselves.
            live.close();
        })
        .await
}
