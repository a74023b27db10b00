//! The long-running commands: `standalone`, `scheduler`, `worker`, `api-server`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use scheduler::NewDags;
use store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;
use worker::Worker;

use super::defaults;
use super::engine::{self, Engine, stopped};
use super::users::{create_user, random_password};
use crate::backend;
use crate::cli::{ServerArgs, WorkerArgs};
use crate::settings::{API_SECRET_FILE, FERNET_KEY_FILE, HOME, Settings};

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    info!("shutting down");
}

/// A stop channel flipped by a shutdown signal.
fn stop_on_signal() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    let (tx, rx) = watch::channel(false);
    let signal_tx = tx.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = signal_tx.send(true);
    });
    (tx, rx)
}

async fn bind(settings: &Settings, args: &ServerArgs) -> Result<TcpListener> {
    let host = args
        .host
        .clone()
        .unwrap_or_else(|| settings.api_host.clone());
    let port = args.port.unwrap_or(settings.api_port);
    TcpListener::bind((host.as_str(), port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))
}

pub async fn standalone(mut settings: Settings, args: ServerArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(HOME).with_context(|| format!("cannot create {HOME}/"))?;
    if settings.fernet_key.is_none() {
        settings.fernet_key = Some(save_new_fernet_key()?);
    }
    if !settings.dags_folder.exists() {
        std::fs::create_dir_all(&settings.dags_folder)
            .with_context(|| format!("cannot create {}", settings.dags_folder.display()))?;
    }
    let (_stop, stop_rx) = stop_on_signal();
    let Some(store) =
        backend::open_waiting(&settings.database_url, stopped(stop_rx.clone())).await?
    else {
        return Ok(ExitCode::SUCCESS);
    };
    let listener = bind(&settings, &args).await?;
    let address = listener.local_addr()?;
    // Before the API serves: what the DAGs need is there by the time anyone triggers them.
    let site = defaults::Site::new(Path::new(HOME), address)?;
    for line in defaults::make_missing(
        &*store,
        &*settings.vault()?,
        &settings.env_connections,
        &settings.dags_folder,
        &site,
    )
    .await?
    {
        println!("{line}");
    }
    let admin = ensure_admin(&*store, Path::new(HOME)).await?;
    let mut engine = Engine::start(
        store.clone(),
        engine::scheduler_config(&settings, Some(settings.dags_folder.clone()))?
            .with_new_dags(settings.new_dags),
        Some(engine::worker_config(&settings)?),
    );
    if admin == Admin::Created && settings.new_dags == NewDags::Paused {
        // As Airflow's: a DAG's runs, triggered or scheduled, wait until it is unpaused.
        println!(
            "new DAGs start paused (core.dags_are_paused_at_creation): unpause one with              `dagctl dags unpause DAG_ID`, or with its toggle in the UI"
        );
    }
    println!(
        "Updraft standalone: http://{address} (database {}, DAGs in {})",
        crate::settings::mask_url(&settings.database_url),
        settings.dags_folder.display()
    );
    let state = api_state(&settings, store)?;
    // All or nothing: a component that stops on its own stops standalone, with an error,
    // rather than leaving the others running as if all were well.
    let served = tokio::select! {
        served = api::serve(listener, state, stopped(stop_rx)) => served.context("API server failed"),
        failed = engine.failed() => Err(failed),
    };
    let stopped_engine = engine.stop().await;
    served?;
    stopped_engine?;
    Ok(ExitCode::SUCCESS)
}

/// The API's state: the store, the vault for secrets, and the token keys from
/// `api.secret_key`, else the key file, made on first start.
fn api_state(settings: &Settings, store: Arc<dyn Store>) -> Result<api::AppState> {
    let secret = match &settings.api_secret_key {
        Some(secret) => secret.clone(),
        None => match std::fs::read_to_string(API_SECRET_FILE) {
            Ok(text) if !text.trim().is_empty() => text.trim().to_string(),
            _ => {
                let key = format!(
                    "{}{}",
                    super::users::random_password(),
                    super::users::random_password()
                );
                save_new_key(API_SECRET_FILE, &key)?
            }
        },
    };
    let tokens = api::TokenKeys::new(secret.as_bytes(), settings.api_token_lifetime);
    let mut state = api::AppState::new(store, settings.vault()?, tokens);
    state.request_timeout = settings.api_request_timeout;
    Ok(state)
}

/// Whether a secret file may replace one already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// A key is made once: another process may have made it first.
    Refuse,
    /// The admin password is rewritten when the admin user is made again.
    Replace,
}

/// Write a new key file readable by its owner only.
fn save_new_key(path: &str, key: &str) -> Result<String> {
    write_private(Path::new(path), key, Existing::Refuse)?;
    Ok(key.to_string())
}

/// Write `text` and a newline to a file readable by its owner only (0600), as the secret
/// files beside the database are. A replaced file is made private before it is written.
fn write_private(path: &Path, text: &str, existing: Existing) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    match existing {
        Existing::Refuse => options.create_new(true),
        Existing::Replace => options.create(true).truncate(true),
    };
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    // The mode applies only to a file this call created.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", path.display()))?;
    writeln!(file, "{text}").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Standalone's first start without `core.fernet_key` generates one and keeps it beside the
/// database, so connection passwords are encrypted at rest from the start.
fn save_new_fernet_key() -> Result<String> {
    let key = save_new_key(FERNET_KEY_FILE, &store::secrets::Vault::generate_key())?;
    println!("generated a Fernet key for secrets at rest in {FERNET_KEY_FILE}");
    Ok(key)
}

/// Whether standalone's `admin` user was there or made on this (first) start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admin {
    Existing,
    Created,
}

/// Standalone's first start makes an `admin` user with a random password, prints it and
/// saves it beside the database (readable by its owner only, as the key files), as Airflow's
/// standalone does.
async fn ensure_admin(store: &dyn store::Admin, home: &Path) -> Result<Admin> {
    let file = home.join("standalone_admin_password.txt");
    if store.get_user("admin").await?.is_some() {
        if file.exists() {
            println!("admin user 'admin': password in {}", file.display());
        }
        return Ok(Admin::Existing);
    }
    let password = random_password();
    create_user(store, "admin", "Admin", &password).await?;
    write_private(&file, &password, Existing::Replace)?;
    println!(
        "admin user 'admin' created, password: {password} (saved in {})",
        file.display()
    );
    Ok(Admin::Created)
}

pub async fn scheduler(settings: Settings) -> Result<ExitCode> {
    let (_stop, stop_rx) = stop_on_signal();
    let Some(store) =
        backend::open_waiting(&settings.database_url, stopped(stop_rx.clone())).await?
    else {
        return Ok(ExitCode::SUCCESS);
    };
    info!(dags_folder = %settings.dags_folder.display(), "scheduler starting");
    scheduler::Scheduler::new(
        engine::scheduler_config(&settings, Some(settings.dags_folder.clone()))?
            .with_new_dags(settings.new_dags),
        store,
    )
    .run(stopped(stop_rx))
    .await;
    Ok(ExitCode::SUCCESS)
}

pub async fn worker(settings: Settings, args: WorkerArgs) -> Result<ExitCode> {
    let (_stop, stop_rx) = stop_on_signal();
    let Some(store) =
        backend::open_waiting(&settings.database_url, stopped(stop_rx.clone())).await?
    else {
        return Ok(ExitCode::SUCCESS);
    };
    let mut config = engine::worker_config(&settings)?;
    if let Some(queues) = args.queues {
        config = config.with_queues(queues);
    }
    if let Some(concurrency) = args.concurrency {
        config = config.with_concurrency(concurrency);
    }
    Worker::new(config).run(store, stopped(stop_rx)).await;
    Ok(ExitCode::SUCCESS)
}

pub async fn api_server(settings: Settings, args: ServerArgs) -> Result<ExitCode> {
    let (_stop, stop_rx) = stop_on_signal();
    let Some(store) =
        backend::open_waiting(&settings.database_url, stopped(stop_rx.clone())).await?
    else {
        return Ok(ExitCode::SUCCESS);
    };
    let listener = bind(&settings, &args).await?;
    println!("Updraft API: http://{}", listener.local_addr()?);
    let state = api_state(&settings, store)?;
    api::serve(listener, state, stopped(stop_rx))
        .await
        .context("API server failed")?;
    Ok(ExitCode::SUCCESS)
}
