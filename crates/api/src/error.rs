//! API errors in Airflow's shapes: `{"detail": "…"}` for most statuses and
//! `{"detail": [{"loc", "msg", "type"}]}` for validation errors (422). Database failures are
//! logged with their cause and answered with a generic 500 that reveals nothing; an
//! unavailable database (down, restarting) is a 503 with `Retry-After`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use store::StoreError;
use utoipa::ToSchema;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: Value,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            detail: Value::String(detail.into()),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, detail)
    }

    /// A 422 naming where the problem is (`["query", "limit"]`, `["body", "conf"]`).
    pub fn invalid(loc: &[&str], msg: impl Into<String>, kind: &str) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: json!([{ "loc": loc, "msg": msg.into(), "type": kind }]),
        }
    }

    /// A failure that is not the client's: logged in full, answered without details.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }

    /// The database is unavailable just now: a 503 with `Retry-After`, which clients can act
    /// on. Logged at most once a minute, so an outage is one line, not one per request.
    pub fn unavailable(cause: impl std::fmt::Display) -> ApiError {
        static LOGGED: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
        let mut logged = LOGGED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if logged.is_none_or(|at| at.elapsed() >= UNAVAILABLE_LOG_EVERY) {
            tracing::warn!(error = %cause, "database unavailable: answering 503 until it is back");
            *logged = Some(std::time::Instant::now());
        } else {
            tracing::debug!(error = %cause, "database unavailable");
        }
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is unavailable; retry shortly",
        )
    }
}

/// How often an ongoing outage is logged again.
const UNAVAILABLE_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The `Retry-After` of a 503, in seconds: about how long a database restart takes.
pub const RETRY_AFTER_SECONDS: u32 = 2;

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::Conflict(message) => ApiError::conflict(message),
            err @ StoreError::Unavailable(_) => ApiError::unavailable(err),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "detail": self.detail }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

/// `{"detail": "…"}`, as documented for every error status but 422.
#[derive(Debug, Serialize, ToSchema)]
pub struct HTTPExceptionResponse {
    pub detail: Value,
}

/// One validation problem.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationError {
    pub loc: Vec<Value>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// `{"detail": [{"loc", "msg", "type"}]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HTTPValidationError {
    pub detail: Vec<ValidationError>,
}
