//! Events across processes: `pg_notify` payloads and the listener that turns other processes'
//! notifications into [`StoreEvent`]s on this store's broadcast channel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgListener, PgPool};
use store::StoreEvent;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::rows::db;

/// The one channel every Updraft notification goes on.
pub(crate) const CHANNEL: &str = "updraft_events";

/// Identifies one store instance among every process on the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin(String);

impl Origin {
    pub(crate) fn new() -> Origin {
        // Process id, start time and a counter: unique without a random source, also for
        // several stores in one process (tests).
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Origin(format!("{}.{nanos}.{n}", std::process::id()))
    }

    /// The notification payload for `event`: `<origin> <kind> [<key>]`; `None` for an event
    /// that is only ever local ([`StoreEvent::Missed`], which a listener makes itself).
    pub(crate) fn payload(&self, event: &StoreEvent) -> Option<String> {
        Some(match event {
            StoreEvent::RunChanged { run } => format!("{} run {run}", self.0),
            StoreEvent::TasksQueued => format!("{} queued", self.0),
            StoreEvent::RunProgressed { run } => format!("{} progressed {run}", self.0),
            StoreEvent::LogAppended { ti } => format!("{} log {ti}", self.0),
            StoreEvent::Missed => return None,
        })
    }
}

/// The event in a payload, unless it is this origin's own (already sent locally) or not ours.
fn parse(origin: &Origin, payload: &str) -> Option<StoreEvent> {
    let mut parts = payload.split(' ');
    let from = parts.next()?;
    if from == origin.0 {
        return None;
    }
    match (parts.next()?, parts.next()) {
        ("run", Some(key)) => key.parse().ok().map(|run| StoreEvent::RunChanged { run }),
        ("queued", None) => Some(StoreEvent::TasksQueued),
        ("progressed", Some(key)) => key
            .parse()
            .ok()
            .map(|run| StoreEvent::RunProgressed { run }),
        ("log", Some(key)) => key.parse().ok().map(|ti| StoreEvent::LogAppended { ti }),
        _ => None,
    }
}

/// The listener task; aborted when dropped, so it lives exactly as long as its store.
pub(crate) struct Listener(JoinHandle<()>);

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Backoff between tries to listen again after the listener's connection failed: doubling
/// from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

impl Listener {
    pub(crate) async fn start(
        pool: &PgPool,
        origin: Origin,
        events: broadcast::Sender<StoreEvent>,
    ) -> store::Result<Listener> {
        let listener = listen(pool).await?;
        let pool = pool.clone();
        let task = tokio::spawn(async move {
            let mut listener = listener;
            loop {
                forward(&mut listener, &origin, &events).await;
                // Notifications sent while disconnected are lost: listen again on a fresh
                // connection, then tell subscribers to catch up with one read.
                listener = relisten(&pool).await;
                let _ = events.send(StoreEvent::Missed);
            }
        });
        Ok(Listener(task))
    }
}

/// A connection listening on [`CHANNEL`].
async fn listen(pool: &PgPool) -> store::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.map_err(db)?;
    // A lost connection ends `forward`, which then listens again itself.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await.map_err(db)?;
    Ok(listener)
}

/// Forward other processes' notifications until the connection is lost.
async fn forward(
    listener: &mut PgListener,
    origin: &Origin,
    events: &broadcast::Sender<StoreEvent>,
) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                if let Some(event) = parse(origin, notification.payload()) {
                    // No subscriber is not an error: nobody is waiting.
                    let _ = events.send(event);
                }
            }
            Ok(None) => {
                tracing::warn!("Postgres event listener lost its connection; listening again");
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, "Postgres event listener failed; listening again");
                return;
            }
        }
    }
}

/// Listen again, with backoff, until the database answers; logs once, when it does.
async fn relisten(pool: &PgPool) -> PgListener {
    let began = tokio::time::Instant::now();
    let mut backoff = RETRY_FIRST;
    loop {
        tokio::time::sleep(backoff).await;
        match listen(pool).await {
            Ok(listener) => {
                tracing::info!(
                    after_seconds = format!("{:.1}", began.elapsed().as_secs_f64()),
                    "Postgres event listener listening again"
                );
                return listener;
            }
            Err(err) => tracing::debug!(error = %err, "Postgres event listener cannot listen yet"),
        }
        backoff = (backoff * 2).min(RETRY_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_own_ones_are_skipped() {
        let mine = Origin::new();
        let theirs = Origin::new();
        assert_ne!(mine, theirs);
        for event in [
            StoreEvent::RunChanged { run: 42 },
            StoreEvent::TasksQueued,
            StoreEvent::RunProgressed { run: 7 },
            StoreEvent::LogAppended { ti: 9 },
        ] {
            let payload = theirs.payload(&event).expect("sent across processes");
            assert_eq!(parse(&mine, &payload), Some(event.clone()));
            assert_eq!(
                parse(&theirs, &payload),
                None,
                "own events are not sent twice"
            );
        }
        assert_eq!(parse(&mine, "x run nope"), None);
        assert_eq!(parse(&mine, "x unknown"), None);
        assert_eq!(parse(&mine, ""), None);
    }
}
