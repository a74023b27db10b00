//! Stopping one try before its end: why ([`StopReason`]), and the signal the try's code waits
//! on ([`StopSignal`]), one per try.
//!
//! Why one per try rather than one for the worker: a try is stopped alone when its task
//! instance is changed from outside or its log cannot be stored, while a worker's shutdown
//! stops every try still running after the grace, which is the same signal sent to each.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use dag::TaskState;
use tokio::sync::watch;

/// Why a try is stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// The worker is shutting down and the try was still running after the shutdown grace.
    Shutdown { grace: Duration },
    /// Someone changed the task instance's state: marked it success or failed (it, or its
    /// run), or cleared it (`none`).
    ChangedOutside { state: TaskState },
    /// The task instance went on to a later try (cleared and queued again).
    Superseded { try_number: u32 },
    /// The task instance is gone: its run or DAG was deleted.
    Deleted,
    /// The worker could not heartbeat for longer than the zombie threshold, so the
    /// scheduler takes the try for a zombie and may run its retry elsewhere.
    Orphaned {
        silent: Duration,
        threshold: Duration,
    },
    /// The try's log could not be stored (a store error that is not an outage).
    LogFailed(String),
}

impl StopReason {
    /// Whether the task instance is no longer this try's to end, so that its finish, guarded
    /// by state and try number, is expected to change nothing.
    pub(crate) fn expects_refused_finish(&self) -> bool {
        matches!(
            self,
            StopReason::ChangedOutside { .. }
                | StopReason::Superseded { .. }
                | StopReason::Deleted
                | StopReason::Orphaned { .. }
        )
    }

    /// Whether someone else decided the task instance's state: the try's end must not
    /// pretend to decide it (its log says so instead of "up for retry at …").
    pub(crate) fn keeps_outside_state(&self) -> bool {
        matches!(
            self,
            StopReason::ChangedOutside { .. } | StopReason::Superseded { .. } | StopReason::Deleted
        )
    }

    /// The try's last line about how it ended, after its process (if any) is gone.
    pub(crate) fn outcome_line(&self) -> String {
        match self {
            StopReason::Shutdown { .. } => "task failed: the worker shut down while it ran".into(),
            StopReason::LogFailed(_) => "task failed: its log could not be stored".into(),
            other => format!("task stopped: {other}"),
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Shutdown { grace } => write!(
                f,
                "worker is shutting down and the try outlasted the shutdown grace of {}s",
                seconds(*grace)
            ),
            StopReason::ChangedOutside {
                state: TaskState::None,
            } => f.write_str("the task instance was cleared from outside"),
            StopReason::ChangedOutside { state } => write!(
                f,
                "the task instance was set to {} from outside",
                state.as_str()
            ),
            StopReason::Superseded { try_number } => write!(
                f,
                "the task instance was cleared from outside and is on try {try_number} now"
            ),
            StopReason::Deleted => f.write_str("the task instance was deleted from outside"),
            StopReason::Orphaned { silent, threshold } => write!(
                f,
                "the worker could not heartbeat for {:.1}s, longer than the zombie threshold \
                 of {}s: the scheduler takes this try for a zombie and may retry it elsewhere",
                silent.as_secs_f64(),
                seconds(*threshold)
            ),
            StopReason::LogFailed(error) => {
                write!(f, "the try's log could not be stored ({error})")
            }
        }
    }
}

/// Seconds as the try's log writes them: `30`, `0.5`.
fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{secs:.0}")
    } else {
        format!("{secs}")
    }
}

/// The stop signal of one try: set once, with the first reason; later reasons are ignored.
/// Clones share the signal.
#[derive(Debug, Clone)]
pub(crate) struct StopSignal(Arc<watch::Sender<Option<StopReason>>>);

impl StopSignal {
    /// A signal nobody has set yet.
    pub(crate) fn new() -> StopSignal {
        StopSignal(Arc::new(watch::channel(None).0))
    }

    /// Ask the try to stop; true if this call set the reason (the first one wins).
    pub(crate) fn stop(&self, reason: StopReason) -> bool {
        // Unlike `send`, this sets the value even while nobody is waiting on it.
        self.0.send_if_modified(|slot| {
            if slot.is_some() {
                return false;
            }
            *slot = Some(reason);
            true
        })
    }

    /// Why the try was asked to stop, if it was.
    pub(crate) fn reason(&self) -> Option<StopReason> {
        self.0.borrow().clone()
    }

    /// Completes, with the reason, once the try is asked to stop.
    pub(crate) async fn stopped(&self) -> StopReason {
        let mut receiver = self.0.subscribe();
        loop {
            if let Some(reason) = receiver.borrow_and_update().clone() {
                return reason;
            }
            if receiver.changed().await.is_err() {
                // The sender lives in `self`, so this cannot happen; never is the answer.
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_reason_wins_and_wakes_the_waiter() {
        let signal = StopSignal::new();
        assert_eq!(signal.reason(), None);
        let waiter = tokio::spawn({
            let signal = signal.clone();
            async move { signal.stopped().await }
        });
        assert!(signal.stop(StopReason::Deleted));
        assert!(!signal.stop(StopReason::Shutdown {
            grace: Duration::ZERO
        }));
        assert_eq!(waiter.await.expect("waiter"), StopReason::Deleted);
        // A waiter that comes late sees the reason at once.
        assert_eq!(signal.stopped().await, StopReason::Deleted);
    }

    #[test]
    fn reasons_read_as_log_lines() {
        let cases = [
            (
                StopReason::ChangedOutside {
                    state: TaskState::Success,
                },
                "the task instance was set to success from outside",
            ),
            (
                StopReason::ChangedOutside {
                    state: TaskState::None,
                },
                "the task instance was cleared from outside",
            ),
            (
                StopReason::Shutdown {
                    grace: Duration::from_millis(500),
                },
                "worker is shutting down and the try outlasted the shutdown grace of 0.5s",
            ),
            (
                StopReason::Orphaned {
                    silent: Duration::from_millis(10_240),
                    threshold: Duration::from_secs(10),
                },
                "the worker could not heartbeat for 10.2s, longer than the zombie threshold of \
                 10s: the scheduler takes this try for a zombie and may retry it elsewhere",
            ),
        ];
        for (reason, line) in cases {
            assert_eq!(reason.to_string(), line);
        }
    }
}
