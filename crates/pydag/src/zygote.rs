//! Warm Python parents for running tries: one zygote process per loaded DAG version (its
//! source, and the variables and connections it was loaded with), which has executed the
//! DAG file once and forks a child per try. A try then costs a fork, not an interpreter start
//! and a re-import of the file.
//!
//! Protocol (see `airflow/_updraft/zygote.py`): a `SOCK_SEQPACKET` socket as the zygote's
//! stdin carries one request per message with the try's stdout and stderr pipes attached
//! (`SCM_RIGHTS`), so the worker reads a forked try's output exactly as a spawned one's; the
//! zygote's stdout carries JSON replies (the child's pid once it leads its own process
//! group, then its raw wait status). The worker signals the try's group itself.
//!
//! A zygote dies with its worker (parent-death signal), and its children die with it. It is
//! kept while it has tries in flight, and otherwise dropped when idle too long or when more
//! than [`MAX_IDLE_ZYGOTES`] idle ones are kept. A DAG version that fails to load in a
//! zygote is remembered, and its tries run cold (where the failure reaches the try's log).

use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, sendmsg, socketpair,
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::{OnceCell, oneshot};

use crate::spec::Load;
use crate::{PythonSettings, package};

/// Idle zygotes kept beyond those with tries in flight.
pub const MAX_IDLE_ZYGOTES: usize = 8;
/// An idle zygote older than this is dropped (module-level code re-runs in a fresh one).
const IDLE_LIFETIME: Duration = Duration::from_secs(600);
/// Extra time a zygote gets beyond the import timeout to say it has loaded the file.
const LOAD_GRACE: Duration = Duration::from_secs(5);

/// Why a try could not be forked from a zygote; the caller runs it cold instead.
#[derive(Debug, thiserror::Error)]
pub enum ZygoteError {
    /// The DAG file did not load in a zygote (the cold run reports why, in the try's log).
    #[error("the DAG file did not load in a warm Python parent: {0}")]
    Load(String),
    /// The zygote could not be started or reached.
    #[error("the warm Python parent could not be used: {0}")]
    Io(#[from] io::Error),
}

/// One try to fork: its spec file, working directory and environment (set on top of the
/// zygote's own, which is the worker's minus its credential variables).
#[derive(Debug, Clone)]
pub struct TryRequest {
    pub spec: PathBuf,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
}

/// A forked try: its pid (also its process group), its output, and how it will end.
#[derive(Debug)]
pub struct ForkedTry {
    pub pid: u32,
    pub stdout: pipe::Receiver,
    pub stderr: pipe::Receiver,
    /// The raw wait status; an error if the zygote died before reporting it.
    pub ended: oneshot::Receiver<i32>,
    /// Keeps the zygote (and its in-flight count) alive while the try runs.
    pub guard: TryGuard,
}

/// Marks a try in flight on a zygote for as long as it is held.
#[derive(Debug)]
pub struct TryGuard {
    zygote: Arc<Zygote>,
}

impl Drop for TryGuard {
    fn drop(&mut self) {
        self.zygote.in_flight.fetch_sub(1, Ordering::AcqRel);
        *self.zygote.last_used.lock().expect("never poisoned") = Instant::now();
    }
}

/// The zygotes of one worker, keyed by what they loaded.
pub struct Zygotes {
    settings: PythonSettings,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    scratch: tempfile::TempDir,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Zygotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zygotes")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A zygote being started, started, or known not to load.
#[derive(Default)]
struct Slot {
    zygote: OnceCell<Result<Arc<Zygote>, String>>,
}

type Pending = Mutex<HashMap<u64, PendingTry>>;

#[derive(Default)]
struct PendingTry {
    pid: Option<oneshot::Sender<Result<u32, String>>>,
    ended: Option<oneshot::Sender<i32>>,
}

#[derive(Debug, Deserialize)]
struct Reply {
    id: Option<u64>,
    pid: Option<u32>,
    status: Option<i32>,
    failed: Option<String>,
}

struct Zygote {
    socket: AsyncFd<OwnedFd>,
    pending: Arc<Pending>,
    alive: Arc<AtomicBool>,
    in_flight: AtomicUsize,
    last_used: Mutex<Instant>,
    _child: tokio::process::Child,
}

impl std::fmt::Debug for Zygote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zygote")
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl Zygotes {
    /// Zygotes started with `settings`' interpreter, their environment cleared of every
    /// inherited variable that may carry the store's credentials
    /// ([`crate::is_credential_variable`]).
    pub fn new(settings: PythonSettings) -> io::Result<Zygotes> {
        Ok(Zygotes {
            settings,
            slots: Mutex::default(),
            scratch: tempfile::Builder::new()
                .prefix("updraft-zygotes-")
                .tempdir()?,
            next_id: AtomicU64::new(1),
        })
    }

    /// Fork `request` from the zygote that has loaded `load` (what the try's spec loads:
    /// fileloc, source, dags_folder, variables, connections, smtp), starting it first if
    /// there is none.
    pub async fn fork(&self, load: &Load, request: &TryRequest) -> Result<ForkedTry, ZygoteError> {
        let load = serde_json::to_string(load).expect("a load holds only JSON values");
        let key = key_of(&load);
        let load = load.as_str();
        let slot = self.slot(&key);
        let zygote = slot
            .zygote
            .get_or_init(|| async { self.start(&key, load).await.map(Arc::new) })
            .await
            .clone()
            .map_err(ZygoteError::Load)?;
        if !zygote.alive.load(Ordering::Acquire) {
            self.forget(&key, &slot);
            return Err(ZygoteError::Io(io::Error::other(
                "the warm Python parent has exited",
            )));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        zygote.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = TryGuard {
            zygote: zygote.clone(),
        };
        let (stdout_r, stdout_w) = io::pipe()?;
        let (stderr_r, stderr_w) = io::pipe()?;
        let (pid_tx, pid_rx) = oneshot::channel();
        let (ended_tx, ended_rx) = oneshot::channel();
        zygote.pending.lock().expect("never poisoned").insert(
            id,
            PendingTry {
                pid: Some(pid_tx),
                ended: Some(ended_tx),
            },
        );
        let message = json!({
            "id": id,
            "spec": request.spec,
            "cwd": request.cwd,
            "env": request.env.iter().cloned().collect::<HashMap<_, _>>(),
        })
        .to_string();
        let sent = zygote
            .send(message.as_bytes(), &[stdout_w.into(), stderr_w.into()])
            .await;
        if let Err(err) = sent {
            zygote.pending.lock().expect("never poisoned").remove(&id);
            self.forget(&key, &slot);
            return Err(err.into());
        }
        let pid = match pid_rx.await {
            Ok(Ok(pid)) => pid,
            Ok(Err(failed)) => return Err(ZygoteError::Io(io::Error::other(failed))),
            Err(_) => {
                self.forget(&key, &slot);
                return Err(ZygoteError::Io(io::Error::other(
                    "the warm Python parent exited before starting the try",
                )));
            }
        };
        Ok(ForkedTry {
            pid,
            stdout: pipe::Receiver::from_owned_fd(OwnedFd::from(stdout_r))?,
            stderr: pipe::Receiver::from_owned_fd(OwnedFd::from(stderr_r))?,
            ended: ended_rx,
            guard,
        })
    }

    /// The slot for `key`, after dropping zygotes that are dead, idle too long, or idle
    /// beyond the most kept.
    fn slot(&self, key: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().expect("never poisoned");
        let now = Instant::now();
        let mut idle: Vec<(Instant, String)> = Vec::new();
        slots.retain(|k, slot| match slot.zygote.get() {
            None => true,
            Some(Err(_)) => true,
            Some(Ok(z)) => {
                if !z.alive.load(Ordering::Acquire) {
                    return false;
                }
                if z.in_flight.load(Ordering::Acquire) == 0 {
                    let used = *z.last_used.lock().expect("never poisoned");
                    if now.duration_since(used) > IDLE_LIFETIME && k != key {
                        return false;
                    }
                    idle.push((used, k.clone()));
                }
                true
            }
        });
        if idle.len() > MAX_IDLE_ZYGOTES {
            idle.sort();
            for (_, k) in idle.iter().take(idle.len() - MAX_IDLE_ZYGOTES) {
                if k != key {
                    slots.remove(k);
                }
            }
        }
        slots.entry(key.to_string()).or_default().clone()
    }

    fn forget(&self, key: &str, slot: &Arc<Slot>) {
        let mut slots = self.slots.lock().expect("never poisoned");
        if slots.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(key);
        }
    }

    /// Start a zygote for `load` and wait until it has loaded the file.
    async fn start(&self, key: &str, load: &str) -> Result<Zygote, String> {
        let script = package::host_script().map_err(|e| e.to_string())?;
        let load_file = self.scratch.path().join(format!("{key}.json"));
        tokio::fs::write(&load_file, load)
            .await
            .map_err(|e| format!("could not write {}: {e}", load_file.display()))?;
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| format!("could not create a socket pair: {e}"))?;
        set_nonblocking(&ours).map_err(|e| e.to_string())?;
        let mut command = tokio::process::Command::new(&self.settings.interpreter);
        command
            .arg("-u")
            .arg(&script)
            .arg("zygote")
            .arg(&load_file)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(crate::is_credential_variable) {
                command.env_remove(&name);
            }
        }
        crate::die_with_parent(&mut command);
        let mut child = command.spawn().map_err(|e| {
            format!(
                "could not start {} for a Python task: {e}",
                self.settings.interpreter
            )
        })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        tokio::spawn(forward_stderr(stderr, load_file.clone()));
        let mut replies = BufReader::new(stdout).lines();
        let wait = self.settings.import_timeout + LOAD_GRACE;
        let first = tokio::time::timeout(wait, replies.next_line()).await;
        let _ = tokio::fs::remove_file(&load_file).await;
        match first {
            Ok(Ok(Some(line))) => {
                let ready: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                if ready.get("ready") != Some(&Value::Bool(true)) {
                    let error = ready
                        .get("error")
                        .and_then(Value::as_str)
                        .unwrap_or(line.as_str())
                        .to_string();
                    return Err(error);
                }
            }
            Ok(Ok(None)) => return Err("the Python process exited while loading".to_string()),
            Ok(Err(e)) => return Err(format!("could not read from the Python process: {e}")),
            Err(_) => {
                return Err(format!(
                    "loading took longer than {}s (core.dagbag_import_timeout)",
                    self.settings.import_timeout.as_secs()
                ));
            }
        }
        let pending: Arc<Pending> = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        tokio::spawn(dispatch_replies(replies, pending.clone(), alive.clone()));
        Ok(Zygote {
            socket: register(ours).map_err(|e| e.to_string())?,
            pending,
            alive,
            in_flight: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
            _child: child,
        })
    }
}

impl Zygote {
    /// Send one request message with `fds` attached.
    async fn send(&self, message: &[u8], fds: &[OwnedFd]) -> io::Result<()> {
        let raw: Vec<i32> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        loop {
            let mut ready = self.socket.writable().await?;
            let sent = ready.try_io(|socket| {
                let iov = [IoSlice::new(message)];
                let rights = [ControlMessage::ScmRights(&raw)];
                sendmsg::<UnixAddr>(
                    socket.as_raw_fd(),
                    &iov,
                    &rights,
                    MsgFlags::MSG_NOSIGNAL,
                    None,
                )
                .map_err(io::Error::from)
            });
            match sent {
                Ok(result) => return result.map(|_| ()),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Route each reply line to the try it concerns; when the zygote's stdout closes, every
/// try still waiting learns that it died.
async fn dispatch_replies(
    mut replies: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pending: Arc<Pending>,
    alive: Arc<AtomicBool>,
) {
    while let Ok(Some(line)) = replies.next_line().await {
        let reply = match serde_json::from_str::<Reply>(&line) {
            Ok(reply) => reply,
            Err(e) => {
                tracing::warn!(%line, error = %e, "unexpected line from a Python zygote");
                continue;
            }
        };
        let Some(id) = reply.id else { continue };
        let mut pending = pending.lock().expect("never poisoned");
        let Some(entry) = pending.get_mut(&id) else {
            continue;
        };
        if let Some(failed) = reply.failed {
            if let Some(tx) = entry.pid.take() {
                let _ = tx.send(Err(failed));
            }
            pending.remove(&id);
        } else if let Some(pid) = reply.pid {
            if let Some(tx) = entry.pid.take() {
                let _ = tx.send(Ok(pid));
            }
        } else if let Some(status) = reply.status {
            if let Some(tx) = entry.ended.take() {
                let _ = tx.send(status);
            }
            pending.remove(&id);
        }
    }
    alive.store(false, Ordering::Release);
    pending.lock().expect("never poisoned").clear();
}

/// The zygote's own stderr (its diagnostics, and what the DAG file printed while loading).
async fn forward_stderr(stderr: tokio::process::ChildStderr, load_file: PathBuf) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(zygote = %load_file.display(), "{line}");
    }
}

/// What a zygote loaded, as a stable key: the hash of the load document.
fn key_of(load: &str) -> String {
    let digest = Sha256::digest(load.as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// `fd` registered with the runtime's reactor.
#[allow(unsafe_code)]
fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the `OwnedFd` is a valid, non-blocking socket owned by the `AsyncFd` from here
    // on; nothing else replaces or closes it while it is registered.
    unsafe { AsyncFd::register(fd) }.map_err(|e| io::Error::other(e.to_string()))
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(())
}

/// Signal a forked try's whole process group (its pid leads it).
pub fn signal_group(pid: u32, signal: i32) -> io::Result<()> {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    let pgid = i32::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    let signal = Signal::try_from(signal).map_err(io::Error::from)?;
    killpg(Pid::from_raw(pgid), signal).map_err(io::Error::from)
}
