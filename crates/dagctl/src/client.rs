//! The HTTP client of the client commands: one server's `/api/v2`, a Bearer token, the API's
//! own models in and out, listings paged to the end, and the server's `{"detail": …}` errors
//! turned into one line a user can act on.

use std::time::Duration;

use api::models;
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Where the client commands send their requests when neither `--server` nor
/// `$UPDRAFT_SERVER` says otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// The largest page the API hands out; listings ask for it and page on with `offset`.
const PAGE: usize = 100;

/// What can go wrong talking to the server, each worded as the one line the user sees.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--server` is not a URL this client can use.
    #[error("invalid server URL '{url}': {reason}")]
    BadUrl { url: String, reason: String },
    /// Nothing answered at the address (refused, no route, DNS, timeout).
    #[error(
        "the server at {server} is unreachable ({reason}); start one with `dagctl standalone`, or point --server / $UPDRAFT_SERVER at it"
    )]
    Unreachable { server: String, reason: String },
    /// 401: no token, or one the server no longer accepts.
    #[error("not logged in to {server} ({detail}): run `dagctl login` (or set $UPDRAFT_TOKEN)")]
    Unauthorized { server: String, detail: String },
    /// Any other answer outside 2xx, with the server's `detail` text.
    #[error("{detail}")]
    Status { status: StatusCode, detail: String },
    /// A 2xx answer whose body is not what the API promises.
    #[error("unexpected answer from {url}: {reason}")]
    Decode { url: String, reason: String },
}

impl ClientError {
    /// The HTTP status the server answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            ClientError::Unauthorized { .. } => Some(StatusCode::UNAUTHORIZED),
            _ => None,
        }
    }
}

pub type ClientResult<T> = Result<T, ClientError>;

/// A connection to one server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Client {
    /// A client for `server` (e.g. `http://127.0.0.1:8080`), sending `token` if given.
    pub fn new(server: &str, token: Option<String>) -> ClientResult<Client> {
        let base = parse_server(server)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("dagctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::BadUrl {
                url: server.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Client { http, base, token })
    }

    /// The server's base URL as the user gave it (no trailing slash, no `/api/v2`).
    pub fn server(&self) -> String {
        server_text(&self.base)
    }

    /// The URL of a path given as segments, each percent-encoded on its own (run ids hold
    /// `:` and `+`, DAG ids may hold `.`), below the server's base path.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// GET, decoded as `T`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> ClientResult<T> {
        let url = self.url(segments);
        let response = self.send(Method::GET, url.clone(), query, None).await?;
        decode(url, response).await
    }

    /// GET, with a 404 read as "there is none".
    pub async fn get_optional<T: DeserializeOwned>(
        &self,
        segments: &[&str],
    ) -> ClientResult<Option<T>> {
        match self.get(segments, &[]).await {
            Ok(value) => Ok(Some(value)),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// POST a JSON body, decoded as `T`.
    pub async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &impl Serialize,
    ) -> ClientResult<T> {
        self.with_body(Method::POST, segments, &[], body).await
    }

    /// PATCH a JSON body, decoded as `T`; `query` may carry an `update_mask`.
    pub async fn patch<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        body: &impl Serialize,
    ) -> ClientResult<T> {
        self.with_body(Method::PATCH, segments, query, body).await
    }

    /// DELETE; the body of the answer (usually none, 204) is ignored.
    pub async fn delete(&self, segments: &[&str]) -> ClientResult<()> {
        self.send(Method::DELETE, self.url(segments), &[], None)
            .await
            .map(drop)
    }

    /// Every item of a listing, asking for full pages with `limit` and `offset` until
    /// `total_entries` are read or a page comes back empty.
    pub async fn list_all<L: Listing>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> ClientResult<Vec<L::Item>> {
        let mut items = Vec::new();
        loop {
            let mut page_query = query.to_vec();
            page_query.push(("limit", PAGE.to_string()));
            page_query.push(("offset", items.len().to_string()));
            let page: L = self.get(segments, &page_query).await?;
            let total = page.total_entries();
            let batch = page.into_items();
            let got = batch.len();
            items.extend(batch);
            if got == 0 || items.len() as i64 >= total {
                return Ok(items);
            }
        }
    }

    async fn with_body<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: &impl Serialize,
    ) -> ClientResult<T> {
        let url = self.url(segments);
        let body = serde_json::to_value(body).map_err(|e| ClientError::Decode {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let response = self.send(method, url.clone(), query, Some(&body)).await?;
        decode(url, response).await
    }

    /// Send one request; a non-2xx answer becomes a [`ClientError`].
    async fn send(
        &self,
        method: Method,
        url: Url,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> ClientResult<reqwest::Response> {
        let mut request = self
            .http
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            server: self.server(),
            reason: transport_reason(&e),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let mut detail = detail_text(status, &text);
        if status == StatusCode::NOT_FOUND && detail == "Not Found" {
            // No handler answered at all (the API names what it did not find): the path is
            // wrong, most likely because the server URL is not the server's base.
            detail = format!(
                "Not Found: {} has no such API endpoint; give --server the base URL of an \
                 Updraft server, e.g. http://127.0.0.1:8080, without /api/v2",
                self.server()
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized {
                server: self.server(),
                detail,
            });
        }
        Err(ClientError::Status { status, detail })
    }
}

/// A paged listing answer of the API: one page of items and how many there are in all.
pub trait Listing: DeserializeOwned {
    type Item;
    fn total_entries(&self) -> i64;
    fn into_items(self) -> Vec<Self::Item>;
}

/// Each collection response names its list after what it holds.
macro_rules! listings {
    ($($collection:ty => $items:ident: $item:ty),* $(,)?) => {$(
        impl Listing for $collection {
            type Item = $item;
            fn total_entries(&self) -> i64 {
                self.total_entries
            }
            fn into_items(self) -> Vec<$item> {
                self.$items
            }
        }
    )*};
}

listings! {
    models::DAGCollectionResponse => dags: models::DAGResponse,
    models::DAGRunCollectionResponse => dag_runs: models::DAGRunResponse,
    models::TaskInstanceCollectionResponse => task_instances: models::TaskInstanceResponse,
    models::XComCollectionResponse => xcom_entries: models::XComResponse,
    models::VariableCollectionResponse => variables: models::VariableResponse,
    models::ConnectionCollectionResponse => connections: models::ConnectionResponse,
    models::PoolCollectionResponse => pools: models::PoolResponse,
    models::ImportErrorCollectionResponse => import_errors: models::ImportErrorResponse,
}

async fn decode<T: DeserializeOwned>(url: Url, response: reqwest::Response) -> ClientResult<T> {
    let bytes = response.bytes().await.map_err(|e| ClientError::Decode {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    // An empty body (204) reads as JSON null, so `Value` and `Option<_>` callers accept it.
    let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
    serde_json::from_slice(bytes).map_err(|e| ClientError::Decode {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

/// The server URL as given, checked: http(s) only, no query or fragment. A URL that ends in
/// `/api/v2` (copied from the API's own address) is taken as the base it is under, since the
/// client adds that part itself; a bare `host:port` is refused with the URL it should be.
pub fn parse_server(server: &str) -> ClientResult<Url> {
    let text = server.trim();
    let bad = |reason: String| ClientError::BadUrl {
        url: server.to_string(),
        reason,
    };
    // `127.0.0.1:8080` and `localhost:8080` lack only the scheme: say what to write.
    let suggestion = || {
        let with_scheme = format!("http://{text}");
        let usable =
            !text.contains("://") && Url::parse(&with_scheme).is_ok_and(|u| u.host_str().is_some());
        if usable {
            format!("; did you mean {with_scheme}?")
        } else {
            String::new()
        }
    };
    let mut url = Url::parse(text).map_err(|e| bad(format!("{e}{}", suggestion())))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!("use http:// or https://{}", suggestion())));
    }
    if url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(bad("no host".to_string()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a server URL takes no query or fragment".to_string()));
    }
    let path = url.path().trim_end_matches('/');
    if let Some(base) = path.strip_suffix(API_PATH) {
        let base = base.to_string();
        url.set_path(&base);
    }
    Ok(url)
}

/// What the client puts after the server's base URL.
const API_PATH: &str = "/api/v2";

/// A server URL as it is shown: no trailing slash.
pub fn server_text(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_string()
}

/// Why a request never got an answer, in a few words.
fn transport_reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "no answer in time".into();
    }
    // The innermost cause says it best ("Connection refused (os error 111)").
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    let text = source.to_string();
    if text.contains("refused") {
        "connection refused".into()
    } else {
        text
    }
}

/// The text of an error answer: the `detail` string, or for validation errors (422) each
/// `loc: msg` joined; a body that is not the API's error shape is shown as it came.
pub fn detail_text(status: StatusCode, body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let detail = parsed.as_ref().and_then(|v| v.get("detail"));
    let text = match detail {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(validation_item)
            .collect::<Vec<_>>()
            .join("; "),
        Some(other @ Value::Object(_)) => other
            .get("message")
            .or_else(|| other.get("reason"))
            .and_then(Value::as_str)
            .map_or_else(|| other.to_string(), str::to_string),
        Some(other) => other.to_string(),
        None => {
            let trimmed = body.trim();
            if trimmed.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("no reason given")
                    .to_string()
            } else {
                trimmed.chars().take(300).collect()
            }
        }
    };
    let text = text.replace('\n', " ");
    if status == StatusCode::UNPROCESSABLE_ENTITY && !matches!(detail, Some(Value::String(_))) {
        format!("invalid request: {text}")
    } else {
        text
    }
}

/// One entry of a 422 `detail` list: `body.conf: Input should be a valid dictionary`.
fn validation_item(item: &Value) -> String {
    let msg = item
        .get("msg")
        .and_then(Value::as_str)
        .map_or_else(|| item.to_string(), str::to_string);
    let loc: Vec<String> = item
        .get("loc")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if loc.is_empty() {
        msg
    } else {
        format!("{}: {msg}", loc.join("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_detail(status: u16, body: &str, expected: &str) {
        let status = StatusCode::from_u16(status).expect("status");
        assert_eq!(detail_text(status, body), expected, "body {body}");
    }

    #[test]
    fn error_bodies_become_one_line() {
        check_detail(
            404,
            r#"{"detail": "DAG 'x' not found"}"#,
            "DAG 'x' not found",
        );
        check_detail(
            409,
            r#"{"detail": "Pool 'p'\nalready exists"}"#,
            "Pool 'p' already exists",
        );
        check_detail(
            422,
            r#"{"detail": [{"loc": ["body", "conf"], "msg": "Input should be a valid dictionary", "type": "dict_type"},
                           {"loc": ["query", "limit", 0], "msg": "too big", "type": "x"}]}"#,
            "invalid request: body.conf: Input should be a valid dictionary; query.limit.0: too big",
        );
        check_detail(422, r#"{"detail": "bad date"}"#, "bad date");
        check_detail(
            400,
            r#"{"detail": {"reason": "not_found", "message": "no such file"}}"#,
            "no such file",
        );
        check_detail(502, "", "Bad Gateway");
        check_detail(500, "upstream broke", "upstream broke");
    }

    #[test]
    fn server_urls_are_checked_and_shown_without_a_trailing_slash_or_the_api_path() {
        for (given, shown) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            (
                "https://updraft.example/base/",
                "https://updraft.example/base",
            ),
            ("http://127.0.0.1:8080/api/v2", "http://127.0.0.1:8080"),
            ("http://127.0.0.1:8080/api/v2/", "http://127.0.0.1:8080"),
            ("https://h/base/api/v2", "https://h/base"),
            ("http://h/api/v2x", "http://h/api/v2x"),
        ] {
            let url = parse_server(given).expect(given);
            assert_eq!(server_text(&url), shown);
        }
        for (bad, reason) in [
            (
                "127.0.0.1:18181",
                "relative URL without a base; did you mean http://127.0.0.1:18181?",
            ),
            (
                "localhost:8080",
                "use http:// or https://; did you mean http://localhost:8080?",
            ),
            ("ftp://h", "use http:// or https://"),
            ("http://h/?x=1", "a server URL takes no query or fragment"),
            ("not a url", "relative URL without a base"),
        ] {
            let error = parse_server(bad).expect_err(bad).to_string();
            assert_eq!(error, format!("invalid server URL '{bad}': {reason}"));
        }
    }

    #[test]
    fn path_segments_are_encoded_one_by_one_below_the_base_path() {
        let client = Client::new("http://h:1/base/", None).expect("client");
        let url = client.url(&[
            "api",
            "v2",
            "dags",
            "my.dag",
            "dagRuns",
            "manual__2024-01-01T00:00:00+00:00",
            "taskInstances",
            "a/b c",
        ]);
        assert_eq!(
            url.as_str(),
            "http://h:1/base/api/v2/dags/my.dag/dagRuns/manual__2024-01-01T00:00:00+00:00/taskInstances/a%2Fb%20c"
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_reported_as_unreachable() {
        // Bind then drop a listener: nothing listens on that port afterwards.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let server = format!("http://127.0.0.1:{port}");
        let client = Client::new(&server, None).expect("client");
        let error = client
            .get::<Value>(&["api", "v2", "dags"], &[])
            .await
            .expect_err("nothing listens");
        assert_eq!(
            error.to_string(),
            format!(
                "the server at {server} is unreachable (connection refused); start one with `dagctl standalone`, or point --server / $UPDRAFT_SERVER at it"
            )
        );
    }
}
