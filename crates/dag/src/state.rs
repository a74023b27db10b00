//! Task-instance and run states, and the one function that says which transitions are legal.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The state of one task instance (one try of one task, or of one mapped index, in one run).
///
/// `None` is Airflow's "no status": created with the run, not yet decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    None,
    Scheduled,
    Queued,
    Running,
    Success,
    Failed,
    Skipped,
    UpstreamFailed,
    UpForRetry,
    UpForReschedule,
    Removed,
}

impl TaskState {
    pub const ALL: [TaskState; 11] = [
        TaskState::None,
        TaskState::Scheduled,
        TaskState::Queued,
        TaskState::Running,
        TaskState::Success,
        TaskState::Failed,
        TaskState::Skipped,
        TaskState::UpstreamFailed,
        TaskState::UpForRetry,
        TaskState::UpForReschedule,
        TaskState::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::None => "none",
            TaskState::Scheduled => "scheduled",
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Success => "success",
            TaskState::Failed => "failed",
            TaskState::Skipped => "skipped",
            TaskState::UpstreamFailed => "upstream_failed",
            TaskState::UpForRetry => "up_for_retry",
            TaskState::UpForReschedule => "up_for_reschedule",
            TaskState::Removed => "removed",
        }
    }

    /// Done: the state counts for trigger rules and will not change without a clear.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskState::Success
                | TaskState::Failed
                | TaskState::Skipped
                | TaskState::UpstreamFailed
                | TaskState::Removed
        )
    }

    /// Whether moving from `self` to `to` is a legal transition.
    ///
    /// Clearing (back to `None`) is legal from every state; the store guards every write
    /// with the state it expects, so a transition that lost a race changes nothing.
    pub fn can_become(self, to: TaskState) -> bool {
        use TaskState::*;
        if to == None {
            return true;
        }
        match self {
            None | Scheduled => matches!(
                to,
                Scheduled
                    | Queued
                    | Running
                    | Success
                    | Skipped
                    | UpstreamFailed
                    | Failed
                    | Removed
                    | UpForReschedule
            ),
            Queued => matches!(to, Running | Failed | Success | Skipped | UpstreamFailed),
            Running => matches!(
                to,
                Success | Failed | Skipped | UpForRetry | UpForReschedule
            ),
            UpForRetry => matches!(to, Queued | Scheduled | Failed | Skipped),
            // A sensor between pokes: poked again (staying here), queued for a worker's
            // poke, or settled by a poke.
            UpForReschedule => matches!(
                to,
                Queued | Scheduled | UpForReschedule | Success | Failed | Skipped
            ),
            Success | Failed | Skipped | UpstreamFailed | Removed => {
                // Marking a finished task as another finished state (mark success/failed).
                to.is_finished()
            }
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state '{0}'")]
pub struct UnknownState(pub String);

impl FromStr for TaskState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// The state of a DAG run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    Success,
    Failed,
}

impl RunState {
    pub const ALL: [RunState; 4] = [
        RunState::Queued,
        RunState::Running,
        RunState::Success,
        RunState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Success => "success",
            RunState::Failed => "failed",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, RunState::Success | RunState::Failed)
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// How a run came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunType {
    Scheduled,
    Manual,
    Backfill,
}

impl RunType {
    pub fn as_str(self) -> &'static str {
        match self {
            RunType::Scheduled => "scheduled",
            RunType::Manual => "manual",
            RunType::Backfill => "backfill",
        }
    }
}

impl fmt::Display for RunType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunType {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [RunType::Scheduled, RunType::Manual, RunType::Backfill]
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in TaskState::ALL {
            assert_eq!(state.as_str().parse::<TaskState>(), Ok(state));
        }
        for state in RunState::ALL {
            assert_eq!(state.as_str().parse::<RunState>(), Ok(state));
        }
        assert!("bogus".parse::<TaskState>().is_err());
    }

    #[test]
    fn transitions() {
        use TaskState::*;
        let legal = [
            (None, Queued),
            (Queued, Running),
            (Running, Success),
            (Running, UpForRetry),
            (UpForRetry, Queued),
            (None, UpstreamFailed),
            (Success, Failed),
            (Failed, None),
        ];
        for (from, to) in legal {
            assert!(from.can_become(to), "{from} -> {to} should be legal");
        }
        let illegal = [
            (Success, Running),
            (Queued, UpForRetry),
            (None, UpForRetry),
            (Failed, Queued),
        ];
        for (from, to) in illegal {
            assert!(!from.can_become(to), "{from} -> {to} should be illegal");
        }
    }
}
