//! CLI behaviour on bad input: clear errors that say what and where, non-zero exits.

use crate::harness::Sandbox;

/// `dags validate` on each broken file prints `file:line:col: message` and exits non-zero.
#[test]
fn validate_reports_every_kind_of_broken_file_with_its_location() {
    let sandbox = Sandbox::new();
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "cycle.yaml",
            b"tasks:\n  - {id: a, bash: 'true', depends_on: [c]}\n  - {id: b, bash: 'true', depends_on: [a]}\n  - {id: c, bash: 'true', depends_on: [b]}\n",
            "-> ",
        ),
        (
            "unknown_upstream.yaml",
            b"tasks:\n  - {id: a, bash: 'true', depends_on: [nope]}\n",
            "nope",
        ),
        (
            "unknown_key.yaml",
            b"tasks:\n  - id: a\n    bash: 'true'\n    retires: 3\n",
            "retries",
        ),
        (
            "bad_cron.yaml",
            b"schedule: '61 * * * *'\nstart_date: 2024-01-01\ntasks:\n  - {id: a, bash: 'true'}\n",
            "61 * * * *",
        ),
        ("bad_yaml.yaml", b"tasks:\n  - {id: a, bash: 'true'\n", "bad_yaml.yaml:"),
        ("non_utf8.yaml", b"tasks:\n  - {id: a, bash: 'echo \xff'}\n", "UTF-8"),
    ];
    for (name, text, needle) in cases {
        let path = sandbox.dags().join(name);
        std::fs::write(&path, text).expect("write");
        let out = sandbox.run(&["dags", "validate", path.to_str().expect("utf-8 path")]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{name} should be invalid");
        assert!(
            stdout.contains(needle),
            "{name}: expected '{needle}' in:\n{stdout}"
        );
        let first = stdout.lines().next().unwrap_or_default();
        let mut parts = first.splitn(4, ':');
        let file = parts.next().unwrap_or_default();
        let line: usize = parts.next().unwrap_or_default().parse().unwrap_or(0);
        let column: usize = parts.next().unwrap_or_default().parse().unwrap_or(0);
        assert!(file.ends_with(name), "{name}: no file in '{first}'");
        assert!(
            line >= 1 && column >= 1,
            "{name}: no line:column in '{first}'"
        );
    }
}

#[test]
fn validate_accepts_the_examples() {
    let sandbox = Sandbox::with_examples();
    let out = sandbox.run(&["dags", "validate"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unknown_dag_is_one_clear_line() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["dags", "test", "missing"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: DAG 'missing' not found"),
        "{stderr}"
    );
}

#[test]
fn bad_conf_is_refused() {
    let sandbox = Sandbox::with_examples();
    let out = sandbox.run(&["dags", "test", "hello", "--conf", "[1, 2]"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--conf must be a JSON object"));
}

#[test]
fn a_conf_of_the_wrong_type_is_refused_naming_the_param() {
    let sandbox = Sandbox::with_examples();
    let out = sandbox.run(&["dags", "test", "branching", "--conf", r#"{"rows": "many"}"#]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "invalid conf for DAG 'branching': param 'rows' must be of type integer, got \"many\""
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("[extract"), "no task ran: {stderr}");
}
