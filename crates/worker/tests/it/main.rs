//! Worker integration tests: real child processes against a real (temporary) SQLite store.
//!
//! Nothing here sleeps to wait for a state: tests wait on store events or poll with a
//! deadline.
//!
//! `stopping`: shutdown and changes from outside; `faults`: a store that fails on demand, for
//! `outages` (database outages, refused logs, unusable workspaces).

mod faults;
mod outages;
mod stopping;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use dag::{RunState, RunType, TaskState};
use serde_json::{Value, json};
use store::{
    Claim, ClaimedTask, Finish, LogRecord, LogStream, NewRun, NewTaskInstance, RunDecision,
    RunRecord, RunSnapshot, SnapshotXcoms, Store, Transition,
};
use store_sqlite::SqliteStore;
use tokio::time::Instant;
use worker::{Worker, WorkerConfig, execute};

/// How long any single wait in these tests may take before it counts as a failure.
const DEADLINE: Duration = Duration::from_secs(30);

struct Harness {
    store: Arc<dyn Store>,
    dags: tempfile::TempDir,
    config: WorkerConfig,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Harness {
    async fn new() -> Harness {
        let store = SqliteStore::temporary().await.expect("temporary store");
        Harness {
            store: Arc::new(store),
            dags: tempfile::tempdir().expect("dags folder"),
            config: WorkerConfig::new("test-worker").with_hostname("test-host"),
        }
    }

    fn folder(&self) -> &Path {
        self.dags.path()
    }

    /// Parse a DAG from its `tasks:` YAML (written into the DAGs folder), store it and create
    /// a manual run of it.
    async fn create_run(&self, yaml: &str) -> RunRecord {
        self.create_run_as(yaml, Origin::Yaml).await
    }

    /// [`Harness::create_run`] for a DAG that came from `origin`.
    async fn create_run_as(&self, yaml: &str, origin: Origin) -> RunRecord {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = self.folder().join(format!("dag_{n}.yaml"));
        std::fs::write(&path, yaml).expect("write dag");
        let path = path.display().to_string();
        let mut dag = dag::parse_dag_str(&path, yaml).expect("valid dag");
        if origin == Origin::AirflowFile {
            dag.python_source = Some("# the Airflow file's source".into());
        }
        let now = Utc::now();
        self.store
            .sync_dag(&dag, "v1", now)
            .await
            .expect("sync_dag");
        let run = NewRun {
            dag_id: dag.dag_id.clone(),
            run_id: format!("manual__{n}"),
            run_type: RunType::Manual,
            logical_date: Some(logical_date()),
            data_interval_start: Some(logical_date()),
            data_interval_end: Some(logical_date()),
            conf: json!({"from_conf": "yes"}),
            version: "v1".to_string(),
            now,
            tasks: dag
                .tasks
                .iter()
                .map(|t| NewTaskInstance::of(t, t.priority_weight))
                .collect(),
        };
        self.store
            .create_run(&run)
            .await
            .expect("create_run")
            .expect("new run")
    }

    /// Queue every task instance of the run that is still `none`, as a scheduler would.
    async fn queue_all(&self, run: i64) {
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
        self.store
            .schedule_run(run, Utc::now(), SnapshotXcoms::Omitted, &decide)
            .await
            .expect("schedule_run");
    }

    async fn claim_one(&self) -> ClaimedTask {
        let claim = Claim {
            worker_id: self.config.worker_id.clone(),
            hostname: self.config.hostname.clone(),
            queues: vec!["default".to_string()],
            limit: 1,
            now: Utc::now(),
        };
        let mut claimed = self
            .store
            .claim_task_instances(&claim)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1, "one task instance claimed");
        claimed.remove(0)
    }

    /// Run the only task of a one-task DAG through `execute` and write its end.
    async fn run_task(&self, yaml: &str) -> Outcome {
        let (finish, run) = self.execute_only(yaml).await;
        let log = self.log(finish.ti, finish.try_number).await;
        Outcome { finish, log, run }
    }

    /// [`Harness::run_task`] for a DAG that came from an Airflow Python file.
    async fn run_airflow_task(&self, yaml: &str) -> Outcome {
        let (finish, run) = self.execute_only_as(yaml, Origin::AirflowFile).await;
        let log = self.log(finish.ti, finish.try_number).await;
        Outcome { finish, log, run }
    }

    /// As [`Harness::run_task`], without reading the log back; returns the run key too.
    async fn execute_only(&self, yaml: &str) -> (Finish, i64) {
        self.execute_only_as(yaml, Origin::Yaml).await
    }

    async fn execute_only_as(&self, yaml: &str, origin: Origin) -> (Finish, i64) {
        let run = self.create_run_as(yaml, origin).await;
        self.queue_all(run.id).await;
        let claimed = self.claim_one().await;
        let finish = execute(self.store.clone(), claimed, &self.config).await;
        assert!(
            self.store
                .finish_task_instance(&finish)
                .await
                .expect("finish"),
            "the finish applied"
        );
        (finish, run.id)
    }

    async fn log(&self, ti: i64, try_number: u32) -> Vec<LogRecord> {
        self.store
            .read_log(ti, try_number, 0, 10_000_000)
            .await
            .expect("read_log")
    }

    async fn xcoms(&self, run: i64) -> Vec<(String, Value)> {
        self.store
            .list_xcoms(run, None)
            .await
            .expect("list_xcoms")
            .into_iter()
            .map(|x| (x.key, x.value))
            .collect()
    }
}

/// Where a test's DAG came from, which decides whose rules it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A YAML file: dag-format.md's rules.
    Yaml,
    /// An Airflow Python file (its source kept with the version): Airflow's rules.
    AirflowFile,
}

fn logical_date() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 15, 2, 0, 0)
        .single()
        .expect("valid date")
}

struct Outcome {
    finish: Finish,
    log: Vec<LogRecord>,
    run: i64,
}

impl Outcome {
    fn text(&self) -> String {
        self.log
            .iter()
            .map(|l| format!("[{}] {}", l.stream.as_str(), l.line))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn has_line(&self, stream: LogStream, needle: &str) -> bool {
        self.log
            .iter()
            .any(|l| l.stream == stream && l.line.contains(needle))
    }

    fn return_value(&self) -> Option<&Value> {
        self.finish
            .xcoms
            .iter()
            .find(|(k, _)| k == "return_value")
            .map(|(_, v)| v)
    }

    fn assert_state(&self, state: TaskState) {
        assert_eq!(self.finish.state, state, "log:\n{}", self.text());
    }
}

fn one_task(task: &str) -> String {
    format!("tasks:\n  - {task}\n")
}

#[tokio::test]
async fn bash_success_returns_last_non_empty_stdout_line() {
    let h = Harness::new().await;
    let out = h
        .run_task(&one_task(
            r#"{id: t, bash: "echo first; echo to-stderr >&2; echo last; echo ''"}"#,
        ))
        .await;
    out.assert_state(TaskState::Success);
    assert_eq!(out.return_value(), Some(&json!("last")));
    assert!(out.has_line(LogStream::Stdout, "first"));
    assert!(out.has_line(LogStream::Stderr, "to-stderr"));
    assert!(out.has_line(LogStream::System, "running: bash -c"));
    assert!(out.has_line(LogStream::System, "task exited with code 0"));
    assert_eq!(
        h.xcoms(out.run).await,
        vec![("return_value".to_string(), json!("last"))]
    );
}

#[tokio::test]
async fn stderr_is_never_the_return_value() {
    let h = Harness::new().await;
    let out = h
        .run_task(&one_task(r#"{id: t, bash: "echo only-stderr >&2"}"#))
        .await;
    out.assert_state(TaskState::Success);
    assert_eq!(out.return_value(), None);
}

#[tokio::test]
async fn do_xcom_push_false_pushes_no_return_value() {
    let h = Harness::new().await;
    let out = h
        .run_task(&one_task(r#"{id: t, bash: "echo x", do_xcom_push: false}"#))
        .await;
    out.assert_state(TaskState::Success);
    assert_eq!(out.return_value(), None);
}

#[tokio::test]
async fn an_airflow_files_bash_returns_the_last_line_of_stdout_and_stderr_merged() {
    let h = Harness::new().await;
    // Airflow's BashOperator reads one pipe holding both streams and returns its last line,
    // stripped at the end, even when empty, and "" when nothing was printed. The same
    // command in a YAML DAG keeps dag-format.md's rule: stdout's last non-empty line.
    let cases: [(&str, &str, Option<&str>); 7] = [
        ("echo first; echo to-stderr >&2", "to-stderr", Some("first")),
        ("echo only-stderr >&2", "only-stderr", None),
        ("echo last; echo ''", "", Some("last")),
        (r"printf 'padded  \n'", "padded", Some("padded")),
        ("printf 'no newline'", "no newline", Some("no newline")),
        ("true", "", None),
        // Many lines on both streams, the last one on stderr: the order is the child's.
        (
            "for i in $(seq 200); do echo out$i; echo err$i >&2; done",
            "err200",
            Some("out200"),
        ),
    ];
    for (command, airflow, yaml) in cases {
        let dag = one_task(&format!("{{id: t, bash: {}}}", json!(command)));
        let out = h.run_airflow_task(&dag).await;
        out.assert_state(TaskState::Success);
        assert_eq!(
            out.return_value(),
            Some(&json!(airflow)),
            "{command}\n{}",
            out.text()
        );
        let out = h.run_task(&dag).await;
        out.assert_state(TaskState::Success);
        assert_eq!(
            out.return_value(),
            yaml.map(|v| json!(v)).as_ref(),
            "{command} (YAML)"
        );
    }
    let out = h
        .run_airflow_task(&one_task(r#"{id: t, bash: "echo a; echo b >&2"}"#))
        .await;
    assert!(
        out.has_line(LogStream::Stdout, "b"),
        "stderr is logged with stdout, as Airflow does:\n{}",
        out.text()
    );
}

#[tokio::test]
async fn an_airflow_files_bash_without_xcom_push_or_failing_pushes_nothing() {
    let h = Harness::new().await;
    let out = h
        .run_airflow_task(&one_task(r#"{id: t, bash: "echo x", do_xcom_push: false}"#))
        .await;
    out.assert_state(TaskState::Success);
    assert_eq!(out.return_value(), None);
    let out = h
        .run_airflow_task(&one_task(r#"{id: t, bash: "echo x; exit 3"}"#))
        .await;
    out.assert_state(TaskState::Failed);
    assert_eq!(out.return_value(), None);
    let out = h
        .run_airflow_task(&one_task(r#"{id: t, bash: "echo x; exit 99"}"#))
        .await;
    out.assert_state(TaskState::Skipped);
}

#[tokio::test]
async fn a_bash_commands_line_numbers_are_its_own() {
    let h = Harness::new().await;
    // The worker prefixes the command with a check of its parent on the same line; the
    // command's second line is still line 2, also inside an Airflow file's merged-output shell.
    let dag = one_task(r#"{id: t, bash: "true\necho line $LINENO"}"#);
    for out in [h.run_task(&dag).await, h.run_airflow_task(&dag).await] {
        out.assert_state(TaskState::Success);
        assert_eq!(out.return_value(), Some(&json!("line 2")), "{}", out.text());
    }
}

#[tokio::test]
async fn exit_99_is_skipped() {
    let h = Harness::new().await;
    let out = h
        .run_task(&one_task(r#"{id: t, bash: "echo skipping; exit 99"}"#))
        .await;
    out.assert_state(TaskState::Skipped);
    assert_eq!(out.return_value(), None);
}

#[tokio::test]
async fn exit_3_fails_without_retries() {
    let h = Harness::new().await;
    let out = h.run_task(&one_task(r#"{id: t, bash: "exit 3"}"#)).await;
    out.assert_state(TaskState::Failed);
    assert!(out.has_line(LogStream::System, "task exited with code 3"));
    assert_eq!(out.finish.next_retry_at, None);
}

#[tokio::test]
async fn exit_3_is_up_for_retry_when_retries_remain() {
    let h = Harness::new().await;
    let before = Utc::now();
    let out = h
        .run_task(&one_task(
            r#"{id: t, bash: "exit 3", retries: 2, retry_delay: 30s}"#,
        ))
        .await;
    out.assert_state(TaskState::UpForRetry);
    assert!(out.has_line(LogStream::System, "exited with code 3"));
    let at = out.finish.next_retry_at.expect("next_retry_at set");
    let delay = (at - before).num_milliseconds();
    assert!((29_000..=40_000).contains(&delay), "retry in {delay} ms");
    let stored = h
        .store
        .get_task_instance(out.finish.ti)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stored.state, TaskState::UpForRetry);
    assert!(stored.next_retry_at.is_some());
}

#[tokio::test]
async fn missing_command_fails_with_a_clear_line() {
    let h = Harness::new().await;
    let out = h
        .run_task(&one_task(
            r#"{id: t, bash: "no_such_command_updraft_test"}"#,
        ))
        .await;
    out.assert_state(TaskState::Failed);
    assert!(out.has_line(LogStream::System, "code 127: command not found"));
    assert!(out.has_line(LogStream::Stderr, "no_such_command_updraft_test"));
}

#[tokio::test]
async fn signal_death_names_the_signal() {
    let h = Harness::new().await;
    let out = h
        .run_task(&one_task(r#"{id: t, bash: "kill -KILL $$"}"#))
        .await;
    out.assert_state(TaskState::Failed);
    assert!(
        out.has_line(LogStream::System, "killed by SIGKILL (9)"),
        "{}",
        out.text()
    );
}

fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_flood_of_output_is_capped_and_drained() {
    let mut h = Harness::new().await;
    // Small, so that reading the stored log back stays quick; the cap works the same at any size.
    let cap = 256 * 1024;
    h.config = h.config.clone().with_log_cap_bytes(cap);
    let peak_before = peak_memory_kib();
    let (finish, run) = h
        .execute_only(&one_task(r#"{id: t, bash: "yes | head -c 100000000"}"#))
        .await;
    let peak_after = peak_memory_kib();
    let log = h.log(finish.ti, finish.try_number).await;
    let out = Outcome { finish, log, run };
    out.assert_state(TaskState::Success);
    let stored: u64 = out
        .log
        .iter()
        .filter(|l| l.stream != LogStream::System)
        .map(|l| l.line.len() as u64 + 1)
        .sum();
    assert!(stored <= cap, "stored {stored} bytes of output");
    assert!(stored > cap / 2, "stored only {stored} bytes of output");
    let notices = out
        .log
        .iter()
        .filter(|l| {
            l.line
                == format!("log truncated: output exceeded {cap} bytes; further output discarded")
        })
        .count();
    assert_eq!(notices, 1, "one truncation notice");
    assert!(out.has_line(LogStream::System, "task exited with code 0"));
    assert_eq!(out.return_value(), Some(&json!("y")));
    if let (Some(before), Some(after)) = (peak_before, peak_after) {
        // 100 MB went through the worker; holding it would raise the peak by that much.
        // Reading the stored log back is left out: that is the store's and the test's memory.
        assert!(
            after - before < 64 * 1024,
            "peak memory grew by {} KiB",
            after - before
        );
    }
}

/// Whether a process is gone (or a zombie nobody reaped yet, which runs no code).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn execution_timeout_kills_the_whole_group() {
    let mut h = Harness::new().await;
    h.config = h.config.clone().with_kill_grace(Duration::from_millis(300));
    let pid_file = h.folder().join("grandchild.pid");
    let command = format!(
        "trap '' TERM; sleep 60 & echo $! > {}; sleep 60",
        pid_file.display()
    );
    let started = Instant::now();
    let out = h
        .run_task(&one_task(&format!(
            "{{id: t, bash: {}, execution_timeout: 1s}}",
            json!(command)
        )))
        .await;
    out.assert_state(TaskState::Failed);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        out.has_line(
            LogStream::System,
            "execution_timeout of 1s exceeded; sent SIGTERM to the process group"
        ),
        "{}",
        out.text()
    );
    assert!(out.has_line(LogStream::System, "sent SIGKILL"));
    let grandchild: u32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    wait_until("the grandchild is dead", || is_dead(grandchild)).await;
}

#[tokio::test]
async fn python_inline_code_runs() {
    let h = Harness::new().await;
    let out = h
        .run_task(&one_task(
            r#"{id: t, python: "import os\nprint('hello from', os.environ['UPDRAFT_TASK_ID'])"}"#,
        ))
        .await;
    out.assert_state(TaskState::Success);
    assert!(out.has_line(LogStream::Stdout, "hello from t"));
    assert_eq!(out.return_value(), None);
}

#[tokio::test]
async fn python_callable_gets_kwargs_and_context() {
    let h = Harness::new().await;
    let code = "def f(x, ds, ti, params, dag_run, logical_date):\n    ti.xcom_push('pushed', {'n': 1})\n    return {'x': x, 'ds': ds, 'try': ti.try_number, 'task': ti.task_id, 'p': params['p'], 'conf': dag_run.conf['from_conf'], 'year': logical_date.year}\n";
    let yaml = format!(
        "params: {{p: 7}}\ntasks:\n  - id: t\n    python: {{code: {}, callable: f, kwargs: {{x: \"{{{{ ds_nodash }}}}\"}}}}\n",
        json!(code)
    );
    let out = h.run_task(&yaml).await;
    out.assert_state(TaskState::Success);
    assert_eq!(
        out.return_value(),
        Some(
            &json!({"x": "20240315", "ds": "2024-03-15", "try": 1, "task": "t", "p": 7, "conf": "yes", "year": 2024})
        )
    );
    assert!(
        out.finish
            .xcoms
            .contains(&("pushed".to_string(), json!({"n": 1})))
    );
}

#[tokio::test]
async fn python_callable_with_var_keywords_gets_the_whole_context() {
    let h = Harness::new().await;
    let code = "def f(**context):\n    return sorted(k for k in ('ds', 'ti', 'params', 'run_id', 'dag_run') if k in context)\n";
    let out = h
        .run_task(&one_task(&format!(
            "{{id: t, python: {{code: {}, callable: f}}}}",
            json!(code)
        )))
        .await;
    out.assert_state(TaskState::Success);
    assert_eq!(
        out.return_value(),
        Some(&json!(["dag_run", "ds", "params", "run_id", "ti"]))
    );
}

#[tokio::test]
async fn python_file_relative_to_the_dag_folder() {
    let h = Harness::new().await;
    std::fs::write(h.folder().join("job.py"), "def run(n):\n    return n * 2\n")
        .expect("write job.py");
    let out = h
        .run_task(&one_task(
            "{id: t, python: {file: job.py, callable: run, kwargs: {n: 21}}}",
        ))
        .await;
    out.assert_state(TaskState::Success);
    assert_eq!(out.return_value(), Some(&json!(42)));
}

#[tokio::test]
async fn python_none_return_pushes_nothing_and_exceptions_fail() {
    let h = Harness::new().await;
    let out = h
        .run_task(&one_task(
            r#"{id: t, python: {code: "def f():\n    return None\n", callable: f}}"#,
        ))
        .await;
    out.assert_state(TaskState::Success);
    assert_eq!(out.return_value(), None);

    let out = h
        .run_task(&one_task(
            r#"{id: t, python: {code: "def f():\n    raise ValueError('boom')\n", callable: f}}"#,
        ))
        .await;
    out.assert_state(TaskState::Failed);
    assert!(out.has_line(LogStream::Stderr, "ValueError: boom"));
}

#[tokio::test]
async fn an_xcom_over_one_mib_fails_the_try() {
    let h = Harness::new().await;
    let out = h
        .run_task(&one_task(
            r#"{id: t, python: {code: "def f():\n    return 'x' * (2 * 1024 * 1024)\n", callable: f}}"#,
        ))
        .await;
    out.assert_state(TaskState::Failed);
    assert!(out.has_line(LogStream::System, "1 MiB"), "{}", out.text());
    assert_eq!(out.return_value(), None);
}

#[tokio::test]
async fn xcom_file_lines_become_xcoms() {
    let h = Harness::new().await;
    let out = h
        .run_task(&one_task(
            r#"{id: t, bash: "echo '{\"key\": \"rows\", \"value\": 42}' >> \"$UPDRAFT_XCOM_FILE\"; echo done"}"#,
        ))
        .await;
    out.assert_state(TaskState::Success);
    let mut stored = h.xcoms(out.run).await;
    stored.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        stored,
        vec![
            ("return_value".to_string(), json!("done")),
            ("rows".to_string(), json!(42)),
        ]
    );
}

#[tokio::test]
async fn templates_render_and_errors_fail_the_try() {
    let h = Harness::new().await;
    let out = h
        .run_task("params: {who: world}\ntasks:\n  - {id: t, bash: \"echo {{ ds }} {{ params.who }} {{ params.from_conf }}\", env: {GREETING: \"hi {{ ds_nodash }}\"}}\n")
        .await;
    out.assert_state(TaskState::Success);
    assert_eq!(out.return_value(), Some(&json!("2024-03-15 world yes")));

    let out = h
        .run_task(&one_task(r#"{id: t, bash: "echo {{ no_such_name }}"}"#))
        .await;
    out.assert_state(TaskState::Failed);
    assert!(out.has_line(LogStream::System, "template error in bash command"));
    assert!(
        out.has_line(LogStream::System, "no_such_name"),
        "{}",
        out.text()
    );
}

#[tokio::test]
async fn xcom_pull_sees_upstream_values() {
    let h = Harness::new().await;
    let run = h
        .create_run("tasks:\n  - {id: a, bash: \"echo 41\"}\n  - {id: b, bash: \"echo $(( {{ ti.xcom_pull('a') }} + 1 ))\", depends_on: [a]}\n")
        .await;
    // Queue and run `a` first, then `b`, as the scheduler would.
    h.queue_all(run.id).await;
    for expected in ["41", "42"] {
        let claimed = h.claim_one().await;
        let finish = execute(h.store.clone(), claimed, &h.config).await;
        assert_eq!(finish.state, TaskState::Success);
        let value = finish
            .xcoms
            .iter()
            .find(|(k, _)| k == "return_value")
            .map(|(_, v)| v.clone());
        assert_eq!(value, Some(json!(expected)));
        h.store.finish_task_instance(&finish).await.expect("finish");
    }
}

#[tokio::test]
async fn cwd_defaults_to_the_dag_folder() {
    let h = Harness::new().await;
    let out = h.run_task(&one_task(r#"{id: t, bash: "pwd -P"}"#)).await;
    out.assert_state(TaskState::Success);
    let folder = std::fs::canonicalize(h.folder()).expect("canonical");
    assert_eq!(
        out.return_value(),
        Some(&json!(folder.display().to_string()))
    );
}

#[tokio::test]
async fn sensors_poke_on_the_worker_in_poke_mode() {
    let h = Harness::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let present = dir.path().join("present");
    std::fs::write(&present, "x").expect("write");
    // A file sensor that never sees its file times out into skipped with soft_fail, after
    // several pokes, each logged.
    let out = h
        .run_task(&one_task(&format!(
            "{{id: t, sensor: {{file: '{}'}}, mode: poke, poke_interval: 0.1, timeout: 0.5, soft_fail: true}}",
            dir.path().join("missing").display()
        )))
        .await;
    out.assert_state(TaskState::Skipped);
    assert!(out.has_line(LogStream::System, "not there yet (poke 2)"));
    assert!(out.has_line(LogStream::System, "timed out after"));
    let out = h
        .run_task(&one_task(&format!(
            "{{id: t, sensor: {{file: '{}'}}, mode: poke}}",
            present.display()
        )))
        .await;
    out.assert_state(TaskState::Success);
    assert!(out.has_line(LogStream::System, "done"));
    // A command sensor that never succeeds fails without retry when it times out.
    let out = h
        .run_task(&one_task(
            "{id: t, sensor: {command: 'exit 3'}, mode: poke, poke_interval: 0.1, timeout: 0.3, retries: 2}",
        ))
        .await;
    out.assert_state(TaskState::Failed);
    assert!(out.has_line(LogStream::System, "poking command: not yet (poke 1)"));
}

#[tokio::test]
async fn the_task_environment_is_set() {
    let h = Harness::new().await;
    let out = h
        .run_task(&one_task(
            r#"{id: t, bash: "env | grep -E '^(UPDRAFT|AIRFLOW_CTX)_' | sort; echo \"custom=$CUSTOM\"", env: {CUSTOM: "{{ dag.dag_id }}"}}"#,
        ))
        .await;
    out.assert_state(TaskState::Success);
    let dag_id = h
        .store
        .get_run_by_key(out.run)
        .await
        .expect("run")
        .expect("exists")
        .dag_id;
    for expected in [
        format!("UPDRAFT_DAG_ID={dag_id}"),
        "UPDRAFT_TASK_ID=t".to_string(),
        "UPDRAFT_TRY_NUMBER=1".to_string(),
        "UPDRAFT_MAP_INDEX=-1".to_string(),
        "UPDRAFT_LOGICAL_DATE=2024-03-15T02:00:00+00:00".to_string(),
        "UPDRAFT_DS=2024-03-15".to_string(),
        "UPDRAFT_XCOM_FILE=".to_string(),
        "UPDRAFT_RUN_ID=manual__".to_string(),
        format!("AIRFLOW_CTX_DAG_ID={dag_id}"),
        "AIRFLOW_CTX_TASK_ID=t".to_string(),
        "AIRFLOW_CTX_DAG_RUN_ID=manual__".to_string(),
        "AIRFLOW_CTX_TRY_NUMBER=1".to_string(),
        "AIRFLOW_CTX_LOGICAL_DATE=2024-03-15T02:00:00+00:00".to_string(),
        format!("custom={dag_id}"),
    ] {
        assert!(
            out.log
                .iter()
                .any(|l| l.stream == LogStream::Stdout && l.line.starts_with(&expected)),
            "missing {expected}:\n{}",
            out.text()
        );
    }
}

/// Set in the environment of the child test process that
/// `no_database_credentials_reach_the_task` starts.
const CHILD_MARKER: &str = "UPDRAFT_WORKER_TEST_CHILD";

/// The credential check runs in a child copy of this test binary whose environment carries
/// database URLs: changing this process's own environment while other tests run is unsound.
#[tokio::test]
async fn no_database_credentials_reach_the_task() {
    let exe = std::env::current_exe().expect("test binary");
    let output = tokio::process::Command::new(exe)
        .args(["--exact", "credentials_child", "--nocapture"])
        .env(CHILD_MARKER, "1")
        .env("UPDRAFT__DATABASE__URL", "postgres://u:secret@db/updraft")
        .env("DATABASE_URL", "postgres://u:secret@db/updraft")
        .env("UPDRAFT_WORKER_TEST_VISIBLE", "inherited")
        .output()
        .await
        .expect("run child test");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "child test failed:\n{text}");
    assert!(text.contains("1 passed"), "child test did not run:\n{text}");
}

#[tokio::test]
async fn credentials_child() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        return;
    }
    let h = Harness::new().await;
    let out = h.run_task(&one_task(r#"{id: t, bash: "env"}"#)).await;
    out.assert_state(TaskState::Success);
    assert!(out.has_line(LogStream::Stdout, "UPDRAFT_WORKER_TEST_VISIBLE=inherited"));
    assert!(!out.text().contains("secret"), "{}", out.text());
    assert!(!out.has_line(LogStream::Stdout, "UPDRAFT__DATABASE__URL"));
    assert!(!out.has_line(LogStream::Stdout, "DATABASE_URL"));
}

#[tokio::test]
async fn the_log_is_readable_while_the_task_runs() {
    let h = Harness::new().await;
    let gate = h.folder().join("gate");
    let command = format!(
        "echo started; while [ ! -e {} ]; do sleep 0.02; done; echo finished",
        gate.display()
    );
    let run = h
        .create_run(&one_task(&format!("{{id: t, bash: {}}}", json!(command))))
        .await;
    h.queue_all(run.id).await;
    let claimed = h.claim_one().await;
    let (ti, try_number) = (claimed.ti.id, claimed.ti.try_number);
    let (store, config) = (h.store.clone(), h.config.clone());
    let task = tokio::spawn(async move { execute(store, claimed, &config).await });
    let deadline = Instant::now() + DEADLINE;
    loop {
        let log = h.log(ti, try_number).await;
        if log.iter().any(|l| l.line == "started") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "'started' never appeared in the log"
        );
        assert!(
            !task.is_finished(),
            "the task ended before its log was read"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::fs::write(&gate, "").expect("open the gate");
    let finish = task.await.expect("execute");
    assert_eq!(finish.state, TaskState::Success);
    assert_eq!(
        finish.xcoms,
        vec![("return_value".to_string(), json!("finished"))]
    );
}

/// Wait until every task instance of `run` satisfies `done`, waking on store events.
async fn wait_for_run(store: &dyn Store, run: i64, done: impl Fn(TaskState) -> bool) {
    let mut events = store.subscribe();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let tis = store.task_instances(run).await.expect("task_instances");
        if tis.iter().all(|ti| done(ti.state)) {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out; states: {:?}",
            tis.iter().map(|t| t.state).collect::<Vec<_>>()
        );
        // A lagged or closed channel just means: look again.
        let _ = tokio::time::timeout(left, events.recv()).await;
    }
}

/// A [`Worker`] loop running in the background until [`WorkerLoop::shut_down`].
struct WorkerLoop {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
}

impl WorkerLoop {
    fn start(config: WorkerConfig, store: Arc<dyn Store>) -> WorkerLoop {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(Worker::new(config).run(store, async {
            let _ = stopped.await;
        }));
        WorkerLoop {
            stop: Some(stop),
            handle,
        }
    }

    /// Complete the worker's shutdown future (as SIGTERM does for `dagctl worker`).
    fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shut down (if not begun yet) and wait for `run` to return.
    async fn shut_down(mut self) {
        self.begin_shutdown();
        tokio::time::timeout(DEADLINE, self.handle)
            .await
            .expect("the worker returns")
            .expect("worker task");
    }
}

/// Wait until the only task instance of `run` is running with its process started (its pid
/// recorded) and `line` in its log. Claims announce nothing, so this polls.
async fn wait_started(h: &Harness, run: i64, line: &str) -> (store::TaskInstanceRecord, u32) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let ti = h.store.task_instances(run).await.expect("tis")[0].clone();
        if ti.state == TaskState::Running
            && let Some(pid) = ti.pid
            && h.log(ti.id, ti.try_number)
                .await
                .iter()
                .any(|l| l.line == line)
        {
            return (ti, pid);
        }
        assert!(Instant::now() < deadline, "the task never started: {ti:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Wait until the log of try `try_number` of `ti` has a line containing `needle`.
async fn wait_for_line(h: &Harness, ti: i64, try_number: u32, needle: &str) -> Vec<LogRecord> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let log = h.log(ti, try_number).await;
        if log.iter().any(|l| l.line.contains(needle)) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "'{needle}' never appeared in the log: {log:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn has(log: &[LogRecord], needle: &str) -> bool {
    log.iter().any(|l| l.line.contains(needle))
}

#[tokio::test]
async fn the_worker_loop_claims_runs_and_finishes() {
    let h = Harness::new().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = h
        .config
        .clone()
        .with_concurrency(2)
        .with_poll_interval(Duration::from_secs(60));
    let worker = tokio::spawn(Worker::new(config).run(h.store.clone(), async {
        let _ = stopped.await;
    }));
    let run = h
        .create_run("tasks:\n  - {id: a, bash: \"echo a\"}\n  - {id: b, bash: \"echo b\"}\n  - {id: c, bash: \"exit 99\"}\n  - {id: d, python: \"print('d')\"}\n")
        .await;
    h.queue_all(run.id).await;
    wait_for_run(h.store.as_ref(), run.id, TaskState::is_finished).await;
    let states: Vec<(String, TaskState)> = h
        .store
        .task_instances(run.id)
        .await
        .expect("task_instances")
        .into_iter()
        .map(|ti| (ti.task_id, ti.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("a".to_string(), TaskState::Success),
            ("b".to_string(), TaskState::Success),
            ("c".to_string(), TaskState::Skipped),
            ("d".to_string(), TaskState::Success),
        ]
    );
    let _ = stop.send(());
    tokio::time::timeout(DEADLINE, worker)
        .await
        .expect("worker stops")
        .expect("worker task");
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut stack = vec![root.join("src"), root.join("tests")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read");
                assert!(
                    text.starts_with("//!"),
                    "{} lacks a //! line",
                    path.display()
                );
            }
        }
    }
}

#[tokio::test]
async fn background_processes_do_not_outlive_the_try() {
    let h = Harness::new().await;
    let pid_file = h.folder().join("background.pid");
    let command = format!("sleep 60 & echo $! > {}; echo done", pid_file.display());
    let started = Instant::now();
    let out = h
        .run_task(&one_task(&format!("{{id: t, bash: {}}}", json!(command))))
        .await;
    out.assert_state(TaskState::Success);
    // The background sleep holds stdout open; the try must not wait for it.
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(out.return_value(), Some(&json!("done")));
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    wait_until("the background process is dead", || is_dead(pid)).await;
}
