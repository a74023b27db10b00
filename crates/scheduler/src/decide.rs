//! The scheduler's decision for one run: which task instances become ready, skipped or
//! upstream_failed, and whether the run starts or ends. A pure function of the run's snapshot,
//! run by the store inside the transaction that applies it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use dag::{DagGraph, Readiness, RunState, Task, TaskKind, TaskState, UpstreamCounts};
use store::{DecidedLog, DecidedXcom, LogLine, LogStream, RunDecision, RunSnapshot, Transition};

use store::secrets::TemplateSecrets;

use crate::branch;

/// Whether a task chooses among its downstream (`switch`, or `branch: true`).
pub fn is_branch(task: &Task) -> bool {
    task.branch || matches!(task.kind, TaskKind::Switch { .. })
}

/// Whether the scheduler's sensor loop pokes this task (a reschedule-mode sensor of any
/// kind but `command`): when ready it waits in `up_for_reschedule` instead of being queued.
pub fn scheduler_pokes(task: &Task) -> bool {
    matches!(&task.kind, TaskKind::Sensor(sensor) if sensor.poked_by_scheduler())
}

/// Whether deciding the DAG's runs needs the run's XComs: to read a branch's choice or to
/// render a mapped task's `expand`.
pub fn needs_xcoms(task: &Task) -> bool {
    is_branch(task) || task.expand.is_some()
}

/// Whether the scheduler's own templates of the task (`switch` conditions, `expand`) read
/// variables or connections, which then have to be opened for the decision.
pub fn needs_secrets(task: &Task) -> bool {
    let text = match (&task.kind, &task.expand) {
        (TaskKind::Switch { cases }, _) => cases
            .iter()
            .filter_map(|c| c.condition.as_deref())
            .collect::<Vec<_>>()
            .join(" "),
        (_, Some(expand)) => serde_json::Value::Object(expand.clone()).to_string(),
        _ => return false,
    };
    dag::template::reads(&text).secrets()
}

/// What a decision depends on besides the run's snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub now: DateTime<Utc>,
    /// `core.max_map_length`: a mapped task with more instances fails.
    pub max_map_length: usize,
    /// Variables and connections for `switch` conditions and `expand` templates.
    pub secrets: &'a TemplateSecrets,
    /// Task states of the DAG's previous run (by logical date), for `depends_on_past`;
    /// `None` when there is none (the first run ignores `depends_on_past`, as in Airflow).
    pub previous: Option<&'a HashMap<String, Vec<TaskState>>>,
}

/// No variables or connections.
static NO_SECRETS: std::sync::LazyLock<TemplateSecrets> =
    std::sync::LazyLock::new(TemplateSecrets::default);

impl Inputs<'static> {
    /// Inputs with the default map limit and no variables or connections.
    pub fn at(now: DateTime<Utc>) -> Inputs<'static> {
        Inputs {
            now,
            max_map_length: dag::mapping::DEFAULT_MAX_MAP_LENGTH,
            secrets: &NO_SECRETS,
            previous: None,
        }
    }
}

/// Decide for `snapshot`, a run of the DAG in `graph` (the version the run started with).
/// The snapshot must carry the run's XComs when some task [`needs_xcoms`].
pub fn decide(graph: &DagGraph, snapshot: &RunSnapshot, inputs: &Inputs<'_>) -> RunDecision {
    let Inputs {
        now,
        max_map_length,
        secrets,
        previous,
    } = *inputs;
    // depends_on_past: the task's instances in the previous run must have succeeded or been
    // skipped; with wait_for_downstream, their direct downstream too.
    let past_allows = |task: &Task| {
        let Some(previous) = previous.filter(|_| task.depends_on_past) else {
            return true;
        };
        let settled = |id: &str| {
            previous.get(id).is_none_or(|states| {
                states
                    .iter()
                    .all(|s| matches!(s, TaskState::Success | TaskState::Skipped))
            })
        };
        settled(&task.task_id)
            && (!task.wait_for_downstream
                || graph.downstream(&task.task_id).into_iter().all(settled))
    };
    let context_for = |task_id: &str| {
        let mut context =
            snapshot
                .run
                .template_context(graph.dag(), task_id, -1, 1, &snapshot.xcoms);
        context.variables = secrets.variables.clone();
        context.connections = secrets.connections.clone();
        context
    };
    let xcoms = snapshot.xcoms.as_slice();
    let dag = graph.dag();
    let run = &snapshot.run;
    let mut decision = RunDecision::default();

    match run.state {
        RunState::Success | RunState::Failed => return decision,
        RunState::Queued => {
            if snapshot.running_runs_of_dag >= dag.max_active_runs as usize {
                return decision;
            }
            decision.run_state = Some(RunState::Running);
        }
        RunState::Running => {}
    }

    let tis = &snapshot.task_instances;
    let mut states: Vec<TaskState> = tis.iter().map(|ti| ti.state).collect();
    let mut instances: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, ti) in tis.iter().enumerate() {
        instances.entry(ti.task_id.as_str()).or_default().push(i);
    }

    let timed_out = match (dag.dagrun_timeout, run.start_date) {
        (Some(limit), Some(started)) => (now - started).as_seconds_f64() > limit,
        _ => false,
    };
    if timed_out {
        // Airflow fails the run and leaves unfinished tasks skipped; a running try's late
        // finish is then refused by the store's guard.
        for (i, ti) in tis.iter().enumerate() {
            if !ti.state.is_finished() && ti.state != TaskState::Running {
                states[i] = TaskState::Skipped;
            }
        }
        push_transitions(&mut decision, snapshot, &states);
        decision.run_state = Some(RunState::Failed);
        return decision;
    }

    let mut active = states
        .iter()
        .filter(|s| matches!(s, TaskState::Queued | TaskState::Running))
        .count();
    let max_active = dag.max_active_tasks as usize;
    let system_line = |message: String| LogLine {
        timestamp: now,
        stream: LogStream::System,
        line: message,
    };

    // What each finished branch followed, from its return value. A `branch: true` task that
    // named something it may not is failed here, with the reason in its log.
    let mut followed: HashMap<String, HashSet<String>> = HashMap::new();
    for task in dag.tasks.iter().filter(|t| is_branch(t)) {
        let Some(indexes) = instances.get(task.task_id.as_str()) else {
            continue;
        };
        if !indexes.iter().all(|&i| states[i] == TaskState::Success) {
            continue;
        }
        let value = xcoms
            .iter()
            .find(|x| x.task_id == task.task_id && x.key == "return_value")
            .map_or(serde_json::Value::Null, |x| x.value.clone());
        match branch::chosen_ids(&value)
            .and_then(|ids| branch::followed(graph, &task.task_id, &ids))
        {
            Ok(set) => {
                followed.insert(task.task_id.clone(), set);
            }
            Err(message) => {
                for &i in indexes {
                    states[i] = TaskState::Failed;
                    decision.logs.push(DecidedLog {
                        ti: tis[i].id,
                        try_number: tis[i].try_number.max(1),
                        line: system_line(format!("task failed: {message}")),
                    });
                }
            }
        }
    }

    // Walk tasks upstream-first so that one pass settles chains of empty tasks and skips;
    // repeat until nothing changes to be safe against any order the graph gives.
    let order = graph.topological_order();
    loop {
        let mut changed = false;
        for task_id in &order {
            let Some(indexes) = instances.get(task_id) else {
                continue;
            };
            let Some(task) = graph.task(task_id) else {
                continue;
            };
            let mut counts = UpstreamCounts::default();
            for up in &task.upstream {
                for &j in instances.get(up.as_str()).map(Vec::as_slice).unwrap_or(&[]) {
                    counts.add(states[j]);
                }
            }
            let readiness = task.trigger_rule.evaluate(&counts);
            // A direct downstream of a branch that did not follow it is skipped, whatever
            // its trigger rule says; the skip then flows on through the rules.
            let not_followed = task
                .upstream
                .iter()
                .any(|up| followed.get(up).is_some_and(|set| !set.contains(*task_id)));
            for &i in indexes {
                if !matches!(states[i], TaskState::None | TaskState::Scheduled) {
                    continue;
                }
                let next = match readiness {
                    _ if not_followed => TaskState::Skipped,
                    Readiness::Wait => continue,
                    Readiness::Run if !past_allows(task) => continue,
                    Readiness::Become(state) => state,
                    Readiness::Run if matches!(task.kind, TaskKind::Switch { .. }) => {
                        let TaskKind::Switch { cases } = &task.kind else {
                            continue;
                        };
                        let context = context_for(task_id);
                        let choice = branch::evaluate_switch(cases, &context).and_then(|case| {
                            let ids = case.map(|c| c.then.clone()).unwrap_or_default();
                            // One id written as a string stays a string; a list stays a list.
                            let value = match case {
                                Some(c) if c.single && ids.len() == 1 => serde_json::json!(ids[0]),
                                _ => serde_json::json!(ids),
                            };
                            branch::followed(graph, task_id, &ids).map(|set| (value, set))
                        });
                        match choice {
                            Ok((value, set)) => {
                                followed.insert(task_id.to_string(), set);
                                decision.xcoms.push(DecidedXcom {
                                    task_id: task_id.to_string(),
                                    map_index: tis[i].map_index,
                                    key: "return_value".into(),
                                    value,
                                });
                                TaskState::Success
                            }
                            Err(message) => {
                                decision.logs.push(DecidedLog {
                                    ti: tis[i].id,
                                    try_number: 1,
                                    line: system_line(format!("task failed: {message}")),
                                });
                                TaskState::Failed
                            }
                        }
                    }
                    Readiness::Run if task.expand.is_some() && tis[i].map_index < 0 => {
                        let context = context_for(task_id);
                        let fail = |message: String, decision: &mut RunDecision| {
                            decision.logs.push(DecidedLog {
                                ti: tis[i].id,
                                try_number: 1,
                                line: system_line(format!("task failed: {message}")),
                            });
                            TaskState::Failed
                        };
                        match dag::mapping::Expansion::of(task, &context) {
                            Some(Ok(expansion)) if expansion.is_empty() => TaskState::Skipped,
                            Some(Ok(expansion)) if expansion.len() > max_map_length => fail(
                                format!(
                                    "expand of task '{task_id}' yields {} instances, over core.max_map_length ({max_map_length})",
                                    expansion.len()
                                ),
                                &mut decision,
                            ),
                            Some(Ok(expansion)) => {
                                // Expanded by the store; the new instances are decided next.
                                decision.expansions.push(store::Expansion {
                                    ti: tis[i].id,
                                    count: u32::try_from(expansion.len()).unwrap_or(u32::MAX),
                                });
                                continue;
                            }
                            Some(Err(message)) => fail(message, &mut decision),
                            None => continue,
                        }
                    }
                    // Poked by the sensor loop, first at once; it takes no worker slot and
                    // does not count against max_active_tasks while it waits.
                    Readiness::Run if scheduler_pokes(task) => TaskState::UpForReschedule,
                    Readiness::Run if !task.kind.needs_worker() => TaskState::Success,
                    Readiness::Run if active < max_active => {
                        active += 1;
                        TaskState::Queued
                    }
                    Readiness::Run => continue,
                };
                states[i] = next;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    push_transitions(&mut decision, snapshot, &states);

    if states.iter().all(|s| s.is_finished()) {
        let leaves = graph.leaves();
        let failed = tis.iter().zip(&states).any(|(ti, state)| {
            leaves.contains(&ti.task_id.as_str())
                && matches!(state, TaskState::Failed | TaskState::UpstreamFailed)
        });
        decision.run_state = Some(if failed {
            RunState::Failed
        } else {
            RunState::Success
        });
    }
    decision
}

fn push_transitions(decision: &mut RunDecision, snapshot: &RunSnapshot, states: &[TaskState]) {
    for (ti, &to) in snapshot.task_instances.iter().zip(states) {
        if ti.state != to {
            decision.transitions.push(Transition {
                ti: ti.id,
                from: ti.state,
                to,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dag::{RunType, parse_dag_str};
    use store::{RunRecord, TaskInstanceRecord};

    use super::*;

    fn snapshot(
        graph: &DagGraph,
        run_state: RunState,
        states: &[(&str, TaskState)],
    ) -> RunSnapshot {
        let now = Utc::now();
        let run = RunRecord {
            id: 1,
            dag_id: graph.dag().dag_id.clone(),
            run_id: "manual__x".into(),
            run_type: RunType::Manual,
            state: run_state,
            logical_date: Some(now),
            data_interval_start: Some(now),
            data_interval_end: Some(now),
            conf: serde_json::json!({}),
            version: "v".into(),
            queued_at: now,
            start_date: Some(now),
            end_date: None,
            triggering_user_name: None,
        };
        let task_instances = graph
            .dag()
            .tasks
            .iter()
            .enumerate()
            .map(|(i, task)| TaskInstanceRecord {
                id: i as i64 + 1,
                run: 1,
                dag_id: run.dag_id.clone(),
                run_id: run.run_id.clone(),
                task_id: task.task_id.clone(),
                map_index: -1,
                try_number: 0,
                max_tries: 0,
                state: states
                    .iter()
                    .find(|(id, _)| *id == task.task_id)
                    .map_or(TaskState::None, |(_, s)| *s),
                queue: "default".into(),
                pool: "default_pool".into(),
                pool_slots: 1,
                priority_weight: 1,
                operator: "BashOperator".into(),
                queued_at: None,
                start_date: None,
                end_date: None,
                next_retry_at: None,
                hostname: None,
                pid: None,
                worker_id: None,
                heartbeat_at: None,
            })
            .collect();
        RunSnapshot {
            run,
            task_instances,
            running_runs_of_dag: 1,
            xcoms: Vec::new(),
        }
    }

    fn graph(yaml: &str) -> DagGraph {
        DagGraph::new(Arc::new(parse_dag_str("t.yaml", yaml).expect("valid dag")))
    }

    /// Decide and return the resulting state of every task that changed, plus the run state.
    fn check(
        yaml: &str,
        states: &[(&str, TaskState)],
        expected: &[(&str, TaskState)],
        run: Option<RunState>,
    ) {
        let g = graph(yaml);
        let snap = snapshot(&g, RunState::Running, states);
        let decision = decide(&g, &snap, &Inputs::at(Utc::now()));
        let mut got: Vec<(String, TaskState)> = decision
            .transitions
            .iter()
            .map(|t| {
                let ti = &snap.task_instances[(t.ti - 1) as usize];
                (ti.task_id.clone(), t.to)
            })
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let mut want: Vec<(String, TaskState)> = expected
            .iter()
            .map(|(id, s)| (id.to_string(), *s))
            .collect();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, want);
        assert_eq!(decision.run_state, run);
    }

    use TaskState::{Failed, Queued, Running, Skipped, Success, UpstreamFailed};

    const CHAIN: &str = "tasks:\n  - {id: a, bash: 'true'}\n  - {id: b, bash: 'true', depends_on: [a]}\n  - {id: c, bash: 'true', depends_on: [b]}\n";

    #[test]
    fn roots_are_queued_at_start() {
        check(CHAIN, &[], &[("a", Queued)], None);
    }

    #[test]
    fn downstream_of_a_success_is_queued() {
        check(CHAIN, &[("a", Success)], &[("b", Queued)], None);
    }

    #[test]
    fn failure_propagates_and_ends_the_run() {
        check(
            CHAIN,
            &[("a", Failed)],
            &[("b", UpstreamFailed), ("c", UpstreamFailed)],
            Some(RunState::Failed),
        );
    }

    #[test]
    fn empty_tasks_finish_in_place_and_release_downstream() {
        let yaml = "tasks:\n  - {id: a, empty: {}}\n  - {id: b, empty: {}, depends_on: [a]}\n  - {id: c, bash: 'true', depends_on: [b]}\n";
        check(
            yaml,
            &[],
            &[("a", Success), ("b", Success), ("c", Queued)],
            None,
        );
    }

    #[test]
    fn skip_flows_three_levels_deep() {
        let yaml = "tasks:\n  - {id: a, bash: 'true'}\n  - {id: b, bash: 'true', depends_on: [a]}\n  - {id: c, bash: 'true', depends_on: [b]}\n  - {id: d, bash: 'true', depends_on: [c]}\n";
        check(
            yaml,
            &[("a", Skipped)],
            &[("b", Skipped), ("c", Skipped), ("d", Skipped)],
            Some(RunState::Success),
        );
    }

    #[test]
    fn run_succeeds_when_leaves_succeed_even_after_a_handled_failure() {
        let yaml = "tasks:\n  - {id: a, bash: 'false'}\n  - {id: cleanup, bash: 'true', depends_on: [a], trigger_rule: all_done}\n";
        check(
            yaml,
            &[("a", Failed), ("cleanup", Success)],
            &[],
            Some(RunState::Success),
        );
    }

    #[test]
    fn max_active_tasks_limits_queueing() {
        let mut yaml = String::from("max_active_tasks: 2\ntasks:\n");
        for i in 0..5 {
            yaml.push_str(&format!("  - {{id: t{i}, bash: 'true'}}\n"));
        }
        let g = graph(&yaml);
        let snap = snapshot(&g, RunState::Running, &[("t0", Running)]);
        let decision = decide(&g, &snap, &Inputs::at(Utc::now()));
        assert_eq!(decision.transitions.len(), 1);
    }

    #[test]
    fn queued_run_waits_for_max_active_runs() {
        let g = graph("max_active_runs: 1\ntasks:\n  - {id: a, bash: 'true'}\n");
        let mut snap = snapshot(&g, RunState::Queued, &[]);
        snap.running_runs_of_dag = 1;
        assert_eq!(
            decide(&g, &snap, &Inputs::at(Utc::now())),
            RunDecision::default()
        );
        snap.running_runs_of_dag = 0;
        let decision = decide(&g, &snap, &Inputs::at(Utc::now()));
        assert_eq!(decision.run_state, Some(RunState::Running));
        assert_eq!(decision.transitions.len(), 1);
    }

    #[test]
    fn depends_on_past_waits_for_the_previous_run() {
        let g = graph(
            "tasks:\n  - {id: a, bash: 'true', depends_on_past: true}\n  - {id: b, bash: 'true', depends_on_past: true, wait_for_downstream: true}\n  - {id: c, bash: 'true', depends_on: [b]}\n",
        );
        let snap = snapshot(&g, RunState::Running, &[]);
        let queued = |previous: &[(&str, TaskState)]| {
            let previous: HashMap<String, Vec<TaskState>> = previous
                .iter()
                .map(|(id, s)| (id.to_string(), vec![*s]))
                .collect();
            let mut inputs = Inputs::at(Utc::now());
            inputs.previous = Some(&previous);
            let decision = decide(&g, &snap, &inputs);
            let mut ids: Vec<String> = decision
                .transitions
                .iter()
                .map(|t| snap.task_instances[(t.ti - 1) as usize].task_id.clone())
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(
            queued(&[("a", Success), ("b", Success), ("c", Success)]),
            ["a", "b"]
        );
        assert_eq!(
            queued(&[("a", Failed), ("b", Skipped), ("c", Success)]),
            ["b"]
        );
        // b's own past succeeded, but its downstream in the previous run did not.
        assert_eq!(
            queued(&[("a", Success), ("b", Success), ("c", Failed)]),
            ["a"]
        );
        // The first run has no previous run: nothing to wait for.
        assert_eq!(
            decide(&g, &snap, &Inputs::at(Utc::now())).transitions.len(),
            2
        );
    }

    #[test]
    fn reschedule_sensors_wait_for_the_sensor_loop_and_others_queue() {
        let yaml = "tasks:\n  - {id: f, sensor: {file: /x}}\n  - {id: c, sensor: {command: 'true'}}\n  - {id: p, sensor: {file: /x}, mode: poke}\n  - {id: after, bash: 'true', depends_on: [f]}\n";
        check(
            yaml,
            &[],
            &[
                ("c", Queued),
                ("f", TaskState::UpForReschedule),
                ("p", Queued),
            ],
            None,
        );
        // A waiting sensor holds its downstream back, and a finished one releases it.
        check(
            yaml,
            &[
                ("f", TaskState::UpForReschedule),
                ("c", Running),
                ("p", Running),
            ],
            &[],
            None,
        );
        check(
            yaml,
            &[("f", Success), ("c", Running), ("p", Running)],
            &[("after", Queued)],
            None,
        );
    }

    #[test]
    fn dagrun_timeout_fails_the_run() {
        let g = graph(
            "dagrun_timeout: 1m\ntasks:\n  - {id: a, bash: 'true'}\n  - {id: b, bash: 'true', depends_on: [a]}\n",
        );
        let mut snap = snapshot(&g, RunState::Running, &[("a", Running)]);
        snap.run.start_date = Some(Utc::now() - chrono::Duration::minutes(2));
        let decision = decide(&g, &snap, &Inputs::at(Utc::now()));
        assert_eq!(decision.run_state, Some(RunState::Failed));
        assert_eq!(decision.transitions.len(), 1, "only b is skipped");
    }

    /// A branch (done, its choice pushed) naming `deep`, which is below its direct
    /// downstream `a`; `join` is a direct downstream too, below `deep`.
    fn branch_to_a_task_further_down(airflow: bool) -> RunDecision {
        let yaml = "tasks:\n  - {id: pick, bash: 'echo deep', branch: true}\n  - {id: a, bash: 'true', depends_on: [pick]}\n  - {id: deep, bash: 'true', depends_on: [a]}\n  - {id: join, bash: 'true', depends_on: [deep, pick], trigger_rule: none_failed_min_one_success}\n";
        let mut dag = parse_dag_str("t.yaml", yaml).expect("valid dag");
        if airflow {
            dag.python_source = Some("# an Airflow file".into());
        }
        let g = DagGraph::new(Arc::new(dag));
        let mut snap = snapshot(&g, RunState::Running, &[("pick", Success)]);
        snap.xcoms.push(store::XcomRecord {
            task_id: "pick".into(),
            map_index: -1,
            key: "return_value".into(),
            value: serde_json::json!("deep"),
            timestamp: Utc::now(),
        });
        decide(&g, &snap, &Inputs::at(Utc::now()))
    }

    fn changes(decision: &RunDecision) -> Vec<(i64, TaskState)> {
        decision.transitions.iter().map(|t| (t.ti, t.to)).collect()
    }

    #[test]
    fn a_yaml_branch_naming_a_task_further_down_fails() {
        let decision = branch_to_a_task_further_down(false);
        // pick (1) fails; a (2), deep (3) and join (4) cannot run any more.
        assert_eq!(
            changes(&decision),
            [
                (1, Failed),
                (2, UpstreamFailed),
                (3, UpstreamFailed),
                (4, UpstreamFailed)
            ]
        );
        assert!(
            decision
                .logs
                .iter()
                .any(|l| l.line.line.contains("direct downstream")),
            "{:?}",
            decision.logs
        );
    }

    #[test]
    fn an_airflow_branch_naming_a_task_further_down_skips_the_rest() {
        let decision = branch_to_a_task_further_down(true);
        // a (2) is skipped, deep (3) follows it through all_success, and join (4), followed
        // because it is below deep, runs on pick's success.
        assert_eq!(
            changes(&decision),
            [(2, Skipped), (3, Skipped), (4, Queued)]
        );
        assert!(decision.logs.is_empty(), "{:?}", decision.logs);
    }
}
