//! Stopping tries: the worker's graceful shutdown (finish within the grace, kill what is
//! left, claim nothing more), and a running try marked or cleared from outside, stopped
//! within a second without its end overwriting the new state.

use std::time::Duration;

use chrono::Utc;
use dag::TaskState;
use serde_json::json;
use tokio::time::Instant;

use crate::faults::FaultyStore;
use crate::{Harness, WorkerLoop, has, is_dead, one_task, wait_for_line, wait_started};

/// A try whose process prints `working`, then waits for `gate` to exist.
fn gated(gate: &std::path::Path) -> String {
    let command = format!(
        "echo working; while [ ! -e '{}' ]; do sleep 0.02; done; echo done",
        gate.display()
    );
    one_task(&format!("{{id: t, bash: {}}}", json!(command)))
}

/// Poll until `pid` is gone, failing once `within` has passed since `since`.
async fn dead_within(pid: u32, since: Instant, within: Duration, what: &str) {
    while !is_dead(pid) {
        assert!(
            since.elapsed() < within,
            "{what}: the try's process {pid} still runs after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_try_that_ends_within_the_grace_finishes_across_a_shutdown() {
    let h = Harness::new().await;
    let config = h.config.clone().with_shutdown_grace(Duration::from_secs(5));
    let mut worker = WorkerLoop::start(config, h.store.clone());
    let run = h
        .create_run(&one_task(
            r#"{id: t, bash: "echo working; sleep 0.5; echo done"}"#,
        ))
        .await;
    h.queue_all(run.id).await;
    let (ti, _) = wait_started(&h, run.id, "working").await;
    worker.begin_shutdown();
    worker.shut_down().await;
    let after = h.store.get_task_instance(ti.id).await.expect("get");
    let log = h.log(ti.id, ti.try_number).await;
    assert_eq!(after.map(|t| t.state), Some(TaskState::Success), "{log:#?}");
    assert!(has(&log, "done") && !has(&log, "SIGTERM"), "{log:#?}");
}

#[tokio::test]
async fn a_try_that_outlasts_the_grace_is_killed_and_retried() {
    let h = Harness::new().await;
    let config = h
        .config
        .clone()
        .with_shutdown_grace(Duration::from_millis(500))
        .with_kill_grace(Duration::from_millis(300));
    let mut worker = WorkerLoop::start(config, h.store.clone());
    let run = h
        .create_run(&one_task(
            r#"{id: t, bash: "echo working; sleep 60", retries: 1}"#,
        ))
        .await;
    h.queue_all(run.id).await;
    let (ti, pid) = wait_started(&h, run.id, "working").await;
    let started = Instant::now();
    worker.begin_shutdown();
    worker.shut_down().await;
    // The grace, then SIGTERM (which ends `sleep`), with room for a slow machine.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(is_dead(pid), "the try's process outlived its worker");
    let after = h
        .store
        .get_task_instance(ti.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(after.state, TaskState::UpForRetry);
    let log = h.log(ti.id, ti.try_number).await;
    assert!(
        has(
            &log,
            "worker is shutting down and the try outlasted the shutdown grace of 0.5s; stopping \
             the try: sent SIGTERM to the process group"
        ),
        "{log:#?}"
    );
    assert!(
        has(&log, "task failed: the worker shut down while it ran"),
        "{log:#?}"
    );
}

#[tokio::test]
async fn nothing_is_claimed_once_shutdown_begins() {
    let h = Harness::new().await;
    let gate = h.folder().join("gate");
    let config = h
        .config
        .clone()
        .with_concurrency(1)
        .with_shutdown_grace(Duration::from_secs(30));
    let mut worker = WorkerLoop::start(config, h.store.clone());
    let first = h.create_run(&gated(&gate)).await;
    h.queue_all(first.id).await;
    wait_started(&h, first.id, "working").await;
    // Queued while the only slot is taken, and after the shutdown began: neither may start,
    // not even once the first try frees the slot.
    let before = h.create_run(&one_task("{id: t, bash: 'echo x'}")).await;
    h.queue_all(before.id).await;
    worker.begin_shutdown();
    let after = h.create_run(&one_task("{id: t, bash: 'echo x'}")).await;
    h.queue_all(after.id).await;
    std::fs::write(&gate, "").expect("open the gate");
    worker.shut_down().await;
    let state = |run: i64| {
        let store = h.store.clone();
        async move { store.task_instances(run).await.expect("tis")[0].state }
    };
    assert_eq!(state(first.id).await, TaskState::Success);
    assert_eq!(state(before.id).await, TaskState::Queued);
    assert_eq!(state(after.id).await, TaskState::Queued);
}

#[tokio::test]
async fn a_running_try_marked_from_outside_is_stopped_within_a_second() {
    let h = Harness::new().await;
    // The default kill grace: `sleep` ends on SIGTERM, so the stop does not wait for it.
    let config = h.config.clone().with_shutdown_grace(Duration::ZERO);
    let worker = WorkerLoop::start(config, h.store.clone());
    for state in [TaskState::Success, TaskState::Failed] {
        let run = h
            .create_run(&one_task(
                r#"{id: t, bash: "echo working; sleep 60", retries: 2}"#,
            ))
            .await;
        h.queue_all(run.id).await;
        let (ti, pid) = wait_started(&h, run.id, "working").await;
        // What `PATCH …/taskInstances/{task_id}` and `dagctl tasks` do.
        let marked = Instant::now();
        h.store
            .set_task_instance_state(ti.id, state, Utc::now())
            .await
            .expect("mark");
        dead_within(pid, marked, Duration::from_secs(1), state.as_str()).await;
        let log = wait_for_line(&h, ti.id, ti.try_number, "not recording the try's end").await;
        let line = format!(
            "the task instance was set to {} from outside; stopping the try: sent SIGTERM to \
             the process group",
            state.as_str()
        );
        assert!(has(&log, &line), "{log:#?}");
        assert!(!has(&log, "up for retry"), "{log:#?}");
        let after = h
            .store
            .get_task_instance(ti.id)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(
            (after.state, after.try_number),
            (state, ti.try_number),
            "the mark stands"
        );
    }
    worker.shut_down().await;
}

#[tokio::test]
async fn a_change_whose_event_never_came_is_found_by_the_heartbeat() {
    let h = Harness::new().await;
    // As a worker in another process than the API on SQLite: no event reaches it.
    let deaf = FaultyStore::without_events(h.store.clone());
    let beat = Duration::from_millis(100);
    let config = h
        .config
        .clone()
        .with_heartbeat_interval(beat)
        .with_poll_interval(Duration::from_millis(50))
        .with_shutdown_grace(Duration::ZERO);
    let worker = WorkerLoop::start(config, deaf);
    let run = h
        .create_run(&one_task(r#"{id: t, bash: "echo working; sleep 60"}"#))
        .await;
    h.queue_all(run.id).await;
    let (ti, pid) = wait_started(&h, run.id, "working").await;
    let marked = Instant::now();
    h.store
        .set_task_instance_state(ti.id, TaskState::Success, Utc::now())
        .await
        .expect("mark");
    // Within a heartbeat or two, with room for a slow machine.
    dead_within(pid, marked, Duration::from_secs(5), "safety net").await;
    let log = wait_for_line(&h, ti.id, ti.try_number, "not recording the try's end").await;
    assert!(
        has(
            &log,
            "the task instance was set to success from outside; stopping the try"
        ),
        "{log:#?}"
    );
    worker.shut_down().await;
}

#[tokio::test]
async fn a_running_try_cleared_from_outside_is_stopped_and_its_next_try_runs() {
    let h = Harness::new().await;
    let config = h
        .config
        .clone()
        .with_concurrency(1)
        .with_shutdown_grace(Duration::ZERO);
    let worker = WorkerLoop::start(config, h.store.clone());
    let run = h
        .create_run(&one_task(r#"{id: t, bash: "echo working; sleep 60"}"#))
        .await;
    h.queue_all(run.id).await;
    let (first, pid) = wait_started(&h, run.id, "working").await;
    // The operator's clear (back to `none`), then the scheduler's queueing of the next try.
    let cleared = Instant::now();
    let reset = h
        .store
        .clear_task_instances(
            run.id,
            &[store::ClearTaskInstance {
                ti: first.id,
                max_tries: first.max_tries,
            }],
            Utc::now(),
        )
        .await
        .expect("clear");
    assert_eq!(reset.len(), 1, "a running instance is cleared");
    h.queue_all(run.id).await;
    dead_within(pid, cleared, Duration::from_secs(1), "clear").await;
    // The old try left its slot, so the only slot runs the next try.
    let deadline = Instant::now() + crate::DEADLINE;
    let second = loop {
        let ti = h.store.task_instances(run.id).await.expect("tis")[0].clone();
        if ti.try_number == first.try_number + 1 && ti.state == TaskState::Running {
            break ti;
        }
        assert!(Instant::now() < deadline, "the next try never ran: {ti:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let log = wait_for_line(
        &h,
        first.id,
        first.try_number,
        "not recording the try's end",
    )
    .await;
    // "… cleared from outside" or, had the queueing come first, "… and is on try 2 now".
    assert!(
        has(&log, "the task instance was cleared from outside"),
        "{log:#?}"
    );
    assert_eq!(second.id, first.id);
    worker.shut_down().await;
}
