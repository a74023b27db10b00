//! Warm zygotes over real Python processes: a try forked from a loaded DAG file writes its
//! output to the pipes it was given and reports its wait status; one zygote serves many
//! tries; a signal reaches the try's whole group; a file that does not load is refused.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use dag::template::TemplateContext;
use hooks::notify::NotifySettings;
use pydag::spec::RunSpec;
use pydag::{PythonSettings, TryRequest, ZygoteError, Zygotes};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

const DAG: &str = "\
from airflow import DAG
from airflow.operators.python import PythonOperator
import os, sys, time

def hello(**context):
    print('hello from', context['ti'].task_id, os.getcwd())
    print('to stderr', file=sys.stderr)
    return {'pid': os.getpid(), 'env': os.environ.get('TRY_ENV')}

def sleepy():
    time.sleep(60)

with DAG('warm', schedule=None):
    PythonOperator(task_id='hello', python_callable=hello)
    PythonOperator(task_id='sleepy', python_callable=sleepy)
";

/// The spec of one try of `task_id` of the DAG that `source`, saved in `dir`, defines; built
/// as the worker builds it.
fn spec(dir: &Path, source: &str, task_id: &str) -> RunSpec {
    let doc = json!({"dag_id": "warm", "tasks": [
        {"id": "hello", "airflow": {"operator": "PythonOperator"}},
        {"id": "sleepy", "airflow": {"operator": "PythonOperator"}},
    ]});
    let fileloc = dir.join("warm.py").display().to_string();
    let dag = dag::dag_from_python(&fileloc, &doc, source).expect("a valid document");
    let date = Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).single();
    let ctx = TemplateContext {
        dag_id: "warm".into(),
        task_id: task_id.into(),
        run_id: "manual__x".into(),
        run_type: "manual".into(),
        logical_date: date,
        data_interval_start: date,
        data_interval_end: date,
        try_number: 1,
        map_index: -1,
        semantics: dag::model::Semantics::Airflow,
        ..TemplateContext::default()
    };
    RunSpec::task(&dag, &ctx, &NotifySettings::default()).expect("a Python DAG")
}

/// Write a try's spec into `folder` and return the request that forks it.
fn request(spec: &RunSpec, folder: &Path, task_id: &str) -> TryRequest {
    std::fs::create_dir_all(folder).expect("try folder");
    let spec_file = folder.join("spec.json");
    std::fs::write(&spec_file, spec.to_json()).expect("write spec");
    TryRequest {
        spec: spec_file,
        cwd: folder.to_path_buf(),
        env: vec![
            (
                "UPDRAFT_RETURN_VALUE_FILE".into(),
                folder.join("rv.json").display().to_string(),
            ),
            (
                "UPDRAFT_XCOM_FILE".into(),
                folder.join("x.jsonl").display().to_string(),
            ),
            ("TRY_ENV".into(), task_id.into()),
        ],
    }
}

async fn read_all(mut pipe: tokio::net::unix::pipe::Receiver) -> String {
    let mut text = String::new();
    pipe.read_to_string(&mut text).await.expect("read pipe");
    text
}

#[tokio::test]
async fn tries_fork_from_one_loaded_file_with_their_own_output_and_status() {
    if !testkit::ci::python3_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let zygotes = Zygotes::new(PythonSettings::default()).expect("zygotes");
    let spec = spec(dir.path(), DAG, "hello");
    let mut pids = Vec::new();
    for n in 0..3 {
        let folder = dir.path().join(format!("try{n}"));
        let forked = zygotes
            .fork(spec.load(), &request(&spec, &folder, "hello"))
            .await
            .expect("forked");
        let (out, err, status) = tokio::join!(
            read_all(forked.stdout),
            read_all(forked.stderr),
            forked.ended
        );
        let status = ExitStatus::from_raw(status.expect("status reported"));
        assert!(status.success(), "{status:?}\n{out}\n{err}");
        assert!(out.contains("hello from hello"), "{out}");
        assert!(out.contains(&folder.display().to_string()), "cwd: {out}");
        assert!(err.contains("to stderr"), "{err}");
        let value: Value =
            serde_json::from_slice(&std::fs::read(folder.join("rv.json")).expect("return value"))
                .expect("json");
        assert_eq!(value["env"], "hello");
        pids.push(value["pid"].as_i64().expect("pid"));
    }
    pids.dedup();
    assert_eq!(pids.len(), 3, "each try is its own process: {pids:?}");
}

#[tokio::test]
async fn a_signal_reaches_the_forked_try() {
    if !testkit::ci::python3_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let zygotes = Zygotes::new(PythonSettings::default()).expect("zygotes");
    let folder = dir.path().join("sleepy");
    let sleepy = spec(dir.path(), DAG, "sleepy");
    let forked = zygotes
        .fork(sleepy.load(), &request(&sleepy, &folder, "sleepy"))
        .await
        .expect("forked");
    pydag::signal_group(forked.pid, libc_sigkill()).expect("signal");
    let status = tokio::time::timeout(Duration::from_secs(20), forked.ended)
        .await
        .expect("ended in time")
        .expect("status reported");
    assert_eq!(ExitStatus::from_raw(status).signal(), Some(libc_sigkill()));
}

#[tokio::test]
async fn a_file_that_does_not_load_is_refused_once_and_remembered() {
    if !testkit::ci::python3_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let zygotes = Zygotes::new(PythonSettings::default()).expect("zygotes");
    let broken = spec(
        dir.path(),
        "from airflow import DAG\nraise ValueError('nope')\n",
        "hello",
    );
    for _ in 0..2 {
        let err = zygotes
            .fork(
                broken.load(),
                &request(&broken, &dir.path().join("b"), "hello"),
            )
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, ZygoteError::Load(m) if m.contains("ValueError: nope")),
            "{err}"
        );
    }
}

fn libc_sigkill() -> i32 {
    9
}
