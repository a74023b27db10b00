//! The web UI's files, embedded from `web/` at build time (debug builds read them from disk,
//! so editing a page needs no rebuild): `index.html` for every page path, the rest under
//! `/static/`, each with an ETag from its hash and the security headers every UI answer
//! carries.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::Embed)]
#[folder = "../../web/"]
#[exclude = "README.md"]
struct Web;

/// Only our own files, no inline script or style, no framing: whatever a DAG author puts in
/// a description or a task prints, it cannot run here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
    manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The page shell for every UI path; the script routes on the URL.
pub async fn index(headers: HeaderMap) -> Response {
    file_response("index.html", &headers)
}

/// A file under `/static/`.
pub async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    file_response(&path, &headers)
}

fn file_response(path: &str, request: &HeaderMap) -> Response {
    let Some(file) = Web::get(path) else {
        return crate::error::ApiError::new(StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    let etag = format!(
        "\"{}\"",
        file.metadata
            .sha256_hash()
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, content_type(path))],
            file.data.into_owned(),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    // Revalidate every time: an ETag answer is a cheap 304, and a new build is seen at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(headers);
    response
}

/// The headers every UI answer carries.
pub fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Every embedded file with its size, for the asset budget test.
pub fn inventory() -> Vec<(String, usize)> {
    Web::iter()
        .filter_map(|name| Web::get(&name).map(|file| (name.to_string(), file.data.len())))
        .collect()
}
