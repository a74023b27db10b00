//! Airflow's own Python clients (`apache-airflow-client`, `airflowctl`) and a schemathesis
//! fuzz of the OpenAPI document, against the real binary: `tests/python/run.sh` does it all.
//! Outside CI it is skipped, with the reason, when the packages cannot be installed.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::repo_root;

/// `run.sh`'s exit code for "Python or the packages could not be installed".
const CANNOT_INSTALL: i32 = 77;

#[test]
fn airflow_python_client_airflowctl_and_openapi_fuzz() {
    let logs = tempfile::tempdir().expect("temp dir");
    let out_path = logs.path().join("run.log");
    let out = std::fs::File::create(&out_path).expect("log file");
    let err = out.try_clone().expect("log file");
    let mut child = Command::new("bash")
        .arg(repo_root().join("tests/python/run.sh"))
        .arg(env!("CARGO_BIN_EXE_dagctl"))
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group, so a timeout stops the server and the tests with it.
        .process_group(0)
        .spawn()
        .expect("bash runs tests/python/run.sh");
    let pid = child.id();
    let log = || std::fs::read_to_string(&out_path).unwrap_or_default();

    // run.sh bounds each part (the fuzz by FUZZ_SECONDS); this is the net under it.
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait on run.sh") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-TERM", &format!("-{pid}")])
                .status();
            let _ = child.wait();
            panic!("tests/python/run.sh took over 10 minutes:\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(200));
    };

    if status.code() == Some(CANNOT_INSTALL) {
        let text = log();
        let reason = text.lines().last().unwrap_or("no reason given").to_string();
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("the Python client tests are required under CI=true: {reason}\n{text}");
        }
        eprintln!("skipping the Python client tests: {reason}; set CI=true to require them");
        return;
    }
    assert!(
        status.success(),
        "tests/python/run.sh failed ({status}):\n{}",
        log()
    );
    // Show the figures (requests, statuses) in the test's captured output.
    for line in log()
        .lines()
        .filter(|l| l.starts_with("schemathesis:") || l.contains(" passed in "))
    {
        println!("{line}");
    }
}
