//! `dagctl bench` keeps working: a small chain and fan-out on SQLite (and on Postgres when it
//! is reachable), with every run succeeding and the figures printed.

use crate::harness::Sandbox;

fn bench(sandbox: &Sandbox, backend: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "bench",
        "--backend",
        backend,
        "--chain",
        "5",
        "--fan-out",
        "20",
    ];
    args.extend_from_slice(extra);
    let out = sandbox.run(&args);
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
    assert!(
        stdout.contains("raw spawn rate: 20 `bash -c true`"),
        "{stdout}"
    );
    assert!(stdout.contains("a slot held"), "{stdout}");
    // The one table, with its targets.
    assert!(
        stdout.contains(&format!("| figure ({backend}) | value | target | met |")),
        "{stdout}"
    );
    assert!(
        stdout.contains("| fan-out / raw spawn rate |") && stdout.contains("| hop latency p99"),
        "{stdout}"
    );
}

#[test]
fn bench_runs_on_sqlite() {
    let sandbox = Sandbox::new();
    let stdout = bench(&sandbox, "sqlite", &["--hog"]);
    check(&stdout, "sqlite");
    assert!(
        stdout.contains("chain of 5 with a CPU hog on every core: success"),
        "{stdout}"
    );
}

#[test]
fn bench_runs_on_postgres() {
    // The benchmark makes (and drops) its own scratch database on this server.
    let Some(admin) = testkit::postgres::reachable_server_blocking() else {
        return;
    };
    let mut sandbox = Sandbox::new();
    sandbox.set("UPDRAFT_BENCH_POSTGRES_URL", &admin);
    check(&bench(&sandbox, "postgres", &[]), "postgres");
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
        stdout.contains("sensors: 50 waiting, peak RSS") && stdout.contains("(target <= 80)"),
        "{stdout}"
    );
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

/// `dagctl bench sustained` for one minute with a few DAGs: every minute's runs are made and
/// finish, and the latency and backlog lines are printed.
fn bench_sustained(sandbox: &Sandbox, backend: &str) {
    let out = sandbox.run(&[
        "bench",
        "sustained",
        "--backend",
        backend,
        "--dags",
        "3",
        "--minutes",
        "1",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("3 DAGs of 10 tasks on */1 * * * * for 1 min"),
        "{stdout}"
    );
    // No catchup: each DAG's latest tick makes a run at once, and a minute holds one more
    // tick at most; all of them finish.
    let minute = stdout
        .lines()
        .find(|l| l.starts_with("| 1 |"))
        .unwrap_or_else(|| panic!("no row for minute 1: {stdout}"));
    let cells: Vec<&str> = minute.split('|').map(str::trim).collect();
    let made: usize = cells[2].parse().expect("runs made");
    assert!((3..=6).contains(&made), "{minute}");
    assert_eq!(cells[4], "0", "nothing left unfinished: {minute}");
    let measured: usize = stdout
        .split("queued -> start over ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no latency line: {stdout}"));
    assert!(measured >= made * 10, "every task of every run: {stdout}");
    assert!(stdout.contains("backlog (unfinished runs"), "{stdout}");
}

#[test]
fn bench_sustained_runs_on_sqlite() {
    bench_sustained(&Sandbox::new(), "sqlite");
}

#[test]
fn bench_sustained_runs_on_postgres() {
    let Some(admin) = testkit::postgres::reachable_server_blocking() else {
        return;
    };
    let mut sandbox = Sandbox::new();
    sandbox.set("UPDRAFT_BENCH_POSTGRES_URL", &admin);
    bench_sustained(&sandbox, "postgres");
}

/// `dagctl bench standalone` with a narrow fan-out: the server starts, the run succeeds
/// through the REST API, and its throughput is printed.
#[test]
fn bench_standalone_runs_a_fan_out_through_the_api() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["bench", "standalone", "--width", "20"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("standalone fan-out of 20 through the REST API: success"),
        "{stdout}"
    );
    assert!(stdout.contains("tasks/s"), "{stdout}");
}

/// `dagctl bench folder` with a small folder and a few more rewrites than the caches keep
/// versions of one DAG: every file is synced, the unchanged pass syncs nothing, and the
/// scheduler's graph cache stays within its bound.
fn bench_folder(sandbox: &Sandbox, backend: &str) {
    let out = sandbox.run(&[
        "bench",
        "folder",
        "--backend",
        backend,
        "--files",
        "30",
        "--tasks",
        "10",
        "--rewrites",
        "20",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("backend: {backend}")), "{stdout}");
    assert!(
        stdout.contains("folder: 30 files of 10 tasks parsed and synced in")
            && stdout.contains("(target <= 1)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("nothing changed") && stdout.contains("(0 synced); the 30 DAGs listed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("folder: peak RSS") && stdout.contains("(target <= 100)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rewrites: 20 rewrites of one DAG file"),
        "{stdout}"
    );
    assert!(
        stdout
            .contains("rewrites: the scheduler's graph cache holds 8 versions (at most 8 per DAG)"),
        "{stdout}"
    );
}

#[test]
fn bench_folder_runs_on_sqlite() {
    bench_folder(&Sandbox::new(), "sqlite");
}

#[test]
fn bench_folder_runs_on_postgres() {
    // The benchmark makes (and drops) its own scratch database on this server.
    let Some(admin) = testkit::postgres::reachable_server_blocking() else {
        return;
    };
    let mut sandbox = Sandbox::new();
    sandbox.set("UPDRAFT_BENCH_POSTGRES_URL", &admin);
    bench_folder(&sandbox, "postgres");
}
