//! The `airflow` package's own tests (`python/tests`, unittest), run by cargo so CI runs them:
//! they drive `updraft_host.py` in both modes as the importer and the worker do.

use std::path::Path;
use std::process::Command;

#[test]
fn the_python_package_passes_its_own_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("python");
    let out = match Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "tests"])
        .current_dir(&dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
    {
        Ok(out) => out,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: python3 cannot be started here: {e}");
            return;
        }
        Err(e) => panic!("python3 cannot be started: {e}"),
    };
    assert!(
        out.status.success(),
        "python tests failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_importer_returns_documents_and_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("good.py");
    std::fs::write(
        &good,
        "from airflow import DAG\nfrom airflow.operators.bash import BashOperator\n\
         with DAG('good', schedule=None):\n    BashOperator(task_id='a', bash_command='echo {{ ds }}')\n",
    )
    .expect("write");
    let bad = dir.path().join("bad.py");
    std::fs::write(
        &bad,
        "from airflow import DAG\n\nraise RuntimeError('boom')\n",
    )
    .expect("write");
    let importer = pydag::PythonImporter::new(&pydag::PythonSettings::default()).expect("importer");
    let variables = Default::default();
    let (good, bad) = tokio::join!(
        importer.import(&good, dir.path(), &variables),
        importer.import(&bad, dir.path(), &variables),
    );
    let docs = good.expect("the good file imports");
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["dag_id"], "good");
    assert_eq!(docs[0]["tasks"][0]["bash"], "echo {{ ds }}");
    let failure = bad.expect_err("the bad file fails");
    assert_eq!(failure.line, Some(3), "{failure:?}");
    assert!(failure.message.contains("boom"), "{failure:?}");
}
