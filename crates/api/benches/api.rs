//! `cargo bench -p api`: latency and throughput of the REST API over loopback HTTP on a
//! SQLite store holding 20 DAGs with 500 runs of 5 tasks each: the listings a UI or script
//! polls, a trigger, and a token exchange, one client at a time and 16 at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::Client;
use serde_json::json;
use store::{NewUser, Store};

const DAGS: usize = 20;
const RUNS: usize = 500;

#[tokio::main]
async fn main() {
    let store: Arc<dyn Store> = Arc::new(
        store_sqlite::SqliteStore::temporary()
            .await
            .expect("sqlite"),
    );
    let started = Instant::now();
    for d in 0..DAGS {
        let dag =
            testkit::conformance::chain_dag(&format!("dag_{d:02}"), &["a", "b", "c", "d", "e"]);
        store.sync_dag(&dag, "v1", Utc::now()).await.expect("sync");
        if d == 0 {
            for r in 0..RUNS {
                let run = testkit::conformance::new_run(
                    &dag,
                    &format!("run_{r:04}"),
                    Utc::now() - chrono::Duration::minutes(r as i64),
                );
                store.create_run(&run).await.expect("run");
            }
        }
    }
    store
        .create_user(&NewUser {
            username: "bench".into(),
            password_hash: api::auth::hash_password("bench").expect("hash"),
            role: "Admin".into(),
            now: Utc::now(),
        })
        .await
        .expect("user");
    println!(
        "fixture: {DAGS} DAGs, {RUNS} runs × 5 tasks of dag_00 in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let state = api::AppState::new(
        store.clone(),
        Arc::new(store::secrets::Vault::clear()),
        api::TokenKeys::new(b"bench", Duration::from_secs(3600)),
    );
    tokio::spawn(api::serve(listener, state, std::future::pending()));
    let http = Client::new();
    let token: String = {
        let t = Instant::now();
        let body: serde_json::Value = http
            .post(format!("{base}/auth/token"))
            .json(&json!({"username": "bench", "password": "bench"}))
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("json");
        println!(
            "token exchange (argon2 verify): {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        body["access_token"].as_str().expect("token").to_string()
    };

    let gets = [
        ("GET /dags?limit=50", "/api/v2/dags?limit=50".to_string()),
        (
            "GET /dags/{id}/dagRuns?limit=50&order_by=-run_after",
            "/api/v2/dags/dag_00/dagRuns?limit=50&order_by=-run_after".to_string(),
        ),
        (
            "GET …/dagRuns/{run}/taskInstances",
            "/api/v2/dags/dag_00/dagRuns/run_0250/taskInstances".to_string(),
        ),
        (
            "GET /dags/{id}/details",
            "/api/v2/dags/dag_05/details".to_string(),
        ),
        ("GET /monitor/health", "/api/v2/monitor/health".to_string()),
    ];
    println!(
        "{:<55} {:>5} {:>9} {:>9} {:>9}",
        "request", "conc", "p50 ms", "p99 ms", "req/s"
    );
    for (name, path) in &gets {
        for concurrency in [1, 16] {
            measure(&http, &base, &token, name, path, concurrency, None).await;
        }
    }
    let trigger = json!({"logical_date": null});
    measure(
        &http,
        &base,
        &token,
        "POST /dags/{id}/dagRuns (trigger)",
        "/api/v2/dags/dag_07/dagRuns",
        1,
        Some(&trigger),
    )
    .await;
}

async fn measure(
    http: &Client,
    base: &str,
    token: &str,
    name: &str,
    path: &str,
    concurrency: usize,
    body: Option<&serde_json::Value>,
) {
    let per_client = 400 / concurrency;
    let started = Instant::now();
    let mut clients = Vec::new();
    for client in 0..concurrency {
        let http = http.clone();
        let url = format!("{base}{path}");
        let token = token.to_string();
        let body = body.cloned();
        clients.push(tokio::spawn(async move {
            let mut times = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let t = Instant::now();
                let request = match &body {
                    // Distinct run ids: a trigger with a repeated logical date is refused.
                    Some(b) => {
                        let mut b = b.clone();
                        b["dag_run_id"] = json!(format!("bench_{client}_{i}"));
                        http.post(&url).json(&b)
                    }
                    None => http.get(&url),
                };
                let response = request.bearer_auth(&token).send().await.expect("send");
                assert!(
                    response.status().is_success(),
                    "{url}: {}",
                    response.status()
                );
                let _ = response.bytes().await.expect("body");
                times.push(t.elapsed());
            }
            times
        }));
    }
    let mut all = Vec::new();
    for client in clients {
        all.extend(client.await.expect("client"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e3;
    println!(
        "{:<55} {:>5} {:>9.2} {:>9.2} {:>9.0}",
        name,
        concurrency,
        pct(0.5),
        pct(0.99),
        all.len() as f64 / elapsed
    );
}
