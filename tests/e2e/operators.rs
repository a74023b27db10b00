//! The `http`, `sql`, `email` and `trigger_dag` task kinds and notifications, through the real
//! binary against a real loopback HTTP server, SMTP receiver, SQLite file and Postgres.

use serde_json::{Value, json};

use crate::harness::Sandbox;
use crate::http_server::HttpServer;
use crate::smtp::SmtpReceiver;

/// `tasks test` of one task: its JSON result (state and XComs) and its log.
fn task_test(sandbox: &Sandbox, dag_id: &str, task_id: &str) -> (Value, String) {
    let out = sandbox.run(&["tasks", "test", dag_id, task_id, "2024-03-01", "-o", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let result = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON from tasks test {dag_id} {task_id} ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (result, stderr)
}

/// `dags test`: the JSON result and the logs.
fn dag_test(sandbox: &Sandbox, dag_id: &str) -> (Value, String) {
    let out = sandbox.run(&["dags", "test", dag_id, "2024-03-01", "-o", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let result = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON from dags test {dag_id} ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (result, stderr)
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

const HTTP_DAG: &str = r#"
tasks:
  - id: get_json
    http: {conn_id: api, url: /items}
  - id: post_echo
    http: {conn_id: api, method: POST, url: /echo, json: {n: 3, day: "{{ ds }}"}}
  - id: secure
    http: {conn_id: api, url: /secure}
  - id: anonymous
    http: {url: "{{ var.value.api_url }}/secure", expect_status: [401]}
  - id: text
    http: {conn_id: api, url: /text}
  - id: teapot
    http: {conn_id: api, url: /status/418, expect_status: 200}
  - id: refused
    http: {url: "http://127.0.0.1:CLOSED/nothing"}
  - id: quiet
    http: {conn_id: api, url: /items}
    do_xcom_push: false
  - id: silent_server
    http: {url: "http://127.0.0.1:SILENT/never"}
    execution_timeout: 1s
"#;

#[test]
fn http_tasks_against_a_loopback_server() {
    let server = HttpServer::start();
    let mut sandbox = Sandbox::new();
    sandbox.set(
        "UPDRAFT_CONN_API",
        &format!("http://ana:s3cret@127.0.0.1:{}", server.port),
    );
    // Accepts connections (the kernel does) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("address").port();
    sandbox.write_dag(
        "http_calls.yaml",
        &HTTP_DAG
            .replace("CLOSED", &closed_port().to_string())
            .replace("SILENT", &silent_port.to_string()),
    );
    // Variables are set through the API; `tasks test` then copies them into its scratch run.
    let api = sandbox.api_server_logged_in();
    let set = sandbox.run(&["variables", "set", "api_url", &server.url()]);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    api.kill();

    let (result, _) = task_test(&sandbox, "http_calls", "get_json");
    assert_eq!(result["state"], "success", "{result}");
    assert_eq!(
        result["xcom"]["return_value"],
        json!({"items": [1, 2, 3], "source": "loopback"})
    );

    let (result, _) = task_test(&sandbox, "http_calls", "post_echo");
    assert_eq!(
        result["xcom"]["return_value"],
        json!({"n": 3, "day": "2024-03-01"})
    );
    let echoed = server.wait_for_request("the POST", |r| r.path == "/echo");
    assert_eq!(echoed.method, "POST");
    assert_eq!(echoed.headers["content-type"], "application/json");

    // The connection's login and password become basic auth, and the password is masked.
    let (result, log) = task_test(&sandbox, "http_calls", "secure");
    assert_eq!(
        result["xcom"]["return_value"],
        json!({"user": "ana"}),
        "{log}"
    );
    assert!(!log.contains("s3cret"), "{log}");
    let (result, _) = task_test(&sandbox, "http_calls", "anonymous");
    assert_eq!(result["state"], "success", "{result}");
    assert_eq!(
        result["xcom"]["return_value"],
        json!({"error": "unauthorized"})
    );

    let (result, _) = task_test(&sandbox, "http_calls", "text");
    assert_eq!(
        result["xcom"]["return_value"],
        json!("plain words, not JSON")
    );

    let (result, log) = task_test(&sandbox, "http_calls", "teapot");
    assert_eq!(result["state"], "failed", "{result}");
    assert!(
        log.contains(&format!(
            "GET http://127.0.0.1:{}/status/418 answered HTTP 418, expected 200",
            server.port
        )),
        "{log}"
    );

    let (result, log) = task_test(&sandbox, "http_calls", "refused");
    assert_eq!(result["state"], "failed", "{result}");
    assert!(
        log.contains("could not connect to http://127.0.0.1:") && log.contains("refused"),
        "{log}"
    );

    let (result, _) = task_test(&sandbox, "http_calls", "quiet");
    assert_eq!(result["state"], "success");
    assert_eq!(result["xcom"], json!({}));

    let (result, log) = task_test(&sandbox, "http_calls", "silent_server");
    assert_eq!(result["state"], "failed", "{log}");
    // The request is bounded by the task's execution_timeout, whichever fires first.
    assert!(
        log.contains("timed out after 1s") || log.contains("execution_timeout exceeded"),
        "{log}"
    );
    drop(silent);
}

const SQL_DAG: &str = r#"
tasks:
  - id: setup
    sql:
      conn_id: warehouse
      sql: |
        create table if not exists sales (day text, region text, amount real, ok boolean);
        delete from sales;
        insert into sales values ('2024-03-01', 'north', 10.5, true);
        insert into sales values ('2024-03-01', 'south', 4.5, false);
        insert into sales values (%s, %s, 7, true);
      parameters: ["{{ ds }}", "east"]
  - id: report
    sql:
      conn_id: warehouse
      file: report.sql
      parameters: {day: "{{ ds }}", minimum: 5}
    depends_on: [setup]
  - id: broken
    sql: {conn_id: warehouse, sql: "selec amount from sales"}
"#;

const REPORT_SQL: &str = "-- regions above a minimum, for one day; ':day' in a string stays text\n\
select region, amount, ok, ':day' as literal from sales\n\
where day = :day and amount > :minimum order by region;\n";

fn sql_tasks(connection_uri: &str) {
    let mut sandbox = Sandbox::new();
    sandbox.set("UPDRAFT_CONN_WAREHOUSE", connection_uri);
    sandbox.write_dag("sql_calls.yaml", SQL_DAG);
    std::fs::write(sandbox.dags().join("report.sql"), REPORT_SQL).expect("sql file");

    let (result, log) = task_test(&sandbox, "sql_calls", "setup");
    assert_eq!(result["state"], "success", "{log}");
    assert!(log.contains("sql: 5 statement(s) done"), "{log}");

    let (result, log) = task_test(&sandbox, "sql_calls", "report");
    assert_eq!(result["state"], "success", "{log}");
    assert_eq!(
        result["xcom"]["return_value"],
        json!([
            {"region": "east", "amount": 7.0, "ok": true, "literal": ":day"},
            {"region": "north", "amount": 10.5, "ok": true, "literal": ":day"},
        ]),
        "{log}"
    );

    let (result, log) = task_test(&sandbox, "sql_calls", "broken");
    assert_eq!(result["state"], "failed");
    assert!(
        log.contains("statement 1 failed") && log.contains("syntax error"),
        "{log}"
    );
}

#[test]
fn sql_tasks_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("warehouse.db");
    sql_tasks(&format!("sqlite://{}", path.display()).replace("sqlite:///", "sqlite:////"));
}

#[test]
fn sql_tasks_on_postgres() {
    let Some(database) = testkit::postgres::ScratchDatabase::create_blocking() else {
        return;
    };
    sql_tasks(database.url());
}

#[test]
fn email_task_and_smtp_down() {
    let smtp = SmtpReceiver::start();
    let mut sandbox = Sandbox::new();
    for (k, v) in smtp.env() {
        sandbox.set(&k, &v);
    }
    sandbox.write_dag(
        "mailer.yaml",
        r#"
tasks:
  - id: send_report
    email:
      to: [ana@example.com, "bo@example.com"]
      cc: carl@example.com
      subject: "Sales report for {{ ds }}"
      text: "Total for {{ ds }}: 42"
"#,
    );
    let (result, log) = task_test(&sandbox, "mailer", "send_report");
    assert_eq!(result["state"], "success", "{log}");
    assert_eq!(result["xcom"], json!({}));
    let mail = smtp.wait_for_message("the report", |m| m.subject().contains("Sales report"));
    assert_eq!(
        mail.recipients,
        vec!["ana@example.com", "bo@example.com", "carl@example.com"]
    );
    assert_eq!(mail.from, "updraft@example.com");
    assert_eq!(mail.subject(), "Sales report for 2024-03-01");
    assert!(
        mail.body().contains("Total for 2024-03-01: 42"),
        "{}",
        mail.data
    );

    // With nothing listening, the task fails, says where it tried and what to configure.
    let dead = closed_port();
    sandbox.set("UPDRAFT__SMTP__PORT", &dead.to_string());
    let (result, log) = task_test(&sandbox, "mailer", "send_report");
    assert_eq!(result["state"], "failed");
    assert!(
        log.contains(&format!("email not sent: SMTP server 127.0.0.1:{dead}"))
            && log.contains("no mail server answers there: set smtp.host and smtp.port"),
        "{log}"
    );
}

#[test]
fn default_alert_mail_and_notification_actions() {
    let smtp = SmtpReceiver::start();
    let server = HttpServer::start();
    let mut sandbox = Sandbox::new();
    for (k, v) in smtp.env() {
        sandbox.set(&k, &v);
    }
    sandbox.set("UPDRAFT__API__BASE_URL", "http://updraft.example:9000");
    let marks = sandbox.path().join("marks");
    std::fs::create_dir_all(&marks).expect("marks dir");
    sandbox.write_dag(
        "alerting.yaml",
        &format!(
            r#"
on_success:
  - webhook: {{url: "{hook}/hook", json: {{dag: "{{{{ dag.dag_id }}}}", run: "{{{{ run_id }}}}"}}}}
tasks:
  - id: flaky
    bash: 'if [ "{{{{ ti.try_number }}}}" = 1 ]; then echo "disk quota exceeded" >&2; exit 4; fi'
    retries: 1
    retry_delay: 0
    email: [oncall@example.com]
    email_on_retry: true
    on_execute:
      - bash: 'echo started >> {marks}/execute_{{{{ ti.try_number }}}}'
    on_retry:
      - bash: 'echo "{{{{ exception }}}}" > {marks}/retry'
    on_success:
      - webhook:
          url: "{hook}/hook"
          json: {{task: "{{{{ task.task_id }}}}", log: "{{{{ log_url }}}}"}}
"#,
            hook = server.url(),
            marks = marks.display()
        ),
    );
    let (result, log) = dag_test(&sandbox, "alerting");
    assert_eq!(
        result,
        json!({"state": "success", "tasks": {"flaky": "success"}}),
        "{log}"
    );
    // The default retry alert carries the error and the log link of the failed try.
    let alert = smtp.wait_for_message("the retry alert", |m| m.subject().contains("Updraft alert"));
    assert_eq!(alert.recipients, vec!["oncall@example.com"]);
    assert!(
        alert.subject().contains("alerting.flaky is up for retry"),
        "{}",
        alert.subject()
    );
    let body = alert.body();
    for needle in [
        "disk quota exceeded",
        "http://updraft.example:9000/dags/alerting/runs/",
        "/tasks/flaky?try_number=1",
        "2024-03-01",
    ] {
        assert!(body.contains(needle), "{needle} missing from {body}");
    }
    // on_execute ran for both tries, on_retry saw the failure message.
    assert!(marks.join("execute_1").exists() && marks.join("execute_2").exists());
    let retry = std::fs::read_to_string(marks.join("retry")).expect("on_retry ran");
    assert!(retry.contains("disk quota exceeded"), "{retry}");
    // The task's webhook, and the DAG-run's, reached the loopback server.
    let hook = server.wait_for_request("the task webhook", |r| r.body.contains("\"task\""));
    let sent: Value = serde_json::from_str(&hook.body).expect("JSON webhook");
    assert_eq!(sent["task"], "flaky");
    assert!(
        sent["log"]
            .as_str()
            .is_some_and(|l| l.ends_with("/tasks/flaky?try_number=2")),
        "{sent}"
    );
    let run_hook = server.wait_for_request("the DAG webhook", |r| r.body.contains("\"dag\""));
    assert_eq!(run_hook.method, "POST");
    assert!(
        run_hook.body.contains("\"dag\":\"alerting\""),
        "{}",
        run_hook.body
    );
}

#[test]
fn failing_notifications_leave_states_as_they_were() {
    let mut sandbox = Sandbox::new();
    sandbox.set("UPDRAFT__SMTP__HOST", "127.0.0.1");
    sandbox.set("UPDRAFT__SMTP__PORT", &closed_port().to_string());
    sandbox.set("UPDRAFT__SMTP__STARTTLS", "false");
    sandbox.write_dag(
        "loud.yaml",
        r#"
tasks:
  - id: fine
    bash: 'true'
    on_success: [{email: {to: a@example.com, text: "all good"}}]
  - id: boom
    bash: 'echo broken >&2; exit 2'
    email: [oncall@example.com]
    on_failure: [{email: {to: a@example.com, text: "{{ exception }}"}}]
"#,
    );
    let (result, log) = dag_test(&sandbox, "loud");
    assert_eq!(
        result,
        json!({"state": "failed", "tasks": {"fine": "success", "boom": "failed"}}),
        "{log}"
    );
    for needle in [
        "notification on_success: email to a@example.com failed (the state stays as it is)",
        "notification on_failure: email to a@example.com failed",
        "notification email_on_failure: alert mail to oncall@example.com failed",
    ] {
        assert!(log.contains(needle), "{needle} missing from {log}");
    }
}

#[test]
fn trigger_dag_follows_its_child() {
    let sandbox = Sandbox::new();
    sandbox.write_dag(
        "child_ok.yaml",
        "params: {rows: 0}\ntasks:\n  - {id: work, bash: 'echo rows={{ params.rows }}'}\n",
    );
    sandbox.write_dag("child_bad.yaml", "tasks:\n  - {id: work, bash: 'exit 1'}\n");
    sandbox.write_dag(
        "parent.yaml",
        r#"
tasks:
  - id: count
    bash: 'echo 7'
  - id: run_child
    depends_on: [count]
    trigger_dag:
      dag_id: child_ok
      conf: {rows: "{{ ti.xcom_pull('count') | int }}"}
      wait_for_completion: true
      poke_interval: 200ms
  - id: run_bad_child
    trigger_dag: {dag_id: child_bad, wait_for_completion: true, poke_interval: 200ms}
  - id: fire_and_forget
    trigger_dag: {dag_id: child_ok}
"#,
    );
    let (result, log) = dag_test(&sandbox, "parent");
    assert_eq!(
        result,
        json!({"state": "failed", "tasks": {
            "count": "success", "run_child": "success",
            "run_bad_child": "failed", "fire_and_forget": "success"
        }}),
        "{log}"
    );
    assert!(log.contains("trigger_dag: created run manual__"), "{log}");
    assert!(log.contains("with conf {\"rows\":7}"), "{log}");
    assert!(
        log.contains("task failed: triggered run manual__")
            && log.contains("of DAG child_bad ended failed"),
        "{log}"
    );
}
