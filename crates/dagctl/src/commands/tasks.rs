//! `dagctl tasks …`: tasks and task instances through the server's REST API (list, states
//! of a run, one instance's state, XComs, logs with `--follow`, clear); `tasks test` runs
//! locally. A run is named by its id or its logical date, as in Airflow.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use api::models::{
    ClearTaskInstancesBody, StructuredLogMessage, TaskIdSpec, TaskInstanceCollectionResponse,
    TaskInstanceResponse, TaskInstancesLogResponse, TaskResponse, XComCollectionResponse,
    XComResponseNative,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::dag_tasks::{TASK_COLUMNS, require_run, task_rows, tasks_of};
use super::{confirm, local_run, parse_date, rfc3339, rows};
use crate::cli::{RemoteArgs, TasksCommand};
use crate::client::Client;
use crate::credentials;
use crate::output::{Format, print_rows};
use crate::settings::Settings;

/// Columns of a task instance in a table.
const TI_COLUMNS: &[&str] = &[
    "task_id",
    "map_index",
    "state",
    "try_number",
    "start_date",
    "end_date",
    "hostname",
];

/// How often `tasks logs --follow` asks for new lines while the try runs.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(300);

pub async fn run(
    settings: Settings,
    server_before: Option<&str>,
    command: TasksCommand,
) -> Result<ExitCode> {
    let connect = |remote: &RemoteArgs| credentials::connect(remote.or(server_before));
    match command {
        TasksCommand::Test {
            dag_id,
            task_id,
            logical_date,
            map_index,
            env_vars,
            output,
        } => {
            return local_run::tasks_test(
                &settings,
                local_run::TaskTest {
                    dag_id: &dag_id,
                    task_id: &task_id,
                    logical_date: logical_date.as_deref(),
                    map_index,
                    env_vars: env_vars.as_deref(),
                    format: output.format,
                },
            )
            .await;
        }
        TasksCommand::List {
            dag_id,
            output,
            remote,
        } => {
            // By task id, as Airflow's `tasks list`; `dags show` has them in graph order.
            let tasks = tasks_of(&connect(&remote)?, &dag_id).await?;
            print_rows(output.format, TASK_COLUMNS, &task_rows(&tasks)?)?;
        }
        TasksCommand::StatesForDagRun {
            dag_id,
            logical_date_or_run_id,
            output,
            remote,
        } => {
            let client = connect(&remote)?;
            let run = require_run(&client, &dag_id, &logical_date_or_run_id).await?;
            let tis = client
                .list_all::<TaskInstanceCollectionResponse>(
                    &[
                        "api",
                        "v2",
                        "dags",
                        &dag_id,
                        "dagRuns",
                        &run.dag_run_id,
                        "taskInstances",
                    ],
                    &[],
                )
                .await?;
            print_rows(output.format, TI_COLUMNS, &rows(&tis)?)?;
        }
        TasksCommand::State {
            dag_id,
            task_id,
            logical_date_or_run_id,
            map_index,
            remote,
        } => {
            let client = connect(&remote)?;
            let run = require_run(&client, &dag_id, &logical_date_or_run_id).await?;
            let instance = Instance {
                dag_id: &dag_id,
                run_id: &run.dag_run_id,
                task_id: &task_id,
                map_index,
            };
            println!("{}", instance.state(&client).await?);
        }
        TasksCommand::Xcom {
            dag_id,
            run_id,
            task_id,
            key,
            output,
            remote,
        } => {
            let client = connect(&remote)?;
            let run = require_run(&client, &dag_id, &run_id).await?;
            let xcoms = xcoms(&client, &dag_id, &run.dag_run_id, &task_id, key.as_deref()).await?;
            let columns = ["task_id", "map_index", "key", "value"];
            match output.format {
                // A table cell shows a value as JSON (a list with its brackets, a string as
                // it is), not as the comma-joined cells a list of names gets.
                Format::Table => {
                    let table: Vec<Value> = xcoms
                        .iter()
                        .map(|x| {
                            serde_json::json!({
                                "task_id": x.task_id, "map_index": x.map_index,
                                "key": x.key, "value": json_text(&x.value),
                            })
                        })
                        .collect();
                    print_rows(Format::Table, &columns, &table)?;
                }
                format => print_rows(format, &columns, &rows(&xcoms)?)?,
            }
        }
        TasksCommand::Logs {
            dag_id,
            run_id,
            task_id,
            try_number,
            map_index,
            follow,
            remote,
        } => {
            let client = connect(&remote)?;
            let run = require_run(&client, &dag_id, &run_id).await?;
            let instance = Instance {
                dag_id: &dag_id,
                run_id: &run.dag_run_id,
                task_id: &task_id,
                map_index,
            };
            logs(&client, &instance, try_number, follow).await?;
        }
        TasksCommand::Clear {
            dag_id,
            run_id,
            start_date,
            end_date,
            task_regex,
            upstream,
            downstream,
            only_failed,
            only_running,
            yes,
            remote,
        } => {
            let selection = Selection {
                run_id,
                start_date: start_date.as_deref().map(parse_date).transpose()?,
                end_date: end_date.as_deref().map(parse_date).transpose()?,
                task_regex,
                upstream,
                downstream,
                only_failed,
                only_running,
            };
            return clear(&connect(&remote)?, &dag_id, &selection, yes).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A value as a table shows it: a string as it is, anything else as compact JSON.
fn json_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// One task instance, as the API paths name it.
struct Instance<'a> {
    dag_id: &'a str,
    run_id: &'a str,
    task_id: &'a str,
    map_index: i64,
}

impl Instance<'_> {
    /// `…/taskInstances/{task}` (unmapped) or `…/taskInstances/{task}/{map_index}`.
    async fn get(&self, client: &Client) -> Result<TaskInstanceResponse> {
        let map_index = self.map_index.to_string();
        let mut path = vec![
            "api",
            "v2",
            "dags",
            self.dag_id,
            "dagRuns",
            self.run_id,
            "taskInstances",
            self.task_id,
        ];
        if self.map_index >= 0 {
            path.push(&map_index);
        }
        Ok(client.get(&path, &[]).await?)
    }

    /// The instance's state as `tasks state` prints it: `None` (as Airflow) for one that has
    /// no state yet or does not exist in the run; a task the DAG lacks is an error.
    async fn state(&self, client: &Client) -> Result<String> {
        match self.get(client).await {
            Ok(ti) => Ok(ti.state.unwrap_or_else(|| "None".to_string())),
            Err(e) if is_not_found(&e) => {
                let _: TaskResponse = client
                    .get(
                        &["api", "v2", "dags", self.dag_id, "tasks", self.task_id],
                        &[],
                    )
                    .await?;
                Ok("None".to_string())
            }
            Err(e) => Err(e),
        }
    }
}

fn is_not_found(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<crate::client::ClientError>()
        .and_then(crate::client::ClientError::status)
        == Some(reqwest::StatusCode::NOT_FOUND)
}

/// Print a try's log; with `follow`, keep printing new lines until the try has ended.
async fn logs(
    client: &Client,
    instance: &Instance<'_>,
    try_number: Option<u32>,
    follow: bool,
) -> Result<()> {
    let first = instance.get(client).await?;
    let try_number = match try_number {
        Some(n) => n,
        None => u32::try_from(first.try_number.max(1)).unwrap_or(1),
    };
    let try_text = try_number.to_string();
    let path = [
        "api",
        "v2",
        "dags",
        instance.dag_id,
        "dagRuns",
        instance.run_id,
        "taskInstances",
        instance.task_id,
        "logs",
        &try_text,
    ];
    let mut token: Option<String> = None;
    let mut state = first;
    loop {
        // The state is read before the lines: once the try has ended, the lines read after
        // it are all it wrote, so following can stop without losing the last ones.
        let running = follow && try_running(state.state.as_deref(), state.try_number, try_number);
        loop {
            let mut query = vec![("map_index", instance.map_index.to_string())];
            if let Some(token) = &token {
                query.push(("token", token.clone()));
            }
            let page: TaskInstancesLogResponse = client.get(&path, &query).await?;
            for line in &page.content {
                println!("{}", log_line(line));
            }
            match page.continuation_token {
                Some(next) if token.as_ref() != Some(&next) => token = Some(next),
                // Without a new token, asking again would repeat the same lines.
                _ => break,
            }
            if page.content.is_empty() {
                break;
            }
        }
        if !running {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_INTERVAL).await;
        state = instance.get(client).await?;
    }
}

/// Whether the given try of a task instance, now in `state` at try `current_try`, may still
/// write lines.
fn try_running(state: Option<&str>, current_try: i64, try_number: u32) -> bool {
    current_try <= i64::from(try_number)
        && matches!(
            state,
            None | Some("running" | "queued" | "scheduled" | "restarting" | "deferred")
        )
}

/// One structured log line as text: `timestamp event`, as the task wrote it.
fn log_line(line: &StructuredLogMessage) -> String {
    match line.timestamp {
        Some(timestamp) => format!("{} {}", rfc3339(timestamp), line.event),
        None => line.event.clone(),
    }
}

/// A row of `tasks xcom`: one XCom a task pushed, with its value.
#[derive(Serialize)]
struct XcomRow {
    task_id: String,
    map_index: i64,
    key: String,
    value: Value,
}

/// The XComs a task pushed in a run, with their values.
async fn xcoms(
    client: &Client,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    key: Option<&str>,
) -> Result<Vec<XcomRow>> {
    let path = [
        "api",
        "v2",
        "dags",
        dag_id,
        "dagRuns",
        run_id,
        "taskInstances",
        task_id,
        "xcomEntries",
    ];
    let entries = client
        .list_all::<XComCollectionResponse>(&path, &[])
        .await?;
    let mut rows = Vec::new();
    for entry in entries {
        if key.is_some_and(|k| k != entry.key) {
            continue;
        }
        // A listing leaves the values out; each entry has its own.
        let mut one = path.to_vec();
        one.push(&entry.key);
        let full: XComResponseNative = client
            .get(&one, &[("map_index", entry.map_index.to_string())])
            .await?;
        rows.push(XcomRow {
            task_id: task_id.to_string(),
            map_index: entry.map_index,
            key: entry.key,
            value: full.value,
        });
    }
    Ok(rows)
}

/// Which task instances `tasks clear` clears.
struct Selection {
    /// One run; without it, every run (in the range of logical dates, if given).
    run_id: Option<String>,
    start_date: Option<DateTime<Utc>>,
    end_date: Option<DateTime<Utc>>,
    task_regex: Option<String>,
    upstream: bool,
    downstream: bool,
    only_failed: bool,
    only_running: bool,
}

/// `tasks clear`: show what a clear would touch (a dry run), ask, then clear.
async fn clear(
    client: &Client,
    dag_id: &str,
    selection: &Selection,
    yes: bool,
) -> Result<ExitCode> {
    let task_ids = match &selection.task_regex {
        None => None,
        Some(pattern) => {
            let regex = regex::Regex::new(pattern)
                .with_context(|| format!("--task-regex '{pattern}' is not a valid regex"))?;
            let task_ids: Vec<TaskIdSpec> = tasks_of(client, dag_id)
                .await?
                .into_iter()
                .filter(|t| regex.is_match(&t.task_id))
                .map(|t| TaskIdSpec::Id(t.task_id))
                .collect();
            if task_ids.is_empty() {
                bail!("no task of DAG '{dag_id}' matches --task-regex '{pattern}'");
            }
            Some(task_ids)
        }
    };
    // Every field given, each as the server would default it but for the flags: `only_failed`
    // in particular defaults to true there.
    let mut body = ClearTaskInstancesBody {
        dry_run: true,
        start_date: selection.start_date,
        end_date: selection.end_date,
        only_failed: selection.only_failed,
        only_running: selection.only_running,
        reset_dag_runs: false,
        task_ids,
        dag_run_id: selection.run_id.clone(),
        include_upstream: selection.upstream,
        include_downstream: selection.downstream,
        include_future: false,
        include_past: false,
        run_on_latest_version: None,
        note: None,
        prevent_running_task: None,
    };
    let path = ["api", "v2", "dags", dag_id, "clearTaskInstances"];
    let runs = match &selection.run_id {
        Some(run_id) => format!("run '{run_id}'"),
        None => format!("the runs of DAG '{dag_id}'"),
    };
    if !yes {
        let preview: TaskInstanceCollectionResponse = client.post(&path, &body).await?;
        let tis = preview.task_instances;
        if tis.is_empty() {
            eprintln!("nothing to clear in {runs}");
            return Ok(ExitCode::SUCCESS);
        }
        let mut columns = vec!["dag_run_id"];
        columns.extend_from_slice(TI_COLUMNS);
        print_rows(Format::Table, &columns, &rows(&tis)?)?;
        if !confirm(&format!(
            "Clear these {} task instance(s) so they run again?",
            tis.len()
        ))? {
            eprintln!("nothing cleared");
            return Ok(ExitCode::FAILURE);
        }
    }
    body.dry_run = false;
    let answer: TaskInstanceCollectionResponse = client.post(&path, &body).await?;
    let tis = answer.task_instances;
    for ti in &tis {
        if ti.map_index >= 0 {
            println!("{}[{}]", ti.task_id, ti.map_index);
        } else {
            println!("{}", ti.task_id);
        }
    }
    eprintln!("{} task instance(s) of {runs} cleared", tis.len());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(timestamp: Option<&str>, event: &str, stream: &str) -> StructuredLogMessage {
        StructuredLogMessage {
            timestamp: timestamp.map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .expect("timestamp")
                    .to_utc()
            }),
            event: event.to_string(),
            stream: stream.to_string(),
        }
    }

    #[test]
    fn structured_log_lines_read_as_text() {
        for (line, expected) in [
            (
                line(Some("2024-01-01T00:00:00.123Z"), "hello", "stdout"),
                "2024-01-01T00:00:00.123Z hello",
            ),
            (line(None, "no time", "stdout"), "no time"),
            (
                line(Some("2024-01-01T00:00:00Z"), "e", "stderr"),
                "2024-01-01T00:00:00Z e",
            ),
            (
                line(Some("2026-12-02T03:10:32.968870Z"), "micros", "stdout"),
                "2026-12-02T03:10:32.968870Z micros",
            ),
        ] {
            assert_eq!(log_line(&line), expected);
        }
    }

    #[test]
    fn log_timestamps_print_as_the_server_sends_them() {
        for sent in [
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00.100Z",
            "2026-12-02T03:10:32.968870Z",
            "2026-12-02T03:10:32.968870123Z",
        ] {
            let line: StructuredLogMessage = serde_json::from_value(
                serde_json::json!({"timestamp": sent, "event": "e", "stream": "stdout"}),
            )
            .expect("a log line");
            assert_eq!(log_line(&line), format!("{sent} e"));
        }
    }

    #[test]
    fn a_try_runs_until_its_instance_has_a_final_state_or_a_later_try() {
        for (state, current_try, try_number, expected) in [
            (Some("running"), 1, 1, true),
            (Some("queued"), 1, 1, true),
            (None, 0, 1, true),
            (Some("success"), 1, 1, false),
            (Some("up_for_retry"), 1, 1, false),
            (Some("running"), 2, 1, false),
            (Some("failed"), 2, 2, false),
        ] {
            assert_eq!(
                try_running(state, current_try, try_number),
                expected,
                "{state:?} at try {current_try}, asking about try {try_number}"
            );
        }
    }
}
