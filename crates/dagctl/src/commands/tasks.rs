//! `dagctl tasks …`: tasks and task instances through the server's REST API (list, states
//! of a run, XComs, logs with `--follow`, clear); `tasks test` runs locally.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use super::dags::{tasks_of, text};
use super::{confirm, local_run};
use crate::TasksCommand;
use crate::client::Client;
use crate::credentials;
use crate::output::{Format, print_rows};
use crate::settings::Settings;

/// Columns of a task in a table.
pub const TASK_COLUMNS: &[&str] = &[
    "task_id",
    "operator_name",
    "downstream_task_ids",
    "trigger_rule",
    "retries",
    "pool",
];

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

pub async fn run(settings: Settings, server: &str, command: TasksCommand) -> Result<ExitCode> {
    if let TasksCommand::Test {
        dag_id,
        task_id,
        logical_date,
        output,
    } = command
    {
        return local_run::tasks_test(
            &settings,
            &dag_id,
            &task_id,
            logical_date.as_deref(),
            output.format,
        )
        .await;
    }
    let client = credentials::connect(server)?;
    match command {
        TasksCommand::Test { .. } => unreachable!("local command returned above"),
        TasksCommand::List { dag_id, output } => {
            let tasks = tasks_of(&client, &dag_id).await?;
            print_rows(output.format, TASK_COLUMNS, &tasks)?;
        }
        TasksCommand::StatesForDagRun {
            dag_id,
            run_id,
            output,
        } => {
            let tis = client
                .list_all(
                    &[
                        "api",
                        "v2",
                        "dags",
                        &dag_id,
                        "dagRuns",
                        &run_id,
                        "taskInstances",
                    ],
                    &[],
                    "task_instances",
                )
                .await?;
            print_rows(output.format, TI_COLUMNS, &tis)?;
        }
        TasksCommand::Xcom {
            dag_id,
            run_id,
            task_id,
            key,
            output,
        } => {
            let rows = xcoms(&client, &dag_id, &run_id, &task_id, key.as_deref()).await?;
            print_rows(
                output.format,
                &["task_id", "map_index", "key", "value"],
                &rows,
            )?;
        }
        TasksCommand::Logs {
            dag_id,
            run_id,
            task_id,
            try_number,
            map_index,
            follow,
        } => {
            let instance = Instance {
                dag_id: &dag_id,
                run_id: &run_id,
                task_id: &task_id,
                map_index,
            };
            logs(&client, &instance, try_number, follow).await?;
        }
        TasksCommand::Clear {
            dag_id,
            run_id,
            task_regex,
            downstream,
            only_failed,
            yes,
        } => {
            return clear(
                &client,
                &dag_id,
                &run_id,
                task_regex.as_deref(),
                downstream,
                only_failed,
                yes,
            )
            .await;
        }
    }
    Ok(ExitCode::SUCCESS)
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
    async fn get(&self, client: &Client) -> Result<Value> {
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
        None => first
            .get("try_number")
            .and_then(Value::as_u64)
            .map_or(1, |n| n.max(1) as u32),
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
        let running = follow && try_running(&state, try_number);
        loop {
            let mut query = vec![("map_index", instance.map_index.to_string())];
            if let Some(token) = &token {
                query.push(("token", token.clone()));
            }
            let page: Value = client.get(&path, &query).await?;
            let lines = page
                .get("content")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for line in &lines {
                println!("{}", log_line(line));
            }
            match page.get("continuation_token").and_then(Value::as_str) {
                Some(next) if token.as_deref() != Some(next) => token = Some(next.to_string()),
                // Without a new token, asking again would repeat the same lines.
                _ => break,
            }
            if lines.is_empty() {
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

/// Whether the given try of a task instance may still write lines.
fn try_running(ti: &Value, try_number: u32) -> bool {
    let current_try = ti.get("try_number").and_then(Value::as_u64).unwrap_or(0);
    let state = ti.get("state").and_then(Value::as_str);
    current_try <= u64::from(try_number)
        && matches!(
            state,
            None | Some("running" | "queued" | "scheduled" | "restarting" | "deferred")
        )
}

/// One structured log line as text: `timestamp event`, as the task wrote it.
fn log_line(line: &Value) -> String {
    let Some(map) = line.as_object() else {
        return line
            .as_str()
            .map_or_else(|| line.to_string(), str::to_string);
    };
    let event = map.get("event").and_then(Value::as_str).unwrap_or_default();
    match map.get("timestamp").and_then(Value::as_str) {
        Some(timestamp) => format!("{timestamp} {event}"),
        None => event.to_string(),
    }
}

/// The XComs a task pushed in a run, with their values.
async fn xcoms(
    client: &Client,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    key: Option<&str>,
) -> Result<Vec<Value>> {
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
    let entries = client.list_all(&path, &[], "xcom_entries").await?;
    let mut rows = Vec::new();
    for entry in entries {
        let entry_key = text(&entry, "key").to_string();
        if key.is_some_and(|k| k != entry_key) {
            continue;
        }
        let map_index = entry.get("map_index").and_then(Value::as_i64).unwrap_or(-1);
        // A listing may leave the values out; each entry then has them.
        let value = match entry.get("value") {
            Some(value) => value.clone(),
            None => {
                let mut one = path.to_vec();
                one.push(&entry_key);
                let full: Value = client
                    .get(&one, &[("map_index", map_index.to_string())])
                    .await?;
                full.get("value").cloned().unwrap_or(Value::Null)
            }
        };
        rows.push(
            json!({"task_id": task_id, "map_index": map_index, "key": entry_key, "value": value}),
        );
    }
    Ok(rows)
}

/// `tasks clear`: show what a clear would touch (a dry run), ask, then clear.
async fn clear(
    client: &Client,
    dag_id: &str,
    run_id: &str,
    task_regex: Option<&str>,
    downstream: bool,
    only_failed: bool,
    yes: bool,
) -> Result<ExitCode> {
    let mut body = json!({
        "dag_run_id": run_id,
        "include_downstream": downstream,
        "only_failed": only_failed,
    });
    if let Some(pattern) = task_regex {
        let regex = regex::Regex::new(pattern)
            .with_context(|| format!("--task-regex '{pattern}' is not a valid regex"))?;
        let task_ids: Vec<String> = tasks_of(client, dag_id)
            .await?
            .iter()
            .map(|t| text(t, "task_id").to_string())
            .filter(|id| regex.is_match(id))
            .collect();
        if task_ids.is_empty() {
            bail!("no task of DAG '{dag_id}' matches --task-regex '{pattern}'");
        }
        body["task_ids"] = json!(task_ids);
    }
    let path = ["api", "v2", "dags", dag_id, "clearTaskInstances"];
    if !yes {
        body["dry_run"] = json!(true);
        let preview: Value = client.post(&path, &body).await?;
        let tis = cleared(&preview)?;
        if tis.is_empty() {
            eprintln!("nothing to clear in run '{run_id}'");
            return Ok(ExitCode::SUCCESS);
        }
        print_rows(Format::Table, TI_COLUMNS, &tis)?;
        if !confirm(&format!(
            "Clear these {} task instance(s) so they run again?",
            tis.len()
        ))? {
            eprintln!("nothing cleared");
            return Ok(ExitCode::FAILURE);
        }
    }
    body["dry_run"] = json!(false);
    let answer: Value = client.post(&path, &body).await?;
    let tis = cleared(&answer)?;
    for ti in &tis {
        let index = ti.get("map_index").and_then(Value::as_i64).unwrap_or(-1);
        if index >= 0 {
            println!("{}[{index}]", text(ti, "task_id"));
        } else {
            println!("{}", text(ti, "task_id"));
        }
    }
    eprintln!("{} task instance(s) of run '{run_id}' cleared", tis.len());
    Ok(ExitCode::SUCCESS)
}

fn cleared(answer: &Value) -> Result<Vec<Value>> {
    answer
        .get("task_instances")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| anyhow!("the clear answer holds no task_instances list"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_log_lines_read_as_text() {
        for (line, expected) in [
            (
                json!({"timestamp": "2024-01-01T00:00:00.123Z", "event": "hello"}),
                "2024-01-01T00:00:00.123Z hello",
            ),
            (json!({"event": "no time"}), "no time"),
            (
                json!({"timestamp": "t", "event": "e", "stream": "stderr"}),
                "t e",
            ),
            (json!("plain"), "plain"),
        ] {
            assert_eq!(log_line(&line), expected);
        }
    }

    #[test]
    fn a_try_runs_until_its_instance_has_a_final_state_or_a_later_try() {
        for (ti, try_number, expected) in [
            (json!({"state": "running", "try_number": 1}), 1, true),
            (json!({"state": "queued", "try_number": 1}), 1, true),
            (json!({"state": null, "try_number": 0}), 1, true),
            (json!({"state": "success", "try_number": 1}), 1, false),
            (json!({"state": "up_for_retry", "try_number": 1}), 1, false),
            (json!({"state": "running", "try_number": 2}), 1, false),
            (json!({"state": "failed", "try_number": 2}), 2, false),
        ] {
            assert_eq!(
                try_running(&ti, try_number),
                expected,
                "{ti} try {try_number}"
            );
        }
    }
}
