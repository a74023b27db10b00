//! The web UI's session: `POST /ui/session` checks a username and password like the token
//! exchange and sets the token as an HttpOnly, SameSite=Strict cookie; `GET /ui/session` says
//! who is logged in and hands same-origin script the session's CSRF value; `DELETE` logs out.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;

use crate::AppState;
use crate::auth::{CSRF_HEADER, Caller, SESSION_COOKIE};
use crate::error::{ApiError, ApiResult};
use crate::extract::Body;
use crate::models::LoginBody;
use crate::routes::access::authenticate;

/// Who the session belongs to, and what its state-changing requests must send.
#[derive(Debug, Serialize)]
pub struct SessionInfo {
    pub username: String,
    pub role: &'static str,
    /// The value to send in [`CSRF_HEADER`] with every request that changes something.
    pub csrf_token: String,
    pub csrf_header: &'static str,
}

/// Log in: the same credential check as `POST /auth/token`, answered with the cookie.
pub async fn login(
    State(state): State<AppState>,
    Body(body): Body<LoginBody>,
) -> ApiResult<Response> {
    let (username, role) = authenticate(&state, &body).await?;
    let (token, csrf) = state.tokens.issue_session(&username, role, Utc::now());
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        state.tokens.lifetime.as_secs()
    );
    let info = SessionInfo {
        username,
        role: role.as_str(),
        csrf_token: csrf,
        csrf_header: CSRF_HEADER,
    };
    Ok(with_cookie(Json(info).into_response(), &cookie))
}

/// The logged-in user, from the session cookie (401 when there is none).
pub async fn current(caller: Caller) -> ApiResult<Json<SessionInfo>> {
    let csrf_token = caller.csrf.clone().ok_or_else(|| {
        ApiError::unauthorized("Not a web session: log in through the login page")
    })?;
    Ok(Json(SessionInfo {
        username: caller.username,
        role: caller.role.as_str(),
        csrf_token,
        csrf_header: CSRF_HEADER,
    }))
}

/// Log out: the cookie is expired. Needs no valid session, so a stale cookie can always go.
pub async fn logout() -> Response {
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    with_cookie(StatusCode::NO_CONTENT.into_response(), &cookie)
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
