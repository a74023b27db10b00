//! The worker's heartbeat, and what it means when it stops getting through.
//!
//! [`beat`] refreshes the heartbeat of the worker's running task instances every
//! `heartbeat_interval` (the scheduler fails a running try whose heartbeat is older than its
//! zombie threshold), records the worker's own beat for health, and then checks the running
//! tries against the store as a safety net for changes whose event was lost.
//!
//! [`stop_orphans`] is the other side: a worker that could not heartbeat for longer than the
//! zombie threshold must assume the scheduler has failed its tries as zombies and queued
//! their retries, so it stops them, lest two tries of one task run at once. It is a loop of
//! its own, making no store call, so that a store call that hangs cannot hold it up.

use std::sync::Arc;

use chrono::Utc;
use store::Store;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::WorkerConfig;
use crate::outside;
use crate::reporting::Reporting;
use crate::tries::Tries;

/// Beat every `heartbeat_interval`, forever (the worker aborts it when it returns).
pub(crate) async fn beat(
    store: Arc<dyn Store>,
    config: Arc<WorkerConfig>,
    tries: Arc<Tries>,
    reporting: Arc<Reporting>,
) {
    let mut interval = tokio::time::interval(config.heartbeat_interval);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let sent = Instant::now();
        let now = Utc::now();
        let beaten = match store.heartbeat(&config.worker_id, now).await {
            Ok(running) => {
                reporting.outage.succeeded();
                tries.beat(sent);
                Some(running)
            }
            Err(err) => {
                if !reporting.outage.failed(&err) {
                    tracing::warn!(error = %err, "worker heartbeat failed");
                }
                None
            }
        };
        // The health shown in the UI reads this beat; like the scheduler's, not worth
        // stopping for.
        if let Err(err) = store
            .record_heartbeat("worker", &config.worker_id, &config.hostname, now)
            .await
            && !reporting.outage.failed(&err)
        {
            tracing::warn!(error = %err, "worker heartbeat not recorded");
        }
        if let Some(running) = beaten {
            outside::check_all(store.as_ref(), &tries, &reporting, &running).await;
        }
    }
}

/// Stop the tries that have had no heartbeat in the store for longer than `orphan_after`,
/// checking as often as the heartbeat beats (at least four times per threshold).
pub(crate) async fn stop_orphans(config: Arc<WorkerConfig>, tries: Arc<Tries>) {
    let period = config
        .heartbeat_interval
        .min(config.orphan_after / 4)
        .max(std::time::Duration::from_millis(1));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let stopped = tries.stop_orphans(Instant::now(), config.orphan_after);
        if stopped > 0 {
            tracing::warn!(
                tries = stopped,
                threshold_secs = config.orphan_after.as_secs_f64(),
                "no heartbeat reached the store for longer than the zombie threshold: stopping \
                 the tries the scheduler takes for zombies"
            );
        }
    }
}
