//! Configuration: the raw TOML file (`--config`, `$UPDRAFT_CONFIG`, `./updraft.toml`) with
//! `UPDRAFT__SECTION__KEY` environment overrides, resolved into typed settings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The file as written; every field optional so that defaults live in one place (`resolve`).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub core: RawCore,
    pub database: RawDatabase,
    pub api: RawApi,
    pub scheduler: RawScheduler,
    pub worker: RawWorker,
    pub smtp: RawSmtp,
    pub logging: RawLogging,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCore {
    pub dags_folder: Option<String>,
    pub max_map_length: Option<u64>,
    pub fernet_key: Option<String>,
    /// The interpreter for Airflow Python DAG files (default `python3`).
    pub python: Option<String>,
    /// Longest one Python DAG file's import may take (default 30s).
    pub dagbag_import_timeout: Option<String>,
    /// Whether a DAG first seen in the folder starts paused when its file does not say
    /// (`is_paused_upon_creation`); Airflow's default, `true`.
    pub dags_are_paused_at_creation: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawDatabase {
    pub url: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawApi {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub base_url: Option<String>,
    /// Signs access tokens; every API server of a deployment needs the same one.
    pub secret_key: Option<String>,
    /// How long an access token is valid (default 24h).
    pub token_lifetime: Option<String>,
    /// How long a request may take before it is answered 408 (default 60s).
    pub request_timeout: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawScheduler {
    pub rescan_interval: Option<String>,
    pub poll_interval: Option<String>,
    pub zombie_threshold: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawWorker {
    pub concurrency: Option<usize>,
    /// Comma-separated, or a TOML list.
    pub queues: Option<StringList>,
    pub log_cap_bytes: Option<u64>,
    pub kill_grace: Option<String>,
    /// How long a worker asked to stop lets running tries finish (default 30s).
    pub shutdown_grace: Option<String>,
    pub heartbeat_interval: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSmtp {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub starttls: Option<bool>,
    pub ssl: Option<bool>,
    pub from: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLogging {
    pub level: Option<String>,
}

/// A list given either as a TOML array or as one comma-separated string (from the
/// environment).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum StringList {
    List(Vec<String>),
    Csv(String),
}

impl StringList {
    fn items(&self) -> Vec<String> {
        match self {
            StringList::List(items) => items.clone(),
            StringList::Csv(text) => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }
}

/// Resolved, typed settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub dags_folder: PathBuf,
    pub database_url: String,
    pub api_host: String,
    pub api_port: u16,
    /// `api.secret_key`, else the key standalone saved in `./.updraft/api_secret.key`.
    pub api_secret_key: Option<String>,
    pub api_token_lifetime: Duration,
    pub api_request_timeout: Duration,
    pub scheduler_rescan_interval: Duration,
    pub scheduler_poll_interval: Duration,
    pub zombie_threshold: Duration,
    pub max_map_length: usize,
    /// `core.dags_are_paused_at_creation` (default false, as dag-format.md's
    /// `is_paused_upon_creation`; true is Airflow's: new DAGs start paused).
    pub new_dags: scheduler::NewDags,
    /// `core.python` and `core.dagbag_import_timeout`.
    pub python: pydag::PythonSettings,
    pub worker_concurrency: usize,
    pub worker_queues: Vec<String>,
    pub worker_log_cap_bytes: u64,
    pub worker_kill_grace: Duration,
    pub worker_shutdown_grace: Duration,
    pub worker_heartbeat_interval: Duration,
    pub log_level: String,
    /// `smtp.*` and `api.base_url`: how mails and notifications go out, and where their log
    /// links point.
    pub notify: hooks::notify::NotifySettings,
    /// `core.fernet_key`, else the key standalone saved in `./.updraft/fernet.key`.
    pub fernet_key: Option<String>,
    /// Connections from `UPDRAFT_CONN_<ID>` environment variables (URIs).
    pub env_connections: Vec<store::secrets::Connection>,
    /// The raw configuration, for `config show`.
    pub raw: RawConfig,
}

/// Where the API server keeps the token-signing key it generated on first start.
pub const API_SECRET_FILE: &str = ".updraft/api_secret.key";

/// Where standalone keeps the Fernet key it generated on first start.
pub const FERNET_KEY_FILE: &str = ".updraft/fernet.key";

impl Settings {
    /// The vault for the configured key; a bad key is an error that says so.
    pub fn vault(&self) -> Result<std::sync::Arc<store::secrets::Vault>> {
        Ok(std::sync::Arc::new(store::secrets::Vault::new(
            self.fernet_key.as_deref(),
        )?))
    }
}

/// The home of standalone state: `./.updraft`.
pub const HOME: &str = ".updraft";

/// Load the configuration: explicit path, else `$UPDRAFT_CONFIG`, else `./updraft.toml` if
/// present; then environment overrides.
pub fn load(explicit: Option<&Path>) -> Result<Settings> {
    let from_env = std::env::var_os("UPDRAFT_CONFIG").map(PathBuf::from);
    let (path, required) = match (explicit, from_env) {
        (Some(p), _) => (Some(p.to_path_buf()), true),
        (None, Some(p)) => (Some(p), true),
        (None, None) => (Some(PathBuf::from("updraft.toml")), false),
    };
    let mut builder = config::Config::builder();
    if let Some(path) = &path {
        builder = builder.add_source(
            config::File::from(path.as_path())
                .format(config::FileFormat::Toml)
                .required(required),
        );
    }
    builder = builder.add_source(
        config::Environment::with_prefix("UPDRAFT")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true),
    );
    let raw: RawConfig = builder
        .build()
        .and_then(|c| c.try_deserialize())
        .with_context(|| match &path {
            Some(p) if required => format!("invalid configuration in {}", p.display()),
            _ => "invalid configuration".to_string(),
        })?;
    let mut settings = resolve(raw)?;
    if settings.fernet_key.is_none() {
        settings.fernet_key = std::fs::read_to_string(FERNET_KEY_FILE)
            .ok()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty());
    }
    settings.env_connections = env_connections()?;
    Ok(settings)
}

/// `UPDRAFT_CONN_MY_DB=postgres://…` defines connection `my_db`, as `AIRFLOW_CONN_…` does.
fn env_connections() -> Result<Vec<store::secrets::Connection>> {
    let mut connections = Vec::new();
    for (name, value) in std::env::vars() {
        if let Some(id) = name.strip_prefix("UPDRAFT_CONN_") {
            let conn_id = id.to_ascii_lowercase();
            connections.push(
                store::secrets::Connection::from_uri(&conn_id, &value)
                    .with_context(|| format!("environment variable {name}"))?,
            );
        }
    }
    connections.sort_by(|a, b| a.conn_id.cmp(&b.conn_id));
    Ok(connections)
}

/// Apply defaults and check every value.
pub fn resolve(raw: RawConfig) -> Result<Settings> {
    let duration = |value: &Option<String>, key: &str, default: Duration| -> Result<Duration> {
        match value {
            None => Ok(default),
            Some(text) => {
                let secs = dag::duration::parse_duration(text)
                    .map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
                Ok(Duration::from_secs_f64(secs))
            }
        }
    };
    let database_url = raw
        .database
        .url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{HOME}/updraft.db"));
    if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
        bail!("database.url must start with sqlite:// or postgres://, got '{database_url}'");
    }
    let worker_queues = raw
        .worker
        .queues
        .as_ref()
        .map(StringList::items)
        .unwrap_or_else(|| vec!["default".to_string()]);
    if worker_queues.is_empty() {
        bail!("worker.queues must name at least one queue");
    }
    let concurrency = raw.worker.concurrency.unwrap_or_else(default_concurrency);
    if concurrency == 0 {
        bail!("worker.concurrency must be at least 1");
    }
    Ok(Settings {
        dags_folder: PathBuf::from(
            raw.core
                .dags_folder
                .clone()
                .unwrap_or_else(|| "dags".into()),
        ),
        database_url,
        api_host: raw.api.host.clone().unwrap_or_else(|| "127.0.0.1".into()),
        api_port: raw.api.port.unwrap_or(8080),
        api_secret_key: raw.api.secret_key.clone().filter(|k| !k.trim().is_empty()),
        api_token_lifetime: duration(
            &raw.api.token_lifetime,
            "api.token_lifetime",
            Duration::from_secs(86_400),
        )?,
        api_request_timeout: duration(
            &raw.api.request_timeout,
            "api.request_timeout",
            Duration::from_secs(60),
        )?,
        scheduler_rescan_interval: duration(
            &raw.scheduler.rescan_interval,
            "scheduler.rescan_interval",
            Duration::from_secs(30),
        )?,
        scheduler_poll_interval: duration(
            &raw.scheduler.poll_interval,
            "scheduler.poll_interval",
            Duration::from_secs(2),
        )?,
        zombie_threshold: duration(
            &raw.scheduler.zombie_threshold,
            "scheduler.zombie_threshold",
            Duration::from_secs(10),
        )?,
        max_map_length: raw
            .core
            .max_map_length
            .map_or(dag::mapping::DEFAULT_MAX_MAP_LENGTH, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            }),
        new_dags: match raw.core.dags_are_paused_at_creation {
            Some(true) => scheduler::NewDags::Paused,
            Some(false) | None => scheduler::NewDags::Unpaused,
        },
        python: pydag::PythonSettings {
            interpreter: raw
                .core
                .python
                .clone()
                .unwrap_or_else(|| "python3".to_string()),
            import_timeout: duration(
                &raw.core.dagbag_import_timeout,
                "core.dagbag_import_timeout",
                Duration::from_secs(30),
            )?,
        },
        worker_concurrency: concurrency,
        worker_queues,
        worker_log_cap_bytes: raw.worker.log_cap_bytes.unwrap_or(16 * 1024 * 1024),
        worker_kill_grace: duration(
            &raw.worker.kill_grace,
            "worker.kill_grace",
            Duration::from_secs(10),
        )?,
        worker_shutdown_grace: duration(
            &raw.worker.shutdown_grace,
            "worker.shutdown_grace",
            Duration::from_secs(30),
        )?,
        worker_heartbeat_interval: duration(
            &raw.worker.heartbeat_interval,
            "worker.heartbeat_interval",
            Duration::from_secs(2),
        )?,
        log_level: raw.logging.level.clone().unwrap_or_else(|| "info".into()),
        notify: notify_settings(
            &raw,
            duration(&raw.smtp.timeout, "smtp.timeout", Duration::from_secs(30))?,
        )?,
        fernet_key: raw.core.fernet_key.clone().filter(|k| !k.trim().is_empty()),
        env_connections: Vec::new(),
        raw,
    })
}

/// `smtp.*` (Airflow's defaults: `localhost:25`, STARTTLS on, implicit TLS off) and
/// `api.base_url` (default `http://127.0.0.1:8080`).
fn notify_settings(
    raw: &RawConfig,
    smtp_timeout: Duration,
) -> Result<hooks::notify::NotifySettings> {
    let defaults = hooks::mail::SmtpSettings::default();
    let smtp = &raw.smtp;
    let base_url = raw
        .api
        .base_url
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        bail!("api.base_url must start with http:// or https://, got '{base_url}'");
    }
    Ok(hooks::notify::NotifySettings {
        smtp: hooks::mail::SmtpSettings {
            host: smtp.host.clone().unwrap_or(defaults.host),
            port: smtp.port.unwrap_or(defaults.port),
            user: smtp.user.clone().filter(|u| !u.is_empty()),
            password: smtp.password.clone().filter(|p| !p.is_empty()),
            starttls: smtp.starttls.unwrap_or(defaults.starttls),
            ssl: smtp.ssl.unwrap_or(defaults.ssl),
            from: smtp.from.clone().unwrap_or(defaults.from),
            timeout: smtp_timeout,
        },
        base_url,
        ..hooks::notify::NotifySettings::default()
    })
}

/// The configuration as TOML with secrets masked, for `config show`.
pub fn show(settings: &Settings) -> Result<String> {
    let mut raw = settings.raw.clone();
    raw.core.dags_folder = Some(settings.dags_folder.display().to_string());
    raw.database.url = Some(mask_url(&settings.database_url));
    raw.api.host = Some(settings.api_host.clone());
    raw.api.port = Some(settings.api_port);
    raw.worker.concurrency = Some(settings.worker_concurrency);
    raw.worker.queues = Some(StringList::List(settings.worker_queues.clone()));
    if raw.smtp.password.is_some() {
        raw.smtp.password = Some("***".into());
    }
    if raw.api.secret_key.is_some() {
        raw.api.secret_key = Some("***".into());
    }
    if raw.core.fernet_key.is_some() {
        raw.core.fernet_key = Some("***".into());
    }
    toml_string(&raw)
}

fn toml_string(raw: &RawConfig) -> Result<String> {
    // `config` carries no TOML writer; a small one suffices for these flat sections.
    let value = serde_json::to_value(raw)?;
    let mut out = String::new();
    if let serde_json::Value::Object(sections) = value {
        for (section, fields) in sections {
            out.push_str(&format!("[{section}]\n"));
            if let serde_json::Value::Object(fields) = fields {
                for (key, value) in fields {
                    if !value.is_null() {
                        out.push_str(&format!("{key} = {value}\n"));
                    }
                }
            }
            out.push('\n');
        }
    }
    Ok(out)
}

/// Hide the password in a database URL.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Slots a worker runs by default: 8 per core, at least 16 (a try mostly waits on its
/// process, so more slots than cores keep the cores busy), at most 256.
fn default_concurrency() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    (8 * cores).clamp(16, 256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = resolve(RawConfig::default()).expect("defaults resolve");
        assert_eq!(s.database_url, "sqlite://.updraft/updraft.db");
        assert_eq!(s.api_port, 8080);
        assert_eq!(s.worker_queues, vec!["default"]);
        assert_eq!(s.worker_kill_grace, Duration::from_secs(10));
        assert_eq!(s.worker_shutdown_grace, Duration::from_secs(30));
        assert_eq!(s.notify.smtp.port, 25);
        assert!(s.notify.smtp.starttls && !s.notify.smtp.ssl);
        assert_eq!(s.notify.base_url, "http://127.0.0.1:8080");
        assert_eq!(
            s.new_dags,
            scheduler::NewDags::Unpaused,
            "dag-format.md's default"
        );
    }

    #[test]
    fn new_dags_may_start_paused_as_in_airflow() {
        let mut raw = RawConfig::default();
        raw.core.dags_are_paused_at_creation = Some(true);
        assert_eq!(
            resolve(raw).expect("resolves").new_dags,
            scheduler::NewDags::Paused
        );
    }

    #[test]
    fn smtp_settings_resolve_and_mask() {
        let mut raw = RawConfig::default();
        raw.smtp.host = Some("mail.example.com".into());
        raw.smtp.port = Some(2525);
        raw.smtp.password = Some("hunter2".into());
        raw.smtp.starttls = Some(false);
        raw.smtp.timeout = Some("5s".into());
        let s = resolve(raw).expect("resolves");
        assert_eq!(s.notify.smtp.host, "mail.example.com");
        assert_eq!(s.notify.smtp.port, 2525);
        assert!(!s.notify.smtp.starttls);
        assert_eq!(s.notify.smtp.timeout, Duration::from_secs(5));
        let shown = show(&s).expect("shows");
        assert!(
            !shown.contains("hunter2") && shown.contains("password = \"***\""),
            "{shown}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let mut raw = RawConfig::default();
        raw.worker.kill_grace = Some("soon".into());
        let err = resolve(raw).expect_err("bad duration");
        assert!(err.to_string().contains("worker.kill_grace"), "{err}");
    }

    #[test]
    fn worker_shutdown_grace_is_a_duration() {
        let mut raw = RawConfig::default();
        raw.worker.shutdown_grace = Some("5s".into());
        assert_eq!(
            resolve(raw).expect("resolves").worker_shutdown_grace,
            Duration::from_secs(5)
        );
        let mut raw = RawConfig::default();
        raw.worker.shutdown_grace = Some("a while".into());
        let err = resolve(raw).expect_err("bad duration");
        assert!(err.to_string().contains("worker.shutdown_grace"), "{err}");
    }

    #[test]
    fn csv_queues() {
        let mut raw = RawConfig::default();
        raw.worker.queues = Some(StringList::Csv("a, b".into()));
        assert_eq!(
            resolve(raw).expect("resolves").worker_queues,
            vec!["a", "b"]
        );
    }

    #[test]
    fn masks_passwords() {
        assert_eq!(mask_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(mask_url("sqlite://x.db"), "sqlite://x.db");
    }
}
