//! Running one try as a child process in its own process group: spawn, stream its output into
//! the try's log, enforce `execution_timeout` (SIGTERM, then SIGKILL after a grace period),
//! and report how it ended.
//!
//! Architecture invariant: a task process never gets database credentials. The worker's
//! environment is inherited, minus every variable that can carry the store's URL.
//!
//! A try owns its process group: once the main process has exited, whatever it left running
//! in the group is killed, so nothing a try started outlives it or keeps its pipes open. And
//! it dies with its worker (`PR_SET_PDEATHSIG`, see [`setpriv`]): a child left running by a
//! dead worker would run unsupervised while the scheduler retries its task as a zombie.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use process_wrap::tokio::{ChildWrapper, CommandWrap, KillOnDrop, ProcessGroup};
use store::LogStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::stop::{StopReason, StopSignal};
use crate::task_log::{TaskLog, TrackLast};

/// How long to keep reading output after the process group is gone. Only a process that left
/// the group (with `setsid`) but kept the pipes open makes this matter.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest command text repeated in the start line of the log.
const MAX_LOGGED_COMMAND: usize = 4096;

/// What to run, fully rendered.
#[derive(Debug, Clone)]
pub(crate) struct ProcessSpec {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
    /// Set on top of the (scrubbed) inherited environment.
    pub env: Vec<(String, String)>,
    /// Whether stdout's last non-empty line is wanted (bash's `return_value`).
    pub track_last_stdout: TrackLast,
}

/// Limits on one try.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub timeout: Option<Duration>,
    pub kill_grace: Duration,
}

/// How a try's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Exited on its own with this code.
    Exited(i32),
    /// Killed by a signal it did not expect from us.
    Signaled(i32),
    /// `execution_timeout` passed and we killed it.
    TimedOut,
    /// The try was asked to stop (the worker's shutdown, a change from outside) and we
    /// killed it.
    Stopped(StopReason),
}

/// A spawned try, its output already streaming into the log.
pub(crate) struct Running {
    child: TryChild,
    pid: u32,
    started: Instant,
    stdout: Option<JoinHandle<Option<String>>>,
    stderr: Option<JoinHandle<Option<String>>>,
}

/// The process of a try: spawned by the worker, or forked by a Python zygote (whose pid
/// leads its own process group, and whose wait status the zygote reports).
enum TryChild {
    Spawned(Box<dyn ChildWrapper>),
    Forked {
        ended: Option<tokio::sync::oneshot::Receiver<i32>>,
        status: Option<ExitStatus>,
        _guard: pydag::TryGuard,
    },
}

impl TryChild {
    async fn wait(&mut self) -> io::Result<ExitStatus> {
        use std::os::unix::process::ExitStatusExt;
        match self {
            TryChild::Spawned(child) => child.wait().await,
            TryChild::Forked { ended, status, .. } => {
                if let Some(status) = status {
                    return Ok(*status);
                }
                let Some(receiver) = ended.as_mut() else {
                    return Err(io::Error::other("the try's Python parent exited"));
                };
                let raw = receiver.await;
                *ended = None;
                let got = raw
                    .map(ExitStatus::from_raw)
                    .map_err(|_| io::Error::other("the try's Python parent exited"))?;
                *status = Some(got);
                Ok(got)
            }
        }
    }

    fn signal(&self, pid: u32, signal: i32) -> io::Result<()> {
        match self {
            TryChild::Spawned(child) => child.signal(signal),
            TryChild::Forked { .. } => pydag::signal_group(pid, signal),
        }
    }
}

/// The result of [`Running::wait`].
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    pub ending: Ending,
    /// Last non-empty stdout line, when asked for.
    pub last_stdout_line: Option<String>,
    /// Last non-empty stderr line: the likely error message, for failure notifications.
    pub last_stderr_line: Option<String>,
}

/// True for variables that may carry the store's URL or credentials (one definition for every
/// process Updraft starts).
pub(crate) use pydag::is_credential_variable;

/// Spawn the process in a new process group, with stdin closed and both output pipes read
/// into `log`.
pub(crate) fn spawn(spec: &ProcessSpec, log: &TaskLog) -> io::Result<Running> {
    spawn_as_child_of(spec, log, setpriv(), std::process::id())
}

/// [`spawn`] with the `setpriv` to use and the pid the child must find as its parent: the
/// worker's, except in the test that plays a worker which died before the child started.
fn spawn_as_child_of(
    spec: &ProcessSpec,
    log: &TaskLog,
    setpriv: Option<&Path>,
    parent: u32,
) -> io::Result<Running> {
    let argv = argv(spec, setpriv, parent);
    let mut command = CommandWrap::with_new(&argv.program, |cmd| {
        cmd.args(&argv.args)
            .current_dir(&spec.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(is_credential_variable) {
                cmd.env_remove(&name);
            }
        }
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
        if argv.parent_death == ParentDeath::InTheChild {
            pydag::die_with_parent(cmd);
        }
    });
    command.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
    let mut child = command.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("the process exited before its id could be read"))?;
    let stdout = child
        .stdout()
        .take()
        .map(|pipe| log.read_pipe(pipe, LogStream::Stdout, spec.track_last_stdout));
    let stderr = child
        .stderr()
        .take()
        .map(|pipe| log.read_pipe(pipe, LogStream::Stderr, TrackLast::Yes));
    Ok(Running {
        child: TryChild::Spawned(child),
        pid,
        started: Instant::now(),
        stdout,
        stderr,
    })
}

/// What is executed for a spec, and who sets its parent-death signal.
#[derive(Debug, PartialEq, Eq)]
struct Argv {
    program: OsString,
    args: Vec<OsString>,
    parent_death: ParentDeath,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParentDeath {
    /// `setpriv --pdeathsig KILL` sets it before it execs bash, whose script first checks
    /// that its parent is still the worker.
    Setpriv,
    /// The forked child sets it and checks its parent before exec
    /// (`pydag::die_with_parent`).
    InTheChild,
}

/// How `spec` is started when the worker's pid is `parent`. A `bash -c SCRIPT …` goes
/// through `setpriv` when there is one (a `posix_spawn`, no code between fork and exec), with
/// SCRIPT prefixed by a check of its parent on the same line, so that its line numbers stay
/// the same; bash reads `$PPID` at startup, after setpriv's `prctl`. Any other program is
/// forked and sets the signal itself.
fn argv(spec: &ProcessSpec, setpriv: Option<&Path>, parent: u32) -> Argv {
    match (setpriv, bash_script(spec)) {
        (Some(setpriv), Some(script)) => {
            let mut args: Vec<OsString> = vec![
                "--pdeathsig".into(),
                "KILL".into(),
                "--".into(),
                on_path(spec),
            ];
            args.extend(spec.args.iter().enumerate().map(|(index, arg)| {
                if index == script {
                    parent_checked(arg, parent)
                } else {
                    arg.clone()
                }
            }));
            Argv {
                program: setpriv.into(),
                args,
                parent_death: ParentDeath::Setpriv,
            }
        }
        _ => Argv {
            program: spec.program.clone(),
            args: spec.args.clone(),
            parent_death: ParentDeath::InTheChild,
        },
    }
}

/// The spec's program as the absolute path found on the worker's `PATH`, looked up once per
/// name: setpriv's `execvp` otherwise tries every `PATH` entry before the one that has it, on
/// every try (eight failed execs per bash task on a typical machine). As given when it names
/// a path, is not found, or the try sets its own `PATH`.
fn on_path(spec: &ProcessSpec) -> OsString {
    static FOUND: OnceLock<Mutex<HashMap<OsString, Option<PathBuf>>>> = OnceLock::new();
    let program = &spec.program;
    if Path::new(program).components().count() != 1 || spec.env.iter().any(|(k, _)| k == "PATH") {
        return program.clone();
    }
    let mut found = FOUND
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    found
        .entry(program.clone())
        .or_insert_with(|| {
            std::env::var_os("PATH")
                .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .map(|dir| dir.join(program))
                .find(|candidate| candidate.is_file())
        })
        .as_ref()
        .map_or_else(|| program.clone(), |path| path.clone().into_os_string())
}

/// The index of SCRIPT in a `bash -c SCRIPT …` spec (also the outer shell of a merged-stderr
/// spec, which then checks for the command it execs).
fn bash_script(spec: &ProcessSpec) -> Option<usize> {
    let bash = Path::new(&spec.program).file_name() == Some(OsStr::new("bash"));
    (bash && spec.args.len() >= 2 && spec.args[0] == "-c").then_some(1)
}

/// `script` run only if the shell's parent is `parent`: otherwise the worker died before the
/// parent-death signal was set, and the shell exits as if that signal had come (137).
fn parent_checked(script: &OsStr, parent: u32) -> OsString {
    let mut checked = OsString::from(format!("[ \"$PPID\" = \"{parent}\" ] || exit 137; "));
    checked.push(script);
    checked
}

/// A try forked by a Python zygote, supervised like a spawned one: its output read into
/// `log`, its process group signalled on timeout or shutdown.
pub(crate) fn adopt(forked: pydag::ForkedTry, log: &TaskLog) -> Running {
    let pydag::ForkedTry {
        pid,
        stdout,
        stderr,
        ended,
        guard,
    } = forked;
    Running {
        child: TryChild::Forked {
            ended: Some(ended),
            status: None,
            _guard: guard,
        },
        pid,
        started: Instant::now(),
        stdout: Some(log.read_pipe(stdout, LogStream::Stdout, TrackLast::No)),
        stderr: Some(log.read_pipe(stderr, LogStream::Stderr, TrackLast::Yes)),
    }
}

/// util-linux's `setpriv`, when the machine has it: a `bash -c` child is then started as
/// `setpriv --pdeathsig KILL -- bash -c SCRIPT …`, which sets the parent-death signal and
/// execs bash.
///
/// Why: setting it ourselves needs code between fork and exec, which forces a real `fork` of
/// this multi-threaded process (copying its page tables and flushing TLBs on every core),
/// while without such code the standard library uses `posix_spawn`. One extra small exec is
/// far cheaper: a fan-out of 1,000 no-op tasks went from 163 to 252 tasks/s. It leaves a
/// window, between spawn and setpriv's `prctl`, in which a dying worker would leave the child
/// orphaned (its parent then PID 1 or a subreaper); SCRIPT's first command closes it by
/// checking `$PPID` against the worker's pid ([`argv`]). Other programs cannot be made to
/// check, so they, and every child when there is no setpriv, are forked and set the signal
/// themselves with the same check (`pydag::die_with_parent`).
fn setpriv() -> Option<&'static Path> {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            std::env::var_os("PATH")
                .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .map(|dir| dir.join("setpriv"))
                .find(|candidate| candidate.is_file())
        })
        .as_deref()
}

impl Running {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Wait for the process to end, killing its group on timeout or when `stop` is set.
    /// Writes the timeout and kill lines to `log`; the caller writes the exit status.
    pub(crate) async fn wait(
        mut self,
        limits: Limits,
        stop: &StopSignal,
        log: &TaskLog,
    ) -> Finished {
        let deadline = limits.timeout.map(|t| self.started + t);
        let first = tokio::select! {
            status = self.child.wait() => Ok(status),
            () = sleep_until(deadline) => Err(Ending::TimedOut),
            reason = stop.stopped() => Err(Ending::Stopped(reason)),
        };
        let (status, forced) = match first {
            Ok(status) => (status, None),
            Err(forced) => {
                let line = match &forced {
                    Ending::Stopped(reason) => {
                        format!("{reason}; stopping the try: sent SIGTERM to the process group")
                    }
                    _ => {
                        let secs = limits.timeout.map(|t| t.as_secs_f64()).unwrap_or_default();
                        format!(
                            "execution_timeout of {}s exceeded; sent SIGTERM to the process group",
                            format_secs(secs)
                        )
                    }
                };
                log.system(line).await;
                self.signal_group(libc::SIGTERM);
                (
                    self.wait_with_grace(limits.kill_grace, log).await,
                    Some(forced),
                )
            }
        };
        // Whatever the main process left behind in its group goes with it.
        self.signal_group(libc::SIGKILL);
        let (last_stdout_line, last_stderr_line) = self.drain(log).await;
        let ending = match (forced, status) {
            (Some(forced), _) => forced,
            (None, Ok(status)) => ending_of(status),
            (None, Err(err)) => {
                log.system(format!("could not wait for the task process: {err}"))
                    .await;
                Ending::Exited(-1)
            }
        };
        Finished {
            ending,
            last_stdout_line,
            last_stderr_line,
        }
    }

    async fn wait_with_grace(&mut self, grace: Duration, log: &TaskLog) -> io::Result<ExitStatus> {
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                log.system(format!(
                    "process still running {}s after SIGTERM; sent SIGKILL to the process group",
                    format_secs(grace.as_secs_f64())
                ))
                .await;
                self.signal_group(libc::SIGKILL);
                self.child.wait().await
            }
        }
    }

    fn signal_group(&self, signal: i32) {
        if let Err(err) = self.child.signal(self.pid, signal) {
            // ESRCH: the group is already empty, which is what we wanted.
            if err.raw_os_error() != Some(libc::ESRCH) {
                tracing::warn!(pid = self.pid, signal, error = %err, "could not signal task process group");
            }
        }
    }

    /// Wait for both pipe readers to reach end of file; returns stdout's last line.
    async fn drain(&mut self, log: &TaskLog) -> (Option<String>, Option<String>) {
        let stdout = self.stdout.take();
        let stderr = self.stderr.take();
        let abort_stdout = stdout.as_ref().map(JoinHandle::abort_handle);
        let abort_stderr = stderr.as_ref().map(JoinHandle::abort_handle);
        let both = async {
            let last = match stdout {
                Some(handle) => handle.await.ok().flatten(),
                None => None,
            };
            let last_error = match stderr {
                Some(handle) => handle.await.ok().flatten(),
                None => None,
            };
            (last, last_error)
        };
        match tokio::time::timeout(DRAIN_TIMEOUT, both).await {
            Ok(last) => last,
            Err(_) => {
                for handle in [abort_stdout, abort_stderr].into_iter().flatten() {
                    handle.abort();
                }
                log.system(
                    "output pipes are still held open by a process outside the task's process \
                     group; stopped reading them",
                )
                .await;
                (None, None)
            }
        }
    }
}

fn ending_of(status: ExitStatus) -> Ending {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Ending::Exited(code),
        (None, Some(signal)) => Ending::Signaled(signal),
        (None, None) => Ending::Exited(-1),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The name of a signal number, for the log (`SIGKILL`), or `signal N` when unusual.
pub(crate) fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}

/// Seconds without a useless `.0`: `30`, `1.5`.
pub(crate) fn format_secs(secs: f64) -> String {
    if secs.fract() == 0.0 {
        format!("{secs:.0}")
    } else {
        format!("{secs}")
    }
}

/// A command for the start line of the log, cut if very long.
pub(crate) fn loggable(text: &str) -> String {
    if text.len() <= MAX_LOGGED_COMMAND {
        return text.to_string();
    }
    let mut end = MAX_LOGGED_COMMAND;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
        assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
        assert_eq!(signal_name(64), "signal 64");
    }

    fn bash(script: &str) -> ProcessSpec {
        ProcessSpec {
            program: "bash".into(),
            args: vec!["-c".into(), script.into()],
            cwd: std::env::temp_dir(),
            env: Vec::new(),
            track_last_stdout: TrackLast::No,
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    const GUARD: &str = "[ \"$PPID\" = \"4242\" ] || exit 137; ";

    #[test]
    fn bash_through_setpriv_checks_its_parent_on_the_scripts_first_line() {
        let setpriv = Path::new("/usr/bin/setpriv");
        let started = argv(&bash("echo $LINENO\nexit 3"), Some(setpriv), 4242);
        assert_eq!(started.program, "/usr/bin/setpriv");
        assert_eq!(started.parent_death, ParentDeath::Setpriv);
        // bash by its absolute path, found once, so setpriv tries no other PATH entry.
        let bash_path = on_path(&bash(""));
        assert!(
            Path::new(&bash_path).is_absolute() && Path::new(&bash_path).ends_with("bash"),
            "{bash_path:?}"
        );
        assert_eq!(
            strings(&started.args),
            [
                "--pdeathsig",
                "KILL",
                "--",
                &bash_path.to_string_lossy(),
                "-c",
                &format!("{GUARD}echo $LINENO\nexit 3"),
            ]
        );

        // The merged-stderr wrapper: its outer shell checks, then execs the command as is.
        let mut merged = bash("exec 2>&1 && exec \"$0\" \"$@\"");
        merged
            .args
            .extend(["bash".into(), "-c".into(), "echo hi".into()]);
        let merged = argv(&merged, Some(setpriv), 4242);
        assert_eq!(
            strings(&merged.args[4..]),
            [
                "-c",
                &format!("{GUARD}exec 2>&1 && exec \"$0\" \"$@\""),
                "bash",
                "-c",
                "echo hi",
            ]
        );
    }

    #[test]
    fn other_programs_and_machines_without_setpriv_fork_and_check_in_the_child() {
        let python = ProcessSpec {
            program: "python3".into(),
            args: vec!["-u".into(), "runner.py".into()],
            ..bash("")
        };
        let setpriv = Path::new("/usr/bin/setpriv");
        for (spec, setpriv) in [
            (python.clone(), Some(setpriv)),
            (python, None),
            (bash("echo hi"), None),
            // Not a `-c` script: nothing to prefix.
            (
                ProcessSpec {
                    args: vec!["script.sh".into()],
                    ..bash("")
                },
                Some(setpriv),
            ),
        ] {
            let started = argv(&spec, setpriv, 4242);
            assert_eq!(started.parent_death, ParentDeath::InTheChild, "{spec:?}");
            assert_eq!(started.program, spec.program);
            assert_eq!(started.args, spec.args);
        }
    }

    /// Spawn `script` as a child of `parent` (the worker's pid, or a wrong one: a worker that
    /// died before the child started) and say how it ended.
    async fn run_as_child_of(script: &str, parent: u32) -> Ending {
        let memory = Arc::new(crate::task_log::MemoryLog::default());
        let stop = StopSignal::new();
        let reporting = Arc::new(crate::reporting::Reporting::new(Duration::from_secs(10)));
        let log = TaskLog::start(memory, (1, 1), 1 << 20, stop.clone(), reporting);
        let running = spawn_as_child_of(&bash(script), &log, setpriv(), parent).expect("spawn");
        let limits = Limits {
            timeout: Some(Duration::from_secs(30)),
            kill_grace: Duration::from_secs(1),
        };
        let finished = running.wait(limits, &stop, &log).await;
        log.hand_over().await;
        finished.ending
    }

    #[tokio::test]
    async fn a_bash_child_whose_worker_died_before_it_started_never_runs_the_command() {
        if setpriv().is_none() {
            eprintln!("skipped: no setpriv on PATH, so children are forked and check before exec");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let ran = dir.path().join("ran");
        let script = format!("touch '{}'", ran.display());
        // PID 1 never spawns a worker's tasks: as if the worker had died and the child were
        // adopted before bash started.
        assert_eq!(run_as_child_of(&script, 1).await, Ending::Exited(137));
        assert!(!ran.exists(), "the command ran without its worker");
        // With the right parent the same spec runs the command.
        assert_eq!(
            run_as_child_of(&script, std::process::id()).await,
            Ending::Exited(0)
        );
        assert!(ran.exists());
    }

    #[test]
    fn seconds_are_printed_plainly() {
        assert_eq!(format_secs(30.0), "30");
        assert_eq!(format_secs(1.5), "1.5");
    }
}
