//! `cargo bench -p api`: latency and throughput of the REST API over loopback HTTP, on each
//! store backend in turn, in two fixtures:
//!
//! - **small**: 20 DAGs, 500 runs of 5 tasks of one of them: the listings a UI or script polls,
//!   a trigger, and a token exchange, one client at a time and 16 at once;
//! - **history**: 1,000 DAGs, 100,000 finished runs and 2,000,000 task instances (one DAG
//!   holding a tenth of the runs), one try with a 100,000-line log, written in bulk by
//!   `store::history`: the DAG list and its summaries, a DAG's runs, every DAG's runs, a run's
//!   task instances, the grid of a DAG's last 25 runs, and pages of the long log.
//!
//! The backend is the first argument or `API_BENCH_BACKEND`: `sqlite`, `postgres` or `both`
//! (the default). `API_BENCH_SCALE` (default 1) scales the history down (0.01: 10 DAGs, 1,000
//! runs) for a quick run; `API_BENCH_FIXTURES` (`small,history` by default) picks fixtures.
//! Postgres is the test server (`UPDRAFT_TEST_POSTGRES_URL`), in a scratch database.
//! `API_BENCH_SQLITE_PATH` and `API_BENCH_POSTGRES_URL` keep the history in a database of
//! your choosing instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::Client;
use serde_json::{Value, json};
use store::Store;
use store::history::{self, HistoryShape};
use testkit::{Backend, TestStore};

const DAGS: usize = 20;
const RUNS: usize = 500;

/// The history at scale 1.
const HISTORY_DAGS: usize = 1000;
const HISTORY_RUNS: usize = 100_000;
const HISTORY_TASKS: usize = 20;
const HISTORY_LOG_LINES: usize = 100_000;

/// Requests per measurement (spread over the clients), unless the time budget ends it first.
const REQUESTS: usize = 400;
const BUDGET: Duration = Duration::from_secs(20);

#[tokio::main]
async fn main() {
    let backends = backends();
    let fixtures = std::env::var("API_BENCH_FIXTURES").unwrap_or_else(|_| "small,history".into());
    let scale: f64 = std::env::var("API_BENCH_SCALE")
        .ok()
        .map(|s| s.parse().expect("API_BENCH_SCALE is a number"))
        .unwrap_or(1.0);
    for backend in backends {
        for fixture in fixtures.split(',') {
            let Some(opened) = open(backend, fixture).await else {
                println!("{backend:?}: unreachable, skipped");
                continue;
            };
            let store = opened.store();
            println!("\n=== {} · {fixture} fixture", store.backend());
            match fixture {
                "small" => small(store).await,
                "history" => big_history(store, scale).await,
                other => panic!("unknown fixture {other}: small or history"),
            }
        }
    }
}

/// A store for one fixture: a scratch database, or for the history the database that
/// `API_BENCH_SQLITE_PATH` or `API_BENCH_POSTGRES_URL` names, kept afterwards (to look at
/// its query plans, or to measure again without loading: runs stored already are skipped).
async fn open(backend: Backend, fixture: &str) -> Option<Opened> {
    let kept = match backend {
        Backend::Sqlite => std::env::var("API_BENCH_SQLITE_PATH").ok(),
        Backend::Postgres => std::env::var("API_BENCH_POSTGRES_URL").ok(),
    };
    match kept.filter(|_| fixture == "history") {
        Some(place) => {
            let store: Arc<dyn Store> = match backend {
                Backend::Sqlite => Arc::new(
                    store_sqlite::SqliteStore::open(&place)
                        .await
                        .expect("open the SQLite file"),
                ),
                Backend::Postgres => Arc::new(testkit::backend::connect_postgres(&place).await),
            };
            println!("(kept database: {place})");
            Some(Opened::Kept(store))
        }
        None => TestStore::open(backend).await.map(Opened::Scratch),
    }
}

enum Opened {
    Scratch(TestStore),
    Kept(Arc<dyn Store>),
}

impl Opened {
    fn store(&self) -> Arc<dyn Store> {
        match self {
            Opened::Scratch(scratch) => scratch.store(),
            Opened::Kept(store) => store.clone(),
        }
    }
}

/// The backends asked for: the first argument that names one (cargo passes `--bench`), else
/// `API_BENCH_BACKEND`, else both.
fn backends() -> Vec<Backend> {
    let named = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .or_else(|| std::env::var("API_BENCH_BACKEND").ok())
        .unwrap_or_else(|| "both".to_string());
    match named.as_str() {
        "sqlite" => vec![Backend::Sqlite],
        "postgres" => vec![Backend::Postgres],
        "both" => vec![Backend::Sqlite, Backend::Postgres],
        other => panic!("unknown backend {other}: sqlite, postgres or both"),
    }
}

/// The original fixture and its figures.
async fn small(store: Arc<dyn Store>) {
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
    println!(
        "fixture: {DAGS} DAGs, {RUNS} runs × 5 tasks of dag_00 in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let server = Server::start(store).await;
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
    header();
    for (name, path) in &gets {
        for concurrency in [1, 16] {
            server.measure(name, path, concurrency, None).await;
        }
    }
    let trigger = json!({"logical_date": null});
    server
        .measure(
            "POST /dags/{id}/dagRuns (trigger)",
            "/api/v2/dags/dag_07/dagRuns",
            1,
            Some(&trigger),
        )
        .await;
}

/// The big history and the listings a UI reads from it.
async fn big_history(store: Arc<dyn Store>, scale: f64) {
    let scaled = |n: usize, least: usize| ((n as f64 * scale).round() as usize).max(least);
    let dags = scaled(HISTORY_DAGS, 3);
    let runs = scaled(HISTORY_RUNS, dags * 2);
    let log_lines = scaled(HISTORY_LOG_LINES, 10);
    // A tenth of the runs belong to the first DAG; the others share the rest evenly.
    let small_runs = (runs * 9 / 10) / (dags - 1);
    let big_runs = runs - small_runs * (dags - 1);
    // A fixed instant, so that a kept database is loaded once (its runs have the same ids).
    let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("a valid instant")
        .with_timezone(&Utc);
    let shapes: Vec<HistoryShape> = (0..dags)
        .map(|d| {
            let team = format!("team_{}", d % 10);
            let shape = HistoryShape::new(
                &format!("hist_{d:04}"),
                if d == 0 { big_runs } else { small_runs },
                now,
            )
            .with_tasks(HISTORY_TASKS)
            .with_log_lines(0)
            .with_xcoms(0)
            .with_tags(&[team.as_str(), "history"]);
            if d == 1 {
                shape.with_long_log(log_lines)
            } else {
                shape
            }
        })
        .collect();
    let loaded = history::load_all(&*store, &shapes)
        .await
        .expect("the history loads");
    let rows = loaded.rows;
    println!(
        "fixture: {dags} DAGs, {} runs ({big_runs} of hist_0000), {} task instances, \
         {} log lines ({} rows) loaded in {:.1} s ({:.0} rows/s)",
        rows.dag_runs,
        rows.task_instances,
        rows.task_logs,
        rows.total(),
        loaded.elapsed.as_secs_f64(),
        rows.total() as f64 / loaded.elapsed.as_secs_f64(),
    );
    // As a database of this size would have them: autovacuum analyzes Postgres tables within
    // minutes of such a load, later than the measurements start.
    let analyzed = Instant::now();
    store
        .refresh_statistics()
        .await
        .expect("the planner statistics refresh");
    println!(
        "planner statistics refreshed in {:.1} s",
        analyzed.elapsed().as_secs_f64()
    );
    let big = &shapes[0];
    let typical = &shapes[dags / 2];
    let long = &shapes[1];
    let some_run = segment(&big.run_id(big.runs / 2));
    let long_run = segment(&long.run_id(long.runs - 1));
    let summary_ids: Vec<&str> = shapes.iter().take(50).map(|s| s.dag_id.as_str()).collect();
    let log = format!(
        "/api/v2/dags/{}/dagRuns/{long_run}/taskInstances/t00/logs/1",
        long.dag_id
    );
    let gets = [
        ("DAG list", "/api/v2/dags?limit=50".to_string()),
        (
            "DAG list, page 10 by last parse",
            "/api/v2/dags?limit=50&offset=450&order_by=-last_parsed_time".to_string(),
        ),
        (
            "DAG list, tag and pattern",
            "/api/v2/dags?limit=50&tags=team_3&dag_id_pattern=hist_0%25".to_string(),
        ),
        (
            "DAG list, last run failed",
            "/api/v2/dags?limit=50&last_dag_run_state=failed".to_string(),
        ),
        (
            "DAG list summaries (50 DAGs)",
            format!("/ui/dags/summary?dag_ids={}", summary_ids.join(",")),
        ),
        (
            "a DAG's runs (hist_0000), -run_after",
            format!(
                "/api/v2/dags/{}/dagRuns?limit=50&order_by=-run_after",
                big.dag_id
            ),
        ),
        (
            "a DAG's runs (hist_0000), failed, page 5",
            format!(
                "/api/v2/dags/{}/dagRuns?limit=50&offset=200&state=failed",
                big.dag_id
            ),
        ),
        (
            "a DAG's runs (typical), -run_after",
            format!(
                "/api/v2/dags/{}/dagRuns?limit=50&order_by=-run_after",
                typical.dag_id
            ),
        ),
        (
            "every DAG's runs (~), -run_after",
            "/api/v2/dags/~/dagRuns?limit=50&order_by=-run_after".to_string(),
        ),
        (
            "a run's task instances",
            format!(
                "/api/v2/dags/{}/dagRuns/{some_run}/taskInstances",
                big.dag_id
            ),
        ),
        (
            "failed task instances of every run (~/~)",
            "/api/v2/dags/~/dagRuns/~/taskInstances?limit=50&state=failed".to_string(),
        ),
        (
            "grid, last 25 runs (hist_0000)",
            format!("/ui/dags/{}/grid?limit=25", big.dag_id),
        ),
        (
            "grid, last 25 runs (typical)",
            format!("/ui/dags/{}/grid?limit=25", typical.dag_id),
        ),
        ("log page, first", log.clone()),
        (
            "log page, from the middle",
            format!("{log}?token={}", log_lines / 2),
        ),
    ];
    let server = Server::start(store).await;
    header();
    for (name, path) in &gets {
        server.measure(name, path, 1, None).await;
    }
    for (name, path) in [&gets[0], &gets[5], &gets[9], &gets[11], &gets[13]] {
        server.measure(name, path, 16, None).await;
    }
}

/// A path segment with the characters of a run id that a path must not carry bare.
fn segment(text: &str) -> String {
    text.replace('%', "%25")
        .replace('+', "%2B")
        .replace(':', "%3A")
}

fn header() {
    println!(
        "{:<52} {:>5} {:>6} {:>9} {:>9} {:>7} {:>9} {:>9}",
        "request", "conc", "n", "p50 ms", "p99 ms", "req/s", "items", "total"
    );
}

/// The API on port 0 over a store, with a bench user's token.
#[derive(Clone)]
struct Server {
    http: Client,
    base: String,
    token: String,
}

impl Server {
    async fn start(store: Arc<dyn Store>) -> Server {
        let made = store
            .create_user(&store::NewUser {
                username: "bench".into(),
                password_hash: api::auth::hash_password("bench").expect("hash"),
                role: "Admin".into(),
                first_name: None,
                last_name: None,
                email: None,
                now: Utc::now(),
            })
            .await;
        // A kept database has the user from the run before.
        if let Err(err) = made
            && !matches!(err, store::StoreError::Conflict(_))
        {
            panic!("cannot make the bench user: {err}");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let state = api::AppState::new(
            store,
            Arc::new(store::secrets::Vault::clear()),
            api::TokenKeys::new(b"bench", Duration::from_secs(3600)),
        );
        tokio::spawn(api::serve(listener, state, std::future::pending()));
        let http = Client::new();
        let t = Instant::now();
        let body: Value = http
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
        let token = body["access_token"].as_str().expect("token").to_string();
        Server { http, base, token }
    }

    /// `REQUESTS` requests from `concurrency` clients at once (fewer if [`BUDGET`] runs out),
    /// and the first answer's size: its items and its `total_entries`. A request that fails
    /// (the server's timeout, say) is counted and its status shown; it is a figure too.
    async fn measure(&self, name: &str, path: &str, concurrency: usize, body: Option<&Value>) {
        let per_client = REQUESTS / concurrency;
        let url = format!("{}{path}", self.base);
        let first = self.send(&url, body, 0, usize::MAX).await;
        let (items, total) = match &first {
            Ok((_, bytes)) => shape_of(&serde_json::from_slice(bytes).unwrap_or(Value::Null)),
            Err((_, status)) => ("-".into(), status.clone()),
        };
        let started = Instant::now();
        let mut clients = Vec::new();
        for client in 0..concurrency {
            let server = self.clone();
            let url = url.clone();
            let body = body.cloned();
            clients.push(tokio::spawn(async move {
                let mut times = Vec::with_capacity(per_client);
                let mut failed = 0;
                for i in 0..per_client {
                    if started.elapsed() > BUDGET && !times.is_empty() {
                        break;
                    }
                    match server.send(&url, body.as_ref(), client, i).await {
                        Ok((took, _)) => times.push(took),
                        Err((took, _)) => {
                            failed += 1;
                            times.push(took);
                        }
                    }
                }
                (times, failed)
            }));
        }
        let mut all = Vec::new();
        let mut failed = 0;
        for client in clients {
            let (times, failures) = client.await.expect("client");
            all.extend(times);
            failed += failures;
        }
        let elapsed = started.elapsed().as_secs_f64();
        all.sort();
        let pct = |p: f64| all[((all.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e3;
        let failures = if failed > 0 {
            format!("  ({failed} failed: {total})")
        } else {
            String::new()
        };
        println!(
            "{:<52} {:>5} {:>6} {:>9.2} {:>9.2} {:>7.0} {:>9} {:>9}{failures}",
            name,
            concurrency,
            all.len(),
            pct(0.5),
            pct(0.99),
            all.len() as f64 / elapsed,
            items,
            if failed > 0 { "-".to_string() } else { total },
        );
    }

    /// One request and how long it took to read the whole answer (not parsed: the time is the
    /// server's and the transfer's); a trigger (`body`) gets a run id of its own, as a repeated
    /// one is refused. A failure is the time and the status.
    async fn send(
        &self,
        url: &str,
        body: Option<&Value>,
        client: usize,
        i: usize,
    ) -> Result<(Duration, Vec<u8>), (Duration, String)> {
        let t = Instant::now();
        let request = match body {
            Some(b) => {
                let mut b = b.clone();
                b["dag_run_id"] = json!(format!("bench_{client}_{i}"));
                self.http.post(url).json(&b)
            }
            None => self.http.get(url),
        };
        let response = request.bearer_auth(&self.token).send().await.expect("send");
        let status = response.status();
        let bytes = response.bytes().await.expect("body");
        let took = t.elapsed();
        if !status.is_success() {
            return Err((took, status.as_u16().to_string()));
        }
        // Copied after the clock stopped.
        Ok((took, bytes.to_vec()))
    }
}

/// How many items an answer holds (its one list: `dags`, `dag_runs`, `runs`, `content`, …) and
/// its `total_entries`, as text for the table.
fn shape_of(answer: &Value) -> (String, String) {
    let Value::Object(fields) = answer else {
        return ("-".into(), "-".into());
    };
    let items = fields
        .iter()
        .find_map(|(_, value)| match value {
            Value::Array(list) => Some(list.len().to_string()),
            Value::Object(map) if map.values().all(Value::is_object) && !map.is_empty() => {
                Some(map.len().to_string())
            }
            _ => None,
        })
        .unwrap_or_else(|| "-".into());
    let total = fields
        .get("total_entries")
        .map_or_else(|| "-".into(), Value::to_string);
    (items, total)
}
