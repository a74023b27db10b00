//! The store conformance suite: every case runs against every backend.
//!
//! Each case is a plain `async fn(Arc<dyn Store>)` that asserts real outcomes. A backend's
//! integration tests are one [`store_conformance!`](crate::store_conformance) call, which turns
//! every case into its own `#[tokio::test]` on a fresh store of that backend. DAGs are built
//! here in Rust, not parsed, so the suite depends only on the model.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use dag::{Dag, RunState, RunType, Schedule, Task, TaskKind, TaskState, TriggerRule};
use serde_json::json;

use store::{
    Claim, ClaimedTask, DagFilter, DagOrder, DecidedLog, DecidedXcom, Expansion, Finish, LogLine,
    LogStream, NewRun, NewTaskInstance, NewUser, Poke, PokeOutcome, PoolRecord, RunDecision,
    RunFilter, RunOrder, RunSnapshot, SnapshotXcoms, Sort, SortDirection, Store, StoreError,
    StoreEvent, TagsMatch, TaskInstanceFilter, TaskInstanceOrder, TimeRange, Transition, TryOutput,
    XcomKey,
};

/// One `#[tokio::test]` per conformance case on a fresh store of `$backend` (a
/// [`Backend`](crate::Backend)); a backend that cannot be reached skips or fails the case as
/// [`ci::unavailable`](crate::ci::unavailable) says.
#[macro_export]
macro_rules! store_conformance {
    ($backend:expr) => {
        $crate::store_conformance!(@cases $backend;
            dags_sync_list_get,
            dag_paused_upon_creation_and_pause,
            paused_dag_runs_wait_and_unpause_names_them,
            paused_dag_retries_and_sensors_wait,
            runs_keep_who_triggered_them,
            dag_deactivate,
            import_errors_record_replace_clear,
            create_run_and_duplicate,
            list_and_find_runs,
            schedule_run_guarded_transitions,
            schedule_run_sees_running_runs,
            concurrent_schedulers_apply_each_transition_once,
            claim_orders_by_priority_and_filters_queue,
            concurrent_claimers_never_share,
            finish_guarded_by_try_number,
            finishes_in_one_batch_with_their_pids_and_last_lines,
            batched_finishes_and_heartbeats_never_deadlock,
            retries_queue_when_due,
            heartbeat_and_zombies,
            xcom_upsert_and_list,
            logs_append_and_read,
            users_create_get_list_delete,
            users_keep_names_and_email,
            events_after_commit,
            decisions_expand_mapped_tasks_and_write_xcoms_and_logs,
            variables_and_connections_sealed_at_rest,
            claims_respect_pool_slots,
            hand_set_states_reopen_and_sweep,
            clear_task_instances_resets_and_requeues_run,
            delete_dag_and_run_and_heartbeats,
            sensors_wait_poke_and_settle_guarded,
            sensors_queue_for_a_worker_and_reschedule_on_finish,
            concurrent_pokers_apply_each_poke_once,
            clean_history_deletes_old_finished_runs_in_batches,
            clean_history_keeps_runs_cleared_meanwhile,
            import_history_writes_finished_runs,
            listings_page_runs_in_order_with_their_total,
            listings_page_task_instances_in_order_with_their_total,
            listings_page_dags_in_order_with_their_total,
        );
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::run_on($backend, $crate::conformance::$case).await;
            }
        )*
    };
}

// --- building blocks ----------------------------------------------------------------------

/// A fixed instant, so cases control time instead of waiting for it. Whole seconds: every
/// backend stores at least microseconds.
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + seconds, 0)
        .single()
        .expect("a fixed instant in 2026 is valid")
}

/// A bash task with every default applied.
pub fn task(task_id: &str, upstream: &[&str]) -> Task {
    Task {
        task_id: task_id.to_string(),
        kind: TaskKind::Bash {
            command: format!("echo {task_id}"),
        },
        upstream: upstream.iter().map(|s| s.to_string()).collect(),
        trigger_rule: TriggerRule::AllSuccess,
        retries: 0,
        retry_delay: 300.0,
        retry_exponential_backoff: None,
        max_retry_delay: 86_400.0,
        execution_timeout: None,
        depends_on_past: false,
        wait_for_downstream: false,
        pool: "default_pool".to_string(),
        pool_slots: 1,
        priority_weight: 1,
        queue: "default".to_string(),
        env: BTreeMap::new(),
        cwd: None,
        do_xcom_push: true,
        branch: false,
        expand: None,
        owner: "airflow".to_string(),
        email: Vec::new(),
        email_on_failure: false,
        email_on_retry: false,
        on_failure: Vec::new(),
        on_success: Vec::new(),
        on_retry: Vec::new(),
        on_execute: Vec::new(),
        doc_md: None,
    }
}

/// A DAG of `tasks`, each depending on the one before.
pub fn chain_dag(dag_id: &str, tasks: &[&str]) -> Dag {
    let tasks = tasks
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let upstream: Vec<&str> = if i == 0 {
                Vec::new()
            } else {
                vec![tasks[i - 1]]
            };
            task(id, &upstream)
        })
        .collect();
    Dag {
        dag_id: dag_id.to_string(),
        description: Some(format!("{dag_id} for the conformance suite")),
        schedule: Schedule::Cron("0 0 * * *".to_string()),
        start_date: Some(at(0)),
        end_date: None,
        timezone: "UTC".to_string(),
        catchup: false,
        data_intervals: true,
        dagrun_timeout: None,
        max_active_runs: 16,
        max_active_tasks: 16,
        is_paused_upon_creation: None,
        tags: vec!["conformance".to_string()],
        owner: "airflow".to_string(),
        params: BTreeMap::new(),
        on_success: Vec::new(),
        on_failure: Vec::new(),
        doc_md: None,
        tasks,
        groups: Vec::new(),
        fileloc: format!("dags/{dag_id}.yaml"),
        python_source: None,
        python_callbacks: Default::default(),
    }
}

/// A manual run of every task of `dag`, created at `now`.
pub fn new_run(dag: &Dag, run_id: &str, now: DateTime<Utc>) -> NewRun {
    NewRun {
        dag_id: dag.dag_id.clone(),
        run_id: run_id.to_string(),
        run_type: RunType::Manual,
        logical_date: Some(now),
        data_interval_start: Some(now),
        data_interval_end: Some(now),
        conf: json!({"source": "conformance"}),
        version: "v1".to_string(),
        now,
        tasks: dag
            .tasks
            .iter()
            .map(|t| NewTaskInstance::of(t, t.priority_weight))
            .collect(),
    }
}

fn claim(worker_id: &str, queues: &[&str], limit: usize, now: DateTime<Utc>) -> Claim {
    Claim {
        worker_id: worker_id.to_string(),
        hostname: format!("{worker_id}.host"),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        limit,
        now,
    }
}

/// Queue every task instance still in `none` (and start the run), as a scheduler would.
async fn queue_all(store: &dyn Store, run: i64, now: DateTime<Utc>) -> usize {
    let decide = |snapshot: &RunSnapshot| RunDecision {
        run_state: Some(RunState::Running),
        transitions: snapshot
            .task_instances
            .iter()
            .filter(|ti| ti.state == TaskState::None)
            .map(|ti| Transition {
                ti: ti.id,
                from: TaskState::None,
                to: TaskState::Queued,
            })
            .collect(),
        ..RunDecision::default()
    };
    store
        .schedule_run(run, now, SnapshotXcoms::Omitted, &decide)
        .await
        .expect("schedule_run")
        .queued
}

/// A run of a one-task DAG with that task claimed by `worker`; returns (run, ti).
async fn running_task(store: &dyn Store, run_id: &str, worker: &str) -> (i64, i64) {
    let dag = chain_dag("single", &["only"]);
    store.sync_dag(&dag, "v1", at(0)).await.expect("sync_dag");
    let run = store
        .create_run(&new_run(&dag, run_id, at(0)))
        .await
        .expect("create_run")
        .expect("new run");
    queue_all(store, run.id, at(1)).await;
    let tis = store.task_instances(run.id).await.expect("task_instances");
    let ti = tis[0].id;
    // Other cases' instances may be queued too: claim until this one is ours.
    loop {
        let claimed = store
            .claim_task_instances(&claim(worker, &["default"], 10, at(2)))
            .await
            .expect("claim");
        assert!(!claimed.is_empty(), "the task instance was never claimed");
        if claimed.iter().any(|c| c.ti.id == ti) {
            return (run.id, ti);
        }
    }
}

fn finish(ti: i64, try_number: u32, state: TaskState, end: DateTime<Utc>) -> Finish {
    Finish {
        ti,
        try_number,
        state,
        end_date: end,
        next_retry_at: None,
        xcoms: Vec::new(),
        pid: None,
        log: Vec::new(),
    }
}

/// A running try's output of only its pid.
fn pid_of(ti: i64, try_number: u32, pid: u32) -> TryOutput<'static> {
    TryOutput {
        ti,
        try_number,
        pid: Some(pid),
        lines: &[],
    }
}

// --- DAGs -----------------------------------------------------------------------------------

pub async fn dags_sync_list_get(store: Arc<dyn Store>) {
    let b = chain_dag("b_dag", &["extract", "load"]);
    let a = chain_dag("a_dag", &["only"]);
    store.sync_dag(&b, "b1", at(10)).await.expect("sync b");
    store.sync_dag(&a, "a1", at(11)).await.expect("sync a");

    let dags = store.list_dags().await.expect("list_dags");
    let ids: Vec<&str> = dags.iter().map(|d| d.dag_id.as_str()).collect();
    assert_eq!(ids, ["a_dag", "b_dag"], "ordered by id");

    let got = store
        .get_dag("b_dag")
        .await
        .expect("get_dag")
        .expect("b_dag exists");
    assert_eq!(*got.dag, b);
    assert_eq!(got.version, "b1");
    assert_eq!(got.fileloc, "dags/b_dag.yaml");
    assert_eq!(got.last_parsed_at, at(10));
    assert!(got.is_active);
    assert!(!got.is_paused);
    assert!(store.get_dag("missing").await.expect("get_dag").is_none());

    // A new version becomes current; the old one stays readable for the runs that use it.
    let mut b2 = b.clone();
    b2.tasks.push(task("report", &["load"]));
    store.sync_dag(&b2, "b2", at(20)).await.expect("sync b2");
    let got = store
        .get_dag("b_dag")
        .await
        .expect("get_dag")
        .expect("b_dag exists");
    assert_eq!(got.version, "b2");
    assert_eq!(got.dag.tasks.len(), 3);
    assert_eq!(got.last_parsed_at, at(20));
    let old = store
        .get_dag_version("b_dag", "b1")
        .await
        .expect("get_dag_version")
        .expect("b1 kept");
    assert_eq!(*old, b);
    let new = store
        .get_dag_version("b_dag", "b2")
        .await
        .expect("get_dag_version")
        .expect("b2 stored");
    assert_eq!(*new, b2);
    // Read twice: the second read comes from the cache and is the same definition.
    let again = store
        .get_dag_version("b_dag", "b2")
        .await
        .expect("get_dag_version")
        .expect("b2 stored");
    assert_eq!(*again, b2);
    assert!(
        store
            .get_dag_version("b_dag", "nope")
            .await
            .expect("get_dag_version")
            .is_none()
    );

    // Re-syncing an existing version changes nothing about it.
    store.sync_dag(&b2, "b2", at(30)).await.expect("re-sync b2");
    assert_eq!(store.list_dags().await.expect("list_dags").len(), 2);
}

pub async fn dag_paused_upon_creation_and_pause(store: Arc<dyn Store>) {
    // A DAG that does not say starts unpaused here: the DAG folder, not the store, applies
    // `core.dags_are_paused_at_creation` (Airflow's default, paused) to files that do not say.
    let unsaid = chain_dag("unsaid", &["only"]);
    assert_eq!(unsaid.is_paused_upon_creation, None);
    store.sync_dag(&unsaid, "v1", at(0)).await.expect("sync");
    let got = store.get_dag("unsaid").await.expect("get").expect("exists");
    assert!(!got.is_paused);

    let mut dag = chain_dag("careful", &["only"]);
    dag.is_paused_upon_creation = Some(true);
    store.sync_dag(&dag, "v1", at(0)).await.expect("sync");
    let got = store
        .get_dag("careful")
        .await
        .expect("get")
        .expect("exists");
    assert!(got.is_paused, "paused upon creation");

    store.unpause_dag("careful").await.expect("unpause");
    assert!(
        !store
            .get_dag("careful")
            .await
            .expect("get")
            .expect("exists")
            .is_paused
    );

    // An existing DAG keeps the flag users chose, whatever the file says.
    store.sync_dag(&dag, "v2", at(1)).await.expect("re-sync");
    assert!(
        !store
            .get_dag("careful")
            .await
            .expect("get")
            .expect("exists")
            .is_paused
    );

    store.pause_dag("careful").await.expect("pause");
    assert!(
        store
            .get_dag("careful")
            .await
            .expect("get")
            .expect("exists")
            .is_paused
    );
    let mut relaxed = dag.clone();
    relaxed.is_paused_upon_creation = Some(false);
    store
        .sync_dag(&relaxed, "v3", at(2))
        .await
        .expect("re-sync");
    assert!(
        store
            .get_dag("careful")
            .await
            .expect("get")
            .expect("exists")
            .is_paused
    );

    let missing = store.pause_dag("missing").await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "pausing a missing DAG: {missing:?}"
    );
}

/// A decision that queues every task instance in `none` and starts the run.
fn queue_everything(snapshot: &RunSnapshot) -> RunDecision {
    RunDecision {
        run_state: Some(RunState::Running),
        transitions: snapshot
            .task_instances
            .iter()
            .filter(|ti| ti.state == TaskState::None)
            .map(|ti| Transition {
                ti: ti.id,
                from: TaskState::None,
                to: TaskState::Queued,
            })
            .collect(),
        ..RunDecision::default()
    }
}

pub async fn paused_dag_runs_wait_and_unpause_names_them(store: Arc<dyn Store>) {
    let dag = chain_dag("held", &["first", "second"]);
    store.sync_dag(&dag, "v1", at(0)).await.expect("sync");
    let waiting = store
        .create_run(&new_run(&dag, "waiting", at(1)))
        .await
        .expect("create")
        .expect("new");
    let done = store
        .create_run(&new_run(&dag, "done", at(2)))
        .await
        .expect("create")
        .expect("new");
    store
        .set_run_state(done.id, RunState::Success, at(3))
        .await
        .expect("mark done");
    store.pause_dag("held").await.expect("pause");

    // Not decided while paused: decide is not even called, and nothing changes.
    let called = std::sync::atomic::AtomicBool::new(false);
    let decide = |snapshot: &RunSnapshot| {
        called.store(true, std::sync::atomic::Ordering::SeqCst);
        queue_everything(snapshot)
    };
    let outcome = store
        .schedule_run(waiting.id, at(4), SnapshotXcoms::Omitted, &decide)
        .await
        .expect("schedule_run");
    assert!(outcome.paused, "{outcome:?}");
    assert_eq!((outcome.applied, outcome.queued), (0, 0));
    assert_eq!(outcome.run_state, Some(RunState::Queued));
    assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
    let run = store
        .get_run_by_key(waiting.id)
        .await
        .expect("get")
        .expect("run");
    assert_eq!(run.state, RunState::Queued, "the run waits, queued");
    assert!(
        store
            .task_instances(waiting.id)
            .await
            .expect("tis")
            .iter()
            .all(|ti| ti.state == TaskState::None)
    );
    assert!(
        !store
            .unfinished_runs()
            .await
            .expect("unfinished")
            .contains(&waiting.id),
        "a scheduler's poll does not pick a paused DAG's runs"
    );

    // Unpausing names the unfinished runs (not the finished one) in events, after commit.
    let mut events = store.subscribe();
    store.unpause_dag("held").await.expect("unpause");
    assert_eq!(
        next_event(&mut events).await,
        StoreEvent::RunChanged { run: waiting.id }
    );
    assert!(
        events.try_recv().is_err(),
        "only the unfinished run is named"
    );
    assert!(
        !store
            .get_dag("held")
            .await
            .expect("get")
            .expect("dag")
            .is_paused
    );
    assert!(
        store
            .unfinished_runs()
            .await
            .expect("unfinished")
            .contains(&waiting.id)
    );
    let outcome = store
        .schedule_run(waiting.id, at(5), SnapshotXcoms::Omitted, &queue_everything)
        .await
        .expect("schedule_run");
    assert!(!outcome.paused);
    assert_eq!(outcome.queued, 2);

    // Pausing a running run's DAG holds its next decision too: the claimed try may finish,
    // but nothing new is queued.
    let claimed = store
        .claim_task_instances(&claim("w1", &["default"], 1, at(6)))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    store.pause_dag("held").await.expect("pause again");
    let ti = claimed[0].ti.id;
    assert!(
        store
            .finish_task_instance(&finish(ti, 1, TaskState::Success, at(7)))
            .await
            .expect("finish"),
        "a running try finishes while its DAG is paused"
    );
    let outcome = store
        .schedule_run(waiting.id, at(8), SnapshotXcoms::Omitted, &decide)
        .await
        .expect("schedule_run");
    assert!(outcome.paused);
    assert_eq!(outcome.run_state, Some(RunState::Running));

    // Pause and unpause of a missing DAG are NotFound.
    for missing in [
        store.pause_dag("ghost").await,
        store.unpause_dag("ghost").await,
    ] {
        assert!(
            matches!(missing, Err(StoreError::NotFound(_))),
            "{missing:?}"
        );
    }
}

pub async fn paused_dag_retries_and_sensors_wait(store: Arc<dyn Store>) {
    // A retry that falls due while its DAG is paused waits for the unpause.
    let (run, ti) = running_task(store.as_ref(), "retried", "w1").await;
    let mut retry = finish(ti, 1, TaskState::UpForRetry, at(10));
    retry.next_retry_at = Some(at(20));
    assert!(store.finish_task_instance(&retry).await.expect("finish"));
    store.pause_dag("single").await.expect("pause");
    assert_eq!(
        store.next_retry_at().await.expect("next"),
        None,
        "nothing to wake for"
    );
    assert!(
        store
            .queue_due_retries(at(30))
            .await
            .expect("queue")
            .is_empty()
    );
    let got = store.get_task_instance(ti).await.expect("get").expect("ti");
    assert_eq!((got.state, got.try_number), (TaskState::UpForRetry, 1));
    store.unpause_dag("single").await.expect("unpause");
    assert_eq!(store.next_retry_at().await.expect("next"), Some(at(20)));
    assert_eq!(store.queue_due_retries(at(30)).await.expect("queue"), [run]);
    let got = store.get_task_instance(ti).await.expect("get").expect("ti");
    assert_eq!((got.state, got.try_number), (TaskState::Queued, 2));

    // A waiting sensor of a paused DAG is listed as such, and a poke in flight is refused.
    let (_, sensor) = waiting_sensor(&*store, "sensed", at(10)).await;
    store.pause_dag("sensing").await.expect("pause");
    let paused = |waiting: Vec<store::WaitingSensor>| {
        waiting
            .into_iter()
            .find(|w| w.ti.id == sensor)
            .map(|w| w.dag_paused)
    };
    assert_eq!(
        paused(store.waiting_sensors(None).await.expect("waiting")),
        Some(true)
    );
    let refused = store
        .record_pokes(&[poke(
            sensor,
            1,
            0,
            at(11),
            PokeOutcome::Settle(TaskState::Success),
        )])
        .await
        .expect("poke");
    assert_eq!(refused, [false]);
    let got = store
        .get_task_instance(sensor)
        .await
        .expect("get")
        .expect("ti");
    assert_eq!(got.state, TaskState::UpForReschedule);
    store.unpause_dag("sensing").await.expect("unpause");
    assert_eq!(
        paused(store.waiting_sensors(None).await.expect("waiting")),
        Some(false)
    );
    let applied = store
        .record_pokes(&[poke(
            sensor,
            1,
            0,
            at(12),
            PokeOutcome::Settle(TaskState::Success),
        )])
        .await
        .expect("poke");
    assert_eq!(applied, [true]);
}

pub async fn runs_keep_who_triggered_them(store: Arc<dyn Store>) {
    let dag = chain_dag("asked", &["only"]);
    store.sync_dag(&dag, "v1", at(0)).await.expect("sync");
    let by_ana = store
        .create_run_triggered_by(&new_run(&dag, "by_ana", at(1)), "ana")
        .await
        .expect("create")
        .expect("new");
    assert_eq!(by_ana.triggering_user_name.as_deref(), Some("ana"));
    let unasked = store
        .create_run(&new_run(&dag, "scheduled", at(2)))
        .await
        .expect("create")
        .expect("new");
    assert_eq!(unasked.triggering_user_name, None);
    let read = store
        .get_run("asked", "by_ana")
        .await
        .expect("get")
        .expect("run");
    assert_eq!(read.triggering_user_name.as_deref(), Some("ana"));
    // A duplicate run id is refused whoever asks.
    assert!(
        store
            .create_run_triggered_by(&new_run(&dag, "by_ana", at(3)), "bo")
            .await
            .expect("create")
            .is_none()
    );

    // Where the DAG's schedule stands: its newest scheduled run's logical date.
    assert_eq!(
        store
            .get_dag("asked")
            .await
            .expect("get")
            .expect("dag")
            .last_scheduled_logical_date,
        None,
        "manual runs do not move the schedule"
    );
    for (run_id, day) in [
        ("scheduled__a", 10),
        ("scheduled__b", 30),
        ("scheduled__c", 20),
    ] {
        let mut scheduled = new_run(&dag, run_id, at(day));
        scheduled.run_type = RunType::Scheduled;
        store
            .create_run(&scheduled)
            .await
            .expect("create")
            .expect("new");
    }
    assert_eq!(
        store
            .get_dag("asked")
            .await
            .expect("get")
            .expect("dag")
            .last_scheduled_logical_date,
        Some(at(30))
    );
    let listed = store.list_dags().await.expect("list");
    assert_eq!(
        listed
            .iter()
            .find(|d| d.dag_id == "asked")
            .and_then(|d| d.last_scheduled_logical_date),
        Some(at(30))
    );
}

pub async fn dag_deactivate(store: Arc<dyn Store>) {
    let one = chain_dag("one", &["t"]);
    let two = chain_dag("two", &["t"]);
    store.sync_dag(&one, "v1", at(0)).await.expect("sync one");
    store.sync_dag(&two, "v1", at(0)).await.expect("sync two");

    store
        .deactivate_dags(&["one".to_string(), "ghost".to_string()])
        .await
        .expect("deactivate");
    store
        .deactivate_dags(&[])
        .await
        .expect("deactivate nothing");
    let dags = store.list_dags().await.expect("list");
    assert_eq!(dags.len(), 2, "inactive DAGs are still listed");
    assert!(!dags[0].is_active, "one is inactive");
    assert!(dags[1].is_active, "two is untouched");

    // Its file came back.
    store.sync_dag(&one, "v1", at(5)).await.expect("re-sync");
    assert!(
        store
            .get_dag("one")
            .await
            .expect("get")
            .expect("exists")
            .is_active
    );
}

pub async fn import_errors_record_replace_clear(store: Arc<dyn Store>) {
    assert!(store.list_import_errors().await.expect("list").is_empty());
    store
        .record_import_error("dags/b.yaml", "b.yaml:1:1: bad", at(1))
        .await
        .expect("record b");
    store
        .record_import_error("dags/a.yaml", "a.yaml:2:3: worse", at(2))
        .await
        .expect("record a");
    store
        .record_import_error("dags/b.yaml", "b.yaml:4:1: still bad", at(3))
        .await
        .expect("replace b");

    let errors = store.list_import_errors().await.expect("list");
    assert_eq!(errors.len(), 2, "replaced, not added: {errors:?}");
    assert_eq!(errors[0].filename, "dags/a.yaml");
    assert_eq!(errors[1].filename, "dags/b.yaml");
    assert_eq!(errors[1].message, "b.yaml:4:1: still bad");
    assert_eq!(errors[1].timestamp, at(3));

    store
        .clear_import_error("dags/b.yaml")
        .await
        .expect("clear b");
    store
        .clear_import_error("dags/none.yaml")
        .await
        .expect("clear nothing");
    let errors = store.list_import_errors().await.expect("list");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].filename, "dags/a.yaml");
}

// --- runs -----------------------------------------------------------------------------------

pub async fn create_run_and_duplicate(store: Arc<dyn Store>) {
    let dag = chain_dag("etl", &["extract", "transform", "load"]);
    store.sync_dag(&dag, "v1", at(0)).await.expect("sync");
    let new = new_run(&dag, "manual__1", at(100));
    let run = store
        .create_run(&new)
        .await
        .expect("create_run")
        .expect("a new run");
    assert_eq!(run.state, RunState::Queued);
    assert_eq!(run.dag_id, "etl");
    assert_eq!(run.run_id, "manual__1");
    assert_eq!(run.run_type, RunType::Manual);
    assert_eq!(run.conf, json!({"source": "conformance"}));
    assert_eq!(run.version, "v1");
    assert_eq!(run.queued_at, at(100));
    assert_eq!(run.logical_date, Some(at(100)));
    assert_eq!(run.start_date, None);
    assert_eq!(run.end_date, None);

    let tis = store.task_instances(run.id).await.expect("task_instances");
    let ids: Vec<&str> = tis.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(ids, ["extract", "transform", "load"], "in task order");
    for ti in &tis {
        assert_eq!(ti.state, TaskState::None);
        assert_eq!(ti.try_number, 0);
        assert_eq!(ti.map_index, -1);
        assert_eq!(ti.run, run.id);
        assert_eq!(ti.run_id, "manual__1");
        assert_eq!(ti.dag_id, "etl");
        assert_eq!(ti.queue, "default");
        assert_eq!(ti.operator, "BashOperator");
        assert_eq!(ti.queued_at, None);
    }
    let one = store
        .get_task_instance(tis[1].id)
        .await
        .expect("get_task_instance")
        .expect("exists");
    assert_eq!(one, tis[1]);

    // The same run_id again: nothing written.
    let mut again = new.clone();
    again
        .tasks
        .push(NewTaskInstance::of(&task("extra", &[]), 1));
    assert!(
        store
            .create_run(&again)
            .await
            .expect("create_run")
            .is_none()
    );
    assert_eq!(store.task_instances(run.id).await.expect("tis").len(), 3);
    assert_eq!(
        store
            .list_runs(&RunFilter::default())
            .await
            .expect("list")
            .len(),
        1
    );

    assert_eq!(
        store.get_run("etl", "manual__1").await.expect("get_run"),
        Some(run.clone())
    );
    assert_eq!(
        store.get_run_by_key(run.id).await.expect("by key"),
        Some(run.clone())
    );
    assert_eq!(store.get_run("etl", "other").await.expect("get_run"), None);
    assert_eq!(
        store.get_run_by_key(run.id + 1000).await.expect("by key"),
        None
    );
}

pub async fn list_and_find_runs(store: Arc<dyn Store>) {
    let etl = chain_dag("etl", &["t"]);
    let other = chain_dag("other", &["t"]);
    let mut keys = Vec::new();
    for (i, (dag, run_type)) in [
        (&etl, RunType::Scheduled),
        (&etl, RunType::Scheduled),
        (&etl, RunType::Manual),
        (&other, RunType::Scheduled),
    ]
    .into_iter()
    .enumerate()
    {
        let seconds = i64::try_from(i).expect("small") * 100;
        let mut new = new_run(dag, &format!("run_{i}"), at(seconds));
        new.run_type = run_type;
        let run = store.create_run(&new).await.expect("create").expect("new");
        keys.push(run.id);
    }
    // The manual run has the newest logical date, but only scheduled runs count.
    assert_eq!(
        store
            .last_scheduled_logical_date("etl")
            .await
            .expect("last"),
        Some(at(100))
    );
    assert_eq!(
        store
            .last_scheduled_logical_date("none")
            .await
            .expect("last"),
        None
    );

    let all = store.list_runs(&RunFilter::default()).await.expect("list");
    let order: Vec<i64> = all.iter().map(|r| r.id).collect();
    assert_eq!(order, [keys[3], keys[2], keys[1], keys[0]], "newest first");

    let etl_runs = store
        .list_runs(&RunFilter {
            dag_id: Some("etl".to_string()),
            limit: Some(2),
            offset: 1,
            ..RunFilter::default()
        })
        .await
        .expect("list");
    let order: Vec<i64> = etl_runs.iter().map(|r| r.id).collect();
    assert_eq!(order, [keys[1], keys[0]], "filtered, offset and limited");

    // Finish one run; it leaves the unfinished list and the state filter finds it.
    let decide = |_: &RunSnapshot| RunDecision {
        run_state: Some(RunState::Failed),
        transitions: Vec::new(),
        ..RunDecision::default()
    };
    store
        .schedule_run(keys[1], at(500), SnapshotXcoms::Omitted, &decide)
        .await
        .expect("schedule");
    let failed = store
        .list_runs(&RunFilter {
            states: vec![RunState::Failed],
            ..RunFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, keys[1]);
    assert_eq!(failed[0].end_date, Some(at(500)));
    assert_eq!(
        store.unfinished_runs().await.expect("unfinished"),
        [keys[0], keys[2], keys[3]],
        "oldest first"
    );
}

pub async fn schedule_run_guarded_transitions(store: Arc<dyn Store>) {
    let dag = chain_dag("etl", &["extract", "transform", "load"]);
    let run = store
        .create_run(&new_run(&dag, "r1", at(0)))
        .await
        .expect("create")
        .expect("new");
    let tis = store.task_instances(run.id).await.expect("tis");
    let (extract, transform, load) = (tis[0].id, tis[1].id, tis[2].id);

    let decide = |snapshot: &RunSnapshot| {
        assert_eq!(snapshot.run.id, run.id);
        assert_eq!(snapshot.run.state, RunState::Queued);
        assert_eq!(snapshot.task_instances.len(), 3);
        RunDecision {
            run_state: Some(RunState::Running),
            transitions: vec![
                Transition {
                    ti: extract,
                    from: TaskState::None,
                    to: TaskState::Queued,
                },
                // Stale: transform is not running, so nothing happens to it.
                Transition {
                    ti: transform,
                    from: TaskState::Running,
                    to: TaskState::Success,
                },
                Transition {
                    ti: load,
                    from: TaskState::None,
                    to: TaskState::Skipped,
                },
            ],
            ..RunDecision::default()
        }
    };
    let outcome = store
        .schedule_run(run.id, at(10), SnapshotXcoms::Omitted, &decide)
        .await
        .expect("schedule");
    assert_eq!(outcome.applied, 2);
    assert_eq!(outcome.queued, 1);
    assert_eq!(outcome.run_state, Some(RunState::Running));

    let tis = store.task_instances(run.id).await.expect("tis");
    assert_eq!(tis[0].state, TaskState::Queued);
    assert_eq!(tis[0].try_number, 1, "queueing starts try 1");
    assert_eq!(tis[0].queued_at, Some(at(10)));
    assert_eq!(
        tis[1].state,
        TaskState::None,
        "stale transition changed nothing"
    );
    assert_eq!(tis[1].try_number, 0);
    assert_eq!(tis[2].state, TaskState::Skipped);
    assert_eq!(tis[2].end_date, Some(at(10)));
    let got = store
        .get_run_by_key(run.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.state, RunState::Running);
    assert_eq!(got.start_date, Some(at(10)));
    assert_eq!(got.end_date, None);

    // The same decision again: every guard fails now, and the run state is already there.
    let outcome = store
        .schedule_run(run.id, at(20), SnapshotXcoms::Omitted, &decide_nothing_new)
        .await
        .expect("again");
    assert_eq!(outcome.applied, 0);
    assert_eq!(outcome.queued, 0);
    assert_eq!(outcome.run_state, Some(RunState::Running));
    let tis_after = store.task_instances(run.id).await.expect("tis");
    assert_eq!(tis_after, tis, "nothing changed");

    // Finishing the run sets its end date; its start date stays.
    let finish_run = |snapshot: &RunSnapshot| {
        assert_eq!(snapshot.run.state, RunState::Running);
        RunDecision {
            run_state: Some(RunState::Success),
            transitions: Vec::new(),
            ..RunDecision::default()
        }
    };
    let outcome = store
        .schedule_run(run.id, at(30), SnapshotXcoms::Omitted, &finish_run)
        .await
        .expect("finish");
    assert_eq!(outcome.run_state, Some(RunState::Success));
    let got = store
        .get_run_by_key(run.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.state, RunState::Success);
    assert_eq!(got.start_date, Some(at(10)));
    assert_eq!(got.end_date, Some(at(30)));

    let missing = store
        .schedule_run(run.id + 1000, at(40), SnapshotXcoms::Omitted, &finish_run)
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "a missing run: {missing:?}"
    );
}

/// Replays the first decision of `schedule_run_guarded_transitions` with guards that no
/// longer hold.
fn decide_nothing_new(snapshot: &RunSnapshot) -> RunDecision {
    RunDecision {
        run_state: Some(RunState::Running),
        transitions: snapshot
            .task_instances
            .iter()
            .map(|ti| Transition {
                ti: ti.id,
                from: TaskState::UpForRetry,
                to: TaskState::Queued,
            })
            .collect(),
        ..RunDecision::default()
    }
}

pub async fn schedule_run_sees_running_runs(store: Arc<dyn Store>) {
    let dag = chain_dag("busy", &["t"]);
    let mut runs = Vec::new();
    for i in 0..3 {
        let run = store
            .create_run(&new_run(&dag, &format!("r{i}"), at(i)))
            .await
            .expect("create")
            .expect("new");
        runs.push(run.id);
    }
    store
        .create_run(&new_run(&chain_dag("other", &["t"]), "r0", at(0)))
        .await
        .expect("create")
        .expect("new");
    let start = |_: &RunSnapshot| RunDecision {
        run_state: Some(RunState::Running),
        transitions: Vec::new(),
        ..RunDecision::default()
    };
    store
        .schedule_run(runs[0], at(10), SnapshotXcoms::Omitted, &start)
        .await
        .expect("start r0");
    store
        .schedule_run(runs[1], at(10), SnapshotXcoms::Omitted, &start)
        .await
        .expect("start r1");

    let seen = std::sync::Mutex::new(None);
    let look = |snapshot: &RunSnapshot| {
        *seen.lock().expect("not poisoned") = Some(snapshot.running_runs_of_dag);
        RunDecision::default()
    };
    let outcome = store
        .schedule_run(runs[2], at(20), SnapshotXcoms::Omitted, &look)
        .await
        .expect("look");
    assert_eq!(*seen.lock().expect("not poisoned"), Some(2));
    assert_eq!(
        outcome.run_state,
        Some(RunState::Queued),
        "no decision, no change"
    );
    assert_eq!(outcome.applied, 0);
}

pub async fn concurrent_schedulers_apply_each_transition_once(store: Arc<dyn Store>) {
    const TASKS: usize = 20;
    let names: Vec<String> = (0..TASKS).map(|i| format!("t{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut dag = chain_dag("raced", &refs);
    for t in &mut dag.tasks {
        t.upstream.clear();
    }
    let run = store
        .create_run(&new_run(&dag, "r1", at(0)))
        .await
        .expect("create")
        .expect("new");
    // Four schedulers react to the same event at once, each deciding to queue everything.
    let mut schedulers = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        schedulers.push(tokio::spawn(async move {
            queue_all(store.as_ref(), run.id, at(1)).await
        }));
    }
    let mut queued = 0;
    for scheduler in schedulers {
        queued += scheduler.await.expect("scheduler finished");
    }
    assert_eq!(
        queued, TASKS,
        "each instance queued by exactly one scheduler"
    );
    let tis = store.task_instances(run.id).await.expect("tis");
    assert!(
        tis.iter()
            .all(|ti| ti.state == TaskState::Queued && ti.try_number == 1),
        "no try counted twice"
    );
}

// --- claims ---------------------------------------------------------------------------------

pub async fn claim_orders_by_priority_and_filters_queue(store: Arc<dyn Store>) {
    let mut dag = chain_dag("prio", &["low", "high", "mid", "gpu", "mid2"]);
    for t in &mut dag.tasks {
        t.upstream.clear();
    }
    dag.tasks[0].priority_weight = 1;
    dag.tasks[1].priority_weight = 10;
    dag.tasks[2].priority_weight = 5;
    dag.tasks[3].priority_weight = 100;
    dag.tasks[3].queue = "gpu".to_string();
    dag.tasks[4].priority_weight = 5;
    let run = store
        .create_run(&new_run(&dag, "r1", at(0)))
        .await
        .expect("create")
        .expect("new");
    assert_eq!(queue_all(store.as_ref(), run.id, at(1)).await, 5);

    let first = store
        .claim_task_instances(&claim("w1", &["default"], 2, at(5)))
        .await
        .expect("claim");
    let ids: Vec<&str> = first.iter().map(|c| c.ti.task_id.as_str()).collect();
    assert_eq!(
        ids,
        ["high", "mid"],
        "priority first, then queued_at and id"
    );
    for claimed in &first {
        assert_eq!(claimed.ti.state, TaskState::Running);
        assert_eq!(claimed.ti.worker_id.as_deref(), Some("w1"));
        assert_eq!(claimed.ti.hostname.as_deref(), Some("w1.host"));
        assert_eq!(claimed.ti.start_date, Some(at(5)));
        assert_eq!(claimed.ti.heartbeat_at, Some(at(5)));
        assert_eq!(claimed.ti.try_number, 1);
        assert_eq!(claimed.run.id, run.id);
        assert_eq!(claimed.run.dag_id, "prio");
        let stored = store
            .get_task_instance(claimed.ti.id)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(stored, claimed.ti);
    }

    let rest = store
        .claim_task_instances(&claim("w2", &["default"], 10, at(6)))
        .await
        .expect("claim");
    let ids: Vec<&str> = rest.iter().map(|c| c.ti.task_id.as_str()).collect();
    assert_eq!(ids, ["mid2", "low"], "the gpu task stays for its own queue");
    assert!(
        store
            .claim_task_instances(&claim("w2", &["default"], 10, at(7)))
            .await
            .expect("claim")
            .is_empty()
    );
    assert!(
        store
            .claim_task_instances(&claim("w3", &[], 10, at(7)))
            .await
            .expect("claim")
            .is_empty(),
        "no queues, no work"
    );
    let gpu = store
        .claim_task_instances(&claim("w3", &["other", "gpu"], 10, at(8)))
        .await
        .expect("claim");
    assert_eq!(gpu.len(), 1);
    assert_eq!(gpu[0].ti.task_id, "gpu");
}

pub async fn concurrent_claimers_never_share(store: Arc<dyn Store>) {
    const TASKS: usize = 200;
    const CLAIMERS: usize = 6;
    let names: Vec<String> = (0..TASKS).map(|i| format!("t{i:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut dag = chain_dag("wide", &refs);
    for t in &mut dag.tasks {
        t.upstream.clear();
    }
    // Room for all of them at once: this case is about claimers, not pools.
    store
        .set_pool(&PoolRecord {
            name: "default_pool".into(),
            slots: 1000,
            description: None,
        })
        .await
        .expect("pool");
    let run = store
        .create_run(&new_run(&dag, "r1", at(0)))
        .await
        .expect("create")
        .expect("new");
    assert_eq!(queue_all(store.as_ref(), run.id, at(1)).await, TASKS);

    let mut claimers = Vec::new();
    for worker in 0..CLAIMERS {
        let store = store.clone();
        claimers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_task_instances(&claim(&format!("w{worker}"), &["default"], 3, at(2)))
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|c| c.ti.id));
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut seen = HashSet::new();
    for claimer in claimers {
        for ti in claimer.await.expect("claimer finished") {
            assert!(seen.insert(ti), "task instance {ti} claimed twice");
        }
    }
    assert_eq!(seen.len(), TASKS, "every task instance claimed");
    let tis = store.task_instances(run.id).await.expect("tis");
    assert!(tis.iter().all(|ti| ti.state == TaskState::Running));
}

// --- finishing, retries, heartbeats ---------------------------------------------------------

pub async fn finish_guarded_by_try_number(store: Arc<dyn Store>) {
    let (run, ti) = running_task(store.as_ref(), "r1", "w1").await;
    store
        .append_try_output(&pid_of(ti, 1, 4242))
        .await
        .expect("set pid");
    assert_eq!(
        store
            .get_task_instance(ti)
            .await
            .expect("get")
            .expect("exists")
            .pid,
        Some(4242)
    );
    // The pid of another try is ignored.
    store
        .append_try_output(&pid_of(ti, 7, 1))
        .await
        .expect("set pid");
    assert_eq!(
        store
            .get_task_instance(ti)
            .await
            .expect("get")
            .expect("exists")
            .pid,
        Some(4242)
    );

    let wrong_try = store
        .finish_task_instance(&finish(ti, 2, TaskState::Success, at(50)))
        .await
        .expect("finish");
    assert!(!wrong_try, "another try's finish changes nothing");
    assert_eq!(
        store
            .get_task_instance(ti)
            .await
            .expect("get")
            .expect("exists")
            .state,
        TaskState::Running
    );

    let mut done = finish(ti, 1, TaskState::Success, at(60));
    done.xcoms = vec![("return_value".to_string(), json!({"rows": 3}))];
    assert!(store.finish_task_instance(&done).await.expect("finish"));
    let stored = store
        .get_task_instance(ti)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stored.state, TaskState::Success);
    assert_eq!(stored.end_date, Some(at(60)));
    assert_eq!(
        store
            .get_xcom(&XcomKey {
                run,
                task_id: "only".to_string(),
                map_index: -1,
                key: "return_value".to_string(),
            })
            .await
            .expect("get_xcom"),
        Some(json!({"rows": 3}))
    );

    // A late duplicate of the same finish: false, and its XComs are not written.
    let mut late = finish(ti, 1, TaskState::Failed, at(70));
    late.xcoms = vec![("late".to_string(), json!(true))];
    assert!(!store.finish_task_instance(&late).await.expect("finish"));
    let stored = store
        .get_task_instance(ti)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stored.state, TaskState::Success);
    assert_eq!(stored.end_date, Some(at(60)));
    assert_eq!(store.list_xcoms(run, None).await.expect("xcoms").len(), 1);
}

pub async fn retries_queue_when_due(store: Arc<dyn Store>) {
    let (run, ti) = running_task(store.as_ref(), "r1", "w1").await;
    assert_eq!(store.next_retry_at().await.expect("next"), None);
    let mut retry = finish(ti, 1, TaskState::UpForRetry, at(10));
    retry.next_retry_at = Some(at(70));
    retry.xcoms = vec![("partial".to_string(), serde_json::json!(1))];
    assert!(store.finish_task_instance(&retry).await.expect("finish"));
    let task_id = store
        .get_task_instance(ti)
        .await
        .expect("get")
        .expect("exists")
        .task_id;
    let key = XcomKey {
        run,
        task_id,
        map_index: -1,
        key: "partial".into(),
    };
    assert_eq!(
        store.get_xcom(&key).await.expect("xcom"),
        Some(serde_json::json!(1))
    );
    let stored = store
        .get_task_instance(ti)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stored.state, TaskState::UpForRetry);
    assert_eq!(stored.next_retry_at, Some(at(70)));
    assert_eq!(store.next_retry_at().await.expect("next"), Some(at(70)));

    assert!(
        store
            .queue_due_retries(at(69))
            .await
            .expect("queue")
            .is_empty(),
        "not yet due"
    );
    assert_eq!(
        store
            .get_task_instance(ti)
            .await
            .expect("get")
            .expect("exists")
            .state,
        TaskState::UpForRetry
    );
    assert_eq!(store.queue_due_retries(at(70)).await.expect("queue"), [run]);
    let stored = store
        .get_task_instance(ti)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stored.state, TaskState::Queued);
    assert_eq!(stored.try_number, 2, "a new try");
    assert_eq!(
        store.get_xcom(&key).await.expect("xcom"),
        None,
        "a retried try starts with its earlier XComs cleared"
    );
    assert_eq!(stored.queued_at, Some(at(70)));
    assert_eq!(stored.next_retry_at, None);
    assert_eq!(stored.worker_id, None);
    assert_eq!(stored.hostname, None);
    assert_eq!(store.next_retry_at().await.expect("next"), None);
    assert!(
        store
            .queue_due_retries(at(80))
            .await
            .expect("queue")
            .is_empty()
    );

    let claimed = store
        .claim_task_instances(&claim("w2", &["default"], 5, at(90)))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].ti.try_number, 2);
    assert_eq!(claimed[0].ti.worker_id.as_deref(), Some("w2"));
    // The first try's finish is stale now.
    assert!(
        !store
            .finish_task_instance(&finish(ti, 1, TaskState::Success, at(95)))
            .await
            .expect("finish")
    );
    assert!(
        store
            .finish_task_instance(&finish(ti, 2, TaskState::Success, at(96)))
            .await
            .expect("finish")
    );
}

pub async fn heartbeat_and_zombies(store: Arc<dyn Store>) {
    let (_, alive) = running_task(store.as_ref(), "r1", "alive").await;
    let (_, dead) = running_task(store.as_ref(), "r2", "dead").await;
    // Both claimed at at(2).
    assert_eq!(
        store.heartbeat("alive", at(100)).await.expect("heartbeat"),
        [store::RunningTry {
            ti: alive,
            try_number: 1
        }],
        "a beat returns the tries it refreshed"
    );
    assert!(
        store
            .heartbeat("nobody", at(100))
            .await
            .expect("heartbeat")
            .is_empty()
    );
    assert_eq!(
        store
            .get_task_instance(alive)
            .await
            .expect("get")
            .expect("exists")
            .heartbeat_at,
        Some(at(100))
    );
    let zombies = store.zombies(at(50)).await.expect("zombies");
    let ids: Vec<i64> = zombies.iter().map(|z| z.id).collect();
    assert_eq!(ids, [dead]);
    assert_eq!(zombies[0].worker_id.as_deref(), Some("dead"));
    assert!(
        store.zombies(at(2)).await.expect("zombies").is_empty(),
        "strictly older"
    );

    // A finished instance is no zombie, however old its heartbeat.
    assert!(
        store
            .finish_task_instance(&finish(dead, 1, TaskState::Failed, at(60)))
            .await
            .expect("finish")
    );
    assert!(store.zombies(at(50)).await.expect("zombies").is_empty());
    assert_eq!(store.zombies(at(101)).await.expect("zombies").len(), 1);
}

// --- XCom and logs --------------------------------------------------------------------------

pub async fn xcom_upsert_and_list(store: Arc<dyn Store>) {
    let (run, ti) = running_task(store.as_ref(), "r1", "w1").await;
    let mut retry = finish(ti, 1, TaskState::UpForRetry, at(10));
    retry.next_retry_at = Some(at(10));
    retry.xcoms = vec![
        ("return_value".to_string(), json!("first")),
        ("b".to_string(), json!([1, 2])),
    ];
    assert!(store.finish_task_instance(&retry).await.expect("finish"));
    store.queue_due_retries(at(10)).await.expect("retry");
    store
        .claim_task_instances(&claim("w1", &["default"], 1, at(11)))
        .await
        .expect("claim");
    let mut done = finish(ti, 2, TaskState::Success, at(20));
    done.xcoms = vec![
        ("return_value".to_string(), json!({"second": 2.5})),
        ("a".to_string(), json!(null)),
    ];
    assert!(store.finish_task_instance(&done).await.expect("finish"));

    let key = |k: &str| XcomKey {
        run,
        task_id: "only".to_string(),
        map_index: -1,
        key: k.to_string(),
    };
    assert_eq!(
        store.get_xcom(&key("return_value")).await.expect("get"),
        Some(json!({"second": 2.5})),
        "overwritten by the later try"
    );
    assert_eq!(
        store.get_xcom(&key("a")).await.expect("get"),
        Some(json!(null))
    );
    assert_eq!(store.get_xcom(&key("missing")).await.expect("get"), None);

    let all = store.list_xcoms(run, None).await.expect("list");
    let keys: Vec<&str> = all.iter().map(|x| x.key.as_str()).collect();
    assert_eq!(
        keys,
        ["a", "return_value"],
        "ordered by task, map index and key; the first try's 'b' was cleared by its retry"
    );
    assert_eq!(all[0].value, json!(null));
    assert_eq!(all[1].timestamp, at(20));
    assert_eq!(all[0].map_index, -1);
    assert_eq!(
        store
            .list_xcoms(run, Some("only"))
            .await
            .expect("list")
            .len(),
        2
    );
    assert!(
        store
            .list_xcoms(run, Some("other"))
            .await
            .expect("list")
            .is_empty()
    );
}

pub async fn finishes_in_one_batch_with_their_pids_and_last_lines(store: Arc<dyn Store>) {
    let (run_a, a) = running_task(store.as_ref(), "r1", "w1").await;
    let (run_b, b) = running_task(store.as_ref(), "r2", "w1").await;
    let line = |text: &str| LogLine {
        timestamp: at(20),
        stream: LogStream::Stdout,
        line: text.to_string(),
    };
    // A line already stored while running, with the pid.
    store
        .append_try_output(&TryOutput {
            lines: &[line("a running")],
            ..pid_of(a, 1, 11)
        })
        .await
        .expect("output");
    let mut events = store.subscribe();
    let applied = store
        .finish_task_instances(&[
            Finish {
                log: vec![line("a last")],
                xcoms: vec![("k".into(), json!(1))],
                ..finish(a, 1, TaskState::Success, at(30))
            },
            // A stale try: refused, but its lines are the try's and kept.
            Finish {
                pid: Some(99),
                log: vec![line("b stale")],
                ..finish(b, 7, TaskState::Success, at(30))
            },
            Finish {
                pid: Some(22),
                log: vec![line("b last")],
                ..finish(b, 1, TaskState::Failed, at(31))
            },
        ])
        .await
        .expect("finish");
    assert_eq!(applied, [true, false, true]);
    let got = |ti| {
        let store = store.clone();
        async move { store.get_task_instance(ti).await.expect("get").expect("ti") }
    };
    let (ga, gb) = (got(a).await, got(b).await);
    assert_eq!((ga.state, ga.pid), (TaskState::Success, Some(11)));
    assert_eq!((gb.state, gb.pid), (TaskState::Failed, Some(22)));
    let texts = |lines: Vec<store::LogRecord>| -> Vec<String> {
        lines.into_iter().map(|l| l.line).collect()
    };
    assert_eq!(
        texts(store.read_log(a, 1, 0, 10).await.expect("log")),
        ["a running", "a last"]
    );
    assert_eq!(
        texts(store.read_log(b, 1, 0, 10).await.expect("log")),
        ["b last"]
    );
    assert_eq!(
        texts(store.read_log(b, 7, 0, 10).await.expect("log")),
        ["b stale"]
    );
    let xcom = store
        .get_xcom(&XcomKey {
            run: run_a,
            task_id: "only".into(),
            map_index: -1,
            key: "k".into(),
        })
        .await
        .expect("xcom");
    assert_eq!(xcom, Some(json!(1)));
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    for expected in [
        StoreEvent::RunChanged { run: run_a },
        StoreEvent::RunChanged { run: run_b },
        StoreEvent::LogAppended { ti: a },
        StoreEvent::LogAppended { ti: b },
    ] {
        assert!(seen.contains(&expected), "{expected:?} in {seen:?}");
    }
    assert_eq!(
        seen.iter()
            .filter(|e| **e == StoreEvent::RunChanged { run: run_b })
            .count(),
        1,
        "one RunChanged per run: {seen:?}"
    );
    assert_eq!(
        store.finish_task_instances(&[]).await.expect("nothing"),
        Vec::<bool>::new()
    );
    let mut by_keys: Vec<(i64, TaskState)> = store
        .task_instances_by_keys(&[b, a, i64::MAX])
        .await
        .expect("by keys")
        .into_iter()
        .map(|t| (t.id, t.state))
        .collect();
    by_keys.sort_by_key(|(id, _)| *id);
    let mut expected = vec![(a, TaskState::Success), (b, TaskState::Failed)];
    expected.sort_by_key(|(id, _)| *id);
    assert_eq!(by_keys, expected, "the keys that exist");
    assert!(
        store
            .task_instances_by_keys(&[])
            .await
            .expect("none")
            .is_empty()
    );
}

/// A worker's heartbeat and a batch of its tries' ends, written at once from two
/// connections, touch the same rows; they must take them in one order.
pub async fn batched_finishes_and_heartbeats_never_deadlock(store: Arc<dyn Store>) {
    const TASKS: usize = 24;
    let names: Vec<String> = (0..TASKS).map(|i| format!("t{i:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut dag = chain_dag("wide", &names);
    for task in &mut dag.tasks {
        task.upstream.clear();
    }
    store.sync_dag(&dag, "v1", at(0)).await.expect("sync_dag");
    for round in 0..5 {
        let run = store
            .create_run(&new_run(&dag, &format!("r{round}"), at(round)))
            .await
            .expect("create_run")
            .expect("new run");
        assert_eq!(queue_all(store.as_ref(), run.id, at(1)).await, TASKS);
        let claimed = store
            .claim_task_instances(&claim("w1", &["default"], TASKS, at(2)))
            .await
            .expect("claim");
        assert_eq!(claimed.len(), TASKS);
        // Ends in the opposite order of the keys, the order a heartbeat would not take.
        let mut finishes: Vec<Finish> = claimed
            .iter()
            .map(|c| finish(c.ti.id, c.ti.try_number, TaskState::Success, at(3)))
            .collect();
        finishes.sort_by_key(|f| std::cmp::Reverse(f.ti));
        let beats = {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    store.heartbeat("w1", at(3)).await.expect("heartbeat");
                }
            })
        };
        let applied = store
            .finish_task_instances(&finishes)
            .await
            .expect("finish");
        assert!(applied.iter().all(|a| *a), "{applied:?}");
        beats.await.expect("heartbeats");
    }
}

pub async fn logs_append_and_read(store: Arc<dyn Store>) {
    let (_, ti) = running_task(store.as_ref(), "r1", "w1").await;
    let line = |i: i64, stream: LogStream| LogLine {
        timestamp: at(i),
        stream,
        line: format!("line {i}"),
    };
    store
        .append_log(
            ti,
            1,
            &[
                line(1, LogStream::System),
                line(2, LogStream::Stdout),
                line(3, LogStream::Stderr),
            ],
        )
        .await
        .expect("append");
    store.append_log(ti, 1, &[]).await.expect("append nothing");
    store
        .append_log(
            ti,
            1,
            &[line(4, LogStream::Stdout), line(5, LogStream::Stdout)],
        )
        .await
        .expect("append");
    store
        .append_log(ti, 2, &[line(9, LogStream::Stdout)])
        .await
        .expect("append try 2");

    let all = store.read_log(ti, 1, 0, 100).await.expect("read");
    let seqs: Vec<i64> = all.iter().map(|l| l.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5], "numbered in order of arrival");
    let lines: Vec<&str> = all.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(lines, ["line 1", "line 2", "line 3", "line 4", "line 5"]);
    assert_eq!(all[0].stream, LogStream::System);
    assert_eq!(all[2].stream, LogStream::Stderr);
    assert_eq!(all[2].timestamp, at(3));

    let tail = store.read_log(ti, 1, 3, 100).await.expect("read");
    assert_eq!(tail.iter().map(|l| l.seq).collect::<Vec<_>>(), [4, 5]);
    let page = store.read_log(ti, 1, 1, 2).await.expect("read");
    assert_eq!(page.iter().map(|l| l.seq).collect::<Vec<_>>(), [2, 3]);
    assert!(
        store
            .read_log(ti, 1, 5, 100)
            .await
            .expect("read")
            .is_empty()
    );

    let second = store.read_log(ti, 2, 0, 100).await.expect("read");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].seq, 1, "each try numbers its own lines");
    assert_eq!(second[0].line, "line 9");
}

// --- users ----------------------------------------------------------------------------------

pub async fn users_create_get_list_delete(store: Arc<dyn Store>) {
    let new = |name: &str, role: &str| NewUser {
        username: name.to_string(),
        password_hash: format!("$argon2id$hash-of-{name}"),
        role: role.to_string(),
        first_name: None,
        last_name: None,
        email: None,
        now: at(5),
    };
    let zoe = store
        .create_user(&new("zoe", "Viewer"))
        .await
        .expect("create zoe");
    let admin = store
        .create_user(&new("admin", "Admin"))
        .await
        .expect("create admin");
    assert_eq!(zoe.username, "zoe");
    assert_eq!(zoe.role, "Viewer");
    assert_eq!(zoe.password_hash, "$argon2id$hash-of-zoe");
    assert_eq!(zoe.created_at, at(5));
    assert_ne!(zoe.id, admin.id);

    match store.create_user(&new("zoe", "Admin")).await {
        Err(StoreError::Conflict(message)) => {
            assert_eq!(message, "user 'zoe' already exists");
        }
        other => panic!("a duplicate username must conflict, got {other:?}"),
    }
    assert_eq!(
        store
            .get_user("zoe")
            .await
            .expect("get")
            .expect("exists")
            .role,
        "Viewer",
        "the duplicate changed nothing"
    );

    assert_eq!(
        store.get_user("admin").await.expect("get"),
        Some(admin.clone())
    );
    assert_eq!(store.get_user("nobody").await.expect("get"), None);
    assert_eq!(
        store.list_users().await.expect("list"),
        [admin, zoe.clone()]
    );

    store.delete_user("admin").await.expect("delete");
    assert_eq!(store.list_users().await.expect("list"), [zoe]);
    match store.delete_user("admin").await {
        Err(StoreError::NotFound(what)) => assert_eq!(what, "user 'admin'"),
        other => panic!("deleting a missing user must be NotFound, got {other:?}"),
    }
}

/// Airflow's first name, last name and email come back as given, from every read; a user
/// without them reads `None`; an email is one user's only, whatever its case, and a second
/// user with it is refused without being created.
pub async fn users_keep_names_and_email(store: Arc<dyn Store>) {
    let ana = store
        .create_user(&NewUser {
            username: "ana".into(),
            password_hash: "$argon2id$hash-of-ana".into(),
            role: "Op".into(),
            first_name: Some("Ana".into()),
            last_name: Some("Lima da Silva".into()),
            email: Some("Ana.Lima@example.org".into()),
            now: at(5),
        })
        .await
        .expect("create ana");
    assert_eq!(
        (
            ana.first_name.as_deref(),
            ana.last_name.as_deref(),
            ana.email.as_deref()
        ),
        (
            Some("Ana"),
            Some("Lima da Silva"),
            Some("Ana.Lima@example.org")
        )
    );
    let bot = store
        .create_user(&NewUser {
            username: "bot".into(),
            password_hash: "$argon2id$hash-of-bot".into(),
            role: "Viewer".into(),
            first_name: None,
            last_name: None,
            email: None,
            now: at(6),
        })
        .await
        .expect("a user without names or email");
    // Users without an email do not clash with each other.
    let bot2 = store
        .create_user(&NewUser {
            username: "bot2".into(),
            password_hash: "$argon2id$hash-of-bot2".into(),
            role: "Viewer".into(),
            first_name: None,
            last_name: None,
            email: None,
            now: at(6),
        })
        .await
        .expect("a second user without an email");
    assert_eq!(
        (bot.first_name, bot.last_name, bot.email),
        (None, None, None)
    );
    assert_eq!(
        store.get_user("ana").await.expect("get"),
        Some(ana.clone()),
        "names and email read back"
    );
    assert_eq!(
        store.list_users().await.expect("list"),
        [
            ana.clone(),
            store.get_user("bot").await.expect("get").expect("bot"),
            bot2
        ]
    );

    match store
        .create_user(&NewUser {
            username: "imposter".into(),
            password_hash: "$argon2id$hash-of-imposter".into(),
            role: "Admin".into(),
            first_name: Some("Ana".into()),
            last_name: None,
            email: Some("ana.lima@EXAMPLE.org".into()),
            now: at(7),
        })
        .await
    {
        Err(StoreError::Conflict(message)) => {
            assert_eq!(
                message,
                "a user with email 'ana.lima@EXAMPLE.org' already exists"
            );
        }
        other => panic!("a taken email must conflict, got {other:?}"),
    }
    assert_eq!(store.get_user("imposter").await.expect("get"), None);
    // Both taken: the username is what is reported.
    match store
        .create_user(&NewUser {
            username: "ana".into(),
            password_hash: "$argon2id$other".into(),
            role: "Admin".into(),
            first_name: None,
            last_name: None,
            email: Some("ana.lima@example.org".into()),
            now: at(7),
        })
        .await
    {
        Err(StoreError::Conflict(message)) => assert_eq!(message, "user 'ana' already exists"),
        other => panic!("a taken username must conflict, got {other:?}"),
    }
    assert_eq!(store.get_user("ana").await.expect("get"), Some(ana));

    // Once its user is gone, the email is free again.
    store.delete_user("ana").await.expect("delete");
    let again = store
        .create_user(&NewUser {
            username: "ana2".into(),
            password_hash: "$argon2id$hash-of-ana2".into(),
            role: "Op".into(),
            first_name: None,
            last_name: None,
            email: Some("ana.lima@example.org".into()),
            now: at(8),
        })
        .await
        .expect("the email is free after the delete");
    assert_eq!(again.email.as_deref(), Some("ana.lima@example.org"));
}

// --- events ---------------------------------------------------------------------------------

/// The next event, failing the case if none comes in time.
async fn next_event(events: &mut tokio::sync::broadcast::Receiver<StoreEvent>) -> StoreEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event within 10 s")
        .expect("the event channel is open")
}

pub async fn events_after_commit(store: Arc<dyn Store>) {
    let mut events = store.subscribe();
    let dag = chain_dag("evented", &["only"]);
    let run = store
        .create_run(&new_run(&dag, "r1", at(0)))
        .await
        .expect("create")
        .expect("new");
    assert_eq!(
        next_event(&mut events).await,
        StoreEvent::RunChanged { run: run.id }
    );
    // What the event announces is committed: another reader sees it.
    assert!(store.get_run_by_key(run.id).await.expect("get").is_some());

    // A duplicate writes nothing and says nothing.
    assert!(
        store
            .create_run(&new_run(&dag, "r1", at(0)))
            .await
            .expect("create")
            .is_none()
    );

    queue_all(store.as_ref(), run.id, at(1)).await;
    // Scheduling announces the queued work, and that the run progressed (for those watching
    // it), never RunChanged: its decision is the run's fixpoint.
    assert_eq!(next_event(&mut events).await, StoreEvent::TasksQueued);
    assert_eq!(
        next_event(&mut events).await,
        StoreEvent::RunProgressed { run: run.id }
    );

    let claimed = store
        .claim_task_instances(&claim("w1", &["default"], 1, at(2)))
        .await
        .expect("claim");
    let ti = claimed[0].ti.id;
    // A claim is progress too: the task is running now.
    assert_eq!(
        next_event(&mut events).await,
        StoreEvent::RunProgressed { run: run.id }
    );
    assert!(
        store
            .finish_task_instance(&finish(ti, 1, TaskState::Success, at(3)))
            .await
            .expect("finish")
    );
    assert_eq!(
        next_event(&mut events).await,
        StoreEvent::RunChanged { run: run.id }
    );
    assert_eq!(
        store
            .get_task_instance(ti)
            .await
            .expect("get")
            .expect("exists")
            .state,
        TaskState::Success
    );

    // A refused finish is silent.
    assert!(
        !store
            .finish_task_instance(&finish(ti, 1, TaskState::Success, at(4)))
            .await
            .expect("finish")
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), events.recv())
            .await
            .is_err(),
        "no event for a change that did not happen"
    );
}

pub async fn decisions_expand_mapped_tasks_and_write_xcoms_and_logs(store: Arc<dyn Store>) {
    let dag = chain_dag("mapped", &["choose", "each"]);
    let run = store
        .create_run(&new_run(&dag, "r1", at(0)))
        .await
        .expect("create")
        .expect("new");
    let tis = store.task_instances(run.id).await.expect("tis");
    let (choose, each) = (tis[0].id, tis[1].id);
    let decide = |snapshot: &RunSnapshot| RunDecision {
        run_state: {
            assert!(snapshot.xcoms.is_empty(), "not asked for");
            Some(RunState::Running)
        },
        transitions: vec![Transition {
            ti: choose,
            from: TaskState::None,
            to: TaskState::Success,
        }],
        xcoms: vec![DecidedXcom {
            task_id: "choose".into(),
            map_index: -1,
            key: "return_value".into(),
            value: json!(["each"]),
        }],
        logs: vec![DecidedLog {
            ti: choose,
            try_number: 1,
            line: LogLine {
                timestamp: at(1),
                stream: LogStream::System,
                line: "chose each".into(),
            },
        }],
        expansions: vec![Expansion { ti: each, count: 3 }],
    };
    let outcome = store
        .schedule_run(run.id, at(1), SnapshotXcoms::Omitted, &decide)
        .await
        .expect("schedule");
    assert_eq!(outcome.expanded, 1);
    let tis = store.task_instances(run.id).await.expect("tis");
    let mapped: Vec<(i32, TaskState)> = tis
        .iter()
        .filter(|ti| ti.task_id == "each")
        .map(|ti| (ti.map_index, ti.state))
        .collect();
    assert_eq!(
        mapped,
        [
            (0, TaskState::None),
            (1, TaskState::None),
            (2, TaskState::None)
        ],
        "the placeholder became index 0 and gained two siblings"
    );
    let key = XcomKey {
        run: run.id,
        task_id: "choose".into(),
        map_index: -1,
        key: "return_value".into(),
    };
    assert_eq!(
        store.get_xcom(&key).await.expect("xcom"),
        Some(json!(["each"]))
    );
    let log = store.read_log(choose, 1, 0, 10).await.expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].line, "chose each");

    // Expanding again is guarded: the placeholder is gone, nothing is added.
    let again = |snapshot: &RunSnapshot| {
        // Asked for, the run's XComs come with the snapshot.
        assert_eq!(snapshot.xcoms.len(), 1);
        assert_eq!(snapshot.xcoms[0].value, json!(["each"]));
        RunDecision {
            expansions: vec![Expansion { ti: each, count: 5 }],
            ..RunDecision::default()
        }
    };
    let outcome = store
        .schedule_run(run.id, at(2), SnapshotXcoms::Included, &again)
        .await
        .expect("schedule");
    assert_eq!(outcome.expanded, 0);
    assert_eq!(store.task_instances(run.id).await.expect("tis").len(), 4);
}

pub async fn variables_and_connections_sealed_at_rest(store: Arc<dyn Store>) {
    let vault = store::secrets::Vault::new(Some(&store::secrets::Vault::generate_key()))
        .expect("fresh key");
    store
        .set_variable(&vault.seal_variable("b_var", "[1, 2]", Some("a list")))
        .await
        .expect("set");
    store
        .set_variable(&vault.seal_variable("a_var", "first", None))
        .await
        .expect("set");
    store
        .set_variable(&vault.seal_variable("a_var", "second", None))
        .await
        .expect("replace");
    let keys: Vec<String> = store
        .list_variables()
        .await
        .expect("list")
        .into_iter()
        .map(|v| v.key)
        .collect();
    assert_eq!(keys, ["a_var", "b_var"]);
    let stored = store
        .get_variable("a_var")
        .await
        .expect("get")
        .expect("exists");
    assert!(stored.is_encrypted);
    assert_ne!(stored.val, "second", "stored sealed");
    assert_eq!(vault.open_variable(&stored).as_deref(), Ok("second"));
    store.delete_variable("a_var").await.expect("delete");
    assert!(store.get_variable("a_var").await.expect("get").is_none());
    assert!(matches!(
        store.delete_variable("a_var").await,
        Err(StoreError::NotFound(_))
    ));

    let connection = store::secrets::Connection::from_uri(
        "warehouse",
        "postgres://ana:s3cret@db.internal:5432/sales?sslmode=require",
    )
    .expect("uri");
    store
        .set_connection(&vault.seal_connection(&connection))
        .await
        .expect("set");
    let stored = store
        .get_connection("warehouse")
        .await
        .expect("get")
        .expect("exists");
    assert_ne!(stored.password.as_deref(), Some("s3cret"), "stored sealed");
    assert_eq!(stored.host.as_deref(), Some("db.internal"));
    assert_eq!(vault.open_connection(&stored), Ok(connection));
    assert_eq!(store.list_connections().await.expect("list").len(), 1);
    store.delete_connection("warehouse").await.expect("delete");
    assert!(matches!(
        store.delete_connection("warehouse").await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn claims_respect_pool_slots(store: Arc<dyn Store>) {
    let small = PoolRecord {
        name: "small".into(),
        slots: 3,
        description: Some("two light or one heavy".into()),
    };
    store.set_pool(&small).await.expect("pool");
    let mut dag = chain_dag("pooled", &["heavy", "light1", "light2", "light3", "other"]);
    for t in &mut dag.tasks {
        t.upstream.clear();
    }
    let mut run = new_run(&dag, "r1", at(0));
    for (ti, (pool, slots, weight)) in run.tasks.iter_mut().zip([
        ("small", 2, 10),
        ("small", 1, 5),
        ("small", 1, 4),
        ("small", 1, 3),
        ("nowhere", 1, 1),
    ]) {
        ti.pool = pool.to_string();
        ti.pool_slots = slots;
        ti.priority_weight = weight;
    }
    let run = store.create_run(&run).await.expect("create").expect("new");
    queue_all(store.as_ref(), run.id, at(1)).await;

    let names = |claimed: &[ClaimedTask]| {
        let mut ids: Vec<String> = claimed.iter().map(|c| c.ti.task_id.clone()).collect();
        ids.sort();
        ids
    };
    // heavy (2) + light1 (1) fill the 3 slots; a pool that does not exist does not limit.
    let first = store
        .claim_task_instances(&claim("w1", &["default"], 10, at(2)))
        .await
        .expect("claim");
    assert_eq!(names(&first), ["heavy", "light1", "other"]);
    assert!(
        store
            .claim_task_instances(&claim("w2", &["default"], 10, at(3)))
            .await
            .expect("claim")
            .is_empty(),
        "the pool is full"
    );
    let stats = store.list_pools().await.expect("pools");
    let small_stats = stats
        .iter()
        .find(|p| p.pool.name == "small")
        .expect("small");
    assert_eq!(
        (small_stats.running_slots, small_stats.queued_slots),
        (3, 2)
    );
    assert!(
        stats
            .iter()
            .any(|p| p.pool.name == "default_pool" && p.pool.slots == 128)
    );

    let heavy = first
        .iter()
        .find(|c| c.ti.task_id == "heavy")
        .expect("heavy");
    assert!(
        store
            .finish_task_instance(&finish(
                heavy.ti.id,
                heavy.ti.try_number,
                TaskState::Success,
                at(4)
            ))
            .await
            .expect("finish")
    );
    let second = store
        .claim_task_instances(&claim("w2", &["default"], 10, at(5)))
        .await
        .expect("claim");
    assert_eq!(names(&second), ["light2", "light3"], "two slots freed");

    assert!(matches!(
        store.delete_pool("default_pool").await,
        Err(StoreError::Conflict(_))
    ));
    store.delete_pool("small").await.expect("delete");
    assert!(matches!(
        store.delete_pool("small").await,
        Err(StoreError::NotFound(_))
    ));
}

// --- operator actions -----------------------------------------------------------------------

pub async fn hand_set_states_reopen_and_sweep(store: Arc<dyn Store>) {
    let dag = chain_dag("marked", &["first", "second", "third"]);
    store.sync_dag(&dag, "v1", at(0)).await.expect("sync_dag");
    let run = store
        .create_run(&new_run(&dag, "mark_me", at(0)))
        .await
        .expect("create_run")
        .expect("new run");
    let mut events = store.subscribe();
    let tis = store.task_instances(run.id).await.expect("task_instances");

    // Mark one instance failed by hand: it ends, the run is told about.
    let marked = store
        .set_task_instance_state(tis[0].id, TaskState::Failed, at(5))
        .await
        .expect("mark failed");
    assert_eq!(marked.state, TaskState::Failed);
    assert_eq!(marked.end_date, Some(at(5)));
    assert_eq!(
        events.recv().await.expect("event"),
        StoreEvent::RunChanged { run: run.id }
    );
    let missing = store
        .set_task_instance_state(i64::MAX, TaskState::Success, at(5))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    // Mark the run failed: unfinished instances are skipped, the finished one stays.
    let failed = store
        .set_run_state(run.id, RunState::Failed, at(6))
        .await
        .expect("mark run failed");
    assert_eq!(failed.state, RunState::Failed);
    assert_eq!(failed.end_date, Some(at(6)));
    let states: Vec<TaskState> = store
        .task_instances(run.id)
        .await
        .expect("task_instances")
        .iter()
        .map(|ti| ti.state)
        .collect();
    assert_eq!(
        states,
        [TaskState::Failed, TaskState::Skipped, TaskState::Skipped]
    );

    // Marking an instance of a finished run reopens the run for the scheduler.
    store
        .set_task_instance_state(tis[0].id, TaskState::Success, at(7))
        .await
        .expect("mark success");
    let reopened = store
        .get_run_by_key(run.id)
        .await
        .expect("get_run")
        .expect("run");
    assert_eq!(reopened.state, RunState::Running);
    assert_eq!(reopened.end_date, None);

    // Mark the run success: every unfinished instance succeeds.
    store
        .set_run_state(run.id, RunState::Success, at(8))
        .await
        .expect("mark run success");
    let tis = store.task_instances(run.id).await.expect("task_instances");
    assert!(
        tis.iter()
            .all(|ti| ti.state == TaskState::Success || ti.state == TaskState::Skipped),
        "{tis:?}"
    );
}

pub async fn clear_task_instances_resets_and_requeues_run(store: Arc<dyn Store>) {
    let (run, ti) = running_task(store.as_ref(), "clear_me", "w1").await;
    let mut done = finish(ti, 1, TaskState::Failed, at(3));
    done.xcoms = vec![("return_value".to_string(), json!(42))];
    assert!(store.finish_task_instance(&done).await.expect("finish"));
    store
        .set_run_state(run, RunState::Failed, at(4))
        .await
        .expect("end the run");

    let cleared = store
        .clear_task_instances(run, &[store::ClearTaskInstance { ti, max_tries: 3 }], at(5))
        .await
        .expect("clear");
    assert_eq!(cleared.len(), 1);
    let after = store
        .get_task_instance(ti)
        .await
        .expect("get")
        .expect("instance");
    assert_eq!(after.state, TaskState::None);
    assert_eq!(after.max_tries, 3);
    assert_eq!(
        after.try_number, 1,
        "the try count is kept; the next queue adds one"
    );
    assert_eq!((after.start_date, after.end_date), (None, None));
    assert!(
        store.list_xcoms(run, None).await.expect("xcoms").is_empty(),
        "a cleared instance's XComs are gone"
    );
    let record = store.get_run_by_key(run).await.expect("get").expect("run");
    assert_eq!(
        record.state,
        RunState::Queued,
        "a cleared finished run runs again"
    );

    // A running instance is cleared too: its worker stops the process on seeing the change,
    // and the old try's end is refused.
    let (run2, ti2) = running_task(store.as_ref(), "clear_running", "w2").await;
    let cleared = store
        .clear_task_instances(
            run2,
            &[store::ClearTaskInstance {
                ti: ti2,
                max_tries: 1,
            }],
            at(5),
        )
        .await
        .expect("clear");
    assert_eq!(cleared.len(), 1);
    let reset = store
        .get_task_instance(ti2)
        .await
        .expect("get")
        .expect("ti");
    assert_eq!((reset.state, reset.worker_id), (TaskState::None, None));
    assert!(
        !store
            .finish_task_instance(&finish(ti2, 1, TaskState::Success, at(6)))
            .await
            .expect("finish"),
        "the cleared try's end is refused"
    );
}

pub async fn delete_dag_and_run_and_heartbeats(store: Arc<dyn Store>) {
    let dag = chain_dag("doomed", &["a", "b"]);
    store.sync_dag(&dag, "v1", at(0)).await.expect("sync_dag");
    let first = store
        .create_run(&new_run(&dag, "one", at(0)))
        .await
        .expect("create_run")
        .expect("run");
    let second = store
        .create_run(&new_run(&dag, "two", at(1)))
        .await
        .expect("create_run")
        .expect("run");
    let filter = store::TaskInstanceFilter {
        dag_id: Some("doomed".into()),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_task_instances(&filter)
            .await
            .expect("list")
            .len(),
        4
    );
    let only_two = store::TaskInstanceFilter {
        dag_id: Some("doomed".into()),
        run_id: Some("two".into()),
        ..Default::default()
    };
    let tis = store.list_task_instances(&only_two).await.expect("list");
    assert_eq!(tis.len(), 2);
    assert!(tis.iter().all(|ti| ti.run == second.id));

    store.delete_run(first.id).await.expect("delete run");
    assert!(store.get_run_by_key(first.id).await.expect("get").is_none());
    assert!(matches!(
        store.delete_run(first.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store
            .list_task_instances(&filter)
            .await
            .expect("list")
            .len(),
        2
    );

    store.delete_dag("doomed").await.expect("delete dag");
    assert!(store.get_dag("doomed").await.expect("get").is_none());
    assert!(
        store
            .get_run_by_key(second.id)
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        store
            .list_task_instances(&filter)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(matches!(
        store.delete_dag("doomed").await,
        Err(StoreError::NotFound(_))
    ));
    // Its file parsed again brings it back.
    store.sync_dag(&dag, "v1", at(9)).await.expect("sync again");
    assert!(store.get_dag("doomed").await.expect("get").is_some());

    assert_eq!(store.latest_heartbeat("scheduler").await.expect("hb"), None);
    store
        .record_heartbeat("scheduler", "s1", "host-a", at(10))
        .await
        .expect("beat");
    store
        .record_heartbeat("scheduler", "s2", "host-b", at(12))
        .await
        .expect("beat");
    store
        .record_heartbeat("scheduler", "s1", "host-a", at(11))
        .await
        .expect("beat");
    assert_eq!(
        store.latest_heartbeat("scheduler").await.expect("hb"),
        Some(at(12))
    );
    assert_eq!(store.latest_heartbeat("worker").await.expect("hb"), None);
}

// --- sensors ----------------------------------------------------------------------------------

/// A run of a one-task DAG whose task a decision set waiting as a sensor at `now`; returns
/// (run, ti).
async fn waiting_sensor(store: &dyn Store, run_id: &str, now: DateTime<Utc>) -> (i64, i64) {
    let dag = chain_dag("sensing", &["wait"]);
    store.sync_dag(&dag, "v1", at(0)).await.expect("sync_dag");
    let run = store
        .create_run(&new_run(&dag, run_id, at(0)))
        .await
        .expect("create_run")
        .expect("new run");
    let wait = |snapshot: &RunSnapshot| RunDecision {
        run_state: Some(RunState::Running),
        transitions: snapshot
            .task_instances
            .iter()
            .filter(|ti| ti.state == TaskState::None)
            .map(|ti| Transition {
                ti: ti.id,
                from: TaskState::None,
                to: TaskState::UpForReschedule,
            })
            .collect(),
        ..RunDecision::default()
    };
    let outcome = store
        .schedule_run(run.id, now, SnapshotXcoms::Omitted, &wait)
        .await
        .expect("schedule_run");
    assert_eq!(outcome.applied, 1);
    assert_eq!(outcome.queued, 0, "a waiting sensor is not queued");
    let ti = store.task_instances(run.id).await.expect("tis")[0].id;
    (run.id, ti)
}

fn poke(
    ti: i64,
    try_number: u32,
    poke_count: u32,
    now: DateTime<Utc>,
    outcome: PokeOutcome,
) -> Poke {
    Poke {
        ti,
        try_number,
        poke_count,
        now,
        outcome,
        log: vec![LogLine {
            timestamp: now,
            stream: LogStream::System,
            line: format!("poke {}", poke_count + 1),
        }],
    }
}

pub async fn sensors_wait_poke_and_settle_guarded(store: Arc<dyn Store>) {
    let (run, ti) = waiting_sensor(&*store, "s1", at(10)).await;
    let got = store.get_task_instance(ti).await.expect("get").expect("ti");
    assert_eq!(got.state, TaskState::UpForReschedule);
    assert_eq!(got.try_number, 1, "waiting starts try 1");
    let progress = store
        .sensor_progress(ti)
        .await
        .expect("progress")
        .expect("ti");
    assert_eq!(
        progress,
        store::SensorProgress {
            next_poke_at: Some(at(10)),
            first_poke_at: None,
            poke_count: 0
        }
    );
    let waiting = store.waiting_sensors(None).await.expect("waiting");
    assert_eq!(waiting.len(), 1);
    assert_eq!((waiting[0].ti.id, waiting[0].run.id), (ti, run));
    assert_eq!(waiting[0].run.run_id, "s1");
    assert_eq!(
        store
            .waiting_sensors(Some(run + 1000))
            .await
            .expect("none")
            .len(),
        0
    );

    // First poke: not yet. The first poke is remembered, the count goes up.
    let applied = store
        .record_pokes(&[poke(
            ti,
            1,
            0,
            at(11),
            PokeOutcome::Wait {
                next_poke_at: at(16),
            },
        )])
        .await
        .expect("poke");
    assert_eq!(applied, [true]);
    // The same poke again (a second scheduler that saw count 0): its guard fails.
    let applied = store
        .record_pokes(&[poke(
            ti,
            1,
            0,
            at(12),
            PokeOutcome::Settle(TaskState::Success),
        )])
        .await
        .expect("stale poke");
    assert_eq!(applied, [false]);
    // A poke of another try changes nothing either.
    let applied = store
        .record_pokes(&[poke(
            ti,
            2,
            1,
            at(12),
            PokeOutcome::Settle(TaskState::Success),
        )])
        .await
        .expect("wrong try");
    assert_eq!(applied, [false]);
    let progress = store
        .sensor_progress(ti)
        .await
        .expect("progress")
        .expect("ti");
    assert_eq!(
        progress,
        store::SensorProgress {
            next_poke_at: Some(at(16)),
            first_poke_at: Some(at(11)),
            poke_count: 1
        }
    );
    let got = store.get_task_instance(ti).await.expect("get").expect("ti");
    assert_eq!(got.state, TaskState::UpForReschedule);
    assert_eq!(got.start_date, Some(at(11)));

    // Second poke: done. The run is announced, the log has both lines.
    let mut events = store.subscribe();
    let applied = store
        .record_pokes(&[poke(
            ti,
            1,
            1,
            at(16),
            PokeOutcome::Settle(TaskState::Success),
        )])
        .await
        .expect("settle");
    assert_eq!(applied, [true]);
    assert_eq!(
        next_event(&mut events).await,
        StoreEvent::RunChanged { run }
    );
    let got = store.get_task_instance(ti).await.expect("get").expect("ti");
    assert_eq!(got.state, TaskState::Success);
    assert_eq!(got.end_date, Some(at(16)));
    assert_eq!(got.try_number, 1);
    let progress = store
        .sensor_progress(ti)
        .await
        .expect("progress")
        .expect("ti");
    assert_eq!(progress.first_poke_at, Some(at(11)), "kept for the record");
    assert_eq!(progress.poke_count, 2);
    assert_eq!(progress.next_poke_at, None);
    let lines: Vec<String> = store
        .read_log(ti, 1, 0, 100)
        .await
        .expect("log")
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert_eq!(
        lines,
        ["poke 1", "poke 2"],
        "only applied pokes write their line"
    );
    assert!(
        store
            .waiting_sensors(None)
            .await
            .expect("waiting")
            .is_empty()
    );
    assert_eq!(
        store.sensor_progress(ti + 1000).await.expect("missing"),
        None
    );
}

pub async fn sensors_queue_for_a_worker_and_reschedule_on_finish(store: Arc<dyn Store>) {
    let (_run, ti) = waiting_sensor(&*store, "s2", at(10)).await;
    // Hand the poke to a worker: queued, same try, not counted as a poke.
    let mut events = store.subscribe();
    let applied = store
        .record_pokes(&[Poke {
            log: Vec::new(),
            ..poke(ti, 1, 0, at(11), PokeOutcome::Queue)
        }])
        .await
        .expect("queue");
    assert_eq!(applied, [true]);
    assert_eq!(next_event(&mut events).await, StoreEvent::TasksQueued);
    let got = store.get_task_instance(ti).await.expect("get").expect("ti");
    assert_eq!((got.state, got.try_number), (TaskState::Queued, 1));
    assert_eq!(got.queued_at, Some(at(11)));

    // The worker pokes and it is not there yet: up_for_reschedule with the next poke time.
    let claimed = store
        .claim_task_instances(&claim("w", &["default"], 10, at(12)))
        .await
        .expect("claim");
    assert!(claimed.iter().any(|c| c.ti.id == ti));
    let finished = store
        .finish_task_instance(&Finish {
            next_retry_at: Some(at(20)),
            ..finish(ti, 1, TaskState::UpForReschedule, at(13))
        })
        .await
        .expect("finish");
    assert!(finished);
    let got = store.get_task_instance(ti).await.expect("get").expect("ti");
    assert_eq!((got.state, got.try_number), (TaskState::UpForReschedule, 1));
    assert_eq!(got.next_retry_at, None, "a reschedule is not a retry");
    assert_eq!(got.end_date, None, "a waiting sensor has not ended");
    let progress = store
        .sensor_progress(ti)
        .await
        .expect("progress")
        .expect("ti");
    assert_eq!(
        progress,
        store::SensorProgress {
            next_poke_at: Some(at(20)),
            first_poke_at: Some(at(12)),
            poke_count: 1
        },
        "the worker's poke counts and its start is the first poke"
    );

    // Second round: queued, claimed, and this time it fails for good (timed out).
    store
        .record_pokes(&[poke(ti, 1, 1, at(20), PokeOutcome::Queue)])
        .await
        .expect("queue again");
    store
        .claim_task_instances(&claim("w", &["default"], 10, at(21)))
        .await
        .expect("claim again");
    let progress = store
        .sensor_progress(ti)
        .await
        .expect("progress")
        .expect("ti");
    assert_eq!(
        progress.first_poke_at,
        Some(at(12)),
        "kept across reschedules"
    );
    assert!(
        store
            .finish_task_instance(&finish(ti, 1, TaskState::Failed, at(22)))
            .await
            .expect("finish")
    );
    let got = store.get_task_instance(ti).await.expect("get").expect("ti");
    assert_eq!(got.state, TaskState::Failed);
    assert_eq!(got.end_date, Some(at(22)));
}

pub async fn concurrent_pokers_apply_each_poke_once(store: Arc<dyn Store>) {
    let mut tis = Vec::new();
    for i in 0..20 {
        tis.push(waiting_sensor(&*store, &format!("c{i}"), at(10)).await.1);
    }
    let pokes = |state: TaskState| -> Vec<Poke> {
        tis.iter()
            .map(|&ti| poke(ti, 1, 0, at(11), PokeOutcome::Settle(state)))
            .collect()
    };
    let (succeed, skip) = (pokes(TaskState::Success), pokes(TaskState::Skipped));
    let (a, b) = tokio::join!(store.record_pokes(&succeed), store.record_pokes(&skip));
    let (a, b) = (a.expect("a"), b.expect("b"));
    for i in 0..tis.len() {
        assert!(a[i] ^ b[i], "poke {i} applied by exactly one poker");
        let got = store
            .get_task_instance(tis[i])
            .await
            .expect("get")
            .expect("ti");
        let expected = if a[i] {
            TaskState::Success
        } else {
            TaskState::Skipped
        };
        assert_eq!(got.state, expected);
        assert_eq!(
            store.read_log(tis[i], 1, 0, 10).await.expect("log").len(),
            1
        );
    }
}

// --- retention and bulk history ---------------------------------------------------------------

const DAY: i64 = 86_400;

/// A finished run of every task of `dag`, as [`store::Admin::import_history`] takes it: each
/// task instance succeeded with three log lines and one XCom, the run ending an hour after its
/// logical date.
fn historic_run(
    dag: &Dag,
    run_id: &str,
    run_type: RunType,
    logical_date: DateTime<Utc>,
) -> store::HistoricRun {
    let end = logical_date + chrono::Duration::hours(1);
    store::HistoricRun {
        dag_id: dag.dag_id.clone(),
        run_id: run_id.to_string(),
        run_type,
        state: RunState::Success,
        logical_date,
        data_interval_start: logical_date,
        data_interval_end: logical_date,
        conf: json!({"source": "history"}),
        version: "v1".to_string(),
        queued_at: logical_date,
        start_date: logical_date + chrono::Duration::seconds(1),
        end_date: end,
        task_instances: dag
            .tasks
            .iter()
            .map(|t| store::HistoricTaskInstance {
                task_id: t.task_id.clone(),
                map_index: -1,
                try_number: 1,
                max_tries: 0,
                state: TaskState::Success,
                queue: t.queue.clone(),
                pool: t.pool.clone(),
                pool_slots: 1,
                priority_weight: 1,
                operator: "BashOperator".to_string(),
                queued_at: logical_date + chrono::Duration::seconds(1),
                start_date: logical_date + chrono::Duration::seconds(2),
                end_date: end,
                log: (1..=3)
                    .map(|i| LogLine {
                        timestamp: logical_date + chrono::Duration::seconds(2 + i),
                        stream: LogStream::Stdout,
                        line: format!("{run_id} {} line {i}", t.task_id),
                    })
                    .collect(),
                xcoms: vec![("return_value".to_string(), json!({"run": run_id}))],
            })
            .collect(),
    }
}

/// Every run with its task instances, log lines and XComs counted, and the heartbeats health
/// reads: what a dry run must leave as it was.
async fn census(store: &dyn Store) -> Vec<(String, String, RunState, usize, usize, usize)> {
    let mut seen = Vec::new();
    for run in store.list_runs(&RunFilter::default()).await.expect("runs") {
        let tis = store.task_instances(run.id).await.expect("tis");
        let mut lines = 0;
        for ti in &tis {
            lines += store
                .read_log(ti.id, ti.try_number.max(1), 0, 1000)
                .await
                .expect("log")
                .len();
        }
        let xcoms = store.list_xcoms(run.id, None).await.expect("xcoms").len();
        seen.push((run.dag_id, run.run_id, run.state, tis.len(), lines, xcoms));
    }
    seen.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    seen
}

/// `clean_history`: old finished runs go with their task instances, logs and XComs, in
/// batches smaller than the work; unfinished and recent runs stay, and so do each DAG's
/// newest scheduled run, its newest run and the run before an unfinished one; stale
/// heartbeats go but each component's newest. A dry run reports the same and changes nothing.
pub async fn clean_history_deletes_old_finished_runs_in_batches(store: Arc<dyn Store>) {
    let dag = chain_dag("kept_history", &["a", "b"]);
    store.sync_dag(&dag, "v1", at(0)).await.expect("sync_dag");
    let lonely = chain_dag("lonely", &["only"]);
    store
        .sync_dag(&lonely, "v1", at(0))
        .await
        .expect("sync_dag");
    // s0..s4: daily scheduled runs, long finished; r: a manual run that ended recently.
    let mut history: Vec<store::HistoricRun> = (0..5)
        .map(|i| historic_run(&dag, &format!("s{i}"), RunType::Scheduled, at(i * DAY)))
        .collect();
    let mut recent = historic_run(&dag, "r", RunType::Manual, at(3 * DAY + 30));
    recent.end_date = at(40 * DAY);
    history.push(recent);
    history.push(historic_run(&lonely, "l0", RunType::Scheduled, at(0)));
    let written = store.import_history(&history).await.expect("import");
    assert_eq!(
        (
            written.dag_runs,
            written.task_instances,
            written.task_logs,
            written.xcom
        ),
        (7, 13, 39, 13)
    );

    // u: an old run that never finished, just after s2 by logical date.
    let mut unfinished = new_run(&dag, "u", at(2 * DAY + 60));
    unfinished.run_type = RunType::Manual;
    store
        .create_run(&unfinished)
        .await
        .expect("create_run")
        .expect("run");
    // m: an old manual run made the ordinary way: claimed, one try finished with an XCom and a
    // log, then marked success.
    let m = store
        .create_run(&new_run(&dag, "m", at(DAY + 30)))
        .await
        .expect("create_run")
        .expect("run");
    queue_all(store.as_ref(), m.id, at(DAY + 31)).await;
    let claimed = store
        .claim_task_instances(&claim("w1", &["default"], 10, at(DAY + 32)))
        .await
        .expect("claim");
    let a = claimed
        .iter()
        .find(|c| c.run.id == m.id && c.ti.task_id == "a")
        .expect("m's task a claimed")
        .ti
        .id;
    let line = LogLine {
        timestamp: at(DAY + 33),
        stream: LogStream::Stdout,
        line: "hello".to_string(),
    };
    store
        .append_log(a, 1, &[line.clone(), line])
        .await
        .expect("append");
    let mut done = finish(a, 1, TaskState::Success, at(DAY + 34));
    done.xcoms = vec![("return_value".to_string(), json!(1))];
    assert!(store.finish_task_instance(&done).await.expect("finish"));
    store
        .set_run_state(m.id, RunState::Success, at(DAY + 35))
        .await
        .expect("mark success");

    for (component, id, beat) in [
        ("worker", "w1", at(DAY)),
        ("worker", "w2", at(2 * DAY)),
        ("scheduler", "s1", at(40 * DAY)),
    ] {
        store
            .record_heartbeat(component, id, "host", beat)
            .await
            .expect("beat");
    }

    let cutoff = at(30 * DAY);
    let batch = std::num::NonZeroUsize::new(2).expect("2 is not 0");
    let before = census(store.as_ref()).await;
    let dry = store
        .clean_history(
            &store::CleanHistory::new(cutoff)
                .with_batch_size(batch)
                .with_mode(store::CleanMode::DryRun),
        )
        .await
        .expect("dry run");
    assert_eq!(
        census(store.as_ref()).await,
        before,
        "a dry run changes nothing"
    );
    assert_eq!(
        store.latest_heartbeat("worker").await.expect("hb"),
        Some(at(2 * DAY))
    );
    // s0, s1, s3 and m go: 8 task instances, 3 * 2 * 3 + 2 log lines, 3 * 2 + 1 XComs; w1.
    let expected = store::HistoryRows {
        dag_runs: 4,
        task_instances: 8,
        task_logs: 20,
        xcom: 7,
        jobs: 1,
    };
    assert_eq!(dry.rows, expected);
    assert_eq!(dry.mode, store::CleanMode::DryRun);
    assert_eq!(
        dry.batches, 4,
        "a batch reads the next two old finished runs: (s0, s1), (s2, s3) and (m) delete, \
         (s4, l0) are both kept and take no transaction; and the heartbeats"
    );

    let ids: HashMap<String, i64> = store
        .list_runs(&RunFilter::default())
        .await
        .expect("runs")
        .into_iter()
        .map(|r| (r.run_id, r.id))
        .collect();
    let gone_tis: Vec<i64> = store
        .task_instances(ids["s0"])
        .await
        .expect("tis")
        .iter()
        .map(|ti| ti.id)
        .collect();

    let report = store
        .clean_history(&store::CleanHistory::new(cutoff).with_batch_size(batch))
        .await
        .expect("clean");
    assert_eq!(
        report.rows, dry.rows,
        "the clean deletes what the dry run counted"
    );
    assert_eq!(report.batches, dry.batches);
    assert_eq!(report.mode, store::CleanMode::Delete);
    assert!(report.longest_batch <= report.elapsed);

    let left = census(store.as_ref()).await;
    let names: Vec<(&str, &str)> = left
        .iter()
        .map(|(dag, run, ..)| (dag.as_str(), run.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("kept_history", "r"),
            ("kept_history", "s2"),
            ("kept_history", "s4"),
            ("kept_history", "u"),
            ("lonely", "l0"),
        ],
        "recent, unfinished, newest scheduled and before-unfinished runs stay"
    );
    for (dag_id, run_id, _, tis, lines, xcoms) in &left {
        let kept = before
            .iter()
            .find(|(d, r, ..)| d == dag_id && r == run_id)
            .expect("a kept run was there before");
        assert_eq!((*tis, *lines, *xcoms), (kept.3, kept.4, kept.5), "{run_id}");
    }
    assert_eq!(
        store
            .last_scheduled_logical_date("kept_history")
            .await
            .expect("last"),
        Some(at(4 * DAY)),
        "the cron position stays"
    );
    for key in ["s0", "s1", "s3", "m"] {
        assert!(
            store.get_run_by_key(ids[key]).await.expect("get").is_none(),
            "{key} is gone"
        );
        assert!(
            store
                .task_instances(ids[key])
                .await
                .expect("tis")
                .is_empty()
        );
        assert!(
            store
                .list_xcoms(ids[key], None)
                .await
                .expect("x")
                .is_empty()
        );
    }
    for ti in gone_tis {
        assert!(store.get_task_instance(ti).await.expect("get").is_none());
        assert!(store.read_log(ti, 1, 0, 100).await.expect("log").is_empty());
    }
    assert_eq!(
        store.latest_heartbeat("worker").await.expect("hb"),
        Some(at(2 * DAY)),
        "each component's newest heartbeat stays"
    );
    assert_eq!(
        store.latest_heartbeat("scheduler").await.expect("hb"),
        Some(at(40 * DAY))
    );

    let again = store
        .clean_history(&store::CleanHistory::new(cutoff))
        .await
        .expect("clean again");
    assert_eq!(
        again.rows,
        store::HistoryRows::default(),
        "nothing is left to go"
    );
    assert_eq!(again.batches, 0);
}

/// A clean racing operators who clear old runs: a run cleared (so unfinished again) keeps its
/// task instances; every other old run goes.
pub async fn clean_history_keeps_runs_cleared_meanwhile(store: Arc<dyn Store>) {
    let dag = chain_dag("raced", &["only"]);
    store.sync_dag(&dag, "v1", at(0)).await.expect("sync_dag");
    let history: Vec<store::HistoricRun> = (0..40)
        .map(|i| historic_run(&dag, &format!("s{i:02}"), RunType::Scheduled, at(i * 3600)))
        .collect();
    store.import_history(&history).await.expect("import");
    let mut runs = store.list_runs(&RunFilter::default()).await.expect("runs");
    runs.sort_by_key(|r| r.id);
    let mut targets = Vec::new();
    for run in &runs {
        let ti = store.task_instances(run.id).await.expect("tis")[0].id;
        targets.push((run.id, ti));
    }
    let request = store::CleanHistory::new(at(30 * DAY))
        .with_batch_size(std::num::NonZeroUsize::new(1).expect("1 is not 0"));
    let cleaner = {
        let store = store.clone();
        tokio::spawn(async move { store.clean_history(&request).await })
    };
    // Newest first, towards the cleaner coming from the oldest.
    let mut cleared = HashSet::new();
    for (run, ti) in targets.iter().rev().step_by(2) {
        let done = store
            .clear_task_instances(
                *run,
                &[store::ClearTaskInstance {
                    ti: *ti,
                    max_tries: 1,
                }],
                at(31 * DAY),
            )
            .await
            .expect("clear");
        if !done.is_empty() {
            cleared.insert(*run);
        }
    }
    let report = cleaner.await.expect("join").expect("clean");
    for (at, (run, _)) in targets.iter().enumerate() {
        let record = store.get_run_by_key(*run).await.expect("get");
        if cleared.contains(run) {
            let record = record.expect("a cleared run is kept");
            assert_eq!(record.state, RunState::Queued);
            assert_eq!(store.task_instances(*run).await.expect("tis").len(), 1);
        } else if let Some(record) = record {
            assert_eq!(record.state, RunState::Success);
            let newest = at + 1 == targets.len();
            let before_cleared = targets
                .get(at + 1)
                .is_some_and(|(next, _)| cleared.contains(next));
            assert!(
                newest || before_cleared,
                "{} stays only as the newest run or the one before a cleared run",
                record.run_id
            );
        }
    }
    let left = store
        .list_runs(&RunFilter::default())
        .await
        .expect("runs")
        .len() as u64;
    assert_eq!(
        report.rows.dag_runs + left,
        40,
        "every run is kept or counted"
    );
    assert_eq!(report.rows.task_instances, report.rows.dag_runs);
}

/// `import_history` writes finished runs as given, in one go, skips runs stored already, and
/// refuses unfinished or repeated ones whole.
pub async fn import_history_writes_finished_runs(store: Arc<dyn Store>) {
    let dag = chain_dag("imported", &["a", "b"]);
    store.sync_dag(&dag, "v1", at(0)).await.expect("sync_dag");
    let first = historic_run(&dag, "h1", RunType::Scheduled, at(DAY));
    let mut second = historic_run(&dag, "h2", RunType::Backfill, at(2 * DAY));
    second.state = RunState::Failed;
    second.task_instances[1].state = TaskState::UpstreamFailed;
    second.task_instances[1].log.clear();
    second.task_instances[1].xcoms.clear();
    let written = store
        .import_history(&[first.clone(), second.clone()])
        .await
        .expect("import");
    assert_eq!(
        written,
        store::HistoryRows {
            dag_runs: 2,
            task_instances: 4,
            task_logs: 9,
            xcom: 3,
            jobs: 0,
        }
    );

    let run = store
        .get_run("imported", "h1")
        .await
        .expect("get")
        .expect("h1");
    assert_eq!(run.state, RunState::Success);
    assert_eq!(run.run_type, RunType::Scheduled);
    assert_eq!(run.logical_date, Some(at(DAY)));
    assert_eq!(run.start_date, Some(first.start_date));
    assert_eq!(run.end_date, Some(first.end_date));
    assert_eq!(run.conf, json!({"source": "history"}));
    let tis = store.task_instances(run.id).await.expect("tis");
    assert_eq!(
        tis.iter()
            .map(|t| (t.task_id.as_str(), t.state, t.try_number, t.end_date))
            .collect::<Vec<_>>(),
        [
            ("a", TaskState::Success, 1, Some(first.end_date)),
            ("b", TaskState::Success, 1, Some(first.end_date)),
        ]
    );
    let log = store.read_log(tis[1].id, 1, 0, 100).await.expect("log");
    assert_eq!(
        log.iter()
            .map(|l| (l.seq, l.line.as_str()))
            .collect::<Vec<_>>(),
        [(1, "h1 b line 1"), (2, "h1 b line 2"), (3, "h1 b line 3")]
    );
    let xcom = store
        .get_xcom(&XcomKey {
            run: run.id,
            task_id: "b".to_string(),
            map_index: -1,
            key: "return_value".to_string(),
        })
        .await
        .expect("xcom");
    assert_eq!(xcom, Some(json!({"run": "h1"})));
    let failed = store
        .get_run("imported", "h2")
        .await
        .expect("get")
        .expect("h2");
    assert_eq!(failed.state, RunState::Failed);
    assert_eq!(failed.run_type, RunType::Backfill);
    assert!(
        store
            .unfinished_runs()
            .await
            .expect("unfinished")
            .is_empty(),
        "history needs no decision"
    );

    // Stored already: skipped with everything of it; a new one beside it still goes in.
    let third = historic_run(&dag, "h3", RunType::Manual, at(3 * DAY));
    let again = store
        .import_history(&[first.clone(), third])
        .await
        .expect("import again");
    assert_eq!(
        (again.dag_runs, again.task_instances, again.task_logs),
        (1, 2, 6)
    );
    assert_eq!(store.task_instances(run.id).await.expect("tis").len(), 2);

    let mut running = historic_run(&dag, "h4", RunType::Manual, at(4 * DAY));
    running.state = RunState::Running;
    let fifth = historic_run(&dag, "h5", RunType::Manual, at(5 * DAY));
    assert!(matches!(
        store.import_history(&[fifth.clone(), running]).await,
        Err(StoreError::Conflict(_))
    ));
    let mut half = historic_run(&dag, "h6", RunType::Manual, at(6 * DAY));
    half.task_instances[0].state = TaskState::Queued;
    assert!(matches!(
        store.import_history(&[half]).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.import_history(&[fifth.clone(), fifth]).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store
            .get_run("imported", "h5")
            .await
            .expect("get")
            .is_none(),
        "a refused import writes nothing"
    );
    assert_eq!(
        store.import_history(&[]).await.expect("import nothing"),
        store::HistoryRows::default()
    );
}

// --- listings: filtered, sorted, paged and counted by the database --------------------------

/// A history for the listing cases: DAG `alpha` (tags etl and daily, owner ann) with five
/// finished runs `a0`..`a4` (`a1` and `a3` failed, `a4` a backfill, `a2`'s conf names a
/// region) and an unstarted manual run `manual_x`; `beta` (tag etl, owner bob) with `b0` and
/// the failed `b1`; `gamma` (no tags, owner ann, a broken file), no runs. Alpha's finished
/// runs have `extract` and a mapped `load` (three instances in pool `db`, queue `io`; `a1`'s
/// `load[1]` failed on its second try). Returns the runs by run id.
async fn listing_history(store: &dyn Store) -> HashMap<String, store::RunRecord> {
    let mut alpha = chain_dag("alpha", &["extract", "load"]);
    alpha.tags = vec!["etl".to_string(), "daily".to_string()];
    alpha.owner = "ann".to_string();
    let mut beta = chain_dag("beta", &["extract"]);
    beta.tags = vec!["etl".to_string()];
    beta.owner = "bob".to_string();
    let mut gamma = chain_dag("gamma", &["extract"]);
    gamma.tags = Vec::new();
    gamma.owner = "ann".to_string();
    for (i, dag) in [&alpha, &beta, &gamma].into_iter().enumerate() {
        let parsed = at(i64::try_from(i).expect("three DAGs"));
        store.sync_dag(dag, "v1", parsed).await.expect("sync_dag");
    }
    store
        .record_import_error(&gamma.fileloc, "gamma.yaml:1:1: broken", at(3))
        .await
        .expect("import error");

    let mut history = Vec::new();
    for i in 0..5_i64 {
        let run_type = if i == 4 {
            RunType::Backfill
        } else {
            RunType::Scheduled
        };
        let mut run = historic_run(&alpha, &format!("a{i}"), run_type, at(100 * i));
        run.start_date = at(100 * i + 10);
        run.end_date = at(100 * i + 10 + (5 - i) * 10);
        if i == 2 {
            run.conf = json!({"region": "eu"});
        }
        let extract = run.task_instances[0].clone();
        let mut load = run.task_instances[1].clone();
        load.pool = "db".to_string();
        load.queue = "io".to_string();
        run.task_instances = vec![extract];
        for index in 0..3 {
            let mut mapped = load.clone();
            mapped.map_index = index;
            mapped.xcoms.clear();
            run.task_instances.push(mapped);
        }
        if i == 1 || i == 3 {
            run.state = RunState::Failed;
        }
        if i == 1 {
            run.task_instances[2].state = TaskState::Failed;
            run.task_instances[2].try_number = 2;
        }
        history.push(run);
    }
    history.push(historic_run(&beta, "b0", RunType::Scheduled, at(50)));
    let mut b1 = historic_run(&beta, "b1", RunType::Scheduled, at(250));
    b1.state = RunState::Failed;
    b1.task_instances[0].state = TaskState::Failed;
    history.push(b1);
    store.import_history(&history).await.expect("import");
    store
        .create_run(&new_run(&alpha, "manual_x", at(1000)))
        .await
        .expect("create_run")
        .expect("new run");
    store
        .list_runs(&RunFilter::default())
        .await
        .expect("list_runs")
        .into_iter()
        .map(|run| (run.run_id.clone(), run))
        .collect()
}

/// The run ids of a page of runs, and its total.
async fn run_page(store: &dyn Store, filter: RunFilter) -> (Vec<String>, u64) {
    let page = store.page_runs(&filter).await.expect("page_runs");
    let listed = store.list_runs(&filter).await.expect("list_runs");
    assert_eq!(
        page.items, listed,
        "list_runs is page_runs without the count"
    );
    let ids = page.items.into_iter().map(|run| run.run_id).collect();
    (ids, page.total_entries)
}

fn alpha(filter: RunFilter) -> RunFilter {
    RunFilter {
        dag_id: Some("alpha".to_string()),
        ..filter
    }
}

pub async fn listings_page_runs_in_order_with_their_total(store: Arc<dyn Store>) {
    let runs = listing_history(store.as_ref()).await;
    // Fresh planner statistics change plans, never answers.
    store
        .refresh_statistics()
        .await
        .expect("refresh_statistics");
    let store = store.as_ref();
    let check = async |filter: RunFilter, ids: &[&str], total: u64| {
        let (found, counted) = run_page(store, filter.clone()).await;
        let found: Vec<&str> = found.iter().map(String::as_str).collect();
        assert_eq!((found.as_slice(), counted), (ids, total), "{filter:?}");
    };

    // Newest first by default; the total counts every match, not the page.
    check(
        alpha(RunFilter {
            limit: Some(2),
            ..RunFilter::default()
        }),
        &["manual_x", "a4"],
        6,
    )
    .await;
    let by_id = Sort::ascending(RunOrder::Id);
    check(
        alpha(RunFilter {
            order: by_id,
            limit: Some(10),
            offset: 4,
            ..RunFilter::default()
        }),
        &["a4", "manual_x"],
        6,
    )
    .await;
    // A page past the end is empty and still counted.
    check(
        alpha(RunFilter {
            order: by_id,
            limit: Some(10),
            offset: 10,
            ..RunFilter::default()
        }),
        &[],
        6,
    )
    .await;
    check(
        RunFilter {
            limit: Some(0),
            ..RunFilter::default()
        },
        &[],
        8,
    )
    .await;

    // Filters.
    let by_run_id = Sort::ascending(RunOrder::RunId);
    let ordered = |filter: RunFilter| RunFilter {
        order: by_run_id,
        ..filter
    };
    check(
        ordered(RunFilter {
            states: vec![RunState::Failed],
            ..RunFilter::default()
        }),
        &["a1", "a3", "b1"],
        3,
    )
    .await;
    check(
        ordered(alpha(RunFilter {
            run_types: vec![RunType::Backfill, RunType::Manual],
            ..RunFilter::default()
        })),
        &["a4", "manual_x"],
        2,
    )
    .await;
    check(
        ordered(RunFilter {
            run_id_pattern: Some("A%3".to_string()),
            ..RunFilter::default()
        }),
        &["a3"],
        1,
    )
    .await;
    check(
        ordered(RunFilter {
            run_id_pattern: Some("_1".to_string()),
            ..RunFilter::default()
        }),
        &["a1", "b1"],
        2,
    )
    .await;
    check(
        ordered(RunFilter {
            start_date: TimeRange {
                gte: Some(at(210)),
                lt: Some(at(410)),
                ..TimeRange::default()
            },
            ..RunFilter::default()
        }),
        &["a2", "a3", "b1"],
        3,
    )
    .await;
    check(
        ordered(RunFilter {
            logical_date: TimeRange {
                gt: Some(at(100)),
                lte: Some(at(300)),
                ..TimeRange::default()
            },
            ..RunFilter::default()
        }),
        &["a2", "a3", "b1"],
        3,
    )
    .await;
    check(
        ordered(RunFilter {
            run_after: TimeRange {
                lte: Some(at(50)),
                ..TimeRange::default()
            },
            end_date: TimeRange {
                gte: Some(at(0)),
                ..TimeRange::default()
            },
            ..RunFilter::default()
        }),
        &["a0", "b0"],
        2,
    )
    .await;
    check(
        ordered(RunFilter {
            conf_contains: Some("eu".to_string()),
            ..RunFilter::default()
        }),
        &["a2"],
        1,
    )
    .await;
    check(
        ordered(RunFilter {
            dag_ids: vec!["beta".to_string(), "gamma".to_string()],
            ..RunFilter::default()
        }),
        &["b0", "b1"],
        2,
    )
    .await;

    // Orders: an empty value first ascending, last descending; ties by key.
    check(
        alpha(RunFilter {
            order: Sort::ascending(RunOrder::StartDate),
            limit: Some(2),
            ..RunFilter::default()
        }),
        &["manual_x", "a0"],
        6,
    )
    .await;
    check(
        alpha(RunFilter {
            order: Sort::descending(RunOrder::Duration),
            ..RunFilter::default()
        }),
        &["a0", "a1", "a2", "a3", "a4", "manual_x"],
        6,
    )
    .await;
    check(
        RunFilter {
            order: Sort::descending(RunOrder::RunAfter),
            limit: Some(3),
            ..RunFilter::default()
        },
        &["manual_x", "a4", "a3"],
        8,
    )
    .await;
    check(
        RunFilter {
            order: Sort::ascending(RunOrder::DagId),
            limit: Some(1),
            offset: 6,
            ..RunFilter::default()
        },
        &["b0"],
        8,
    )
    .await;
    // Each DAG's newest runs, in one read.
    let recent: Vec<String> = store
        .recent_runs(
            &["beta".to_string(), "alpha".to_string(), "none".to_string()],
            2,
        )
        .await
        .expect("recent_runs")
        .into_iter()
        .map(|run| run.run_id)
        .collect();
    assert_eq!(recent, ["manual_x", "a4", "b1", "b0"]);
    assert!(
        store
            .recent_runs(&["alpha".to_string()], 0)
            .await
            .expect("recent_runs")
            .is_empty()
    );
    // Pages of an order with ties never overlap: together they are every run once.
    for direction in [SortDirection::Ascending, SortDirection::Descending] {
        let mut seen = Vec::new();
        for offset in (0..8).step_by(3) {
            let (ids, total) = run_page(
                store,
                RunFilter {
                    order: Sort {
                        key: RunOrder::State,
                        direction,
                    },
                    limit: Some(3),
                    offset,
                    ..RunFilter::default()
                },
            )
            .await;
            assert_eq!(total, 8);
            seen.extend(ids);
        }
        seen.sort();
        let mut every: Vec<String> = runs.keys().cloned().collect();
        every.sort();
        assert_eq!(seen, every, "{direction:?}");
    }
}

/// (run id, task id, map index) of a page of task instances, and its total; each instance
/// comes with its run.
async fn instance_page(
    store: &dyn Store,
    filter: TaskInstanceFilter,
) -> (Vec<(String, String, i32)>, u64) {
    let page = store
        .page_task_instances(&filter)
        .await
        .expect("page_task_instances");
    for (ti, run) in &page.items {
        assert_eq!((ti.run, &ti.run_id), (run.id, &run.run_id), "{filter:?}");
    }
    let listed = store
        .list_task_instances(&filter)
        .await
        .expect("list_task_instances");
    let instances: Vec<store::TaskInstanceRecord> =
        page.items.iter().map(|(ti, _)| ti.clone()).collect();
    assert_eq!(
        instances, listed,
        "list_task_instances is the page's instances"
    );
    let ids = instances
        .into_iter()
        .map(|ti| (ti.run_id, ti.task_id, ti.map_index))
        .collect();
    (ids, page.total_entries)
}

pub async fn listings_page_task_instances_in_order_with_their_total(store: Arc<dyn Store>) {
    let runs = listing_history(store.as_ref()).await;
    let store = store.as_ref();
    let key = |run: &str, task: &str, index: i32| (run.to_string(), task.to_string(), index);
    let check = async |filter: TaskInstanceFilter, expected: &[(String, String, i32)], total| {
        let (found, counted) = instance_page(store, filter.clone()).await;
        assert_eq!((found.as_slice(), counted), (expected, total), "{filter:?}");
    };

    // A run's instances, by map index (the default).
    let a1 = runs["a1"].id;
    check(
        TaskInstanceFilter {
            runs: vec![a1],
            ..Default::default()
        },
        &[
            key("a1", "extract", -1),
            key("a1", "load", 0),
            key("a1", "load", 1),
            key("a1", "load", 2),
        ],
        4,
    )
    .await;
    check(
        TaskInstanceFilter {
            dag_id: Some("alpha".to_string()),
            states: vec![TaskState::Failed],
            ..Default::default()
        },
        &[key("a1", "load", 1)],
        1,
    )
    .await;
    check(
        TaskInstanceFilter {
            try_numbers: vec![2],
            ..Default::default()
        },
        &[key("a1", "load", 1)],
        1,
    )
    .await;
    check(
        TaskInstanceFilter {
            run_id: Some("b1".to_string()),
            ..Default::default()
        },
        &[key("b1", "extract", -1)],
        1,
    )
    .await;
    check(
        TaskInstanceFilter {
            runs: vec![runs["a2"].id],
            task_id: Some("load".to_string()),
            mapped: Some(true),
            map_indexes: vec![0, 2],
            ..Default::default()
        },
        &[key("a2", "load", 0), key("a2", "load", 2)],
        2,
    )
    .await;
    check(
        TaskInstanceFilter {
            runs: vec![runs["manual_x"].id, runs["b0"].id],
            mapped: Some(false),
            task_id_pattern: Some("XTR".to_string()),
            ..Default::default()
        },
        &[key("b0", "extract", -1), key("manual_x", "extract", -1)],
        2,
    )
    .await;
    // Every pool-db instance (5 runs × 3), a short last page.
    check(
        TaskInstanceFilter {
            pools: vec!["db".to_string()],
            queues: vec!["io".to_string()],
            order: Sort::ascending(TaskInstanceOrder::Id),
            limit: Some(4),
            offset: 12,
            ..Default::default()
        },
        &[
            key("a4", "load", 0),
            key("a4", "load", 1),
            key("a4", "load", 2),
        ],
        15,
    )
    .await;
    check(
        TaskInstanceFilter {
            dag_id: Some("alpha".to_string()),
            limit: Some(5),
            offset: 100,
            ..Default::default()
        },
        &[],
        22,
    )
    .await;
    // By the run's logical date, newest first; the unstarted run's instances first by
    // start date.
    check(
        TaskInstanceFilter {
            dag_id: Some("alpha".to_string()),
            task_id: Some("extract".to_string()),
            order: Sort::descending(TaskInstanceOrder::LogicalDate),
            limit: Some(3),
            ..Default::default()
        },
        &[
            key("manual_x", "extract", -1),
            key("a4", "extract", -1),
            key("a3", "extract", -1),
        ],
        6,
    )
    .await;
    check(
        TaskInstanceFilter {
            dag_id: Some("alpha".to_string()),
            order: Sort::ascending(TaskInstanceOrder::StartDate),
            limit: Some(3),
            ..Default::default()
        },
        &[
            key("manual_x", "extract", -1),
            key("manual_x", "load", -1),
            key("a0", "extract", -1),
        ],
        22,
    )
    .await;
    check(
        TaskInstanceFilter {
            runs: vec![a1],
            order: Sort::descending(TaskInstanceOrder::TryNumber),
            limit: Some(1),
            ..Default::default()
        },
        &[key("a1", "load", 1)],
        4,
    )
    .await;
}

/// The DAG ids of a page of DAGs, and its total.
async fn dag_page(store: &dyn Store, filter: DagFilter) -> (Vec<String>, u64) {
    let page = store.page_dags(&filter).await.expect("page_dags");
    let ids = page.items.into_iter().map(|dag| dag.dag_id).collect();
    (ids, page.total_entries)
}

pub async fn listings_page_dags_in_order_with_their_total(store: Arc<dyn Store>) {
    listing_history(store.as_ref()).await;
    let store = store.as_ref();
    let mut paused = chain_dag("paused_one", &["t"]);
    paused.owner = "bob".to_string();
    store.sync_dag(&paused, "v1", at(4)).await.expect("sync");
    store.pause_dag("paused_one").await.expect("pause");
    store
        .sync_dag(&chain_dag("stale", &["t"]), "v1", at(5))
        .await
        .expect("sync");
    store
        .deactivate_dags(&["stale".to_string()])
        .await
        .expect("deactivate");
    let check = async |filter: DagFilter, ids: &[&str], total: u64| {
        let (found, counted) = dag_page(store, filter.clone()).await;
        let found: Vec<&str> = found.iter().map(String::as_str).collect();
        assert_eq!((found.as_slice(), counted), (ids, total), "{filter:?}");
    };
    let tags = |tags: &[&str]| tags.iter().map(|t| t.to_string()).collect::<Vec<_>>();

    check(
        DagFilter::default(),
        &["alpha", "beta", "gamma", "paused_one", "stale"],
        5,
    )
    .await;
    check(
        DagFilter {
            is_active: Some(true),
            limit: Some(2),
            offset: 1,
            ..DagFilter::default()
        },
        &["beta", "gamma"],
        4,
    )
    .await;
    check(
        DagFilter {
            is_paused: Some(true),
            ..DagFilter::default()
        },
        &["paused_one"],
        1,
    )
    .await;
    check(
        DagFilter {
            tags: tags(&["etl"]),
            ..DagFilter::default()
        },
        &["alpha", "beta"],
        2,
    )
    .await;
    check(
        DagFilter {
            tags: tags(&["daily", "conformance"]),
            ..DagFilter::default()
        },
        &["alpha", "paused_one", "stale"],
        3,
    )
    .await;
    check(
        DagFilter {
            tags: tags(&["etl", "daily"]),
            tags_match: TagsMatch::All,
            ..DagFilter::default()
        },
        &["alpha"],
        1,
    )
    .await;
    check(
        DagFilter {
            owners: tags(&["ann"]),
            ..DagFilter::default()
        },
        &["alpha", "gamma"],
        2,
    )
    .await;
    check(
        DagFilter {
            owners: tags(&["bob"]),
            tags: tags(&["etl"]),
            ..DagFilter::default()
        },
        &["beta"],
        1,
    )
    .await;
    check(
        DagFilter {
            dag_id_pattern: Some("A_".to_string()),
            order: Sort::descending(DagOrder::DagId),
            ..DagFilter::default()
        },
        &["stale", "paused_one", "gamma", "alpha"],
        4,
    )
    .await;
    check(
        DagFilter {
            has_import_errors: Some(true),
            ..DagFilter::default()
        },
        &["gamma"],
        1,
    )
    .await;
    check(
        DagFilter {
            has_import_errors: Some(false),
            is_active: Some(true),
            ..DagFilter::default()
        },
        &["alpha", "beta", "paused_one"],
        3,
    )
    .await;
    // The newest run of alpha is the manual one (queued); beta's newest failed.
    check(
        DagFilter {
            last_run_state: Some(RunState::Failed),
            ..DagFilter::default()
        },
        &["beta"],
        1,
    )
    .await;
    check(
        DagFilter {
            last_run_state: Some(RunState::Queued),
            ..DagFilter::default()
        },
        &["alpha"],
        1,
    )
    .await;
    check(
        DagFilter {
            order: Sort::descending(DagOrder::LastParsedAt),
            limit: Some(2),
            ..DagFilter::default()
        },
        &["stale", "paused_one"],
        5,
    )
    .await;
    check(
        DagFilter {
            dag_ids: tags(&["gamma", "alpha", "nothing"]),
            order: Sort::descending(DagOrder::IsPaused),
            ..DagFilter::default()
        },
        &["gamma", "alpha"],
        2,
    )
    .await;
    // A listed DAG is the whole record, with where its schedule stands (the newest scheduled
    // run: a3, as a4 is a backfill).
    let alpha = store
        .page_dags(&DagFilter {
            dag_ids: tags(&["alpha"]),
            ..DagFilter::default()
        })
        .await
        .expect("page_dags")
        .items
        .remove(0);
    assert_eq!(alpha.last_scheduled_logical_date, Some(at(300)));
    assert_eq!(alpha.dag.tags, tags(&["etl", "daily"]));
    assert_eq!(alpha.last_parsed_at, at(0));
}
