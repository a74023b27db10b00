//! Warm zygotes over real Python processes: a try forked from a loaded DAG file writes its
//! output to the pipes it was given and reports its wait status; one zygote serves many
//! tries; a signal reaches the try's whole group; a file that does not load is refused.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use pydag::{PythonSettings, TryRequest, ZygoteError, Zygotes};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

const DAG: &str = "\
from airflow import DAG
from airflow.operators.python import PythonOperator
import os, sys, time

LOADS = os.environ.get('LOAD_MARK', '')

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

fn python_available() -> bool {
    let found = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok();
    assert!(
        found || std::env::var_os("CI").is_none(),
        "python3 is required under CI=true"
    );
    found
}

fn load(dir: &Path, source: &str) -> Value {
    json!({
        "fileloc": dir.join("warm.py"),
        "source": source,
        "dags_folder": dir,
        "variables": {},
        "connections": {},
        "smtp": null,
    })
}

/// Write a try's spec into `folder` and return the request that forks it.
fn request(dir: &Path, folder: &Path, task_id: &str) -> TryRequest {
    let ts = "2024-01-02T00:00:00+00:00";
    let run_id = "manual__x";
    let spec = json!({
        "dag_id": "warm", "task_id": task_id, "run_id": run_id, "try_number": 1,
        "map_index": -1,
        "context": {
            "ds": "2024-01-02", "ds_nodash": "20240102", "ts": ts, "ts_nodash": "20240102T000000",
            "logical_date": ts, "data_interval_start": ts, "data_interval_end": ts,
            "run_id": run_id, "conf": {}, "params": {}, "map_index": -1, "try_number": 1,
            "dag_run": {"dag_id": "warm", "run_id": run_id, "run_type": "manual",
                        "logical_date": ts, "data_interval_start": ts,
                        "data_interval_end": ts, "conf": {}},
        },
        "xcoms": [],
        "airflow": {
            "fileloc": dir.join("warm.py"), "source": DAG, "dags_folder": dir,
            "fields": {}, "expand": {}, "downstream": [], "log_url": "http://127.0.0.1/x",
            "variables": {}, "connections": {}, "smtp": null, "callback": null,
        },
    });
    std::fs::create_dir_all(folder).expect("try folder");
    let spec_file = folder.join("spec.json");
    std::fs::write(&spec_file, spec.to_string()).expect("write spec");
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
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let zygotes = Zygotes::new(PythonSettings::default(), |_| false).expect("zygotes");
    let load = load(dir.path(), DAG);
    let mut pids = Vec::new();
    for n in 0..3 {
        let folder = dir.path().join(format!("try{n}"));
        let forked = zygotes
            .fork(&load, &request(dir.path(), &folder, "hello"))
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
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let zygotes = Zygotes::new(PythonSettings::default(), |_| false).expect("zygotes");
    let folder = dir.path().join("sleepy");
    let forked = zygotes
        .fork(
            &load(dir.path(), DAG),
            &request(dir.path(), &folder, "sleepy"),
        )
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
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let zygotes = Zygotes::new(PythonSettings::default(), |_| false).expect("zygotes");
    let broken = load(
        dir.path(),
        "from airflow import DAG\nraise ValueError('nope')\n",
    );
    for _ in 0..2 {
        let err = zygotes
            .fork(
                &broken,
                &request(dir.path(), &dir.path().join("b"), "hello"),
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
