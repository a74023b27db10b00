//! Cron ticks, catchup, data intervals, DST and run ids.

use chrono::{DateTime, Utc};
use dag::parse::parse_dag_str;
use dag::schedule::{
    DataInterval, due_runs, intervals_between, manual_interval, next_due_at, next_run, run_id,
    validate_cron,
};
use dag::{Dag, RunType};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad test time {s}: {e}"))
        .with_timezone(&Utc)
}

fn dag(top: &str) -> Dag {
    let text = format!("{top}\ntasks: [{{id: a, bash: x}}]\n");
    parse_dag_str("s.yaml", &text).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs as "logical start end" in UTC, shortened to `MM-DDTHH:MM`.
fn show(runs: &[DataInterval]) -> Vec<String> {
    let f = |d: DateTime<Utc>| d.format("%m-%dT%H:%M").to_string();
    runs.iter()
        .map(|r| format!("{} {} {}", f(r.logical_date), f(r.start), f(r.end)))
        .collect()
}

fn check_due(top: &str, last: Option<&str>, now: &str, max: usize, expected: &[&str]) {
    let d = dag(top);
    let runs = due_runs(&d, last.map(t), t(now), max).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(show(&runs), expected, "{top} last={last:?} now={now}");
}

#[test]
fn due_runs_table() {
    let daily = "schedule: '0 2 * * *'\nstart_date: 2024-01-01";
    // Without catchup only the latest due tick.
    check_due(
        daily,
        None,
        "2024-01-05T03:00:00Z",
        10,
        &["01-05T02:00 01-05T02:00 01-05T02:00"],
    );
    check_due(
        daily,
        Some("2024-01-05T02:00:00Z"),
        "2024-01-05T03:00:00Z",
        10,
        &[],
    );
    check_due(daily, None, "2023-12-31T03:00:00Z", 10, &[]);
    // Exactly at the tick it is due.
    check_due(
        daily,
        None,
        "2024-01-01T02:00:00Z",
        10,
        &["01-01T02:00 01-01T02:00 01-01T02:00"],
    );
    // With catchup every missed tick, oldest first, capped.
    let catchup = "schedule: '0 2 * * *'\nstart_date: 2024-01-01\ncatchup: true";
    check_due(
        catchup,
        None,
        "2024-01-03T12:00:00Z",
        10,
        &[
            "01-01T02:00 01-01T02:00 01-01T02:00",
            "01-02T02:00 01-02T02:00 01-02T02:00",
            "01-03T02:00 01-03T02:00 01-03T02:00",
        ],
    );
    check_due(
        catchup,
        None,
        "2024-01-03T12:00:00Z",
        2,
        &[
            "01-01T02:00 01-01T02:00 01-01T02:00",
            "01-02T02:00 01-02T02:00 01-02T02:00",
        ],
    );
    check_due(
        catchup,
        Some("2024-01-02T02:00:00Z"),
        "2024-01-03T12:00:00Z",
        10,
        &["01-03T02:00 01-03T02:00 01-03T02:00"],
    );
    // Data intervals: the run for [prev, tick) is made at tick, logical = prev.
    let intervals = "schedule: '@daily'\nstart_date: 2024-01-01\ndata_intervals: true";
    check_due(intervals, None, "2024-01-01T12:00:00Z", 10, &[]);
    check_due(
        intervals,
        None,
        "2024-01-03T12:00:00Z",
        10,
        &["01-02T00:00 01-02T00:00 01-03T00:00"],
    );
    check_due(
        &format!("{intervals}\ncatchup: true"),
        None,
        "2024-01-03T12:00:00Z",
        10,
        &[
            "01-01T00:00 01-01T00:00 01-02T00:00",
            "01-02T00:00 01-02T00:00 01-03T00:00",
        ],
    );
    // end_date stops scheduled runs.
    let ended = "schedule: '@daily'\nstart_date: 2024-01-01\nend_date: 2024-01-02\ncatchup: true";
    check_due(
        ended,
        None,
        "2024-02-01T00:00:00Z",
        10,
        &[
            "01-01T00:00 01-01T00:00 01-01T00:00",
            "01-02T00:00 01-02T00:00 01-02T00:00",
        ],
    );
    check_due(
        ended,
        Some("2024-01-02T00:00:00Z"),
        "2024-02-01T00:00:00Z",
        10,
        &[],
    );
    // @once: one run at start_date.
    let once = "schedule: '@once'\nstart_date: 2024-01-01T05:00:00Z";
    check_due(
        once,
        None,
        "2024-03-01T00:00:00Z",
        10,
        &["01-01T05:00 01-01T05:00 01-01T05:00"],
    );
    check_due(
        once,
        Some("2024-01-01T05:00:00Z"),
        "2024-03-01T00:00:00Z",
        10,
        &[],
    );
    check_due(once, None, "2023-03-01T00:00:00Z", 10, &[]);
    // Manual-only DAGs never have scheduled runs.
    check_due("schedule: null", None, "2024-03-01T00:00:00Z", 10, &[]);
    // A start_date between ticks: the first run is the first tick after it.
    check_due(
        "schedule: '*/15 * * * *'\nstart_date: 2024-01-01T00:05:00Z\ncatchup: true",
        None,
        "2024-01-01T00:40:00Z",
        10,
        &[
            "01-01T00:15 01-01T00:15 01-01T00:15",
            "01-01T00:30 01-01T00:30 01-01T00:30",
        ],
    );
}

#[test]
fn timezones_and_dst() {
    // 02:30 does not exist in Berlin on 2024-03-31: the tick fires at the gap's end,
    // 03:00 CEST = 01:00 UTC. The days around it stay at 02:30 local.
    let berlin =
        "schedule: '30 2 * * *'\nstart_date: 2024-03-30\ntimezone: Europe/Berlin\ncatchup: true";
    check_due(
        berlin,
        None,
        "2024-04-01T12:00:00Z",
        10,
        &[
            "03-30T01:30 03-30T01:30 03-30T01:30",
            "03-31T01:00 03-31T01:00 03-31T01:00",
            "04-01T00:30 04-01T00:30 04-01T00:30",
        ],
    );
    // A daily 02:00 run in New York is 07:00 UTC in winter and 06:00 UTC in summer.
    let ny = "schedule: '0 2 * * *'\nstart_date: 2024-03-09\ntimezone: America/New_York";
    let d = dag(ny);
    let runs =
        intervals_between(&d, t("2024-03-09T00:00:00Z"), t("2024-03-12T00:00:00Z")).expect("ticks");
    assert_eq!(
        show(&runs).iter().map(|s| &s[..11]).collect::<Vec<_>>(),
        ["03-09T07:00", "03-10T07:00", "03-11T06:00"]
    );
}

#[test]
fn next_due() {
    let check = |top: &str, last: Option<&str>, expected: Option<&str>| {
        let d = dag(top);
        let got = next_due_at(&d, last.map(t)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, expected.map(t), "{top} last={last:?}");
    };
    let daily = "schedule: '0 2 * * *'\nstart_date: 2024-01-01";
    check(daily, None, Some("2024-01-01T02:00:00Z"));
    check(
        daily,
        Some("2024-01-01T02:00:00Z"),
        Some("2024-01-02T02:00:00Z"),
    );
    // With data intervals the next run is due at the end of its interval.
    check(
        "schedule: '@daily'\nstart_date: 2024-01-01\ndata_intervals: true",
        None,
        Some("2024-01-02T00:00:00Z"),
    );
    check(
        "schedule: '@daily'\nstart_date: 2024-01-01\ndata_intervals: true",
        Some("2024-01-01T00:00:00Z"),
        Some("2024-01-03T00:00:00Z"),
    );
    check(
        "schedule: '@daily'\nstart_date: 2024-01-01\nend_date: 2024-01-02",
        Some("2024-01-02T00:00:00Z"),
        None,
    );
    check(
        "schedule: '@once'\nstart_date: 2024-01-01",
        None,
        Some("2024-01-01T00:00:00Z"),
    );
    check(
        "schedule: '@once'\nstart_date: 2024-01-01",
        Some("2024-01-01T00:00:00Z"),
        None,
    );
    check("schedule: null", None, None);
}

#[test]
fn next_run_is_what_the_scheduler_makes_next() {
    // (top-level keys, newest scheduled logical date, now) → "logical start end | run_after"
    let check = |top: &str, last: Option<&str>, now: &str, expected: Option<&str>| {
        let d = dag(top);
        let got = next_run(&d, last.map(t), t(now)).unwrap_or_else(|e| panic!("{e}"));
        let f = |d: DateTime<Utc>| d.format("%m-%dT%H:%M").to_string();
        let shown = got.map(|n| format!("{} | {}", show(&[n.interval])[0], f(n.run_after)));
        assert_eq!(shown.as_deref(), expected, "{top} last={last:?} now={now}");
    };
    let daily = "schedule: '0 2 * * *'\nstart_date: 2024-01-01";
    // Due but not made yet: without catchup, the latest due tick.
    check(
        daily,
        None,
        "2024-03-05T10:00:00Z",
        Some("03-05T02:00 03-05T02:00 03-05T02:00 | 03-05T02:00"),
    );
    // Made: the next tick.
    check(
        daily,
        Some("2024-03-05T02:00:00Z"),
        "2024-03-05T10:00:00Z",
        Some("03-06T02:00 03-06T02:00 03-06T02:00 | 03-06T02:00"),
    );
    // With catchup, the oldest missed one.
    check(
        "schedule: '@daily'\nstart_date: 2024-01-01\ncatchup: true",
        None,
        "2024-01-03T10:00:00Z",
        Some("01-01T00:00 01-01T00:00 01-01T00:00 | 01-01T00:00"),
    );
    // Data intervals: due at the interval's end.
    check(
        "schedule: '@daily'\nstart_date: 2024-01-01\ndata_intervals: true",
        Some("2024-03-04T00:00:00Z"),
        "2024-03-05T10:00:00Z",
        Some("03-05T00:00 03-05T00:00 03-06T00:00 | 03-06T00:00"),
    );
    check(
        "schedule: '@once'\nstart_date: 2024-01-01",
        None,
        "2023-12-01T00:00:00Z",
        Some("01-01T00:00 01-01T00:00 01-01T00:00 | 01-01T00:00"),
    );
    check(
        "schedule: '@once'\nstart_date: 2024-01-01",
        Some("2024-01-01T00:00:00Z"),
        "2024-02-01T00:00:00Z",
        None,
    );
    check(
        "schedule: '@daily'\nstart_date: 2024-01-01\nend_date: 2024-01-02",
        Some("2024-01-02T00:00:00Z"),
        "2024-02-01T00:00:00Z",
        None,
    );
    check("schedule: null", None, "2024-02-01T00:00:00Z", None);
}

#[test]
fn backfill_ticks() {
    let d = dag("schedule: '0 */6 * * *'\nstart_date: 2024-01-01");
    let runs =
        intervals_between(&d, t("2024-01-01T06:00:00Z"), t("2024-01-02T00:00:00Z")).expect("ticks");
    assert_eq!(
        show(&runs),
        [
            "01-01T06:00 01-01T06:00 01-01T06:00",
            "01-01T12:00 01-01T12:00 01-01T12:00",
            "01-01T18:00 01-01T18:00 01-01T18:00",
            "01-02T00:00 01-02T00:00 01-02T00:00",
        ]
    );
    let d = dag("schedule: '@daily'\nstart_date: 2024-01-01\ndata_intervals: true");
    let runs =
        intervals_between(&d, t("2023-12-01T00:00:00Z"), t("2024-01-02T00:00:00Z")).expect("ticks");
    assert_eq!(
        show(&runs),
        [
            "01-01T00:00 01-01T00:00 01-02T00:00",
            "01-02T00:00 01-02T00:00 01-03T00:00",
        ]
    );
    let manual = dag("schedule: null");
    let e = intervals_between(
        &manual,
        t("2024-01-01T00:00:00Z"),
        t("2024-01-02T00:00:00Z"),
    )
    .expect_err("no schedule");
    assert!(e.0.contains("has no schedule"), "{e}");
}

#[test]
fn presets_and_cron_validation() {
    let check = |expr: &str, expected: Result<(), &str>| {
        let got = validate_cron(expr);
        match (&got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(part)) => assert!(e.0.contains(part) && e.0.contains(expr), "{expr}: {e}"),
            _ => panic!("{expr}: got {got:?}, expected {expected:?}"),
        }
    };
    for ok in [
        "0 2 * * *",
        "*/15 * * * *",
        "0 0 1 * MON-FRI",
        "@once",
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "@yearly",
    ] {
        check(ok, Ok(()));
    }
    check("0 25 * * *", Err("invalid cron expression"));
    check("* * * *", Err("it has 4 fields"));
    check("0 0 * * * *", Err("it has 6 fields"));
    check("@fortnightly", Err("unknown preset"));
    check("banana", Err("invalid cron expression"));

    let first_tick = |expr: &str| {
        let d = dag(&format!(
            "schedule: '{expr}'\nstart_date: 2024-01-03T12:00:00Z"
        ));
        next_due_at(&d, None)
            .expect("valid")
            .map(|x| x.to_rfc3339())
    };
    assert_eq!(
        first_tick("@hourly").as_deref(),
        Some("2024-01-03T12:00:00+00:00")
    );
    assert_eq!(
        first_tick("@daily").as_deref(),
        Some("2024-01-04T00:00:00+00:00")
    );
    // 2024-01-07 is a Sunday.
    assert_eq!(
        first_tick("@weekly").as_deref(),
        Some("2024-01-07T00:00:00+00:00")
    );
    assert_eq!(
        first_tick("@monthly").as_deref(),
        Some("2024-02-01T00:00:00+00:00")
    );
    assert_eq!(
        first_tick("@yearly").as_deref(),
        Some("2025-01-01T00:00:00+00:00")
    );
}

#[test]
fn run_ids() {
    let at = t("2024-01-01T00:00:00Z");
    assert_eq!(
        run_id(RunType::Scheduled, at),
        "scheduled__2024-01-01T00:00:00+00:00"
    );
    assert_eq!(
        run_id(RunType::Manual, t("2024-06-30T12:34:56.789Z")),
        "manual__2024-06-30T12:34:56.789000+00:00",
        "microseconds, as Python's isoformat prints them"
    );
    assert_eq!(
        run_id(RunType::Manual, t("2026-12-01T21:53:46.123456789Z")),
        "manual__2026-12-01T21:53:46.123456+00:00",
        "below a microsecond is dropped"
    );
    assert_eq!(
        run_id(RunType::Manual, t("2024-06-30T12:34:56Z")),
        "manual__2024-06-30T12:34:56+00:00",
        "whole seconds print none"
    );
    assert_eq!(
        run_id(RunType::Backfill, at),
        "backfill__2024-01-01T00:00:00+00:00"
    );
    assert_eq!(
        manual_interval(at),
        DataInterval {
            logical_date: at,
            start: at,
            end: at
        }
    );
}
