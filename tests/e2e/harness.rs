//! Running `dagctl` in a scratch directory, and waiting on what it does with deadlines.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A scratch directory with a `dags/` folder, where `dagctl` runs.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("dags")).expect("dags dir");
        // Tokens stay in the sandbox, never in the user's own token file.
        let tokens = dir.path().join("tokens.json").display().to_string();
        Sandbox {
            dir,
            env: vec![
                ("UPDRAFT__SCHEDULER__POLL_INTERVAL".into(), "300ms".into()),
                ("UPDRAFT__SCHEDULER__RESCAN_INTERVAL".into(), "1s".into()),
                ("UPDRAFT_TOKEN_FILE".into(), tokens),
            ],
        }
    }

    /// A sandbox whose DAGs folder holds the repository's example DAGs (and their scripts).
    pub fn with_examples() -> Sandbox {
        let sandbox = Sandbox::new();
        copy_tree(&repo_root().join("dags"), &sandbox.dags());
        sandbox
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn dags(&self) -> PathBuf {
        self.dir.path().join("dags")
    }

    pub fn write_dag(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dags().join(name);
        std::fs::write(&path, text).expect("write DAG");
        path
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dagctl"));
        command
            .args(args)
            .current_dir(self.path())
            .env_remove("UPDRAFT_CONFIG")
            .env_remove("UPDRAFT_SERVER")
            .env_remove("UPDRAFT_TOKEN")
            .env("RUST_LOG", "warn");
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command
    }

    /// Run to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("dagctl runs")
    }

    /// Run with `input` on standard input.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dagctl runs");
        let mut stdin = child.stdin.take().expect("stdin piped");
        stdin.write_all(input.as_bytes()).expect("write stdin");
        drop(stdin);
        child.wait_with_output().expect("dagctl runs")
    }

    /// Run, require success, and return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "dagctl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Point the client commands at `server` and log in as standalone's `admin`, with the
    /// password it saved on first start.
    pub fn login(&mut self, server: &Server) {
        self.set("UPDRAFT_SERVER", &format!("http://{}", server.address));
        let password =
            std::fs::read_to_string(self.path().join(".updraft/standalone_admin_password.txt"))
                .expect("standalone saved the admin password");
        let out = self.run_with_input(
            &["login", "--username", "admin", "--password-stdin"],
            &password,
        );
        assert!(
            out.status.success(),
            "login failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start an `api-server` alone (no scheduler or worker) on this sandbox's database, with an
    /// Admin user made by `users create`, and log the client commands in to it.
    pub fn api_server_logged_in(&mut self) -> Server {
        let created = self.run_with_input(
            &[
                "users",
                "create",
                "--username",
                "ops",
                "--role",
                "Admin",
                "--password-stdin",
            ],
            "ops-password\n",
        );
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        let api = self.server(&["api-server", "--port", "0"]);
        self.set("UPDRAFT_SERVER", &format!("http://{}", api.address));
        let login = self.run_with_input(
            &["login", "--username", "ops", "--password-stdin"],
            "ops-password\n",
        );
        assert!(
            login.status.success(),
            "{}",
            String::from_utf8_lossy(&login.stderr)
        );
        api
    }

    /// Start standalone and log in to it.
    pub fn standalone_logged_in(&mut self) -> Server {
        let server = self.standalone();
        self.login(&server);
        server
    }

    /// Run, require success, and parse stdout as JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "dagctl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "dagctl {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Start `dagctl standalone --port 0` and wait for its address.
    pub fn standalone(&self) -> Server {
        self.server(&["standalone", "--port", "0"])
    }

    /// Start a server command (`standalone`, `api-server`) and wait for the address it
    /// prints.
    pub fn server(&self, args: &[&str]) -> Server {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("standalone starts");
        let stdout = child.stdout.take().expect("stdout piped");
        // Drain stderr so a chatty server never blocks on a full pipe; keep it for failures.
        let stderr = child.stderr.take().expect("stderr piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[standalone] {line}");
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("http://").nth(1) {
                        let address = rest
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_string();
                        return Server {
                            child,
                            address,
                            stdout: seen,
                        };
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("dagctl {args:?} did not start: {seen:?} (its stderr is above)");
                }
            }
        }
    }
}

/// A running `dagctl standalone`.
pub struct Server {
    pub child: Child,
    pub address: String,
    /// Lines printed before the address (the admin password, …).
    pub stdout: Vec<String>,
}

impl Server {
    /// SIGKILL: no chance to clean up, as in a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let child = &mut self.child;
        wait_for(
            "standalone to exit after SIGTERM",
            Duration::from_secs(30),
            || child.try_wait().expect("wait"),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command's stdout, as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A command's stderr, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A failed command's stderr, which must be exactly one `error: …` line.
pub fn one_error_line(out: &Output) -> String {
    assert!(!out.status.success(), "should fail: {}", stderr(out));
    let text = stderr(out);
    assert!(
        text.starts_with("error: ") && text.trim_end().lines().count() == 1,
        "not one error line: {text:?}"
    );
    text.trim_end().to_string()
}

/// The `key` field of every item of a JSON list.
pub fn ids(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .filter_map(|item| item[key].as_str().map(str::to_string))
        .collect()
}

/// Poll `check` until it returns `Some`, or panic with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(20);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("repository root above crates/dagctl")
        .to_path_buf()
}

/// The state of the newest run of `dag_id`, via the CLI.
pub fn newest_run(sandbox: &Sandbox, dag_id: &str) -> Option<(String, String)> {
    let out = sandbox.run(&["dags", "list-runs", dag_id, "-o", "json"]);
    if !out.status.success() {
        return None;
    }
    let runs: Value = serde_json::from_slice(&out.stdout).ok()?;
    let run = runs.as_array()?.first()?;
    Some((
        run["dag_run_id"].as_str()?.to_string(),
        run["state"].as_str()?.to_string(),
    ))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("readable dir") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

/// `dags test DAG 2024-03-01 -o json` on a copy of the examples, with `args` added; requires
/// success and returns the JSON result and the logs.
pub fn dags_test_examples(dag_id: &str, args: &[&str]) -> (Value, String) {
    let sandbox = Sandbox::with_examples();
    let mut command = vec!["dags", "test", dag_id, "2024-03-01", "-o", "json"];
    command.extend(args);
    let out = sandbox.run(&command);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "dags test {dag_id} failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    let result = serde_json::from_slice(&out.stdout).expect("JSON result");
    (result, stderr)
}

/// Whether this process's effective user is root (the owner of `/proc/self` is the euid).
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A port free on 127.0.0.1 just now (the OS picks it; the listener is closed again).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Send `signal` (a name such as `TERM`) to `pid` with kill(1).
pub fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Wait up to `timeout` for `child` to exit; its status, or `None` if it still runs.
pub fn wait_for_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(5);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            _ => return None,
        }
    }
}

/// The last `lines` lines of a text file (empty when it cannot be read).
pub fn tail_lines(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
