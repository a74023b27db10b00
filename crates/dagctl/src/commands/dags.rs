//! `dagctl dags …`: DAGs and their runs through the server's REST API (list, show, import
//! errors, trigger, pause, delete, runs, backfill); `validate` and `test` run locally.

use std::process::ExitCode;

use anyhow::{Result, bail};
use api::models::{
    BackfillPostBody, BackfillResponse, DAGCollectionResponse, DAGDetailsResponse, DAGPatchBody,
    DAGResponse, DAGRunCollectionResponse, DAGRunResponse, DagTagResponse,
    ImportErrorCollectionResponse, TaskResponse, TriggerDAGRunPostBody,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::dag_tasks::{TASK_COLUMNS, tasks_of};
use super::{confirm, local_run, parse_conf, parse_date, rfc3339, rows};
use crate::cli::DagsCommand;
use crate::client::Client;
use crate::credentials;
use crate::output::{Format, print_object, print_rows};
use crate::settings::Settings;

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

pub async fn run(settings: Settings, server: &str, command: DagsCommand) -> Result<ExitCode> {
    match command {
        DagsCommand::Validate { paths } => return local_run::validate(&settings, paths).await,
        DagsCommand::Test {
            dag_id,
            logical_date,
            conf,
            output,
        } => {
            return local_run::dags_test(
                &settings,
                &dag_id,
                logical_date.as_deref(),
                conf.as_deref(),
                output.format,
            )
            .await;
        }
        _ => {}
    }
    let client = credentials::connect(server)?;
    match command {
        DagsCommand::Validate { .. } | DagsCommand::Test { .. } => {
            unreachable!("local commands returned above")
        }
        DagsCommand::List(output) => {
            let dags = client
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
        DagsCommand::Show { dag_id, output } => show(&client, &dag_id, output.format).await?,
        DagsCommand::ListImportErrors(output) => {
            let errors = client
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
            let run: DAGRunResponse = client
                .post(&["api", "v2", "dags", &dag_id, "dagRuns"], &body)
                .await?;
            match output.format {
                Format::Table => println!("{}", run.dag_run_id),
                format => print_object(format, &serde_json::to_value(&run)?)?,
            }
        }
        DagsCommand::Pause { dag_id } => {
            set_paused(&client, &dag_id, true).await?;
            println!("DAG '{dag_id}' paused");
        }
        DagsCommand::Unpause { dag_id } => {
            set_paused(&client, &dag_id, false).await?;
            println!("DAG '{dag_id}' unpaused");
        }
        DagsCommand::Delete { dag_id, yes } => {
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
            state,
            output,
        } => {
            let mut query = vec![("order_by", "-run_after".to_string())];
            if let Some(state) = state {
                query.push(("state", state));
            }
            let runs = client
                .list_all::<DAGRunCollectionResponse>(
                    &["api", "v2", "dags", &dag_id, "dagRuns"],
                    &query,
                )
                .await?;
            print_rows(output.format, RUN_COLUMNS, &rows(&runs)?)?;
        }
        DagsCommand::Backfill {
            dag_id,
            start_date,
            end_date,
            output,
        } => {
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
    tasks: &'a [TaskResponse],
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

/// `dags show`: the details, then the tasks.
async fn show(client: &Client, dag_id: &str, format: Format) -> Result<()> {
    let details: DAGDetailsResponse = client
        .get(&["api", "v2", "dags", dag_id, "details"], &[])
        .await?;
    let tasks = tasks_of(client, dag_id).await?;
    match format {
        Format::Table => {
            print_object(
                Format::Table,
                &serde_json::to_value(DagTable::of(&details))?,
            )?;
            println!();
            print_rows(Format::Table, TASK_COLUMNS, &rows(&tasks)?)?;
        }
        format => {
            let shown = DagShown {
                details: &details,
                tasks: &tasks,
            };
            print_object(format, &serde_json::to_value(shown)?)?;
        }
    }
    Ok(())
}

async fn set_paused(client: &Client, dag_id: &str, paused: bool) -> Result<()> {
    let body = DAGPatchBody { is_paused: paused };
    let _: DAGResponse = client
        .patch(&["api", "v2", "dags", dag_id], &[], &body)
        .await?;
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
