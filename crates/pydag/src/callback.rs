//! Running one Python callback out of any try's process: the host in `run` mode, cold, with
//! a [`RunSpec`] that carries a callback request. The scheduler runs a DAG's callbacks this
//! way when a run ends, and the task callbacks of a try whose worker died; the worker runs
//! a task's failure or retry callback this way when the try's process was killed before it
//! could run it.
//!
//! The process runs in its own process group, with the caller's environment minus every
//! variable that may carry Updraft's database credentials, and is killed (group and all)
//! once the bound passes. Its output is collected, capped, with the given secrets masked,
//! for the caller to log.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use store::{LogLine, LogStream};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::package::{self, PackageError};
use crate::spec::RunSpec;
use crate::{PythonSettings, is_credential_variable, signal_group};

/// Most output lines kept of one callback; past it one line says how many were dropped.
const MAX_LINES: usize = 1000;
/// Longest output line kept, in bytes.
const MAX_LINE: usize = 8 * 1024;
/// How long to keep reading output after the process ended (a grandchild holding the pipes).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// One callback to run.
#[derive(Debug, Clone)]
pub struct CallbackRun {
    /// The spec, with its callback request.
    pub spec: RunSpec,
    /// Where the process runs: the DAG file's folder, or the try's working directory.
    pub cwd: PathBuf,
    /// Set on top of the inherited environment (without credentials).
    pub env: Vec<(String, String)>,
    /// Longest the whole process may take, the DAG file's import included.
    pub timeout: Duration,
    /// Texts replaced by `***` in the output (the secrets the spec carries).
    pub masks: Vec<String>,
}

/// How the callback's process ended, and what it printed.
#[derive(Debug, Clone)]
pub struct CallbackOutput {
    pub ended: CallbackEnd,
    /// What it printed, as log lines stamped when read (stdout and stderr interleaved as
    /// they arrived), secrets masked.
    pub lines: Vec<LogLine>,
}

/// How a callback's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackEnd {
    /// Exit 0: every callback ran without raising (or there was none to run).
    Succeeded,
    /// A callback raised, or the DAG file did not load (the output says which).
    Failed(i32),
    /// Killed by this signal (not by us).
    Signaled(i32),
    /// Still running after the bound; killed.
    TimedOut(Duration),
}

impl std::fmt::Display for CallbackEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallbackEnd::Succeeded => f.write_str("succeeded"),
            CallbackEnd::Failed(code) => write!(f, "failed (exit code {code})"),
            CallbackEnd::Signaled(signal) => write!(f, "was killed by signal {signal}"),
            CallbackEnd::TimedOut(limit) => write!(
                f,
                "was still running after {}s (core.dagbag_import_timeout) and was killed",
                limit.as_secs_f64()
            ),
        }
    }
}

/// Why a callback could not be started.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The embedded package could not be written out.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// The spec could not be written.
    #[error("could not write the callback's spec: {0}")]
    Write(#[source] std::io::Error),
    /// The interpreter could not be started.
    #[error("could not start {interpreter} for a Python callback: {source}")]
    Spawn {
        interpreter: String,
        #[source]
        source: std::io::Error,
    },
}

impl CallbackRun {
    /// Run the callback with `settings`' interpreter; returns once the process has ended
    /// (or was killed at the bound).
    pub async fn run(&self, settings: &PythonSettings) -> Result<CallbackOutput, CallbackError> {
        let host = package::host_script()?;
        let scratch = tempfile::Builder::new()
            .prefix("updraft-callback-")
            .tempdir()
            .map_err(CallbackError::Write)?;
        let spec_file = scratch.path().join("spec.json");
        tokio::fs::write(&spec_file, self.spec.to_json())
            .await
            .map_err(CallbackError::Write)?;
        let mut command = tokio::process::Command::new(&settings.interpreter);
        command
            .arg("-u")
            .arg(&host)
            .arg("run")
            .arg(&spec_file)
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(is_credential_variable) {
                command.env_remove(&name);
            }
        }
        command
            .envs(self.env.iter().cloned())
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1");
        let mut child = command.spawn().map_err(|source| CallbackError::Spawn {
            interpreter: settings.interpreter.clone(),
            source,
        })?;
        let pid = child.id();
        let lines = Arc::new(Mutex::new(Lines::default()));
        let readers = [
            child
                .stdout
                .take()
                .map(|out| tokio::spawn(read_lines(out, LogStream::Stdout, lines.clone()))),
            child
                .stderr
                .take()
                .map(|err| tokio::spawn(read_lines(err, LogStream::Stderr, lines.clone()))),
        ];
        let ended = match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(Ok(status)) => ending_of(status),
            Ok(Err(_)) => CallbackEnd::Failed(-1),
            Err(_) => CallbackEnd::TimedOut(self.timeout),
        };
        // Whatever the callback left running in its group goes with it.
        if let Some(pid) = pid {
            let _ = signal_group(pid, libc::SIGKILL);
        }
        let _ = child.wait().await;
        let drain = async {
            for reader in readers.into_iter().flatten() {
                let _ = reader.await;
            }
        };
        if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
            tracing::warn!(dag_id = %self.spec.dag_id(), "a Python callback's output pipes stayed open; stopped reading them");
        }
        let kept = std::mem::take(&mut *lines.lock().expect("never poisoned"));
        Ok(CallbackOutput {
            ended,
            lines: kept.finish(&self.masks),
        })
    }
}

/// Output collected so far, capped.
#[derive(Default)]
struct Lines {
    kept: Vec<LogLine>,
    dropped: usize,
}

impl Lines {
    fn push(&mut self, stream: LogStream, mut line: String) {
        if self.kept.len() >= MAX_LINES {
            self.dropped += 1;
            return;
        }
        if line.len() > MAX_LINE {
            let mut end = MAX_LINE;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push('…');
        }
        self.kept.push(LogLine {
            timestamp: Utc::now(),
            stream,
            line,
        });
    }

    fn finish(self, masks: &[String]) -> Vec<LogLine> {
        // Longest first, so that a secret containing another is hidden whole.
        let mut masks: Vec<&String> = masks.iter().filter(|s| !s.is_empty()).collect();
        masks.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut lines: Vec<LogLine> = self
            .kept
            .into_iter()
            .map(|line| LogLine {
                line: mask(line.line, &masks),
                ..line
            })
            .collect();
        if self.dropped > 0 {
            lines.push(LogLine {
                timestamp: Utc::now(),
                stream: LogStream::System,
                line: format!("… {} more lines of output were dropped", self.dropped),
            });
        }
        lines
    }
}

fn mask(mut line: String, masks: &[&String]) -> String {
    for secret in masks {
        if line.contains(secret.as_str()) {
            line = line.replace(secret.as_str(), "***");
        }
    }
    line
}

async fn read_lines(stream: impl AsyncRead + Unpin, which: LogStream, into: Arc<Mutex<Lines>>) {
    let mut reader = BufReader::new(stream);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buffer);
                let line = text.trim_end_matches(['\n', '\r']).to_string();
                into.lock().expect("never poisoned").push(which, line);
            }
        }
    }
}

fn ending_of(status: ExitStatus) -> CallbackEnd {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => CallbackEnd::Succeeded,
        (Some(code), _) => CallbackEnd::Failed(code),
        (None, Some(signal)) => CallbackEnd::Signaled(signal),
        (None, None) => CallbackEnd::Failed(-1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{CallbackReason, CallbackRequest};
    use chrono::{TimeZone, Utc};
    use dag::PythonCallback;
    use dag::template::TemplateContext;
    use hooks::notify::NotifySettings;
    use serde_json::json;

    const DAG: &str = "\
import os, time
from airflow import DAG
from airflow.operators.python import PythonOperator

def tell(context):
    print('told:', context['exception'], os.environ.get('UPDRAFT__DATABASE__URL'), os.environ.get('MINE'))
    print('the secret is', context['var']['value'].token)

def hang(context):
    time.sleep(60)

with DAG('cb', schedule=None):
    PythonOperator(task_id='t', python_callable=print, on_failure_callback=tell,
                   on_retry_callback=hang)
";

    fn run_of(dir: &std::path::Path, kind: PythonCallback, timeout: Duration) -> CallbackRun {
        let doc = json!({"dag_id": "cb", "tasks": [{"id": "t", "airflow": {"operator": "PythonOperator"}}]});
        let fileloc = dir.join("cb.py").display().to_string();
        let dag = dag::dag_from_python(&fileloc, &doc, DAG).expect("a valid document");
        let date = Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).single();
        let ctx = TemplateContext {
            dag_id: "cb".into(),
            task_id: "t".into(),
            run_id: "manual__x".into(),
            run_type: "manual".into(),
            logical_date: date,
            data_interval_start: date,
            data_interval_end: date,
            conf: json!({}),
            params: Default::default(),
            try_number: 1,
            map_index: -1,
            xcoms: Vec::new(),
            extra: Default::default(),
            variables: [("token".to_string(), "s3cr3t".to_string())].into(),
            connections: Default::default(),
            semantics: dag::model::Semantics::Airflow,
        };
        let request =
            CallbackRequest::new(kind, CallbackReason::TaskFailure, Some("killed".into()));
        CallbackRun {
            spec: crate::spec::RunSpec::task(&dag, &ctx, &NotifySettings::default())
                .expect("a Python DAG")
                .with_callback(request),
            cwd: dir.to_path_buf(),
            env: vec![("MINE".into(), "given".into())],
            timeout,
            masks: vec!["s3cr3t".into()],
        }
    }

    #[tokio::test]
    async fn a_callback_runs_without_credentials_and_its_secrets_are_masked() {
        if !testkit::ci::python3_available() {
            return;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let run = run_of(
            dir.path(),
            PythonCallback::OnFailureCallback,
            Duration::from_secs(30),
        );
        let out = run.run(&PythonSettings::default()).await.expect("ran");
        let text: Vec<&str> = out.lines.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(out.ended, CallbackEnd::Succeeded, "{text:?}");
        assert!(text.contains(&"told: killed None given"), "{text:?}");
        assert!(text.contains(&"the secret is ***"), "{text:?}");
    }

    #[tokio::test]
    async fn a_hanging_callback_is_killed_at_its_bound() {
        if !testkit::ci::python3_available() {
            return;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let run = run_of(
            dir.path(),
            PythonCallback::OnRetryCallback,
            Duration::from_secs(2),
        );
        let started = std::time::Instant::now();
        let out = run.run(&PythonSettings::default()).await.expect("ran");
        assert_eq!(
            out.ended,
            CallbackEnd::TimedOut(Duration::from_secs(2)),
            "{:?}",
            out.lines
        );
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(
            out.lines
                .iter()
                .any(|l| l.line.contains("Running on_retry_callback hang")),
            "{:?}",
            out.lines
        );
    }

    #[test]
    fn output_is_capped_and_masked() {
        let mut lines = Lines::default();
        lines.push(
            LogStream::Stdout,
            "password is hunter2, token hunter".into(),
        );
        lines.push(LogStream::Stderr, "é".repeat(MAX_LINE));
        for _ in 0..MAX_LINES {
            lines.push(LogStream::Stdout, "more".into());
        }
        let masks = ["hunter".to_string(), "hunter2".to_string(), String::new()];
        let kept = lines.finish(&masks);
        assert_eq!(kept[0].stream, LogStream::Stdout);
        assert_eq!(kept[0].line, "password is ***, token ***");
        assert_eq!(kept[1].stream, LogStream::Stderr);
        assert!(kept[1].line.len() <= MAX_LINE + '…'.len_utf8());
        assert_eq!(kept.len(), MAX_LINES + 1);
        assert_eq!(
            kept[MAX_LINES].line,
            "… 2 more lines of output were dropped"
        );
    }
}
