//! Separate `dagctl scheduler`, `dagctl worker` and `dagctl api-server` processes against one
//! Postgres database: a run triggered from the CLI through the API goes to success, woken by
//! LISTEN/NOTIFY.

use std::process::Stdio;
use std::time::Duration;

use testkit::postgres::ScratchDatabase;

use crate::harness::{Sandbox, newest_run, wait_for};

#[test]
fn scheduler_and_worker_processes_share_postgres() {
    let Some(database) = ScratchDatabase::create_blocking() else {
        return;
    };
    let mut sandbox = Sandbox::with_examples();
    sandbox.set("UPDRAFT__DATABASE__URL", database.url());
    let migrate = sandbox.run(&["db", "migrate"]);
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let mut scheduler = sandbox
        .command(&["scheduler"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("scheduler");
    let mut worker = sandbox
        .command(&["worker", "--concurrency", "4"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("worker");
    let api = sandbox.api_server_logged_in();
    wait_for("DAGs parsed", Duration::from_secs(30), || {
        sandbox
            .run(&["dags", "list-runs", "task_groups"])
            .status
            .success()
            .then_some(())
    });
    let out = sandbox.run(&["dags", "trigger", "task_groups", "--conf", "{\"k\": 1}"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = wait_for("run to finish", Duration::from_secs(60), || {
        newest_run(&sandbox, "task_groups").filter(|(_, s)| s == "success" || s == "failed")
    });
    api.kill();
    let _ = scheduler.kill();
    let _ = worker.kill();
    let _ = scheduler.wait();
    let _ = worker.wait();
    assert_eq!(result.1, "success");
}

/// trigger_dag and notifications across separate scheduler and worker processes on Postgres:
/// the triggered run is followed to success, and the alert recipe's mail goes out.
#[test]
fn trigger_dag_and_alert_mail_across_processes_on_postgres() {
    let Some(database) = ScratchDatabase::create_blocking() else {
        return;
    };
    let smtp = crate::smtp::SmtpReceiver::start();
    let mut sandbox = Sandbox::with_examples();
    sandbox.set("UPDRAFT__DATABASE__URL", database.url());
    for (k, v) in smtp.env() {
        sandbox.set(&k, &v);
    }
    let migrate = sandbox.run(&["db", "migrate"]);
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let mut scheduler = sandbox
        .command(&["scheduler"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("scheduler");
    let mut worker = sandbox
        .command(&["worker", "--concurrency", "4"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("worker");
    let api = sandbox.api_server_logged_in();
    wait_for("DAGs parsed", Duration::from_secs(30), || {
        let parsed = |dag: &str| sandbox.run(&["dags", "list-runs", dag]).status.success();
        (parsed("trigger_hello") && parsed("hello") && parsed("data_quality_alert")).then_some(())
    });
    for dag in ["trigger_hello", "data_quality_alert"] {
        let out = sandbox.run(&["dags", "trigger", dag]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let parent = wait_for("trigger_hello to finish", Duration::from_secs(60), || {
        newest_run(&sandbox, "trigger_hello").filter(|(_, s)| s == "success" || s == "failed")
    });
    let child = newest_run(&sandbox, "hello");
    let alert = wait_for(
        "data_quality_alert to finish",
        Duration::from_secs(60),
        || {
            newest_run(&sandbox, "data_quality_alert")
                .filter(|(_, s)| s == "success" || s == "failed")
        },
    );
    let mail = smtp.wait_for_message("the alert mail", |m| m.subject().contains("failed for"));
    api.kill();
    let _ = scheduler.kill();
    let _ = worker.kill();
    let _ = scheduler.wait();
    let _ = worker.wait();
    assert_eq!(parent.1, "success");
    assert_eq!(child.map(|(_, state)| state).as_deref(), Some("success"));
    assert_eq!(alert.1, "failed");
    assert_eq!(mail.recipients, vec!["data-quality@example.com"]);
    assert!(
        mail.body().contains("got 0")
            && mail.body().contains("/tasks/check_row_count?try_number=1"),
        "{}",
        mail.data
    );
}
