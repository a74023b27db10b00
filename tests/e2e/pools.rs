//! Pools: set through the server, and tasks of a one-slot pool never run at the same time,
//! even with a worker that has room for all of them.

use crate::harness::Sandbox;

#[test]
fn a_one_slot_pool_runs_its_tasks_one_at_a_time() {
    let mut sandbox = Sandbox::new();
    let _server = sandbox.standalone_logged_in();
    sandbox.ok(&[
        "pools",
        "set",
        "single",
        "2",
        "--description",
        "one at a time",
    ]);
    // Set again: the existing pool is resized and keeps its description.
    sandbox.ok(&["pools", "set", "single", "1"]);
    let pools = sandbox.json(&["pools", "list", "-o", "json"]);
    let single = pools
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["name"] == "single")
        .unwrap_or_else(|| panic!("pool listed: {pools}"));
    assert_eq!(single["slots"], 1);
    assert_eq!(single["description"], "one at a time");
    assert!(
        pools
            .as_array()
            .expect("list")
            .iter()
            .any(|p| p["name"] == "default_pool"),
        "{pools}"
    );
    let marks = sandbox.path().join("marks.txt");
    let mut dag = String::from("tasks:\n");
    for i in 0..4 {
        dag.push_str(&format!(
            "  - {{id: t{i}, pool: single, bash: 'echo start $(date +%s.%N) >> {m}; sleep 0.2; echo end $(date +%s.%N) >> {m}'}}\n",
            m = marks.display()
        ));
    }
    dag.push_str("  - {id: free, bash: 'true'}\n");
    sandbox.write_dag("pooled.yaml", &dag);
    let out = sandbox.run(&["dags", "test", "pooled", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let text = std::fs::read_to_string(&marks).expect("marks");
    let mut running = 0;
    let mut most = 0;
    let mut events: Vec<(f64, i32)> = text
        .lines()
        .map(|line| {
            let (kind, at) = line.split_once(' ').expect("kind and time");
            (
                at.parse::<f64>().expect("time"),
                if kind == "start" { 1 } else { -1 },
            )
        })
        .collect();
    // Ends sort before starts at the same instant.
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (_, step) in &events {
        running += step;
        most = most.max(running);
    }
    assert_eq!(events.len(), 8, "{text}");
    assert_eq!(most, 1, "pool tasks overlapped:\n{text}");
}
