//! `dagctl bench clean`: retention on a big history. Loads `runs` finished runs in bulk
//! ([`store::history`]), counts them with a dry run, then deletes them with `clean_history`
//! while a concurrent task keeps writing a scheduler's heartbeat, and reports the batches and
//! that write's latency during the clean (against its latency on an idle store).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use store::history::{self, HistoryShape};
use store::{CleanHistory, CleanMode, CleanReport, Store};
use tokio::sync::watch;

use super::spread;
use crate::cli::CleanBenchArgs;

/// How often the concurrent writer beats: a busy scheduler's pace, far above its real one.
const BEAT_EVERY: Duration = Duration::from_millis(2);

/// Heartbeats measured on the idle store, for comparison.
const IDLE_BEATS: usize = 500;

pub(super) async fn run(store: Arc<dyn Store>, args: &CleanBenchArgs) -> Result<ExitCode> {
    let shape = HistoryShape::new("bench_history", args.runs, Utc::now())
        .with_tasks(args.tasks)
        .with_log_lines(args.log_lines);
    let loaded = history::load(&*store, &shape).await?;
    let rows = loaded.rows;
    println!(
        "loaded {} runs, {} task instances, {} log lines, {} XComs ({} rows) in {:.2}s: {:.0} rows/s",
        rows.dag_runs,
        rows.task_instances,
        rows.task_logs,
        rows.xcom,
        rows.total(),
        loaded.elapsed.as_secs_f64(),
        rows.total() as f64 / loaded.elapsed.as_secs_f64(),
    );

    let mut idle = Vec::with_capacity(IDLE_BEATS);
    for _ in 0..IDLE_BEATS {
        idle.push(beat(&*store).await?);
        tokio::time::sleep(BEAT_EVERY).await;
    }
    idle.sort_by(f64::total_cmp);
    println!("record_heartbeat on the idle store: {}", spread(&idle));

    // Everything loaded is older than this; the DAG's newest (scheduled) run stays.
    let cutoff = shape.end() + chrono::Duration::hours(1);
    let request = CleanHistory::new(cutoff).with_batch_size(args.batch_size);
    let dry = store
        .clean_history(&request.clone().with_mode(CleanMode::DryRun))
        .await?;
    println!("dry run: {}", figures(&dry));

    let (stop, stopped) = watch::channel(false);
    let beater = tokio::spawn(beat_until(store.clone(), stopped));
    let report = store.clean_history(&request).await?;
    stop.send(true).ok();
    let mut during = beater.await.context("the heartbeat task panicked")??;
    during.sort_by(f64::total_cmp);
    println!(
        "clean, batches of {}: {}",
        args.batch_size,
        figures(&report)
    );
    println!(
        "record_heartbeat during the clean ({} beats): {}",
        during.len(),
        spread(&during)
    );

    let left = store
        .list_runs(&store::RunFilter {
            dag_id: Some(shape.dag_id.clone()),
            ..Default::default()
        })
        .await?
        .len();
    println!("runs left: {left} (the DAG's newest scheduled run)");
    let expected_runs = rows.dag_runs.saturating_sub(1);
    Ok(
        if report.rows == dry.rows && report.rows.dag_runs == expected_runs && left == 1 {
            ExitCode::SUCCESS
        } else {
            eprintln!(
                "error: the clean deleted {:?}, the dry run counted {:?}, and {left} runs are left",
                report.rows, dry.rows
            );
            ExitCode::FAILURE
        },
    )
}

/// Rows per table, batches and times of a clean or a dry run, on one line.
fn figures(report: &CleanReport) -> String {
    let tables: Vec<String> = report
        .rows
        .tables()
        .iter()
        .map(|(table, rows)| format!("{table} {rows}"))
        .collect();
    format!(
        "{} rows ({}) in {:.2}s; {} batches, longest batch {:.1} ms",
        report.rows.total(),
        tables.join(", "),
        report.elapsed.as_secs_f64(),
        report.batches,
        report.longest_batch.as_secs_f64() * 1000.0,
    )
}

/// One scheduler heartbeat; its latency in milliseconds.
async fn beat(store: &dyn Store) -> Result<f64> {
    let started = Instant::now();
    store
        .record_heartbeat("scheduler", "bench-clean", "bench", Utc::now())
        .await?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// Beat every [`BEAT_EVERY`] until `stopped`; every latency in milliseconds.
async fn beat_until(store: Arc<dyn Store>, mut stopped: watch::Receiver<bool>) -> Result<Vec<f64>> {
    let mut latencies = Vec::new();
    let mut tick = tokio::time::interval(BEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped.changed() => return Ok(latencies),
            _ = tick.tick() => latencies.push(beat(&*store).await?),
        }
    }
}
