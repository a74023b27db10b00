//! The web UI's server side. The UI is a small single-page app of plain ES modules in `web/`
//! (no build step), embedded in the binary and served for every page path (Airflow 3's paths);
//! pages read and write through `/api/v2`, so they meet exactly the REST API's role checks.
//! Beside it, under `/ui/`: the session login that sets the HttpOnly cookie, the push streams
//! (`live`), and the few read models a page needs in one request (`views`).

mod assets;
pub mod live;
mod session;
mod views;

use axum::Router;
use axum::routing::get;

use crate::AppState;

pub use assets::inventory;

/// Page paths answered with the app's shell (the script routes on the URL).
const PAGES: &[&str] = &[
    "/",
    "/login",
    "/dags",
    "/dags/{*rest}",
    "/variables",
    "/connections",
    "/pools",
    "/import-errors",
    "/users",
];

/// The UI's routes.
pub fn router() -> Router<AppState> {
    let mut router = Router::new()
        .route(
            "/ui/session",
            get(session::current)
                .post(session::login)
                .delete(session::logout),
        )
        .route("/ui/events", get(live::events))
        .route(
            "/ui/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/logs/{try_number}",
            get(live::log),
        )
        .route(
            "/ui/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/rendered",
            get(views::rendered),
        )
        .route("/ui/dags/summary", get(views::dag_summaries))
        .route("/ui/dags/{dag_id}/structure", get(views::structure))
        .route("/ui/dags/{dag_id}/grid", get(views::grid))
        .route("/ui/dags/{dag_id}/code", get(views::code))
        .route("/ui/health", get(views::health))
        .route("/static/{*path}", get(assets::file));
    for page in PAGES {
        router = router.route(page, get(assets::index));
    }
    router
}
