//! `docker-compose.yml` as local processes: each Updraft service's `command` and
//! `environment`, run by the built `dagctl` in a working directory of its own, against the
//! database a test gives and on free loopback ports; components killed with SIGKILL, started
//! again and stopped on the test's say (`Topology`, shared with `chaos.rs`). Its tests check
//! what the compose file promises and that runs go through that topology.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use testkit::postgres::ScratchDatabase;

use crate::harness::{
    free_port, repo_root, running_as_root, send_signal, tail_lines, wait_for, wait_for_exit,
};

/// How long a component may take to pass its healthcheck after a start.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a component may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one healthcheck command may run.
const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// The user the topology's API clients log in as, made with `dagctl users create`.
pub const ADMIN_USER: &str = "topology-admin";
const ADMIN_PASSWORD: &str = "topology-admin-password";

// --- the compose file --------------------------------------------------------------------

/// The part of a compose file the topology reads; everything else (build, deploy, …) is
/// Docker's business.
#[derive(Debug, Deserialize)]
struct ComposeFile {
    services: BTreeMap<String, ServiceSpec>,
}

/// One service as the compose file declares it (after YAML anchors and merge keys).
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceSpec {
    pub image: Option<String>,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    pub hostname: Option<String>,
    pub healthcheck: Option<HealthcheckSpec>,
    pub restart: Option<String>,
    #[serde(default)]
    pub depends_on: BTreeMap<String, DependsOnSpec>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub ports: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HealthcheckSpec {
    pub test: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DependsOnSpec {
    pub condition: String,
}

impl ServiceSpec {
    /// Whether this service runs the Updraft image (as opposed to Postgres).
    pub fn is_updraft(&self) -> bool {
        self.image
            .as_deref()
            .is_some_and(|i| i.starts_with("updraft"))
    }
}

/// The services of the repository's `docker-compose.yml`.
pub fn compose_services() -> BTreeMap<String, ServiceSpec> {
    let path = repo_root().join("docker-compose.yml");
    let text = std::fs::read_to_string(&path).expect("docker-compose.yml is readable");
    let file: ComposeFile = serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    file.services
}

/// Compose's variable interpolation in one value: `$$`, `${NAME}`, `${NAME:-default}`,
/// `${NAME-default}`, `${NAME:?message}`, `${NAME?message}`; a missing required variable
/// fails, as `docker compose` does.
pub fn interpolate(text: &str, variables: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .unwrap_or_else(|| panic!("unclosed ${{ in {text:?}"));
            let expression = &body[..end];
            let split = expression.find([':', '-', '?']).unwrap_or(expression.len());
            let (name, operator) = expression.split_at(split);
            let value = variables.get(name).filter(|v| !v.is_empty());
            let expanded = match operator {
                "" => value.cloned().unwrap_or_default(),
                op if op.starts_with(":-") => value.cloned().unwrap_or_else(|| op[2..].into()),
                op if op.starts_with('-') => variables
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| op[1..].into()),
                op if op.starts_with(":?") || op.starts_with('?') => value
                    .cloned()
                    .unwrap_or_else(|| panic!("required variable {name} is unset: {op}")),
                op => panic!("unsupported interpolation ${{{name}{op}}}"),
            };
            out.push_str(&expanded);
            rest = &body[end + 1..];
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            out.push_str(variables.get(&after[..end]).map_or("", String::as_str));
            rest = &after[end..];
        }
    }
    out.push_str(rest);
    out
}

// --- the topology ------------------------------------------------------------------------

/// What a long-running Updraft service is, from the first word of its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Scheduler,
    Worker,
    ApiServer,
}

impl Kind {
    fn of(command: &[String]) -> Kind {
        match command.first().map(String::as_str) {
            Some("scheduler") => Kind::Scheduler,
            Some("worker") => Kind::Worker,
            Some("api-server") => Kind::ApiServer,
            other => panic!("a long-running service runs an unknown command {other:?}"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Scheduler => "scheduler",
            Kind::Worker => "worker",
            Kind::ApiServer => "api-server",
        }
    }
}

/// Where and on what a topology runs; the compose file gives the rest.
#[derive(Debug, Clone)]
pub struct TopologyConfig {
    /// Each service's working directory is made under it, named as the service.
    pub root: PathBuf,
    /// Replaces the compose file's `UPDRAFT__DATABASE__URL`.
    pub database_url: String,
    /// What the compose file mounts from `./dags`.
    pub dags_folder: PathBuf,
    /// Values for the compose file's `${NAME}` interpolations.
    pub variables: BTreeMap<String, String>,
    /// Added to every Updraft process's environment, after (so over) the compose file's.
    pub env: Vec<(String, String)>,
}

impl TopologyConfig {
    /// A configuration with fresh keys for the compose file's `UPDRAFT_SECRET_KEY` and
    /// `UPDRAFT_FERNET_KEY`.
    pub fn new(root: &Path, database_url: &str, dags_folder: &Path) -> TopologyConfig {
        let variables = BTreeMap::from([
            (
                "UPDRAFT_SECRET_KEY".to_string(),
                format!("topology-secret-{:032x}", rand::random::<u128>()),
            ),
            (
                "UPDRAFT_FERNET_KEY".to_string(),
                store::secrets::Vault::generate_key(),
            ),
        ]);
        TopologyConfig {
            root: root.to_path_buf(),
            database_url: database_url.to_string(),
            dags_folder: dags_folder.to_path_buf(),
            variables,
            env: Vec::new(),
        }
    }

    pub fn with_env(mut self, key: &str, value: &str) -> TopologyConfig {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
}

/// A service as a local process: what to run and how, and the process while it runs.
pub struct Component {
    pub name: String,
    pub kind: Kind,
    /// `dagctl`'s arguments: the compose command with hosts and ports substituted.
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The compose `hostname`, set in a UTS namespace of the process's own when it can be.
    hostname: Option<String>,
    /// The healthcheck's command line (its `CMD` form), substituted like the command.
    healthcheck: Vec<String>,
    /// Its working directory, with `stdout.log` and `stderr.log` (appended over restarts).
    pub dir: PathBuf,
    /// The process while it runs; `None` after a kill or an exit, until the next start.
    child: Option<Child>,
    /// Every process id it had, oldest first.
    pub pids: Vec<u32>,
}

/// A one-shot service (`restart: "no"`, like `migrate`), run to completion before the rest.
struct OneShot {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: PathBuf,
}

/// A component that exited without the test killing or stopping it.
#[derive(Debug, Clone)]
pub struct Exit {
    pub name: String,
    pub kind: Kind,
    pub pid: u32,
    pub status: ExitStatus,
    /// The end of its stderr (its log) when it was found gone.
    pub log_tail: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} {} (pid {}) exited on its own: {}; the end of its log:",
            self.kind.as_str(),
            self.name,
            self.pid,
            self.status
        )?;
        for line in self.log_tail.lines() {
            writeln!(f, "    | {line}")?;
        }
        Ok(())
    }
}

/// The compose deployment as local processes. Every process it started is killed when it is
/// dropped, and each is started with a parent-death signal, so none outlives a crashed test.
pub struct Topology {
    one_shots: Vec<OneShot>,
    components: Vec<Component>,
    /// `host:port` of the API server.
    api_address: String,
    /// The environment of `dagctl` one-off commands (`users create`): the one-shot's.
    cli_env: Vec<(String, String)>,
    root: PathBuf,
    /// Whether the compose `hostname`s are applied: that takes root, for a UTS namespace.
    pub hostnames_applied: bool,
}

impl Topology {
    /// Plan the compose file's Updraft services for `config`; nothing starts yet.
    pub fn from_compose(config: &TopologyConfig) -> Topology {
        let services = compose_services();
        let hostnames_applied = running_as_root() && Path::new("/usr/bin/unshare").exists();
        let mut one_shots = Vec::new();
        let mut components = Vec::new();
        let mut api_address = None;
        for (name, spec) in services.iter().filter(|(_, s)| s.is_updraft()) {
            let dir = config.root.join(name);
            // Container ports, as published, become free loopback ports.
            let ports: BTreeMap<String, String> = spec
                .ports
                .iter()
                .map(|p| {
                    let container = p.rsplit(':').next().unwrap_or(p);
                    let container = container.split('/').next().unwrap_or(container);
                    (container.to_string(), free_port().to_string())
                })
                .collect();
            let substitute = |arg: &str| -> String {
                let mut arg = arg.replace("0.0.0.0", "127.0.0.1");
                for (container, local) in &ports {
                    if arg == *container {
                        arg = local.clone();
                    }
                    arg = arg.replace(&format!(":{container}/"), &format!(":{local}/"));
                }
                arg
            };
            let args: Vec<String> = spec
                .command
                .iter()
                .map(|a| substitute(&interpolate(a, &config.variables)))
                .collect();
            let env = service_env(name, spec, config);
            if spec.restart.as_deref() == Some("no") {
                one_shots.push(OneShot {
                    name: name.clone(),
                    args,
                    env,
                    dir,
                });
                continue;
            }
            let kind = Kind::of(&spec.command);
            if kind == Kind::ApiServer {
                let port = ports
                    .values()
                    .next()
                    .unwrap_or_else(|| panic!("{name} publishes no port"));
                api_address = Some(format!("127.0.0.1:{port}"));
            }
            let healthcheck = spec
                .healthcheck
                .as_ref()
                .map(|h| match h.test.split_first() {
                    Some((form, rest)) if form == "CMD" => rest.to_vec(),
                    Some((form, rest)) if form == "CMD-SHELL" => {
                        vec!["sh".into(), "-c".into(), rest.join(" ")]
                    }
                    _ => Vec::new(),
                })
                .unwrap_or_default()
                .iter()
                .map(|a| substitute(a))
                .collect();
            components.push(Component {
                name: name.clone(),
                kind,
                args,
                env,
                hostname: spec.hostname.clone(),
                healthcheck,
                dir,
                child: None,
                pids: Vec::new(),
            });
        }
        let cli_env = one_shots
            .first()
            .map(|o| o.env.clone())
            .expect("the compose file has a one-shot migrate service");
        Topology {
            one_shots,
            components,
            api_address: api_address.expect("the compose file has an api-server service"),
            cli_env,
            root: config.root.clone(),
            hostnames_applied,
        }
    }

    /// Run the one-shot services to success, start every other one, and wait until each
    /// passes its healthcheck.
    pub fn start(&mut self) {
        for one_shot in &self.one_shots {
            std::fs::create_dir_all(&one_shot.dir).expect("working dir");
            let out = dagctl_command(&one_shot.args, &one_shot.env, &one_shot.dir)
                .output()
                .expect("dagctl runs");
            assert!(
                out.status.success(),
                "one-shot service {} failed ({}): {}\n{}",
                one_shot.name,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let names = self.names(None);
        for name in &names {
            self.start_component(name);
        }
        for name in &names {
            self.wait_healthy(name);
        }
    }

    /// The names of the components of `kind` (all with `None`), in name order.
    pub fn names(&self, kind: Option<Kind>) -> Vec<String> {
        self.components
            .iter()
            .filter(|c| kind.is_none_or(|k| c.kind == k))
            .map(|c| c.name.clone())
            .collect()
    }

    pub fn component(&self, name: &str) -> &Component {
        self.components
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no component {name}"))
    }

    fn component_mut(&mut self, name: &str) -> &mut Component {
        self.components
            .iter_mut()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no component {name}"))
    }

    /// `host:port` of the API server.
    pub fn api_address(&self) -> &str {
        &self.api_address
    }

    /// Every process id the components of `kind` had.
    pub fn pids(&self, kind: Kind) -> BTreeSet<u32> {
        self.components
            .iter()
            .filter(|c| c.kind == kind)
            .flat_map(|c| c.pids.iter().copied())
            .collect()
    }

    /// Start a new process for `name` (after a kill or an exit), in the same working dir.
    pub fn start_component(&mut self, name: &str) {
        let hostnames = self.hostnames_applied;
        let component = self.component_mut(name);
        assert!(component.child.is_none(), "{name} is already running");
        std::fs::create_dir_all(&component.dir).expect("working dir");
        let start = component.pids.len() + 1;
        let stdout = open_log(&component.dir.join("stdout.log"), start);
        let stderr = open_log(&component.dir.join("stderr.log"), start);
        let hostname = component.hostname.as_deref().filter(|_| hostnames);
        let mut command = process_command(
            hostname,
            Path::new(env!("CARGO_BIN_EXE_dagctl")),
            &component.args,
        );
        apply_env(&mut command, &component.env);
        let child = command
            .current_dir(&component.dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        component.pids.push(child.id());
        component.child = Some(child);
    }

    /// SIGKILL `name`, as a crash would, and reap it; its pid.
    pub fn kill(&mut self, name: &str) -> u32 {
        let component = self.component_mut(name);
        let mut child = component
            .child
            .take()
            .unwrap_or_else(|| panic!("{name} is not running"));
        let pid = child.id();
        let _ = child.kill();
        let _ = child.wait();
        note(
            &component.dir.join("stderr.log"),
            "killed by the test (SIGKILL)",
        );
        pid
    }

    /// Kill `name` and start it again at once.
    pub fn kill_and_restart(&mut self, name: &str) -> u32 {
        let pid = self.kill(name);
        self.start_component(name);
        pid
    }

    /// Components that exited on their own since the last call; each is left stopped.
    pub fn exited(&mut self) -> Vec<Exit> {
        self.components.iter_mut().filter_map(take_exit).collect()
    }

    /// Run `name`'s compose healthcheck once.
    pub fn healthcheck(&self, name: &str) -> Result<(), String> {
        let component = self.component(name);
        let Some((program, args)) = component.healthcheck.split_first() else {
            return Err(format!("{name} has no healthcheck"));
        };
        let program = match program.as_str() {
            "dagctl" => env!("CARGO_BIN_EXE_dagctl").to_string(),
            other => other.to_string(),
        };
        let mut command = Command::new(program);
        command.args(args);
        apply_env(&mut command, &component.env);
        let mut child = command
            .current_dir(&component.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{name}'s healthcheck does not start: {e}"))?;
        match wait_for_exit(&mut child, HEALTHCHECK_TIMEOUT) {
            Some(status) if status.success() => Ok(()),
            Some(status) => {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                Err(format!("{name}'s healthcheck failed ({status}): {stderr}"))
            }
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "{name}'s healthcheck ran over {HEALTHCHECK_TIMEOUT:?}"
                ))
            }
        }
    }

    /// Wait until `name` passes its healthcheck; fails early, with its log, if it exits.
    pub fn wait_healthy(&mut self, name: &str) {
        let deadline = Instant::now() + HEALTHY_TIMEOUT;
        loop {
            if let Some(exit) = take_exit(self.component_mut(name)) {
                panic!("{exit}");
            }
            let last = match self.healthcheck(name) {
                Ok(()) => return,
                Err(why) => why,
            };
            assert!(
                Instant::now() < deadline,
                "{name} not healthy within {HEALTHY_TIMEOUT:?}: {last}\n{}",
                self.log_tail(name, 25)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The end of `name`'s log (its stderr).
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        tail_lines(&self.component(name).dir.join("stderr.log"), lines)
    }

    /// SIGTERM every running component and wait for each; how each ended (`None`: it had to
    /// be killed after [`STOP_TIMEOUT`]).
    pub fn stop(&mut self) -> Vec<(String, Option<ExitStatus>)> {
        for component in &self.components {
            if let Some(child) = &component.child {
                send_signal(child.id(), "TERM");
            }
        }
        let mut ended = Vec::new();
        for component in &mut self.components {
            let Some(mut child) = component.child.take() else {
                continue;
            };
            let status = wait_for_exit(&mut child, STOP_TIMEOUT);
            if status.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
            ended.push((component.name.clone(), status));
        }
        ended
    }

    /// A one-off `dagctl` command on the deployment's database (as `docker compose run`).
    pub fn dagctl(&self, args: &[&str], stdin: &str) -> Output {
        let dir = self.root.join("cli");
        std::fs::create_dir_all(&dir).expect("cli dir");
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let mut child = dagctl_command(&args, &self.cli_env, &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dagctl runs");
        let mut pipe = child.stdin.take().expect("stdin piped");
        pipe.write_all(stdin.as_bytes()).expect("write stdin");
        drop(pipe);
        child.wait_with_output().expect("dagctl runs")
    }

    /// An API client logged in as a new Admin user, made with `dagctl users create`.
    pub fn admin_api(&self) -> Api {
        let out = self.dagctl(
            &[
                "users",
                "create",
                "--username",
                ADMIN_USER,
                "--role",
                "Admin",
                "--password-stdin",
            ],
            &format!("{ADMIN_PASSWORD}\n"),
        );
        assert!(
            out.status.success(),
            "users create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut api = Api::new(&self.api_address);
        api.login(ADMIN_USER, ADMIN_PASSWORD)
            .expect("the admin user logs in");
        api
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for component in &mut self.components {
            if let Some(mut child) = component.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The exit of `component`'s process, if it exited; the component is then left stopped.
fn take_exit(component: &mut Component) -> Option<Exit> {
    let child = component.child.as_mut()?;
    let status = child.try_wait().ok()??;
    let pid = child.id();
    component.child = None;
    Some(Exit {
        name: component.name.clone(),
        kind: component.kind,
        pid,
        status,
        log_tail: last_start_tail(&component.dir.join("stderr.log"), 25),
    })
}

/// The last `lines` lines a component's log got from its latest process (after the last
/// start marker).
fn last_start_tail(path: &Path, lines: usize) -> String {
    let text = tail_lines(path, 10_000);
    let own: Vec<&str> = text
        .lines()
        .rev()
        .take_while(|line| !line.starts_with("--- topology: start #"))
        .collect();
    own.into_iter()
        .take(lines)
        .rev()
        .collect::<Vec<_>>()
        .join("\n")
}

/// The environment of one service: the compose file's, interpolated, with the database URL
/// and mounted container paths replaced by the test's, then the test's additions.
fn service_env(name: &str, spec: &ServiceSpec, config: &TopologyConfig) -> Vec<(String, String)> {
    let mounts: BTreeMap<String, PathBuf> = spec
        .volumes
        .iter()
        .map(|volume| {
            let mut parts = volume.split(':');
            let source = parts.next().unwrap_or_default();
            let target = parts.next().unwrap_or_default();
            assert_eq!(
                source, "./dags",
                "{name} mounts {volume}: the topology only knows ./dags"
            );
            (target.to_string(), config.dags_folder.clone())
        })
        .collect();
    let mut env: Vec<(String, String)> = spec
        .environment
        .iter()
        .map(|(key, value)| {
            let value = interpolate(value, &config.variables);
            let value = if key == "UPDRAFT__DATABASE__URL" {
                config.database_url.clone()
            } else if let Some(local) = mounts.get(&value) {
                local.display().to_string()
            } else {
                assert!(
                    !value.starts_with('/'),
                    "{name}'s {key}={value} names a container path that is not mounted"
                );
                value
            };
            (key.clone(), value)
        })
        .collect();
    assert!(
        env.iter().any(|(k, _)| k == "UPDRAFT__DATABASE__URL"),
        "{name} sets no UPDRAFT__DATABASE__URL"
    );
    env.extend(config.env.iter().cloned());
    env
}

/// `dagctl` with `args`, in `dir`, with `env` over a cleaned environment.
fn dagctl_command(args: &[String], env: &[(String, String)], dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dagctl"));
    command.args(args).current_dir(dir);
    apply_env(&mut command, env);
    command
}

/// The command that runs `program args`: with a parent-death signal (the spawning thread
/// dies, the process dies), and with `hostname` set in a UTS namespace of its own, as a
/// container's. Each layer execs the next, so the spawned pid is `program`'s.
fn process_command(hostname: Option<&str>, program: &Path, args: &[String]) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--pdeathsig", "KILL", "--"]);
    if let Some(hostname) = hostname {
        command
            .args(["unshare", "--uts", "--", "sh", "-c"])
            .arg("hostname \"$0\" && exec \"$@\"")
            .arg(hostname);
    }
    command.arg(program).args(args);
    command
}

/// No `UPDRAFT*` variable or `RUST_LOG` of the test's own environment reaches a component:
/// it sees the compose file's and the test's only. Its logs go to files, so without colours.
fn apply_env(command: &mut Command, env: &[(String, String)]) {
    for (key, _) in std::env::vars_os() {
        let text = key.to_string_lossy();
        if text.starts_with("UPDRAFT") || text == "RUST_LOG" {
            command.env_remove(&key);
        }
    }
    command.env("NO_COLOR", "1");
    for (key, value) in env {
        command.env(key, value);
    }
}

/// A log file opened for appending, with a line marking start number `start`.
fn open_log(path: &Path, start: usize) -> File {
    note(path, &format!("start #{start}"));
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log")
}

/// Append a marker line (`--- what (at …) ---`) to a component's log.
fn note(path: &Path, what: &str) {
    if let Ok(mut file) = File::options().create(true).append(true).open(path) {
        let _ = writeln!(
            file,
            "--- topology: {what} at {} ---",
            chrono::Utc::now().format("%H:%M:%S%.3f")
        );
    }
}

// --- the API client ----------------------------------------------------------------------

/// A blocking client of one API server, for tests: each call says how it went instead of
/// panicking, since the server may be down on purpose.
pub struct Api {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

/// An HTTP answer: status and JSON body (`Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Api {
    pub fn new(address: &str) -> Api {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the API client");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("an HTTP client");
        Api {
            base: format!("http://{address}"),
            token: None,
            client,
            runtime,
        }
    }

    /// Another client with the same token, for another thread.
    pub fn another(&self) -> Api {
        let mut api = Api::new(self.base.trim_start_matches("http://"));
        api.token = self.token.clone();
        api
    }

    /// `POST /auth/token`, keeping the token for later calls.
    pub fn login(&mut self, username: &str, password: &str) -> Result<(), String> {
        let reply = self.post(
            "/auth/token",
            &json!({"username": username, "password": password}),
        )?;
        if reply.status != 201 {
            return Err(format!("login answered {}: {}", reply.status, reply.body));
        }
        let token = reply.body["access_token"]
            .as_str()
            .ok_or_else(|| format!("login answered no token: {}", reply.body))?;
        self.token = Some(token.to_string());
        Ok(())
    }

    pub fn get(&self, path: &str) -> Result<Reply, String> {
        self.send(reqwest::Method::GET, path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Reply, String> {
        self.send(reqwest::Method::POST, path, Some(body))
    }

    /// Every item of a paged listing (`key` names the list in each page).
    pub fn list_all(&self, path: &str, key: &str) -> Result<Vec<Value>, String> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        loop {
            let page = format!("{path}{separator}limit=100&offset={}", items.len());
            let reply = self.get(&page)?;
            if reply.status != 200 {
                return Err(format!(
                    "GET {page} answered {}: {}",
                    reply.status, reply.body
                ));
            }
            let batch = reply.body[key]
                .as_array()
                .cloned()
                .ok_or_else(|| format!("GET {page} has no {key}: {}", reply.body))?;
            let total = reply.body["total_entries"].as_u64().unwrap_or(0) as usize;
            let done = batch.is_empty();
            items.extend(batch);
            if done || items.len() >= total {
                return Ok(items);
            }
        }
    }

    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.request(method.clone(), &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.runtime.block_on(async {
            let response = request
                .send()
                .await
                .map_err(|e| format!("{method} {path}: {e}"))?;
            let status = response.status().as_u16();
            let text = response
                .text()
                .await
                .map_err(|e| format!("{method} {path}: reading the body: {e}"))?;
            let body = serde_json::from_str(&text).unwrap_or(Value::Null);
            Ok(Reply { status, body })
        })
    }
}

// --- the tests ---------------------------------------------------------------------------

/// What the compose file promises, read from the file itself: the services, their restart
/// policies, healthchecks and start order, one hostname per worker, the DAGs mounted on the
/// schedulers only, and one database and one pair of keys for every Updraft process.
#[test]
fn the_compose_file_describes_the_deployment() {
    let services = compose_services();
    let postgres = &services["postgres"];
    assert!(
        postgres.healthcheck.is_some(),
        "postgres has no healthcheck"
    );
    let migrate = &services["migrate"];
    assert_eq!(migrate.command, ["db", "migrate"]);
    assert_eq!(migrate.restart.as_deref(), Some("no"));
    assert_eq!(
        migrate
            .depends_on
            .get("postgres")
            .map(|d| d.condition.as_str()),
        Some("service_healthy")
    );
    let mut kinds: BTreeMap<Kind, Vec<&str>> = BTreeMap::new();
    let mut hostnames = BTreeSet::new();
    let shared = [
        "UPDRAFT__DATABASE__URL",
        "UPDRAFT__API__SECRET_KEY",
        "UPDRAFT__CORE__FERNET_KEY",
    ];
    for (name, spec) in services
        .iter()
        .filter(|(n, s)| s.is_updraft() && *n != "migrate")
    {
        let kind = Kind::of(&spec.command);
        kinds.entry(kind).or_default().push(name);
        assert_eq!(spec.restart.as_deref(), Some("unless-stopped"), "{name}");
        assert!(spec.healthcheck.is_some(), "{name} has no healthcheck");
        assert_eq!(
            spec.depends_on.get("migrate").map(|d| d.condition.as_str()),
            Some("service_completed_successfully"),
            "{name} must wait for the migration"
        );
        let hostname = spec
            .hostname
            .clone()
            .unwrap_or_else(|| panic!("{name} has no hostname"));
        assert!(hostnames.insert(hostname), "{name} shares its hostname");
        for key in shared {
            assert_eq!(
                spec.environment.get(key),
                migrate.environment.get(key),
                "{name} must share {key} with every other service"
            );
        }
        let mounts_dags = spec.volumes.iter().any(|v| v.starts_with("./dags:"));
        assert_eq!(
            mounts_dags,
            kind == Kind::Scheduler,
            "{name}: only schedulers mount the DAGs"
        );
        if kind == Kind::Worker {
            assert!(
                spec.command
                    .windows(2)
                    .any(|w| w[0] == "--queues" && w[1] == "default")
                    && spec.command.iter().any(|a| a == "--concurrency"),
                "{name}: {:?}",
                spec.command
            );
        }
        if kind == Kind::ApiServer {
            let check = spec
                .healthcheck
                .as_ref()
                .map(|h| h.test.join(" "))
                .unwrap_or_default();
            assert!(check.contains("/api/v2/monitor/health"), "{name}: {check}");
            assert!(
                spec.ports.iter().all(|p| p.starts_with("127.0.0.1:")),
                "{name} publishes beyond loopback: {:?}",
                spec.ports
            );
        }
    }
    for key in shared {
        assert!(migrate.environment.contains_key(key), "migrate lacks {key}");
    }
    let count = |kind| kinds.get(&kind).map_or(0, Vec::len);
    assert_eq!(
        (
            count(Kind::Scheduler),
            count(Kind::Worker),
            count(Kind::ApiServer)
        ),
        (2, 3, 1),
        "{kinds:?}"
    );
}

/// Twelve independent half-second tasks: more than one worker's slots, so a run's tries
/// spread over the workers.
fn spread_dag() -> String {
    let mut dag =
        String::from("description: Independent tasks to spread over the workers\ntasks:\n");
    for i in 1..=12 {
        dag.push_str(&format!("  - {{id: t{i:02}, bash: 'sleep 0.5'}}\n"));
    }
    dag
}

/// Trigger `runs` runs of `dag_id` and wait until every one of them succeeded.
fn trigger_and_wait(api: &Api, dag_id: &str, runs: &[String]) {
    for run_id in runs {
        let reply = api
            .post(
                &format!("/api/v2/dags/{dag_id}/dagRuns"),
                &json!({"dag_run_id": run_id, "logical_date": null}),
            )
            .expect("trigger");
        assert_eq!(reply.status, 200, "trigger {run_id}: {}", reply.body);
    }
    wait_for("the runs to finish", Duration::from_secs(120), || {
        let states: Vec<String> = runs
            .iter()
            .map(|run_id| {
                api.get(&format!("/api/v2/dags/{dag_id}/dagRuns/{run_id}"))
                    .ok()
                    .and_then(|r| r.body["state"].as_str().map(str::to_string))
                    .unwrap_or_default()
            })
            .collect();
        states
            .iter()
            .all(|s| s == "success" || s == "failed")
            .then_some(states)
    })
    .iter()
    .zip(runs)
    .for_each(|(state, run_id)| assert_eq!(state, "success", "{run_id}"));
}

/// The scheduler's health as `/api/v2/monitor/health` reports it.
fn scheduler_health(api: &Api) -> (String, String) {
    let reply = api.get("/api/v2/monitor/health").expect("health");
    assert_eq!(reply.status, 200, "{}", reply.body);
    (
        reply.body["metadatabase"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        reply.body["scheduler"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[test]
fn the_compose_topology_runs_dags_over_two_schedulers_and_three_workers() {
    let Some(database) = ScratchDatabase::create_blocking() else {
        return;
    };
    let started = Instant::now();
    let root = tempfile::tempdir().expect("temp dir");
    let dags = root.path().join("dags");
    std::fs::create_dir_all(&dags).expect("dags dir");
    std::fs::write(dags.join("spread.yaml"), spread_dag()).expect("write DAG");
    let config = TopologyConfig::new(root.path(), database.url(), &dags)
        .with_env("UPDRAFT__SCHEDULER__POLL_INTERVAL", "500ms")
        .with_env("UPDRAFT__SCHEDULER__RESCAN_INTERVAL", "1s")
        .with_env("UPDRAFT__SCHEDULER__ZOMBIE_THRESHOLD", "4s")
        .with_env("UPDRAFT__WORKER__HEARTBEAT_INTERVAL", "500ms");
    let mut topology = Topology::from_compose(&config);
    assert_eq!(topology.names(Some(Kind::Scheduler)).len(), 2);
    assert_eq!(topology.names(Some(Kind::Worker)).len(), 3);
    assert_eq!(topology.names(Some(Kind::ApiServer)).len(), 1);
    topology.start();
    let api = topology.admin_api();
    wait_for("the DAG to be parsed", Duration::from_secs(60), || {
        api.get("/api/v2/dags/spread")
            .ok()
            .filter(|r| r.status == 200)
    });

    let first: Vec<String> = (1..=3).map(|i| format!("first-{i}")).collect();
    trigger_and_wait(&api, "spread", &first);
    assert_eq!(
        scheduler_health(&api),
        ("healthy".to_string(), "healthy".to_string())
    );

    // One scheduler and one worker crash: the others carry on.
    topology.kill("scheduler-1");
    topology.kill("worker-1");
    let second: Vec<String> = (1..=2).map(|i| format!("second-{i}")).collect();
    trigger_and_wait(&api, "spread", &second);
    assert_eq!(scheduler_health(&api).1, "healthy");
    topology.start_component("scheduler-1");
    topology.start_component("worker-1");
    topology.wait_healthy("scheduler-1");
    topology.wait_healthy("worker-1");
    let exits = topology.exited();
    assert!(
        exits.is_empty(),
        "{}",
        exits.iter().map(ToString::to_string).collect::<String>()
    );

    let instances = api
        .list_all(
            "/api/v2/dags/spread/dagRuns/~/taskInstances",
            "task_instances",
        )
        .expect("task instances");
    assert_eq!(instances.len(), 12 * 5);
    let hostnames: BTreeSet<String> = instances
        .iter()
        .filter_map(|ti| ti["hostname"].as_str().map(str::to_string))
        .collect();
    if topology.hostnames_applied {
        let workers: BTreeSet<String> = topology.names(Some(Kind::Worker)).into_iter().collect();
        assert!(
            hostnames.len() > 1 && hostnames.is_subset(&workers),
            "the tries ran on {hostnames:?}, not on more than one of {workers:?}"
        );
    } else {
        eprintln!(
            "not judged: which worker ran what (compose hostnames need root for a UTS \
             namespace; every worker here has this machine's name, {hostnames:?})"
        );
    }

    let stopped = topology.stop();
    let unclean: Vec<_> = stopped
        .iter()
        .filter(|(_, status)| !status.is_some_and(|s| s.success()))
        .collect();
    assert!(
        unclean.is_empty(),
        "not a clean stop on SIGTERM: {unclean:?}\n{}",
        unclean
            .iter()
            .map(|(name, _)| format!("{name}:\n{}\n", topology.log_tail(name, 15)))
            .collect::<String>()
    );
    eprintln!(
        "topology: 5 runs over {} workers' hostnames, {:.1}s",
        hostnames.len(),
        started.elapsed().as_secs_f64()
    );
}
