//! `dags backfill` makes one run per tick in the range, run in order within
//! `max_active_runs`; `tasks xcom` reads what each run's task returned.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Sandbox, wait_for};

#[test]
fn backfill_runs_every_tick_in_order_and_xcoms_are_readable() {
    let mut sandbox = Sandbox::new();
    sandbox.write_dag(
        "daily.yaml",
        "schedule: '@daily'\nstart_date: 2024-01-01\nmax_active_runs: 1\ntasks:\n  - {id: t, bash: 'echo {{ ds }}'}\n",
    );
    let _server = sandbox.standalone_logged_in();
    wait_for("DAG parsed", Duration::from_secs(30), || {
        sandbox
            .run(&["dags", "list-runs", "daily"])
            .status
            .success()
            .then_some(())
    });
    let out = sandbox.run(&[
        "dags",
        "backfill",
        "daily",
        "--start-date",
        "2024-01-01",
        "--end-date",
        "2024-01-03",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        ids,
        [
            "backfill__2024-01-01T00:00:00+00:00",
            "backfill__2024-01-02T00:00:00+00:00",
            "backfill__2024-01-03T00:00:00+00:00"
        ]
    );
    let runs = wait_for("backfill runs to succeed", Duration::from_secs(60), || {
        let runs = sandbox.json(&["dags", "list-runs", "daily", "-o", "json"]);
        let backfills: Vec<Value> = runs
            .as_array()?
            .iter()
            .filter(|r| r["run_type"] == "backfill")
            .cloned()
            .collect();
        (backfills.len() == 3 && backfills.iter().all(|r| r["state"] == "success"))
            .then_some(backfills)
    });
    // Oldest first, one at a time (max_active_runs: 1): each starts after the previous ended.
    let mut by_date = runs.clone();
    by_date.sort_by_key(|r| r["logical_date"].as_str().map(str::to_string));
    for pair in by_date.windows(2) {
        assert!(
            pair[1]["start_date"].as_str() >= pair[0]["end_date"].as_str(),
            "{} started before {} ended",
            pair[1]["dag_run_id"],
            pair[0]["dag_run_id"]
        );
    }
    let xcom = sandbox.json(&[
        "tasks",
        "xcom",
        "daily",
        "backfill__2024-01-02T00:00:00+00:00",
        "t",
        "-o",
        "json",
    ]);
    assert_eq!(
        xcom,
        json!([{"task_id": "t", "map_index": -1, "key": "return_value", "value": "2024-01-02"}])
    );
}
