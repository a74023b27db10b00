//! Cron ticks, data intervals and run ids (5-field cron and presets, in the DAG's time zone).
//!
//! Two timetables, after Airflow: by default a run fires at tick T with its logical date and
//! both interval ends equal to T (Airflow 3's `CronTriggerTimetable`); with `data_intervals`
//! the run covering [previous tick, T) fires at T with the previous tick as logical date
//! (Airflow 2's `CronDataIntervalTimetable`). Every function takes `now` or the dates it
//! needs, so that the scheduler's clock is the caller's business.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::model::{Dag, Schedule};
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

/// Presets a DAG file may use besides 5-field cron (`@once` is not a cron schedule).
pub const PRESETS: [&str; 6] = [
    "@once", "@hourly", "@daily", "@weekly", "@monthly", "@yearly",
];

/// Backfills larger than this are refused rather than built in memory.
pub const MAX_BACKFILL_RUNS: usize = 100_000;

/// Check a cron expression or preset; the error says what is wrong with it.
pub fn validate_cron(expr: &str) -> Result<(), ScheduleError> {
    if expr.trim() == "@once" {
        return Ok(());
    }
    parse_cron(expr).map(|_| ())
}

fn parse_cron(expr: &str) -> Result<Cron, ScheduleError> {
    let text = expr.trim();
    let expected = "expected 5 fields (minute hour day-of-month month day-of-week) or one of \
                    @once, @hourly, @daily, @weekly, @monthly, @yearly";
    let invalid = |why: String| {
        ScheduleError(format!(
            "invalid cron expression '{expr}': {why}; {expected}"
        ))
    };
    if text.starts_with('@') {
        if !PRESETS.contains(&text) {
            return Err(invalid(format!("unknown preset '{text}'")));
        }
    } else {
        let fields = text.split_whitespace().count();
        if fields != 5 {
            return Err(invalid(format!("it has {fields} fields")));
        }
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| invalid(e.to_string()))
}

/// A DAG's cron schedule, ready to evaluate.
struct Ticks {
    cron: Cron,
    tz: Tz,
}

impl Ticks {
    fn new(expr: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let tz = timezone
            .parse::<Tz>()
            .map_err(|_| ScheduleError(format!("unknown timezone '{timezone}'")))?;
        Ok(Ticks {
            cron: parse_cron(expr)?,
            tz,
        })
    }

    /// The first tick at or after (`inclusive`) / strictly after `t`.
    fn next(
        &self,
        t: DateTime<Utc>,
        inclusive: bool,
    ) -> Result<Option<DateTime<Utc>>, ScheduleError> {
        match self
            .cron
            .find_next_occurrence(&t.with_timezone(&self.tz), inclusive)
        {
            Ok(next) => Ok(Some(next.with_timezone(&Utc))),
            // A pattern that never matches again (e.g. 30 February) has no next tick.
            Err(croner::errors::CronError::TimeSearchLimitExceeded) => Ok(None),
            Err(e) => Err(ScheduleError(format!(
                "cannot evaluate cron '{}': {e}",
                self.cron.pattern
            ))),
        }
    }

    /// The last tick at or before (`inclusive`) / strictly before `t`.
    fn previous(
        &self,
        t: DateTime<Utc>,
        inclusive: bool,
    ) -> Result<Option<DateTime<Utc>>, ScheduleError> {
        match self
            .cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), inclusive)
        {
            Ok(prev) => Ok(Some(prev.with_timezone(&Utc))),
            Err(croner::errors::CronError::TimeSearchLimitExceeded) => Ok(None),
            Err(e) => Err(ScheduleError(format!(
                "cannot evaluate cron '{}': {e}",
                self.cron.pattern
            ))),
        }
    }
}

/// A scheduled run and the instant it becomes due.
struct Candidate {
    interval: DataInterval,
    due: DateTime<Utc>,
}

/// The run whose logical date is the tick `tick`, per the DAG's timetable.
fn candidate(
    dag: &Dag,
    ticks: &Ticks,
    tick: DateTime<Utc>,
) -> Result<Option<Candidate>, ScheduleError> {
    if dag.data_intervals {
        let Some(end) = ticks.next(tick, false)? else {
            return Ok(None);
        };
        Ok(Some(Candidate {
            interval: DataInterval {
                logical_date: tick,
                start: tick,
                end,
            },
            due: end,
        }))
    } else {
        Ok(Some(Candidate {
            interval: DataInterval {
                logical_date: tick,
                start: tick,
                end: tick,
            },
            due: tick,
        }))
    }
}

/// The first scheduled run after the one at `last_logical` (or the first of all), if the
/// schedule has one within `end_date`.
fn first_after(
    dag: &Dag,
    ticks: &Ticks,
    last_logical: Option<DateTime<Utc>>,
) -> Result<Option<Candidate>, ScheduleError> {
    let Some(start) = dag.start_date else {
        return Ok(None);
    };
    let tick = match last_logical {
        Some(last) if last >= start => ticks.next(last, false)?,
        _ => ticks.next(start, true)?,
    };
    within_end(dag, ticks, tick)
}

fn within_end(
    dag: &Dag,
    ticks: &Ticks,
    tick: Option<DateTime<Utc>>,
) -> Result<Option<Candidate>, ScheduleError> {
    match tick {
        Some(t) if dag.end_date.is_none_or(|end| t <= end) => candidate(dag, ticks, t),
        _ => Ok(None),
    }
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
    if max == 0 {
        return Ok(Vec::new());
    }
    let expr = match &dag.schedule {
        Schedule::None => return Ok(Vec::new()),
        Schedule::Once => {
            return Ok(match (dag.start_date, last_logical) {
                (Some(start), None)
                    if start <= now && dag.end_date.is_none_or(|end| start <= end) =>
                {
                    vec![manual_interval(start)]
                }
                _ => Vec::new(),
            });
        }
        Schedule::Cron(expr) => expr,
    };
    let ticks = Ticks::new(expr, &dag.timezone)?;
    let Some(start) = dag.start_date else {
        return Ok(Vec::new());
    };
    if dag.catchup {
        let mut runs = Vec::new();
        let mut next = first_after(dag, &ticks, last_logical)?;
        while let Some(c) = next {
            if c.due > now || runs.len() >= max {
                break;
            }
            runs.push(c.interval);
            next = within_end(dag, &ticks, ticks.next(c.interval.logical_date, false)?)?;
        }
        return Ok(runs);
    }
    // Without catchup only the newest due run is made: the latest instant a run became due
    // is the latest tick at or before now; with data intervals its logical date is the tick
    // before that.
    let Some(due) = ticks.previous(now, true)? else {
        return Ok(Vec::new());
    };
    let logical = if dag.data_intervals {
        match ticks.previous(due, false)? {
            Some(t) => t,
            None => return Ok(Vec::new()),
        }
    } else {
        due
    };
    let fresh = last_logical.is_none_or(|last| logical > last);
    let in_range = logical >= start && dag.end_date.is_none_or(|end| logical <= end);
    if !(fresh && in_range) {
        return Ok(Vec::new());
    }
    Ok(candidate(dag, &ticks, logical)?
        .map(|c| c.interval)
        .into_iter()
        .collect())
}

/// The instant the next scheduled run becomes due after the one at `last_logical`
/// (`None` if the schedule has no more runs).
pub fn next_due_at(
    dag: &Dag,
    last_logical: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, ScheduleError> {
    match &dag.schedule {
        Schedule::None => Ok(None),
        Schedule::Once => Ok(match (dag.start_date, last_logical) {
            (Some(start), None) if dag.end_date.is_none_or(|end| start <= end) => Some(start),
            _ => None,
        }),
        Schedule::Cron(expr) => {
            let ticks = Ticks::new(expr, &dag.timezone)?;
            Ok(first_after(dag, &ticks, last_logical)?.map(|c| c.due))
        }
    }
}

/// Every run whose tick falls in [start, end], oldest first (for backfill). With data
/// intervals the tick is the run's logical date (its interval start). Ticks before the DAG's
/// `start_date` or after its `end_date` are left out.
pub fn intervals_between(
    dag: &Dag,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<DataInterval>, ScheduleError> {
    let from = dag.start_date.map_or(start, |s| s.max(start));
    let to = dag.end_date.map_or(end, |e| e.min(end));
    let expr = match &dag.schedule {
        Schedule::None => {
            return Err(ScheduleError(format!(
                "DAG '{}' has no schedule, so there are no ticks to backfill",
                dag.dag_id
            )));
        }
        Schedule::Once => {
            return Ok(dag
                .start_date
                .filter(|s| (start..=end).contains(s))
                .map(manual_interval)
                .into_iter()
                .collect());
        }
        Schedule::Cron(expr) => expr,
    };
    let ticks = Ticks::new(expr, &dag.timezone)?;
    let mut runs = Vec::new();
    let mut tick = ticks.next(from, true)?;
    while let Some(t) = tick.filter(|t| *t <= to) {
        if runs.len() >= MAX_BACKFILL_RUNS {
            return Err(ScheduleError(format!(
                "the range holds more than {MAX_BACKFILL_RUNS} runs; backfill a shorter range"
            )));
        }
        if let Some(c) = candidate(dag, &ticks, t)? {
            runs.push(c.interval);
        }
        tick = ticks.next(t, false)?;
    }
    Ok(runs)
}

/// A manual run at `at`: both interval ends equal to it.
pub fn manual_interval(at: DateTime<Utc>) -> DataInterval {
    DataInterval {
        logical_date: at,
        start: at,
        end: at,
    }
}

/// `scheduled__2024-01-01T00:00:00+00:00`, `manual__2026-12-01T21:53:46.123456+00:00`,
/// `backfill__…`, as Airflow 3 writes them (`DagRun.generate_run_id`): the type, then the
/// instant as Python's `isoformat` prints it, with microseconds when they are not zero. So a
/// cron tick's id has whole seconds and two manual triggers within one second differ.
/// Anything below a microsecond is dropped, as the store keeps microseconds.
pub fn run_id(run_type: RunType, logical_date: DateTime<Utc>) -> String {
    let format = if logical_date.timestamp_subsec_micros() == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Micros
    };
    format!(
        "{}__{}",
        run_type.as_str(),
        logical_date.to_rfc3339_opts(format, false)
    )
}

/// The run a schedule makes next: its dates and when it becomes due (Airflow's
/// `next_dagrun_*` fields: logical date, data interval and `run_after`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextRun {
    pub interval: DataInterval,
    /// When the run is due: its tick, or with data intervals the interval's end.
    pub run_after: DateTime<Utc>,
}

/// The scheduled run the scheduler makes next, given the logical date of the DAG's newest
/// scheduled run: a run already due at `now` (the oldest missed one with `catchup`, else
/// the latest due tick), or else the first one after `last_logical`. `None` for a DAG
/// without (more) scheduled runs.
pub fn next_run(
    dag: &Dag,
    last_logical: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Option<NextRun>, ScheduleError> {
    let run_after = |interval: DataInterval| {
        if dag.data_intervals && dag.schedule != Schedule::Once {
            interval.end
        } else {
            interval.logical_date
        }
    };
    if let Some(interval) = due_runs(dag, last_logical, now, 1)?.into_iter().next() {
        return Ok(Some(NextRun {
            interval,
            run_after: run_after(interval),
        }));
    }
    let next = match &dag.schedule {
        Schedule::None => None,
        Schedule::Once => match (dag.start_date, last_logical) {
            (Some(start), None) if dag.end_date.is_none_or(|end| start <= end) => Some(Candidate {
                interval: manual_interval(start),
                due: start,
            }),
            _ => None,
        },
        Schedule::Cron(expr) => first_after(dag, &Ticks::new(expr, &dag.timezone)?, last_logical)?,
    };
    // Nothing is due now, so a candidate in the past is a tick the schedule skipped (no
    // catchup past `end_date`): there is no next run.
    Ok(next.filter(|c| c.due > now).map(|c| NextRun {
        interval: c.interval,
        run_after: c.due,
    }))
}
