//! Cron ticks, data intervals and run ids (5-field cron and presets, in the DAG's time zone).

use chrono::{DateTime, Utc};

use crate::model::Dag;
use crate::state::RunType;

/// The dates of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataInterval {
    pub logical_date: DateTime<Utc>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A schedule that cannot be evaluated (bad cron, unknown time zone).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(pub String);

/// Check a cron expression or preset; the error says what is wrong with it.
pub fn validate_cron(expr: &str) -> Result<(), ScheduleError> {
    let _ = expr;
    todo!()
}

/// Scheduled runs due at `now`, oldest first, given the logical date of the DAG's newest
/// scheduled run. With `catchup` every missed tick since `start_date` (at most `max`); without
/// it only the latest due tick. Respects `end_date`, `@once` and `data_intervals`.
pub fn due_runs(
    dag: &Dag,
    last_logical: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    max: usize,
) -> Result<Vec<DataInterval>, ScheduleError> {
    let _ = (dag, last_logical, now, max);
    todo!()
}

/// The instant the next scheduled run becomes due after the one at `last_logical`
/// (`None` if the schedule has no more runs).
pub fn next_due_at(
    dag: &Dag,
    last_logical: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, ScheduleError> {
    let _ = (dag, last_logical);
    todo!()
}

/// Every run whose tick falls in [start, end], oldest first (for backfill).
pub fn intervals_between(
    dag: &Dag,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<DataInterval>, ScheduleError> {
    let _ = (dag, start, end);
    todo!()
}

/// A manual run at `at`: both interval ends equal to it.
pub fn manual_interval(at: DateTime<Utc>) -> DataInterval {
    DataInterval {
        logical_date: at,
        start: at,
        end: at,
    }
}

/// `scheduled__2024-01-01T00:00:00+00:00`, `manual__…`, `backfill__…`, as Airflow writes them.
pub fn run_id(run_type: RunType, logical_date: DateTime<Utc>) -> String {
    let _ = (run_type, logical_date);
    todo!()
}
