//! `dagctl bench python`: Airflow Python DAG files through the real file processor,
//! scheduler, worker and store.
//!
//! - Parse: `files` generated `.py` files of `tasks` tasks each, imported from cold (a new
//!   Python host) and synced, until the store lists every DAG.
//! - A chain of PythonOperators, each pulling the previous one's return value and adding one:
//!   per-hop latency (upstream end -> downstream start), and each try's own span (start ->
//!   end), where the warm interpreter shows; then once more with a fresh interpreter per try.
//! - A BashOperator chain from a `.py` file against the same chain in YAML, run alternately
//!   in one sitting so that the comparison shares the machine's state.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use scheduler::DagFolder;
use store::Store;

use super::{bench_engine, chain_dag, chain_hops, run_synced, spread};
use crate::cli::PythonBenchArgs;
use crate::commands::engine;
use crate::settings::Settings;

pub(super) async fn run(
    settings: &Settings,
    store: Arc<dyn Store>,
    args: &PythonBenchArgs,
) -> Result<ExitCode> {
    let mut ok = parse(settings, &*store, args).await?;

    let chains = tempfile::Builder::new()
        .prefix("updraft-bench-python-")
        .tempdir()
        .context("cannot create the folder for the chains' DAG files")?;
    write(
        &chains.path().join("python_chain.py"),
        &python_chain(args.chain),
    )?;
    write(
        &chains.path().join("bash_chain.py"),
        &bash_chain(args.chain),
    )?;
    let mut folder =
        DagFolder::new(chains.path()).with_python(settings.python.clone(), settings.vault()?);
    let report = folder.process(&*store, Utc::now()).await?;
    if !report.errors.is_empty() {
        bail!("the chains' DAG files did not import: {:?}", report.errors);
    }
    let yaml = dag::parse_dag_str(
        "bench_yaml_chain.yaml",
        &chain_dag("bench_yaml_chain", args.chain),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    store
        .sync_dag(
            &yaml,
            &format!("bench-{}", Utc::now().timestamp_micros()),
            Utc::now(),
        )
        .await?;

    let engine = bench_engine(settings, store.clone(), engine::worker_config(settings)?)?;
    let (mut python_hops, mut python_spans, mut python_runs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut bash_py_hops, mut bash_yaml_hops) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds.max(1) {
        let report = run_synced(&*store, "bench_python_chain").await?;
        let tis = store.task_instances(report.run).await?;
        python_hops.extend(chain_hops(&tis, args.chain));
        python_spans.extend(
            tis.iter()
                .filter_map(|t| Some((t.end_date? - t.start_date?).as_seconds_f64() * 1000.0)),
        );
        let last = format!("t{:04}", args.chain.saturating_sub(1));
        let value = store
            .list_xcoms(report.run, Some(&last))
            .await?
            .into_iter()
            .find(|x| x.key == "return_value")
            .map(|x| x.value);
        if report.state != dag::RunState::Success || value != Some(serde_json::json!(args.chain)) {
            eprintln!(
                "the PythonOperator chain ended {} with {last} = {value:?}, not {}",
                report.state, args.chain
            );
            ok = false;
        }
        python_runs.push(report.seconds);
        for (dag_id, hops) in [
            ("bench_bash_chain_py", &mut bash_py_hops),
            ("bench_yaml_chain", &mut bash_yaml_hops),
        ] {
            let report = run_synced(&*store, dag_id).await?;
            if report.state != dag::RunState::Success {
                eprintln!("{dag_id} ended {}", report.state);
                ok = false;
            }
            hops.extend(chain_hops(
                &store.task_instances(report.run).await?,
                args.chain,
            ));
        }
    }
    engine.stop().await?;

    // The same Python chain once more with every try in a fresh interpreter, for comparison.
    let engine = bench_engine(
        settings,
        store.clone(),
        engine::worker_config(settings)?.with_warm_python(false),
    )?;
    let cold = run_synced(&*store, "bench_python_chain").await?;
    let mut cold_spans: Vec<f64> = store
        .task_instances(cold.run)
        .await?
        .iter()
        .filter_map(|t| Some((t.end_date? - t.start_date?).as_seconds_f64() * 1000.0))
        .collect();
    cold_spans.sort_by(f64::total_cmp);
    if cold.state != dag::RunState::Success {
        eprintln!("the cold PythonOperator chain ended {}", cold.state);
        ok = false;
    }
    engine.stop().await?;
    for values in [
        &mut python_hops,
        &mut python_spans,
        &mut bash_py_hops,
        &mut bash_yaml_hops,
    ] {
        values.sort_by(f64::total_cmp);
    }
    let rounds = args.rounds.max(1);
    println!(
        "PythonOperator chain of {} passing XComs ({rounds} runs, {:.2}s each on average): per-hop latency {}; each try start -> end {}",
        args.chain,
        python_runs.iter().sum::<f64>() / python_runs.len().max(1) as f64,
        spread(&python_hops),
        spread(&python_spans),
    );
    println!(
        "the same PythonOperator chain with a fresh interpreter per try (1 run, {:.2}s): each try start -> end {}",
        cold.seconds,
        spread(&cold_spans),
    );
    println!(
        "BashOperator chain of {} from a .py file ({rounds} runs): per-hop latency {}",
        args.chain,
        spread(&bash_py_hops)
    );
    println!(
        "the same bash chain in YAML ({rounds} runs, alternating): per-hop latency {}",
        spread(&bash_yaml_hops)
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Generate the files, then time a cold import and sync of all of them until listed.
async fn parse(settings: &Settings, store: &dyn Store, args: &PythonBenchArgs) -> Result<bool> {
    let dir = tempfile::Builder::new()
        .prefix("updraft-bench-pyfiles-")
        .tempdir()
        .context("cannot create the folder for the generated DAG files")?;
    for n in 0..args.files {
        write(
            &dir.path().join(format!("pipeline_{n:04}.py")),
            &generated_file(n, args.tasks),
        )?;
    }
    let started = Instant::now();
    let mut folder =
        DagFolder::new(dir.path()).with_python(settings.python.clone(), settings.vault()?);
    let report = folder.process(store, Utc::now()).await?;
    let listed = store
        .list_dags()
        .await?
        .into_iter()
        .filter(|d| d.dag_id.starts_with("bench_pipeline_"))
        .count();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{} Python DAG files of {} tasks: imported from cold, synced and listed ({listed} DAGs) in {seconds:.2}s; {} import errors",
        args.files,
        args.tasks,
        report.errors.len()
    );
    for error in report.errors.iter().take(3) {
        eprintln!("{error}");
    }
    Ok(report.errors.is_empty() && listed == args.files)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// An Airflow 2 style file: a BashOperator, PythonOperators, an EmptyOperator join.
fn generated_file(n: usize, tasks: usize) -> String {
    let mut text = format!(
        "from datetime import datetime, timedelta\n\
         from airflow import DAG\n\
         from airflow.operators.bash import BashOperator\n\
         from airflow.operators.empty import EmptyOperator\n\
         from airflow.operators.python import PythonOperator\n\n\
         def transform(**context):\n    return context['ds']\n\n\
         with DAG('bench_pipeline_{n:04}', schedule='@daily', start_date=datetime(2024, 1, 1),\n\
         \x20        catchup=False, default_args={{'retries': 1, 'retry_delay': timedelta(minutes=1)}}) as dag:\n\
         \x20   start = BashOperator(task_id='extract', bash_command='echo {{{{ ds }}}}')\n\
         \x20   end = EmptyOperator(task_id='done')\n"
    );
    for t in 0..tasks.saturating_sub(2) {
        text.push_str(&format!(
            "    start >> PythonOperator(task_id='transform_{t}', python_callable=transform) >> end\n"
        ));
    }
    text
}

/// PythonOperators `t0000` … each returning the previous one's value plus one.
fn python_chain(n: usize) -> String {
    format!(
        "from airflow import DAG\n\
         from airflow.operators.python import PythonOperator\n\n\
         def step(ti, n):\n\
         \x20   if n == 0:\n        return 1\n\
         \x20   return ti.xcom_pull(task_ids='t%04d' % (n - 1)) + 1\n\n\
         with DAG('bench_python_chain', schedule=None, max_active_tasks=64) as dag:\n\
         \x20   previous = None\n\
         \x20   for n in range({n}):\n\
         \x20       task = PythonOperator(task_id='t%04d' % n, python_callable=step, op_kwargs={{'n': n}})\n\
         \x20       if previous is not None:\n            previous >> task\n\
         \x20       previous = task\n"
    )
}

/// BashOperators `t0000` … running `true`, as `chain_dag` writes them in YAML.
fn bash_chain(n: usize) -> String {
    format!(
        "from airflow import DAG\n\
         from airflow.operators.bash import BashOperator\n\
         from airflow.models.baseoperator import chain\n\n\
         with DAG('bench_bash_chain_py', schedule=None, max_active_tasks=64) as dag:\n\
         \x20   chain(*[BashOperator(task_id='t%04d' % n, bash_command='true', do_xcom_push=False) for n in range({n})])\n"
    )
}
