//! The worker's settings, resolved by the caller (dagctl reads the configuration file).

use std::path::PathBuf;
use std::time::Duration;

/// Settings of one worker. Build with [`WorkerConfig::new`] and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Identifies this worker in claims and heartbeats; unique among running workers.
    pub worker_id: String,
    /// Recorded on each claimed task instance, shown in the UI.
    pub hostname: String,
    /// Only task instances of these queues are claimed.
    pub queues: Vec<String>,
    /// Tries running at once.
    pub concurrency: usize,
    /// Bytes of output stored per try; past it one notice line is stored and the rest of the
    /// output is read and discarded.
    pub log_cap_bytes: u64,
    /// Time between SIGTERM and SIGKILL when a try is killed.
    pub kill_grace: Duration,
    /// How long running tries may go on finishing once the worker is asked to shut down;
    /// those still running then are killed.
    pub shutdown_grace: Duration,
    /// How often the worker refreshes the heartbeat of its running tries.
    pub heartbeat_interval: Duration,
    /// The scheduler's zombie threshold: once no heartbeat reached the store for longer, the
    /// worker takes its tries for failed as zombies (their retries may run elsewhere) and
    /// kills them.
    pub orphan_after: Duration,
    /// How often the worker claims even without a wake-up event: a safety net for missed
    /// events, never the normal path.
    pub poll_interval: Duration,
    /// Opens stored variables and connection secrets for templates.
    pub vault: std::sync::Arc<store::secrets::Vault>,
    /// Connections defined in the environment (`UPDRAFT_CONN_<ID>`), read by the caller.
    pub env_connections: Vec<store::secrets::Connection>,
    /// SMTP server, log-link base URL and action timeout for `email` tasks and notifications.
    pub notify: hooks::notify::NotifySettings,
    /// The interpreter that runs the tasks of Airflow Python DAG files.
    pub python: pydag::PythonSettings,
    /// Whether those tasks fork from a warm process per DAG version (the default) rather
    /// than start a fresh interpreter for every try.
    pub warm_python: bool,
    /// Where each try's temporary folder is made; `None`: the system's temporary directory.
    pub workspace_root: Option<PathBuf>,
}

impl WorkerConfig {
    /// Defaults: this machine's hostname, queue `default`, 16 tries at once, 16 MiB of log per
    /// try, 10 s kill grace (dag-format.md), 30 s shutdown grace, heartbeat every 2 s, tries
    /// taken for zombies after 10 s without one (the scheduler's default threshold), poll
    /// every second, try folders in the system's temporary directory.
    pub fn new(worker_id: impl Into<String>) -> Self {
        let hostname = hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".to_string());
        WorkerConfig {
            worker_id: worker_id.into(),
            hostname,
            queues: vec!["default".to_string()],
            concurrency: 16,
            log_cap_bytes: 16 * 1024 * 1024,
            kill_grace: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(2),
            orphan_after: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            vault: std::sync::Arc::new(store::secrets::Vault::clear()),
            env_connections: Vec::new(),
            notify: hooks::notify::NotifySettings::default(),
            python: pydag::PythonSettings::default(),
            warm_python: true,
            workspace_root: None,
        }
    }

    /// `false`: every try of a Python DAG's task starts a fresh interpreter (for comparison).
    pub fn with_warm_python(mut self, warm: bool) -> Self {
        self.warm_python = warm;
        self
    }

    pub fn with_python(mut self, python: pydag::PythonSettings) -> Self {
        self.python = python;
        self
    }

    pub fn with_notify(mut self, notify: hooks::notify::NotifySettings) -> Self {
        self.notify = notify;
        self
    }

    pub fn with_vault(mut self, vault: std::sync::Arc<store::secrets::Vault>) -> Self {
        self.vault = vault;
        self
    }

    pub fn with_env_connections(mut self, connections: Vec<store::secrets::Connection>) -> Self {
        self.env_connections = connections;
        self
    }

    pub fn with_hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = hostname.into();
        self
    }

    pub fn with_queues(mut self, queues: Vec<String>) -> Self {
        self.queues = queues;
        self
    }

    /// At least one.
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    pub fn with_log_cap_bytes(mut self, bytes: u64) -> Self {
        self.log_cap_bytes = bytes;
        self
    }

    pub fn with_kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// How long a shutting-down worker lets its running tries finish before it kills them;
    /// zero kills them at once.
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The scheduler's zombie threshold (`scheduler.zombie_threshold`): a worker whose
    /// heartbeat has not reached the store for longer kills its running tries. Keep it well
    /// above the heartbeat interval, as the scheduler's must be.
    pub fn with_orphan_after(mut self, threshold: Duration) -> Self {
        self.orphan_after = threshold;
        self
    }

    /// Make each try's temporary folder (its XCom file, spec files) in `root` instead of the
    /// system's temporary directory.
    pub fn with_workspace_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.workspace_root = Some(root.into());
        self
    }

    /// At least one millisecond (a zero interval would spin).
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// At least one millisecond (a zero interval would spin).
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }
}
