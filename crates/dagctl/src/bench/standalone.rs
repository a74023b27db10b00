//! `dagctl bench standalone`: what a user sees. This binary's own `standalone` runs in a
//! scratch folder (SQLite, its DAGs folder holding one `fanout` DAG: `start → N × true →
//! join`), and the run is unpaused, triggered, waited for and read back through the REST API
//! only, as a client would. Throughput is the middle tasks over the span from the first one's
//! start to the last one's end, from the API's task instances.

use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use reqwest::Client;
use serde_json::{Value, json};

use crate::cli::StandaloneBenchArgs;

/// How long the server may take to come up, and the run to finish.
const DEADLINE: Duration = Duration::from_secs(120);

pub async fn run(args: &StandaloneBenchArgs) -> Result<ExitCode> {
    let home = tempfile::Builder::new()
        .prefix("updraft-bench-standalone-")
        .tempdir()
        .context("cannot create the benchmark's folder")?;
    let dags = home.path().join("dags");
    std::fs::create_dir_all(&dags).context("cannot create the DAGs folder")?;
    std::fs::write(dags.join("fanout.yaml"), fan_out_yaml(args.width))
        .context("cannot write the DAG file")?;
    let out = home.path().join("standalone.out");
    let server = Server::start(args.dagctl.as_deref(), home.path(), &out, args.concurrency)?;
    let base = server.address(&out).await?;
    let password =
        std::fs::read_to_string(home.path().join(".updraft/standalone_admin_password.txt"))
            .context("standalone wrote no admin password")?;
    let api = Api::login(&base, password.trim()).await?;

    let started = Instant::now();
    while api.get("/api/v2/dags/fanout").await.is_err() {
        if started.elapsed() > DEADLINE {
            bail!("the fanout DAG never appeared in the API");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api.send(
        reqwest::Method::PATCH,
        "/api/v2/dags/fanout",
        json!({"is_paused": false}),
    )
    .await?;
    let triggered = Instant::now();
    let run = api
        .send(
            reqwest::Method::POST,
            "/api/v2/dags/fanout/dagRuns",
            json!({"logical_date": null}),
        )
        .await?;
    let run_id = run["dag_run_id"]
        .as_str()
        .context("the trigger answered no dag_run_id")?
        .to_string();
    let path = format!("/api/v2/dags/fanout/dagRuns/{run_id}");
    let state = loop {
        let run = api.get(&path).await?;
        let state = run["state"].as_str().unwrap_or_default().to_string();
        if state == "success" || state == "failed" {
            break state;
        }
        if triggered.elapsed() > DEADLINE {
            bail!("the run did not finish within {DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let wall = triggered.elapsed().as_secs_f64();
    let tis = api
        .get(&format!("{path}/taskInstances?limit={}", args.width + 10))
        .await?;
    let middle: Vec<&Value> = tis["task_instances"]
        .as_array()
        .context("no task_instances in the answer")?
        .iter()
        .filter(|t| t["task_id"].as_str().is_some_and(|id| id.starts_with("t")))
        .collect();
    let instant = |t: &Value, key: &str| -> Option<DateTime<Utc>> { t[key].as_str()?.parse().ok() };
    let first = middle.iter().filter_map(|t| instant(t, "start_date")).min();
    let last = middle.iter().filter_map(|t| instant(t, "end_date")).max();
    let span = match (first, last) {
        (Some(a), Some(b)) => (b - a).as_seconds_f64(),
        _ => f64::NAN,
    };
    println!(
        "standalone fan-out of {} through the REST API: {state} in {wall:.2}s (trigger -> success seen); {:.0} tasks/s (first middle start -> last middle end {span:.2}s), worker concurrency {}",
        args.width,
        middle.len() as f64 / span,
        args.concurrency,
    );
    drop(server);
    Ok(if state == "success" && middle.len() == args.width {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn fan_out_yaml(width: usize) -> String {
    let mut yaml = format!(
        "dag_id: fanout\nmax_active_tasks: {width}\ntasks:\n  - {{id: start, bash: 'true'}}\n  - {{id: join, bash: 'true', depends_on: ["
    );
    let middle: Vec<String> = (0..width).map(|i| format!("t{i:04}")).collect();
    yaml.push_str(&middle.join(", "));
    yaml.push_str("]}\n");
    for id in &middle {
        yaml.push_str(&format!(
            "  - {{id: {id}, bash: 'true', depends_on: [start]}}\n"
        ));
    }
    yaml
}

/// `standalone --port 0` of this binary (or of `dagctl`) in `home`, killed when dropped.
struct Server(Child);

impl Server {
    fn start(
        dagctl: Option<&std::path::Path>,
        home: &std::path::Path,
        out: &std::path::Path,
        concurrency: usize,
    ) -> Result<Server> {
        let exe = match dagctl {
            Some(path) => path.to_path_buf(),
            None => std::env::current_exe().context("cannot find this program's path")?,
        };
        let stdout = std::fs::File::create(out).context("cannot create the server's output")?;
        let child = Command::new(exe)
            .args(["standalone", "--port", "0"])
            .current_dir(home)
            .env_remove("UPDRAFT_CONFIG")
            .env_remove("UPDRAFT__DATABASE__URL")
            .env_remove("UPDRAFT__CORE__DAGS_FOLDER")
            .env("UPDRAFT__WORKER__CONCURRENCY", concurrency.to_string())
            .env("RUST_LOG", "warn")
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start standalone")?;
        Ok(Server(child))
    }

    /// The server's address, once it has printed it.
    async fn address(&self, out: &std::path::Path) -> Result<String> {
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(out).unwrap_or_default();
            if let Some(at) = text.find("http://127.0.0.1:") {
                let rest = &text[at..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || ":/.".contains(c)))
                    .unwrap_or(rest.len());
                return Ok(rest[..end].to_string());
            }
            if started.elapsed() > DEADLINE {
                bail!("standalone printed no address within {DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A logged-in REST client.
struct Api {
    client: Client,
    base: String,
    token: String,
}

impl Api {
    async fn login(base: &str, password: &str) -> Result<Api> {
        let client = Client::new();
        let answer: Value = client
            .post(format!("{base}/auth/token"))
            .json(&json!({"username": "admin", "password": password}))
            .send()
            .await
            .context("cannot reach the API")?
            .error_for_status()
            .context("the login was refused")?
            .json()
            .await?;
        let token = answer["access_token"]
            .as_str()
            .context("the login answered no token")?
            .to_string();
        Ok(Api {
            client,
            base: base.to_string(),
            token,
        })
    }

    async fn get(&self, path: &str) -> Result<Value> {
        Ok(self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Result<Value> {
        Ok(self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }
}
