//! Every example DAG in dags/ runs to success with `dagctl dags test`, with the states and
//! values written out; those that need a connection, a variable or a mail server say which,
//! and how to get it, when it is missing.

use serde_json::json;

use crate::harness::{Sandbox, dags_test_examples};

fn dags_test(dag_id: &str) -> (serde_json::Value, String) {
    dags_test_examples(dag_id, &[])
}

#[test]
fn hello_chain() {
    let (result, logs) = dags_test("hello");
    assert_eq!(
        result,
        json!({"state": "success", "tasks": {"hello": "success", "world": "success", "done": "success"}})
    );
    assert!(logs.contains("hello from hello for 2024-03-01"), "{logs}");
    assert!(logs.contains("world, try 1"), "{logs}");
}

#[test]
fn fan_out_fan_in() {
    let (result, _) = dags_test("fan_out_fan_in");
    let tasks = result["tasks"].as_object().expect("tasks");
    assert_eq!(result["state"], "success");
    assert_eq!(tasks.len(), 6);
    assert!(tasks.values().all(|s| s == "success"), "{result}");
}

#[test]
fn python_xcom_pipeline() {
    let (result, logs) = dags_test("python_xcom");
    assert_eq!(
        result,
        json!({"state": "success", "tasks": {"extract": "success", "transform": "success", "load": "success"}})
    );
    assert!(
        logs.contains(r#"loading summary {"count": 3, "total": 50.0}"#),
        "{logs}"
    );
}

#[test]
fn task_groups() {
    let (result, _) = dags_test("task_groups");
    assert_eq!(
        result,
        json!({"state": "success", "tasks": {
            "start": "success",
            "customers.extract": "success", "customers.transform": "success",
            "orders.extract": "success", "orders.transform": "success",
            "analytics.join": "success", "analytics.report": "success",
            "end": "success"
        }})
    );
}

#[test]
fn retry_then_succeed() {
    let (result, logs) = dags_test("retry_then_succeed");
    assert_eq!(
        result,
        json!({"state": "success", "tasks": {"flaky": "success", "after": "success"}})
    );
    assert!(
        logs.contains("[flaky try 1]") && logs.contains("failing on purpose"),
        "{logs}"
    );
    assert!(
        logs.contains("[flaky try 2]") && logs.contains("succeeded"),
        "{logs}"
    );
}

#[test]
fn a_failing_run_exits_non_zero_and_prints_states() {
    let sandbox = Sandbox::new();
    sandbox.write_dag(
        "breaks.yaml",
        "tasks:\n  - {id: ok, bash: 'true'}\n  - {id: boom, bash: 'exit 3', depends_on: [ok]}\n  - {id: never, bash: 'true', depends_on: [boom]}\n",
    );
    let out = sandbox.run(&["dags", "test", "breaks", "-o", "json"]);
    assert!(!out.status.success());
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        result,
        json!({"state": "failed", "tasks": {"ok": "success", "boom": "failed", "never": "upstream_failed"}})
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("exited with code 3"));
}

fn dags_test_with(
    sandbox: &Sandbox,
    dag_id: &str,
    conf: &str,
) -> (serde_json::Value, String, bool) {
    let out = sandbox.run(&["dags", "test", dag_id, "--conf", conf, "-o", "json"]);
    let result = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON from dags test {dag_id} ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        result,
        String::from_utf8_lossy(&out.stderr).to_string(),
        out.status.success(),
    )
}

#[test]
fn branching_follows_the_switch_and_the_bash_branch() {
    let sandbox = Sandbox::with_examples();
    let cases = [
        (
            r#"{"rows": 250}"#,
            json!({"check_size": "success", "extract": "success", "join": "success",
                   "pick_format": "success", "process_large": "skipped", "process_small": "success",
                   "report": "success", "skip_processing": "skipped", "to_csv": "skipped",
                   "to_parquet": "success"}),
        ),
        (
            r#"{"rows": 5000}"#,
            json!({"check_size": "success", "extract": "success", "join": "success",
                   "pick_format": "success", "process_large": "success", "process_small": "skipped",
                   "report": "success", "skip_processing": "skipped", "to_csv": "skipped",
                   "to_parquet": "success"}),
        ),
        (
            r#"{"rows": 0}"#,
            json!({"check_size": "success", "extract": "success", "join": "success",
                   "pick_format": "success", "process_large": "skipped", "process_small": "skipped",
                   "report": "success", "skip_processing": "success", "to_csv": "success",
                   "to_parquet": "skipped"}),
        ),
    ];
    for (conf, tasks) in cases {
        let (result, logs, ok) = dags_test_with(&sandbox, "branching", conf);
        assert!(ok, "{conf}: {logs}");
        assert_eq!(
            result,
            json!({"state": "success", "tasks": tasks}),
            "{conf}"
        );
    }
    let (_, logs, _) = dags_test_with(&sandbox, "branching", r#"{"rows": 5000}"#);
    assert!(logs.contains("large batch of 5000 rows"), "{logs}");
}

#[test]
fn a_branch_naming_a_task_that_is_not_downstream_fails_with_the_reason() {
    let sandbox = Sandbox::new();
    sandbox.write_dag(
        "bad_branch.yaml",
        "tasks:\n  - {id: start, bash: 'true'}\n  - id: choose\n    switch:\n      - {else: later}\n  - {id: next, bash: 'true'}\n  - {id: later, bash: 'true', depends_on: [next]}\n  - id: pick\n    bash: echo nowhere\n    branch: true\n  - {id: a, bash: 'true'}\n  - {id: unrelated, bash: 'true'}\nedges:\n  - start >> choose >> next\n  - start >> pick >> a\n",
    );
    let (result, logs, ok) = dags_test_with(&sandbox, "bad_branch", "{}");
    assert!(!ok);
    assert_eq!(
        result,
        json!({"state": "failed", "tasks": {
            "start": "success", "choose": "failed", "next": "upstream_failed",
            "later": "upstream_failed", "pick": "failed", "a": "upstream_failed",
            "unrelated": "success"
        }})
    );
    assert!(
        logs.contains(
            "branch 'choose' chose 'later', which is not among its direct downstream tasks (next)"
        ),
        "{logs}"
    );
    assert!(logs.contains("branch 'pick' chose 'nowhere'"), "{logs}");
}

#[test]
fn mapping_makes_one_instance_per_element_and_downstream_pulls_the_list() {
    let (result, logs) = dags_test("mapping");
    assert_eq!(
        result,
        json!({"state": "success", "tasks": {
            "list_files": "success",
            "count_lines[0]": "success", "count_lines[1]": "success", "count_lines[2]": "success",
            "per_region[0]": "success", "per_region[1]": "success",
            "per_region[2]": "success", "per_region[3]": "success",
            "summarize": "success"
        }})
    );
    // The last key varies fastest, and the pulled list is in map_index order.
    assert!(
        logs.contains("[per_region[1] try 1]") && logs.contains("eu-silver"),
        "{logs}"
    );
    assert!(
        logs.contains("pairs: eu-gold,eu-silver,us-gold,us-silver"),
        "{logs}"
    );
    assert!(logs.contains("[count_lines[1] try 1]"), "{logs}");
}

#[test]
fn mapping_edge_cases_fail_or_skip_with_the_reason() {
    let mut sandbox = Sandbox::new();
    sandbox.set("UPDRAFT__CORE__MAX_MAP_LENGTH", "3");
    sandbox.write_dag(
        "edges.yaml",
        "tasks:\n  - {id: produce, bash: 'echo not-a-list'}\n  - {id: not_a_list, bash: 'echo {{ x }}', depends_on: [produce], expand: {x: \"{{ ti.xcom_pull('produce') }}\"}}\n  - {id: too_many, bash: 'echo {{ x }}', expand: {x: [1, 2, 3, 4]}}\n  - {id: empty, bash: 'echo {{ x }}', expand: {x: []}}\n  - {id: after_empty, bash: 'echo ran', depends_on: [empty], trigger_rule: none_failed}\n  - {id: fine, bash: 'echo {{ x }}', expand: {x: [1, 2, 3]}}\n",
    );
    let out = sandbox.run(&["dags", "test", "edges", "-o", "json"]);
    let logs = String::from_utf8_lossy(&out.stderr);
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        result,
        json!({"state": "failed", "tasks": {
            "produce": "success", "not_a_list": "failed", "too_many": "failed",
            "empty": "skipped", "after_empty": "success",
            "fine[0]": "success", "fine[1]": "success", "fine[2]": "success"
        }})
    );
    assert!(
        logs.contains("expand 'x' of task 'not_a_list' must yield a list, got a string"),
        "{logs}"
    );
    assert!(
        logs.contains("expand of task 'too_many' yields 4 instances, over core.max_map_length (3)"),
        "{logs}"
    );
}

#[test]
fn daily_sales_etl_loads_the_day_into_sqlite() {
    let sandbox = Sandbox::with_examples();
    let workdir = sandbox.path().join("work");
    let conf = json!({"workdir": workdir}).to_string();
    let out = sandbox.run(&[
        "dags",
        "test",
        "daily_sales_etl",
        "2024-03-05",
        "--conf",
        &conf,
        "-o",
        "json",
    ]);
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        result,
        json!({"state": "success", "tasks": {"extract": "success", "transform": "success", "load": "success", "report": "success"}})
    );
    // {{ ds_nodash }} in the paths, and the rows in the table add up to the XCom'd count.
    assert!(workdir.join("raw/sales_20240305.csv").is_file());
    let query = format!(
        "import sqlite3; print(sqlite3.connect({:?}).execute(\"select count(*), sum(orders) from daily_sales where ds = '2024-03-05'\").fetchone())",
        workdir.join("warehouse.db").display().to_string()
    );
    let py = std::process::Command::new("python3")
        .args(["-c", &query])
        .output()
        .expect("python3");
    let row = String::from_utf8_lossy(&py.stdout).trim().to_string();
    let orders: String = row
        .trim_matches(|c| c == '(' || c == ')')
        .split(", ")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert!(row.starts_with("(3, "), "three regions loaded: {row}");
    assert!(
        logs.contains(&format!("loaded {orders} orders for 2024-03-05")),
        "{row} / {logs}"
    );
}

/// `dags test` with extra environment, which may fail: JSON result, logs, success.
fn dags_test_env(sandbox: &Sandbox, dag_id: &str) -> (serde_json::Value, String, bool) {
    let out = sandbox.run(&["dags", "test", dag_id, "2024-03-01", "-o", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let result = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON from dags test {dag_id} ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (result, stderr, out.status.success())
}

#[test]
fn http_api_calls_standalones_own_api_and_passes_json_on() {
    // Standalone makes http_default, pointing at itself; `dags test` finds it in its database.
    let sandbox = Sandbox::with_examples();
    let _server = sandbox.standalone();
    let (result, logs, ok) = dags_test_env(&sandbox, "http_api");
    assert!(ok, "{result}\n{logs}");
    assert_eq!(
        result,
        json!({"state": "success", "tasks": {"wait_for_api": "success", "fetch_version": "success", "post_without_token": "success", "report": "success"}})
    );
    assert!(logs.contains("response_check holds"), "{logs}");
    assert!(
        logs.contains("a write without a token got {\"detail\""),
        "{logs}"
    );
    assert!(!logs.contains("note: "), "nothing is missing: {logs}");
}

#[test]
fn sql_report_loads_and_reads_back_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sandbox = Sandbox::with_examples();
    sandbox.set(
        "UPDRAFT_CONN_SQLITE_DEFAULT",
        &format!("sqlite:///{}", dir.path().join("example.db").display()),
    );
    let (result, logs, ok) = dags_test_env(&sandbox, "sql_report");
    assert!(ok, "{result}\n{logs}");
    assert_eq!(result["tasks"]["wait_for_rows"], "success", "{result}");
    assert!(
        logs.contains("first cell is 2"),
        "the sql sensor saw the rows: {logs}"
    );
    assert!(
        logs.contains(
            r#"report [{"amount": 120.5, "region": "north"}, {"amount": 80.25, "region": "south"}]"#
        ),
        "{logs}"
    );
}

/// On a fresh clone, before standalone ever ran, the examples that need something fail and
/// say what, and how to get it.
#[test]
fn examples_that_need_setup_say_what_on_a_fresh_clone() {
    let mut sandbox = Sandbox::with_examples();
    let dead = crate::operators::closed_port();
    sandbox.set("UPDRAFT__SMTP__HOST", "127.0.0.1");
    sandbox.set("UPDRAFT__SMTP__PORT", &dead.to_string());
    let cases: [(&str, &[&str]); 4] = [
        (
            "data_sources",
            &[
                "note: DAG 'data_sources' uses variable 'data_sources', which is not set: start `dagctl standalone` once here to create it",
                "`dagctl variables set data_sources '[{\"name\": \"crm\"",
                "variable 'data_sources' is not set (set it with `dagctl variables set data_sources VALUE`)",
            ],
        ),
        (
            "sql_report",
            &[
                "note: DAG 'sql_report' uses connection 'sqlite_default', which is not defined: start `dagctl standalone` once here to create it",
                "UPDRAFT_CONN_SQLITE_DEFAULT=sqlite:////tmp/sqlite_default.db",
                "connection 'sqlite_default' is not defined: add it with `dagctl connections add sqlite_default --conn-uri URI`, or set UPDRAFT_CONN_SQLITE_DEFAULT=URI",
            ],
        ),
        (
            "http_api",
            &[
                "note: DAG 'http_api' uses connection 'http_default', which is not defined: `dagctl standalone` creates it, pointing at its own API",
                "UPDRAFT_CONN_HTTP_DEFAULT=http://HOST:PORT",
                "sensor failed: connection 'http_default' is not defined: add it with",
            ],
        ),
        (
            "email_report",
            &[
                &format!("task failed: email not sent: SMTP server 127.0.0.1:{dead}: "),
                "no mail server answers there: set smtp.host and smtp.port (the [smtp] section of updraft.toml, or UPDRAFT__SMTP__HOST and UPDRAFT__SMTP__PORT) to your mail server",
            ],
        ),
    ];
    for (dag_id, needles) in cases {
        let (result, logs, ok) = dags_test_env(&sandbox, dag_id);
        assert!(!ok, "{dag_id} cannot succeed yet: {result}");
        for needle in needles {
            assert!(
                logs.contains(needle),
                "{dag_id}: {needle:?} missing from\n{logs}"
            );
        }
    }
}

#[test]
fn email_report_sends_one_mail() {
    let smtp = crate::smtp::SmtpReceiver::start();
    let mut sandbox = Sandbox::with_examples();
    for (k, v) in smtp.env() {
        sandbox.set(&k, &v);
    }
    let (result, logs, ok) = dags_test_env(&sandbox, "email_report");
    assert!(ok, "{result}\n{logs}");
    let mail = smtp.wait_for_message("the report", |m| m.subject().contains("Daily total"));
    assert_eq!(mail.recipients, vec!["sales@example.com"]);
    assert_eq!(mail.subject(), "Daily total for 2024-03-01");
    assert!(
        mail.header("Content-Type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{}",
        mail.data
    );
    assert!(mail.body().contains("<b>42</b>"), "{}", mail.data);
}

#[test]
fn trigger_hello_follows_the_triggered_run() {
    let (result, logs) = dags_test("trigger_hello");
    assert_eq!(
        result,
        json!({"state": "success", "tasks": {"prepare": "success", "run_hello": "success", "done": "success"}})
    );
    assert!(logs.contains("trigger_dag: run manual__"), "{logs}");
    assert!(logs.contains("of hello ended success"), "{logs}");
    assert!(logs.contains("hello finished as run manual__"), "{logs}");
}

#[test]
fn data_quality_alert_mails_the_failure_with_its_log_link() {
    let smtp = crate::smtp::SmtpReceiver::start();
    let mut sandbox = Sandbox::with_examples();
    for (k, v) in smtp.env() {
        sandbox.set(&k, &v);
    }
    sandbox.set("UPDRAFT__API__BASE_URL", "https://updraft.example.com");
    let (result, logs, ok) = dags_test_env(&sandbox, "data_quality_alert");
    assert!(!ok, "the check fails on purpose");
    assert_eq!(
        result,
        json!({"state": "failed", "tasks": {"extract": "success", "check_row_count": "failed", "publish": "upstream_failed"}})
    );
    let mail = smtp.wait_for_message("the alert", |m| m.subject().contains("failed for"));
    assert_eq!(mail.recipients, vec!["data-quality@example.com"]);
    assert_eq!(
        mail.subject(),
        "[updraft] data_quality_alert.check_row_count failed for 2024-03-01"
    );
    let body = mail.body();
    for needle in [
        "DAG:          data_quality_alert",
        "Task:         check_row_count",
        "Logical date: 2024-03-01",
        "data quality check failed: expected at least 1 row for 2024-03-01, got 0",
        "Log:          https://updraft.example.com/dags/data_quality_alert/runs/manual__2024-03-01T00:00:00+00:00/tasks/check_row_count?try_number=1",
    ] {
        assert!(
            body.contains(needle),
            "{needle:?} missing from:\n{body}\n{logs}"
        );
    }
    assert!(
        logs.contains("notification on_failure: email to data-quality@example.com done"),
        "{logs}"
    );
}

#[test]
fn sensors_wait_then_release_the_report() {
    let (result, logs) = dags_test("sensors");
    assert_eq!(
        result,
        json!({"state": "success", "tasks": {
            "land_file": "success",
            "wait_for_file": "success",
            "wait_for_time": "success",
            "wait_for_upstream": "success",
            "wait_for_content": "success",
            "report": "success"
        }})
    );
    // The file sensor was poked by the scheduler before the file landed.
    assert!(logs.contains("nothing matches yet (poke 1)"), "{logs}");
    assert!(logs.contains("it is past 2024-03-01"), "{logs}");
}
