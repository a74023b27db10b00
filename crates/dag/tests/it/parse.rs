//! DAG files in, `Dag` or located import errors out.

use dag::model::{Schedule, TaskKind};
use dag::parse::{MAX_FILE_BYTES, parse_dag_bytes, parse_dag_str};
use dag::{Dag, TriggerRule};

fn ok(path: &str, text: &str) -> Dag {
    match parse_dag_str(path, text) {
        Ok(dag) => dag,
        Err(e) => panic!("expected {path} to parse, got:\n{e}"),
    }
}

/// Each expected entry is `"line:column: part of the message"`; every error must be matched
/// by exactly one entry, in file order.
fn check_errors(path: &str, text: &str, expected: &[&str]) {
    let errors = match parse_dag_str(path, text) {
        Ok(_) => panic!("expected {path} to fail"),
        Err(e) => e.errors,
    };
    let got: Vec<String> = errors
        .iter()
        .map(|e| format!("{}:{}: {}", e.line, e.column, e.message))
        .collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "wrong number of errors:\n{}",
        got.join("\n")
    );
    for (g, e) in got.iter().zip(expected) {
        let (loc, part) = e
            .split_once(": ")
            .expect("expected entries are 'L:C: text'");
        assert!(
            g.starts_with(&format!("{loc}: ")) && g.contains(part),
            "error {g:?} does not match {e:?}\nall errors:\n{}",
            got.join("\n")
        );
    }
    assert!(errors.iter().all(|e| e.file == path));
}

fn yaml_err(text: &str, expected: &[&str]) {
    check_errors("bad.yaml", text, expected);
}

const EXAMPLE: &str = r#"description: Daily sales ETL pipeline
schedule: "0 2 * * *"
start_date: 2024-01-01
tags: [sales, etl, daily]
default_args:
  owner: data-team
  retries: 3
  retry_delay: 5m
  execution_timeout: 1h
  email: [alerts@example.com]
  email_on_failure: true
tasks:
  - id: wait_for_sales_file
    sensor: {file: "/data/sales/{{ ds }}.csv"}
    poke_interval: 60s
    timeout: 1h
  - id: extract_sales_data
    python: {file: sales.py, callable: extract_sales}
  - id: check_data_quality
    switch:
      - {if: "ti.xcom_pull('extract_sales_data', key='row_count') > 1000", then: process_large_dataset}
      - {if: "ti.xcom_pull('extract_sales_data', key='row_count') > 0", then: process_small_dataset}
      - {else: skip_processing}
  - {id: process_large_dataset, bash: "echo large"}
  - {id: process_small_dataset, bash: "echo small"}
  - {id: skip_processing, empty: {}}
  - {id: join, empty: {}, trigger_rule: none_failed_min_one_success}
  - id: generate_daily_report
    bash: "python3 report.py --date {{ ds }} --output /reports/sales_{{ ds }}.pdf"
  - {id: cleanup_temp_files, bash: "rm -f /tmp/sales_{{ ds_nodash }}*"}
edges:
  - wait_for_sales_file >> extract_sales_data >> check_data_quality
  - check_data_quality >> [process_large_dataset, process_small_dataset, skip_processing] >> join
  - join >> generate_daily_report >> cleanup_temp_files
"#;

#[test]
fn is_paused_upon_creation_is_kept_only_when_the_file_says_it() {
    let with = |line: &str| {
        ok(
            "dags/p.yaml",
            &format!("{line}\ntasks:\n  - {{id: a, bash: 'true'}}\n"),
        )
        .is_paused_upon_creation
    };
    assert_eq!(with("is_paused_upon_creation: false"), Some(false));
    assert_eq!(with("is_paused_upon_creation: true"), Some(true));
    assert_eq!(with("description: unsaid"), None);
    let err = parse_dag_str(
        "dags/p.yaml",
        "is_paused_upon_creation: maybe\ntasks:\n  - {id: a, bash: 'true'}\n",
    )
    .expect_err("not a bool");
    assert!(err.to_string().contains("is_paused_upon_creation"), "{err}");
}

#[test]
fn the_contract_example_parses_with_defaults() {
    let dag = ok("dags/daily_sales.yaml", EXAMPLE);
    assert_eq!(dag.dag_id, "daily_sales");
    assert_eq!(dag.fileloc, "dags/daily_sales.yaml");
    assert_eq!(dag.schedule, Schedule::Cron("0 2 * * *".into()));
    assert_eq!(
        dag.start_date.map(|d| d.to_rfc3339()),
        Some("2024-01-01T00:00:00+00:00".into())
    );
    assert_eq!(dag.timezone, "UTC");
    assert_eq!(dag.tags, ["sales", "etl", "daily"]);
    assert_eq!(dag.owner, "data-team");
    assert_eq!((dag.max_active_runs, dag.max_active_tasks), (16, 16));
    assert!(!dag.catchup && !dag.data_intervals);
    assert_eq!(
        dag.is_paused_upon_creation, None,
        "unsaid: the scheduler's setting decides"
    );
    assert_eq!(dag.tasks.len(), 9);

    let join = dag.task("join").expect("join");
    assert_eq!(join.trigger_rule, TriggerRule::NoneFailedMinOneSuccess);
    assert_eq!(
        join.upstream,
        [
            "process_large_dataset",
            "process_small_dataset",
            "skip_processing"
        ]
    );
    let extract = dag.task("extract_sales_data").expect("extract");
    assert_eq!(extract.retries, 3);
    assert_eq!(extract.retry_delay, 300.0);
    assert_eq!(extract.execution_timeout, Some(3600.0));
    assert_eq!(extract.owner, "data-team");
    assert_eq!(extract.email, ["alerts@example.com"]);
    assert_eq!(extract.upstream, ["wait_for_sales_file"]);
    match &extract.kind {
        TaskKind::Python(p) => {
            assert_eq!(p.file.as_deref(), Some("sales.py"));
            assert_eq!(p.callable.as_deref(), Some("extract_sales"));
            assert_eq!(p.interpreter, "python3");
        }
        other => panic!("expected python, got {other:?}"),
    }
    match &dag.task("check_data_quality").expect("switch").kind {
        TaskKind::Switch { cases } => {
            assert_eq!(cases.len(), 3);
            assert_eq!(cases[0].then, ["process_large_dataset"]);
            assert!(
                cases[0]
                    .condition
                    .as_deref()
                    .is_some_and(|c| c.contains("> 1000"))
            );
            assert_eq!(cases[2].condition, None);
            assert_eq!(cases[2].then, ["skip_processing"]);
        }
        other => panic!("expected switch, got {other:?}"),
    }
    match &dag.task("wait_for_sales_file").expect("sensor").kind {
        TaskKind::Sensor(sensor) => {
            assert_eq!(
                sensor.probe,
                dag::Probe::File {
                    path: "/data/sales/{{ ds }}.csv".into()
                }
            );
            assert_eq!(sensor.poke_interval, 60.0);
            assert_eq!(sensor.timeout, 3600.0);
            assert_eq!(sensor.mode, dag::SensorMode::Reschedule);
            assert!(!sensor.soft_fail);
        }
        other => panic!("expected sensor, got {other:?}"),
    }
}

#[test]
fn task_defaults() {
    let dag = ok("d.yaml", "tasks:\n  - {id: t, bash: echo}\n");
    let t = &dag.tasks[0];
    assert_eq!(dag.owner, "updraft");
    assert_eq!(dag.schedule, Schedule::None);
    assert_eq!(t.owner, "updraft");
    assert_eq!(t.trigger_rule, TriggerRule::AllSuccess);
    assert_eq!(
        (t.retries, t.retry_delay, t.max_retry_delay),
        (0, 300.0, 86_400.0)
    );
    assert_eq!(t.retry_exponential_backoff, None);
    assert_eq!(t.execution_timeout, None);
    assert_eq!(
        (t.pool.as_str(), t.pool_slots, t.priority_weight),
        ("default_pool", 1, 1)
    );
    assert_eq!(t.queue, "default");
    assert!(t.env.is_empty() && t.cwd.is_none() && t.expand.is_none());
    assert!(t.do_xcom_push && !t.branch && !t.depends_on_past && !t.wait_for_downstream);
    assert!(t.email.is_empty() && t.email_on_failure && !t.email_on_retry);
    assert!(t.on_failure.is_empty() && t.on_execute.is_empty());
}

#[test]
fn task_keys_and_kinds() {
    let dag = ok(
        "d.yaml",
        r#"dag_id: my.dag
timezone: Europe/Berlin
schedule: "@once"
start_date: "2024-03-01T06:00:00"
end_date: 2024-04-01T00:00:00Z
params:
  n: 5
  mode: {default: fast, type: string, enum: [fast, slow], description: how}
  obj: {a: 1}
tasks:
  - id: a
    python: "print(1)"
    retry_exponential_backoff: true
    email: ops@example.com
    env: {PORT: 8080, NAME: x}
    expand: {x: [1, 2]}
    on_failure: [{bash: "echo failed"}]
  - id: b
    python: {code: "def f(): pass", callable: f, kwargs: {n: 1}, interpreter: /venv/bin/python}
    retry_exponential_backoff: 3
    branch: true
  - {id: c, http: {url: "http://x"}}
  - {id: d, sql: {conn_id: pg, sql: select 1}}
  - {id: e, email: {to: a@b.c, subject: hi, text: yo}}
  - {id: f, trigger_dag: {dag_id: other}}
"#,
    );
    assert_eq!(dag.dag_id, "my.dag");
    assert_eq!(dag.schedule, Schedule::Once);
    // 06:00 in Berlin (CET) is 05:00 UTC.
    assert_eq!(
        dag.start_date.map(|d| d.to_rfc3339()),
        Some("2024-03-01T05:00:00+00:00".into())
    );
    assert_eq!(
        dag.end_date.map(|d| d.to_rfc3339()),
        Some("2024-04-01T00:00:00+00:00".into())
    );
    assert_eq!(dag.params["n"].default, 5);
    assert_eq!(dag.params["mode"].default, "fast");
    assert_eq!(dag.params["mode"].kind.as_deref(), Some("string"));
    assert_eq!(dag.params["mode"].choices.as_ref().map(Vec::len), Some(2));
    assert_eq!(dag.params["obj"].default, serde_json::json!({"a": 1}));
    let a = dag.task("a").expect("a");
    assert_eq!(a.retry_exponential_backoff, Some(2.0));
    assert_eq!(a.email, ["ops@example.com"]);
    assert_eq!(a.env["PORT"], "8080");
    assert_eq!(
        a.expand.as_ref().map(|e| e["x"].clone()),
        Some(serde_json::json!([1, 2]))
    );
    assert_eq!(a.on_failure, [serde_json::json!({"bash": "echo failed"})]);
    let b = dag.task("b").expect("b");
    assert_eq!(b.retry_exponential_backoff, Some(3.0));
    assert!(b.branch);
    match &b.kind {
        TaskKind::Python(p) => {
            assert_eq!(p.callable.as_deref(), Some("f"));
            assert_eq!(p.kwargs["n"], 1);
            assert_eq!(p.interpreter, "/venv/bin/python");
        }
        other => panic!("{other:?}"),
    }
    let kinds: Vec<&str> = dag.tasks.iter().map(|t| t.kind.operator()).collect();
    assert_eq!(
        kinds,
        [
            "PythonOperator",
            "PythonOperator",
            "HttpOperator",
            "SQLExecuteQueryOperator",
            "EmailOperator",
            "TriggerDagRunOperator"
        ]
    );
}

#[test]
fn groups_default_args_and_dependencies() {
    let dag = ok(
        "g.yaml",
        r#"default_args: {retries: 1, queue: q1}
tasks:
  - {id: start, empty: {}}
  - {id: end, empty: {}, depends_on: [process]}
groups:
  - id: process
    tooltip: Processing
    default_args: {retries: 2}
    tasks:
      - {id: extract, bash: x}
      - {id: transform, bash: y, depends_on: [extract]}
      - {id: start, bash: z, depends_on: [sub]}
    groups:
      - id: sub
        tasks:
          - {id: one, bash: "1", retries: 5}
          - {id: two, bash: "2", depends_on: [one, process.extract]}
edges:
  - start >> process
"#,
    );
    let ids: Vec<&str> = dag.tasks.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "start",
            "end",
            "process.extract",
            "process.transform",
            "process.start",
            "process.sub.one",
            "process.sub.two"
        ]
    );
    let t = |id: &str| dag.task(id).expect(id);
    assert_eq!(t("start").retries, 1);
    assert_eq!(t("process.extract").retries, 2);
    assert_eq!(t("process.extract").queue, "q1");
    assert_eq!(t("process.sub.one").retries, 5);
    assert_eq!(t("process.sub.two").retries, 2);
    assert_eq!(t("process.transform").upstream, ["process.extract"]);
    // A short id names the sibling group's leaves.
    assert_eq!(t("process.start").upstream, ["process.sub.two"]);
    assert_eq!(
        t("process.sub.two").upstream,
        ["process.sub.one", "process.extract"]
    );
    // A group as upstream means its leaves; as downstream its roots.
    assert_eq!(t("end").upstream, ["process.transform", "process.start"]);
    assert_eq!(t("process.extract").upstream, ["start"]);
    assert_eq!(t("process.sub.one").upstream, ["start"]);
    let group = &dag.groups[0];
    assert_eq!(group.group_id, "process");
    assert_eq!(group.tooltip.as_deref(), Some("Processing"));
    assert_eq!(group.tasks.len(), 5);
    assert_eq!(dag.groups[1].group_id, "process.sub");
}

#[test]
fn edges_syntax() {
    let dag = ok(
        "e.yaml",
        "tasks:\n  - {id: a, empty: {}}\n  - {id: b, empty: {}}\n  - {id: c, empty: {}}\n  - {id: d, empty: {}}\nedges:\n  - a >> [b, c] >> d\n  - a << d2_unused_never\n"
            .replace("  - a << d2_unused_never\n", "  - d << [\"a\"]\n")
            .as_str(),
    );
    assert_eq!(dag.task("b").expect("b").upstream, ["a"]);
    assert_eq!(dag.task("d").expect("d").upstream, ["b", "c", "a"]);
    // `d << [a]` means a >> d.
    let dag2 = ok(
        "e2.yaml",
        "tasks:\n  - {id: a, empty: {}}\n  - {id: b, empty: {}}\nedges: ['b << a']\n",
    );
    assert_eq!(dag2.task("b").expect("b").upstream, ["a"]);
}

#[test]
fn json_files() {
    let dag = ok(
        "dags/j.json",
        r#"{"schedule": "@daily", "start_date": "2024-01-01",
 "tasks": [{"id": "a", "bash": "echo"}, {"id": "b", "empty": {}, "depends_on": ["a"]}]}"#,
    );
    assert_eq!(dag.dag_id, "j");
    assert_eq!(dag.task("b").expect("b").upstream, ["a"]);
}

#[test]
fn syntax_errors_are_located() {
    yaml_err(
        "tasks:\n  - {id: a, bash: x\n",
        &["2:5: invalid YAML: unclosed bracket"],
    );
    yaml_err("tasks: [\n  a: b: c\n", &["2:7: invalid YAML"]);
    check_errors(
        "bad.json",
        "{\"tasks\": [\n  {\"id\": \"a\",, \"bash\": \"x\"}]}",
        &["2:14: invalid JSON"],
    );
    yaml_err("a: 1\na: 2\ntasks: []\n", &["2:1: duplicate"]);
}

#[test]
fn non_utf8_and_size_limits() {
    let mut bytes = b"tasks:\n  - {id: a, bash: \"caf\xc3\xa9 ".to_vec();
    bytes.extend_from_slice(b"\xff\"}\n");
    let e = parse_dag_bytes("x.yaml", &bytes).expect_err("not utf-8");
    assert_eq!(e.errors.len(), 1);
    assert_eq!((e.errors[0].line, e.errors[0].column), (2, 25));
    assert!(
        e.errors[0].message.contains("not valid UTF-8"),
        "{}",
        e.errors[0].message
    );

    let big = vec![b' '; MAX_FILE_BYTES + 1];
    let e = parse_dag_bytes("big.yaml", &big).expect_err("too big");
    assert_eq!((e.errors[0].line, e.errors[0].column), (1, 1));
    assert_eq!(
        e.errors[0].message,
        format!(
            "file is {} bytes, over the 10 MiB limit",
            MAX_FILE_BYTES + 1
        )
    );
}

#[test]
fn alias_bomb_fails_fast() {
    let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let prev = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
        ));
    }
    text.push_str("tasks: [{id: x, bash: y}]\n");
    let started = std::time::Instant::now();
    let e = parse_dag_str("bomb.yaml", &text).expect_err("alias bomb");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(e.errors.len(), 1);
    let err = &e.errors[0];
    assert!(err.message.contains("invalid YAML"), "{}", err.message);
    assert!(
        err.message.to_lowercase().contains("alias"),
        "{}",
        err.message
    );
    assert!(err.line >= 1 && err.column >= 1);
}

#[test]
fn unknown_keys_suggest_the_nearest() {
    yaml_err(
        "schedule_interval: null\ntasks:\n  - id: x\n    bash: echo\n    retires: 3\n",
        &[
            "1:1: unknown key 'schedule_interval' in the DAG; did you mean 'schedule'?",
            "5:5: unknown key 'retires' in task 'x'; did you mean 'retries'?",
        ],
    );
    yaml_err(
        "default_args: {retry_dalay: 5m}\ntasks: [{id: x, bash: y}]\ngroups:\n  - {id: g, tooltipp: t, tasks: [{id: y, bash: z}]}\n",
        &[
            "1:16: unknown key 'retry_dalay' in default_args; did you mean 'retry_delay'?",
            "4:13: unknown key 'tooltipp' in group 'g'; did you mean 'tooltip'?",
        ],
    );
    yaml_err(
        "tasks:\n  - {id: x, python: {code: x, callabel: f}}\n",
        &["2:31: unknown key 'callabel' in 'python' in task 'x'; did you mean 'callable'?"],
    );
    yaml_err(
        "params:\n  p: {default: 1, descripton: d}\ntasks: [{id: x, bash: y}]\n",
        &["2:19: unknown key 'descripton' in param 'p'; did you mean 'description'?"],
    );
}

#[test]
fn bad_ids() {
    yaml_err(
        "dag_id: 'my dag'\ntasks:\n  - {id: 'a b', bash: x}\n  - {id: a.b, bash: x}\n",
        &[
            "1:9: invalid dag_id 'my dag': it contains ' '",
            "3:10: invalid task id 'a b': it contains ' '",
            "4:10: invalid task id 'a.b': it contains '.'",
        ],
    );
    check_errors(
        "dags/my dag.yaml",
        "tasks: [{id: a, bash: x}]\n",
        &["1:1: invalid dag_id 'my dag' (from the file name)"],
    );
    yaml_err(
        "tasks:\n  - {id: a, bash: x}\n  - {id: a, bash: y}\n",
        &["3:10: duplicate task id 'a' (already defined at line 2, column 10)"],
    );
}

#[test]
fn dependency_errors() {
    yaml_err(
        "tasks:\n  - {id: bar, bash: x, depends_on: [foo]}\n  - {id: baz, bash: x, depends_on: [baz]}\nedges:\n  - bar >> nope\n",
        &[
            "2:37: unknown task 'foo' in depends_on of 'bar'",
            "3:37: task 'baz' depends on itself",
            "5:5: unknown task 'nope' in edges",
        ],
    );
    yaml_err(
        "tasks:\n  - {id: a, bash: x, depends_on: [c]}\n  - {id: b, bash: x, depends_on: [a]}\n  - {id: c, bash: x, depends_on: [b]}\n",
        &["2:10: cycle: a -> b -> c -> a"],
    );
    yaml_err(
        "tasks:\n  - {id: a, bash: x}\nedges:\n  - a >>\n",
        &["4:5: invalid edge 'a >>'"],
    );
    yaml_err(
        "tasks:\n  - id: s\n    switch:\n      - {if: 'true', then: ghost}\n",
        &["4:28: unknown task 'ghost' in switch of 's'"],
    );
}

#[test]
fn schedule_and_date_errors() {
    yaml_err(
        "schedule: '0 25 * * *'\nstart_date: 2024-01-01\ntasks: [{id: a, bash: x}]\n",
        &["1:11: invalid cron expression '0 25 * * *'"],
    );
    yaml_err(
        "schedule: '@daily'\ntasks: [{id: a, bash: x}]\n",
        &["1:11: schedule '@daily' needs a start_date"],
    );
    yaml_err(
        "schedule: '@fortnightly'\nstart_date: 2024-01-01\ntasks: [{id: a, bash: x}]\n",
        &["1:11: unknown preset '@fortnightly'"],
    );
    yaml_err(
        "timezone: Europe/Berln\nstart_date: 2024-13-01\ntasks: [{id: a, bash: x}]\n",
        &[
            "1:11: unknown timezone 'Europe/Berln'; did you mean 'Europe/Berlin'?",
            "2:13: invalid start_date '2024-13-01'",
        ],
    );
}

#[test]
fn value_errors() {
    yaml_err(
        "tasks:\n  - id: x\n    bash: y\n    retries: abc\n    retry_delay: 5x\n    trigger_rule: all_sucess\n    pool_slots: 0\n    do_xcom_push: 'yes'\n",
        &[
            "4:14: 'retries' in task 'x' must be a non-negative integer, got string 'abc'",
            "5:18: 'retry_delay' in task 'x': invalid duration '5x': unknown unit 'x'",
            "6:19: unknown trigger rule 'all_sucess' in task 'x'; did you mean 'all_success'?",
            "7:17: 'pool_slots' in task 'x' must be an integer of at least 1",
            "8:19: 'do_xcom_push' in task 'x' must be true or false",
        ],
    );
    // A bad default is one mistake, reported once, at the default.
    yaml_err(
        "default_args: {retries: -1}\ntasks: [{id: a, bash: x}, {id: b, bash: y}]\n",
        &["1:25: 'retries' in default_args must be a non-negative integer, got number -1"],
    );
    yaml_err(
        "max_active_runs: many\ntags: a\ntasks: [{id: a, bash: [x]}]\n",
        &[
            "1:18: 'max_active_runs' must be an integer of at least 1",
            "2:7: 'tags' must be a list of strings",
            "3:23: 'bash' in task 'a' must be a string, got a list",
        ],
    );
}

#[test]
fn kind_errors() {
    yaml_err(
        "tasks:\n  - {id: a, retries: 1}\n  - {id: b, bash: x, python: y}\n  - {id: c, sensor: {file: f, command: g}}\n  - {id: d, bash: x, timeout: 1h}\n",
        &[
            "2:10: task 'a' has no kind: set exactly one of bash, python, empty, switch, sensor, http, sql, email, trigger_dag",
            "3:22: task 'b' has 2 kinds (bash, python); set exactly one",
            "4:21: needs exactly one of file, http, sql, external_task, time, command, got file, command",
            "5:22: 'timeout' in task 'd' only applies to a sensor task",
        ],
    );
    yaml_err(
        "tasks:\n  - {id: a, http: [x]}\n  - {id: b, sql: {conn_id: c}}\n",
        &[
            "2:19: 'http' in task 'a' must be a mapping, got a list",
            "3:18: 'sql' in task 'b' needs 'sql' or 'file'",
        ],
    );
}

#[test]
fn empty_dags() {
    yaml_err("", &["1:1: the file is empty"]);
    yaml_err("description: x\n", &["1:1: the DAG has no 'tasks'"]);
    yaml_err("tasks: []\n", &["1:8: the DAG has no tasks"]);
    yaml_err(
        "- a\n- b\n",
        &["1:1: a DAG file must be a mapping, got a list"],
    );
    // Groups alone are enough.
    ok("g.yaml", "groups: [{id: g, tasks: [{id: a, bash: x}]}]\n");
}

#[test]
fn email_kind_and_alert_list() {
    let dag = ok(
        "m.yaml",
        "default_args: {email: [ops@x.io]}\ntasks:\n  - {id: m, email: {to: a@b.c, subject: s, text: t}}\n",
    );
    let m = dag.task("m").expect("m");
    assert_eq!(m.kind.operator(), "EmailOperator");
    assert_eq!(m.email, ["ops@x.io"]);
}

#[test]
fn json_errors_are_located() {
    check_errors(
        "j.json",
        "{\"tasks\": [\n  {\"id\": \"a\", \"bash\": \"x\", \"retires\": 1}\n]}",
        &["2:28: unknown key 'retires' in task 'a'; did you mean 'retries'?"],
    );
}

#[test]
fn every_problem_is_reported() {
    yaml_err(
        "schedul: '@daily'\ntasks:\n  - {id: a, bash: x, retries: x}\n  - {id: b, bash: x, depends_on: [zz]}\n",
        &[
            "1:1: unknown key 'schedul'",
            "3:31: 'retries' in task 'a'",
            "4:35: unknown task 'zz'",
        ],
    );
}

#[test]
fn sensors_are_typed_with_options_folded_in() {
    use dag::sensor::{ExternalTaskProbe, HttpProbe};
    use dag::{Probe, SensorMode};
    let dag = ok(
        "s.yaml",
        r#"default_args: {poke_interval: 5s}
tasks:
  - id: f
    sensor: {file: "/in/{{ ds }}.csv", mode: poke, timeout: 1m}
  - id: h
    sensor:
      http: {url: "http://x/health", expect_status: [200, 204], response_check: "response.json.ready", headers: {A: b}}
    soft_fail: true
    exponential_backoff: true
  - {id: q, sensor: {sql: {conn_id: db, sql: "select 1"}}}
  - {id: e, sensor: {external_task: {dag_id: other, task_id: load}}}
  - {id: t, sensor: {time: {after: "{{ data_interval_end }}"}}, poke_interval: 2s}
  - {id: c, sensor: {command: "test -s out.csv"}}
"#,
    );
    let sensor = |id: &str| match &dag.task(id).expect("task").kind {
        TaskKind::Sensor(s) => (**s).clone(),
        other => panic!("{id}: expected a sensor, got {other:?}"),
    };
    let f = sensor("f");
    assert_eq!(f.mode, SensorMode::Poke);
    assert_eq!((f.poke_interval, f.timeout), (5.0, 60.0));
    let h = sensor("h");
    assert!(h.soft_fail && h.exponential_backoff);
    assert_eq!(h.timeout, 7.0 * 86_400.0);
    assert_eq!(
        h.probe,
        Probe::Http(HttpProbe {
            url: "http://x/health".into(),
            method: "GET".into(),
            expect_status: vec![200, 204],
            response_check: Some("response.json.ready".into()),
            conn_id: None,
            headers: [("A".to_string(), "b".to_string())].into(),
        })
    );
    assert_eq!(
        sensor("q").probe,
        Probe::Sql {
            conn_id: "db".into(),
            sql: "select 1".into()
        }
    );
    assert_eq!(
        sensor("e").probe,
        Probe::ExternalTask(ExternalTaskProbe {
            dag_id: "other".into(),
            task_id: Some("load".into()),
            logical_date: None,
        })
    );
    assert_eq!(sensor("t").poke_interval, 2.0);
    assert!(sensor("c").probe.needs_worker());
    assert!(!sensor("c").poked_by_scheduler());
    assert!(sensor("t").poked_by_scheduler());
    assert!(!sensor("f").poked_by_scheduler());
}

#[test]
fn sensor_errors_are_located() {
    yaml_err(
        r#"tasks:
  - {id: a, sensor: {file: f, mode: sometimes}}
  - {id: b, sensor: {http: {method: FETCH}}}
  - {id: c, sensor: {sql: {sql: "select 1"}}}
  - {id: d, sensor: {time: {}}, poke_interval: soon}
  - {id: e, sensor: {http: {url: u, expect_status: 42}}}
  - {id: f, sensor: {external_task: {task_id: x}}}
"#,
        &[
            "2:37: 'mode' of 'sensor' in task 'a' must be 'poke' or 'reschedule', got 'sometimes'",
            "3:28: 'http' of 'sensor' in task 'b' needs 'url' or 'conn_id'",
            "3:37: 'method' of 'http' of 'sensor' in task 'b' must be one of",
            "4:27: 'sql' of 'sensor' in task 'c' needs 'conn_id'",
            "5:28: 'time' of 'sensor' in task 'd' needs 'after'",
            "5:48: 'poke_interval' in task 'd': invalid duration 'soon'",
            "6:52: 'expect_status' of 'http' of 'sensor' in task 'e' must be an HTTP status code",
            "7:37: 'external_task' of 'sensor' in task 'f' needs 'dag_id'",
        ],
    );
}
