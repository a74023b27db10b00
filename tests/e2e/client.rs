//! The client commands against a real `dagctl standalone`: logging in, DAGs, runs, task
//! instances, logs and clearing through the REST API, listings as table/JSON/YAML, and the
//! one-line errors of a missing DAG, a missing login and an unreachable server.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Sandbox, ids, one_error_line, wait_for};

#[test]
fn dags_runs_tasks_and_logs_through_the_api() {
    let mut sandbox = Sandbox::new();
    let marker = sandbox.path().join("fixed");
    sandbox.write_dag(
        "chain.yaml",
        &format!(
            "tasks:\n  - {{id: extract, bash: 'echo extracted rows'}}\n  - {{id: flaky, bash: 'test -f {}', depends_on: [extract]}}\n  - {{id: report, bash: 'echo reported', depends_on: [flaky]}}\n",
            marker.display()
        ),
    );
    let server = sandbox.standalone();
    sandbox.set("UPDRAFT_SERVER", &format!("http://{}", server.address));

    // Before logging in: 401, told to log in.
    let error = one_error_line(&sandbox.run(&["dags", "list"]));
    assert!(error.contains("dagctl login"), "{error}");
    let refused = sandbox.run_with_input(
        &["login", "--username", "admin", "--password-stdin"],
        "not-the-password\n",
    );
    let error = one_error_line(&refused);
    assert!(error.contains("login"), "{error}");
    let no_tty = sandbox.run_with_input(&["login", "--username", "admin"], "");
    assert!(one_error_line(&no_tty).contains("--password-stdin"));

    sandbox.login(&server);
    let tokens: Value = serde_json::from_str(
        &std::fs::read_to_string(sandbox.path().join("tokens.json")).expect("token file"),
    )
    .expect("token file is JSON");
    assert!(
        tokens["tokens"][format!("http://{}", server.address)].is_string(),
        "{tokens}"
    );
    // $UPDRAFT_TOKEN wins over the saved token: a bad one is refused.
    let bogus = sandbox
        .command(&["dags", "list"])
        .env("UPDRAFT_TOKEN", "not-a-token")
        .output()
        .expect("dagctl runs");
    assert!(one_error_line(&bogus).contains("dagctl login"));

    let dags = wait_for("chain listed", Duration::from_secs(30), || {
        let dags = sandbox.json(&["dags", "list", "-o", "json"]);
        ids(&dags, "dag_id")
            .contains(&"chain".to_string())
            .then_some(dags)
    });
    assert_eq!(ids(&dags, "dag_id"), ["chain"]);
    assert!(sandbox.ok(&["dags", "list"]).contains("chain"));
    let yaml = sandbox.ok(&["dags", "list", "-o", "yaml"]);
    assert!(yaml.contains("dag_id: chain"), "{yaml}");

    let shown = sandbox.json(&["dags", "show", "chain", "-o", "json"]);
    assert_eq!(shown["dag_id"], "chain");
    assert_eq!(
        ids(&shown["tasks"], "task_id"),
        ["extract", "flaky", "report"]
    );
    let table = sandbox.ok(&["dags", "show", "chain"]);
    assert!(
        table.contains("flaky") && table.contains("dag_id"),
        "{table}"
    );
    let tasks = sandbox.json(&["tasks", "list", "chain", "-o", "json"]);
    assert_eq!(ids(&tasks, "task_id"), ["extract", "flaky", "report"]);

    // A DAG that is not there: one line naming it.
    let error = one_error_line(&sandbox.run(&["dags", "show", "missing"]));
    assert!(
        error.contains("missing") && error.to_lowercase().contains("not found"),
        "{error}"
    );
    one_error_line(&sandbox.run(&["dags", "trigger", "missing"]));

    sandbox.ok(&["dags", "pause", "chain"]);
    assert_eq!(
        sandbox.json(&["dags", "show", "chain", "-o", "json"])["is_paused"],
        true
    );
    sandbox.ok(&["dags", "unpause", "chain"]);
    assert_eq!(
        sandbox.json(&["dags", "show", "chain", "-o", "json"])["is_paused"],
        false
    );

    let run_id = sandbox.ok(&[
        "dags",
        "trigger",
        "chain",
        "--conf",
        r#"{"k": 1}"#,
        "--run-id",
        "my_run",
    ]);
    assert_eq!(run_id.trim(), "my_run");
    let failed = wait_for("the run to fail", Duration::from_secs(60), || {
        let runs = sandbox.json(&[
            "dags",
            "list-runs",
            "chain",
            "--state",
            "failed",
            "-o",
            "json",
        ]);
        (ids(&runs, "dag_run_id") == ["my_run"]).then_some(runs)
    });
    assert_eq!(failed[0]["conf"]["k"], 1);
    let succeeded = sandbox.json(&[
        "dags",
        "list-runs",
        "chain",
        "--state",
        "success",
        "-o",
        "json",
    ]);
    assert_eq!(succeeded, serde_json::json!([]));

    let states = sandbox.json(&[
        "tasks",
        "states-for-dag-run",
        "chain",
        "my_run",
        "-o",
        "json",
    ]);
    let state_of = |states: &Value, task: &str| {
        states
            .as_array()
            .expect("list")
            .iter()
            .find(|ti| ti["task_id"] == task)
            .map(|ti| ti["state"].as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("no {task} in {states}"))
    };
    assert_eq!(state_of(&states, "extract"), "success");
    assert_eq!(state_of(&states, "flaky"), "failed");
    assert_eq!(state_of(&states, "report"), "upstream_failed");
    let log = sandbox.ok(&["tasks", "logs", "chain", "my_run", "extract"]);
    assert!(log.contains("extracted rows"), "{log}");

    // Clearing asks first; with no terminal to ask on it wants --yes.
    let error = one_error_line(&sandbox.run(&["tasks", "clear", "chain", "--run-id", "my_run"]));
    assert!(error.contains("--yes"), "{error}");
    let error = one_error_line(&sandbox.run(&[
        "tasks",
        "clear",
        "chain",
        "--run-id",
        "my_run",
        "--task-regex",
        "^nothing",
        "--yes",
    ]));
    assert!(error.contains("^nothing"), "{error}");
    std::fs::write(&marker, "").expect("marker");
    let cleared = sandbox.ok(&[
        "tasks",
        "clear",
        "chain",
        "--run-id",
        "my_run",
        "--task-regex",
        "^fla",
        "--downstream",
        "--only-failed",
        "--yes",
    ]);
    let mut cleared: Vec<&str> = cleared.lines().collect();
    cleared.sort_unstable();
    assert_eq!(cleared, ["flaky", "report"]);
    wait_for(
        "the cleared run to succeed",
        Duration::from_secs(60),
        || {
            let runs = sandbox.json(&[
                "dags",
                "list-runs",
                "chain",
                "--state",
                "success",
                "-o",
                "json",
            ]);
            (ids(&runs, "dag_run_id") == ["my_run"]).then_some(())
        },
    );
    let states = sandbox.json(&[
        "tasks",
        "states-for-dag-run",
        "chain",
        "my_run",
        "-o",
        "json",
    ]);
    assert_eq!(state_of(&states, "report"), "success");
    let log = sandbox.ok(&["tasks", "logs", "chain", "my_run", "report"]);
    assert!(log.contains("reported"), "{log}");

    one_error_line(&sandbox.run(&["dags", "delete", "chain"]));
    let deleted = sandbox.ok(&["dags", "delete", "chain", "--yes"]);
    assert!(deleted.contains("deleted"), "{deleted}");
    // The file is still there, so the DAG may come back, but never with the old runs.
    let runs = sandbox.run(&["dags", "list-runs", "chain", "-o", "json"]);
    if runs.status.success() {
        let runs: Value = serde_json::from_slice(&runs.stdout).expect("JSON");
        assert!(
            !ids(&runs, "dag_run_id").contains(&"my_run".to_string()),
            "{runs}"
        );
    }
}

#[test]
fn variables_connections_and_pools_round_trip_through_the_api() {
    let mut sandbox = Sandbox::new();
    let _server = sandbox.standalone_logged_in();

    sandbox.ok(&["variables", "set", "region", "eu", "--description", "where"]);
    sandbox.ok(&["variables", "set", "region", "us"]);
    assert_eq!(sandbox.ok(&["variables", "get", "region"]).trim(), "us");
    let yaml = sandbox.ok(&["variables", "list", "-o", "yaml"]);
    assert!(yaml.contains("key: region"), "{yaml}");
    let listed = sandbox.json(&["variables", "list", "-o", "json"]);
    assert_eq!(listed[0]["description"], "where", "{listed}");
    sandbox.ok(&["variables", "set", "doc", r#"{"a": [1, 2]}"#]);
    let pretty = sandbox.ok(&["variables", "get", "doc", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&pretty).expect("JSON"),
        serde_json::json!({"a": [1, 2]})
    );
    sandbox.ok(&["variables", "delete", "region"]);
    let error = one_error_line(&sandbox.run(&["variables", "get", "region"]));
    assert!(error.contains("region"), "{error}");

    sandbox.ok(&[
        "connections",
        "add",
        "warehouse",
        "--conn-uri",
        "postgres://ana:pw@db:5432/sales?sslmode=require",
    ]);
    // Adding again is refused, as in Airflow: delete, then add.
    one_error_line(&sandbox.run(&["connections", "add", "warehouse", "--conn-type", "postgres"]));
    sandbox.ok(&["connections", "delete", "warehouse"]);
    sandbox.ok(&[
        "connections",
        "add",
        "warehouse",
        "--conn-type",
        "postgres",
        "--conn-host",
        "db2",
        "--conn-port",
        "6432",
    ]);
    let connection = sandbox.json(&["connections", "get", "warehouse", "-o", "json"]);
    assert_eq!(connection["connection_id"], "warehouse");
    assert_eq!(connection["host"], "db2");
    assert_eq!(connection["port"], 6432);
    let table = sandbox.ok(&["connections", "list"]);
    assert!(
        table.contains("warehouse") && table.contains("db2"),
        "{table}"
    );
    sandbox.ok(&["connections", "delete", "warehouse"]);
    let listed = sandbox.json(&["connections", "list", "-o", "json"]);
    assert_eq!(listed, serde_json::json!([]));
    one_error_line(&sandbox.run(&["connections", "get", "warehouse"]));

    sandbox.ok(&["pools", "set", "etl", "4", "--description", "ETL slots"]);
    let pools = sandbox.json(&["pools", "list", "-o", "json"]);
    let etl = pools
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["name"] == "etl")
        .unwrap_or_else(|| panic!("{pools}"));
    assert_eq!(etl["slots"], 4);
    assert_eq!(etl["description"], "ETL slots");
    sandbox.ok(&["pools", "delete", "etl"]);
    let pools = sandbox.json(&["pools", "list", "-o", "json"]);
    assert_eq!(ids(&pools, "name"), ["default_pool"]);
    one_error_line(&sandbox.run(&["pools", "set", "etl", "--", "-1"]));
}

#[test]
fn an_unreachable_server_is_one_clear_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut sandbox = Sandbox::new();
    sandbox.set("UPDRAFT_SERVER", "http://127.0.0.1:1");
    let server = format!("http://127.0.0.1:{port}");
    // --server wins over $UPDRAFT_SERVER.
    for args in [
        vec!["dags", "list", "--server", server.as_str()],
        vec!["--server", server.as_str(), "variables", "get", "x"],
    ] {
        let error = one_error_line(&sandbox.run(&args));
        assert_eq!(
            error,
            format!(
                "error: the server at {server} is unreachable (connection refused); start one with `dagctl standalone`, or point --server / $UPDRAFT_SERVER at it"
            )
        );
    }
    let error = one_error_line(&sandbox.run(&["dags", "list", "--server", "localhost:8080"]));
    assert!(
        error.contains("invalid server URL 'localhost:8080'"),
        "{error}"
    );
    // Local commands need no server.
    sandbox.write_dag("one.yaml", "tasks:\n  - {id: a, bash: 'true'}\n");
    sandbox.ok(&["dags", "validate"]);
}
