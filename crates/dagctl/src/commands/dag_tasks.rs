//! The tasks of a DAG as the server lists them, and the columns a table shows of them: what
//! `dags show`, `tasks list` and `tasks clear` share.

use anyhow::Result;
use api::models::{TaskCollectionResponse, TaskResponse};

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

/// The tasks of a DAG (`GET /dags/{id}/tasks`, not paged by the API).
pub async fn tasks_of(client: &Client, dag_id: &str) -> Result<Vec<TaskResponse>> {
    let answer: TaskCollectionResponse = client
        .get(&["api", "v2", "dags", dag_id, "tasks"], &[])
        .await?;
    Ok(answer.tasks)
}
