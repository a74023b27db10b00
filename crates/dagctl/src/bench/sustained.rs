//! `dagctl bench sustained`: many DAGs on a one-minute cron, for minutes, through the real
//! scheduler (cron on) and worker. Does the backlog stay flat? It prints, per minute, the
//! runs made and finished, the unfinished runs at its end, the process's CPU and RSS, and
//! at the end the queued → start latency of every task instance (p50, p99, max).
//!
//! Each DAG is `start → 8 × true → end` (ten bash tasks), `*/1 * * * *`, no catchup, so each
//! minute's tick makes one run of every DAG at once: a burst of `dags × 10` tasks.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use store::Store;

use super::{cpu_seconds, percentile, rss_kib};
use crate::cli::SustainedBenchArgs;
use crate::commands::engine::{self, Engine};
use crate::settings::Settings;

pub async fn run(
    settings: &Settings,
    store: Arc<dyn Store>,
    args: &SustainedBenchArgs,
) -> Result<ExitCode> {
    let now = Utc::now();
    for d in 0..args.dags {
        let yaml = dag_yaml(&format!("sustained_{d:03}"));
        let dag =
            dag::parse_dag_str("sustained.yaml", &yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
        store.sync_dag(&dag, "bench-1", now).await?;
        store.unpause_dag(&dag.dag_id).await?;
    }
    let worker = engine::worker_config(settings)?.with_concurrency(args.concurrency);
    let engine = Engine::start(
        store.clone(),
        engine::scheduler_config(settings, None)?.without_watch(),
        Some(worker),
    );
    println!(
        "{} DAGs of 10 tasks on */1 * * * * for {} min, worker concurrency {}",
        args.dags, args.minutes, args.concurrency
    );
    println!(
        "| minute | runs made | runs finished | unfinished at end | CPU (% of a core) | RSS (MB) |"
    );
    println!("|---|---|---|---|---|---|");
    let started = Instant::now();
    let mut last = (Instant::now(), cpu_seconds(), 0usize, 0usize);
    let mut backlog = Vec::new();
    for minute in 1..=args.minutes {
        let until = started + Duration::from_secs(60 * minute as u64);
        tokio::time::sleep_until(until.into()).await;
        let runs = store
            .list_runs(&store::RunFilter::default())
            .await
            .context("cannot list the runs")?;
        let made = runs.len();
        let finished = runs.iter().filter(|r| r.state.is_finished()).count();
        let (wall, cpu) = (last.0.elapsed().as_secs_f64(), cpu_seconds());
        println!(
            "| {minute} | {} | {} | {} | {:.0} | {:.0} |",
            made - last.2,
            finished - last.3,
            made - finished,
            100.0 * (cpu - last.1) / wall,
            rss_kib() as f64 / 1024.0,
        );
        backlog.push(made - finished);
        last = (Instant::now(), cpu, made, finished);
    }
    engine.stop().await?;

    let mut waits = Vec::new();
    for run in store.list_runs(&store::RunFilter::default()).await? {
        for ti in store.task_instances(run.id).await? {
            if let (Some(queued), Some(start)) = (ti.queued_at, ti.start_date) {
                waits.push((start - queued).as_seconds_f64() * 1000.0);
            }
        }
    }
    waits.sort_by(f64::total_cmp);
    println!(
        "queued -> start over {} task instances: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 <= 1000)",
        waits.len(),
        percentile(&waits, 0.50),
        percentile(&waits, 0.99),
        waits.last().copied().unwrap_or(f64::NAN),
    );
    let grew = backlog.windows(2).filter(|w| w[1] > w[0]).count();
    println!(
        "backlog (unfinished runs at each minute's end): {backlog:?}; grew in {grew} of {} minutes",
        backlog.len().saturating_sub(1)
    );
    Ok(ExitCode::SUCCESS)
}

fn dag_yaml(dag_id: &str) -> String {
    let mut yaml = format!(
        "dag_id: {dag_id}\nschedule: '*/1 * * * *'\nstart_date: 2024-01-01\ncatchup: false\n\
         tasks:\n  - {{id: start, bash: 'true'}}\n  - {{id: end, bash: 'true', depends_on: ["
    );
    let middle: Vec<String> = (0..8).map(|i| format!("m{i}")).collect();
    yaml.push_str(&middle.join(", "));
    yaml.push_str("]}\n");
    for m in &middle {
        yaml.push_str(&format!(
            "  - {{id: {m}, bash: 'true', depends_on: [start]}}\n"
        ));
    }
    yaml
}
