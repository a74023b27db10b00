//! `POST /auth/token` (Airflow's simple auth manager shape) and `/api/v2/users` (an Updraft
//! addition: Airflow keeps users in its auth manager, not in the core API; a user carries the
//! FAB auth manager's `email`, `first_name` and `last_name`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use store::NewUser;

use crate::AppState;
use crate::auth::{Caller, Role, hash_password, verify_password};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, QueryPairs};
use crate::models::*;

/// Exchange a username and password for a JWT access token.
#[utoipa::path(post, path = "/auth/token", tag = "Login",
    request_body = LoginBody,
    responses((status = 201, body = LoginResponse),
        (status = 401, description = "Invalid credentials", body = crate::error::HTTPExceptionResponse)))]
pub async fn create_token(
    State(state): State<AppState>,
    Body(body): Body<LoginBody>,
) -> ApiResult<(StatusCode, Json<LoginResponse>)> {
    let (username, role) = authenticate(&state, &body).await?;
    Ok((
        StatusCode::CREATED,
        Json(LoginResponse {
            access_token: state.tokens.issue(&username, role, Utc::now()),
        }),
    ))
}

/// The user and current role a username and password belong to, or 401. Shared by the token
/// exchange and the web UI's login.
pub(crate) async fn authenticate(state: &AppState, body: &LoginBody) -> ApiResult<(String, Role)> {
    let user = state.store.get_user(&body.username).await?;
    // Verify against a fixed hash when the user is missing, so timing tells nothing.
    let stored = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| state.dummy_hash.to_string());
    let password = body.password.clone();
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &stored))
        .await
        .map_err(ApiError::internal)?;
    let Some(user) = user.filter(|_| matches) else {
        return Err(ApiError::unauthorized("Invalid credentials"));
    };
    let role = Role::parse(&user.role).unwrap_or(Role::Viewer);
    Ok((user.username, role))
}

/// The same exchange for command-line clients.
#[utoipa::path(post, path = "/auth/token/cli", tag = "Login",
    request_body = LoginBody,
    responses((status = 201, body = LoginResponse),
        (status = 401, description = "Invalid credentials", body = crate::error::HTTPExceptionResponse)))]
pub async fn create_token_cli(
    state: State<AppState>,
    body: Body<LoginBody>,
) -> ApiResult<(StatusCode, Json<LoginResponse>)> {
    create_token(state, body).await
}

fn user_response(user: &store::UserRecord) -> UserResponse {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    UserResponse {
        username: user.username.clone(),
        email: text(&user.email),
        first_name: text(&user.first_name),
        last_name: text(&user.last_name),
        role: user.role.clone(),
        created_at: user.created_at,
    }
}

/// Users (Admin only).
#[utoipa::path(get, path = "/api/v2/users", tag = "User",
    params(("limit" = Option<i64>, Query, minimum = 0), ("offset" = Option<i64>, Query, minimum = 0)),
    responses((status = 200, body = UserCollectionResponse)))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> ApiResult<Json<UserCollectionResponse>> {
    caller.require(Role::Admin)?;
    let page = query.page()?;
    let users = state.store.list_users().await?;
    let total = users.len() as i64;
    Ok(Json(UserCollectionResponse {
        users: page.apply(users).iter().map(user_response).collect(),
        total_entries: total,
    }))
}

/// Create a user (Admin only).
#[utoipa::path(post, path = "/api/v2/users", tag = "User",
    request_body = UserBody,
    responses((status = 201, body = UserResponse)))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<UserBody>,
) -> ApiResult<(StatusCode, Json<UserResponse>)> {
    caller.require(Role::Admin)?;
    let Some(role) = Role::parse(&body.role) else {
        return Err(ApiError::invalid(
            &["body", "role"],
            "Input should be 'Admin', 'Op', 'User' or 'Viewer'",
            "enum",
        ));
    };
    if body.username.is_empty() || body.username.len() > 64 {
        return Err(ApiError::invalid(
            &["body", "username"],
            "must be 1 to 64 characters",
            "string_too_long",
        ));
    }
    if body.password.is_empty() {
        return Err(ApiError::invalid(
            &["body", "password"],
            "must not be empty",
            "string_too_short",
        ));
    }
    for (field, value) in [
        ("email", &body.email),
        ("first_name", &body.first_name),
        ("last_name", &body.last_name),
    ] {
        if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
            return Err(ApiError::invalid(
                &["body", field],
                "must not be empty",
                "string_too_short",
            ));
        }
    }
    if let Some(email) = body.email.as_deref().filter(|e| !is_email_address(e)) {
        return Err(ApiError::invalid(
            &["body", "email"],
            format!("'{email}' is not an email address (expected name@domain)"),
            "value_error",
        ));
    }
    let password = body.password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let user = state
        .store
        .create_user(&NewUser {
            username: body.username,
            password_hash: hash,
            role: role.as_str().to_string(),
            first_name: body.first_name,
            last_name: body.last_name,
            email: body.email,
            now: Utc::now(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(user_response(&user))))
}

/// Delete a user (Admin only; not yourself).
#[utoipa::path(delete, path = "/api/v2/users/{username}", tag = "User",
    params(("username" = String, Path)),
    responses((status = 204)))]
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    if username == caller.username {
        return Err(ApiError::bad_request("You cannot delete yourself"));
    }
    state.store.delete_user(&username).await?;
    Ok(StatusCode::NO_CONTENT)
}
