//! Reporting to the store through an outage: the worker's one [`store::outage::Outage`], the
//! backoff between retries, and when a write stops waiting for the store to come back.
//!
//! Why writes wait rather than give up: a try's log lines and its end are only worth
//! something once stored, and a short outage (Postgres restarting, SQLite busy) ends on its
//! own. While a try's end waits, its slot stays taken, so the worker claims nothing it could
//! not report either.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use store::outage::Outage;

/// First pause after a failed write; each further failure doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the worker's loops and tries share about reaching the store.
#[derive(Debug)]
pub(crate) struct Reporting {
    /// One outage for the whole worker, so that it is logged once, not once per loop or try.
    pub outage: Outage,
    /// Set when the worker's shutdown begins.
    shutting_down: AtomicBool,
    /// The scheduler's zombie threshold: past it, a silent worker's tries are zombies.
    orphan_after: Duration,
}

impl Reporting {
    pub(crate) fn new(orphan_after: Duration) -> Reporting {
        Reporting {
            outage: Outage::new("worker"),
            shutting_down: AtomicBool::new(false),
            orphan_after,
        }
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Whether a write that keeps meeting an outage should go on waiting for the store:
    /// always, except when the worker is shutting down and the store has been unreachable for
    /// longer than the zombie threshold. The scheduler fails such a try as a zombie, so there
    /// is nothing left to write, and waiting on would keep the worker from ever exiting.
    pub(crate) fn keep_waiting(&self) -> bool {
        self.keep_waiting_at(Instant::now())
    }

    /// Call `read` until the store answers it: through an outage it is called again after
    /// each backoff, for as long as [`Reporting::keep_waiting`]; any other error is
    /// returned at once. For the reads a try starts with, which it cannot do without.
    pub(crate) async fn read<T, Fut>(&self, mut read: impl FnMut() -> Fut) -> store::Result<T>
    where
        Fut: Future<Output = store::Result<T>>,
    {
        let mut backoff = Backoff::new();
        loop {
            match read().await {
                Ok(value) => {
                    self.outage.succeeded();
                    return Ok(value);
                }
                Err(err) if self.outage.failed(&err) && self.keep_waiting() => {
                    tokio::time::sleep(backoff.next_pause()).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn keep_waiting_at(&self, now: Instant) -> bool {
        if !self.shutting_down.load(Ordering::Relaxed) {
            return true;
        }
        self.outage
            .since()
            .is_none_or(|since| now.saturating_duration_since(since) <= self.orphan_after)
    }
}

/// Pauses between retries of a failing write: 100 ms, doubling, at most 5 s.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff {
            next: FIRST_BACKOFF,
        }
    }

    /// The pause before the next retry; the one after it is twice as long.
    pub(crate) fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        pause
    }

    /// Back to the first pause, after a write worked.
    pub(crate) fn reset(&mut self) {
        self.next = FIRST_BACKOFF;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_seconds() {
        let mut backoff = Backoff::new();
        let pauses: Vec<u64> = (0..9)
            .map(|_| backoff.next_pause().as_millis() as u64)
            .collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        backoff.reset();
        assert_eq!(backoff.next_pause(), Duration::from_millis(100));
    }

    #[test]
    fn writes_wait_until_a_shutdown_meets_a_long_outage() {
        let threshold = Duration::from_secs(10);
        let reporting = Reporting::new(threshold);
        assert!(reporting.keep_waiting(), "no outage");
        let down = store::StoreError::Unavailable("connection refused".into());
        assert!(reporting.outage.failed(&down));
        let since = reporting.outage.since().expect("down");
        let long_after = since + threshold + Duration::from_secs(1);
        assert!(reporting.keep_waiting_at(long_after), "no shutdown: wait");
        reporting.begin_shutdown();
        assert!(
            reporting.keep_waiting_at(since + Duration::from_secs(1)),
            "shutting down, short outage: wait"
        );
        assert!(
            !reporting.keep_waiting_at(long_after),
            "shutting down, long outage: give up"
        );
        reporting.outage.succeeded();
        assert!(
            reporting.keep_waiting_at(long_after),
            "shutting down, store back: go on"
        );
    }
}
