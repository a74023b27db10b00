//! `dagctl dags …`: DAGs and their runs through the server's REST API (list, show, import
//! errors, trigger, pause, delete, runs, backfill); `validate` and `test` run locally.

use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

use super::{confirm, local_run, parse_conf, parse_date, rfc3339};
use crate::DagsCommand;
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
        DagsCommand::Validate { paths } => return local_run::validate(&settings, paths),
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
            let dags = client.list_all(&["api", "v2", "dags"], &[], "dags").await?;
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
                &dags,
            )?;
        }
        DagsCommand::Show { dag_id, output } => show(&client, &dag_id, output.format).await?,
        DagsCommand::ListImportErrors(output) => {
            let errors = client
                .list_all(&["api", "v2", "importErrors"], &[], "import_errors")
                .await?;
            print_rows(
                output.format,
                &["filename", "timestamp", "stack_trace"],
                &errors,
            )?;
        }
        DagsCommand::Trigger {
            dag_id,
            conf,
            logical_date,
            run_id,
            output,
        } => {
            let mut body = Map::new();
            // The API requires the key; null lets the run take the trigger time.
            let logical_date = logical_date.as_deref().map(parse_date).transpose()?;
            body.insert("logical_date".into(), json!(logical_date.map(rfc3339)));
            if let Some(conf) = parse_conf(conf.as_deref())? {
                body.insert("conf".into(), conf);
            }
            if let Some(run_id) = run_id {
                body.insert("dag_run_id".into(), json!(run_id));
            }
            let run: Value = client
                .post(&["api", "v2", "dags", &dag_id, "dagRuns"], &body)
                .await?;
            match output.format {
                Format::Table => println!("{}", text(&run, "dag_run_id")),
                format => print_object(format, &run)?,
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
                let _: Value = client.get(&["api", "v2", "dags", &dag_id], &[]).await?;
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
                .list_all(
                    &["api", "v2", "dags", &dag_id, "dagRuns"],
                    &query,
                    "dag_runs",
                )
                .await?;
            print_rows(output.format, RUN_COLUMNS, &runs)?;
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
            let backfill: Value = client
                .post(
                    &["api", "v2", "backfills"],
                    &json!({"dag_id": dag_id, "from_date": rfc3339(from), "to_date": rfc3339(to)}),
                )
                .await?;
            let runs = backfill_runs(&client, &dag_id, from, to).await?;
            match output.format {
                Format::Table => {
                    for run in &runs {
                        println!("{}", text(run, "dag_run_id"));
                    }
                    eprintln!(
                        "backfill {} of DAG '{dag_id}' from {} to {}: {} run(s)",
                        backfill
                            .get("id")
                            .map_or_else(String::new, Value::to_string),
                        rfc3339(from),
                        rfc3339(to),
                        runs.len()
                    );
                }
                format => {
                    print_object(format, &json!({"backfill": backfill, "dag_runs": runs}))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `dags show`: the details, then the tasks.
async fn show(client: &Client, dag_id: &str, format: Format) -> Result<()> {
    let mut details: Value = client
        .get(&["api", "v2", "dags", dag_id, "details"], &[])
        .await?;
    let tasks = tasks_of(client, dag_id).await?;
    match format {
        Format::Table => {
            let keys = [
                "dag_id",
                "description",
                "fileloc",
                "timetable_summary",
                "start_date",
                "catchup",
                "is_paused",
                "is_stale",
                "owners",
                "tags",
                "max_active_runs",
                "max_active_tasks",
                "next_dagrun_logical_date",
                "params",
            ];
            let mut shown = Map::new();
            for key in keys {
                if let Some(value) = details.get(key) {
                    shown.insert(key.to_string(), value.clone());
                }
            }
            print_object(Format::Table, &Value::Object(shown))?;
            println!();
            print_rows(Format::Table, super::tasks::TASK_COLUMNS, &tasks)?;
        }
        format => {
            if let Value::Object(map) = &mut details {
                map.insert("tasks".into(), Value::Array(tasks));
            }
            print_object(format, &details)?;
        }
    }
    Ok(())
}

/// The tasks of a DAG (`GET /dags/{id}/tasks`, not paged by the API).
pub async fn tasks_of(client: &Client, dag_id: &str) -> Result<Vec<Value>> {
    let answer: Value = client
        .get(&["api", "v2", "dags", dag_id, "tasks"], &[])
        .await?;
    Ok(answer
        .get("tasks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

async fn set_paused(client: &Client, dag_id: &str, paused: bool) -> Result<()> {
    let _: Value = client
        .patch(
            &["api", "v2", "dags", dag_id],
            &[],
            &json!({"is_paused": paused}),
        )
        .await?;
    Ok(())
}

/// The backfill runs of `dag_id` whose logical date is in [from, to], oldest first.
async fn backfill_runs(
    client: &Client,
    dag_id: &str,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Value>> {
    let query = [
        ("run_type", "backfill".to_string()),
        ("logical_date_gte", rfc3339(from)),
        ("logical_date_lte", rfc3339(to)),
        ("order_by", "logical_date".to_string()),
    ];
    let runs = client
        .list_all(
            &["api", "v2", "dags", dag_id, "dagRuns"],
            &query,
            "dag_runs",
        )
        .await?;
    // Filtered here as well, for a server that ignores a filter it does not know.
    let mut runs: Vec<Value> = runs
        .into_iter()
        .filter(|run| run.get("run_type").and_then(Value::as_str) == Some("backfill"))
        .filter(|run| {
            run.get("logical_date")
                .and_then(Value::as_str)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t >= from && t <= to)
        })
        .collect();
    runs.sort_by_key(|run| {
        run.get("logical_date")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    });
    Ok(runs)
}

/// A string field of an answer, or nothing.
pub fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}
