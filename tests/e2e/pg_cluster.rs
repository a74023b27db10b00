//! A throw-away Postgres cluster of one test's own: `initdb` into a temporary directory and
//! `postgres` as a child process on a free loopback port, which the test may stop and start
//! again (the chaos test's outage) without disturbing the shared server other tests use.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::ci;

use crate::harness::{
    free_port, running_as_root, send_signal, tail_lines, wait_for, wait_for_exit,
};

/// The user Postgres runs as when the test runs as root (Postgres refuses root).
const POSTGRES_USER: &str = "postgres";

/// How long a start or a stop may take before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running (or deliberately stopped) Postgres cluster, removed with its files on drop.
pub struct PgCluster {
    /// The server binaries (`postgres`, `initdb`, `pg_isready`, `createdb`).
    bin: PathBuf,
    /// Holds `data/`, the Unix socket and `postgres.log`; owned by [`POSTGRES_USER`] as root.
    dir: tempfile::TempDir,
    port: u16,
    /// `Some(user)` when the test runs as root and Postgres must run as `user`.
    run_as: Option<&'static str>,
    /// The postmaster while it runs; `None` while stopped.
    child: Option<Child>,
    /// How many times the server was started (the first start included).
    starts: u32,
}

impl PgCluster {
    /// A new cluster, initialised and started, or `None` (the test skips, saying why) when no
    /// Postgres binaries are installed — under `CI=true` that is a failure instead.
    pub fn start() -> Option<PgCluster> {
        let Some(bin) = server_binaries() else {
            return ci::unavailable(
                "Postgres server binaries (/usr/lib/postgresql/*/bin)",
                "none installed",
            );
        };
        let run_as = running_as_root().then_some(POSTGRES_USER);
        let dir = tempfile::Builder::new()
            .prefix("updraft-pg-")
            .tempdir()
            .expect("temp dir for the cluster");
        if let Some(user) = run_as {
            let (uid, gid) = user_ids(user);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("hand the cluster's directory to postgres");
        }
        let mut cluster = PgCluster {
            bin,
            dir,
            port: free_port(),
            run_as,
            child: None,
            starts: 0,
        };
        cluster.initdb();
        cluster.start_server();
        Some(cluster)
    }

    /// The URL of `database` on this cluster (trust auth, user `postgres`).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Create an empty database.
    pub fn create_database(&self, name: &str) {
        let out = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg(name)
            .output()
            .expect("createdb runs");
        assert!(
            out.status.success(),
            "createdb {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Fast shutdown (SIGINT: sessions are ended, then a clean checkpoint) and wait for the
    /// postmaster to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        send_signal(child.id(), "INT");
        let exited = wait_for_exit(&mut child, READY_TIMEOUT);
        assert!(
            exited.is_some(),
            "Postgres did not stop within {READY_TIMEOUT:?}:\n{}",
            self.log_tail(20)
        );
    }

    /// Start the stopped server again on the same port and wait until it accepts connections.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "Postgres is already running");
        self.start_server();
    }

    /// [`PgCluster::stop`] then [`PgCluster::start_again`], with no pause between.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// How many times the server was started, the first start included.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_lines(&self.dir.path().join("postgres.log"), lines)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `program` from the server binaries, as the Postgres user when running as root. The
    /// parent-death signal makes a crashed test take the server with it; the second `setpriv`
    /// sets it after the user change, which would clear it.
    fn server_command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        match self.run_as {
            Some(user) => {
                let mut command = Command::new("setpriv");
                command
                    .args(["--reuid", user, "--regid", user, "--init-groups", "--"])
                    .args(["setpriv", "--pdeathsig", "KILL", "--"])
                    .arg(program);
                command
            }
            None => {
                let mut command = Command::new("setpriv");
                command.args(["--pdeathsig", "KILL", "--"]).arg(program);
                command
            }
        }
    }

    fn initdb(&self) {
        let out = self
            .server_command("initdb")
            .arg("-D")
            .arg(self.data())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start_server(&mut self) {
        let log_path = self.dir.path().join("postgres.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open postgres.log");
        let child = self
            .server_command("postgres")
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-k")
            .arg(self.dir.path())
            // Several components, each with a pool, plus their replacements while the killed
            // ones' sessions are being ended.
            .args(["-c", "max_connections=300"])
            // A throw-away cluster: durability against a machine crash is not under test,
            // and fsync would dominate this small machine's time.
            .args(["-c", "fsync=off"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        self.child = Some(child);
        self.starts += 1;
        let port = self.port.to_string();
        let isready = self.bin.join("pg_isready");
        let started = Instant::now();
        wait_for(
            "the private Postgres to accept connections",
            READY_TIMEOUT,
            || {
                if let Some(child) = self.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    panic!(
                        "Postgres exited at start ({status}):\n{}",
                        tail_lines(&log_path, 30)
                    );
                }
                let ready = Command::new(&isready)
                    .args(["-q", "-h", "127.0.0.1", "-p", &port])
                    .status()
                    .is_ok_and(|s| s.success());
                ready.then_some(())
            },
        );
        eprintln!(
            "[pg_cluster] Postgres ready on 127.0.0.1:{} after {:.1}s (start #{})",
            self.port,
            started.elapsed().as_secs_f64(),
            self.starts
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Immediate shutdown: nothing is kept, so nothing needs a checkpoint. Nothing here may
        // panic, since this may run while a failed test unwinds.
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), "QUIT");
            if wait_for_exit(&mut child, Duration::from_secs(10)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The newest installed server's binaries.
fn server_binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// The uid and gid of `user`, from `id`.
fn user_ids(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, user])
            .output()
            .expect("id runs");
        assert!(
            out.status.success(),
            "running Postgres as root needs a `{user}` user: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("id prints a number")
    };
    (id("-u"), id("-g"))
}

/// The cluster the chaos test relies on: it serves, stops, and starts again on the same port
/// with its data.
#[test]
fn a_private_cluster_restarts_on_its_port_with_its_data() {
    let Some(mut cluster) = PgCluster::start() else {
        return;
    };
    cluster.create_database("kept");
    let port = cluster.port();
    cluster.restart();
    assert_eq!((cluster.port(), cluster.starts()), (port, 2));
    let out = Command::new(cluster.bin.join("psql"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "kept",
        ])
        .args(["-Atc", "select current_database()"])
        .output()
        .expect("psql runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "kept",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
