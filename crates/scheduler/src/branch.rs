//! Branching: what a `switch` task chooses, which tasks a branch follows, and why a choice is
//! refused. Pure functions used by `decide`.

use std::collections::HashSet;

use dag::model::Semantics;
use dag::{DagGraph, SwitchCase, template};
use serde_json::Value;

/// The ids a branch's return value names: a string is one id, a list is several, null or an
/// empty list is none.
pub fn chosen_ids(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(id) => Ok(vec![id.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(id) => Ok(id.clone()),
                other => Err(format!("a branch must name task ids, got {other}")),
            })
            .collect(),
        other => Err(format!(
            "a branch must return a task id or a list of task ids, got {other}"
        )),
    }
}

/// The set a branch follows: the chosen tasks (a group means its roots) and everything
/// downstream of them. Which ids a branch may name is the DAG's rule ([`Dag::semantics`]):
///
/// - dag-format.md: only direct downstream tasks; anything else is the error, which says
///   what the branch could have named.
/// - Airflow 3.3 (`SkipMixin.skip_all_except`): any task of the DAG; an id that is no task
///   (nor group) of the DAG fails the branch. As everywhere, a direct downstream task is
///   skipped unless it is in the set, so naming a task further down skips the direct
///   downstream tasks on the way to it, and it then runs only if its trigger rule allows.
///
/// [`Dag::semantics`]: dag::Dag::semantics
pub fn followed(
    graph: &DagGraph,
    branch: &str,
    chosen: &[String],
) -> Result<HashSet<String>, String> {
    let semantics = graph.dag().semantics();
    let direct: Vec<&str> = graph.downstream(branch);
    let mut set = HashSet::new();
    for id in chosen {
        let targets = match graph.dag().groups.iter().find(|g| &g.group_id == id) {
            Some(group) => group
                .tasks
                .iter()
                .filter(|t| {
                    graph
                        .upstream(t)
                        .iter()
                        .all(|up| !group.tasks.iter().any(|member| member == up))
                })
                .cloned()
                .collect(),
            None => vec![id.clone()],
        };
        for target in targets {
            let allowed = match semantics {
                Semantics::Updraft => direct.contains(&target.as_str()),
                Semantics::Airflow => graph.task(&target).is_some(),
            };
            if !allowed {
                return Err(refusal(semantics, branch, id, &direct));
            }
            set.extend(graph.descendants(&target).into_iter().map(str::to_string));
            set.insert(target);
        }
    }
    Ok(set)
}

/// Why a branch may not name `id`, under the DAG's rule.
fn refusal(semantics: Semantics, branch: &str, id: &str, direct: &[&str]) -> String {
    match semantics {
        Semantics::Updraft => format!(
            "branch '{branch}' chose '{id}', which is not among its direct downstream tasks ({})",
            if direct.is_empty() {
                "it has none".to_string()
            } else {
                direct.join(", ")
            }
        ),
        Semantics::Airflow => {
            format!("branch '{branch}' chose '{id}', which is not a task of the DAG")
        }
    }
}

/// Evaluate a `switch`: the first case whose `if` is true (or the `else`), `None` when none
/// holds.
pub fn evaluate_switch<'c>(
    cases: &'c [SwitchCase],
    context: &template::TemplateContext,
) -> Result<Option<&'c SwitchCase>, String> {
    for case in cases {
        let taken = match &case.condition {
            None => true,
            Some(expr) => truthy(
                &template::eval_expr(expr, context)
                    .map_err(|e| format!("cannot evaluate switch condition '{expr}': {e}"))?,
            ),
        };
        if taken {
            return Ok(Some(case));
        }
    }
    Ok(None)
}

/// Python's truthiness, which Airflow users expect of conditions.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    const DAG: &str = "tasks:\n  - {id: pick, bash: 'echo a', branch: true}\n  - {id: a, bash: 'true'}\n  - {id: b, bash: 'true'}\n  - {id: after_a, bash: 'true', depends_on: [a]}\n  - {id: join, bash: 'true', depends_on: [after_a, b, pick]}\ngroups:\n  - id: g\n    tasks:\n      - {id: first, bash: 'true'}\n      - {id: second, bash: 'true', depends_on: [first]}\nedges:\n  - pick >> [a, b, g]\n";

    /// The branch DAG as a YAML file gives it (dag-format.md's rules).
    fn graph() -> DagGraph {
        DagGraph::new(Arc::new(dag::parse_dag_str("b.yaml", DAG).expect("valid")))
    }

    /// The same DAG as if an Airflow Python file had defined it (Airflow's rules).
    fn airflow_graph() -> DagGraph {
        let mut dag = dag::parse_dag_str("b.yaml", DAG).expect("valid");
        dag.python_source = Some("# an Airflow file".into());
        assert_eq!(dag.semantics(), Semantics::Airflow);
        DagGraph::new(Arc::new(dag))
    }

    fn sorted(set: HashSet<String>) -> Vec<String> {
        let mut ids: Vec<_> = set.into_iter().collect();
        ids.sort();
        ids
    }

    #[test]
    fn chosen_ids_accept_the_documented_shapes() {
        assert_eq!(chosen_ids(&json!("a")), Ok(vec!["a".to_string()]));
        assert_eq!(chosen_ids(&json!(["a", "b"])).map(|v| v.len()), Ok(2));
        assert_eq!(chosen_ids(&json!(null)), Ok(vec![]));
        assert!(chosen_ids(&json!(3)).is_err());
    }

    #[test]
    fn followed_set_includes_everything_downstream_of_the_choice() {
        let set = followed(&graph(), "pick", &["a".into()]).expect("valid");
        assert_eq!(sorted(set), ["a", "after_a", "join"]);
    }

    #[test]
    fn a_group_means_its_roots() {
        let set = followed(&graph(), "pick", &["g".into()]).expect("valid");
        assert!(set.contains("g.first") && set.contains("g.second"));
    }

    #[test]
    fn both_rules_follow_a_direct_choice_alike() {
        for graph in [graph(), airflow_graph()] {
            let set = followed(&graph, "pick", &["a".into(), "g".into()]).expect("valid");
            assert_eq!(
                sorted(set),
                ["a", "after_a", "g.first", "g.second", "join"],
                "{:?}",
                graph.dag().semantics()
            );
        }
    }

    #[test]
    fn airflow_follows_a_task_further_down() {
        // `after_a` is below `a`: a, b and g are then all skipped; `join` is followed (and
        // not skipped as a direct downstream) because it is below `after_a`.
        let set = followed(&airflow_graph(), "pick", &["after_a".into()]).expect("valid");
        assert_eq!(sorted(set), ["after_a", "join"]);
        // A task inside a group, named by its full id: every direct downstream is skipped.
        let set = followed(&airflow_graph(), "pick", &["g.second".into()]).expect("valid");
        assert_eq!(sorted(set), ["g.second"]);
    }

    #[test]
    fn airflow_refuses_an_id_that_is_no_task_of_the_dag() {
        let err = followed(&airflow_graph(), "pick", &["nowhere".into()]).expect_err("refused");
        assert!(
            err.contains("'nowhere'") && err.contains("not a task of the DAG"),
            "{err}"
        );
    }

    #[test]
    fn naming_a_task_that_is_not_a_direct_downstream_is_refused() {
        for id in ["after_a", "nowhere"] {
            let err = followed(&graph(), "pick", &[id.into()]).expect_err("refused");
            assert!(
                err.contains(&format!("'{id}'")) && err.contains("direct downstream"),
                "{err}"
            );
        }
    }
}
