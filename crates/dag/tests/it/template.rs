//! Rendering with Airflow's template context.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dag::template::{TemplateContext, XcomValue, eval_expr, render, render_value};
use serde_json::{Value, json};

fn ctx() -> TemplateContext {
    let at = DateTime::parse_from_rfc3339("2024-01-02T03:04:05Z")
        .expect("valid time")
        .with_timezone(&Utc);
    let xcom = |task: &str, map_index: i32, key: &str, value: Value| XcomValue {
        task_id: task.into(),
        map_index,
        key: key.into(),
        value,
    };
    TemplateContext {
        dag_id: "sales".into(),
        task_id: "report".into(),
        run_id: "scheduled__2024-01-02T03:04:05+00:00".into(),
        run_type: "scheduled".into(),
        logical_date: Some(at),
        data_interval_start: Some(at),
        data_interval_end: Some(at),
        conf: json!({"region": "eu"}),
        params: BTreeMap::from([("limit".to_string(), json!(10))]),
        try_number: 2,
        map_index: -1,
        xcoms: vec![
            xcom("extract", -1, "return_value", json!({"rows": 5})),
            xcom("extract", -1, "row_count", json!(1500)),
            xcom("mapped", 1, "return_value", json!("b")),
            xcom("mapped", 0, "return_value", json!("a")),
            xcom("report", -1, "return_value", json!("mine")),
        ],
        extra: BTreeMap::from([("source".to_string(), json!({"name": "s1", "table": "t"}))]),
        variables: BTreeMap::from([
            ("env".to_string(), "prod".to_string()),
            (
                "data_sources".to_string(),
                r#"[{"name": "crm", "table": "customers"}]"#.to_string(),
            ),
        ]),
        connections: BTreeMap::from([(
            "warehouse".to_string(),
            json!({"conn_type": "postgres", "host": "db", "port": 5432, "login": "ana",
                   "password": "pw", "schema": "sales", "extra": {"sslmode": "require"}}),
        )]),
        ..TemplateContext::default()
    }
}

fn check(template: &str, expected: &str) {
    match render(template, &ctx()) {
        Ok(got) => assert_eq!(got, expected, "{template}"),
        Err(e) => panic!("{template}: {e}"),
    }
}

fn check_err(template: &str, expected_part: &str) {
    match render(template, &ctx()) {
        Ok(got) => panic!("{template}: expected an error, got {got:?}"),
        Err(e) => assert!(e.0.contains(expected_part), "{template}: {e}"),
    }
}

#[test]
fn context_names() {
    check("{{ ds }} {{ ds_nodash }}", "2024-01-02 20240102");
    check(
        "{{ ts }} {{ ts_nodash }}",
        "2024-01-02T03:04:05+00:00 20240102T030405",
    );
    check("{{ logical_date }}", "2024-01-02T03:04:05+00:00");
    check(
        "{{ logical_date.strftime('%Y/%m') }} {{ logical_date.year }}",
        "2024/01 2024",
    );
    check(
        "{{ data_interval_start }}|{{ data_interval_end.isoformat() }}",
        "2024-01-02T03:04:05+00:00|2024-01-02T03:04:05+00:00",
    );
    check("{{ run_id }}", "scheduled__2024-01-02T03:04:05+00:00");
    check(
        "{{ dag_run.run_type }} {{ dag_run.conf.region }} {{ conf.region }}",
        "scheduled eu eu",
    );
    check("{{ dag_run.run_id == run_id }}", "True");
    check("{{ params.limit + 1 }}", "11");
    check("{{ dag.dag_id }}.{{ task.task_id }}", "sales.report");
    check(
        "{{ ti.task_id }} {{ ti.try_number }} {{ ti.map_index }}",
        "report 2 -1",
    );
    check("{{ source.name }}.{{ source.table }}", "s1.t");
}

#[test]
fn macros_and_filters() {
    check("{{ macros.ds_add(ds, 5) }}", "2024-01-07");
    check("{{ macros.ds_add('2024-03-01', -1) }}", "2024-02-29");
    check(
        "{{ macros.ds_format(ds, '%Y-%m-%d', '%d/%m/%Y') }}",
        "02/01/2024",
    );
    check(
        "{{ ds | ds_add(-2) }} {{ ds | ds_nodash }}",
        "2023-12-31 20240102",
    );
    check(
        "{{ \"it's a file\" | shell_quote }}",
        r#"'it'"'"'s a file'"#,
    );
    check(
        "{{ 'plain-name_1.csv' | shell_quote }} {{ '' | shell_quote }}",
        "plain-name_1.csv ''",
    );
    check("{{ conf | tojson }}", r#"{"region": "eu"}"#);
    check("{{ '<b>' }}", "<b>");
}

#[test]
fn xcom_pull() {
    // Pulled values render as Jinja prints them.
    check("{{ ti.xcom_pull('extract') }}", "{'rows': 5}");
    check(
        "{{ ti.xcom_pull(task_ids='extract', key='row_count') }}",
        "1500",
    );
    check("{{ ti.xcom_pull() }}", "mine");
    check("{{ ti.xcom_pull('mapped') }}", "['a', 'b']");
    check("{{ ti.xcom_pull('mapped', map_indexes=1) }}", "b");
    check(
        "{{ ti.xcom_pull(['extract', 'mapped'], key='return_value') | length }}",
        "2",
    );
    check("{{ ti.xcom_pull('missing') }}", "None");
    check(
        "{{ ti.xcom_pull('missing', default='fallback') }}",
        "fallback",
    );
    check("{{ ti.xcom_pull('extract', key='nope', default=0) }}", "0");
}

#[test]
fn variables_and_connections() {
    check("{{ var.value.env }}", "prod");
    check("{{ var.json.data_sources[0].table }}", "customers");
    check(
        "{{ conn.warehouse.host }}:{{ conn.warehouse.port }}",
        "db:5432",
    );
    check("{{ conn.warehouse.extra.sslmode }}", "require");
    assert_eq!(
        render_value(&json!("{{ var.json.data_sources }}"), &ctx()).expect("renders"),
        json!([{"name": "crm", "table": "customers"}])
    );
}

#[test]
fn errors_name_the_problem() {
    check_err("echo {{ foo }}", "undefined variable 'foo'");
    check_err("{{ var.value.x }}", "variable 'x' is not set");
    check_err("{{ var.json.env }}", "variable 'env' is not valid JSON");
    check_err("{{ conn.db.host }}", "connection 'db' does not exist");
    check_err(
        "{{ var.value.x }}",
        "(set it with `dagctl variables set x VALUE`)",
    );
    // A value that is one expression (as `expand` renders it) names the variable too.
    let err = render_value(&json!("{{ var.json.sources }}"), &ctx()).expect_err("not set");
    assert!(err.0.contains("variable 'sources' is not set"), "{err}");
    check_err("{{ ds | no_such_filter }}", "no_such_filter");
    check_err("{{ ", "syntax error");
    check_err(
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        "out of fuel",
    );
    check_err(
        "{{ macros.ds_add('not a date', 1) }}",
        "not a YYYY-MM-DD date",
    );
}

#[test]
fn values_keep_their_type() {
    let c = ctx();
    let check_value = |input: Value, expected: Value| {
        let got = render_value(&input, &c).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(got, expected, "{input}");
    };
    check_value(json!("{{ ti.xcom_pull('mapped') }}"), json!(["a", "b"]));
    check_value(json!(" {{ params.limit }} "), json!(10));
    check_value(json!("{{- conf -}}"), json!({"region": "eu"}));
    check_value(json!("n={{ params.limit }}"), json!("n=10"));
    check_value(
        json!({"a": ["{{ ds }}", 3, true, null], "b": {"c": "{{ ti.try_number }}"}}),
        json!({"a": ["2024-01-02", 3, true, null], "b": {"c": 2}}),
    );
    check_value(
        json!("{{ logical_date }}"),
        json!("2024-01-02T03:04:05+00:00"),
    );
}

#[test]
fn expressions() {
    let c = ctx();
    let check_expr = |expr: &str, expected: Value| {
        let got = eval_expr(expr, &c).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(got, expected, "{expr}");
    };
    check_expr(
        "ti.xcom_pull('extract', key='row_count') > 1000",
        json!(true),
    );
    check_expr(
        "ti.xcom_pull('extract', key='row_count') > 9999",
        json!(false),
    );
    check_expr("params.limit * 2", json!(20));
    check_expr("['a', ds]", json!(["a", "2024-01-02"]));
    let e = eval_expr("bogus > 1", &c).expect_err("undefined");
    assert!(e.0.contains("undefined variable 'bogus'"), "{e}");
}

#[test]
fn what_templates_read() {
    use dag::template::{Reads, reads, reads_value};
    let check = |text: &str, xcoms: bool, variables: bool, connections: bool| {
        let expected = Reads {
            xcoms,
            variables,
            connections,
        };
        assert_eq!(reads(text), expected, "{text}");
    };
    check("echo {{ ds }}", false, false, false);
    check("{{ ti.xcom_pull(task_ids='a') }}", true, false, false);
    check("{{ var.value.token }}", false, true, false);
    check("{{ conn.warehouse.host }}", false, false, true);
    check(
        "{{ var.json.cfg.x }} {{ conn.api.login }}",
        false,
        true,
        true,
    );
    assert!(reads("{{ var.value.k }}").secrets());
    assert!(!reads("plain text").secrets());
    let value = serde_json::json!({"url": "{{ conn.api.host }}", "n": [1, "{{ ti.xcom_pull() }}"]});
    assert_eq!(
        reads_value(&value),
        Reads {
            xcoms: true,
            variables: false,
            connections: true
        }
    );
    assert_eq!(
        reads("a") | reads("{{ var.value.b }}"),
        reads("{{ var.value.b }}")
    );
}
