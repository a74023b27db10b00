//! Faults outside the task: the database going away for a while or for too long, the store
//! refusing a try's log, a workspace that cannot be made. Each fails at most that try, never
//! the worker, which goes on claiming and running the next.

use std::sync::Arc;
use std::time::Duration;

use dag::TaskState;
use serde_json::json;
use store::{LogStream, Store};
use tokio::time::Instant;

use crate::faults::FaultyStore;
use crate::{
    DEADLINE, Harness, WorkerLoop, has, is_dead, one_task, wait_for_run, wait_started, wait_until,
};

/// A worker config that heartbeats often, so that outages are met quickly.
fn quick(h: &Harness) -> worker::WorkerConfig {
    h.config
        .clone()
        .with_heartbeat_interval(Duration::from_millis(50))
        .with_shutdown_grace(Duration::ZERO)
}

/// Poll `check` until it holds, failing after the tests' deadline.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_short_outage_neither_kills_nor_loses_a_try() {
    let h = Harness::new().await;
    let faulty = FaultyStore::new(h.store.clone());
    let config = quick(&h).with_orphan_after(Duration::from_secs(60));
    let worker = WorkerLoop::start(config, faulty.clone());
    let gate = h.folder().join("gate");
    let command = format!(
        "echo before; while [ ! -e '{}' ]; do sleep 0.02; done; for i in 1 2 3; do echo after $i; done",
        gate.display()
    );
    let run = h
        .create_run(&one_task(&format!("{{id: t, bash: {}}}", json!(command))))
        .await;
    h.queue_all(run.id).await;
    let (ti, pid) = wait_started(&h, run.id, "before").await;

    faulty.set_down(true);
    let refused = faulty.refused_heartbeats();
    until("the worker met the outage", || {
        faulty.refused_heartbeats() >= refused + 2
    })
    .await;
    // The try goes on through the outage and ends while it lasts; its output waits.
    std::fs::write(&gate, "").expect("open the gate");
    wait_until("the try's process ended", || is_dead(pid)).await;
    let seen = faulty.refused_heartbeats();
    until("another heartbeat was refused", || {
        faulty.refused_heartbeats() > seen
    })
    .await;
    faulty.set_down(false);

    wait_for_run(h.store.as_ref(), run.id, TaskState::is_finished).await;
    let after = h.store.get_task_instance(ti.id).await.expect("get");
    let log = h.log(ti.id, ti.try_number).await;
    assert_eq!(after.map(|t| t.state), Some(TaskState::Success), "{log:#?}");
    let output: Vec<&str> = log
        .iter()
        .filter(|l| l.stream == LogStream::Stdout)
        .map(|l| l.line.as_str())
        .collect();
    assert_eq!(output, ["before", "after 1", "after 2", "after 3"]);
    let system: Vec<&str> = log
        .iter()
        .filter(|l| l.stream == LogStream::System)
        .map(|l| l.line.as_str())
        .collect();
    assert_eq!(
        system[system.len() - 2..],
        ["task exited with code 0", "task ended: success"],
        "the end comes last, after the lines held through the outage"
    );
    assert!(!has(&log, "SIGTERM") && !has(&log, "could not"), "{log:#?}");
    worker.shut_down().await;
}

#[tokio::test]
async fn a_try_end_met_by_an_outage_is_written_when_the_store_is_back() {
    let h = Harness::new().await;
    let faulty = FaultyStore::new(h.store.clone());
    let config = quick(&h).with_concurrency(1);
    let worker = WorkerLoop::start(config, faulty.clone());
    faulty.set_finishes_down(true);
    let first = h.create_run(&one_task("{id: t, bash: 'echo one'}")).await;
    h.queue_all(first.id).await;
    // Five refusals, 1.5 s of backoff: more than the tries a failing store gets, so the end
    // waits out the outage rather than giving up.
    until("the end was retried through the outage", || {
        faulty.refused_finishes() >= 5
    })
    .await;
    // The try keeps its slot while its end waits: the next one is not claimed.
    let second = h.create_run(&one_task("{id: t, bash: 'echo two'}")).await;
    h.queue_all(second.id).await;
    let tis = h.store.task_instances(first.id).await.expect("tis");
    assert_eq!(tis[0].state, TaskState::Running);
    let tis = h.store.task_instances(second.id).await.expect("tis");
    assert_eq!(tis[0].state, TaskState::Queued);
    faulty.set_finishes_down(false);
    wait_for_run(h.store.as_ref(), first.id, TaskState::is_finished).await;
    wait_for_run(h.store.as_ref(), second.id, TaskState::is_finished).await;
    for run in [first.id, second.id] {
        let tis = h.store.task_instances(run).await.expect("tis");
        assert_eq!(tis[0].state, TaskState::Success);
    }
    worker.shut_down().await;
}

#[tokio::test]
async fn a_worker_that_cannot_heartbeat_past_the_zombie_threshold_kills_its_tries() {
    let h = Harness::new().await;
    let faulty = FaultyStore::new(h.store.clone());
    let threshold = Duration::from_millis(500);
    let config = quick(&h)
        .with_orphan_after(threshold)
        .with_kill_grace(Duration::from_millis(300));
    let worker = WorkerLoop::start(config, faulty.clone());
    let run = h
        .create_run(&one_task(
            r#"{id: t, bash: "echo working; sleep 60", retries: 1}"#,
        ))
        .await;
    h.queue_all(run.id).await;
    let (ti, pid) = wait_started(&h, run.id, "working").await;
    let down = Instant::now();
    faulty.set_down(true);
    wait_until("the orphaned try's process is killed", || is_dead(pid)).await;
    // Not before the threshold (less one heartbeat: the last one got through just before).
    assert!(
        down.elapsed() >= threshold - Duration::from_millis(50),
        "killed after {:?}",
        down.elapsed()
    );
    faulty.set_down(false);
    // No scheduler here failed it as a zombie, so the worker's own end stands.
    wait_for_run(h.store.as_ref(), run.id, |s| s == TaskState::UpForRetry).await;
    let log = h.log(ti.id, ti.try_number).await;
    assert!(
        has(
            &log,
            "longer than the zombie threshold of 0.5s: the scheduler takes this try for a \
             zombie and may retry it elsewhere; stopping the try: sent SIGTERM"
        ),
        "{log:#?}"
    );
    worker.shut_down().await;
}

#[tokio::test]
async fn a_log_the_store_refuses_fails_that_try_and_the_worker_goes_on() {
    let h = Harness::new().await;
    let faulty = FaultyStore::new(h.store.clone());
    faulty.refuse_log_lines_with("POISON");
    let worker = WorkerLoop::start(quick(&h), faulty.clone());
    let run = h
        .create_run(&one_task(
            r#"{id: t, bash: "echo POISON; sleep 60", retries: 0}"#,
        ))
        .await;
    h.queue_all(run.id).await;
    wait_for_run(h.store.as_ref(), run.id, TaskState::is_finished).await;
    let ti = h.store.task_instances(run.id).await.expect("tis")[0].clone();
    assert_eq!(ti.state, TaskState::Failed);
    let log = h.log(ti.id, ti.try_number).await;
    assert!(
        has(
            &log,
            "the try's log could not be stored (database error: invalid byte sequence for \
             encoding); stopping the try: sent SIGTERM to the process group"
        ),
        "{log:#?}"
    );
    assert!(
        has(&log, "task failed: its log could not be stored"),
        "{log:#?}"
    );

    let next = h.create_run(&one_task("{id: t, bash: 'echo fine'}")).await;
    h.queue_all(next.id).await;
    wait_for_run(h.store.as_ref(), next.id, TaskState::is_finished).await;
    let ti = h.store.task_instances(next.id).await.expect("tis")[0].clone();
    assert_eq!(ti.state, TaskState::Success);
    worker.shut_down().await;
}

#[tokio::test]
async fn a_workspace_that_cannot_be_made_fails_that_try_and_the_worker_goes_on() {
    let h = Harness::new().await;
    let place = tempfile::tempdir().expect("tempdir");
    let root = place.path().join("workspaces");
    let store: Arc<dyn Store> = h.store.clone();
    let worker = WorkerLoop::start(quick(&h).with_workspace_root(&root), store);
    let try_once = |command: &'static str| {
        let h = &h;
        async move {
            let run = h
                .create_run(&one_task(&format!(
                    "{{id: t, bash: {}, retries: 0}}",
                    json!(command)
                )))
                .await;
            h.queue_all(run.id).await;
            wait_for_run(h.store.as_ref(), run.id, TaskState::is_finished).await;
            let ti = h.store.task_instances(run.id).await.expect("tis")[0].clone();
            (ti.state, h.log(ti.id, ti.try_number).await)
        }
    };

    // Missing, then a file where the folder should be: each try fails, saying what and where.
    for (why, make) in [
        ("No such file or directory", None),
        (
            "Not a directory",
            Some(|root: &std::path::Path| std::fs::write(root, "x")),
        ),
    ] {
        if let Some(make) = make {
            make(&root).expect("make the bad root");
        }
        let (state, log) = try_once("echo hi").await;
        assert_eq!(state, TaskState::Failed, "{log:#?}");
        let line = format!(
            "cannot create the try's workspace in {}: {why}",
            root.display()
        );
        assert!(has(&log, &line), "{line}\n{log:#?}");
        assert!(!has(&log, "running: bash"), "{log:#?}");
    }

    // The same worker runs the next try once the folder is there.
    std::fs::remove_file(&root).expect("remove the file");
    std::fs::create_dir(&root).expect("make the folder");
    let (state, log) = try_once("echo hi").await;
    assert_eq!(state, TaskState::Success, "{log:#?}");
    worker.shut_down().await;
}
