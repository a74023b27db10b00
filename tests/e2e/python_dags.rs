//! Airflow's own Python DAG files, run unchanged: the examples in `dags/airflow/` reach the
//! final states Airflow gives them through `dagctl dags test` (the real scheduler, worker,
//! store and Python processes), Python callbacks run once each, also for tries killed before
//! they could run them and for DAGs when their runs end (mail included, to a real SMTP
//! receiver), and broken files are import errors that name file and line without holding up
//! the good ones.

use serde_json::json;

use crate::harness::{Sandbox, dags_test_examples, repo_root};
use crate::smtp::SmtpReceiver;

fn dags_test(dag_id: &str, args: &[&str]) -> (serde_json::Value, String) {
    dags_test_examples(dag_id, args)
}

#[test]
fn the_airflow_2_sales_etl_waits_for_its_file_and_passes_xcoms() {
    let (result, logs) = dags_test("airflow_sales_etl", &[]);
    assert_eq!(
        result,
        json!({"state": "success", "tasks": {
            "generate_sample": "success", "wait_for_sales_file": "success",
            "extract": "success", "transform": "success", "report": "success"}})
    );
    assert!(
        logs.contains(
            r#"sales for 2024-03-01: {"orders": 3, "regions": {"north": 15.0, "south": 20.0}}"#
        ),
        "{logs}"
    );
}

#[test]
fn a_branch_python_operator_follows_one_path_and_the_join_runs() {
    let (result, logs) = dags_test("airflow_branching", &["--conf", r#"{"rows": 5000}"#]);
    assert_eq!(
        result,
        json!({"state": "success", "tasks": {
            "check_size": "success", "process_large": "success",
            "process_small": "skipped", "join": "success"}})
    );
    assert!(logs.contains("processing the large batch"), "{logs}");
    let (result, _) = dags_test("airflow_branching", &[]);
    assert_eq!(result["tasks"]["process_small"], "success", "{result}");
    assert_eq!(result["tasks"]["process_large"], "skipped", "{result}");
}

#[test]
fn task_groups_keep_their_ids_and_group_to_group_edges() {
    let (result, _) = dags_test("airflow_task_groups", &[]);
    assert_eq!(
        result,
        json!({"state": "success", "tasks": {
            "start": "success",
            "customers.extract": "success", "customers.transform": "success",
            "orders.extract": "success", "orders.transform": "success",
            "analytics.join": "success", "analytics.reports.daily": "success",
            "end": "success"}})
    );
}

#[test]
fn tasks_generated_from_a_variable_at_parse_time() {
    let (result, logs) = dags_test("airflow_data_sources", &[]);
    assert_eq!(
        result,
        json!({"state": "success", "tasks": {
            "process_crm": "success", "process_erp": "success", "summary": "success"}})
    );
    assert!(logs.contains("processed crm, erp"), "{logs}");
}

#[test]
fn a_taskflow_dag_maps_branches_and_passes_values() {
    let (result, logs) = dags_test("airflow_taskflow", &[]);
    assert_eq!(result["state"], "success", "{result}");
    let tasks = &result["tasks"];
    assert_eq!(tasks["extract"], "success");
    assert_eq!(tasks["stats"], "success");
    assert_eq!(tasks["big_or_small"], "success");
    assert_eq!(tasks["report_big"], "success", "{result}");
    assert_eq!(tasks["report_small"], "skipped", "{result}");
    assert!(logs.contains("big batch, doubled: [6, 14, 24]"), "{logs}");
}

#[test]
fn an_airflow_file_keeps_airflows_rules_where_dag_format_differs() {
    // The fixture's comments say what each task shows (docs/airflow-differences.md).
    let sandbox = Sandbox::new();
    let fixture = repo_root().join("tests/e2e/fixtures/airflow_semantics/airflow_semantics.py");
    let text = std::fs::read_to_string(&fixture).expect("the fixture is readable");
    sandbox.write_dag("airflow_semantics.py", &text);
    let out = sandbox.run(&[
        "dags",
        "test",
        "airflow_semantics",
        "2024-03-01",
        "-o",
        "json",
    ]);
    let logs = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "dags test failed:\n{}\n{logs}",
        String::from_utf8_lossy(&out.stdout)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON result");
    assert_eq!(result["state"], "success", "{result}\n{logs}");
    let tasks = &result["tasks"];
    for (task, state) in [
        ("merged", "success"),
        ("quiet", "success"),
        ("total", "success"),
        ("report", "success"),
        ("jinja", "success"),
        ("pick", "success"),
        ("step", "skipped"),
        ("deep", "skipped"),
        ("join", "success"),
    ] {
        assert_eq!(tasks[task], state, "{task}: {result}\n{logs}");
    }
    assert!(
        logs.contains(
            r#"pulled: {"blank": "", "merged": "err", "one": 10, "quiet": null, "silent": "", "total": 10}"#
        ),
        "{logs}"
    );
    assert!(logs.contains("jinja: one=10 quiet=None"), "{logs}");
}

#[test]
fn python_tasks_write_variables_fail_without_retry_and_stop_at_their_timeout() {
    let sandbox = Sandbox::new();
    let fixture = repo_root().join("tests/e2e/fixtures/airflow_runtime/airflow_runtime.py");
    let text = std::fs::read_to_string(&fixture).expect("the fixture is readable");
    sandbox.write_dag("airflow_runtime.py", &text);
    let out = sandbox.run(&[
        "dags",
        "test",
        "airflow_runtime",
        "2024-03-01",
        "-o",
        "json",
    ]);
    let logs = String::from_utf8_lossy(&out.stderr).to_string();
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON result");
    assert_eq!(result["state"], "failed", "{result}\n{logs}");
    let tasks = &result["tasks"];
    for (task, state) in [
        ("write", "success"),
        ("read", "success"),
        ("check", "success"),
        ("refuse", "failed"),
        ("linger", "failed"),
    ] {
        assert_eq!(tasks[task], state, "{task}: {result}\n{logs}");
    }
    // Variables written by one task are stored (each try reads them from the store), and
    // the next task reads them; a deleted one is gone for the task after.
    assert!(logs.contains("counter in the same try: 7"), "{logs}");
    assert!(
        logs.contains("read back: counter=7 mode=fast obsolete=old"),
        "{logs}"
    );
    assert!(logs.contains("after delete: obsolete=gone"), "{logs}");
    // AirflowFailException fails the task on its first try, with retries left.
    assert!(logs.contains("[refuse try 1]"), "{logs}");
    assert!(!logs.contains("[refuse try 2]"), "{logs}");
    assert!(logs.contains("no retry"), "{logs}");
    // A warm try is stopped by its execution_timeout like any process.
    assert!(
        logs.contains("[linger try 1]") && logs.contains("execution_timeout"),
        "{logs}"
    );
}

#[test]
fn a_failure_callback_mails_the_failed_task_and_the_dags_callback_the_failed_run() {
    let smtp = SmtpReceiver::start();
    let mut sandbox = Sandbox::with_examples();
    for (k, v) in smtp.env() {
        sandbox.set(&k, &v);
    }
    let out = sandbox.run(&[
        "dags",
        "test",
        "airflow_failure_alert",
        "2024-03-01",
        "-o",
        "json",
    ]);
    let logs = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "the check fails on purpose:\n{logs}");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON result");
    assert_eq!(
        result,
        json!({"state": "failed", "tasks": {
            "extract": "success", "check_row_count": "failed", "publish": "upstream_failed"}}),
        "{logs}"
    );
    // The task's callback ran in the try's own process, which logged the mail.
    assert!(
        logs.contains("Running on_failure_callback mail_task_failure"),
        "{logs}"
    );
    let task_mail = smtp.wait_for_message("the task's alert", |m| {
        m.subject()
            .ends_with("check_row_count failed for 2024-03-01")
    });
    assert_eq!(task_mail.recipients, vec!["data-quality@example.com"]);
    assert_eq!(
        task_mail.subject(),
        "[airflow] airflow_failure_alert.check_row_count failed for 2024-03-01"
    );
    let body = task_mail.body();
    for needle in [
        "Task <b>check_row_count</b> of DAG <b>airflow_failure_alert</b> failed on try 1.",
        "Error: data quality check failed: expected at least 1 row for 2024-03-01, got 0",
        "/dags/airflow_failure_alert/runs/manual__2024-03-01T00:00:00+00:00/tasks/check_row_count?try_number=1",
    ] {
        assert!(body.contains(needle), "{needle:?} missing from:\n{body}");
    }
    // The DAG's callback ran in the scheduler's callback process once the run had failed.
    let run_mail = smtp.wait_for_message("the run's alert", |m| m.subject().contains("run "));
    assert_eq!(
        run_mail.subject(),
        "[airflow] run manual__2024-03-01T00:00:00+00:00 of airflow_failure_alert failed"
    );
    let body = run_mail.body();
    assert!(body.contains("Reason: task_failure"), "{body}");
    assert!(
        body.contains(
            "run manual__2024-03-01T00:00:00+00:00 failed; failed tasks: check_row_count"
        ),
        "{body}"
    );
    assert_eq!(
        smtp.messages().len(),
        2,
        "one mail each: {:?}",
        smtp.messages()
    );
}

/// The lines the fixture's callbacks wrote, and `dags test`'s result and logs.
fn run_callbacks_fixture(dag_id: &str) -> (Vec<String>, serde_json::Value, String) {
    let mut sandbox = Sandbox::new();
    let fixture = repo_root().join("tests/e2e/fixtures/airflow_callbacks/airflow_callbacks.py");
    let text = std::fs::read_to_string(&fixture).expect("the fixture is readable");
    sandbox.write_dag("airflow_callbacks.py", &text);
    let out_dir = sandbox.path().join("out");
    std::fs::create_dir_all(&out_dir).expect("out dir");
    sandbox.set("CALLBACKS_OUT", &out_dir.display().to_string());
    sandbox.set("UPDRAFT__WORKER__KILL_GRACE", "1s");
    let out = sandbox.run(&["dags", "test", dag_id, "2024-03-01", "-o", "json"]);
    let logs = String::from_utf8_lossy(&out.stderr).to_string();
    let result: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON result ({e}):\n{logs}"));
    // `dags test` returns once every callback has ended: the file is complete.
    let lines = std::fs::read_to_string(out_dir.join("callbacks.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    (lines, result, logs)
}

#[test]
fn callbacks_of_killed_tries_run_once_after_the_end_and_the_dags_when_the_run_ends() {
    let (lines, result, logs) = run_callbacks_fixture("callbacks_after_kill");
    assert_eq!(
        result,
        json!({"state": "failed", "tasks": {
            "stubborn": "failed", "polite": "failed", "retried": "failed"}}),
        "{logs}"
    );
    let of =
        |prefix: &str| -> Vec<&String> { lines.iter().filter(|l| l.starts_with(prefix)).collect() };
    let ctx = "2024-03-01|task failed: execution_timeout exceeded";
    // Killed with SIGKILL: the worker ran its callback after the end, once.
    assert_eq!(
        of("failed|task_failure|stubborn|"),
        [&format!("failed|task_failure|stubborn|try 1|{ctx}")],
        "{lines:?}\n{logs}"
    );
    // Its log says so, then shows the callback's output and how it ended.
    // (Each line is "[task try N] HH:MM:SS.mmm text".)
    let after_end: Vec<&str> = logs
        .lines()
        .filter_map(|l| l.strip_prefix("[stubborn try 1] "))
        .filter_map(|l| l.split_once(' ').map(|(_, text)| text))
        .skip_while(|text| *text != "task ended: failed")
        .collect();
    assert_eq!(
        after_end,
        [
            "task ended: failed",
            "the try's process ended before running its on_failure_callback: running it now",
            "Running on_failure_callback note_failed",
            "callback ran: failed|task_failure|stubborn|try 1|2024-03-01|task failed: execution_timeout exceeded",
            "on_failure_callback of task stubborn done",
            "on_failure_callback succeeded",
        ],
        "{logs}"
    );
    // The polite task's own process ran its callback: nothing ran after its end.
    assert!(
        !logs
            .lines()
            .any(|l| l.starts_with("[polite try 1] ") && l.contains("the try's process ended")),
        "{logs}"
    );
    // It handled SIGTERM: its own process ran the callback, and nobody ran it again.
    assert_eq!(
        of("failed|task_failure|polite|"),
        [&"failed|task_failure|polite|try 1|2024-03-01|Task received SIGTERM signal".to_string()],
        "{lines:?}\n{logs}"
    );
    // Killed on both tries: its retry callback after the first, its failure callback after
    // the second.
    assert_eq!(
        of("retry|"),
        [&format!("retry|task_failure|retried|try 1|{ctx}")],
        "{lines:?}\n{logs}"
    );
    assert_eq!(
        of("failed|task_failure|retried|"),
        [&format!("failed|task_failure|retried|try 2|{ctx}")],
        "{lines:?}\n{logs}"
    );
    // The DAG's callback, with the context of the run's last task instance.
    assert_eq!(
        of("dag_"),
        [&"dag_failed|task_failure|stubborn|try 1|2024-03-01|run manual__2024-03-01T00:00:00+00:00 failed; failed tasks: stubborn, polite, retried".to_string()],
        "{lines:?}\n{logs}"
    );
    assert_eq!(lines.len(), 5, "{lines:?}");
}

#[test]
fn a_dags_success_callback_runs_when_its_run_succeeds() {
    let (lines, result, logs) = run_callbacks_fixture("callbacks_on_success");
    assert_eq!(
        result,
        json!({"state": "success", "tasks": {"fine": "success"}}),
        "{logs}"
    );
    assert_eq!(
        lines,
        ["dag_succeeded|success|fine|try 1|2024-03-01|None"],
        "{logs}"
    );
}

/// `dags validate` on a folder holding these files; its exit status and output.
fn validate(files: &[(&str, &str)], env: &[(&str, &str)]) -> (bool, String) {
    let mut sandbox = Sandbox::new();
    for (key, value) in env {
        sandbox.set(key, value);
    }
    for (name, text) in files {
        sandbox.write_dag(name, text);
    }
    let out = sandbox.run(&["dags", "validate"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

const GOOD: &str = "from airflow import DAG\nfrom airflow.operators.empty import EmptyOperator\n\
with DAG('good', schedule=None):\n    EmptyOperator(task_id='a')\n";

#[test]
fn broken_python_files_are_import_errors_naming_file_and_line() {
    let files = [
        ("good.py", GOOD),
        (
            "syntax.py",
            "from airflow import DAG\n\nwith DAG('s') as dag:\n    x = (\n",
        ),
        (
            "unsupported.py",
            "from airflow import DAG\nfrom airflow.providers.amazon.aws.operators.s3 import S3CreateBucketOperator\n",
        ),
        (
            "raises.py",
            "from airflow import DAG\n\n\nraise ValueError('no config for this dag')\n",
        ),
        (
            "exits.py",
            "import sys\nfrom airflow import DAG\nsys.exit(3)\n",
        ),
        (
            "aborts.py",
            "import os\nfrom airflow import DAG\nos.abort()\n",
        ),
        (
            "chatty.py",
            "from airflow import DAG\nfrom airflow.operators.empty import EmptyOperator\n\
print('x' * 5_000_000)\nwith DAG('chatty', schedule=None):\n    EmptyOperator(task_id='a')\n",
        ),
        (
            "hangs.py",
            "from airflow import DAG\nwhile True:\n    pass\n",
        ),
        (
            "twice.py",
            "from airflow import DAG\nfrom airflow.operators.empty import EmptyOperator\n\
with DAG('good', schedule=None):\n    EmptyOperator(task_id='b')\n",
        ),
        ("helper.py", "def not_a_dag():\n    return 1\n"),
    ];
    let (ok, out) = validate(&files, &[("UPDRAFT__CORE__DAGBAG_IMPORT_TIMEOUT", "2s")]);
    assert!(!ok, "{out}");
    let line_of = |file: &str| {
        out.lines()
            .find(|l| l.contains(&format!("/{file}:")) || l.starts_with(&format!("{file}:")))
            .unwrap_or_else(|| panic!("no error for {file}:\n{out}"))
            .to_string()
    };
    assert!(line_of("syntax.py").contains("syntax.py:4:"), "{out}");
    let unsupported = line_of("unsupported.py");
    assert!(unsupported.contains("airflow.providers.amazon"), "{out}");
    let raises = line_of("raises.py");
    assert!(
        raises.contains("raises.py:4:") && raises.contains("no config for this dag"),
        "{out}"
    );
    assert!(line_of("exits.py").contains("sys.exit(3)"), "{out}");
    assert!(line_of("aborts.py").contains("signal 6"), "{out}");
    assert!(
        line_of("hangs.py").contains("dagbag_import_timeout"),
        "{out}"
    );
    let twice = line_of("twice.py");
    assert!(
        twice.contains("dag_id 'good' is already defined in") && twice.contains("good.py"),
        "{out}"
    );
    assert!(
        !out.contains("chatty.py"),
        "a file that prints a lot is fine: {out}"
    );
    assert!(
        !out.contains("helper.py"),
        "a file without the words is no DAG file: {out}"
    );
    assert!(out.contains("7 of 10 file(s) invalid"), "{out}");
}

#[test]
fn the_example_python_dags_validate() {
    let sandbox = Sandbox::with_examples();
    let out = sandbox.run(&["dags", "validate", "dags/airflow"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_dag_files_top_level_code_never_sees_the_stores_credentials() {
    let probe = "import os\nfrom airflow import DAG\nfrom airflow.operators.empty import EmptyOperator\n\
        leaked = sorted(k for k in os.environ if k.startswith('UPDRAFT__') or 'DATABASE_URL' in k)\n\
        if leaked:\n    raise RuntimeError('credentials visible: %s' % leaked)\n\
        with DAG('probe', schedule=None):\n    EmptyOperator(task_id='a')\n";
    let (ok, text) = validate(
        &[("probe.py", probe)],
        &[("UPDRAFT__DATABASE__URL", "sqlite:///secret.db")],
    );
    assert!(ok, "{text}");
}
