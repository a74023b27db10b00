//! HTTP requests described by a rendered spec: `{method, url, headers, json | body, conn_id,
//! expect_status}`, with a connection's base URL and basic auth, bounded by a timeout.
//!
//! A connection (`conn_id`) gives the base URL a relative `url` is joined to, as Airflow's
//! HTTP connections do: `host` may be a whole URL (`https://api.example.com/v1`); otherwise
//! the scheme is `schema` when it is `http`/`https` (else `http`), then `host`, `port`, and a
//! `schema` that is not a scheme as the base path. `login`/`password` become basic auth and a
//! JSON object in `extra` default headers. An absolute `url` is used as written.

use std::collections::BTreeMap;
use std::time::Duration;

use dag::HttpSpec;
use serde_json::Value;
use store::secrets::Connection;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The spec is malformed (a missing url, an unknown method, a bad status list).
    #[error("invalid http spec: {0}")]
    BadSpec(String),
    /// Nothing answered: connection refused, unknown host, TLS failure.
    #[error("could not connect to {url}: {message}")]
    Connect { url: String, message: String },
    /// The server did not answer within the timeout.
    #[error("{method} {url} timed out after {seconds}s")]
    Timeout {
        method: String,
        url: String,
        seconds: f64,
    },
    /// The request failed after connecting (reset, bad response).
    #[error("{method} {url} failed: {message}")]
    Request {
        method: String,
        url: String,
        message: String,
    },
    /// The server answered with a status the spec does not expect.
    #[error("{method} {url} answered HTTP {status}, expected {expected}; body: {body}")]
    UnexpectedStatus {
        method: String,
        url: String,
        status: u16,
        expected: String,
        /// The start of the response body, for the log.
        body: String,
        /// The whole response, for callers that still want it.
        response: Box<HttpResponse>,
    },
}

/// Which statuses count as success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectStatus {
    /// Any 2xx (the default).
    AnySuccess,
    /// Exactly these.
    Codes(Vec<u16>),
}

impl ExpectStatus {
    pub fn accepts(&self, status: u16) -> bool {
        match self {
            ExpectStatus::AnySuccess => (200..300).contains(&status),
            ExpectStatus::Codes(codes) => codes.contains(&status),
        }
    }

    fn describe(&self) -> String {
        match self {
            ExpectStatus::AnySuccess => "2xx".to_string(),
            ExpectStatus::Codes(codes) => codes
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or "),
        }
    }

    /// From `expect_status`: a number, a numeric string, or a list of them.
    pub fn from_spec(value: Option<&Value>) -> Result<ExpectStatus, HttpError> {
        let one = |v: &Value| -> Result<u16, HttpError> {
            let code = match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse::<u64>().ok(),
                _ => None,
            };
            code.and_then(|c| u16::try_from(c).ok())
                .filter(|c| (100..600).contains(c))
                .ok_or_else(|| {
                    HttpError::BadSpec(format!(
                        "expect_status must be an HTTP status or a list of them, got {v}"
                    ))
                })
        };
        match value {
            None | Some(Value::Null) => Ok(ExpectStatus::AnySuccess),
            Some(Value::Array(items)) => Ok(ExpectStatus::Codes(
                items.iter().map(one).collect::<Result<_, _>>()?,
            )),
            Some(v) => Ok(ExpectStatus::Codes(vec![one(v)?])),
        }
    }
}

/// What to send.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestBody {
    None,
    /// Sent as JSON with `Content-Type: application/json`.
    Json(Value),
    /// Sent as written.
    Text(String),
}

/// One request, resolved against its connection.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: RequestBody,
    pub basic_auth: Option<(String, Option<String>)>,
    pub expect_status: ExpectStatus,
    pub timeout: Duration,
}

/// What came back.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    /// The body as JSON when it parses, else as a JSON string of its text.
    pub body: Value,
    /// Whether `body` parsed as JSON.
    pub is_json: bool,
}

/// A request as its caller knows it, before its connection is applied: what an `http` task's
/// rendered spec says, or what an `http` sensor's typed probe gives.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestParts {
    /// An HTTP method name, upper case.
    pub method: String,
    /// Absolute, or relative to the connection's base URL.
    pub url: String,
    /// Sent on top of the connection's default headers.
    pub headers: BTreeMap<String, String>,
    pub body: RequestBody,
    pub expect_status: ExpectStatus,
}

impl RequestParts {
    /// The parts a rendered spec gives (see the module docs).
    pub fn from_spec(spec: &HttpSpec) -> Result<RequestParts, HttpError> {
        let get = |field: &Option<Value>| field.clone().filter(|v| !v.is_null());
        let method = match get(&spec.method) {
            None => "GET".to_string(),
            Some(Value::String(m)) => m.trim().to_ascii_uppercase(),
            Some(other) => {
                return Err(HttpError::BadSpec(format!(
                    "method must be a string, got {other}"
                )));
            }
        };
        let url = match get(&spec.url) {
            None => String::new(),
            Some(Value::String(u)) => u.trim().to_string(),
            Some(other) => {
                return Err(HttpError::BadSpec(format!(
                    "url must be a string, got {other}"
                )));
            }
        };
        let mut headers = BTreeMap::new();
        match get(&spec.headers) {
            None => {}
            Some(Value::Object(map)) => {
                for (name, value) in map {
                    headers.insert(name, text_of(&value));
                }
            }
            Some(other) => {
                return Err(HttpError::BadSpec(format!(
                    "headers must be a mapping, got {other}"
                )));
            }
        }
        let body = match (get(&spec.json), get(&spec.body)) {
            (Some(_), Some(_)) => {
                return Err(HttpError::BadSpec("set json or body, not both".to_string()));
            }
            (Some(json), None) => RequestBody::Json(json),
            (None, Some(body)) => RequestBody::Text(text_of(&body)),
            (None, None) => RequestBody::None,
        };
        Ok(RequestParts {
            method,
            url,
            headers,
            body,
            expect_status: ExpectStatus::from_spec(get(&spec.expect_status).as_ref())?,
        })
    }
}

impl HttpRequest {
    /// A request from a rendered spec (see the module docs); `connection` is the spec's
    /// `conn_id`, already looked up by the caller.
    pub fn from_spec(
        spec: &HttpSpec,
        connection: Option<&Connection>,
        timeout: Duration,
    ) -> Result<HttpRequest, HttpError> {
        HttpRequest::new(RequestParts::from_spec(spec)?, connection, timeout)
    }

    /// A request of `parts` resolved against `connection`: its base URL for a relative `url`,
    /// its `extra` as default headers, its login as basic auth.
    pub fn new(
        parts: RequestParts,
        connection: Option<&Connection>,
        timeout: Duration,
    ) -> Result<HttpRequest, HttpError> {
        let RequestParts {
            method,
            url,
            headers: own_headers,
            body,
            expect_status,
        } = parts;
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(HttpError::BadSpec(format!(
                "'{method}' is not an HTTP method"
            )));
        }
        let url = resolve_url(url.trim(), connection)?;
        let mut headers = BTreeMap::new();
        if let Some(Value::Object(extra)) = connection.map(Connection::extra_json) {
            for (name, value) in extra {
                headers.insert(name, text_of(&value));
            }
        }
        headers.extend(own_headers);
        let basic_auth =
            connection.and_then(|c| c.login.clone().map(|login| (login, c.password.clone())));
        Ok(HttpRequest {
            method,
            url,
            headers,
            body,
            basic_auth,
            expect_status,
            timeout,
        })
    }

    /// Send the request and read the whole response. A status outside `expect_status` is an
    /// error that still carries the response.
    pub async fn send(&self) -> Result<HttpResponse, HttpError> {
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .build()
            .map_err(|e| HttpError::Request {
                method: self.method.clone(),
                url: self.url.clone(),
                message: chain(&e),
            })?;
        let method = reqwest::Method::from_bytes(self.method.as_bytes())
            .map_err(|_| HttpError::BadSpec(format!("'{}' is not an HTTP method", self.method)))?;
        let mut request = client.request(method, &self.url);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some((login, password)) = &self.basic_auth {
            request = request.basic_auth(login, password.as_ref());
        }
        request = match &self.body {
            RequestBody::None => request,
            RequestBody::Json(json) => request.json(json),
            RequestBody::Text(text) => request.body(text.clone()),
        };
        let response = request.send().await.map_err(|e| self.error(&e))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| self.error(&e))?;
        let (body, is_json) = match serde_json::from_str::<Value>(&text) {
            Ok(json) if !text.trim().is_empty() => (json, true),
            _ => (Value::String(text), false),
        };
        let response = HttpResponse {
            status,
            body,
            is_json,
        };
        if !self.expect_status.accepts(status) {
            let body = match &response.body {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            return Err(HttpError::UnexpectedStatus {
                method: self.method.clone(),
                url: self.url.clone(),
                status,
                expected: self.expect_status.describe(),
                body: truncate(&body, 500),
                response: Box::new(response),
            });
        }
        Ok(response)
    }

    fn error(&self, err: &reqwest::Error) -> HttpError {
        if err.is_timeout() {
            HttpError::Timeout {
                method: self.method.clone(),
                url: self.url.clone(),
                seconds: self.timeout.as_secs_f64(),
            }
        } else if err.is_connect() {
            HttpError::Connect {
                url: self.url.clone(),
                message: chain(err),
            }
        } else {
            HttpError::Request {
                method: self.method.clone(),
                url: self.url.clone(),
                message: chain(err),
            }
        }
    }
}

/// The base URL a connection gives (see the module docs).
pub fn base_url(connection: &Connection) -> Result<String, HttpError> {
    let host = connection.host.as_deref().unwrap_or_default().trim();
    if host.is_empty() {
        return Err(HttpError::BadSpec(format!(
            "connection '{}' has no host",
            connection.conn_id
        )));
    }
    if host.starts_with("http://") || host.starts_with("https://") {
        return Ok(host.trim_end_matches('/').to_string());
    }
    let schema = connection.schema.as_deref().unwrap_or_default().trim();
    let (scheme, path) = match schema {
        "http" | "https" => (schema, ""),
        _ if connection.conn_type == "https" => ("https", schema),
        _ => ("http", schema),
    };
    let mut url = format!("{scheme}://{host}");
    if let Some(port) = connection.port {
        url.push_str(&format!(":{port}"));
    }
    let path = path.trim_matches('/');
    if !path.is_empty() {
        url.push('/');
        url.push_str(path);
    }
    Ok(url)
}

fn resolve_url(path: &str, connection: Option<&Connection>) -> Result<String, HttpError> {
    let absolute = path.starts_with("http://") || path.starts_with("https://");
    let url = match connection {
        Some(conn) if !absolute => {
            let base = base_url(conn)?;
            let path = path.trim_start_matches('/');
            if path.is_empty() {
                base
            } else {
                format!("{base}/{path}")
            }
        }
        _ => path.to_string(),
    };
    if url.is_empty() {
        return Err(HttpError::BadSpec(
            "url is empty and no conn_id gives one".into(),
        ));
    }
    url::Url::parse(&url)
        .map_err(|e| HttpError::BadSpec(format!("'{url}' is not a valid URL: {e}")))?;
    Ok(url)
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An error with its causes, which is where reqwest puts "Connection refused".
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: Value) -> HttpSpec {
        serde_json::from_value(value).expect("a spec")
    }

    fn conn(uri: &str) -> Connection {
        Connection::from_uri("api", uri).expect("uri")
    }

    #[test]
    fn base_urls_follow_the_connection() {
        for (uri, base) in [
            ("http://ana:pw@example.com:8080", "http://example.com:8080"),
            ("http://example.com/https", "https://example.com"),
            ("https://example.com/v1", "https://example.com/v1"),
            ("http://example.com/api/v2", "http://example.com/api/v2"),
        ] {
            assert_eq!(base_url(&conn(uri)).expect("base"), base, "{uri}");
        }
    }

    #[test]
    fn specs_resolve_against_their_connection() {
        let c = conn("http://ana:pw@127.0.0.1:9000");
        let request = HttpRequest::from_spec(
            &spec(json!({"url": "/items", "method": "post", "json": {"a": 1}, "expect_status": [200, "201"]})),
            Some(&c),
            Duration::from_secs(1),
        )
        .expect("valid");
        assert_eq!(request.url, "http://127.0.0.1:9000/items");
        assert_eq!(request.method, "POST");
        assert_eq!(request.basic_auth, Some(("ana".into(), Some("pw".into()))));
        assert_eq!(request.expect_status, ExpectStatus::Codes(vec![200, 201]));
        assert!(request.expect_status.accepts(201));
        assert!(!request.expect_status.accepts(204));
        assert!(ExpectStatus::AnySuccess.accepts(204));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let t = Duration::from_secs(1);
        for (spec, needle) in [
            (json!({}), "url is empty"),
            (json!({"url": "not a url"}), "not a valid URL"),
            (
                json!({"url": "http://x", "expect_status": "abc"}),
                "expect_status",
            ),
            (
                json!({"url": "http://x", "method": "GE T"}),
                "not an HTTP method",
            ),
            (
                json!({"url": "http://x", "json": {}, "body": "b"}),
                "not both",
            ),
        ] {
            let err = HttpRequest::from_spec(&self::spec(spec), None, t).expect_err("invalid");
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
    }
}
