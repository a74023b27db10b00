//! Running the scheduler and a worker inside this process, as `standalone`, `dags test` and
//! the benchmark do, and waiting on runs by their events.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use scheduler::{Scheduler, SchedulerConfig};
use store::{RunRecord, Store, StoreEvent};
use tokio::sync::watch;
use tokio::task::JoinSet;
use worker::{Worker, WorkerConfig};

use crate::settings::Settings;

/// A scheduler and a worker running as tasks of this process.
pub struct Engine {
    stop: watch::Sender<bool>,
    tasks: JoinSet<&'static str>,
}

/// A future that completes when `stop` says so.
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

impl Engine {
    pub fn start(
        store: Arc<dyn Store>,
        scheduler: SchedulerConfig,
        worker: Option<WorkerConfig>,
    ) -> Engine {
        let (stop, watch_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let s = store.clone();
        let rx = watch_rx.clone();
        tasks.spawn(async move {
            Scheduler::new(scheduler, s).run(stopped(rx)).await;
            "scheduler"
        });
        if let Some(config) = worker {
            let rx = watch_rx.clone();
            tasks.spawn(async move {
                Worker::new(config).run(store, stopped(rx)).await;
                "worker"
            });
        }
        Engine { stop, tasks }
    }

    /// Completes when a component stops without being asked to (it panicked: neither
    /// returns on its own otherwise), with an error naming it; never completes while all
    /// run.
    pub async fn failed(&mut self) -> anyhow::Error {
        match self.tasks.join_next().await {
            Some(Ok(name)) => anyhow!("the {name} stopped on its own"),
            Some(Err(e)) => anyhow!("a component panicked: {e}"),
            None => std::future::pending().await,
        }
    }

    /// Ask every component to stop and wait for them.
    pub async fn stop(mut self) -> Result<()> {
        let _ = self.stop.send(true);
        while let Some(joined) = self.tasks.join_next().await {
            joined.map_err(|e| anyhow!("component panicked: {e}"))?;
        }
        Ok(())
    }
}

/// The scheduler settings from configuration.
pub fn scheduler_config(
    settings: &Settings,
    dags_folder: Option<std::path::PathBuf>,
) -> Result<SchedulerConfig> {
    Ok(SchedulerConfig::new(dags_folder)
        .with_secrets(settings.vault()?, settings.env_connections.clone())
        .with_notify(settings.notify.clone())
        .with_rescan_interval(settings.scheduler_rescan_interval)
        .with_poll_interval(settings.scheduler_poll_interval)
        .with_zombie_threshold(settings.zombie_threshold)
        .with_max_map_length(settings.max_map_length)
        .with_python(settings.python.clone()))
}

/// The worker settings from configuration.
pub fn worker_config(settings: &Settings) -> Result<WorkerConfig> {
    Ok(WorkerConfig::new(worker_id())
        .with_vault(settings.vault()?)
        .with_env_connections(settings.env_connections.clone())
        .with_notify(settings.notify.clone())
        .with_queues(settings.worker_queues.clone())
        .with_concurrency(settings.worker_concurrency)
        .with_log_cap_bytes(settings.worker_log_cap_bytes)
        .with_kill_grace(settings.worker_kill_grace)
        .with_shutdown_grace(settings.worker_shutdown_grace)
        .with_heartbeat_interval(settings.worker_heartbeat_interval)
        .with_orphan_after(settings.zombie_threshold)
        .with_python(settings.python.clone()))
}

/// Wait until the run is finished, woken by its own `RunChanged`/`RunProgressed` events (a
/// slow poll as safety net): one read per change of the run, not one per event of any kind.
pub async fn wait_for_run(store: &dyn Store, run: i64) -> Result<RunRecord> {
    let mut events = store.subscribe();
    loop {
        let record = store
            .get_run_by_key(run)
            .await?
            .ok_or_else(|| anyhow!("run {run} disappeared"))?;
        if record.state.is_finished() {
            return Ok(record);
        }
        let poll = tokio::time::sleep(Duration::from_millis(500));
        tokio::pin!(poll);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(
                        StoreEvent::RunChanged { run: changed }
                        | StoreEvent::RunProgressed { run: changed },
                    ) if changed == run => break,
                    Ok(StoreEvent::Missed)
                    | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        (&mut poll).await;
                        break;
                    }
                },
                () = &mut poll => break,
            }
        }
    }
}

/// A worker id unique across hosts and restarts: host, process id and a random suffix.
pub fn worker_id() -> String {
    let host = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}
