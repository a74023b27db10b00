//! Several schedulers on one Postgres, each with its own connections and listener as separate
//! processes have: cron ticks make each run once whichever scheduler sees them, every task
//! instance of many manual runs runs once (judged from the tasks' own side effects), wake-ups
//! cross processes as events (the safety poll is set far beyond the test), and a sensor set
//! waiting by a scheduler that then stops is poked by the other.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Duration as Days, TimeZone, Utc};
use dag::{RunState, TaskState};
use scheduler::TriggerRequest;
use store::{RunFilter, Store};
use store_postgres::PostgresStore;
use testkit::Engine;
use testkit::engine::scheduler_config;
use testkit::postgres::ScratchDatabase;
use worker::WorkerConfig;

use crate::{load, wait_for_run};

/// One store per component, as one process each would have.
async fn connect(database: &ScratchDatabase) -> Arc<dyn Store> {
    Arc::new(
        PostgresStore::connect(database.url())
            .await
            .expect("connect"),
    )
}

/// A scheduler that only events can wake within the test's time.
fn event_driven() -> scheduler::SchedulerConfig {
    scheduler_config().with_poll_interval(Duration::from_secs(300))
}

fn worker(name: &str) -> WorkerConfig {
    WorkerConfig::new(name)
        .with_concurrency(8)
        .with_poll_interval(Duration::from_secs(300))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_make_each_run_once_and_run_each_task_once() {
    let Some(database) = ScratchDatabase::create().await else {
        return;
    };
    let client = connect(&database).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let starts = dir.path().join("starts");
    let start_date = (Utc::now() - Days::hours(30)).format("%Y-%m-%dT%H:00:00Z");
    load(
        &*client,
        &format!(
            "dag_id: hourly\nschedule: '@hourly'\nstart_date: '{start_date}'\ncatchup: true\ntasks:\n  - {{id: a, bash: 'true'}}\n"
        ),
    )
    .await;
    let dag_id = load(
        &*client,
        &format!(
            "dag_id: manual\nmax_active_runs: 64\ntasks:\n  - {{id: a, bash: 'echo \"{{{{ run_id }}}} a\" >> {f}'}}\n  - {{id: b, bash: 'echo \"{{{{ run_id }}}} b\" >> {f}', depends_on: [a]}}\n",
            f = starts.display()
        ),
    )
    .await;
    let one = Engine::start(connect(&database).await, event_driven(), worker("w1"));
    let two = Engine::start(connect(&database).await, event_driven(), worker("w2"));

    const RUNS: u32 = 20;
    let mut runs = Vec::new();
    for n in 1..=RUNS {
        let request = TriggerRequest {
            run_id: Some(format!("manual_{n}")),
            logical_date: Some(
                Utc.timestamp_opt(i64::from(n) * 3600, 0)
                    .single()
                    .expect("a date"),
            ),
            conf: None,
        };
        let run = scheduler::trigger(&*client, &dag_id, request, Utc::now())
            .await
            .expect("trigger");
        runs.push(run.id);
    }
    for run in runs {
        assert_eq!(wait_for_run(&*client, run).await, RunState::Success);
    }
    let text = std::fs::read_to_string(&starts).expect("side effects");
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for line in text.lines() {
        *counts.entry(line).or_default() += 1;
    }
    assert_eq!(counts.len(), 2 * RUNS as usize, "{text}");
    assert!(
        counts.values().all(|&n| n == 1),
        "a task ran twice: {counts:?}"
    );

    // The hourly ticks of the last 30 hours, each made once although both schedulers saw it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let scheduled = loop {
        let scheduled = client
            .list_runs(&RunFilter {
                dag_id: Some("hourly".into()),
                ..RunFilter::default()
            })
            .await
            .expect("runs");
        if scheduled.len() >= 30 && scheduled.iter().all(|r| r.state.is_finished()) {
            break scheduled;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} scheduled runs",
            scheduled.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut dates: Vec<_> = scheduled.iter().filter_map(|r| r.logical_date).collect();
    dates.sort();
    let before = dates.len();
    dates.dedup();
    assert_eq!(before, dates.len(), "a tick made two runs");
    assert!((30..=31).contains(&dates.len()), "{} ticks", dates.len());
    one.stop().await;
    two.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensor_left_by_a_stopped_scheduler_is_poked_by_the_other() {
    let Some(database) = ScratchDatabase::create().await else {
        return;
    };
    let client = connect(&database).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("ready");
    let dag_id = load(
        &*client,
        &format!(
            "dag_id: handover\ntasks:\n  - {{id: wait, sensor: {{file: '{}'}}, poke_interval: 0.2, timeout: 120}}\n  - {{id: after, bash: 'true', depends_on: [wait]}}\n",
            file.display()
        ),
    )
    .await;
    // The first scheduler sets the sensor waiting; then it stops for good.
    let first = Engine::scheduler_only(connect(&database).await, event_driven());
    let run = scheduler::trigger(&*client, &dag_id, TriggerRequest::default(), Utc::now())
        .await
        .expect("trigger")
        .id;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let tis = client.task_instances(run).await.expect("task instances");
        if tis
            .iter()
            .any(|ti| ti.task_id == "wait" && ti.state == TaskState::UpForReschedule)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never waiting: {tis:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.stop().await;
    // The second (with a worker for the downstream task) takes over the wait.
    let second = Engine::start(connect(&database).await, event_driven(), worker("w"));
    std::fs::write(&file, "x").expect("the file the sensor waits for");
    assert_eq!(wait_for_run(&*client, run).await, RunState::Success);
    second.stop().await;
}
