//! `dagctl bench` keeps working: a small chain and fan-out on SQLite (and on Postgres when it
//! is reachable), with every run succeeding and the figures printed.

use crate::harness::Sandbox;

fn bench(sandbox: &Sandbox, backend: &str) -> String {
    let out = sandbox.run(&[
        "bench",
        "--backend",
        backend,
        "--chain",
        "5",
        "--fan-out",
        "20",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn check(stdout: &str, backend: &str) {
    assert!(stdout.contains(&format!("backend: {backend}")), "{stdout}");
    assert!(stdout.contains("chain of 5: success"), "{stdout}");
    assert!(
        stdout.contains("per-hop latency") && stdout.contains("p99"),
        "{stdout}"
    );
    assert!(stdout.contains("fan-out of 20: success"), "{stdout}");
    assert!(stdout.contains("tasks/s"), "{stdout}");
}

#[test]
fn bench_runs_on_sqlite() {
    let sandbox = Sandbox::new();
    check(&bench(&sandbox, "sqlite"), "sqlite");
}

#[test]
fn bench_runs_on_postgres() {
    // The benchmark makes (and drops) its own scratch database on this server.
    let Some(admin) = testkit::postgres::reachable_server_blocking() else {
        return;
    };
    let mut sandbox = Sandbox::new();
    sandbox.set("UPDRAFT_BENCH_POSTGRES_URL", &admin);
    check(&bench(&sandbox, "postgres"), "postgres");
}

/// `dagctl bench sensors` with a few sensors and short rounds: every sensor waits, is poked
/// each round, and succeeds once its file exists.
fn bench_sensors(sandbox: &Sandbox, backend: &str) {
    let out = sandbox.run(&[
        "bench",
        "sensors",
        "--backend",
        backend,
        "--count",
        "50",
        "--poke-interval",
        "0.5",
        "--rounds",
        "2",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("backend: {backend}")), "{stdout}");
    assert!(stdout.contains("50 file sensors waiting"), "{stdout}");
    assert!(
        stdout.contains("round 2:") && stdout.contains("pokes/s"),
        "{stdout}"
    );
    assert!(stdout.contains("peak RSS (VmHWM)"), "{stdout}");
    assert!(
        stdout.contains("run success with 50 of 50 sensors succeeded"),
        "{stdout}"
    );
}

#[test]
fn bench_sensors_runs_on_sqlite() {
    bench_sensors(&Sandbox::new(), "sqlite");
}

#[test]
fn bench_sensors_runs_on_postgres() {
    // The benchmark makes (and drops) its own scratch database on this server.
    let Some(admin) = testkit::postgres::reachable_server_blocking() else {
        return;
    };
    let mut sandbox = Sandbox::new();
    sandbox.set("UPDRAFT_BENCH_POSTGRES_URL", &admin);
    bench_sensors(&sandbox, "postgres");
}

/// `dagctl bench python` with a few files and short chains: every file imports, both chains
/// succeed (the PythonOperator chain's last value is checked by the bench itself), and the
/// figures are printed.
#[test]
fn bench_python_runs_on_sqlite() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&[
        "bench", "python", "--files", "3", "--chain", "4", "--rounds", "1",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("3 Python DAG files of 10 tasks") && stdout.contains("(3 DAGs)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("PythonOperator chain of 4 passing XComs"),
        "{stdout}"
    );
    assert!(stdout.contains("fresh interpreter per try"), "{stdout}");
    assert!(stdout.contains("the same bash chain in YAML"), "{stdout}");
}

/// `dagctl bench clean` with a small history: it loads, counts, deletes all but the newest run
/// while the heartbeat keeps beating, and prints the figures.
fn bench_clean(sandbox: &Sandbox, backend: &str) {
    let out = sandbox.run(&[
        "bench",
        "clean",
        "--backend",
        backend,
        "--runs",
        "2000",
        "--batch-size",
        "500",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("backend: {backend}")), "{stdout}");
    assert!(
        stdout.contains("loaded 2000 runs, 6000 task instances, 18000 log lines, 6000 XComs"),
        "{stdout}"
    );
    assert!(stdout.contains("dry run: 31984 rows"), "{stdout}");
    assert!(
        stdout.contains("clean, batches of 500: 31984 rows") && stdout.contains("4 batches"),
        "{stdout}"
    );
    assert!(
        stdout.contains("record_heartbeat during the clean") && stdout.contains("p99"),
        "{stdout}"
    );
    assert!(stdout.contains("runs left: 1"), "{stdout}");
}

#[test]
fn bench_clean_runs_on_sqlite() {
    bench_clean(&Sandbox::new(), "sqlite");
}

#[test]
fn bench_clean_runs_on_postgres() {
    // The benchmark makes (and drops) its own scratch database on this server.
    let Some(admin) = testkit::postgres::reachable_server_blocking() else {
        return;
    };
    let mut sandbox = Sandbox::new();
    sandbox.set("UPDRAFT_BENCH_POSTGRES_URL", &admin);
    bench_clean(&sandbox, "postgres");
}
