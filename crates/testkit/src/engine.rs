//! A scheduler and a worker running in-process on one store, as `dagctl standalone` runs them,
//! until the test stops them.

use std::sync::Arc;
use std::time::Duration;

use scheduler::{Scheduler, SchedulerConfig};
use store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use worker::{Worker, WorkerConfig};

/// The scheduler tests use: no folder watching (DAGs are synced into the store by the test)
/// and a short safety poll, so that a missed event costs 200 ms, not seconds.
pub fn scheduler_config() -> SchedulerConfig {
    SchedulerConfig::new(None)
        .without_watch()
        .with_poll_interval(Duration::from_millis(200))
}

/// Running components, each on its own task, sharing one stop signal.
pub struct Engine {
    /// Set to `true` to ask every component to stop.
    stop: watch::Sender<bool>,
    components: Vec<JoinHandle<()>>,
}

impl Engine {
    /// A scheduler and a worker on `store`. Stopping it kills running tries at once (no
    /// shutdown grace), so a test that ends mid-try does not wait for it.
    pub fn start(
        store: Arc<dyn Store>,
        scheduler: SchedulerConfig,
        worker: WorkerConfig,
    ) -> Engine {
        let worker = worker.with_shutdown_grace(Duration::ZERO);
        let mut engine = Engine::scheduler_only(store.clone(), scheduler);
        let stopped = engine.stopped();
        engine.components.push(tokio::spawn(async move {
            Worker::new(worker).run(store, stopped).await;
        }));
        engine
    }

    /// A scheduler alone on `store`, for tests that play the worker themselves.
    pub fn scheduler_only(store: Arc<dyn Store>, config: SchedulerConfig) -> Engine {
        let (stop, _) = watch::channel(false);
        let mut engine = Engine {
            stop,
            components: Vec::new(),
        };
        let stopped = engine.stopped();
        engine.components.push(tokio::spawn(async move {
            Scheduler::new(config, store).run(stopped).await;
        }));
        engine
    }

    /// Stop every component and wait for each to finish; a component that panicked fails
    /// the test here.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for component in self.components {
            component.await.expect("component");
        }
    }

    /// A future that completes once [`Engine::stop`] is called: a component's shutdown.
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}
