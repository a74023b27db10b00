//! `dagctl db clean`: a dry run counts and changes nothing, `--yes` deletes the old runs with
//! their task instances, logs and XComs but keeps the DAG's newest scheduled run, a "no" or a
//! bad date changes nothing.

use std::time::Duration;

use chrono::{Days, Utc};
use serde_json::Value;

use crate::harness::{Sandbox, wait_for};

/// `db clean` with `args`, `-o json`; requires success and returns the report.
fn clean(sandbox: &Sandbox, args: &[&str]) -> Value {
    let mut command = vec!["db", "clean", "-o", "json"];
    command.extend(args);
    sandbox.json(&command)
}

fn rows(report: &Value, table: &str) -> u64 {
    report["rows"][table]
        .as_u64()
        .unwrap_or_else(|| panic!("no {table} count in {report}"))
}

/// The runs of `dag_id` as (run id, state), via a running server.
fn runs(sandbox: &Sandbox, dag_id: &str) -> Vec<(String, String)> {
    let listed = sandbox.json(&["dags", "list-runs", dag_id, "-o", "json"]);
    let mut runs: Vec<(String, String)> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            (
                r["dag_run_id"].as_str().unwrap_or_default().to_string(),
                r["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    runs.sort();
    runs
}

#[test]
fn db_clean_dry_runs_then_deletes_old_runs_keeping_the_newest_scheduled() {
    let mut sandbox = Sandbox::new();
    let today = Utc::now().date_naive();
    let start = today - Days::new(3);
    sandbox.write_dag(
        "retained.yaml",
        &format!(
            "schedule: '@daily'\nstart_date: {start}\ncatchup: true\ntasks:\n  - {{id: t, bash: 'echo {{{{ ds }}}}'}}\n"
        ),
    );
    let server = sandbox.standalone_logged_in();
    // The catch-up runs, one per day since the start, all done.
    let before = wait_for(
        "the catch-up runs to succeed",
        Duration::from_secs(60),
        || {
            let runs = runs(&sandbox, "retained");
            (runs.len() >= 3 && runs.iter().all(|(_, state)| state == "success")).then_some(runs)
        },
    );
    assert!(server.terminate().success());
    let count = before.len() as u64;

    // A bad date: the flag and the accepted forms are named, and nothing is opened.
    let out = sandbox.run(&["db", "clean", "--before", "last tuesday", "--yes"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--before") && stderr.contains("YYYY-MM-DD") && stderr.contains("RFC 3339"),
        "{stderr}"
    );

    // Nothing ended before 2000.
    let nothing = clean(&sandbox, &["--before", "2000-01-01", "--yes"]);
    assert_eq!(rows(&nothing, "dag_runs"), 0, "{nothing}");
    assert_eq!(nothing["batches"], 0);

    // Every run ended before tomorrow: all but the newest scheduled one would go.
    let tomorrow = (today + Days::new(1)).to_string();
    let dry = clean(&sandbox, &["--before", &tomorrow, "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(rows(&dry, "dag_runs"), count - 1, "{dry}");
    assert_eq!(rows(&dry, "task_instances"), count - 1, "{dry}");
    assert_eq!(
        rows(&dry, "xcom"),
        count - 1,
        "each echo pushed its line: {dry}"
    );
    assert!(rows(&dry, "task_logs") >= count - 1, "{dry}");

    // "n" on standard input: nothing is deleted.
    let refused = sandbox.run_with_input(&["db", "clean", "--before", &tomorrow], "n\n");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("nothing deleted"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // The dry run and the "no" changed nothing: the clean finds all of it, in batches of one.
    let rfc3339 = format!("{tomorrow}T00:00:00Z");
    let done = clean(
        &sandbox,
        &["--before", &rfc3339, "--batch-size", "1", "--yes"],
    );
    assert_eq!(done["dry_run"], false);
    assert_eq!(
        done["rows"], dry["rows"],
        "deleted what the dry run counted"
    );
    assert!(done["batches"].as_u64() >= Some(count - 1), "{done}");

    // Nothing of it is left, and the table says so.
    let out = sandbox.run(&["db", "clean", "--before", &tomorrow, "--dry-run"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    for line in ["task_logs", "xcom", "task_instances", "dag_runs", "jobs"] {
        assert!(
            table.lines().any(|l| l.trim().starts_with(line)),
            "{line} in {table}"
        );
    }
    assert!(table.contains("would delete 0 rows"), "{table}");

    // Back up: the newest scheduled run is there, the older ones are gone.
    let newest = before
        .iter()
        .max_by_key(|(run_id, _)| run_id.clone())
        .cloned()
        .expect("a run");
    let server = sandbox.standalone();
    sandbox.login(&server);
    let after = runs(&sandbox, "retained");
    assert_eq!(after, [newest]);
}

#[test]
fn db_clean_of_a_missing_database_creates_none() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["db", "clean", "--before", "2030-01-01", "--dry-run"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to clean"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!sandbox.path().join(".updraft/updraft.db").exists());
}
