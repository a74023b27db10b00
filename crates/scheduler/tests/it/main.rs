//! The scheduler with a real worker and real stores: trigger rules and skip propagation as a
//! user meets them, and cron runs with and without catch-up. Every case is two tests,
//! `case::sqlite` and `case::postgres` (skipped when Postgres is unreachable, except under
//! CI=true).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Duration as Days, Utc};
use dag::{RunState, TaskState};
use scheduler::TriggerRequest;
use store::{RunFilter, Store, StoreEvent};
use testkit::Engine;
use testkit::engine::scheduler_config;
use worker::WorkerConfig;

mod folder;
mod many;
mod outage;
mod pausing;
mod sensors;

/// Scheduler and worker running on `store` until the engine is stopped.
fn start(store: Arc<dyn Store>) -> Engine {
    Engine::start(
        store,
        scheduler_config(),
        WorkerConfig::new("test-worker").with_concurrency(8),
    )
}

async fn wait_for_run(store: &dyn Store, run: i64) -> RunState {
    let mut events = store.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let record = store.get_run_by_key(run).await.expect("read").expect("run");
        if record.state.is_finished() {
            return record.state;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "run did not finish in time");
        tokio::select! {
            _ = events.recv() => {}
            _ = tokio::time::sleep(left.min(Duration::from_millis(200))) => {}
        }
    }
}

async fn load(store: &dyn Store, yaml: &str) -> String {
    let dag = dag::parse_dag_str("case.yaml", yaml).expect("valid DAG");
    store.sync_dag(&dag, "v1", Utc::now()).await.expect("sync");
    store.unpause_dag(&dag.dag_id).await.expect("unpause");
    dag.dag_id
}

/// How an upstream task ends: by its own exit code, or upstream_failed via a failing parent.
fn upstream(id: &str, state: char) -> String {
    match state {
        'S' => format!("  - {{id: {id}, bash: 'exit 0'}}\n"),
        'F' => format!("  - {{id: {id}, bash: 'exit 1'}}\n"),
        'K' => format!("  - {{id: {id}, bash: 'exit 99'}}\n"),
        'U' => format!(
            "  - {{id: {id}_parent, bash: 'exit 1'}}\n  - {{id: {id}, bash: 'exit 0', depends_on: [{id}_parent]}}\n"
        ),
        other => panic!("unknown upstream state {other}"),
    }
}

async fn every_trigger_rule_through_the_real_scheduler(store: Arc<dyn Store>) {
    use TaskState::{Skipped, Success, UpstreamFailed};
    // (rule, upstream end states, expected state of the task under the rule). S success,
    // F failed, K skipped, U upstream_failed. A task that runs exits 0, so "runs" = success.
    let table: &[(&str, &str, TaskState)] = &[
        ("all_success", "SS", Success),
        ("all_success", "SF", UpstreamFailed),
        ("all_success", "KK", Skipped),
        ("all_success", "SK", Skipped),
        ("all_success", "US", UpstreamFailed),
        ("all_failed", "FF", Success),
        ("all_failed", "FU", Success),
        ("all_failed", "SF", Skipped),
        ("all_failed", "KK", Skipped),
        ("all_done", "SF", Success),
        ("all_done", "KU", Success),
        ("all_done_min_one_success", "SF", Success),
        ("all_done_min_one_success", "SK", Skipped),
        ("all_done_min_one_success", "FU", UpstreamFailed),
        ("all_skipped", "KK", Success),
        ("all_skipped", "KS", Skipped),
        ("one_success", "SF", Success),
        ("one_success", "FK", UpstreamFailed),
        ("one_success", "KK", Skipped),
        ("one_failed", "FS", Success),
        ("one_failed", "US", Success),
        ("one_failed", "SK", Skipped),
        ("one_done", "SK", Success),
        ("one_done", "FK", Success),
        ("one_done", "KU", Skipped),
        ("none_failed", "SK", Success),
        ("none_failed", "SF", UpstreamFailed),
        ("none_failed", "KK", Success),
        ("none_failed_min_one_success", "SK", Success),
        ("none_failed_min_one_success", "KK", Skipped),
        ("none_failed_min_one_success", "SU", UpstreamFailed),
        ("none_skipped", "SF", Success),
        ("none_skipped", "SK", Skipped),
        ("always", "FU", Success),
    ];
    // Every case is an independent corner of one DAG, plus a skip three levels deep.
    let mut yaml = String::from("dag_id: trigger_rules\nmax_active_tasks: 64\ntasks:\n");
    for (i, (rule, mix, _)) in table.iter().enumerate() {
        let ups: Vec<String> = mix
            .chars()
            .enumerate()
            .map(|(j, state)| {
                let id = format!("c{i}_up{j}");
                yaml.push_str(&upstream(&id, state));
                id
            })
            .collect();
        yaml.push_str(&format!(
            "  - {{id: c{i}_target, bash: 'exit 0', trigger_rule: {rule}, depends_on: [{}]}}\n",
            ups.join(", ")
        ));
    }
    yaml.push_str("  - {id: deep_a, bash: 'exit 99'}\n  - {id: deep_b, bash: 'exit 0', depends_on: [deep_a]}\n  - {id: deep_c, bash: 'exit 0', depends_on: [deep_b]}\n  - {id: deep_d, bash: 'exit 0', depends_on: [deep_c]}\n");

    let dag_id = load(&*store, &yaml).await;
    let engine = start(store.clone());
    let run = scheduler::trigger(&*store, &dag_id, TriggerRequest::default(), Utc::now())
        .await
        .expect("trigger");
    let state = wait_for_run(&*store, run.id).await;
    engine.stop().await;
    let states: BTreeMap<String, TaskState> = store
        .task_instances(run.id)
        .await
        .expect("tis")
        .into_iter()
        .map(|ti| (ti.task_id, ti.state))
        .collect();
    for (i, (rule, mix, expected)) in table.iter().enumerate() {
        assert_eq!(
            states[&format!("c{i}_target")],
            *expected,
            "{}: {rule} with upstream {mix}",
            store.backend()
        );
    }
    for deep in ["deep_a", "deep_b", "deep_c", "deep_d"] {
        assert_eq!(states[deep], Skipped, "{}: {deep}", store.backend());
    }
    assert_eq!(state, RunState::Failed, "some leaves ended upstream_failed");
}

async fn cron_runs_with_and_without_catchup(store: Arc<dyn Store>) {
    let start_date = (Utc::now() - Days::days(3)).format("%Y-%m-%d");
    let mut events = store.subscribe();
    load(&*store, &format!(
        "dag_id: caught_up\nschedule: '@daily'\nstart_date: {start_date}\ncatchup: true\ntasks:\n  - {{id: a, bash: 'true'}}\n"
    )).await;
    load(&*store, &format!(
        "dag_id: latest_only\nschedule: '@daily'\nstart_date: {start_date}\ntasks:\n  - {{id: a, bash: 'true'}}\n"
    )).await;
    let engine = start(store.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let runs_of = |dag: &'static str| {
        let store = store.clone();
        async move {
            store
                .list_runs(&RunFilter {
                    dag_id: Some(dag.into()),
                    ..RunFilter::default()
                })
                .await
                .expect("runs")
        }
    };
    loop {
        let caught_up = runs_of("caught_up").await;
        let latest = runs_of("latest_only").await;
        let done = |runs: &[store::RunRecord]| runs.iter().all(|r| r.state == RunState::Success);
        if caught_up.len() >= 3 && !latest.is_empty() && done(&caught_up) && done(&latest) {
            // Midnight ticks from start_date (3 days ago) to today: every one with catchup.
            let mut dates: Vec<_> = caught_up.iter().filter_map(|r| r.logical_date).collect();
            dates.sort();
            assert!(dates.len() == 3 || dates.len() == 4, "{dates:?}");
            for pair in dates.windows(2) {
                assert_eq!(pair[1] - pair[0], Days::days(1));
            }
            assert!(
                caught_up
                    .iter()
                    .all(|r| r.run_id.starts_with("scheduled__"))
            );
            // Without catchup: only the latest tick.
            assert_eq!(latest.len(), 1, "{latest:?}");
            assert_eq!(latest[0].logical_date, dates.last().copied());
            break;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(
            !left.is_zero(),
            "scheduled runs did not appear: {caught_up:?} {latest:?}"
        );
        tokio::select! {
            e = events.recv() => { let _: Result<StoreEvent, _> = e; }
            _ = tokio::time::sleep(left.min(Duration::from_millis(200))) => {}
        }
    }
    engine.stop().await;
}

async fn depends_on_past_orders_overlapping_runs(store: Arc<dyn Store>) {
    let yaml = "dag_id: past\ntasks:\n  - {id: t, bash: 'sleep 0.3', depends_on_past: true}\n  - {id: free, bash: 'true'}\n";
    let dag_id = load(&*store, yaml).await;
    let day = |d: u32| chrono::TimeZone::with_ymd_and_hms(&Utc, 2024, 1, d, 0, 0, 0).single();
    // The later run is triggered first: order comes from logical dates, not arrival. Both
    // exist before the scheduler starts, as a catch-up or backfill makes them.
    let second = scheduler::trigger(
        &*store,
        &dag_id,
        TriggerRequest {
            logical_date: day(2),
            ..TriggerRequest::default()
        },
        Utc::now(),
    )
    .await
    .expect("trigger");
    let first = scheduler::trigger(
        &*store,
        &dag_id,
        TriggerRequest {
            logical_date: day(1),
            ..TriggerRequest::default()
        },
        Utc::now(),
    )
    .await
    .expect("trigger");
    let engine = start(store.clone());
    assert_eq!(wait_for_run(&*store, first.id).await, RunState::Success);
    assert_eq!(wait_for_run(&*store, second.id).await, RunState::Success);
    engine.stop().await;
    let t_of = |run: i64| {
        let store = store.clone();
        async move {
            store
                .task_instances(run)
                .await
                .expect("tis")
                .into_iter()
                .find(|ti| ti.task_id == "t")
                .expect("t")
        }
    };
    let (earlier, later) = (t_of(first.id).await, t_of(second.id).await);
    assert!(
        later.start_date >= earlier.end_date,
        "{}: the later run's t started at {:?}, before the earlier one ended at {:?}",
        store.backend(),
        later.start_date,
        earlier.end_date
    );
}

async fn branching_mapping_and_xcom_through_the_real_scheduler(store: Arc<dyn Store>) {
    let yaml = r#"dag_id: flow
tasks:
  - {id: count, bash: 'echo 3'}
  - id: route
    depends_on: [count]
    switch:
      - {if: "ti.xcom_pull('count') | int > 2", then: many}
      - {else: few}
  - id: many
    depends_on: [route]
    bash: 'echo item-{{ n }}'
    expand: {n: [1, 2, 3]}
  - {id: few, bash: 'echo few', depends_on: [route]}
  - id: join
    depends_on: [many, few]
    trigger_rule: none_failed_min_one_success
    bash: "echo {{ ti.xcom_pull('many') | join(',') }}"
"#;
    let dag_id = load(&*store, yaml).await;
    let engine = start(store.clone());
    let run = scheduler::trigger(&*store, &dag_id, TriggerRequest::default(), Utc::now())
        .await
        .expect("trigger");
    assert_eq!(wait_for_run(&*store, run.id).await, RunState::Success);
    engine.stop().await;
    let states: BTreeMap<String, TaskState> = store
        .task_instances(run.id)
        .await
        .expect("tis")
        .into_iter()
        .map(|ti| {
            let key = if ti.map_index >= 0 {
                format!("{}[{}]", ti.task_id, ti.map_index)
            } else {
                ti.task_id
            };
            (key, ti.state)
        })
        .collect();
    use TaskState::{Skipped, Success};
    let expected: BTreeMap<String, TaskState> = [
        ("count", Success),
        ("route", Success),
        ("many[0]", Success),
        ("many[1]", Success),
        ("many[2]", Success),
        ("few", Skipped),
        ("join", Success),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(states, expected, "{}", store.backend());
    let xcom = |task: &str| {
        let store = store.clone();
        let key = store::XcomKey {
            run: run.id,
            task_id: task.to_string(),
            map_index: -1,
            key: "return_value".into(),
        };
        async move { store.get_xcom(&key).await.expect("xcom") }
    };
    // `then: many` names one id, so the choice is that id; `then: [many]` would be a list.
    assert_eq!(xcom("route").await, Some(serde_json::json!("many")));
    assert_eq!(
        xcom("join").await,
        Some(serde_json::json!("item-1,item-2,item-3"))
    );
}

/// Poll for a file's text until `deadline` passes.
async fn wait_for_file(path: &std::path::Path, what: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.is_empty()
        {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_zombie_try_and_its_failed_run_still_notify(store: Arc<dyn Store>) {
    let marks = tempfile::tempdir().expect("tempdir");
    let task_mark = marks.path().join("task");
    let run_mark = marks.path().join("run");
    let dag_id = load(
        &*store,
        &format!(
            "dag_id: zombie_notify\n\
             on_failure: [{{bash: 'echo \"{{{{ exception }}}}\" > {run}'}}]\n\
             tasks:\n  - id: victim\n    bash: 'sleep 30'\n    \
             on_failure: [{{bash: 'echo \"{{{{ exception }}}} {{{{ log_url }}}}\" > {task}'}}]\n",
            run = run_mark.display(),
            task = task_mark.display()
        ),
    )
    .await;
    let run = scheduler::trigger(&*store, &dag_id, TriggerRequest::default(), Utc::now())
        .await
        .expect("trigger");
    // Only a scheduler: the "worker" below claims the try and then dies silently.
    let engine = Engine::scheduler_only(
        store.clone(),
        scheduler_config()
            .with_poll_interval(Duration::from_millis(100))
            .with_zombie_threshold(Duration::from_millis(400)),
    );
    claim_as_dead_worker(&*store).await;
    assert_eq!(wait_for_run(&*store, run.id).await, RunState::Failed);
    let task_note = wait_for_file(&task_mark, "the task's on_failure").await;
    assert!(
        task_note.contains("worker dead-worker stopped heartbeating")
            && task_note.contains("/dags/zombie_notify/runs/")
            && task_note.contains("/tasks/victim?try_number=1"),
        "{task_note}"
    );
    let run_note = wait_for_file(&run_mark, "the DAG's on_failure").await;
    assert!(run_note.contains("failed tasks: victim"), "{run_note}");
    engine.stop().await;
}

/// Claim the first queued try as a worker that then dies silently (it never heartbeats).
async fn claim_as_dead_worker(store: &dyn Store) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let claimed = store
            .claim_task_instances(&store::Claim {
                worker_id: "dead-worker".into(),
                hostname: "gone".into(),
                queues: vec!["default".into()],
                limit: 1,
                now: Utc::now(),
            })
            .await
            .expect("claim");
        if !claimed.is_empty() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing to claim");
        // Polling with a deadline: the scheduler queues the try on its own schedule.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A try of an Airflow task whose worker died never ran its Python on_failure_callback: the
/// scheduler runs it, once, after failing the try; then the DAG's own on_failure_callback
/// runs with Airflow's DAG-callback context.
async fn a_zombie_python_task_and_its_run_get_their_python_callbacks(store: Arc<dyn Store>) {
    if !testkit::ci::python3_available() {
        return;
    }
    let marks = tempfile::tempdir().expect("tempdir");
    let task_mark = marks.path().join("task");
    let run_mark = marks.path().join("run");
    let source = format!(
        "from airflow import DAG\n\
         from airflow.operators.python import PythonOperator\n\
         \n\
         def note(path):\n\
         \x20   def callback(context):\n\
         \x20       with open(path, 'a') as f:\n\
         \x20           f.write('%s|%s|%s|%s|%s\\n' % (context['reason'], context.get('exception'),\n\
         \x20                   context['ti'].task_id, context['dag_run'].run_id, context['params']['who']))\n\
         \x20   return callback\n\
         \n\
         with DAG('zombie_python', schedule=None, params={{'who': 'ops'}}, on_failure_callback=note({run:?})):\n\
         \x20   PythonOperator(task_id='victim', python_callable=print, on_failure_callback=note({task:?}))\n",
        run = run_mark.display().to_string(),
        task = task_mark.display().to_string(),
    );
    let doc = serde_json::json!({
        "dag_id": "zombie_python",
        "airflow": {"callbacks": ["on_failure_callback"]},
        "params": {"who": {"default": "ops"}},
        "tasks": [{"id": "victim", "airflow": {"operator": "PythonOperator", "callbacks": ["on_failure_callback"]}}],
    });
    let fileloc = marks.path().join("zombie_python.py").display().to_string();
    let dag = dag::dag_from_python(&fileloc, &doc, &source).expect("a valid document");
    store.sync_dag(&dag, "v1", Utc::now()).await.expect("sync");
    store.unpause_dag("zombie_python").await.expect("unpause");
    let run = scheduler::trigger(
        &*store,
        "zombie_python",
        TriggerRequest::default(),
        Utc::now(),
    )
    .await
    .expect("trigger");
    let engine = Engine::scheduler_only(
        store.clone(),
        scheduler_config()
            .with_poll_interval(Duration::from_millis(100))
            .with_zombie_threshold(Duration::from_millis(400)),
    );
    claim_as_dead_worker(&*store).await;
    assert_eq!(wait_for_run(&*store, run.id).await, RunState::Failed);
    let task_note = wait_for_file(&task_mark, "the task's on_failure_callback").await;
    let run_note = wait_for_file(&run_mark, "the DAG's on_failure_callback").await;
    // Stopping waits for every callback: none ran twice.
    engine.stop().await;
    let task_note = std::fs::read_to_string(&task_mark).unwrap_or(task_note);
    let lines: Vec<&str> = task_note.lines().collect();
    assert_eq!(lines.len(), 1, "{task_note}");
    assert!(
        lines[0]
            .starts_with("task_failure|task failed: its worker dead-worker stopped heartbeating")
            && lines[0].ends_with(&format!("|victim|{}|ops", run.run_id)),
        "{task_note}"
    );
    let run_note = std::fs::read_to_string(&run_mark).unwrap_or(run_note);
    assert_eq!(
        run_note,
        format!(
            "task_failure|run {0} failed; failed tasks: victim|victim|{0}|ops\n",
            run.run_id
        )
    );
    // The callback's output and end are in the try's log.
    let ti = store.task_instances(run.id).await.expect("tis").remove(0);
    let log: Vec<String> = store
        .read_log(ti.id, 1, 0, 1000)
        .await
        .expect("log")
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert!(
        log.iter()
            .any(|l| l == "the try's worker is gone: the scheduler runs its on_failure_callback")
            && log.iter().any(|l| l == "on_failure_callback succeeded"),
        "{log:?}"
    );
}

testkit::backend_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    every_trigger_rule_through_the_real_scheduler,
    cron_runs_with_and_without_catchup,
    depends_on_past_orders_overlapping_runs,
    branching_mapping_and_xcom_through_the_real_scheduler,
    a_zombie_try_and_its_failed_run_still_notify,
    a_zombie_python_task_and_its_run_get_their_python_callbacks,
);
