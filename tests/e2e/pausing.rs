//! Airflow's pause habits against a real `standalone` with Airflow's default
//! (`core.dags_are_paused_at_creation = true`): a new DAG starts paused, and first start says
//! so and how to unpause; a trigger of a paused DAG waits, `queued`, and `dags unpause` starts
//! it at once; a file's `is_paused_upon_creation: false` wins; two triggers within one second
//! make two runs (manual run ids carry microseconds); `dags test` ignores the pause.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::harness::{Sandbox, newest_run, wait_for};

const CHAIN: &str =
    "tasks:\n  - {id: a, bash: 'true'}\n  - {id: b, bash: 'true', depends_on: [a]}\n";

fn airflow_default() -> Sandbox {
    let mut sandbox = Sandbox::new();
    sandbox.set("UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION", "true");
    sandbox
}

fn is_paused(sandbox: &Sandbox, dag_id: &str) -> Option<bool> {
    let out = sandbox.run(&["dags", "show", dag_id, "-o", "json"]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()?
        .get("is_paused")?
        .as_bool()
}

fn trigger(sandbox: &Sandbox, dag_id: &str) -> String {
    sandbox.ok(&["dags", "trigger", dag_id]).trim().to_string()
}

fn run_state(sandbox: &Sandbox, dag_id: &str, run_id: &str) -> Option<String> {
    let runs = sandbox.json(&["dags", "list-runs", dag_id, "-o", "json"]);
    runs.as_array()?
        .iter()
        .find(|r| r["dag_run_id"] == run_id)
        .and_then(|r| r["state"].as_str().map(str::to_string))
}

#[test]
fn new_dags_start_paused_and_their_runs_wait_for_the_unpause() {
    let mut sandbox = airflow_default();
    sandbox.write_dag("resting.yaml", CHAIN);
    sandbox.write_dag(
        "eager.yaml",
        &format!("is_paused_upon_creation: false\n{CHAIN}"),
    );
    let server = sandbox.standalone_logged_in();
    assert!(
        server
            .stdout
            .iter()
            .any(|l| l.contains("new DAGs start paused")
                && l.contains("dagctl dags unpause")
                && l.contains("toggle in the UI")),
        "first start says how to unpause: {:?}",
        server.stdout
    );
    let password = sandbox
        .path()
        .join(".updraft/standalone_admin_password.txt");
    let mode = std::fs::metadata(&password)
        .expect("password file")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the password file is as private as the keys"
    );

    let paused = wait_for("both DAGs listed", Duration::from_secs(30), || {
        Some((
            is_paused(&sandbox, "resting")?,
            is_paused(&sandbox, "eager")?,
        ))
    });
    assert_eq!(
        paused,
        (true, false),
        "paused at creation, unless the file says"
    );

    // A trigger of the paused DAG waits; the unpaused one runs meanwhile.
    let waiting = trigger(&sandbox, "resting");
    let eager = trigger(&sandbox, "eager");
    wait_for("the unpaused DAG's run", Duration::from_secs(30), || {
        (run_state(&sandbox, "eager", &eager)? == "success").then_some(())
    });
    assert_eq!(
        run_state(&sandbox, "resting", &waiting).as_deref(),
        Some("queued"),
        "a paused DAG's run waits"
    );

    // Unpaused: it starts at once.
    sandbox.ok(&["dags", "unpause", "resting"]);
    wait_for("the run that waited", Duration::from_secs(30), || {
        (run_state(&sandbox, "resting", &waiting)? == "success").then_some(())
    });

    // Two triggers within one second: two runs, ids to the microsecond.
    let first = trigger(&sandbox, "eager");
    let second = trigger(&sandbox, "eager");
    assert_ne!(first, second);
    for id in [&first, &second] {
        assert!(id.starts_with("manual__"), "{id}");
    }
    wait_for("both runs", Duration::from_secs(30), || {
        let done = [&first, &second]
            .iter()
            .all(|id| run_state(&sandbox, "eager", id).as_deref() == Some("success"));
        done.then_some(())
    });
    assert!(newest_run(&sandbox, "eager").is_some());
}

#[test]
fn dags_test_ignores_the_pause() {
    let sandbox = airflow_default();
    sandbox.write_dag(
        "careful.yaml",
        &format!("is_paused_upon_creation: true\n{CHAIN}"),
    );
    let out = sandbox.run(&["dags", "test", "careful", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(result["state"], "success", "{result}");
}
