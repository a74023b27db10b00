//! `dagctl dags …`: DAGs and their runs through the server's REST API (list, show, details,
//! import errors, trigger, pause, delete, runs, a run's state, the next run, backfill);
//! `validate` and `test` run locally.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use api::models::{
    BackfillPostBody, BackfillResponse, DAGCollectionResponse, DAGDetailsResponse, DAGPatchBody,
    DAGResponse, DAGRunCollectionResponse, DAGRunResponse, DagTagResponse,
    ImportErrorCollectionResponse, TriggerDAGRunPostBody,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use super::dag_tasks::{TASK_COLUMNS, find_run, graph_order, task_rows, tasks_of};
use super::{confirm, local_run, parse_conf, parse_date, rfc3339, rows};
use crate::cli::{DagsCommand, PauseArgs, RemoteArgs};
use crate::client::Client;
use crate::credentials;
use crate::output::{Format, print_object, print_rows};
use crate::settings::Settings;

/// The logical dates of the DAG's next `count` scheduled runs (fewer when its schedule has
/// no more): the server's next run, then the schedule's following ticks up to its end date.
/// Each run after the next one falls on the tick after the one before it, in either
/// timetable, so a DAG with the same schedule, time zone and end date, starting at the next
/// run, yields them.
fn next_logical_dates(details: &DAGDetailsResponse, count: usize) -> Result<Vec<DateTime<Utc>>> {
    let Some(first) = details.dag.next_dagrun_logical_date else {
        return Ok(Vec::new());
    };
    let mut dates = vec![first];
    let cron = details
        .dag
        .timetable_summary
        .as_deref()
        .filter(|schedule| *schedule != "@once");
    let Some(cron) = cron.filter(|_| count > 1) else {
        return Ok(dates);
    };
    let mut timetable = serde_json::json!({
        "schedule": cron,
        "start_date": rfc3339(first),
        "timezone": details.timezone.as_deref().unwrap_or("UTC"),
        "catchup": true,
        "tasks": [{"id": "tick", "bash": "true"}],
    });
    if let Some(end) = details.end_date {
        timetable["end_date"] = Value::String(rfc3339(end));
    }
    let schedule = dag::parse_dag_str("next_execution.json", &timetable.to_string())
        .map_err(|e| anyhow::anyhow!("cannot evaluate the schedule '{cron}': {e}"))?;
    while dates.len() < count {
        let last = *dates.last().expect("starts with the next run");
        // Nothing is due at the last date itself, so the next run is the tick after it.
        match dag::schedule::next_run(&schedule, Some(last), last)? {
            Some(next) => dates.push(next.interval.logical_date),
            None => break,
        }
    }
    Ok(dates)
}

/// Columns of a run in a table.
pub const RUN_COLUMNS: &[&str] = &[
    "dag_id",
    "dag_run_id",
    "state",
    "run_type",
    "logical_date",
    "start_date",
    "end_date",
];

pub async fn run(
    settings: Settings,
    server_before: Option<&str>,
    command: DagsCommand,
) -> Result<ExitCode> {
    let connect = |remote: &RemoteArgs| credentials::connect(remote.or(server_before));
    match command {
        DagsCommand::Validate { paths } => return local_run::validate(&settings, paths).await,
        DagsCommand::Test {
            dag_id,
            logical_date,
            conf,
            mark_success_pattern,
            dagfile_path,
            output,
        } => {
            return local_run::dags_test(
                &settings,
                local_run::DagTest {
                    dag_id: &dag_id,
                    logical_date: logical_date.as_deref(),
                    conf: conf.as_deref(),
                    mark_success_pattern: mark_success_pattern.as_deref(),
                    dagfile_path: dagfile_path.as_deref(),
                    format: output.format,
                },
            )
            .await;
        }
        DagsCommand::List { output, remote } => {
            let dags = connect(&remote)?
                .list_all::<DAGCollectionResponse>(&["api", "v2", "dags"], &[])
                .await?;
            print_rows(
                output.format,
                &[
                    "dag_id",
                    "fileloc",
                    "timetable_summary",
                    "is_paused",
                    "owners",
                    "tags",
                ],
                &rows(&dags)?,
            )?;
        }
        DagsCommand::Show {
            dag_id,
            output,
            remote,
        } => show(&connect(&remote)?, &dag_id, output.format).await?,
        DagsCommand::Details {
            dag_id,
            output,
            remote,
        } => {
            let details: DAGDetailsResponse = connect(&remote)?
                .get(&["api", "v2", "dags", &dag_id, "details"], &[])
                .await?;
            print_object(output.format, &serde_json::to_value(&details)?)?;
        }
        DagsCommand::ListImportErrors { output, remote } => {
            let errors = connect(&remote)?
                .list_all::<ImportErrorCollectionResponse>(&["api", "v2", "importErrors"], &[])
                .await?;
            print_rows(
                output.format,
                &["filename", "timestamp", "stack_trace"],
                &rows(&errors)?,
            )?;
        }
        DagsCommand::Trigger {
            dag_id,
            conf,
            logical_date,
            run_id,
            output,
            remote,
        } => {
            let body = TriggerDAGRunPostBody {
                dag_run_id: run_id,
                data_interval_start: None,
                data_interval_end: None,
                // The API requires the key; null lets the run take the trigger time.
                logical_date: logical_date.as_deref().map(parse_date).transpose()?,
                run_after: None,
                conf: parse_conf(conf.as_deref())?
                    .map(serde_json::from_value)
                    .transpose()?,
                note: None,
                partition_key: None,
            };
            let run: DAGRunResponse = connect(&remote)?
                .post(&["api", "v2", "dags", &dag_id, "dagRuns"], &body)
                .await?;
            match output.format {
                Format::Table => println!("{}", run.dag_run_id),
                format => print_object(format, &serde_json::to_value(&run)?)?,
            }
        }
        DagsCommand::Pause(args) => return pause(&connect(&args.remote)?, &args, true).await,
        DagsCommand::Unpause(args) => return pause(&connect(&args.remote)?, &args, false).await,
        DagsCommand::Delete {
            dag_id,
            yes,
            remote,
        } => {
            let client = connect(&remote)?;
            if !yes {
                // Ask only about a DAG that exists, so a typo fails before the question.
                let _: DAGResponse = client.get(&["api", "v2", "dags", &dag_id], &[]).await?;
                if !confirm(&format!(
                    "Delete DAG '{dag_id}' with all its runs, task instances and logs?"
                ))? {
                    eprintln!("nothing deleted");
                    return Ok(ExitCode::FAILURE);
                }
            }
            client.delete(&["api", "v2", "dags", &dag_id]).await?;
            println!("DAG '{dag_id}' deleted");
        }
        DagsCommand::ListRuns {
            dag_id,
            dag_id_flag,
            state,
            no_backfill,
            start_date,
            end_date,
            limit,
            output,
            remote,
        } => {
            let Some(dag_id) = dag_id.or(dag_id_flag) else {
                bail!("give the DAG's id");
            };
            let mut query = vec![("order_by", "-run_after".to_string())];
            if let Some(state) = state {
                query.push(("state", state));
            }
            if let Some(start) = start_date {
                query.push(("logical_date_gte", rfc3339(parse_date(&start)?)));
            }
            if let Some(end) = end_date {
                query.push(("logical_date_lte", rfc3339(parse_date(&end)?)));
            }
            let mut runs = connect(&remote)?
                .list_all::<DAGRunCollectionResponse>(
                    &["api", "v2", "dags", &dag_id, "dagRuns"],
                    &query,
                )
                .await?;
            if no_backfill {
                runs.retain(|run| run.run_type != "backfill");
            }
            if let Some(limit) = limit {
                runs.truncate(limit.get());
            }
            print_rows(output.format, RUN_COLUMNS, &rows(&runs)?)?;
        }
        DagsCommand::State {
            dag_id,
            logical_date_or_run_id,
            remote,
        } => {
            let run = find_run(&connect(&remote)?, &dag_id, &logical_date_or_run_id).await?;
            println!("{}", run_state_line(run.as_ref()));
        }
        DagsCommand::NextExecution {
            dag_id,
            num_executions,
            remote,
        } => {
            // The server works the next run out from the schedule and the newest scheduled
            // run, as the scheduler does; the ones after it follow from the schedule.
            let details: DAGDetailsResponse = connect(&remote)?
                .get(&["api", "v2", "dags", &dag_id, "details"], &[])
                .await?;
            if details.dag.is_paused {
                eprintln!("note: DAG '{dag_id}' is paused: its next run waits for `dags unpause`");
            }
            let dates = next_logical_dates(&details, num_executions.get())?;
            for at in &dates {
                println!("{}", at.to_rfc3339_opts(SecondsFormat::AutoSi, false));
            }
            if dates.len() < num_executions.get() {
                match dates.last() {
                    None => eprintln!(
                        "note: DAG '{dag_id}' has no next scheduled run (schedule: {})",
                        details.dag.timetable_summary.as_deref().unwrap_or("none")
                    ),
                    Some(last) => eprintln!(
                        "note: DAG '{dag_id}' has no scheduled run after {} (schedule: {}{})",
                        rfc3339(*last),
                        details.dag.timetable_summary.as_deref().unwrap_or("none"),
                        details
                            .end_date
                            .map(|end| format!(", end_date {}", rfc3339(end)))
                            .unwrap_or_default()
                    ),
                }
                println!("None");
            }
        }
        DagsCommand::Backfill {
            dag_id,
            start_date,
            end_date,
            output,
            remote,
        } => {
            let client = connect(&remote)?;
            let from = parse_date(&start_date)?;
            let to = parse_date(&end_date)?;
            if from > to {
                bail!("--start-date {start_date} is after --end-date {end_date}");
            }
            let body = BackfillPostBody {
                dag_id: dag_id.clone(),
                from_date: from,
                to_date: to,
                run_backwards: false,
                dag_run_conf: None,
                reprocess_behavior: None,
                max_active_runs: None,
                run_on_latest_version: None,
            };
            let backfill: BackfillResponse =
                client.post(&["api", "v2", "backfills"], &body).await?;
            let runs = backfill_runs(&client, &dag_id, from, to).await?;
            match output.format {
                Format::Table => {
                    for run in &runs {
                        println!("{}", run.dag_run_id);
                    }
                    eprintln!(
                        "backfill {} of DAG '{dag_id}' from {} to {}: {} run(s)",
                        backfill.id,
                        rfc3339(from),
                        rfc3339(to),
                        runs.len()
                    );
                }
                format => {
                    let shown = BackfillShown {
                        backfill: &backfill,
                        dag_runs: &runs,
                    };
                    print_object(format, &serde_json::to_value(shown)?)?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `dags state` prints, as Airflow does: the state, then the conf as JSON if the run has
/// one (spaced as Python's `json.dumps` spaces it); `None` without a run.
fn run_state_line(run: Option<&DAGRunResponse>) -> String {
    match run {
        None => "None".to_string(),
        Some(run) => match run.conf.as_ref().filter(|conf| !conf.is_empty()) {
            Some(conf) => {
                let conf = Value::Object(conf.clone().into_iter().collect());
                format!("{}, {}", run.state, python_json(&conf))
            }
            None => run.state.clone(),
        },
    }
}

/// JSON as Python's `json.dumps` writes it by default: `{"k": 1, "l": [1, 2]}`.
fn python_json(value: &Value) -> String {
    match value {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(python_json).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), python_json(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        scalar => scalar.to_string(),
    }
}

/// `dags pause` / `dags unpause`: one DAG, or with `--treat-dag-id-as-regex` every DAG whose id
/// matches, after showing them and asking (unless `--yes`).
async fn pause(client: &Client, args: &PauseArgs, paused: bool) -> Result<ExitCode> {
    let verb = if paused { "pause" } else { "unpause" };
    let dag_ids: Vec<String> = if args.treat_dag_id_as_regex {
        let regex = regex::Regex::new(&args.dag_id)
            .with_context(|| format!("'{}' is not a valid regular expression", args.dag_id))?;
        let matching: Vec<String> = client
            .list_all::<DAGCollectionResponse>(&["api", "v2", "dags"], &[])
            .await?
            .into_iter()
            .map(|dag| dag.dag_id)
            .filter(|id| regex.is_match(id))
            .collect();
        if matching.is_empty() {
            bail!("no DAG's id matches '{}'", args.dag_id);
        }
        if !args.yes {
            for id in &matching {
                eprintln!("{id}");
            }
            let question = format!("{verb} these {} DAG(s)?", matching.len());
            let question = format!("{}{}", question[..1].to_uppercase(), &question[1..]);
            if !confirm(&question)? {
                eprintln!("nothing changed");
                return Ok(ExitCode::FAILURE);
            }
        }
        matching
    } else {
        vec![args.dag_id.clone()]
    };
    let mut changed = Vec::new();
    for dag_id in &dag_ids {
        let body = DAGPatchBody { is_paused: paused };
        let dag: DAGResponse = client
            .patch(&["api", "v2", "dags", dag_id], &[], &body)
            .await?;
        changed.push(serde_json::json!({"dag_id": dag.dag_id, "is_paused": dag.is_paused}));
    }
    match args.output.format {
        Format::Table => {
            for dag_id in &dag_ids {
                println!("DAG '{dag_id}' {verb}d");
            }
        }
        format => print_rows(format, &["dag_id", "is_paused"], &changed)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `dags backfill -o json|yaml`: the backfill, then the runs it made.
#[derive(Serialize)]
struct BackfillShown<'a> {
    backfill: &'a BackfillResponse,
    dag_runs: &'a [DAGRunResponse],
}

/// `dags show -o json|yaml`: every detail, then the tasks.
#[derive(Serialize)]
struct DagShown<'a> {
    #[serde(flatten)]
    details: &'a DAGDetailsResponse,
    tasks: Vec<Value>,
}

/// The details `dags show` puts in its table, in this order.
#[derive(Serialize)]
struct DagTable<'a> {
    dag_id: &'a str,
    description: &'a Option<String>,
    fileloc: &'a str,
    timetable_summary: &'a Option<String>,
    start_date: &'a Option<DateTime<Utc>>,
    catchup: bool,
    is_paused: bool,
    is_stale: bool,
    owners: &'a [String],
    tags: &'a [DagTagResponse],
    max_active_runs: Option<i64>,
    max_active_tasks: i64,
    next_dagrun_logical_date: &'a Option<DateTime<Utc>>,
    params: &'a Option<std::collections::BTreeMap<String, Value>>,
}

impl<'a> DagTable<'a> {
    fn of(details: &'a DAGDetailsResponse) -> DagTable<'a> {
        let dag = &details.dag;
        DagTable {
            dag_id: &dag.dag_id,
            description: &dag.description,
            fileloc: &dag.fileloc,
            timetable_summary: &dag.timetable_summary,
            start_date: &details.start_date,
            catchup: details.catchup,
            is_paused: dag.is_paused,
            is_stale: dag.is_stale,
            owners: &dag.owners,
            tags: &dag.tags,
            max_active_runs: dag.max_active_runs,
            max_active_tasks: dag.max_active_tasks,
            next_dagrun_logical_date: &dag.next_dagrun_logical_date,
            params: &details.params,
        }
    }
}

/// `dags show`: the details, then the tasks in graph order.
async fn show(client: &Client, dag_id: &str, format: Format) -> Result<()> {
    let details: DAGDetailsResponse = client
        .get(&["api", "v2", "dags", dag_id, "details"], &[])
        .await?;
    let tasks = graph_order(tasks_of(client, dag_id).await?);
    match format {
        Format::Table => {
            print_object(
                Format::Table,
                &serde_json::to_value(DagTable::of(&details))?,
            )?;
            println!();
            print_rows(Format::Table, TASK_COLUMNS, &task_rows(&tasks)?)?;
        }
        format => {
            let shown = DagShown {
                details: &details,
                tasks: task_rows(&tasks)?,
            };
            print_object(format, &serde_json::to_value(shown)?)?;
        }
    }
    Ok(())
}

/// The backfill runs of `dag_id` whose logical date is in [from, to], oldest first.
async fn backfill_runs(
    client: &Client,
    dag_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DAGRunResponse>> {
    let query = [
        ("run_type", "backfill".to_string()),
        ("logical_date_gte", rfc3339(from)),
        ("logical_date_lte", rfc3339(to)),
        ("order_by", "logical_date".to_string()),
    ];
    let runs = client
        .list_all::<DAGRunCollectionResponse>(&["api", "v2", "dags", dag_id, "dagRuns"], &query)
        .await?;
    // Filtered here as well, for a server that ignores a filter it does not know.
    let mut runs: Vec<DAGRunResponse> = runs
        .into_iter()
        .filter(|run| run.run_type == "backfill")
        .filter(|run| run.logical_date.is_some_and(|t| t >= from && t <= to))
        .collect();
    runs.sort_by_key(|run| run.logical_date);
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_runs_conf_prints_as_airflow_prints_it() {
        assert_eq!(
            python_json(&json!({"k": 1, "l": [1, "a"], "o": {"x": null}})),
            r#"{"k": 1, "l": [1, "a"], "o": {"x": null}}"#
        );
        assert_eq!(run_state_line(None), "None");
    }
}
