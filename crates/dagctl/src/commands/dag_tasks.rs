//! What `dags …` and `tasks …` share: the tasks of a DAG as the server lists them (by id, as
//! Airflow's `tasks list`, or in graph order), the columns a table shows of them, and finding
//! a run by its id or its logical date, as Airflow's `LOGICAL_DATE_OR_RUN_ID` arguments do.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use api::models::{DAGRunCollectionResponse, DAGRunResponse, TaskCollectionResponse, TaskResponse};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use reqwest::StatusCode;
use serde_json::Value;

use super::rfc3339;
use crate::client::Client;

/// Columns of a task in a table.
pub const TASK_COLUMNS: &[&str] = &[
    "task_id",
    "operator_name",
    "downstream_task_ids",
    "trigger_rule",
    "retries",
    "pool",
];

/// Fields of a task that count things. Airflow's OpenAPI document types them as numbers, so
/// the API sends them as floats (`0.0`); they print as the integers they are.
const COUNT_FIELDS: [&str; 3] = ["retries", "pool_slots", "priority_weight"];

/// The tasks of a DAG (`GET /dags/{id}/tasks`, not paged by the API), by task id.
pub async fn tasks_of(client: &Client, dag_id: &str) -> Result<Vec<TaskResponse>> {
    let answer: TaskCollectionResponse = client
        .get(&["api", "v2", "dags", dag_id, "tasks"], &[])
        .await?;
    Ok(answer.tasks)
}

/// Tasks as the JSON rows listings print, counts as integers.
pub fn task_rows(tasks: &[TaskResponse]) -> Result<Vec<Value>> {
    let mut rows = super::rows(tasks)?;
    for row in &mut rows {
        for field in COUNT_FIELDS {
            if let Some(value) = row.get_mut(field) {
                *value = whole_number(value.take());
            }
        }
    }
    Ok(rows)
}

/// A float with no fractional part as an integer; anything else as it is.
fn whole_number(value: Value) -> Value {
    match value.as_f64() {
        Some(f) if value.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
        _ => value,
    }
}

/// The tasks in graph order: every task after all its upstream tasks, ties broken by task id
/// (the order the server lists them in). A cycle, which a valid DAG cannot have, leaves the
/// tasks on it at the end in the server's order.
pub fn graph_order(tasks: Vec<TaskResponse>) -> Vec<TaskResponse> {
    let ids: BTreeSet<&str> = tasks.iter().map(|t| t.task_id.as_str()).collect();
    let mut upstream_count: BTreeMap<&str, usize> = ids.iter().map(|id| (*id, 0)).collect();
    for task in &tasks {
        for down in &task.downstream_task_ids {
            if let Some(count) = upstream_count.get_mut(down.as_str()) {
                *count += 1;
            }
        }
    }
    let downstream: BTreeMap<&str, &[String]> = tasks
        .iter()
        .map(|t| (t.task_id.as_str(), t.downstream_task_ids.as_slice()))
        .collect();
    let mut ready: BTreeSet<&str> = upstream_count
        .iter()
        .filter(|(_, count)| **count == 0)
        .map(|(id, _)| *id)
        .collect();
    let mut order: Vec<String> = Vec::with_capacity(tasks.len());
    while let Some(id) = ready.pop_first() {
        order.push(id.to_string());
        for down in downstream.get(id).copied().unwrap_or_default() {
            if let Some(count) = upstream_count.get_mut(down.as_str()) {
                *count -= 1;
                if *count == 0 {
                    ready.insert(down.as_str());
                }
            }
        }
    }
    let position: BTreeMap<String, usize> = order
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, i))
        .collect();
    let mut tasks = tasks;
    tasks.sort_by_key(|t| position.get(&t.task_id).copied().unwrap_or(usize::MAX));
    tasks
}

/// The run of `dag_id` that `text` names: a run id, else a logical date (RFC 3339, a date and
/// time without offset in UTC, or YYYY-MM-DD for midnight UTC). `None` if there is no such
/// run; a missing DAG is an error.
pub async fn find_run(client: &Client, dag_id: &str, text: &str) -> Result<Option<DAGRunResponse>> {
    let by_id: Option<DAGRunResponse> = match client
        .get(&["api", "v2", "dags", dag_id, "dagRuns", text], &[])
        .await
    {
        Ok(run) => Some(run),
        Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => None,
        Err(e) => return Err(e.into()),
    };
    if by_id.is_some() {
        return Ok(by_id);
    }
    // A 404 may mean the DAG is missing: that is an error, not "no run".
    let _: api::models::DAGResponse = client.get(&["api", "v2", "dags", dag_id], &[]).await?;
    let Some(logical_date) = parse_logical_date(text) else {
        return Ok(None);
    };
    let at = rfc3339(logical_date);
    let runs: DAGRunCollectionResponse = client
        .get(
            &["api", "v2", "dags", dag_id, "dagRuns"],
            &[
                ("logical_date_gte", at.clone()),
                ("logical_date_lte", at),
                ("limit", "1".to_string()),
            ],
        )
        .await?;
    Ok(runs
        .dag_runs
        .into_iter()
        .find(|run| run.logical_date == Some(logical_date)))
}

/// Like [`find_run`], but a missing run is an error naming what was looked for.
pub async fn require_run(client: &Client, dag_id: &str, text: &str) -> Result<DAGRunResponse> {
    find_run(client, dag_id, text).await?.ok_or_else(|| {
        anyhow::anyhow!("DAG '{dag_id}' has no run with run id or logical date '{text}'")
    })
}

/// A logical date as Airflow's CLI takes it.
fn parse_logical_date(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, downstream: &[&str]) -> TaskResponse {
        serde_json::from_value(serde_json::json!({
            "task_id": id, "task_display_name": id, "owner": null, "start_date": null,
            "end_date": null, "trigger_rule": "all_success", "depends_on_past": false,
            "wait_for_downstream": false, "retries": 2.0, "queue": "default",
            "pool": "default_pool", "pool_slots": 1.0, "execution_timeout": null,
            "retry_delay": null, "retry_exponential_backoff": 0.0, "priority_weight": 1.0,
            "weight_rule": "downstream", "ui_color": "#fff", "ui_fgcolor": "#000",
            "template_fields": [], "downstream_task_ids": downstream, "doc_md": null,
            "operator_name": "BashOperator", "params": null, "class_ref": null,
            "is_mapped": false, "extra_links": [],
        }))
        .expect("a task")
    }

    fn ids(tasks: &[TaskResponse]) -> Vec<&str> {
        tasks.iter().map(|t| t.task_id.as_str()).collect()
    }

    #[test]
    fn graph_order_puts_upstream_first_and_breaks_ties_by_id() {
        // z >> m >> [b, a] >> end, listed by id as the server does.
        let tasks = vec![
            task("a", &["end"]),
            task("b", &["end"]),
            task("end", &[]),
            task("lonely", &[]),
            task("m", &["b", "a"]),
            task("z", &["m"]),
        ];
        assert_eq!(
            ids(&graph_order(tasks)),
            ["lonely", "z", "m", "a", "b", "end"]
        );
        let cycle = vec![task("a", &["b"]), task("b", &["a"]), task("c", &[])];
        assert_eq!(ids(&graph_order(cycle)), ["c", "a", "b"]);
    }

    #[test]
    fn counts_print_as_integers() {
        let rows = task_rows(&[task("a", &[])]).expect("rows");
        assert_eq!(rows[0]["retries"], serde_json::json!(2));
        assert!(rows[0]["retries"].is_i64());
        assert!(rows[0]["pool_slots"].is_i64());
        assert!(rows[0]["priority_weight"].is_i64());
        assert_eq!(whole_number(serde_json::json!(1.5)), serde_json::json!(1.5));
    }

    #[test]
    fn logical_dates_read_as_airflow_writes_them() {
        let midnight = "2024-03-01T00:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("time");
        for text in [
            "2024-03-01",
            "2024-03-01T00:00:00",
            "2024-03-01 00:00:00",
            "2024-03-01T00:00:00+00:00",
            "2024-03-01T01:00:00+01:00",
        ] {
            assert_eq!(parse_logical_date(text), Some(midnight), "{text}");
        }
        assert_eq!(
            parse_logical_date("manual__2024-03-01T00:00:00+00:00"),
            None
        );
    }
}
