//! The REST API served over real HTTP on a loopback port, optionally with a scheduler and a
//! worker behind it, and the requests tests make to it.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use store::secrets::Vault;
use store::{NewUser, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use worker::WorkerConfig;

use crate::engine::{Engine, scheduler_config};

/// The password of every user [`Server::login_as`] makes.
const PASSWORD: &str = "pw-";

/// An API server on 127.0.0.1 (any free port) over one store.
pub struct Server {
    /// Where it listens, as `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client for requests the helpers below do not cover.
    pub http: Client,
    pub store: Arc<dyn Store>,
    /// Set to `true` to stop serving.
    stop: watch::Sender<bool>,
    serving: JoinHandle<()>,
    /// The scheduler and worker, for a server started [`Server::with_engine`].
    engine: Option<Engine>,
}

impl Server {
    /// The API alone: what it reads and writes, nothing runs.
    pub async fn start(store: Arc<dyn Store>) -> Server {
        let (stop, rx) = watch::channel(false);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let state = api::AppState::new(
            store.clone(),
            Arc::new(Vault::new(Some(&Vault::generate_key())).expect("vault")),
            api::TokenKeys::new(b"test secret", Duration::from_secs(3600)),
        );
        let serving = tokio::spawn(async move {
            let mut rx = rx;
            api::serve(listener, state, async move {
                let _ = rx.wait_for(|stop| *stop).await;
            })
            .await
            .expect("serve");
        });
        Server {
            base,
            http: Client::new(),
            store,
            stop,
            serving,
            engine: None,
        }
    }

    /// The API with a scheduler and a worker behind it, so that triggered runs run.
    pub async fn with_engine(store: Arc<dyn Store>) -> Server {
        let mut server = Server::start(store.clone()).await;
        server.engine = Some(Engine::start(
            store,
            scheduler_config(),
            WorkerConfig::new("api-test").with_concurrency(4),
        ));
        server
    }

    /// Stop serving, then the engine behind it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.serving.await;
        if let Some(engine) = self.engine {
            engine.stop().await;
        }
    }

    /// A new user with `role`, and a token for it got through `/auth/token`.
    pub async fn login_as(&self, username: &str, role: &str) -> String {
        let hash = api::auth::hash_password(PASSWORD).expect("hash");
        self.store
            .create_user(&NewUser {
                username: username.to_string(),
                password_hash: hash,
                role: role.to_string(),
                first_name: None,
                last_name: None,
                email: None,
                now: Utc::now(),
            })
            .await
            .expect("create user");
        let (status, body) = self
            .call(
                Method::POST,
                "/auth/token",
                None,
                Some(json!({"username": username, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// One request: the status and the body as JSON (or as a JSON string when it is not).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// A GET that must answer 200; its body.
    pub async fn get(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// Poll `path` until `done` holds for its body, within 30 s.
    pub async fn wait_until(
        &self,
        path: &str,
        token: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let body = self.get(path, token).await;
            if done(&body) {
                return body;
            }
            if tokio::time::Instant::now() >= deadline {
                let tis = self.get(&format!("{path}/taskInstances"), token).await;
                panic!("timed out waiting on {path}: {body}\ntask instances: {tis}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A DAG of bash tasks `(task id, command, upstream)` synced into the store, unscheduled and
/// unpaused.
pub async fn sync_bash_dag(store: &dyn Store, dag_id: &str, tasks: &[(&str, &str, &[&str])]) {
    let mut dag = crate::conformance::chain_dag(dag_id, &[]);
    dag.tasks = tasks
        .iter()
        .map(|(id, command, upstream)| {
            let mut task = crate::conformance::task(id, upstream);
            task.kind = dag::TaskKind::Bash {
                command: command.to_string(),
            };
            task
        })
        .collect();
    dag.schedule = dag::Schedule::None;
    store
        .sync_dag(&dag, &format!("{dag_id}-v1"), Utc::now())
        .await
        .expect("sync");
}
