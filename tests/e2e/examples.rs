//! Every example DAG in dags/ runs to success with `dagctl dags test`, with the states and
//! values written out.

use serde_json::json;

use crate::harness::Sandbox;

fn dags_test(dag_id: &str) -> (serde_json::Value, String) {
    let sandbox = Sandbox::with_examples();
    let out = sandbox.run(&["dags", "test", dag_id, "2024-03-01", "-o", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "dags test {dag_id} failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    let result = serde_json::from_slice(&out.stdout).expect("JSON result");
    (result, stderr)
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
