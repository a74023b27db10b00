//! A DAG defined by an Airflow Python file, as its importer serialized it: the same JSON
//! document a `.json` DAG file holds, except that tasks which must run in Python carry an
//! `airflow: {operator, fields, callbacks}` block instead of a kind, and the DAG itself may
//! carry `airflow: {callbacks}` (the Python callbacks it defines). The document goes through
//! the same parser and checks as any DAG file; only the located errors name the Python file.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::check::Problems;
use super::{DagError, ImportError, dag, node};
use crate::model::{AirflowTask, Dag, PythonCallback, TaskKind};

/// The kind key only documents made from Python files may use.
const AIRFLOW_KIND: &str = "airflow";

/// Build and validate the DAG of one document a Python file produced. `path` is the Python
/// file (its `fileloc`), `source` its text, kept with the DAG's version.
pub fn dag_from_python(path: &str, doc: &Value, source: &str) -> Result<Dag, DagError> {
    let mut doc = doc.clone();
    let mut airflow = BTreeMap::new();
    let mut errors = Vec::new();
    let mut dag_callbacks = BTreeSet::new();
    if let Some(root) = doc.as_object_mut() {
        if let Some(block) = root.remove(AIRFLOW_KIND) {
            match dag_block(&block) {
                Ok(callbacks) => dag_callbacks = callbacks,
                Err(message) => errors.push(message),
            }
        }
        take_airflow_blocks(root, "", &mut airflow, &mut errors);
    }
    let dag_label = doc
        .get("dag_id")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let fail = |errors: Vec<ImportError>| DagError { errors };
    if !errors.is_empty() {
        return Err(fail(
            errors
                .into_iter()
                .map(|message| located(path, &dag_label, message))
                .collect(),
        ));
    }
    // The document is checked as JSON text, so that every rule of the format applies; its
    // positions mean nothing to the user, who sees the DAG's id instead.
    let text = serde_json::to_string(&doc).expect("a serde_json::Value always serializes");
    let mut problems = Problems::new(path);
    let built = match node::load_json(&text) {
        Ok(root) => dag::build(&mut problems, path, &root),
        Err(e) => {
            problems.add(e.pos, e.message);
            None
        }
    };
    let mut dag = match built {
        Some(dag) if problems.is_empty() => dag,
        _ => {
            return Err(fail(
                problems
                    .into_sorted()
                    .into_iter()
                    .map(|e| located(path, &dag_label, e.message))
                    .collect(),
            ));
        }
    };
    for task in &mut dag.tasks {
        if let Some(spec) = airflow.remove(&task.task_id) {
            task.kind = TaskKind::Airflow(spec);
        }
    }
    dag.python_source = Some(source.to_string());
    dag.python_callbacks = dag_callbacks;
    Ok(dag)
}

/// An error about the DAG `dag_id` defined in the Python file `path`.
fn located(path: &str, dag_id: &str, message: String) -> ImportError {
    ImportError {
        file: path.to_string(),
        line: 1,
        column: 1,
        message: format!("DAG '{dag_id}': {message}"),
    }
}

/// Replace each task's `airflow` block by a placeholder `python` kind (so the task keys that
/// need a process kind, such as `branch`, are accepted), remembering the block by full id.
fn take_airflow_blocks(
    level: &mut Map<String, Value>,
    prefix: &str,
    found: &mut BTreeMap<String, AirflowTask>,
    errors: &mut Vec<String>,
) {
    if let Some(Value::Array(tasks)) = level.get_mut("tasks") {
        for task in tasks.iter_mut().filter_map(Value::as_object_mut) {
            let Some(block) = task.remove(AIRFLOW_KIND) else {
                continue;
            };
            let id = task.get("id").and_then(Value::as_str).unwrap_or("?");
            let full_id = format!("{prefix}{id}");
            match airflow_task(&block) {
                Ok(spec) => {
                    found.insert(full_id, spec);
                }
                Err(message) => errors.push(format!("task '{full_id}': {message}")),
            }
            task.insert("python".into(), serde_json::json!({"code": ""}));
        }
    }
    if let Some(Value::Array(groups)) = level.get_mut("groups") {
        for group in groups.iter_mut().filter_map(Value::as_object_mut) {
            let id = group.get("id").and_then(Value::as_str).unwrap_or("?");
            let prefix = format!("{prefix}{id}.");
            take_airflow_blocks(group, &prefix, found, errors);
        }
    }
}

fn airflow_task(block: &Value) -> Result<AirflowTask, String> {
    let Some(map) = block.as_object() else {
        return Err("its 'airflow' block must be a mapping".into());
    };
    let operator = match map.get("operator") {
        Some(Value::String(name)) => name.clone(),
        _ => return Err("its 'airflow' block has no 'operator' name".into()),
    };
    let fields = match map.get("fields") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(fields)) => fields.clone().into_iter().collect(),
        Some(_) => return Err("its 'airflow.fields' must be a mapping".into()),
    };
    if let Some(unknown) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "operator" | "fields" | "callbacks"))
    {
        return Err(format!(
            "its 'airflow' block has an unknown key '{unknown}'"
        ));
    }
    let callbacks = callbacks(map.get("callbacks"), "its 'airflow.callbacks'")?;
    Ok(AirflowTask {
        operator,
        fields,
        callbacks,
    })
}

/// The DAG's own `airflow` block: `{callbacks: [names]}`.
fn dag_block(block: &Value) -> Result<BTreeSet<PythonCallback>, String> {
    let Some(map) = block.as_object() else {
        return Err("the DAG's 'airflow' block must be a mapping".into());
    };
    if let Some(unknown) = map.keys().find(|k| k.as_str() != "callbacks") {
        return Err(format!(
            "the DAG's 'airflow' block has an unknown key '{unknown}'"
        ));
    }
    let found = callbacks(map.get("callbacks"), "the DAG's 'airflow.callbacks'")?;
    match found.iter().find(|c| {
        !matches!(
            c,
            PythonCallback::OnSuccessCallback | PythonCallback::OnFailureCallback
        )
    }) {
        Some(other) => Err(format!(
            "the DAG's 'airflow.callbacks' names {other}, which only a task has"
        )),
        None => Ok(found),
    }
}

/// A list of callback names (`on_failure_callback`, …); `what` names it in errors.
fn callbacks(value: Option<&Value>, what: &str) -> Result<BTreeSet<PythonCallback>, String> {
    let items = match value {
        None | Some(Value::Null) => return Ok(BTreeSet::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(format!("{what} must be a list of callback names")),
    };
    items
        .iter()
        .map(|item| {
            item.as_str()
                .and_then(PythonCallback::from_name)
                .ok_or_else(|| format!("{what} has an unknown callback {item}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn airflow_blocks_become_airflow_tasks_and_the_rest_is_checked_as_usual() {
        let doc = json!({
            "dag_id": "etl",
            "schedule": "@daily",
            "start_date": "2024-01-01T00:00:00+00:00",
            "airflow": {"callbacks": ["on_success_callback"]},
            "tasks": [
                {"id": "extract", "airflow": {"operator": "PythonOperator", "fields": {"op_kwargs": {"d": "{{ ds }}"}},
                    "callbacks": ["on_retry_callback", "on_failure_callback"]}},
                {"id": "load", "bash": "echo {{ ds }}", "depends_on": ["extract"]}
            ],
            "groups": [{"id": "g", "tasks": [
                {"id": "pick", "airflow": {"operator": "BranchPythonOperator"}, "branch": true, "depends_on": ["load"]}
            ]}]
        });
        let dag = dag_from_python("/dags/etl.py", &doc, "source").expect("valid");
        assert_eq!(dag.python_source.as_deref(), Some("source"));
        assert_eq!(dag.fileloc, "/dags/etl.py");
        let extract = dag.task("extract").expect("extract");
        assert!(
            matches!(&extract.kind, TaskKind::Airflow(t) if t.operator == "PythonOperator" && t.fields.contains_key("op_kwargs"))
        );
        let TaskKind::Airflow(extract) = &extract.kind else {
            unreachable!("checked above")
        };
        assert_eq!(
            extract.callbacks,
            BTreeSet::from([
                PythonCallback::OnFailureCallback,
                PythonCallback::OnRetryCallback
            ])
        );
        assert_eq!(
            dag.python_callbacks,
            BTreeSet::from([PythonCallback::OnSuccessCallback])
        );
        let pick = dag.task("g.pick").expect("grouped task");
        assert!(pick.branch);
        assert_eq!(pick.kind.operator(), "BranchPythonOperator");
        assert!(matches!(
            dag.task("load").expect("load").kind,
            TaskKind::Bash { .. }
        ));
    }

    #[test]
    fn callback_names_are_checked() {
        let doc = |dag: Value, task: Value| {
            json!({"dag_id": "cb", "airflow": dag, "tasks": [
                {"id": "a", "airflow": {"operator": "PythonOperator", "callbacks": task}}
            ]})
        };
        let cases = [
            (
                doc(json!({"callbacks": ["on_retry_callback"]}), json!([])),
                "names on_retry_callback, which only a task has",
            ),
            (
                doc(json!({"callbacks": []}), json!(["on_skipped_callback"])),
                "task 'a': its 'airflow.callbacks' has an unknown callback \"on_skipped_callback\"",
            ),
            (
                doc(json!({"callback": []}), json!([])),
                "the DAG's 'airflow' block has an unknown key 'callback'",
            ),
            (
                doc(json!({}), json!("on_failure_callback")),
                "its 'airflow.callbacks' must be a list of callback names",
            ),
        ];
        for (doc, expected) in cases {
            let err = dag_from_python("/dags/cb.py", &doc, "").expect_err(expected);
            assert!(err.to_string().contains(expected), "{err}");
        }
        let fine = dag_from_python("/dags/cb.py", &doc(json!({}), json!(null)), "").expect("valid");
        assert!(fine.python_callbacks.is_empty());
    }

    #[test]
    fn a_version_stored_before_callbacks_were_recorded_still_loads() {
        let doc = json!({"dag_id": "old", "tasks": [{"id": "a", "airflow": {"operator": "PythonOperator"}}]});
        let dag = dag_from_python("/dags/old.py", &doc, "").expect("valid");
        // Without callbacks the version's JSON is what it was before they were recorded.
        let stored = serde_json::to_value(&dag).expect("serializes");
        assert!(stored.get("python_callbacks").is_none(), "{stored}");
        assert!(
            stored["tasks"][0]["kind"].get("callbacks").is_none(),
            "{stored}"
        );
        let loaded: Dag = serde_json::from_value(stored).expect("an old version loads");
        assert_eq!(loaded, dag);
    }

    #[test]
    fn a_bad_document_is_an_error_naming_the_python_file_and_the_dag() {
        let doc = json!({"dag_id": "etl", "tasks": [{"id": "a", "bash": "true", "depends_on": ["nope"]}]});
        let err = dag_from_python("/dags/etl.py", &doc, "").expect_err("unknown upstream");
        let text = err.to_string();
        assert!(text.starts_with("/dags/etl.py:1:1: DAG 'etl': "), "{text}");
        assert!(text.contains("nope"), "{text}");
    }
}
