//! Turning how a try went into the store's [`Finish`]: success, skipped, up for reschedule,
//! up for retry (with its delay) or failed, and the try's summary line.

use chrono::{DateTime, SecondsFormat, Utc};
use dag::retry::retry_delay_seconds;
use dag::{Task, TaskState};
use serde_json::Value;
use store::{ClaimedTask, Finish};

use crate::attempt::Outcome;

/// The end of a try, and the line that says so in its log.
pub(crate) struct End {
    pub finish: Finish,
    pub summary: String,
}

/// The end of `claimed`'s try at `now`, given its outcome and XComs. `task` gives the retry
/// settings, when the task could be found.
pub(crate) fn end(
    claimed: &ClaimedTask,
    task: Option<&Task>,
    outcome: Outcome,
    xcoms: Vec<(String, Value)>,
    now: DateTime<Utc>,
) -> End {
    let ti = &claimed.ti;
    let (state, next_retry_at) = match outcome {
        Outcome::Success => (TaskState::Success, None),
        Outcome::Reschedule(at) => (TaskState::UpForReschedule, Some(at)),
        Outcome::Skipped => (TaskState::Skipped, None),
        Outcome::Failed if ti.try_number <= ti.max_tries => {
            let delay = task
                .map(|t| retry_delay_seconds(t, ti.try_number + 1, jitter(ti.id, ti.try_number)))
                .unwrap_or(0.0);
            let at = now + chrono::Duration::milliseconds((delay * 1000.0) as i64);
            (TaskState::UpForRetry, Some(at))
        }
        Outcome::Failed | Outcome::FailedForGood => (TaskState::Failed, None),
    };
    let summary = match next_retry_at {
        Some(at) if state == TaskState::UpForReschedule => format!(
            "not done yet; up for reschedule, next poke at {}",
            describe_instant(at)
        ),
        Some(at) => format!(
            "try {} of {} failed; up for retry at {}",
            ti.try_number,
            ti.max_tries + 1,
            describe_instant(at)
        ),
        None => format!("task ended: {}", state.as_str()),
    };
    let finish = Finish {
        ti: ti.id,
        try_number: ti.try_number,
        state,
        end_date: now,
        next_retry_at,
        xcoms,
        pid: None,
        log: Vec::new(),
    };
    End { finish, summary }
}

/// An instant as the try's log lines show it (the next poke, the next retry).
pub(crate) fn describe_instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A jitter in [0, 1) that is the same for the same try, so a retry's delay is reproducible.
fn jitter(ti: i64, try_number: u32) -> f64 {
    dag::retry::jitter((ti as u64) ^ (u64::from(try_number) << 48))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_in_range_and_reproducible() {
        for ti in [0, 1, 42, i64::MAX, -5] {
            for try_number in [1, 2, 9] {
                let j = jitter(ti, try_number);
                assert!((0.0..1.0).contains(&j), "{j}");
                assert_eq!(j, jitter(ti, try_number));
            }
        }
        assert_ne!(jitter(1, 1), jitter(2, 1));
    }
}
