//! Sensors through the real scheduler, sensor loop and worker: waiting in up_for_reschedule,
//! freeing worker slots, timeouts (soft_fail and failed without retry), each probe kind, and
//! a scheduler restart in the middle of a wait.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use dag::{RunState, TaskState};
use scheduler::TriggerRequest;
use store::secrets::{Connection, Vault};
use store::{Store, TaskInstanceRecord};
use testkit::Engine;
use testkit::engine::scheduler_config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use worker::WorkerConfig;

use super::{load, wait_for_run};

/// Scheduler and a worker of `concurrency` slots on `store` until the engine is stopped.
fn start_with(store: Arc<dyn Store>, concurrency: usize) -> Engine {
    start_with_connections(store, concurrency, Vec::new())
}

/// As [`start_with`], with connections given as if from the environment.
fn start_with_connections(
    store: Arc<dyn Store>,
    concurrency: usize,
    connections: Vec<Connection>,
) -> Engine {
    Engine::start(
        store,
        scheduler_config().with_secrets(Arc::new(Vault::clear()), connections),
        WorkerConfig::new("sensor-worker")
            .with_concurrency(concurrency)
            .with_poll_interval(Duration::from_millis(200)),
    )
}

async fn trigger(store: &dyn Store, dag_id: &str) -> i64 {
    scheduler::trigger(store, dag_id, TriggerRequest::default(), Utc::now())
        .await
        .expect("trigger")
        .id
}

async fn instance(store: &dyn Store, run: i64, task_id: &str) -> TaskInstanceRecord {
    store
        .task_instances(run)
        .await
        .expect("tis")
        .into_iter()
        .find(|ti| ti.task_id == task_id)
        .expect("task instance")
}

/// Wait (on store events, with a deadline) until `check` holds for the task instance.
async fn wait_until(
    store: &dyn Store,
    run: i64,
    task_id: &str,
    what: &str,
    check: impl Fn(&TaskInstanceRecord, &store::SensorProgress) -> bool,
) {
    let mut events = store.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ti = instance(store, run, task_id).await;
        let progress = store
            .sensor_progress(ti.id)
            .await
            .expect("progress")
            .expect("instance");
        if check(&ti, &progress) {
            return;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(
            !left.is_zero(),
            "{task_id} never became {what}: {ti:?} {progress:?}"
        );
        tokio::select! {
            _ = events.recv() => {}
            _ = tokio::time::sleep(left.min(Duration::from_millis(100))) => {}
        }
    }
}

async fn log_lines(store: &dyn Store, ti: &TaskInstanceRecord) -> Vec<String> {
    store
        .read_log(ti.id, ti.try_number, 0, 10_000)
        .await
        .expect("log")
        .into_iter()
        .map(|l| l.line)
        .collect()
}

fn yaml_path(path: &Path) -> String {
    path.display().to_string()
}

async fn file_sensor_waits_in_up_for_reschedule_then_releases_downstream(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("ready.csv");
    let dag_id = load(
        &*store,
        &format!(
            "dag_id: wait_file\ntasks:\n  - {{id: wait, sensor: {{file: '{}'}}, poke_interval: 0.2}}\n  - {{id: after, bash: 'true', depends_on: [wait]}}\n",
            yaml_path(&file)
        ),
    )
    .await;
    let engine = start_with(store.clone(), 4);
    let run = trigger(&*store, &dag_id).await;
    wait_until(&*store, run, "wait", "waiting after 2 pokes", |ti, p| {
        ti.state == TaskState::UpForReschedule && p.poke_count >= 2
    })
    .await;
    assert_eq!(instance(&*store, run, "after").await.state, TaskState::None);
    std::fs::write(&file, "rows").expect("write");
    assert_eq!(wait_for_run(&*store, run).await, RunState::Success);
    engine.stop().await;
    let wait = instance(&*store, run, "wait").await;
    let after = instance(&*store, run, "after").await;
    assert_eq!((wait.state, wait.try_number), (TaskState::Success, 1));
    assert_eq!(wait.worker_id, None, "no worker ran the file sensor");
    assert_eq!(after.state, TaskState::Success);
    let lines = log_lines(&*store, &wait).await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("not there yet (poke 2)") && l.contains("poking file")),
        "{lines:?}"
    );
    assert!(
        lines.last().is_some_and(|l| l.contains("done")),
        "{lines:?}"
    );
}

async fn a_rescheduled_command_sensor_frees_its_worker_slot(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("flag");
    // One slot. The sensor is claimed first (higher priority) and fails its first poke;
    // only if it gives the slot back can `other` run and create the file it waits for.
    let dag_id = load(
        &*store,
        &format!(
            "dag_id: free_slot\ntasks:\n  - {{id: wait, sensor: {{command: 'test -e {f}'}}, poke_interval: 0.2, priority_weight: 10, timeout: 60}}\n  - {{id: other, bash: 'sleep 0.3 && touch {f}'}}\n",
            f = yaml_path(&file)
        ),
    )
    .await;
    let engine = start_with(store.clone(), 1);
    let run = trigger(&*store, &dag_id).await;
    assert_eq!(wait_for_run(&*store, run).await, RunState::Success);
    engine.stop().await;
    let wait = instance(&*store, run, "wait").await;
    let other = instance(&*store, run, "other").await;
    assert_eq!((wait.state, wait.try_number), (TaskState::Success, 1));
    assert_eq!(other.state, TaskState::Success);
    assert!(
        other.end_date <= wait.end_date,
        "other ended {:?}, the sensor {:?}",
        other.end_date,
        wait.end_date
    );
    let progress = store
        .sensor_progress(wait.id)
        .await
        .expect("p")
        .expect("ti");
    assert!(progress.poke_count >= 1, "{progress:?}");
    let lines = log_lines(&*store, &wait).await;
    assert!(
        lines.iter().any(|l| l.contains("up for reschedule")),
        "{lines:?}"
    );
}

async fn a_poke_mode_command_sensor_holds_its_slot_until_done(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("flag");
    let dag_id = load(
        &*store,
        &format!(
            "dag_id: poke_mode\ntasks:\n  - {{id: wait, sensor: {{command: 'test -e {}'}}, mode: poke, poke_interval: 0.2}}\n",
            yaml_path(&file)
        ),
    )
    .await;
    let engine = start_with(store.clone(), 2);
    let run = trigger(&*store, &dag_id).await;
    let store2 = store.clone();
    wait_until(
        &*store,
        run,
        "wait",
        "running with 2 pokes logged",
        move |ti, _| ti.state == TaskState::Running && ti.worker_id.is_some(),
    )
    .await;
    // Two "not yet" pokes on the worker, while it stays running.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ti = instance(&*store2, run, "wait").await;
        assert_eq!(ti.state, TaskState::Running, "poke mode never reschedules");
        let lines = log_lines(&*store2, &ti).await;
        if lines.iter().filter(|l| l.contains("not yet (poke")).count() >= 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{lines:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(&file, "").expect("write");
    assert_eq!(wait_for_run(&*store, run).await, RunState::Success);
    engine.stop().await;
    let wait = instance(&*store, run, "wait").await;
    assert_eq!((wait.state, wait.try_number), (TaskState::Success, 1));
}

/// A loopback HTTP server answering `{"ready": true}` from the `ready_after`-th request on
/// (never, with `usize::MAX`); returns its port and the request count.
async fn health_server(ready_after: usize) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buf[..read]),
                    }
                }
                let body = format!("{{\"ready\": {}, \"request\": {n}}}", n >= ready_after);
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (port, count)
}

async fn http_sensors_succeed_skip_or_fail_on_timeout(store: Arc<dyn Store>) {
    let (ready_port, ready_count) = health_server(3).await;
    let (never_port, _) = health_server(usize::MAX).await;
    let dag_id = load(
        &*store,
        &format!(
                            r#"dag_id: http_wait
tasks:
  - id: ready
    sensor: {{http: {{url: "http://127.0.0.1:{ready_port}/health", response_check: "response.json.ready"}}}}
    poke_interval: 0.2
  - id: soft
    sensor: {{http: {{url: "http://127.0.0.1:{never_port}/health", response_check: "response.json.ready"}}}}
    poke_interval: 0.2
    timeout: 1
    soft_fail: true
  - id: hard
    sensor: {{http: {{url: "http://127.0.0.1:{never_port}/health", response_check: "response.json.ready"}}}}
    poke_interval: 0.2
    timeout: 1
    retries: 3
    retry_delay: 0
"#
        ),
    )
    .await;
    let engine = start_with(store.clone(), 2);
    let run = trigger(&*store, &dag_id).await;
    assert_eq!(wait_for_run(&*store, run).await, RunState::Failed);
    engine.stop().await;
    let ready = instance(&*store, run, "ready").await;
    let soft = instance(&*store, run, "soft").await;
    let hard = instance(&*store, run, "hard").await;
    assert_eq!(ready.state, TaskState::Success);
    assert!(ready_count.load(Ordering::SeqCst) >= 3);
    let progress = store
        .sensor_progress(ready.id)
        .await
        .expect("p")
        .expect("ti");
    assert!(progress.poke_count >= 3, "{progress:?}");
    assert_eq!(soft.state, TaskState::Skipped);
    assert_eq!(
        (hard.state, hard.try_number),
        (TaskState::Failed, 1),
        "a timed-out sensor is not retried"
    );
    let lines = log_lines(&*store, &hard).await;
    assert!(
        lines.iter().any(|l| l.contains("timed out after")),
        "{lines:?}"
    );
}

async fn external_task_and_time_sensors(store: Arc<dyn Store>) {
    let logical = Utc::now() - chrono::Duration::hours(1);
    let after = Utc::now() + chrono::Duration::milliseconds(600);
    let upstream = load(
        &*store,
        "dag_id: producer\ntasks:\n  - {id: load, bash: 'true'}\n",
    )
    .await;
    let dag_id = load(
        &*store,
        &format!(
            r#"dag_id: consumer
tasks:
  - {{id: wait_load, sensor: {{external_task: {{dag_id: producer, task_id: load}}}}, poke_interval: 0.2}}
  - {{id: wait_run, sensor: {{external_task: {{dag_id: producer, logical_date: "{{{{ logical_date }}}}"}}}}, poke_interval: 0.2}}
  - {{id: wait_time, sensor: {{time: {{after: "{}"}}}}, poke_interval: 0.2}}
"#,
            after.to_rfc3339()
        ),
    )
    .await;
    let engine = start_with(store.clone(), 2);
    let request = || TriggerRequest {
        logical_date: Some(logical),
        ..TriggerRequest::default()
    };
    let run = scheduler::trigger(&*store, &dag_id, request(), Utc::now())
        .await
        .expect("trigger")
        .id;
    wait_until(&*store, run, "wait_load", "poked", |ti, p| {
        ti.state == TaskState::UpForReschedule && p.poke_count >= 1
    })
    .await;
    let producer = scheduler::trigger(&*store, &upstream, request(), Utc::now())
        .await
        .expect("trigger producer")
        .id;
    assert_eq!(wait_for_run(&*store, producer).await, RunState::Success);
    assert_eq!(wait_for_run(&*store, run).await, RunState::Success);
    engine.stop().await;
    for id in ["wait_load", "wait_run", "wait_time"] {
        assert_eq!(
            instance(&*store, run, id).await.state,
            TaskState::Success,
            "{id}"
        );
    }
    let time = instance(&*store, run, "wait_time").await;
    assert!(time.end_date >= Some(after), "{time:?}");
    let lines = log_lines(&*store, &instance(&*store, run, "wait_load").await).await;
    assert!(
        lines.iter().any(|l| l.contains("no run of producer")),
        "{lines:?}"
    );
}

async fn an_external_task_that_failed_fails_the_sensor(store: Arc<dyn Store>) {
    let logical = Utc::now() - chrono::Duration::hours(2);
    load(
        &*store,
        "dag_id: broken\ntasks:\n  - {id: load, bash: 'exit 1'}\n",
    )
    .await;
    let dag_id = load(
        &*store,
        "dag_id: waits_on_broken\ntasks:\n  - {id: wait, sensor: {external_task: {dag_id: broken, task_id: load}}, poke_interval: 0.2}\n",
    )
    .await;
    let engine = start_with(store.clone(), 2);
    let request = || TriggerRequest {
        logical_date: Some(logical),
        ..TriggerRequest::default()
    };
    let producer = scheduler::trigger(&*store, "broken", request(), Utc::now())
        .await
        .expect("trigger")
        .id;
    assert_eq!(wait_for_run(&*store, producer).await, RunState::Failed);
    let run = scheduler::trigger(&*store, &dag_id, request(), Utc::now())
        .await
        .expect("trigger")
        .id;
    assert_eq!(wait_for_run(&*store, run).await, RunState::Failed);
    engine.stop().await;
    assert_eq!(
        instance(&*store, run, "wait").await.state,
        TaskState::Failed
    );
}

async fn a_waiting_sensor_survives_a_scheduler_restart(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let dag_id = load(
        &*store,
        &format!(
            "dag_id: restart_wait\ntasks:\n  - {{id: wait, sensor: {{file: '{}'}}, poke_interval: 0.3, timeout: 2}}\n",
            yaml_path(&dir.path().join("never"))
        ),
    )
    .await;
    let engine = start_with(store.clone(), 1);
    let run = trigger(&*store, &dag_id).await;
    wait_until(&*store, run, "wait", "poked twice", |ti, p| {
        ti.state == TaskState::UpForReschedule && p.poke_count >= 2
    })
    .await;
    engine.stop().await;
    let ti = instance(&*store, run, "wait").await;
    let before = store.sensor_progress(ti.id).await.expect("p").expect("ti");
    let first = before.first_poke_at.expect("first poke stored");

    // A new scheduler resumes from the database: the wait goes on, and the timeout is
    // measured from the first poke before the restart.
    let engine = start_with(store.clone(), 1);
    assert_eq!(wait_for_run(&*store, run).await, RunState::Failed);
    engine.stop().await;
    let ti = instance(&*store, run, "wait").await;
    let after = store.sensor_progress(ti.id).await.expect("p").expect("ti");
    assert_eq!(ti.state, TaskState::Failed);
    assert_eq!(after.first_poke_at, Some(first));
    assert!(
        after.poke_count > before.poke_count,
        "{before:?} -> {after:?}"
    );
    let ended = ti.end_date.expect("end date");
    let waited = (ended - first).as_seconds_f64();
    assert!(
        (2.0..10.0).contains(&waited),
        "timed out {waited}s after the first poke"
    );
}

async fn sql_sensor_waits_for_a_truthy_first_cell(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Connection {
        conn_id: "flags_db".into(),
        conn_type: "sqlite".into(),
        description: None,
        host: Some(dir.path().join("flags.db").display().to_string()),
        schema: None,
        login: None,
        password: None,
        port: None,
        extra: None,
    };
    let sql = |text: &str| {
        let db = db.clone();
        let text = text.to_string();
        async move {
            hooks::sql::run(
                &db,
                &text,
                &hooks::sql::Parameters::None,
                Duration::from_secs(10),
            )
            .await
            .expect("sql")
        }
    };
    sql("CREATE TABLE flags (ready INTEGER); INSERT INTO flags VALUES (0)").await;
    let dag_id = load(
        &*store,
        "dag_id: sql_wait\ntasks:\n  - {id: wait, sensor: {sql: {conn_id: flags_db, sql: 'SELECT ready FROM flags'}}, poke_interval: 0.2}\n  - {id: after, bash: 'true', depends_on: [wait]}\n",
    )
    .await;
    let engine = start_with_connections(store.clone(), 2, vec![db.clone()]);
    let run = trigger(&*store, &dag_id).await;
    wait_until(&*store, run, "wait", "poked twice", |ti, p| {
        ti.state == TaskState::UpForReschedule && p.poke_count >= 2
    })
    .await;
    sql("UPDATE flags SET ready = 1").await;
    assert_eq!(wait_for_run(&*store, run).await, RunState::Success);
    engine.stop().await;
    let wait = instance(&*store, run, "wait").await;
    assert_eq!(wait.state, TaskState::Success);
    let lines = log_lines(&*store, &wait).await;
    assert!(
        lines.iter().any(|l| l.contains("first cell is 0")),
        "{lines:?}"
    );
}

testkit::backend_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    file_sensor_waits_in_up_for_reschedule_then_releases_downstream,
    a_rescheduled_command_sensor_frees_its_worker_slot,
    a_poke_mode_command_sensor_holds_its_slot_until_done,
    http_sensors_succeed_skip_or_fail_on_timeout,
    external_task_and_time_sensors,
    an_external_task_that_failed_fails_the_sensor,
    a_waiting_sensor_survives_a_scheduler_restart,
    sql_sensor_waits_for_a_truthy_first_cell,
);
