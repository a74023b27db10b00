//! A small real HTTP/1.1 server on a loopback port for `http` tasks and webhooks. Routes:
//! `GET /items` (JSON), `POST /echo` (the request body back, as JSON), `GET /secure` (basic
//! auth `ana:s3cret`, else 401), `GET /text` (plain text), `GET /status/N` (status N), and
//! `POST /hook` (204). Every request is recorded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::harness::wait_for;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Lower-cased names.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

pub struct HttpServer {
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    _runtime: tokio::runtime::Runtime,
}

impl HttpServer {
    pub fn start() -> HttpServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let store = requests.clone();
        runtime.spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, store.clone()));
            }
        });
        HttpServer {
            port,
            requests,
            _runtime: runtime,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }

    pub fn wait_for_request(&self, what: &str, pick: impl Fn(&Request) -> bool) -> Request {
        wait_for(what, Duration::from_secs(30), || {
            self.requests().into_iter().find(|r| pick(r))
        })
    }
}

async fn serve(socket: tokio::net::TcpStream, store: Arc<Mutex<Vec<Request>>>) {
    let (read, mut write) = socket.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut first = String::new();
        match reader.read_line(&mut first).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = first.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers = BTreeMap::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let request = Request {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        let (status, content_type, reply) = route(&request);
        store.lock().expect("lock").push(request);
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if write.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn route(request: &Request) -> (u16, &'static str, String) {
    let json = "application/json";
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/items") => (
            200,
            json,
            r#"{"items": [1, 2, 3], "source": "loopback"}"#.into(),
        ),
        ("POST", "/echo") => (200, json, request.body.clone()),
        ("GET", "/secure") => {
            let ok = request
                .headers
                .get("authorization")
                .is_some_and(|a| a == "Basic YW5hOnMzY3JldA==");
            if ok {
                (200, json, r#"{"user": "ana"}"#.into())
            } else {
                (401, json, r#"{"error": "unauthorized"}"#.into())
            }
        }
        ("GET", "/text") => (200, "text/plain", "plain words, not JSON".into()),
        ("POST", "/hook") => (204, json, String::new()),
        ("GET", path) if path.starts_with("/status/") => {
            let status = path["/status/".len()..].parse().unwrap_or(500);
            (status, "text/plain", format!("status {status}"))
        }
        _ => (404, "text/plain", "no such route".into()),
    }
}
