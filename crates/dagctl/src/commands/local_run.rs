//! The commands that need no server: `dags validate`, `dags test` and `tasks test` work on
//! the DAG files and a throw-away database, exactly as the scheduler and a worker would.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use chrono::Utc;
use dag::{Dag, RunState, TaskState};
use scheduler::dag_folder::{PythonLoader, load_dag_file};
use scheduler::{DagFolder, TriggerRequest};
use serde_json::{Value, json};
use store::{RunDecision, SnapshotXcoms, Store, StoreEvent, Transition};
use tokio::sync::watch;
use worker::Worker;

use super::defaults;
use super::engine::{self, Engine, stopped};
use super::{parse_conf, parse_date};
use crate::backend;
use crate::output::{Format, print_rows};
use crate::settings::Settings;

/// Parse every file under the given paths (default: the DAGs folder).
pub async fn validate(settings: &Settings, paths: Vec<PathBuf>) -> Result<ExitCode> {
    let paths = if paths.is_empty() {
        vec![settings.dags_folder.clone()]
    } else {
        paths
    };
    let loader = Loader::new(settings).await?;
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files.extend(
                DagFolder::new(&path)
                    .list_files()
                    .into_iter()
                    .map(|f| (f, path.clone())),
            );
        } else {
            let folder = path.parent().map(PathBuf::from).unwrap_or_default();
            files.push((path, folder));
        }
    }
    let mut failed = 0usize;
    let mut owners: HashMap<String, PathBuf> = HashMap::new();
    for (file, folder) in &files {
        match loader.load(file, folder).await {
            Ok((dags, _)) => {
                for dag in dags {
                    if let Some(other) = owners.get(&dag.dag_id) {
                        println!(
                            "{}:1:1: dag_id '{}' is already defined in {}",
                            file.display(),
                            dag.dag_id,
                            other.display()
                        );
                        failed += 1;
                    } else {
                        owners.insert(dag.dag_id.clone(), file.clone());
                    }
                }
            }
            Err(message) => {
                println!("{message}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} file(s) invalid", files.len());
        Ok(ExitCode::FAILURE)
    } else {
        eprintln!("{} file(s) valid", files.len());
        Ok(ExitCode::SUCCESS)
    }
}

/// Loads DAG files as the scheduler does, Python ones with the configured database's
/// variables (when there is one) for `Variable.get` at import time.
struct Loader {
    python: PythonLoader,
    variables: BTreeMap<String, String>,
}

impl Loader {
    async fn new(settings: &Settings) -> Result<Loader> {
        let python = PythonLoader::new(settings.python.clone(), settings.vault()?);
        let variables = match backend::open_existing(&settings.database_url).await? {
            Some(store) => python.variables(store.as_ref()).await?,
            None => BTreeMap::new(),
        };
        Ok(Loader { python, variables })
    }

    async fn load(
        &self,
        file: &std::path::Path,
        dags_folder: &std::path::Path,
    ) -> Result<(Vec<Dag>, String), String> {
        load_dag_file(file, dags_folder, &self.python, &self.variables).await
    }
}

/// The DAG `dag_id` of one file (`dags test -f`), loaded as the scheduler would from the
/// folder the file is in.
async fn dag_of_file(settings: &Settings, file: &Path, dag_id: &str) -> Result<(Dag, String)> {
    if !file.is_file() {
        bail!("--dagfile-path {}: no such file", file.display());
    }
    let folder = file.parent().map(PathBuf::from).unwrap_or_default();
    let (dags, hash) = Loader::new(settings)
        .await?
        .load(file, &folder)
        .await
        .map_err(|message| anyhow!("DAG file {} has import errors:\n{message}", file.display()))?;
    let defined: Vec<String> = dags.iter().map(|d| d.dag_id.clone()).collect();
    match dags.into_iter().find(|d| d.dag_id == dag_id) {
        Some(dag) => Ok((dag, hash)),
        None => bail!(
            "DAG '{dag_id}' not found in {} (it defines: {})",
            file.display(),
            if defined.is_empty() {
                "no DAG".to_string()
            } else {
                defined.join(", ")
            }
        ),
    }
}

/// Find the file in the DAGs folder that defines `dag_id`.
pub async fn find_dag(settings: &Settings, dag_id: &str) -> Result<(Dag, String)> {
    let loader = Loader::new(settings).await?;
    let files = DagFolder::new(&settings.dags_folder).list_files();
    let mut broken = Vec::new();
    for file in files {
        match loader.load(&file, &settings.dags_folder).await {
            Ok((dags, hash)) => {
                if let Some(dag) = dags.into_iter().find(|d| d.dag_id == dag_id) {
                    return Ok((dag, hash));
                }
            }
            Err(message) => {
                // A broken Python file may be the one that defines it: any may hold any id.
                let python = file.extension().is_some_and(|e| e == "py");
                if python || file.file_stem().is_some_and(|s| s == dag_id) {
                    broken.push(message);
                }
            }
        }
    }
    if !broken.is_empty() {
        bail!("DAG '{dag_id}' has import errors:\n{}", broken.join("\n"));
    }
    bail!(
        "DAG '{dag_id}' not found in {}",
        settings.dags_folder.display()
    )
}

/// A throw-away database holding just this DAG, unpaused whatever its file says (`dags test`
/// ignores the pause, as Airflow's does), with the configured database's
/// variables, connections (still sealed) and pools, as a run there would see them.
pub async fn scratch_store(settings: &Settings, dag: &Dag, hash: &str) -> Result<Arc<dyn Store>> {
    let store = backend::temporary().await?;
    store.sync_dag(dag, hash, Utc::now()).await?;
    store.unpause_dag(&dag.dag_id).await?;
    // The DAGs its `trigger_dag` tasks name (when the name is no template) come along, so
    // they can run.
    let mut synced = vec![dag.dag_id.clone()];
    let mut pending = triggered_dag_ids(dag);
    while let Some(dag_id) = pending.pop() {
        if synced.contains(&dag_id) {
            continue;
        }
        synced.push(dag_id.clone());
        // A target that is missing or broken fails its trigger_dag task, with the reason.
        if let Ok((target, target_hash)) = Box::pin(find_dag(settings, &dag_id)).await {
            store.sync_dag(&target, &target_hash, Utc::now()).await?;
            store.unpause_dag(&target.dag_id).await?;
            pending.extend(triggered_dag_ids(&target));
        }
    }
    if let Some(source) = backend::open_existing(&settings.database_url).await? {
        for variable in source.list_variables().await? {
            store.set_variable(&variable).await?;
        }
        for connection in source.list_connections().await? {
            store.set_connection(&connection).await?;
        }
        for pool in source.list_pools().await? {
            store.set_pool(&pool.pool).await?;
        }
    }
    Ok(store)
}

/// The literal `dag_id`s of a DAG's `trigger_dag` tasks.
fn triggered_dag_ids(dag: &Dag) -> Vec<String> {
    dag.tasks
        .iter()
        .filter_map(|task| match &task.kind {
            dag::TaskKind::TriggerDag { spec } => spec.dag_id.as_ref()?.as_str(),
            _ => None,
        })
        .filter(|id| !id.contains("{{"))
        .map(str::to_string)
        .collect()
}

/// What `dags test` runs, from its flags.
pub struct DagTest<'a> {
    pub dag_id: &'a str,
    /// Logical date as given (RFC 3339 or YYYY-MM-DD); `None`: now.
    pub logical_date: Option<&'a str>,
    /// The run's conf, a JSON object as given.
    pub conf: Option<&'a str>,
    /// Tasks whose id matches are marked successful instead of run.
    pub mark_success_pattern: Option<&'a str>,
    /// The file to read the DAG from instead of the DAGs folder.
    pub dagfile_path: Option<&'a Path>,
    pub format: Format,
}

/// `dags test`: one whole run in-process on a throw-away database.
pub async fn dags_test(settings: &Settings, test: DagTest<'_>) -> Result<ExitCode> {
    let DagTest {
        dag_id,
        logical_date,
        conf,
        mark_success_pattern,
        dagfile_path,
        format,
    } = test;
    // Every flag is checked before anything is loaded or run.
    let logical_date = logical_date.map(parse_date).transpose()?;
    let conf = parse_conf(conf)?;
    let pattern = mark_success_pattern
        .map(|p| {
            regex::Regex::new(p).map_err(|e| {
                // The regex crate's message draws the pattern over several lines; its last
                // line says what is wrong.
                let text = e.to_string();
                let why = text.lines().last().unwrap_or_default();
                anyhow!(
                    "--mark-success-pattern '{p}' is not a regular expression: {}",
                    why.trim_start_matches("error: ")
                )
            })
        })
        .transpose()?;
    let (mut dag, hash) = match dagfile_path {
        Some(file) => dag_of_file(settings, file, dag_id).await?,
        None => find_dag(settings, dag_id).await?,
    };
    if let Some(pattern) = &pattern {
        let marked = mark_success(&mut dag, pattern);
        if marked.is_empty() {
            eprintln!(
                "note: --mark-success-pattern '{pattern}' matches no task of '{dag_id}': every \
                 task runs"
            );
        } else {
            eprintln!(
                "note: marked successful without running (--mark-success-pattern): {}",
                marked.join(", ")
            );
        }
    }
    let store = scratch_store(settings, &dag, &hash).await?;
    for hint in defaults::missing_hints(&dag, &*store, &settings.env_connections).await? {
        eprintln!("{hint}");
    }
    let request = TriggerRequest {
        logical_date,
        conf,
        run_id: None,
    };
    let run = scheduler::trigger(&*store, dag_id, request, Utc::now())
        .await
        .context("cannot start the run")?;
    let engine = Engine::start(
        store.clone(),
        engine::scheduler_config(settings, None)?
            .without_watch()
            .without_cron()
            .with_poll_interval(Duration::from_millis(500)),
        Some(engine::worker_config(settings)?),
    );
    let (stop_follower, follower_stopped) = tokio::sync::watch::channel(false);
    let follower = tokio::spawn(stream_logs(store.clone(), run.id, follower_stopped));
    let finished = engine::wait_for_run(&*store, run.id).await;
    let _ = stop_follower.send(true);
    let seen = follower.await;
    engine.stop().await?;
    // What the worker writes after the run ended (the reports of notifications sent once a
    // try's end is committed) is in the log only once the engine has stopped.
    if let Ok(mut seen) = seen {
        print_new_logs(&*store, run.id, &mut seen).await?;
    }
    let finished = finished?;
    let tis = store.task_instances(run.id).await?;
    let mut tasks = BTreeMap::new();
    for ti in &tis {
        let key = if ti.map_index >= 0 {
            format!("{}[{}]", ti.task_id, ti.map_index)
        } else {
            ti.task_id.clone()
        };
        tasks.insert(key, ti.state.as_str());
    }
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string(&json!({"state": finished.state.as_str(), "tasks": tasks}))?
        ),
        Format::Yaml => print!(
            "{}",
            serde_saphyr::to_string(&json!({"state": finished.state.as_str(), "tasks": tasks}))?
        ),
        Format::Table => {
            let rows: Vec<Value> = tasks
                .iter()
                .map(|(task, state)| json!({"task_id": task, "state": state}))
                .collect();
            print_rows(Format::Table, &["task_id", "state"], &rows)?;
            println!("run {} {}", finished.run_id, finished.state);
        }
    }
    Ok(if finished.state == RunState::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Print task log lines to stderr as they arrive, until `stop` says so (then once more);
/// returns how far it printed each try's log.
async fn stream_logs(
    store: Arc<dyn Store>,
    run: i64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> HashMap<(i64, u32), i64> {
    let mut events = store.subscribe();
    let mut seen = HashMap::new();
    loop {
        if print_new_logs(&*store, run, &mut seen).await.is_err() || *stop.borrow() {
            return seen;
        }
        tokio::select! {
            _ = stop.changed() => {}
            event = events.recv() => {
                if matches!(event, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return seen;
                }
                if matches!(event, Ok(StoreEvent::TasksQueued)) {
                    continue;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// Print the lines of every task instance of the run not printed yet.
pub async fn print_new_logs(
    store: &dyn Store,
    run: i64,
    seen: &mut HashMap<(i64, u32), i64>,
) -> Result<()> {
    for ti in store.task_instances(run).await? {
        for try_number in 1..=ti.try_number.max(1) {
            let after = seen.entry((ti.id, try_number)).or_insert(0);
            let lines = store.read_log(ti.id, try_number, *after, 10_000).await?;
            for line in &lines {
                let index = if ti.map_index >= 0 {
                    format!("[{}]", ti.map_index)
                } else {
                    String::new()
                };
                eprintln!(
                    "[{}{} try {}] {} {}",
                    ti.task_id,
                    index,
                    try_number,
                    line.timestamp.format("%H:%M:%S%.3f"),
                    line.line
                );
                *after = line.seq;
            }
        }
    }
    Ok(())
}

/// `dags test --mark-success-pattern`: the tasks whose id matches become empty tasks, which
/// the scheduler settles as successful without a worker, as Airflow marks them; their ids.
fn mark_success(dag: &mut Dag, pattern: &regex::Regex) -> Vec<String> {
    let mut marked = Vec::new();
    for task in dag
        .tasks
        .iter_mut()
        .filter(|t| pattern.is_match(&t.task_id))
    {
        task.kind = dag::TaskKind::Empty;
        task.branch = false;
        marked.push(task.task_id.clone());
    }
    marked
}

/// What `tasks test` runs, from its flags.
pub struct TaskTest<'a> {
    pub dag_id: &'a str,
    pub task_id: &'a str,
    /// Logical date as given (RFC 3339 or YYYY-MM-DD); `None`: now.
    pub logical_date: Option<&'a str>,
    /// The mapped instance to run; -1 for a task that is not mapped.
    pub map_index: i64,
    /// `--env-vars`: a JSON object of environment variables for the task's process.
    pub env_vars: Option<&'a str>,
    pub format: Format,
}

/// `tasks test --env-vars`: a JSON object of names to strings (numbers and booleans are taken
/// as their text), none of them a variable no task process may get.
fn parse_env_vars(text: &str) -> Result<BTreeMap<String, String>> {
    let object = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => object,
        Ok(_) => bail!("--env-vars must be a JSON object, e.g. '{{\"STAGE\": \"test\"}}'"),
        Err(e) => bail!("--env-vars is not valid JSON: {e}"),
    };
    let mut vars = BTreeMap::new();
    for (name, value) in object {
        if name.is_empty() || name.contains(['=', '\0']) {
            bail!("--env-vars: '{name}' is not an environment variable name");
        }
        if pydag::is_credential_variable(&name) {
            bail!(
                "--env-vars: {name} is never passed to a task process: database settings and \
                 credentials stay out of tasks"
            );
        }
        let value = match value {
            Value::String(text) => text,
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            other => bail!("--env-vars: the value of {name} must be a string, got {other}"),
        };
        if value.contains('\0') {
            bail!("--env-vars: the value of {name} holds a NUL character");
        }
        vars.insert(name, value);
    }
    Ok(vars)
}

/// Add `vars` to the environment of `task`'s process, behind the task's own `env`. A task's
/// env values are templates, so a value that reads like one is kept literal in a raw block.
fn add_env_vars(task: &mut dag::Task, vars: &BTreeMap<String, String>) -> Result<()> {
    for (name, value) in vars {
        if task.env.contains_key(name) {
            eprintln!(
                "note: --env-vars {name} is not used: task '{}' sets its own",
                task.task_id
            );
            continue;
        }
        let literal = if ["{{", "{%", "{#"].iter().any(|t| value.contains(t)) {
            if value.contains("endraw") {
                bail!("--env-vars: the value of {name} cannot hold both a template and 'endraw'");
            }
            format!("{{% raw %}}{value}{{% endraw %}}")
        } else {
            value.clone()
        };
        task.env.insert(name.clone(), literal);
    }
    Ok(())
}

/// How many instances `task` expands to in `run`, to check `--map-index` before running one.
/// Its upstream tasks did not run, so an `expand` over their XComs cannot be worked out.
async fn expansion_length(
    settings: &Settings,
    store: &dyn Store,
    run: &store::RunRecord,
    dag: &Dag,
    task: &dag::Task,
) -> Result<usize> {
    let vault = settings.vault()?;
    let secrets = store::secrets::load_template_secrets(store, &vault, &settings.env_connections)
        .await
        .map_err(|e| anyhow!("cannot open variables and connections: {e}"))?;
    let mut context = run.template_context(dag, &task.task_id, -1, 1, &[]);
    context.variables = secrets.variables;
    context.connections = secrets.connections;
    match dag::mapping::Expansion::of(task, &context) {
        Some(Ok(expansion)) => Ok(expansion.len()),
        Some(Err(message)) => bail!(
            "cannot expand task '{}': {message} (tasks test runs no upstream task, so their \
             XComs are missing; `dags test` runs the whole DAG)",
            task.task_id
        ),
        None => bail!("task '{}' is not mapped", task.task_id),
    }
}

/// `tasks test`: run one task on a throw-away database, ignoring its upstream.
pub async fn tasks_test(settings: &Settings, test: TaskTest<'_>) -> Result<ExitCode> {
    let TaskTest {
        dag_id,
        task_id,
        logical_date,
        map_index,
        env_vars,
        format,
    } = test;
    let logical_date = logical_date.map(parse_date).transpose()?;
    let env_vars = env_vars.map(parse_env_vars).transpose()?;
    let (mut dag, hash) = find_dag(settings, dag_id).await?;
    let Some(task) = dag.tasks.iter_mut().find(|t| t.task_id == task_id) else {
        return Err(anyhow!("task '{task_id}' not found in DAG '{dag_id}'"));
    };
    // As Airflow: a mapped task needs the instance to run, and only a mapped task takes one.
    match (task.expand.is_some(), map_index) {
        (_, i) if i < -1 => bail!("--map-index {i}: give -1 or an instance's index (0, 1, …)"),
        (true, -1) => bail!(
            "task '{task_id}' is mapped: give the instance to run with --map-index N (0 for the \
             first)"
        ),
        (false, i) if i >= 0 => {
            bail!("task '{task_id}' is not mapped: leave out --map-index (or give -1)")
        }
        _ => {}
    }
    if let Some(vars) = &env_vars {
        add_env_vars(task, vars)?;
    }
    let store = scratch_store(settings, &dag, &hash).await?;
    let request = TriggerRequest {
        logical_date,
        conf: None,
        run_id: None,
    };
    let run = scheduler::trigger(&*store, dag_id, request, Utc::now())
        .await
        .context("cannot start the run")?;
    let task = dag
        .task(task_id)
        .ok_or_else(|| anyhow!("task '{task_id}' not found in DAG '{dag_id}'"))?;
    let placeholder = store
        .task_instances(run.id)
        .await?
        .into_iter()
        .find(|ti| ti.task_id == task_id)
        .ok_or_else(|| anyhow!("task instance of '{task_id}' was not created"))?;
    let target_id = if map_index >= 0 {
        let count = expansion_length(settings, &*store, &run, &dag, task).await?;
        let wanted = usize::try_from(map_index).expect("checked to be 0 or more");
        if wanted >= count {
            bail!(
                "--map-index {map_index} is out of range: task '{task_id}' expands to {count} \
                 instance(s){}",
                if count == 0 {
                    String::new()
                } else {
                    format!(" (0 to {})", count - 1)
                }
            );
        }
        let expansion = store::Expansion {
            ti: placeholder.id,
            count: u32::try_from(count).context("too many mapped instances")?,
        };
        store
            .schedule_run(
                run.id,
                Utc::now(),
                SnapshotXcoms::Omitted,
                &move |_snapshot| RunDecision {
                    run_state: Some(RunState::Running),
                    expansions: vec![expansion],
                    ..RunDecision::default()
                },
            )
            .await?;
        store
            .task_instances(run.id)
            .await?
            .into_iter()
            .find(|ti| ti.task_id == task_id && i64::from(ti.map_index) == map_index)
            .ok_or_else(|| anyhow!("task instance {task_id}[{map_index}] was not created"))?
            .id
    } else {
        placeholder.id
    };
    let to = if task.kind.needs_worker() {
        TaskState::Queued
    } else {
        TaskState::Success
    };
    store
        .schedule_run(
            run.id,
            Utc::now(),
            SnapshotXcoms::Omitted,
            &move |_snapshot| RunDecision {
                run_state: Some(RunState::Running),
                transitions: vec![Transition {
                    ti: target_id,
                    from: TaskState::None,
                    to,
                }],
                ..RunDecision::default()
            },
        )
        .await?;
    let (stop, stop_rx) = watch::channel(false);
    let worker_store = store.clone();
    let worker_config = engine::worker_config(settings)?;
    let worker = tokio::spawn(async move {
        Worker::new(worker_config)
            .run(worker_store, stopped(stop_rx))
            .await
    });
    let mut events = store.subscribe();
    let mut seen = HashMap::new();
    let ti = loop {
        print_new_logs(&*store, run.id, &mut seen).await?;
        let ti = store
            .get_task_instance(target_id)
            .await?
            .ok_or_else(|| anyhow!("task instance disappeared"))?;
        if ti.state.is_finished() || ti.state == TaskState::UpForRetry {
            break ti;
        }
        tokio::select! {
            event = events.recv() => { if matches!(event, Ok(StoreEvent::TasksQueued)) { continue; } }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    };
    print_new_logs(&*store, run.id, &mut seen).await?;
    let _ = stop.send(true);
    let _ = worker.await;
    let xcoms = store.list_xcoms(run.id, Some(task_id)).await?;
    let xcom: serde_json::Map<String, Value> = xcoms
        .into_iter()
        .filter(|x| x.map_index == ti.map_index)
        .map(|x| (x.key, x.value))
        .collect();
    match format {
        Format::Table if ti.map_index >= 0 => {
            println!("{task_id}[{}] {}", ti.map_index, ti.state)
        }
        Format::Table => println!("{task_id} {}", ti.state),
        _ => println!(
            "{}",
            json!({"task_id": task_id, "map_index": ti.map_index, "state": ti.state.as_str(), "xcom": xcom})
        ),
    }
    Ok(
        if matches!(ti.state, TaskState::Success | TaskState::Skipped) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}
