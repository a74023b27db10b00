//! The HTTP side of Updraft: the REST API under `/api/v2` (for now the health endpoint) and
//! password hashing for users. Only this crate names axum.

pub mod auth;
mod health;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use store::Store;
use tokio::net::TcpListener;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
}

/// The application's routes; tests call it directly or serve it on a loopback port.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/api/v2/monitor/health", axum::routing::get(health::health))
        .route("/api/v2/version", axum::routing::get(health::version))
        .with_state(state)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Serve the API on `listener` until `shutdown` completes, then finish open requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
