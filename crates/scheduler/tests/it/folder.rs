//! The DAG folder as users meet it: new DAGs start unpaused (dag-format.md), or paused with
//! Airflow's setting, unless the file says otherwise (and a stored DAG keeps its flag), and a
//! file caught in the middle of being written is not reported as an import error.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::Utc;
use scheduler::{DagFolder, NewDags};
use store::Store;
use testkit::Engine;

const PLAIN: &str = "tasks:\n  - {id: a, bash: 'true'}\n";

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write DAG file");
}

/// Date the file's modification `seconds` back, as if written that long ago.
fn age(path: &Path, seconds: u64) {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    file.set_modified(SystemTime::now() - Duration::from_secs(seconds))
        .expect("set mtime");
}

async fn paused(store: &dyn Store, dag_id: &str) -> bool {
    store
        .get_dag(dag_id)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("{dag_id} is stored"))
        .is_paused
}

async fn new_dags_start_paused_unless_the_file_or_the_setting_says(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "plain.yaml", PLAIN);
    write(
        dir.path(),
        "eager.yaml",
        &format!("is_paused_upon_creation: false\n{PLAIN}"),
    );
    // Airflow's own files say it as `DAG(is_paused_upon_creation=...)`.
    write(
        dir.path(),
        "airflow_dags.py",
        "from airflow import DAG\nfrom airflow.operators.bash import BashOperator\n\
         with DAG('py_eager', schedule=None, is_paused_upon_creation=False):\n\
         \x20   BashOperator(task_id='a', bash_command='true')\n\
         with DAG('py_plain', schedule=None):\n\
         \x20   BashOperator(task_id='a', bash_command='true')\n",
    );
    // `core.dags_are_paused_at_creation = true`, Airflow's default.
    let mut folder = DagFolder::new(dir.path()).with_new_dags(NewDags::Paused);
    let report = folder.process(&*store, Utc::now()).await.expect("process");
    assert_eq!(report.synced.len(), 4, "{report:?}");
    assert!(paused(&*store, "plain").await, "Airflow's default: paused");
    assert!(!paused(&*store, "eager").await, "the file's own word wins");
    assert!(paused(&*store, "py_plain").await);
    assert!(!paused(&*store, "py_eager").await);

    // Only at creation: a stored DAG keeps what users chose, whatever the file says now.
    store.unpause_dag("plain").await.expect("unpause");
    store.pause_dag("eager").await.expect("pause");
    write(
        dir.path(),
        "plain.yaml",
        &format!("is_paused_upon_creation: true\n{PLAIN}"),
    );
    write(
        dir.path(),
        "eager.yaml",
        &format!("is_paused_upon_creation: false\ndescription: changed\n{PLAIN}"),
    );
    let report = folder.process(&*store, Utc::now()).await.expect("process");
    assert_eq!(report.synced, ["eager", "plain"], "{report:?}");
    assert!(!paused(&*store, "plain").await);
    assert!(paused(&*store, "eager").await);

    // Updraft's default (`core.dags_are_paused_at_creation = false`, as dag-format.md's
    // `is_paused_upon_creation`): DAGs that do not say start unpaused; one that says `true`
    // still starts paused.
    let other = tempfile::tempdir().expect("tempdir");
    write(other.path(), "relaxed.yaml", PLAIN);
    write(
        other.path(),
        "careful.yaml",
        &format!("is_paused_upon_creation: true\n{PLAIN}"),
    );
    let mut folder = DagFolder::new(other.path());
    folder.process(&*store, Utc::now()).await.expect("process");
    assert!(!paused(&*store, "relaxed").await);
    assert!(paused(&*store, "careful").await);
}

async fn a_file_caught_mid_write_is_no_import_error(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("halves.yaml");
    let text = "description: written in two halves\ntasks:\n  - {id: first, bash: 'true'}\n  - {id: second, bash: 'true', depends_on: [first]}\n";
    let (head, tail) = text.split_at(text.len() / 2);
    assert!(
        dag::parse_dag_str("halves.yaml", head).is_err(),
        "the first half alone does not parse"
    );
    let mut folder = DagFolder::new(dir.path());

    std::fs::write(&path, head).expect("first half");
    let report = folder.process(&*store, Utc::now()).await.expect("process");
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(report.unsettled, [path.display().to_string()]);
    let recheck = report.recheck_at.expect("a time to look again");
    assert!(
        recheck
            <= Utc::now() + chrono::Duration::from_std(scheduler::dag_folder::SETTLE).expect("1s"),
        "within the settle time: {recheck}"
    );
    assert!(store.list_import_errors().await.expect("errors").is_empty());

    let mut whole = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    std::io::Write::write_all(&mut whole, tail.as_bytes()).expect("second half");
    drop(whole);
    let report = folder.process(&*store, Utc::now()).await.expect("process");
    assert_eq!(report.synced, ["halves"], "{report:?}");
    assert!(report.unsettled.is_empty() && report.recheck_at.is_none());
    assert!(store.list_import_errors().await.expect("errors").is_empty());
    assert_eq!(
        store
            .get_dag("halves")
            .await
            .expect("get")
            .expect("stored")
            .dag
            .tasks
            .len(),
        2
    );

    // A file that stopped changing and still does not parse is an import error, with the
    // problem named.
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "tasks:\n  - {id: a, bash: 'true', depends_on: [ghost]}\n",
    )
    .expect("write");
    age(&broken, 10);
    let report = folder.process(&*store, Utc::now()).await.expect("process");
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert!(
        report.errors[0].first_problem().contains("ghost"),
        "{}",
        report.errors[0]
    );
    assert_eq!(store.list_import_errors().await.expect("errors").len(), 1);
}

/// The re-check is a deadline of the scheduler's loop: a broken file that gets no further
/// event is reported once it has settled, although the full rescan is an hour away.
async fn a_broken_file_is_reported_once_it_settles(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::scheduler_only(
        store.clone(),
        scheduler::SchedulerConfig::new(Some(dir.path().to_path_buf()))
            .with_poll_interval(Duration::from_secs(3600))
            .with_rescan_interval(Duration::from_secs(3600)),
    );
    // Written in one go, after the scheduler's first pass saw an empty folder.
    let mut events = store.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store
        .latest_heartbeat("scheduler")
        .await
        .expect("beat")
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the scheduler never beat"
        );
        let _ = tokio::time::timeout(Duration::from_millis(50), events.recv()).await;
    }
    write(
        dir.path(),
        "typo.yaml",
        "tasks: [{id: a, bash: 'true'}]\nschedul: '@daily'\n",
    );
    loop {
        let errors = store.list_import_errors().await.expect("errors");
        if let Some(error) = errors.first() {
            assert!(error.message.contains("schedul"), "{}", error.message);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broken file was never reported"
        );
        let _ = tokio::time::timeout(Duration::from_millis(50), events.recv()).await;
    }
    engine.stop().await;
}

testkit::backend_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    new_dags_start_paused_unless_the_file_or_the_setting_says,
    a_file_caught_mid_write_is_no_import_error,
    a_broken_file_is_reported_once_it_settles,
);
