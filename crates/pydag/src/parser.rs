//! The importer of Python DAG files: one long-lived Python host (`updraft_host.py parse`)
//! that never imports user code itself and forks a child per file, so each import is
//! isolated (a crash, `sys.exit` or a hang ends only that child) yet starts warm. Requests
//! and replies are JSON lines; each child writes its result to its own file.
//!
//! The host is started on first use and again after it died; a file whose import outlives
//! the timeout is killed by the host's alarm, and, should the host itself stop answering, the
//! host is killed and every import in flight on it fails with that reason.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{Mutex, Semaphore, oneshot};

use crate::{PythonSettings, package};

/// Most imports in flight at once (children of the host).
const MAX_CONCURRENT_IMPORTS: usize = 8;
/// How much of a dead import's output is quoted in its error.
const OUTPUT_TAIL_BYTES: u64 = 2000;
/// Extra time the host gets beyond an import's own timeout before it is presumed stuck.
const HOST_GRACE: Duration = Duration::from_secs(5);

/// Why a Python file gave no DAGs: an import error, located where Python knew the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportFailure {
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// One line: `ExceptionType: message`, or what happened to the import.
    pub message: String,
    /// The traceback, trimmed to the DAG file's frames, when there was one.
    pub traceback: Option<String>,
}

impl ImportFailure {
    fn plain(message: impl Into<String>) -> ImportFailure {
        ImportFailure {
            line: None,
            column: None,
            message: message.into(),
            traceback: None,
        }
    }

    /// The import error as recorded: `file:line:col: message`, then the traceback.
    pub fn located(&self, file: &str) -> String {
        let mut text = format!(
            "{file}:{}:{}: {}",
            self.line.unwrap_or(1),
            self.column.unwrap_or(1),
            self.message
        );
        if let Some(tb) = self.traceback.as_deref().filter(|t| !t.trim().is_empty()) {
            text.push('\n');
            text.push_str(tb.trim_end());
        }
        text
    }
}

/// What the host replies when a child ended.
#[derive(Debug, Deserialize)]
struct Reply {
    id: u64,
    exit_code: Option<i32>,
    signal: Option<i32>,
}

/// What a child writes to its result file.
#[derive(Debug, Deserialize)]
struct ChildResult {
    #[serde(default)]
    dags: Vec<Value>,
    error: Option<ChildError>,
}

#[derive(Debug, Deserialize)]
struct ChildError {
    message: String,
    line: Option<usize>,
    column: Option<usize>,
    traceback: Option<String>,
}

type Pending = Arc<std::sync::Mutex<HashMap<u64, oneshot::Sender<Reply>>>>;

/// A running host: its stdin for requests, and the replies it has yet to give.
struct Host {
    child: Child,
    stdin: ChildStdin,
    pending: Pending,
}

/// Imports Python DAG files through one warm host process.
pub struct PythonImporter {
    interpreter: String,
    timeout: Duration,
    host: Mutex<Option<Host>>,
    slots: Semaphore,
    next_id: AtomicU64,
    /// Where children write their results; removed with the importer.
    scratch: tempfile::TempDir,
}

impl std::fmt::Debug for PythonImporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonImporter")
            .field("interpreter", &self.interpreter)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PythonImporter {
    /// An importer with these settings. Nothing starts until the first import.
    pub fn new(settings: &PythonSettings) -> std::io::Result<Self> {
        Ok(PythonImporter {
            interpreter: settings.interpreter.clone(),
            timeout: settings.import_timeout,
            host: Mutex::new(None),
            slots: Semaphore::new(MAX_CONCURRENT_IMPORTS),
            next_id: AtomicU64::new(1),
            scratch: tempfile::Builder::new()
                .prefix("updraft-import-")
                .tempdir()?,
        })
    }

    /// Import `path` and return the DAG documents it defines (dag-format JSON, with `airflow`
    /// blocks for tasks that run in Python). `variables` are Updraft's variables as stored
    /// text, for `Variable.get` at import time.
    pub async fn import(
        &self,
        path: &Path,
        dags_folder: &Path,
        variables: &BTreeMap<String, String>,
    ) -> Result<Vec<Value>, ImportFailure> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| ImportFailure::plain("the Python importer is shutting down"))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let out = self.scratch.path().join(format!("{id}.json"));
        let log = PathBuf::from(format!("{}.log", out.display()));
        let request = json!({
            "id": id,
            "path": absolute(path),
            "dags_folder": absolute(dags_folder),
            "out": out,
            "timeout": self.timeout.as_secs().max(1),
            "variables": variables,
        });
        let reply = self.send(id, request).await;
        let result = match reply {
            Ok(reply) => self.read_result(&out, &log, &reply).await,
            Err(failure) => Err(failure),
        };
        let _ = tokio::fs::remove_file(&out).await;
        let _ = tokio::fs::remove_file(&log).await;
        result
    }

    /// Send one request and wait for its reply, starting the host if needed.
    async fn send(&self, id: u64, request: Value) -> Result<Reply, ImportFailure> {
        let (tx, rx) = oneshot::channel();
        {
            let mut host = self.host.lock().await;
            if host
                .as_mut()
                .is_none_or(|h| h.child.try_wait().ok().flatten().is_some())
            {
                *host = Some(self.spawn_host().map_err(ImportFailure::plain)?);
            }
            let running = host.as_mut().expect("the host was just started");
            running
                .pending
                .lock()
                .expect("the pending map is never poisoned")
                .insert(id, tx);
            let mut line = request.to_string();
            line.push('\n');
            if let Err(e) = running.stdin.write_all(line.as_bytes()).await {
                *host = None;
                return Err(ImportFailure::plain(format!(
                    "could not reach the Python importer: {e}"
                )));
            }
        }
        match tokio::time::timeout(self.timeout + HOST_GRACE, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(ImportFailure::plain(
                "the Python importer exited while importing the file",
            )),
            Err(_) => {
                // The host did not stop the child in time: it is stuck, so start afresh.
                if let Some(mut stuck) = self.host.lock().await.take() {
                    let _ = stuck.child.start_kill();
                }
                Err(ImportFailure::plain(format!(
                    "the import took longer than {}s (core.dagbag_import_timeout) and was stopped",
                    self.timeout.as_secs()
                )))
            }
        }
    }

    fn spawn_host(&self) -> Result<Host, String> {
        let script = package::host_script().map_err(|e| e.to_string())?;
        let mut command = tokio::process::Command::new(&self.interpreter);
        command
            .arg("-u")
            .arg(&script)
            .arg("parse")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        // A DAG file's top-level code must not see the store's credentials either.
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(crate::is_credential_variable) {
                command.env_remove(&name);
            }
        }
        let mut child = command.spawn().map_err(|e| {
            format!(
                "could not start {} for Python DAG files: {e}",
                self.interpreter
            )
        })?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let pending: Pending = Arc::default();
        let replies = pending.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Reply>(&line) {
                    Ok(reply) => {
                        let waiter = replies
                            .lock()
                            .expect("the pending map is never poisoned")
                            .remove(&reply.id);
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(reply);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%line, error = %e, "unexpected line from the Python importer")
                    }
                }
            }
            // The host is gone: every waiter's sender is dropped, which fails its import.
            replies
                .lock()
                .expect("the pending map is never poisoned")
                .clear();
        });
        Ok(Host {
            child,
            stdin,
            pending,
        })
    }

    async fn read_result(
        &self,
        out: &Path,
        log: &Path,
        reply: &Reply,
    ) -> Result<Vec<Value>, ImportFailure> {
        match tokio::fs::read(out).await {
            Ok(bytes) => {
                let result: ChildResult = serde_json::from_slice(&bytes).map_err(|e| {
                    ImportFailure::plain(format!("the importer wrote an unreadable result: {e}"))
                })?;
                match result.error {
                    Some(err) => Err(ImportFailure {
                        line: err.line,
                        column: err.column,
                        message: err.message,
                        traceback: err.traceback,
                    }),
                    None => Ok(result.dags),
                }
            }
            Err(_) => {
                let mut message = match (reply.signal, reply.exit_code) {
                    (Some(14), _) => format!(
                        "the import took longer than {}s (core.dagbag_import_timeout) and was stopped",
                        self.timeout.as_secs()
                    ),
                    (Some(signal), _) => {
                        format!(
                            "the Python interpreter was killed by signal {signal} while importing the file"
                        )
                    }
                    (None, Some(code)) => {
                        format!(
                            "the Python interpreter exited with code {code} while importing the file"
                        )
                    }
                    (None, None) => "the import ended without a result".to_string(),
                };
                let tail = output_tail(log).await;
                if !tail.is_empty() {
                    message.push_str(": ");
                    message.push_str(&tail);
                }
                Err(ImportFailure::plain(message))
            }
        }
    }
}

/// The last lines the import printed, on one line.
async fn output_tail(log: &Path) -> String {
    let Ok(bytes) = tokio::fs::read(log).await else {
        return String::new();
    };
    let start = bytes.len().saturating_sub(OUTPUT_TAIL_BYTES as usize);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
