//! `dagctl standalone`: health, the first-start admin, what it sets up for the example DAGs
//! (and what it leaves alone), and broken DAG files that become import errors while every
//! other DAG keeps running.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Sandbox, newest_run, wait_for};

/// A plain HTTP/1.1 GET on loopback: status and body.
pub fn http_get(address: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn broken_files_are_import_errors_and_good_dags_keep_running() {
    let mut sandbox = Sandbox::new();
    sandbox.write_dag(
        "good.yaml",
        "tasks:\n  - {id: first, bash: 'echo one'}\n  - {id: second, bash: 'echo two', depends_on: [first]}\n",
    );
    sandbox.write_dag(
        "cycle.yaml",
        "tasks:\n  - {id: a, bash: 'true', depends_on: [b]}\n  - {id: b, bash: 'true', depends_on: [a]}\n",
    );
    sandbox.write_dag("broken.yaml", "tasks: [\n");
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut previous = "a".to_string();
    for name in ["b", "c", "d", "e", "f", "g", "h", "i"] {
        bomb.push_str(&format!(
            "{name}: &{name} [*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous}]\n"
        ));
        previous = name.to_string();
    }
    bomb.push_str("tasks:\n  - {id: x, bash: 'true'}\n");
    sandbox.write_dag("bomb.yaml", &bomb);
    let big = format!(
        "# {}\ntasks:\n  - {{id: x, bash: 'true'}}\n",
        "x".repeat(20 * 1024 * 1024)
    );
    sandbox.write_dag("huge.yaml", &big);
    std::fs::write(
        sandbox.dags().join("bad_bytes.yaml"),
        b"tasks:\n  - {id: x, bash: '\xfe'}\n",
    )
    .expect("write");

    let server = sandbox.standalone();
    let password_file = sandbox
        .path()
        .join(".updraft/standalone_admin_password.txt");
    let password = std::fs::read_to_string(&password_file).expect("admin password saved");
    assert!(
        server.stdout.iter().any(|l| l.contains(password.trim())),
        "password printed: {:?}",
        server.stdout
    );
    sandbox.login(&server);

    let (status, body) = http_get(&server.address, "/api/v2/monitor/health");
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body).expect("health JSON");
    assert_eq!(health["metadatabase"]["status"], "healthy");

    let errors = wait_for("import errors", Duration::from_secs(30), || {
        let errors = sandbox.json(&["dags", "list-import-errors", "-o", "json"]);
        (errors.as_array().map_or(0, Vec::len) == 5).then_some(errors)
    });
    for (file, needle) in [
        ("cycle.yaml", "a -> b -> a"),
        ("broken.yaml", "broken.yaml:"),
        ("bomb.yaml", "bomb.yaml:"),
        ("huge.yaml", "limit"),
        ("bad_bytes.yaml", "UTF-8"),
    ] {
        let error = errors
            .as_array()
            .expect("list")
            .iter()
            .find(|e| e["filename"].as_str().is_some_and(|f| f.ends_with(file)))
            .unwrap_or_else(|| panic!("no import error for {file}: {errors}"));
        let message = error["stack_trace"].as_str().expect("stack_trace");
        assert!(message.contains(needle), "{file}: {message}");
    }

    wait_for("good DAG listed", Duration::from_secs(30), || {
        let dags = sandbox.json(&["dags", "list", "-o", "json"]);
        dags.as_array()
            .expect("list")
            .iter()
            .any(|d| d["dag_id"] == "good")
            .then_some(())
    });
    let out = sandbox.run(&["dags", "trigger", "good"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(run_id.starts_with("manual__"), "{run_id}");
    wait_for("good run to succeed", Duration::from_secs(30), || {
        newest_run(&sandbox, "good").filter(|(_, state)| state == "success")
    });
    let states = sandbox.json(&["tasks", "states-for-dag-run", "good", &run_id, "-o", "json"]);
    assert!(
        states
            .as_array()
            .expect("list")
            .iter()
            .all(|t| t["state"] == "success"),
        "{states}"
    );
    let log = sandbox.run(&["tasks", "logs", "good", &run_id, "second"]);
    assert!(String::from_utf8_lossy(&log.stdout).contains("two"));

    // Fixing a file clears its error on the next scan; deleting one makes its DAG stale,
    // and stale DAGs are not listed.
    sandbox.write_dag("broken.yaml", "tasks: [{id: fixed, bash: 'true'}]\n");
    std::fs::remove_file(sandbox.dags().join("good.yaml")).expect("remove");
    wait_for(
        "error cleared and DAG deactivated",
        Duration::from_secs(30),
        || {
            let errors = sandbox.json(&["dags", "list-import-errors", "-o", "json"]);
            let dags = sandbox.json(&["dags", "list", "-o", "json"]);
            let cleared = !errors.as_array()?.iter().any(|e| {
                e["filename"]
                    .as_str()
                    .is_some_and(|f| f.ends_with("broken.yaml"))
            });
            let good_gone = !dags.as_array()?.iter().any(|d| d["dag_id"] == "good");
            let fixed = dags.as_array()?.iter().any(|d| d["dag_id"] == "broken");
            (cleared && good_gone && fixed).then_some(())
        },
    );
    assert!(
        server.terminate().success(),
        "standalone exits cleanly on SIGTERM"
    );
}

#[test]
fn tasks_logs_follow_tails_a_running_task_to_its_end() {
    let mut sandbox = Sandbox::new();
    sandbox.write_dag(
        "slow.yaml",
        // The output lines never appear in the command itself (which the log also shows).
        "tasks:\n  - {id: talk, bash: 'x=first; echo \"$x out\"; sleep 1; x=last; echo \"$x out\"'}\n",
    );
    let _server = sandbox.standalone_logged_in();
    wait_for("DAG parsed", Duration::from_secs(30), || {
        sandbox
            .run(&["dags", "list-runs", "slow"])
            .status
            .success()
            .then_some(())
    });
    let out = sandbox.run(&["dags", "trigger", "slow"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // Start following while the task is still running: its first line is there, not its last.
    wait_for("the first line", Duration::from_secs(30), || {
        let log = sandbox.run(&["tasks", "logs", "slow", &run_id, "talk"]);
        let text = String::from_utf8_lossy(&log.stdout).to_string();
        (text.contains("first out") && !text.contains("last out")).then_some(())
    });
    let followed = sandbox.run(&["tasks", "logs", "slow", &run_id, "talk", "--follow"]);
    let text = String::from_utf8_lossy(&followed.stdout);
    assert!(
        followed.status.success(),
        "{}",
        String::from_utf8_lossy(&followed.stderr)
    );
    assert!(
        text.contains("first out") && text.contains("last out"),
        "{text}"
    );
    assert!(
        text.contains("task ended: success"),
        "follow stops at the end: {text}"
    );
}

/// Trigger `dag_id` and wait, with a deadline, until that run finishes: its id and state.
fn trigger_and_finish(sandbox: &Sandbox, dag_id: &str) -> (String, String) {
    let out = sandbox.run(&["dags", "trigger", dag_id]);
    assert!(
        out.status.success(),
        "trigger {dag_id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let state = wait_for(
        &format!("{dag_id} run {run_id} to finish"),
        Duration::from_secs(90),
        || {
            let runs = sandbox.json(&["dags", "list-runs", dag_id, "-o", "json"]);
            let run = runs
                .as_array()?
                .iter()
                .find(|r| r["dag_run_id"] == run_id.as_str())?
                .clone();
            let state = run["state"].as_str()?.to_string();
            (state == "success" || state == "failed").then_some(state)
        },
    );
    (run_id, state)
}

/// Wait until the scheduler has parsed every one of `dag_ids`.
fn wait_for_dags(sandbox: &Sandbox, dag_ids: &[&str]) {
    wait_for("the example DAGs parsed", Duration::from_secs(30), || {
        let dags = sandbox.json(&["dags", "list", "-o", "json"]);
        let listed: Vec<&str> = dags
            .as_array()?
            .iter()
            .filter_map(|d| d["dag_id"].as_str())
            .collect();
        dag_ids.iter().all(|id| listed.contains(id)).then_some(())
    });
}

fn log_of(sandbox: &Sandbox, dag_id: &str, run_id: &str, task_id: &str) -> String {
    let out = sandbox.run(&["tasks", "logs", dag_id, run_id, task_id]);
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn first_start_sets_up_what_the_examples_need_and_they_run() {
    let mut sandbox = Sandbox::with_examples();
    // No mail server: the email example must say what to configure.
    let dead = crate::operators::closed_port();
    sandbox.set("UPDRAFT__SMTP__HOST", "127.0.0.1");
    sandbox.set("UPDRAFT__SMTP__PORT", &dead.to_string());
    let server = sandbox.standalone_logged_in();
    let home = std::fs::canonicalize(sandbox.path().join(".updraft")).expect("home made");
    let created: Vec<&String> = server
        .stdout
        .iter()
        .filter(|l| l.starts_with("created "))
        .collect();
    assert_eq!(
        created,
        [
            &format!(
                "created connection 'sqlite_default' (SQLite file {}) for sql_report",
                home.join("sqlite_default.db").display()
            ),
            &format!(
                "created connection 'http_default' (this server's API at {}) for http_api",
                server.address
            ),
            &r#"created variable 'data_sources' ([{"name": "crm", "table": "customers"}, {"name": "erp", "table": "orders"}]) for data_sources"#
                .to_string(),
        ],
        "{:?}",
        server.stdout
    );
    let http = sandbox.json(&["connections", "get", "http_default", "-o", "json"]);
    let port: u16 = server
        .address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    assert_eq!(
        (&http["conn_type"], &http["host"], &http["port"]),
        (&json!("http"), &json!("127.0.0.1"), &json!(port)),
        "{http}"
    );

    let examples = ["data_sources", "http_api", "sql_report", "email_report"];
    wait_for_dags(&sandbox, &examples);
    let mut run_ids = std::collections::BTreeMap::new();
    for dag_id in ["data_sources", "http_api", "sql_report"] {
        let (run_id, state) = trigger_and_finish(&sandbox, dag_id);
        let states = sandbox.json(&["tasks", "states-for-dag-run", dag_id, &run_id, "-o", "json"]);
        assert_eq!(state, "success", "{dag_id}: {states}");
        run_ids.insert(dag_id, run_id);
    }
    let summary = log_of(
        &sandbox,
        "data_sources",
        &run_ids["data_sources"],
        "summary",
    );
    assert!(summary.contains("processed 2 sources"), "{summary}");
    let report = log_of(&sandbox, "http_api", &run_ids["http_api"], "report");
    assert!(
        report.contains("a write without a token got {\"detail\""),
        "the API refused the POST: {report}"
    );
    assert!(
        home.join("sqlite_default.db").is_file(),
        "sql_report wrote to the default SQLite file"
    );

    // The email example fails, and its log says exactly what to set.
    let (run_id, state) = trigger_and_finish(&sandbox, "email_report");
    assert_eq!(state, "failed");
    let log = log_of(&sandbox, "email_report", &run_id, "send_report");
    assert!(
        log.contains(&format!("SMTP server 127.0.0.1:{dead}"))
            && log.contains("set smtp.host and smtp.port")
            && log.contains("UPDRAFT__SMTP__HOST"),
        "{log}"
    );

    // A second start makes nothing and changes nothing.
    let connections = sandbox.json(&["connections", "list", "-o", "json"]);
    let variables = sandbox.json(&["variables", "list", "-o", "json"]);
    assert!(server.terminate().success());
    let again = sandbox.standalone_logged_in();
    assert!(
        !again.stdout.iter().any(|l| l.starts_with("created ")),
        "{:?}",
        again.stdout
    );
    assert_eq!(
        sandbox.json(&["connections", "list", "-o", "json"]),
        connections
    );
    assert_eq!(
        sandbox.json(&["variables", "list", "-o", "json"]),
        variables
    );
}

#[test]
fn first_start_keeps_what_the_user_already_has() {
    let mut sandbox = Sandbox::with_examples();
    // The user's own sqlite_default, imported before standalone ever ran, and an
    // http_default from the environment.
    let mine = sandbox.path().join("mine.db");
    let file = sandbox.path().join("conns.json");
    std::fs::write(
        &file,
        json!({"sqlite_default": {
            "conn_type": "sqlite", "host": mine.display().to_string(), "description": "mine"
        }})
        .to_string(),
    )
    .expect("write");
    sandbox.ok(&["connections", "import", file.to_str().expect("path")]);
    sandbox.set("UPDRAFT_CONN_HTTP_DEFAULT", "http://127.0.0.1:9");

    let server = sandbox.standalone_logged_in();
    let created: Vec<&String> = server
        .stdout
        .iter()
        .filter(|l| l.starts_with("created "))
        .collect();
    assert!(
        created.len() == 1 && created[0].starts_with("created variable 'data_sources'"),
        "only what was missing: {:?}",
        server.stdout
    );
    let conn = sandbox.json(&["connections", "get", "sqlite_default", "-o", "json"]);
    assert_eq!(conn["host"], mine.display().to_string(), "{conn}");
    assert_eq!(conn["description"], "mine", "{conn}");
    let listed = sandbox.json(&["connections", "list", "-o", "json"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    // The example runs on the user's database.
    wait_for_dags(&sandbox, &["sql_report"]);
    let (run_id, state) = trigger_and_finish(&sandbox, "sql_report");
    assert_eq!(state, "success");
    assert!(
        log_of(&sandbox, "sql_report", &run_id, "print").contains(r#""region": "north""#),
        "the report's rows"
    );
    assert!(mine.is_file());
    assert!(!sandbox.path().join(".updraft/sqlite_default.db").exists());
}

/// Written to a file, the server's log is plain text (no colour codes), and an import error's
/// line says what is wrong and where, not only which file.
#[test]
fn a_log_file_is_plain_text_and_import_errors_say_why() {
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let sandbox = Sandbox::new();
    sandbox.write_dag(
        "typo.yaml",
        "schedul: '@daily'\ntasks:\n  - {id: a, bash: 'true'}\n",
    );
    let log = sandbox.path().join("standalone.log");
    let child = sandbox
        .command(&["standalone", "--port", "0"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("standalone starts");
    let _server = Killed(child);
    let text = wait_for("the import error logged", Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&log).ok()?;
        text.contains("DAG file has import errors").then_some(text)
    });
    let line = text
        .lines()
        .find(|l| l.contains("DAG file has import errors"))
        .expect("the line");
    assert!(
        line.contains("typo.yaml:1:1") && line.contains("schedul"),
        "the line names the problem and its place: {line}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "no escape codes in a log file: {text}"
    );
}
