//! Chaos: the compose topology (two schedulers, three workers, one API server, each a
//! `dagctl` process in a working directory of its own) on a private Postgres cluster, while a
//! killer SIGKILLs a random component every few seconds and starts it again, and Postgres
//! restarts once. Afterwards every run has succeeded, no try started twice, no two tries of
//! one task instance overlapped, and nothing is left unfinished — judged from the tasks' own
//! side effects (`fixtures/chaos/record.sh`) — and the figures are printed in one block.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::harness::{repo_root, wait_for};
use crate::pg_cluster::PgCluster;
use crate::topology::{Api, Exit, Kind, Topology, TopologyConfig};

/// Runs triggered, per DAG of `fixtures/chaos`.
const RUNS: [(&str, usize); 3] = [
    ("chaos_chain", 120),
    ("chaos_mapped", 60),
    ("chaos_sensor", 60),
];
/// The task instances of one run of a DAG: its id, (task id, map index) of those that record
/// their tries (the bash tasks), and how many others it has (the sensor).
type RunShape = (&'static str, &'static [(&'static str, i64)], usize);

/// The shape of one run of each DAG of `fixtures/chaos`.
const TASKS: [RunShape; 3] = [
    (
        "chaos_chain",
        &[
            ("extract", -1),
            ("transform", -1),
            ("load", -1),
            ("report", -1),
        ],
        0,
    ),
    (
        "chaos_mapped",
        &[
            ("prepare", -1),
            ("work", 0),
            ("work", 1),
            ("work", 2),
            ("work", 3),
            ("combine", -1),
        ],
        0,
    ),
    ("chaos_sensor", &[("after_gate", -1)], 1),
];

/// The triggers are spread evenly over this long from the start of the chaos.
const TRIGGER_PHASE: Duration = Duration::from_secs(50);
/// The killer works this long.
const CHAOS_PHASE: Duration = Duration::from_secs(70);
/// Pause between two kills, drawn uniformly from this range (seconds).
const KILL_PAUSE_SECONDS: std::ops::Range<f64> = 1.5..4.0;
/// When Postgres goes down (from the start of the chaos), and for how long.
const POSTGRES_RESTART_AT: Duration = Duration::from_secs(32);
const POSTGRES_DOWN: Duration = Duration::from_secs(2);
/// When the test creates the file the sensors wait for.
const GATE_AT: Duration = Duration::from_secs(20);
/// How long after the chaos every run may take to finish.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(150);
/// How long one trigger keeps being retried while the API is down.
const TRIGGER_GIVE_UP: Duration = Duration::from_secs(60);

/// Short intervals, where the design allows them, so that recovery fits the test's time.
const ENV: [(&str, &str); 5] = [
    ("UPDRAFT__SCHEDULER__ZOMBIE_THRESHOLD", "4s"),
    ("UPDRAFT__WORKER__HEARTBEAT_INTERVAL", "500ms"),
    ("UPDRAFT__SCHEDULER__POLL_INTERVAL", "500ms"),
    ("UPDRAFT__SCHEDULER__RESCAN_INTERVAL", "2s"),
    // The pool's own notes on every connection an outage broke would bury the rest.
    ("RUST_LOG", "info,sqlx=warn"),
];

#[test]
fn schedulers_workers_and_the_api_survive_being_killed_and_a_postgres_restart() {
    let started = Instant::now();
    let Some(mut postgres) = PgCluster::start() else {
        return;
    };
    postgres.create_database("updraft");
    let mut root = tempfile::Builder::new()
        .prefix("updraft-chaos-")
        .tempdir()
        .expect("temp dir");
    let dags = root.path().join("dags");
    let data = root.path().join("data");
    std::fs::create_dir_all(&dags).expect("dags dir");
    std::fs::create_dir_all(&data).expect("data dir");
    let fixtures = repo_root().join("tests/e2e/fixtures/chaos");
    for (dag_id, _) in RUNS {
        let file = format!("{dag_id}.yaml");
        std::fs::copy(fixtures.join(&file), dags.join(&file)).expect("copy DAG");
    }
    std::fs::copy(fixtures.join("record.sh"), data.join("record.sh")).expect("copy record.sh");
    let side_effects = data.join("side_effects.txt");
    std::fs::write(&side_effects, "").expect("side-effect file");

    let mut config = TopologyConfig::new(root.path(), &postgres.url("updraft"), &dags);
    for (key, value) in ENV {
        config = config.with_env(key, value);
    }
    let mut topology = Topology::from_compose(&config);
    topology.start();
    let api = topology.admin_api();
    let reply = api
        .post(
            "/api/v2/variables",
            &json!({"key": "chaos_dir", "value": data.display().to_string()}),
        )
        .expect("set chaos_dir");
    assert_eq!(reply.status, 201, "{}", reply.body);
    for (dag_id, _) in RUNS {
        wait_for(
            &format!("{dag_id} to be parsed"),
            Duration::from_secs(60),
            || {
                api.get(&format!("/api/v2/dags/{dag_id}"))
                    .ok()
                    .filter(|r| r.status == 200)
            },
        );
    }
    let setup = started.elapsed();
    eprintln!(
        "[chaos] API at http://{}, Postgres on port {}, working dirs under {}",
        topology.api_address(),
        postgres.port(),
        root.path().display()
    );

    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("[chaos] seed {seed} (CHAOS_SEED={seed} repeats the kill sequence)");
    let mut rng = StdRng::seed_from_u64(seed);
    let planned = plan_runs();
    let trigger_done = Arc::new(AtomicBool::new(false));
    let trigger = {
        let api = api.another();
        let planned = planned.clone();
        let done = trigger_done.clone();
        std::thread::spawn(move || {
            let report = trigger_all(&api, &planned);
            done.store(true, Ordering::SeqCst);
            report
        })
    };

    let mut log = unleash(&mut topology, &mut postgres, &data, &mut rng);
    let chaos = log.duration;

    // Calm: the triggers finish, then every run that landed.
    let calm = Instant::now();
    while !trigger_done.load(Ordering::SeqCst) && calm.elapsed() < TRIGGER_GIVE_UP * 2 {
        log.restart_exited(&mut topology);
        // Pacing of the watch over the components.
        std::thread::sleep(Duration::from_millis(100));
    }
    let triggers = trigger.join().expect("the trigger thread");
    let settle = Instant::now();
    let runs = settle_runs(&api, &mut topology, &mut log, &triggers.landed);
    let settled = settle.elapsed();
    let instances = wait_for("the task instances", Duration::from_secs(30), || {
        api.list_all("/api/v2/dags/~/dagRuns/~/taskInstances", "task_instances")
            .ok()
    });
    let health = api
        .get("/api/v2/monitor/health")
        .map(|r| r.body)
        .unwrap_or_else(|e| json!({"error": e}));
    let worker_pids = topology.pids(Kind::Worker);
    let killed_workers: BTreeMap<u32, (String, f64)> = log
        .kills
        .iter()
        .filter(|k| k.kind == Kind::Worker)
        .map(|k| (k.pid, (k.name.clone(), k.at)))
        .collect();
    // Every process is gone before the side effects are read, so none is still writing.
    drop(topology);
    let effects = SideEffects::read(&side_effects);

    let verdict = judge(Inputs {
        planned: &planned,
        triggers: &triggers,
        runs: &runs,
        instances: &instances,
        effects: &effects,
        worker_pids: &worker_pids,
        killed_workers: &killed_workers,
        exits: &log.exits,
        health: &health,
    });
    let figures = figures(&Figures {
        verdict: &verdict,
        triggers: &triggers,
        log: &log,
        effects: &effects,
        planned: planned.len(),
        seed,
        setup,
        chaos,
        settled,
        wall: started.elapsed(),
    });
    if verdict.problems.is_empty() {
        eprintln!("{figures}");
    }
    // Also where `.ci/run` shows them after the tests, which capture a passing test's output.
    let saved = repo_root().join("target").join("chaos-figures.txt");
    if let Err(err) = std::fs::write(&saved, &figures) {
        eprintln!(
            "[chaos] could not save the figures in {}: {err}",
            saved.display()
        );
    }
    // The components' logs and the side effects are kept for a failure, or when asked.
    let keep = !verdict.problems.is_empty() || std::env::var_os("CHAOS_KEEP").is_some();
    root.disable_cleanup(keep);
    if keep {
        eprintln!(
            "[chaos] kept {} (each component's stdout.log and stderr.log, data/side_effects.txt)",
            root.path().display()
        );
    }
    assert!(
        verdict.problems.is_empty(),
        "the chaos test found {} problem(s):\n{}\n{figures}",
        verdict.problems.len(),
        verdict.problems.join("\n")
    );
}

/// One planned run: its DAG and the explicit run id it is triggered with.
#[derive(Debug, Clone)]
struct Planned {
    dag_id: &'static str,
    run_id: String,
}

/// The runs of [`RUNS`], interleaved so that every DAG has runs throughout the chaos.
fn plan_runs() -> Vec<Planned> {
    let most = RUNS.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let mut planned = Vec::new();
    for i in 0..most {
        for (dag_id, count) in RUNS {
            if i < count {
                planned.push(Planned {
                    dag_id,
                    run_id: format!("{dag_id}-{i:04}"),
                });
            }
        }
    }
    planned
}

fn pause(rng: &mut StdRng) -> Duration {
    Duration::from_secs_f64(rng.random_range(KILL_PAUSE_SECONDS))
}

/// The chaos itself, for [`CHAOS_PHASE`]: a random component SIGKILLed and started again
/// every [`KILL_PAUSE_SECONDS`], one Postgres outage, the sensors' gate opened mid-way, and
/// every component that exits on its own noted and started again.
fn unleash(
    topology: &mut Topology,
    postgres: &mut PgCluster,
    data: &Path,
    rng: &mut StdRng,
) -> ChaosLog {
    let names = topology.names(None);
    let start = Instant::now();
    let mut log = ChaosLog::default();
    let mut next_kill = start + pause(rng);
    let mut gate_made = false;
    while start.elapsed() < CHAOS_PHASE {
        log.restart_exited(topology);
        if !gate_made && start.elapsed() >= GATE_AT {
            std::fs::write(data.join("gate"), "open\n").expect("gate file");
            gate_made = true;
        }
        if log.postgres_down.is_empty() && start.elapsed() >= POSTGRES_RESTART_AT {
            let down = Instant::now();
            postgres.stop();
            // The outage's length is the load here, not a wait for some state.
            std::thread::sleep(POSTGRES_DOWN);
            postgres.start_again();
            log.postgres_down.push(down.elapsed());
            eprintln!(
                "[chaos] Postgres was down {:.1}s",
                down.elapsed().as_secs_f64()
            );
        }
        if Instant::now() >= next_kill {
            let name = names.choose(rng).expect("components").clone();
            let kind = topology.component(&name).kind;
            let pid = topology.kill_and_restart(&name);
            log.kills.push(Kill {
                name,
                kind,
                pid,
                at: epoch_seconds(),
            });
            next_kill = Instant::now() + pause(rng);
        }
        // Pacing of the killer's loop.
        std::thread::sleep(Duration::from_millis(100));
    }
    if !gate_made {
        std::fs::write(data.join("gate"), "open\n").expect("gate file");
    }
    log.duration = start.elapsed();
    log
}

/// Poll the runs until every landed one has finished, or [`SETTLE_TIMEOUT`] has passed,
/// still noting (and starting again) components that exit; run id → state as last seen.
fn settle_runs(
    api: &Api,
    topology: &mut Topology,
    log: &mut ChaosLog,
    landed: &[String],
) -> BTreeMap<String, String> {
    let start = Instant::now();
    let mut runs = BTreeMap::new();
    loop {
        log.restart_exited(topology);
        if let Ok(listed) = api.list_all("/api/v2/dags/~/dagRuns", "dag_runs") {
            runs = listed
                .iter()
                .filter_map(|r| {
                    Some((
                        r["dag_run_id"].as_str()?.to_string(),
                        r["state"].as_str()?.to_string(),
                    ))
                })
                .collect();
            let finished = landed.iter().all(|run_id| {
                runs.get(run_id)
                    .is_some_and(|s| s == "success" || s == "failed")
            });
            if finished {
                return runs;
            }
        }
        if start.elapsed() > SETTLE_TIMEOUT {
            return runs;
        }
        // The poll's interval: each poll lists every run.
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// How the triggers went.
#[derive(Debug, Default)]
struct TriggerReport {
    /// Run ids the API accepted (or, on a retry, answered 409 for: the earlier try landed).
    landed: Vec<String>,
    /// Runs whose trigger was refused, or kept failing past [`TRIGGER_GIVE_UP`]: why.
    given_up: Vec<(String, String)>,
    /// Attempts that got no answer (the API was down), and were retried.
    unanswered: usize,
    /// Attempts answered 5xx or 408, and retried; the statuses seen, with a count each.
    server_errors: BTreeMap<u16, usize>,
}

/// Trigger every planned run through the API, spread over [`TRIGGER_PHASE`]; a trigger that
/// fails because the API is down (or answers 5xx) is retried.
fn trigger_all(api: &Api, planned: &[Planned]) -> TriggerReport {
    let start = Instant::now();
    let mut report = TriggerReport::default();
    for (i, run) in planned.iter().enumerate() {
        let due = start + TRIGGER_PHASE.mul_f64(i as f64 / planned.len() as f64);
        // Pacing: the load arrives at a steady rate.
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let path = format!("/api/v2/dags/{}/dagRuns", run.dag_id);
        let body = json!({"dag_run_id": run.run_id, "logical_date": null});
        let give_up = Instant::now() + TRIGGER_GIVE_UP;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let failure = match api.post(&path, &body) {
                Ok(reply) if reply.status == 200 => None,
                Ok(reply) if reply.status == 409 && attempts > 1 => None,
                Ok(reply) if reply.status >= 500 || reply.status == 408 => {
                    *report.server_errors.entry(reply.status).or_default() += 1;
                    Some(format!("{}: {}", reply.status, reply.body))
                }
                Ok(reply) => {
                    report.given_up.push((
                        run.run_id.clone(),
                        format!("{}: {}", reply.status, reply.body),
                    ));
                    break;
                }
                Err(err) => {
                    report.unanswered += 1;
                    Some(err)
                }
            };
            let Some(failure) = failure else {
                report.landed.push(run.run_id.clone());
                break;
            };
            if Instant::now() > give_up {
                report.given_up.push((
                    run.run_id.clone(),
                    format!("still failing after {attempts} attempts: {failure}"),
                ));
                break;
            }
            // Back-off between attempts while the API is down.
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    report
}

/// One SIGKILL by the killer.
#[derive(Debug)]
struct Kill {
    name: String,
    kind: Kind,
    pid: u32,
    /// When, in seconds since the epoch (as the side effects' `date +%s.%N`).
    at: f64,
}

fn epoch_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What the chaos did and saw.
#[derive(Debug, Default)]
struct ChaosLog {
    kills: Vec<Kill>,
    /// Components that exited without being killed (each was started again).
    exits: Vec<Exit>,
    /// How long each Postgres outage lasted, stop to ready.
    postgres_down: Vec<Duration>,
    /// How long the killing went on.
    duration: Duration,
}

impl ChaosLog {
    /// Note every component that exited on its own and start it again, as `restart:
    /// unless-stopped` would: the test goes on, and fails at the end.
    fn restart_exited(&mut self, topology: &mut Topology) {
        for exit in topology.exited() {
            eprintln!("[chaos] {exit}");
            topology.start_component(&exit.name);
            self.exits.push(exit);
        }
    }
}

/// A task instance, as the side effects and the API name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct TiKey {
    run_id: String,
    task_id: String,
    map_index: i64,
}

impl std::fmt::Display for TiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.map_index >= 0 {
            write!(f, "{} {}[{}]", self.run_id, self.task_id, self.map_index)
        } else {
            write!(f, "{} {}", self.run_id, self.task_id)
        }
    }
}

/// One `start` or `end` line.
#[derive(Debug, Clone)]
struct Mark {
    /// Its line number in the file: the order of the appends.
    line: usize,
    pid: u32,
    time: f64,
    ppid: u32,
}

/// The side-effect file, parsed.
#[derive(Debug, Default)]
struct SideEffects {
    starts: BTreeMap<(TiKey, u32), Vec<Mark>>,
    ends: BTreeMap<(TiKey, u32), Vec<Mark>>,
    /// `overlap` lines: a try that found its previous try's process alive as it started.
    overlaps: Vec<(TiKey, u32, u32)>,
    malformed: Vec<String>,
}

impl SideEffects {
    fn read(path: &Path) -> SideEffects {
        SideEffects::parse(&std::fs::read_to_string(path).expect("the side-effect file"))
    }

    fn parse(text: &str) -> SideEffects {
        let mut effects = SideEffects::default();
        for (line, text) in text.lines().enumerate() {
            let fields: Vec<&str> = text.split(' ').collect();
            let key = |fields: &[&str]| -> Option<(TiKey, u32)> {
                Some((
                    TiKey {
                        run_id: fields.get(1)?.to_string(),
                        task_id: fields.get(2)?.to_string(),
                        map_index: fields.get(3)?.parse().ok()?,
                    },
                    fields.get(4)?.parse().ok()?,
                ))
            };
            let mark = |fields: &[&str]| -> Option<Mark> {
                Some(Mark {
                    line,
                    pid: fields.get(5)?.parse().ok()?,
                    time: fields.get(6)?.parse().ok()?,
                    ppid: fields.get(7)?.parse().ok()?,
                })
            };
            let parsed = match fields.first() {
                Some(&"start") => key(&fields).zip(mark(&fields)).map(|(k, m)| {
                    effects.starts.entry(k).or_default().push(m);
                }),
                Some(&"end") => key(&fields).zip(mark(&fields)).map(|(k, m)| {
                    effects.ends.entry(k).or_default().push(m);
                }),
                Some(&"overlap") => key(&fields)
                    .zip(fields.get(5).and_then(|p| p.parse().ok()))
                    .map(|((k, t), pid)| effects.overlaps.push((k, t, pid))),
                _ => None,
            };
            if parsed.is_none() {
                effects.malformed.push(text.to_string());
            }
        }
        effects
    }

    fn start_lines(&self) -> usize {
        self.starts.values().map(Vec::len).sum()
    }

    fn end_lines(&self) -> usize {
        self.ends.values().map(Vec::len).sum()
    }
}

struct Inputs<'a> {
    planned: &'a [Planned],
    triggers: &'a TriggerReport,
    runs: &'a BTreeMap<String, String>,
    instances: &'a [Value],
    effects: &'a SideEffects,
    worker_pids: &'a BTreeSet<u32>,
    /// Pid → the worker's name and when it was killed.
    killed_workers: &'a BTreeMap<u32, (String, f64)>,
    exits: &'a [Exit],
    /// `/api/v2/monitor/health` once the runs settled.
    health: &'a Value,
}

/// The judgement: figures, and every problem found, each described precisely.
#[derive(Debug, Default)]
struct Verdict {
    success: usize,
    failed: usize,
    lost: usize,
    stuck: usize,
    double_starts: usize,
    overlaps: usize,
    orphans: usize,
    non_final: usize,
    without_side_effect: usize,
    /// Tries that started and never ended.
    interrupted: usize,
    /// Tries that ended (their work done) but were followed by another try.
    redone: usize,
    /// Of those, tries whose worker was not killed: cut short while their worker lived.
    cut_short: Vec<String>,
    /// The longest time from an interrupted try's start to its next try's start.
    longest_recovery: Option<(f64, String)>,
    problems: Vec<String>,
}

/// At most this many examples of one kind of problem are listed.
const EXAMPLES: usize = 15;

fn listed(items: &[String]) -> String {
    let mut text: String = items
        .iter()
        .take(EXAMPLES)
        .map(|i| format!("\n    {i}"))
        .collect();
    if items.len() > EXAMPLES {
        let _ = write!(text, "\n    … and {} more", items.len() - EXAMPLES);
    }
    text
}

fn judge(inputs: Inputs<'_>) -> Verdict {
    let mut verdict = Verdict::default();
    let effects = inputs.effects;

    let healthy = |part: &str| inputs.health[part]["status"].as_str() == Some("healthy");
    if !(healthy("metadatabase") && healthy("scheduler")) {
        verdict
            .problems
            .push(format!("not healthy after the chaos: {}", inputs.health));
    }
    for exit in inputs.exits {
        verdict
            .problems
            .push(format!("a component exited on its own: {exit}"));
    }
    if !inputs.triggers.given_up.is_empty() {
        let lines: Vec<String> = inputs
            .triggers
            .given_up
            .iter()
            .map(|(run, why)| format!("{run}: {why}"))
            .collect();
        verdict.problems.push(format!(
            "{} trigger(s) did not land:{}",
            lines.len(),
            listed(&lines)
        ));
    }

    // Runs: every planned run exists and succeeded.
    let mut by_run: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for ti in inputs.instances {
        if let Some(run_id) = ti["dag_run_id"].as_str() {
            by_run.entry(run_id).or_default().push(ti);
        }
    }
    let describe = |ti: &Value| -> String {
        let map = ti["map_index"].as_i64().unwrap_or(-1);
        let task = if map >= 0 {
            format!("{}[{map}]", ti["task_id"].as_str().unwrap_or("?"))
        } else {
            ti["task_id"].as_str().unwrap_or("?").to_string()
        };
        format!(
            "{task}={} (try {}, host {})",
            ti["state"].as_str().unwrap_or("none"),
            ti["try_number"],
            ti["hostname"].as_str().unwrap_or("-")
        )
    };
    let (mut lost, mut stuck, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for run in inputs.planned {
        let tis = by_run.get(run.run_id.as_str()).cloned().unwrap_or_default();
        let states = || {
            tis.iter()
                .map(|ti| describe(ti))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match inputs.runs.get(&run.run_id).map(String::as_str) {
            None => lost.push(format!("{} ({})", run.run_id, run.dag_id)),
            Some("success") => verdict.success += 1,
            Some("failed") => failed.push(format!("{}: {}", run.run_id, states())),
            Some(state) => stuck.push(format!("{} is {state}: {}", run.run_id, states())),
        }
    }
    verdict.failed = failed.len();
    verdict.lost = lost.len();
    verdict.stuck = stuck.len();
    if !lost.is_empty() {
        verdict.problems.push(format!(
            "{} run(s) lost (no such run after the chaos):{}",
            lost.len(),
            listed(&lost)
        ));
    }
    if !stuck.is_empty() {
        verdict.problems.push(format!(
            "{} run(s) stuck, not finished {SETTLE_TIMEOUT:?} after the chaos:{}",
            stuck.len(),
            listed(&stuck)
        ));
    }
    if !failed.is_empty() {
        verdict.problems.push(format!(
            "{} run(s) failed:{}",
            failed.len(),
            listed(&failed)
        ));
    }

    // Task instances: all final, as many as the DAG has, and each bash success backed by
    // the end of that very try in the side effects.
    const FINAL: [&str; 5] = ["success", "failed", "skipped", "upstream_failed", "removed"];
    let mut non_final = Vec::new();
    let mut without = Vec::new();
    let mut miscounted = Vec::new();
    for run in inputs.planned {
        let tis = by_run.get(run.run_id.as_str()).cloned().unwrap_or_default();
        let (bash, others) = TASKS
            .iter()
            .find(|(dag, _, _)| *dag == run.dag_id)
            .map(|(_, tasks, others)| (*tasks, *others))
            .unwrap_or_default();
        let expected = bash.len() + others;
        if inputs.runs.contains_key(&run.run_id) && tis.len() != expected {
            miscounted.push(format!(
                "{}: {} task instances, expected {expected}",
                run.run_id,
                tis.len()
            ));
        }
        for ti in &tis {
            let state = ti["state"].as_str().unwrap_or("none");
            if !FINAL.contains(&state) {
                non_final.push(format!("{} {}", run.run_id, describe(ti)));
            }
            let key = TiKey {
                run_id: run.run_id.clone(),
                task_id: ti["task_id"].as_str().unwrap_or_default().to_string(),
                map_index: ti["map_index"].as_i64().unwrap_or(-1),
            };
            let records = bash
                .iter()
                .any(|(task, map)| *task == key.task_id && *map == key.map_index);
            let try_number = ti["try_number"].as_u64().unwrap_or(0) as u32;
            if state == "success"
                && records
                && !effects.ends.contains_key(&(key.clone(), try_number))
            {
                without.push(format!(
                    "{key} succeeded in try {try_number}, which never recorded its end"
                ));
            }
            // Earlier tries that did their work, yet a later try ran: their worker died
            // between the process's end and the end's commit (at least once, as designed).
            verdict.redone += effects
                .ends
                .range((key.clone(), 0)..(key.clone(), try_number))
                .count();
        }
    }
    verdict.non_final = non_final.len();
    verdict.without_side_effect = without.len();
    if !non_final.is_empty() {
        verdict.problems.push(format!(
            "{} task instance(s) not in a final state:{}",
            non_final.len(),
            listed(&non_final)
        ));
    }
    if !without.is_empty() {
        verdict.problems.push(format!(
            "{} success(es) without their side effect:{}",
            without.len(),
            listed(&without)
        ));
    }
    if !miscounted.is_empty() {
        verdict.problems.push(format!(
            "{} run(s) with the wrong task instances:{}",
            miscounted.len(),
            listed(&miscounted)
        ));
    }

    // Side effects: no try started twice.
    let doubles: Vec<String> = effects
        .starts
        .iter()
        .filter(|(_, marks)| marks.len() > 1)
        .map(|((key, try_number), marks)| {
            let pids: Vec<String> = marks
                .iter()
                .map(|m| format!("pid {} under {} at line {}", m.pid, m.ppid, m.line + 1))
                .collect();
            format!(
                "{key} try {try_number} started {} times: {}",
                marks.len(),
                pids.join("; ")
            )
        })
        .collect();
    verdict.double_starts = doubles.len();
    if !doubles.is_empty() {
        verdict.problems.push(format!(
            "{} try(s) started more than once:{}",
            doubles.len(),
            listed(&doubles)
        ));
    }

    // No two tries of one task instance overlapped: a try found its previous one alive as it
    // started, or the previous one's end was written after this one's start.
    let mut overlaps: BTreeMap<(TiKey, u32), String> = BTreeMap::new();
    for (key, try_number, pid) in &effects.overlaps {
        overlaps.insert(
            (key.clone(), *try_number),
            format!(
                "{key} try {try_number} started while try {}'s process {pid} was alive",
                try_number - 1
            ),
        );
    }
    for ((key, try_number), marks) in &effects.starts {
        let Some(previous) = try_number
            .checked_sub(1)
            .and_then(|p| effects.ends.get(&(key.clone(), p)))
        else {
            continue;
        };
        let first_start = marks.iter().map(|m| m.line).min().unwrap_or(0);
        if let Some(late) = previous.iter().find(|end| end.line > first_start) {
            overlaps.entry((key.clone(), *try_number)).or_insert_with(|| {
                format!(
                    "{key} try {try_number} started before try {}'s end (pid {} under {}, {:.2}s later)",
                    try_number - 1,
                    late.pid,
                    late.ppid,
                    late.time - marks[0].time
                )
            });
        }
    }
    verdict.overlaps = overlaps.len();
    if !overlaps.is_empty() {
        let lines: Vec<String> = overlaps.into_values().collect();
        verdict.problems.push(format!(
            "{} try(s) overlapped the previous try:{}",
            lines.len(),
            listed(&lines)
        ));
    }

    // No try outlived its worker: it started under a worker, and ended under the same one.
    let mut orphans = Vec::new();
    for ((key, try_number), marks) in &effects.starts {
        for start in marks {
            let end = effects
                .ends
                .get(&(key.clone(), *try_number))
                .and_then(|ends| ends.iter().find(|e| e.pid == start.pid));
            if !inputs.worker_pids.contains(&start.ppid) {
                orphans.push(format!(
                    "{key} try {try_number} (pid {}) started under {}, not under a worker",
                    start.pid, start.ppid
                ));
            } else if let Some(end) = end.filter(|e| e.ppid != start.ppid) {
                orphans.push(format!(
                    "{key} try {try_number} (pid {}) went on after its worker {} died and ended under {} ({:.2}s after its start)",
                    start.pid,
                    start.ppid,
                    end.ppid,
                    end.time - start.time
                ));
            }
        }
    }
    verdict.orphans = orphans.len();
    if !orphans.is_empty() {
        verdict.problems.push(format!(
            "{} try(s) outlived their worker:{}",
            orphans.len(),
            listed(&orphans)
        ));
    }

    // Recovery: an interrupted try (a start and no end) to the start of the next try.
    for ((key, try_number), marks) in &effects.starts {
        let ended = effects.ends.get(&(key.clone(), *try_number));
        for start in marks {
            if ended.is_some_and(|ends| ends.iter().any(|e| e.pid == start.pid)) {
                continue;
            }
            verdict.interrupted += 1;
            let killed_at = inputs.killed_workers.get(&start.ppid);
            if killed_at.is_none() {
                verdict.cut_short.push(format!(
                    "{key} try {try_number} (pid {}) never ended though its worker {} was not killed",
                    start.pid, start.ppid
                ));
            }
            let next = effects
                .starts
                .get(&(key.clone(), try_number + 1))
                .and_then(|n| n.first());
            if let Some(next) = next {
                let gap = next.time - start.time;
                if verdict
                    .longest_recovery
                    .as_ref()
                    .is_none_or(|(g, _)| gap > *g)
                {
                    let since_kill = killed_at
                        .map(|(name, at)| {
                            format!(
                                ", {:.1}s after {name} (pid {}) was killed",
                                next.time - at,
                                start.ppid
                            )
                        })
                        .unwrap_or_default();
                    verdict.longest_recovery = Some((
                        gap,
                        format!(
                            "{key}: try {} started {gap:.1}s after try {try_number}{since_kill}",
                            try_number + 1
                        ),
                    ));
                }
            }
        }
    }
    if !effects.malformed.is_empty() {
        verdict.problems.push(format!(
            "{} malformed side-effect line(s):{}",
            effects.malformed.len(),
            listed(&effects.malformed)
        ));
    }
    verdict
}

struct Figures<'a> {
    verdict: &'a Verdict,
    triggers: &'a TriggerReport,
    log: &'a ChaosLog,
    effects: &'a SideEffects,
    planned: usize,
    seed: u64,
    setup: Duration,
    chaos: Duration,
    settled: Duration,
    wall: Duration,
}

/// The one block of figures the test prints.
fn figures(f: &Figures<'_>) -> String {
    let v = f.verdict;
    let mut kills: BTreeMap<&str, usize> = BTreeMap::new();
    for kind in [Kind::Scheduler, Kind::Worker, Kind::ApiServer] {
        kills.insert(kind.as_str(), 0);
    }
    for kill in &f.log.kills {
        *kills.entry(kill.kind.as_str()).or_default() += 1;
    }
    let kills_text: Vec<String> = kills.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let exits: Vec<String> = f
        .log
        .exits
        .iter()
        .map(|e| format!("{} ({})", e.name, e.status))
        .collect();
    let mut text = String::from("\n=== chaos figures ===\n");
    let mut row = |name: &str, value: String| {
        let _ = writeln!(text, "  {name:<26} {value}");
    };
    row(
        "wall time",
        format!(
            "{:.1}s (setup {:.1}s, chaos {:.1}s, settling {:.1}s)",
            f.wall.as_secs_f64(),
            f.setup.as_secs_f64(),
            f.chaos.as_secs_f64(),
            f.settled.as_secs_f64()
        ),
    );
    row(
        "runs",
        format!(
            "{} planned, {} landed, {} success, {} failed",
            f.planned,
            f.triggers.landed.len(),
            v.success,
            v.failed
        ),
    );
    row(
        "lost or stuck runs",
        format!("{} lost, {} stuck", v.lost, v.stuck),
    );
    row(
        "trigger retries",
        format!(
            "{} unanswered (API down), {} answered {:?}; {} gave up",
            f.triggers.unanswered,
            f.triggers.server_errors.values().sum::<usize>(),
            f.triggers.server_errors,
            f.triggers.given_up.len()
        ),
    );
    row(
        "task tries started",
        format!(
            "{} ({} ended, {} of them then redone; {} interrupted, {} of them while their \
             worker lived)",
            f.effects.start_lines(),
            f.effects.end_lines(),
            v.redone,
            v.interrupted,
            v.cut_short.len()
        ),
    );
    row(
        "kills",
        format!("{} ({})", f.log.kills.len(), kills_text.join(", ")),
    );
    row(
        "postgres restarts",
        format!(
            "{} (down {})",
            f.log.postgres_down.len(),
            f.log
                .postgres_down
                .iter()
                .map(|d| format!("{:.1}s", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    row(
        "unexpected exits",
        format!("{} {}", exits.len(), exits.join(", ")),
    );
    row(
        "longest recovery",
        match &v.longest_recovery {
            Some((gap, what)) => format!("{gap:.1}s ({what})"),
            None => "none (no try was interrupted)".to_string(),
        },
    );
    row("double starts", v.double_starts.to_string());
    row("overlapping tries", v.overlaps.to_string());
    row("tries outliving a worker", v.orphans.to_string());
    row("non-final task instances", v.non_final.to_string());
    row("success w/o side effect", v.without_side_effect.to_string());
    row("seed", format!("CHAOS_SEED={}", f.seed));
    if !v.cut_short.is_empty() {
        let _ = writeln!(
            text,
            "  tries cut short while their worker lived (not a failure by itself):{}",
            listed(&v.cut_short)
        );
    }
    text
}

/// The judge on a made-up side-effect file: a clean retry after a killed worker is fine; a
/// try started twice, a try that overlapped the previous one, and one that outlived its
/// worker are each found.
#[test]
fn the_judge_finds_double_starts_overlaps_and_tries_outliving_their_worker() {
    let text = "\
start r1 extract -1 1 100 10.0 7
start r1 extract -1 2 101 15.0 8
end r1 extract -1 2 101 15.2 8
start r2 extract -1 1 200 10.0 8
start r2 extract -1 1 201 10.1 8
end r2 extract -1 1 200 10.2 8
end r2 extract -1 1 201 10.3 8
start r3 extract -1 1 300 10.0 8
start r3 extract -1 2 301 11.0 8
end r3 extract -1 1 300 11.1 1
overlap r3 extract -1 2 300 11.0
end r3 extract -1 2 301 11.2 8
";
    let effects = SideEffects::parse(text);
    let planned: Vec<Planned> = ["r1", "r2", "r3"]
        .into_iter()
        .map(|run_id| Planned {
            dag_id: "chaos_chain",
            run_id: run_id.to_string(),
        })
        .collect();
    let verdict = judge(Inputs {
        planned: &planned,
        triggers: &TriggerReport::default(),
        runs: &BTreeMap::new(),
        instances: &[],
        effects: &effects,
        worker_pids: &BTreeSet::from([7, 8]),
        killed_workers: &BTreeMap::from([(7, ("worker-1".to_string(), 12.0))]),
        exits: &[],
        health: &json!({"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"}}),
    });
    assert_eq!(
        (
            verdict.double_starts,
            verdict.overlaps,
            verdict.orphans,
            verdict.interrupted,
            verdict.lost
        ),
        (1, 1, 1, 1, 3),
        "{:#?}",
        verdict.problems
    );
    assert!(effects.malformed.is_empty(), "{:?}", effects.malformed);
    let (gap, what) = verdict.longest_recovery.expect("r1's recovery");
    assert!((gap - 5.0).abs() < 1e-9, "{gap}: {what}");
    assert!(what.contains("after worker-1 (pid 7) was killed"), "{what}");
}
