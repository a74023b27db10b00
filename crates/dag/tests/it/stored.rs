//! Stored definitions: the JSON of a `Dag` written by a release whose operator specs were
//! raw JSON must still load, into the same typed specs a parse gives.

use dag::parse::parse_dag_str;
use dag::{Dag, EmailSpec, HttpSpec, SqlSpec, TaskKind, TriggerDagSpec};
use serde_json::{Value, json};

const OPERATORS: &str = r#"
schedule: null
tasks:
  - id: call
    http: {method: post, url: /hooks/run, conn_id: api, json: {n: 1}, expect_status: [200, 201]}
  - id: query
    sql: {conn_id: warehouse, sql: "select {{ ds }}", parameters: [1, "two"]}
  - id: mail
    email: {to: [a@example.com], subject: "done {{ ds }}", text: hello}
  - id: child
    trigger_dag: {dag_id: other, conf: {k: "{{ run_id }}"}, wait_for_completion: true, poke_interval: 2s}
"#;

/// Each task's `kind` as the raw-JSON release stored it: the block as written.
fn old_kinds() -> Vec<Value> {
    vec![
        json!({"kind": "http", "spec": {"method": "post", "url": "/hooks/run", "conn_id": "api",
            "json": {"n": 1}, "expect_status": [200, 201]}}),
        json!({"kind": "sql", "spec": {"conn_id": "warehouse", "sql": "select {{ ds }}",
            "parameters": [1, "two"]}}),
        json!({"kind": "email", "spec": {"to": ["a@example.com"], "subject": "done {{ ds }}",
            "text": "hello"}}),
        json!({"kind": "trigger_dag", "spec": {"dag_id": "other", "conf": {"k": "{{ run_id }}"},
            "wait_for_completion": true, "poke_interval": "2s"}}),
    ]
}

#[test]
fn a_definition_in_the_old_shape_loads_into_the_typed_specs() {
    let parsed = parse_dag_str("operators.yaml", OPERATORS).expect("the DAG parses");
    let mut stored = serde_json::to_value(&parsed).expect("a Dag serializes");
    let tasks = stored["tasks"].as_array_mut().expect("tasks is a list");
    for (task, kind) in tasks.iter_mut().zip(old_kinds()) {
        task["kind"] = kind;
    }
    let loaded: Dag = serde_json::from_value(stored).expect("the old shape deserializes");
    assert_eq!(loaded, parsed);
    let TaskKind::Http { spec } = &loaded.tasks[0].kind else {
        panic!("call is an http task");
    };
    assert_eq!(
        spec,
        &HttpSpec {
            method: Some(json!("post")),
            url: Some(json!("/hooks/run")),
            json: Some(json!({"n": 1})),
            conn_id: Some(json!("api")),
            expect_status: Some(json!([200, 201])),
            ..HttpSpec::default()
        }
    );
}

#[test]
fn typed_specs_serialize_to_the_old_shape() {
    let parsed = parse_dag_str("operators.yaml", OPERATORS).expect("the DAG parses");
    for (task, old) in parsed.tasks.iter().zip(old_kinds()) {
        let new = serde_json::to_value(&task.kind).expect("a kind serializes");
        assert_eq!(new, old, "task {}", task.task_id);
    }
    // Unset fields are left out, and a null reads as unset.
    let sql: TaskKind =
        serde_json::from_value(json!({"kind": "sql", "spec": {"sql": "select 1", "file": null}}))
            .expect("a sparse spec deserializes");
    let expected = TaskKind::Sql {
        spec: SqlSpec {
            sql: Some(json!("select 1")),
            ..SqlSpec::default()
        },
    };
    assert_eq!(sql, expected);
    assert_eq!(
        serde_json::to_value(&expected).expect("serializes"),
        json!({"kind": "sql", "spec": {"sql": "select 1"}})
    );
    for empty in [
        serde_json::to_value(EmailSpec::default()),
        serde_json::to_value(TriggerDagSpec::default()),
    ] {
        assert_eq!(empty.expect("serializes"), json!({}));
    }
}
