//! Telling a store outage from a failure, and logging each outage once: [`Outage`] is what a
//! long-running component (a worker, a scheduler, an API server) keeps across its store calls.
//!
//! Why: a component that logs every failed call during an outage writes one line per claim,
//! heartbeat and poll, every second, for as long as the database is down, and buries the two
//! lines that matter — when it went away, and when it came back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::StoreError;

/// Whether the store answers, as one component's calls see it. The first call that meets
/// [`StoreError::Unavailable`] logs a warning with its error ("database unavailable: …;
/// retrying"), later ones only at debug level, and the first call that works again logs how
/// long it lasted ("database reachable again after 3.2 s").
///
/// Its methods take `&self`, so the loops of one component share one `Outage` (behind an
/// `Arc`) and report one outage once between them.
#[derive(Debug)]
pub struct Outage {
    /// Who is calling, for the log lines (`worker`, `scheduler`).
    component: &'static str,
    /// When the current outage began: the first failed call of it.
    since: Mutex<Option<Instant>>,
}

impl Outage {
    /// No outage yet; `component` names the caller in the log lines.
    pub fn new(component: &'static str) -> Outage {
        Outage {
            component,
            since: Mutex::new(None),
        }
    }

    /// Note a failed store call. Returns `true` when `err` is an outage
    /// ([`StoreError::is_unavailable`]), which is logged here: as a warning when it starts
    /// one, at debug level while it lasts. Returns `false`, logging nothing, for any other
    /// error: that is the operation's own failure, for the caller to report.
    pub fn failed(&self, err: &StoreError) -> bool {
        if !err.is_unavailable() {
            return false;
        }
        if self.start_at(Instant::now()) {
            tracing::warn!(component = self.component, "{err}; retrying");
        } else {
            tracing::debug!(component = self.component, error = %err, "database still unavailable");
        }
        true
    }

    /// Note a store call that worked. Ends the outage, if there was one, logging how long it
    /// lasted, and returns that.
    pub fn succeeded(&self) -> Option<Duration> {
        let lasted = self.end_at(Instant::now())?;
        tracing::info!(
            component = self.component,
            "database reachable again after {:.1} s",
            lasted.as_secs_f64()
        );
        Some(lasted)
    }

    /// Whether the last call that said anything about the store met an outage.
    pub fn is_down(&self) -> bool {
        self.since().is_some()
    }

    /// When the current outage began (its first failed call); `None` when there is none.
    pub fn since(&self) -> Option<Instant> {
        *self.lock()
    }

    /// Start an outage at `now` unless one is on; true if this started it.
    fn start_at(&self, now: Instant) -> bool {
        let mut since = self.lock();
        if since.is_some() {
            return false;
        }
        *since = Some(now);
        true
    }

    /// End the outage at `now`; how long it lasted, if there was one.
    fn end_at(&self, now: Instant) -> Option<Duration> {
        let began = self.lock().take()?;
        Some(now.saturating_duration_since(began))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // The guarded value is a plain `Option<Instant>`: a panic elsewhere cannot leave it
        // half-written, so a poisoned lock is still good to use.
        self.since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable() -> StoreError {
        StoreError::Unavailable("connection refused".into())
    }

    #[test]
    fn only_unavailable_is_an_outage() {
        let outage = Outage::new("test");
        assert!(!outage.failed(&StoreError::Database("syntax error".into())));
        assert!(!outage.failed(&StoreError::NotFound("run 1".into())));
        assert!(!outage.is_down());
        assert!(outage.failed(&unavailable()));
        assert!(outage.is_down());
        // A real failure in the middle of an outage says nothing about reachability.
        assert!(!outage.failed(&StoreError::Database("syntax error".into())));
        assert!(outage.is_down());
    }

    #[test]
    fn an_outage_starts_once_and_ends_once() {
        let outage = Outage::new("test");
        let t0 = Instant::now();
        assert!(outage.start_at(t0));
        assert!(
            !outage.start_at(t0 + Duration::from_secs(1)),
            "a second failure is the same outage"
        );
        assert_eq!(outage.since(), Some(t0));
        assert_eq!(
            outage.end_at(t0 + Duration::from_millis(3200)),
            Some(Duration::from_millis(3200))
        );
        assert!(!outage.is_down());
        assert_eq!(outage.since(), None);
        assert_eq!(
            outage.end_at(t0 + Duration::from_secs(4)),
            None,
            "a success outside an outage ends nothing"
        );
        assert!(outage.start_at(t0 + Duration::from_secs(5)), "a new outage");
    }

    #[test]
    fn succeeded_reports_the_length_of_the_outage() {
        let outage = Outage::new("test");
        assert_eq!(outage.succeeded(), None);
        assert!(outage.failed(&unavailable()));
        let began = outage.since().expect("down");
        let lasted = outage.succeeded().expect("an outage ended");
        assert!(lasted <= began.elapsed());
        assert_eq!(outage.succeeded(), None);
    }
}
