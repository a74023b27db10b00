//! The running tries of one worker loop, as its background loops see them: each try's stop
//! signal and run, when it was claimed, and when the worker last heartbeat. What decides to
//! stop a try (a change from outside, a long silence, the shutdown) asks here.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use store::TaskInstanceRecord;
use tokio::time::Instant;

use crate::stop::{StopReason, StopSignal};

/// One try of one task instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TryKey {
    pub ti: i64,
    pub try_number: u32,
}

impl TryKey {
    pub(crate) fn of(ti: &TaskInstanceRecord) -> TryKey {
        TryKey {
            ti: ti.id,
            try_number: ti.try_number,
        }
    }
}

/// The worker's running tries. Keyed by try, not by task instance: a cleared instance's new
/// try may be claimed here while its old one is still being stopped.
#[derive(Debug, Default)]
pub(crate) struct Tries {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    running: HashMap<TryKey, Entry>,
    /// When the last heartbeat that the store took was sent (its `now`).
    last_beat: Option<Instant>,
}

#[derive(Debug)]
struct Entry {
    run: i64,
    stop: StopSignal,
    /// When the claim was sent: the claim set the try's heartbeat to that moment.
    claimed_at: Instant,
}

impl Tries {
    /// Register a try just claimed (its claim sent at `claimed_at`); returns its stop signal.
    pub(crate) fn add(&self, ti: &TaskInstanceRecord, claimed_at: Instant) -> StopSignal {
        let stop = StopSignal::new();
        self.lock().running.insert(
            TryKey::of(ti),
            Entry {
                run: ti.run,
                stop: stop.clone(),
                claimed_at,
            },
        );
        stop
    }

    /// Forget a try whose work is over (its end is decided, only left to write).
    pub(crate) fn remove(&self, key: TryKey) {
        self.lock().running.remove(&key);
    }

    /// Every running try.
    pub(crate) fn all(&self) -> Vec<TryKey> {
        let mut keys: Vec<TryKey> = self.lock().running.keys().copied().collect();
        keys.sort();
        keys
    }

    /// The runs with a try running here.
    pub(crate) fn runs(&self) -> BTreeSet<i64> {
        self.lock().running.values().map(|e| e.run).collect()
    }

    /// The tries running here of `run`.
    pub(crate) fn in_run(&self, run: i64) -> Vec<TryKey> {
        let mut keys: Vec<TryKey> = self
            .lock()
            .running
            .iter()
            .filter(|(_, entry)| entry.run == run)
            .map(|(key, _)| *key)
            .collect();
        keys.sort();
        keys
    }

    /// Ask one try to stop; true if this set its reason (it was running and not stopping).
    pub(crate) fn stop(&self, key: TryKey, reason: StopReason) -> bool {
        let stop = self.lock().running.get(&key).map(|e| e.stop.clone());
        stop.is_some_and(|stop| stop.stop(reason))
    }

    /// Ask every running try to stop; returns how many this set the reason of.
    pub(crate) fn stop_all(&self, reason: &StopReason) -> usize {
        let stops: Vec<StopSignal> = self
            .lock()
            .running
            .values()
            .map(|e| e.stop.clone())
            .collect();
        stops
            .into_iter()
            .filter(|stop| stop.stop(reason.clone()))
            .count()
    }

    /// Note a heartbeat the store took, sent at `at`.
    pub(crate) fn beat(&self, at: Instant) {
        let mut inner = self.lock();
        inner.last_beat = Some(inner.last_beat.map_or(at, |last| last.max(at)));
    }

    /// Stop every try whose heartbeat in the store is older than `threshold` at `now`: the
    /// scheduler fails those as zombies. Returns how many were stopped now.
    pub(crate) fn stop_orphans(&self, now: Instant, threshold: Duration) -> usize {
        let orphans: Vec<(StopSignal, Duration)> = {
            let inner = self.lock();
            inner
                .running
                .values()
                .filter_map(|entry| {
                    let beat = inner
                        .last_beat
                        .map_or(entry.claimed_at, |last| last.max(entry.claimed_at));
                    let silent = now.saturating_duration_since(beat);
                    (silent > threshold).then(|| (entry.stop.clone(), silent))
                })
                .collect()
        };
        orphans
            .into_iter()
            .filter(|(stop, silent)| {
                stop.stop(StopReason::Orphaned {
                    silent: *silent,
                    threshold,
                })
            })
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every change here is one insert, remove or assignment: a panic elsewhere cannot
        // leave the map half-changed, so a poisoned lock is still good to use.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ti(id: i64, run: i64, try_number: u32) -> TaskInstanceRecord {
        TaskInstanceRecord {
            id,
            run,
            dag_id: "d".into(),
            run_id: "r".into(),
            task_id: "t".into(),
            map_index: -1,
            try_number,
            max_tries: 0,
            state: dag::TaskState::Running,
            queue: "default".into(),
            pool: "default_pool".into(),
            pool_slots: 1,
            priority_weight: 1,
            operator: "bash".into(),
            queued_at: None,
            start_date: None,
            end_date: None,
            next_retry_at: None,
            hostname: None,
            pid: None,
            worker_id: None,
            heartbeat_at: None,
        }
    }

    #[test]
    fn tries_are_found_by_run_and_stopped_alone() {
        let tries = Tries::default();
        let t0 = Instant::now();
        let a = tries.add(&ti(1, 10, 1), t0);
        let b = tries.add(&ti(2, 10, 1), t0);
        let c = tries.add(&ti(3, 20, 1), t0);
        assert_eq!(tries.runs(), BTreeSet::from([10, 20]));
        let in_ten: Vec<i64> = tries.in_run(10).iter().map(|k| k.ti).collect();
        assert_eq!(in_ten, [1, 2]);
        assert!(tries.stop(
            TryKey {
                ti: 2,
                try_number: 1
            },
            StopReason::Deleted
        ));
        assert!(!tries.stop(
            TryKey {
                ti: 2,
                try_number: 1
            },
            StopReason::Deleted
        ));
        assert!(!tries.stop(
            TryKey {
                ti: 2,
                try_number: 2
            },
            StopReason::Deleted
        ));
        assert_eq!((a.reason(), b.reason()), (None, Some(StopReason::Deleted)));
        tries.remove(TryKey {
            ti: 3,
            try_number: 1,
        });
        assert_eq!(tries.runs(), BTreeSet::from([10]));
        let shutdown = StopReason::Shutdown {
            grace: Duration::ZERO,
        };
        assert_eq!(
            tries.stop_all(&shutdown),
            1,
            "only the one not stopping yet"
        );
        assert_eq!(a.reason(), Some(shutdown));
        assert_eq!(c.reason(), None, "removed before the shutdown");
    }

    #[test]
    fn tries_are_orphaned_by_silence_since_the_later_of_claim_and_beat() {
        let tries = Tries::default();
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let old = tries.add(&ti(1, 10, 1), t0);
        let fresh = tries.add(&ti(2, 10, 1), t0 + secs(8));
        let threshold = secs(10);
        assert_eq!(tries.stop_orphans(t0 + secs(10), threshold), 0);
        tries.beat(t0 + secs(5));
        assert_eq!(tries.stop_orphans(t0 + secs(15), threshold), 0);
        assert_eq!(tries.stop_orphans(t0 + secs(16), threshold), 1);
        assert_eq!(
            old.reason(),
            Some(StopReason::Orphaned {
                silent: secs(11),
                threshold
            })
        );
        assert_eq!(fresh.reason(), None, "claimed later than the last beat");
        assert_eq!(tries.stop_orphans(t0 + secs(19), threshold), 1);
        assert!(fresh.reason().is_some());
    }
}
