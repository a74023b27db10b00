//! The state changes the store applies, named and checked against `dag::state` in one place.
//!
//! A machine-made change (a scheduler's decision, a worker's finish, a sensor's poke) must be
//! one that [`TaskState::can_become`] allows; one that is not is a bug in its maker and is
//! refused like a lost race: nothing changes. Operator actions (mark success or failed,
//! clear) override the state machine on purpose, as in Airflow, and are not checked.

use dag::{RunState, TaskState};

/// One guarded task-instance change from `from` to `to`, with the columns it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskChange {
    pub from: TaskState,
    pub to: TaskState,
    /// A new try starts (`queued`, or `up_for_reschedule` for a sensor the scheduler pokes):
    /// the try number counts up and the previous try's process and pokes are forgotten.
    pub starts_try: bool,
    /// The try is under way from now (running or finished): its start date is set if unset.
    pub starts: bool,
    /// The instance ends now (a finished state): its end date is set.
    pub ends: bool,
}

impl TaskChange {
    /// The change from `from` to `to`, if the state machine allows it.
    pub fn checked(from: TaskState, to: TaskState) -> Option<TaskChange> {
        if !from.can_become(to) {
            tracing::warn!(%from, %to, "refused a task-instance change the state machine does not allow");
            return None;
        }
        Some(TaskChange {
            from,
            to,
            starts_try: to == TaskState::Queued || to == TaskState::UpForReschedule,
            starts: to == TaskState::Running || to.is_finished(),
            ends: to.is_finished(),
        })
    }
}

/// One guarded run change, with the columns it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunChange {
    pub from: RunState,
    pub to: RunState,
    /// The run starts now: its start date is set if unset.
    pub starts: bool,
    /// The run ends now: its end date is set.
    pub ends: bool,
}

impl RunChange {
    pub(crate) fn new(from: RunState, to: RunState) -> RunChange {
        RunChange {
            from,
            to,
            starts: to == RunState::Running,
            ends: to.is_finished(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_the_new_state() {
        let queue = TaskChange::checked(TaskState::None, TaskState::Queued).expect("legal");
        assert!(queue.starts_try && !queue.starts && !queue.ends);
        let skip = TaskChange::checked(TaskState::None, TaskState::Skipped).expect("legal");
        assert!(!skip.starts_try && skip.starts && skip.ends);
        let poke = TaskChange::checked(TaskState::None, TaskState::UpForReschedule).expect("legal");
        assert!(poke.starts_try && !poke.starts && !poke.ends);
    }

    #[test]
    fn illegal_changes_are_refused() {
        assert_eq!(
            TaskChange::checked(TaskState::Success, TaskState::Queued),
            None
        );
        assert_eq!(
            TaskChange::checked(TaskState::Queued, TaskState::UpForRetry),
            None
        );
    }
}
