//! The web UI's server side over real HTTP: the session cookie and its CSRF check, the page
//! shell and files with their security headers, the asset budget, and the pushed streams
//! (page events, a log tailed while its task runs) on both backends with a real scheduler and
//! worker behind the server.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, ETAG, IF_NONE_MATCH, SET_COOKIE,
};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use store::Store;
use testkit::server::sync_bash_dag;
use testkit::{Server, TestStore};

/// A logged-in browser session: its cookie and CSRF value.
struct Session {
    cookie: String,
    csrf: String,
}

async fn ui_login(server: &Server, username: &str, role: &str) -> Session {
    // The user is made (and checked) by the token helper; the UI login uses the same password.
    server.login_as(username, role).await;
    let response = server
        .http
        .post(format!("{}/ui/session", server.base))
        .json(&json!({"username": username, "password": "pw-"}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} in {set_cookie}"
        );
    }
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["username"], username);
    assert_eq!(body["role"], role);
    Session {
        cookie: set_cookie
            .split(';')
            .next()
            .expect("name=value")
            .to_string(),
        csrf: body["csrf_token"].as_str().expect("csrf_token").to_string(),
    }
}

/// A request with the session cookie, with or without the CSRF header.
async fn with_cookie(
    server: &Server,
    method: Method,
    path: &str,
    session: &Session,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = server
        .http
        .request(method, format!("{}{path}", server.base))
        .header(COOKIE, &session.cookie);
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn the_session_cookie_reads_freely_and_writes_only_with_its_csrf_value() {
    let fixture = TestStore::sqlite().await;
    let store = fixture.store();
    let server = Server::start(store.clone()).await;
    let session = ui_login(&server, "ops", "Op").await;

    let (status, body) =
        with_cookie(&server, Method::GET, "/ui/session", &session, None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["csrf_token"], session.csrf.as_str());
    let (status, _) = with_cookie(&server, Method::GET, "/api/v2/dags", &session, None, None).await;
    assert_eq!(status, StatusCode::OK, "reads need no CSRF value");

    let variable = |key: &str| json!({"key": key, "value": "v"});
    for (csrf, key) in [
        (None, "no_header"),
        (Some("forged-value-000000000000000000000"), "forged"),
    ] {
        let (status, body) = with_cookie(
            &server,
            Method::POST,
            "/api/v2/variables",
            &session,
            csrf,
            Some(variable(key)),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{key}: {body}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("x-csrf-token")),
            "{body}"
        );
        assert!(store.get_variable(key).await.expect("get").is_none());
    }
    let (status, body) = with_cookie(
        &server,
        Method::POST,
        "/api/v2/variables",
        &session,
        Some(&session.csrf),
        Some(variable("with_header")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // API clients send their token deliberately: no CSRF value asked of them.
    let token = server.login_as("client", "Op").await;
    let (status, body) = server
        .call(
            Method::POST,
            "/api/v2/variables",
            Some(&token),
            Some(variable("by_bearer")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = server
        .call(Method::GET, "/ui/session", Some(&token), None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a bearer token is not a web session"
    );

    // Logging out expires the cookie.
    let response = server
        .http
        .delete(format!("{}/ui/session", server.base))
        .header(COOKIE, &session.cookie)
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let cleared = response
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("cookie cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    // A wrong password sets nothing.
    let response = server
        .http
        .post(format!("{}/ui/session", server.base))
        .json(&json!({"username": "ops", "password": "wrong"}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get(SET_COOKIE).is_none());
    server.stop().await;
}

#[tokio::test]
async fn every_page_path_serves_the_shell_with_a_content_security_policy() {
    let fixture = TestStore::sqlite().await;
    let store = fixture.store();
    let server = Server::start(store.clone()).await;
    for path in [
        "/",
        "/dags",
        "/dags/hello",
        "/dags/hello/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00",
        "/dags/hello/runs/r1/tasks/world/mapped/2",
        "/variables",
        "/import-errors",
    ] {
        let response = get(&server, path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let csp = header(&response, CONTENT_SECURITY_POLICY);
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(header(&response, CONTENT_TYPE).starts_with("text/html"));
        let text = response.text().await.expect("body");
        assert!(text.contains("/static/js/app.js"), "{path}: {text}");
    }
    let script = get(&server, "/static/js/app.js").await;
    assert_eq!(script.status(), StatusCode::OK);
    assert!(header(&script, CONTENT_TYPE).starts_with("text/javascript"));
    let etag = header(&script, ETAG);
    let again = server
        .http
        .get(format!("{}/static/js/app.js", server.base))
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .expect("revalidate");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    assert_eq!(
        get(&server, "/static/no-such-file.js").await.status(),
        StatusCode::NOT_FOUND
    );
    let unknown = get(&server, "/api/v2/no-such-thing").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(header(&unknown, CONTENT_TYPE).starts_with("application/json"));
    server.stop().await;
}

#[test]
fn the_ui_assets_stay_within_their_budget() {
    let files = api::ui::inventory();
    let total: usize = files.iter().map(|(_, size)| size).sum();
    // Uncompressed, so the compressed budget of 500 KB holds with room to spare.
    assert!(
        total <= 500 * 1024,
        "UI assets are {total} bytes: {files:?}"
    );
    assert!(files.iter().any(|(name, _)| name == "index.html"));
    for (name, _) in files
        .iter()
        .filter(|(name, _)| name.ends_with(".js") || name.ends_with(".html"))
    {
        let text =
            std::fs::read_to_string(format!("{}/../../web/{name}", env!("CARGO_MANIFEST_DIR")))
                .expect("read asset");
        assert!(
            !text.contains("innerHTML")
                && !text.contains("insertAdjacentHTML")
                && !text.contains("outerHTML"),
            "{name} must set text, never HTML"
        );
        assert!(
            !text.contains("<script src=\"http") && !text.contains("cdn."),
            "{name} loads nothing from elsewhere"
        );
    }
}

async fn get(server: &Server, path: &str) -> Response {
    server
        .http
        .get(format!("{}{path}", server.base))
        .send()
        .await
        .expect("request")
}

fn header(response: &Response, name: reqwest::header::HeaderName) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Server-Sent Events read off a streaming response.
struct Events {
    response: Response,
    buffer: String,
}

impl Events {
    async fn open(server: &Server, path: &str, session: &Session) -> Events {
        let response = server
            .http
            .get(format!("{}{path}", server.base))
            .header(COOKIE, &session.cookie)
            .send()
            .await
            .expect("stream");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(header(&response, CONTENT_TYPE).starts_with("text/event-stream"));
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (name, data), within the deadline.
    async fn next(&mut self, deadline: tokio::time::Instant) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = "message".to_string();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_string();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((
                    name,
                    serde_json::from_str(&data).unwrap_or(Value::String(data)),
                ));
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?;
            match chunk.expect("stream read") {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
            }
        }
    }
}

async fn page_events_and_a_running_tasks_log_are_pushed(store: Arc<dyn Store>) {
    let server = Server::with_engine(store.clone()).await;
    sync_bash_dag(
        store.as_ref(),
        "pushed",
        &[(
            "talk",
            "echo first; sleep 0.5; echo '<b>second</b>'; sleep 0.5; echo third",
            &[],
        )],
    )
    .await;
    let session = ui_login(&server, "watcher", "User").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut events = Events::open(&server, "/ui/events", &session).await;

    let (status, body) = with_cookie(
        &server,
        Method::POST,
        "/api/v2/dags/pushed/dagRuns",
        &session,
        Some(&session.csrf),
        Some(json!({"logical_date": null, "dag_run_id": "r1"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut states = Vec::new();
    while !states.contains(&"running".to_string()) {
        let (name, data) = events
            .next(deadline)
            .await
            .expect("a run event before the deadline");
        if name == "run" && data["dag_id"] == "pushed" && data["run_id"] == "r1" {
            states.push(data["state"].as_str().unwrap_or_default().to_string());
        }
    }

    // Open the log while the task runs: lines come as they are written, then the end.
    let mut log = Events::open(
        &server,
        "/ui/dags/pushed/runs/r1/tasks/talk/logs/1",
        &session,
    )
    .await;
    let mut lines = Vec::new();
    loop {
        let (name, data) = log
            .next(deadline)
            .await
            .expect("log events before the deadline");
        match name.as_str() {
            "lines" => lines.extend(
                data.as_array()
                    .expect("a batch")
                    .iter()
                    .map(|l| l["line"].as_str().unwrap_or_default().to_string()),
            ),
            "end" => break,
            other => panic!("unexpected log event {other}: {data}"),
        }
    }
    for expected in ["first", "<b>second</b>", "third"] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected} in {lines:?}"
        );
    }
    // …and the run's end reaches the page stream.
    loop {
        let (name, data) = events
            .next(deadline)
            .await
            .expect("the run's end before the deadline");
        if name == "run" && data["run_id"] == "r1" && data["state"] == "success" {
            break;
        }
    }
    server.stop().await;
}

testkit::backend_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    page_events_and_a_running_tasks_log_are_pushed,
);
