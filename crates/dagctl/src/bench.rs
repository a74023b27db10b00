//! `dagctl bench`: per-hop latency (upstream end -> downstream start) along a chain of no-op
//! tasks (with `--hog`, again beside a CPU hog), and throughput of a wide fan-out against the
//! machine's raw spawn rate measured in the same run, through the real scheduler, worker and
//! store, ending in one table of figures and targets; `dagctl bench sensors`: many file
//! sensors waiting at once (memory, CPU per poke round, time to release them all); `dagctl
//! bench folder`: the DAG file processor on a big folder and one file rewritten many times
//! (see [`memory`]); `dagctl bench python`: Airflow Python DAG files (see [`python`]); `dagctl bench clean`: retention
//! on a big history (see [`clean`]); `dagctl bench sustained`: many DAGs on a one-minute cron
//! for minutes (see [`sustained`]); `dagctl bench standalone`: a fan-out through `standalone`
//! and the REST API, as a user sees it (see [`standalone`]).

mod clean;
mod memory;
mod python;
mod standalone;
mod sustained;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use scheduler::TriggerRequest;
use store::Store;

use crate::backend;
use crate::cli::BenchArgs;
use crate::commands::engine::{self, Engine};
use crate::settings::Settings;

pub async fn run(settings: Settings, args: BenchArgs) -> Result<ExitCode> {
    if let Some(crate::cli::BenchWhat::Standalone(standalone_args)) = &args.what {
        // Its own server and database: no store here.
        return standalone::run(standalone_args).await;
    }
    let mut scratch: Option<(String, String)> = None;
    let store: Arc<dyn Store> = match args.backend.as_str() {
        "sqlite" => backend::temporary().await?,
        "postgres" => {
            let admin = args
                .database_url
                .clone()
                .or_else(|| std::env::var("UPDRAFT_BENCH_POSTGRES_URL").ok())
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let url = store_postgres::create_scratch_database(&admin)
                .await
                .with_context(|| {
                    format!(
                        "cannot create a benchmark database via {}",
                        crate::settings::mask_url(&admin)
                    )
                })?;
            let store = backend::open(&url).await?;
            scratch = Some((admin, url));
            store
        }
        other => bail!("unknown backend '{other}': use sqlite or postgres"),
    };
    println!("backend: {}", store.backend());
    let other = match &args.what {
        Some(crate::cli::BenchWhat::Sensors(sensor_args)) => {
            Some(sensors(&settings, store.clone(), sensor_args).await)
        }
        Some(crate::cli::BenchWhat::Folder(folder_args)) => {
            Some(memory::folder(store.clone(), folder_args).await)
        }
        Some(crate::cli::BenchWhat::Python(python_args)) => {
            Some(python::run(&settings, store.clone(), python_args).await)
        }
        Some(crate::cli::BenchWhat::Clean(clean_args)) => {
            Some(clean::run(store.clone(), clean_args).await)
        }
        Some(crate::cli::BenchWhat::Sustained(sustained_args)) => {
            Some(sustained::run(&settings, store.clone(), sustained_args).await)
        }
        Some(crate::cli::BenchWhat::Standalone(_)) => None,
        None => None,
    };
    if let Some(outcome) = other {
        drop(store);
        if let Some((admin, url)) = scratch
            && let Err(e) = store_postgres::drop_scratch_database(&admin, &url).await
        {
            eprintln!("warning: could not drop the benchmark database: {e}");
        }
        return outcome;
    }

    let mut config = engine::worker_config(&settings)?.with_concurrency(args.concurrency);
    config = config.with_heartbeat_interval(std::time::Duration::from_secs(5));
    let engine = bench_engine(&settings, store.clone(), config)?;
    let mut table = Table::new(store.backend());

    let chain = chain_dag("bench_chain", args.chain);
    let hops = run_chain(&*store, &chain, args.chain, "").await?;
    let (p50, p99) = (percentile(&hops, 0.50), percentile(&hops, 0.99));
    table.row("hop latency p50 (chain, ms)", p50, None);
    let hop_target = if store.backend() == "postgres" {
        10.0
    } else {
        5.0
    };
    table.row(
        "hop latency p99 (chain, ms)",
        p99,
        Some(Target::AtMost(hop_target)),
    );
    if args.hog {
        // The same chain with every core kept busy by a spinning process beside it.
        let hog = CpuHog::start()?;
        let hops = run_chain(&*store, &chain, args.chain, " with a CPU hog on every core").await?;
        drop(hog);
        table.row(
            "hop latency p99 with a CPU hog (ms)",
            percentile(&hops, 0.99),
            None,
        );
    }

    // The machine's own limit, measured now so the ratio holds on a noisy machine.
    let raw = raw_spawn_rate(args.fan_out, args.concurrency)?;
    println!(
        "raw spawn rate: {} `bash -c true`, {} at a time (xargs -P {}): {raw:.0}/s",
        args.fan_out, args.concurrency, args.concurrency
    );
    let fan = fan_out_dag(args.fan_out);
    let (statements, cpu) = (store_sql::statements_sent(), cpu_seconds());
    let report = run_dag(&*store, &fan).await?;
    let (statements, cpu) = (
        store_sql::statements_sent() - statements,
        cpu_seconds() - cpu,
    );
    let tis = store.task_instances(report.run).await?;
    let leaves: Vec<_> = tis
        .iter()
        .filter(|t| t.task_id.starts_with("leaf"))
        .collect();
    let first_start = leaves.iter().filter_map(|t| t.start_date).min();
    let last_end = leaves.iter().filter_map(|t| t.end_date).max();
    let span = match (first_start, last_end) {
        (Some(a), Some(b)) => (b - a).as_seconds_f64(),
        _ => f64::NAN,
    };
    let rate = leaves.len() as f64 / span;
    println!(
        "fan-out of {}: {} in {:.2}s; {rate:.0} tasks/s (first leaf start -> last leaf end {:.2}s) with worker concurrency {}",
        args.fan_out, report.state, report.seconds, span, args.concurrency,
    );
    // Where a task's time goes, in this process (scheduler, worker and store together; the
    // task processes themselves are not counted).
    let tasks = tis.len().max(1) as f64;
    println!(
        "fan-out per task: {:.1} store statements, {:.2} ms CPU in this process",
        statements as f64 / tasks,
        cpu * 1000.0 / tasks,
    );
    // A slot's time per task, against the part of it the try itself records (claim → end).
    let mut spans: Vec<f64> = leaves
        .iter()
        .filter_map(|t| Some((t.end_date? - t.start_date?).as_seconds_f64() * 1000.0))
        .collect();
    spans.sort_by(f64::total_cmp);
    let held = args.concurrency as f64 * span * 1000.0 / leaves.len().max(1) as f64;
    let mean_span = spans.iter().sum::<f64>() / spans.len().max(1) as f64;
    println!(
        "fan-out per task: a slot held {held:.1} ms, of which the try's own span (claim -> end) {mean_span:.1} ms mean, {:.1} ms p50",
        percentile(&spans, 0.5)
    );
    table.row("slot held per task (ms)", held, None);
    table.row("try span claim -> end, mean (ms)", mean_span, None);
    table.row("raw spawn rate (xargs, /s)", raw, None);
    table.row("fan-out (tasks/s)", rate, None);
    let share_target = if store.backend() == "postgres" {
        0.6
    } else {
        0.7
    };
    table.row(
        "fan-out / raw spawn rate",
        rate / raw,
        Some(Target::AtLeast(share_target)),
    );
    table.row("store statements per task", statements as f64 / tasks, None);
    table.row("engine CPU per task (ms)", cpu * 1000.0 / tasks, None);
    table.print();
    engine.stop().await?;
    drop(store);
    if let Some((admin, url)) = scratch {
        // The database is the benchmark's own; a failed drop leaves only an empty scratch copy.
        if let Err(e) = store_postgres::drop_scratch_database(&admin, &url).await {
            eprintln!("warning: could not drop the benchmark database: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A scheduler (no folder watch, no cron: the bench triggers every run) and a worker with
/// `worker` settings, on `store`.
fn bench_engine(
    settings: &Settings,
    store: Arc<dyn Store>,
    worker: worker::WorkerConfig,
) -> Result<Engine> {
    Ok(Engine::start(
        store,
        engine::scheduler_config(settings, None)?
            .without_watch()
            .without_cron(),
        Some(worker),
    ))
}

struct RunReport {
    run: i64,
    state: dag::RunState,
    seconds: f64,
}

async fn run_dag(store: &dyn Store, yaml: &str) -> Result<RunReport> {
    let dag = dag::parse_dag_str("bench.yaml", yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
    let version = format!("bench-{}", Utc::now().timestamp_micros());
    store.sync_dag(&dag, &version, Utc::now()).await?;
    run_synced(store, &dag.dag_id).await
}

/// Unpause an already synced DAG, trigger it, and wait for the run to finish.
async fn run_synced(store: &dyn Store, dag_id: &str) -> Result<RunReport> {
    store.unpause_dag(dag_id).await?;
    let started = Instant::now();
    // Its own run id: the same DAG may be run several times within one second.
    let request = TriggerRequest {
        run_id: Some(format!("bench__{}", Utc::now().timestamp_micros())),
        ..TriggerRequest::default()
    };
    let run = scheduler::trigger(store, dag_id, request, Utc::now()).await?;
    let done = engine::wait_for_run(store, run.id).await?;
    Ok(RunReport {
        run: run.id,
        state: done.state,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Run the chain DAG once and print its per-hop latencies; sorted milliseconds.
async fn run_chain(store: &dyn Store, yaml: &str, n: usize, beside: &str) -> Result<Vec<f64>> {
    let report = run_dag(store, yaml).await?;
    let tis = store.task_instances(report.run).await?;
    let hops = chain_hops(&tis, n);
    println!(
        "chain of {n}{beside}: {} in {:.2}s; per-hop latency (upstream end -> downstream start) {}",
        report.state,
        report.seconds,
        spread(&hops),
    );
    Ok(hops)
}

/// `count` runs of `bash -c true`, `parallel` at a time, through `xargs -P`: what this machine
/// can spawn with nothing else in the way, per second.
fn raw_spawn_rate(count: usize, parallel: usize) -> Result<f64> {
    use std::io::Write;
    let started = Instant::now();
    let mut xargs = std::process::Command::new("xargs")
        .args(["-P", &parallel.to_string(), "-n", "1", "bash", "-c", "true"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("cannot run xargs for the raw spawn rate")?;
    {
        let mut stdin = xargs.stdin.take().context("xargs has no stdin")?;
        // One argument per run: bash sees it as $0, which `true` ignores.
        for i in 0..count {
            writeln!(stdin, "{i}").context("cannot feed xargs")?;
        }
    }
    let status = xargs.wait().context("xargs did not finish")?;
    if !status.success() {
        bail!("xargs failed: {status}");
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// One spinning process per core, killed when dropped.
struct CpuHog(Vec<std::process::Child>);

impl CpuHog {
    fn start() -> Result<CpuHog> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let mut children = Vec::with_capacity(cores);
        for _ in 0..cores {
            children.push(
                std::process::Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .context("cannot start a CPU hog")?,
            );
        }
        Ok(CpuHog(children))
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a figure should be.
#[derive(Debug, Clone, Copy)]
enum Target {
    AtMost(f64),
    AtLeast(f64),
}

/// The benchmark's figures, printed as one table at the end so that runs compare line by line.
struct Table {
    backend: &'static str,
    rows: Vec<(&'static str, f64, Option<Target>)>,
}

impl Table {
    fn new(backend: &'static str) -> Table {
        Table {
            backend,
            rows: Vec::new(),
        }
    }

    fn row(&mut self, figure: &'static str, value: f64, target: Option<Target>) {
        self.rows.push((figure, value, target));
    }

    fn print(&self) {
        println!("\n| figure ({}) | value | target | met |", self.backend);
        println!("|---|---|---|---|");
        for (figure, value, target) in &self.rows {
            let (target, met) = match target {
                Some(Target::AtMost(t)) => {
                    (format!("<= {t}"), if *value <= *t { "yes" } else { "no" })
                }
                Some(Target::AtLeast(t)) => {
                    (format!(">= {t}"), if *value >= *t { "yes" } else { "no" })
                }
                None => (String::new(), ""),
            };
            let shown = if value.abs() >= 100.0 {
                format!("{value:.0}")
            } else {
                format!("{value:.2}")
            };
            println!("| {figure} | {shown} | {target} | {met} |");
        }
    }
}

/// Per-hop latencies in ms (upstream end -> downstream start) along a chain `t0000`, `t0001`, …
fn chain_hops(tis: &[store::TaskInstanceRecord], n: usize) -> Vec<f64> {
    let mut hops = Vec::with_capacity(n);
    for i in 1..n {
        let up = tis.iter().find(|t| t.task_id == format!("t{:04}", i - 1));
        let down = tis.iter().find(|t| t.task_id == format!("t{i:04}"));
        if let (Some(end), Some(start)) =
            (up.and_then(|t| t.end_date), down.and_then(|t| t.start_date))
        {
            hops.push((start - end).as_seconds_f64() * 1000.0);
        }
    }
    hops.sort_by(f64::total_cmp);
    hops
}

/// `p50 …, p95 …, p99 …, max …` of sorted milliseconds.
fn spread(sorted: &[f64]) -> String {
    format!(
        "p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(sorted, 0.50),
        percentile(sorted, 0.95),
        percentile(sorted, 0.99),
        sorted.last().copied().unwrap_or(f64::NAN),
    )
}

fn chain_dag(dag_id: &str, n: usize) -> String {
    let mut yaml = format!("dag_id: {dag_id}\nmax_active_tasks: 64\ntasks:\n");
    for i in 0..n {
        yaml.push_str(&format!("  - {{id: t{i:04}, bash: 'true'"));
        if i > 0 {
            yaml.push_str(&format!(", depends_on: [t{:04}]", i - 1));
        }
        yaml.push_str("}\n");
    }
    yaml
}

fn fan_out_dag(n: usize) -> String {
    let mut yaml = format!(
        "dag_id: bench_fan_out\nmax_active_tasks: {n}\ntasks:\n  - {{id: root, bash: 'true'}}\n"
    );
    for i in 0..n {
        yaml.push_str(&format!(
            "  - {{id: leaf{i:04}, bash: 'true', depends_on: [root]}}\n"
        ));
    }
    yaml
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// `dagctl bench sensors`: one run of `count` file sensors waiting for files that do not
/// exist, measured over several poke rounds, then released by creating every file. The
/// process is the scheduler, the worker and the store together, so its RSS is what a
/// scheduler holding that many waiting sensors costs (plus the bench's own sampling).
async fn sensors(
    settings: &Settings,
    store: Arc<dyn Store>,
    args: &crate::cli::SensorBenchArgs,
) -> Result<ExitCode> {
    let dir = tempfile::Builder::new()
        .prefix("updraft-bench-sensors-")
        .tempdir()
        .context("cannot create the folder for the sensors' files")?;
    let dag_id = "bench_sensors";
    {
        // The bench's own copy of the DAG goes before the sensors start: the scheduler keeps
        // its own.
        let mut yaml = format!("dag_id: {dag_id}\ntasks:\n");
        for i in 0..args.count {
            yaml.push_str(&format!(
                "  - {{id: s{i:05}, sensor: {{file: '{}'}}, poke_interval: {}}}\n",
                dir.path().join(format!("f{i:05}")).display(),
                args.poke_interval
            ));
        }
        let dag =
            dag::parse_dag_str("bench_sensors.yaml", &yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
        let version = format!("bench-{}", Utc::now().timestamp_micros());
        store.sync_dag(&dag, &version, Utc::now()).await?;
    }
    store.unpause_dag(dag_id).await?;
    let engine = bench_engine(settings, store.clone(), engine::worker_config(settings)?)?;
    let started = Instant::now();
    let run = scheduler::trigger(&*store, dag_id, TriggerRequest::default(), Utc::now()).await?;
    // Every sensor waiting: counting by state is one small query, polled.
    let give_up = 120.0 + 10.0 * args.poke_interval;
    let mut waiting = 0;
    while waiting < args.count {
        if started.elapsed().as_secs_f64() > give_up {
            bail!("only {waiting} of {} sensors started waiting", args.count);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waiting = store
            .state_counts()
            .await?
            .task_instances
            .iter()
            .find(|(state, _)| state == dag::TaskState::UpForReschedule.as_str())
            .map_or(0, |(_, n)| usize::try_from(*n).unwrap_or(0));
    }
    let all_waiting = started.elapsed().as_secs_f64();
    // The scheduler's memory with them all waiting and poked once, before the bench reads
    // anything big itself: its poke counts come from a read of every waiting sensor, which
    // a scheduler does not make (its sensor loop reads them once and keeps them).
    tokio::time::sleep(std::time::Duration::from_secs_f64(1.5 * args.poke_interval)).await;
    let scheduler = memory::Memory::read();
    let mut pokes = 0;
    while waiting < args.count || pokes < args.count as u64 {
        if started.elapsed().as_secs_f64() > give_up {
            bail!("only {waiting} of {} sensors were poked", args.count);
        }
        (waiting, pokes) = waiting_and_pokes(&*store).await?;
        if pokes < args.count as u64 {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
    println!(
        "{} file sensors waiting (up_for_reschedule) {all_waiting:.2}s after the trigger, each poked at least once by {:.2}s; poke_interval {}s",
        args.count,
        started.elapsed().as_secs_f64(),
        args.poke_interval
    );
    println!(
        "sensors: {} waiting, peak RSS {:.0} MB (target <= 80), {:.0} MB now (before the bench's own reads)",
        args.count, scheduler.peak, scheduler.now,
    );
    // Rounds: sample pokes and CPU once per poke interval (sampling costs one read of every
    // waiting sensor, included in the CPU figures).
    let mut last = (Instant::now(), cpu_seconds(), pokes);
    let mut slowest = f64::INFINITY;
    for round in 1..=args.rounds {
        tokio::time::sleep(std::time::Duration::from_secs_f64(args.poke_interval)).await;
        let (_, total) = waiting_and_pokes(&*store).await?;
        let now = (Instant::now(), cpu_seconds(), total);
        let wall = now.0.duration_since(last.0).as_secs_f64();
        let cpu = now.1 - last.1;
        let done = now.2.saturating_sub(last.2);
        slowest = slowest.min(done as f64 / wall);
        println!(
            "round {round}: {done} pokes in {wall:.2}s = {:.0} pokes/s; CPU {cpu:.3}s ({:.1}% of a core, {:.1} us per poke)",
            done as f64 / wall,
            100.0 * cpu / wall,
            if done > 0 {
                1e6 * cpu / done as f64
            } else {
                f64::NAN
            },
        );
        last = now;
    }
    let sampled = memory::Memory::read();
    println!("peak RSS (VmHWM) while waiting: {}", peak_rss());
    println!(
        "sensors: slowest round {slowest:.0} pokes/s (due: {:.0}/s); with the bench's sampling reads peak RSS {:.0} MB, {:.0} MB now",
        args.count as f64 / args.poke_interval,
        sampled.peak,
        sampled.now,
    );
    // Release: create every file, then wait for the run to succeed.
    let released = Instant::now();
    for i in 0..args.count {
        std::fs::write(dir.path().join(format!("f{i:05}")), b"")
            .context("cannot create a sensor's file")?;
    }
    let created = released.elapsed().as_secs_f64();
    let done = engine::wait_for_run(&*store, run.id).await?;
    let tis = store.task_instances(run.id).await?;
    let succeeded = tis
        .iter()
        .filter(|t| t.state == dag::TaskState::Success)
        .count();
    println!(
        "released: files created in {created:.2}s; run {} with {succeeded} of {} sensors succeeded {:.2}s after the first file (poke_interval {}s bounds it)",
        done.state,
        args.count,
        released.elapsed().as_secs_f64(),
        args.poke_interval
    );
    println!("peak RSS (VmHWM) overall: {}", peak_rss());
    engine.stop().await?;
    Ok(
        if done.state == dag::RunState::Success && succeeded == args.count {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// Sensors waiting now, and pokes made so far by all of them.
async fn waiting_and_pokes(store: &dyn Store) -> Result<(usize, u64)> {
    let waiting = store.waiting_sensors(None).await?;
    let pokes = waiting
        .iter()
        .map(|w| u64::from(w.progress.poke_count))
        .sum();
    Ok((waiting.len(), pokes))
}

/// User + system CPU seconds of this process, from `/proc/self/stat` (clock ticks of 1/100 s,
/// Linux's USER_HZ).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state.
    (ticks(11) + ticks(12)) / 100.0
}

/// The process's resident set now, in KiB, from `/proc/self/status` (0 when unknown).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// The process's peak resident set, from `/proc/self/status`.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}
