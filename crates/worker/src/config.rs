//! The worker's settings, resolved by the caller (dagctl reads the configuration file).

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
    /// How often the worker refreshes the heartbeat of its running tries.
    pub heartbeat_interval: Duration,
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
}

impl WorkerConfig {
    /// Defaults: this machine's hostname, queue `default`, 16 tries at once, 16 MiB of log per
    /// try, 10 s kill grace (dag-format.md), heartbeat every 5 s, poll every second.
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
            heartbeat_interval: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            vault: std::sync::Arc::new(store::secrets::Vault::clear()),
            env_connections: Vec::new(),
            notify: hooks::notify::NotifySettings::default(),
            python: pydag::PythonSettings::default(),
            warm_python: true,
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
