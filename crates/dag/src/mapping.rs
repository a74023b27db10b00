//! Dynamic task mapping: `expand` rendered into lists, their cross product (the last key
//! varying fastest), and the names one mapped instance binds.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::Task;
use crate::template::{self, TemplateContext};

/// Default `core.max_map_length`: more instances than this fail the task.
pub const DEFAULT_MAX_MAP_LENGTH: usize = 1024;

/// `expand` rendered: each argument with the list it maps over, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Expansion {
    pub lists: Vec<(String, Vec<Value>)>,
}

impl Expansion {
    /// Render the task's `expand` (`None` for an unmapped task). Every key must yield a list;
    /// the error names the key and what it yielded instead.
    pub fn of(task: &Task, ctx: &TemplateContext) -> Option<Result<Expansion, String>> {
        let expand = task.expand.as_ref()?;
        let mut lists = Vec::with_capacity(expand.len());
        for (name, value) in expand {
            let rendered = match template::render_value(value, ctx) {
                Ok(rendered) => rendered,
                Err(e) => {
                    return Some(Err(format!(
                        "cannot render expand '{name}' of task '{}': {e}",
                        task.task_id
                    )));
                }
            };
            match rendered {
                Value::Array(items) => lists.push((name.clone(), items)),
                other => {
                    return Some(Err(format!(
                        "expand '{name}' of task '{}' must yield a list, got {}",
                        task.task_id,
                        kind(&other)
                    )));
                }
            }
        }
        Some(Ok(Expansion { lists }))
    }

    /// How many instances: the product of the list lengths.
    pub fn len(&self) -> usize {
        self.lists
            .iter()
            .map(|(_, items)| items.len())
            .fold(1usize, usize::saturating_mul)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The names instance `map_index` binds, or `None` if the index is out of range.
    pub fn bind(&self, map_index: usize) -> Option<BTreeMap<String, Value>> {
        if map_index >= self.len() {
            return None;
        }
        let mut index = map_index;
        let mut bound = BTreeMap::new();
        for (name, items) in self.lists.iter().rev() {
            bound.insert(name.clone(), items[index % items.len()].clone());
            index /= items.len();
        }
        Some(bound)
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::parse_dag_str;

    fn task(expand: &str) -> Task {
        let text = format!("tasks:\n  - id: m\n    bash: 'echo'\n    expand: {expand}\n");
        let dag = parse_dag_str("m.yaml", &text).expect("valid");
        dag.tasks.into_iter().next().expect("task")
    }

    #[test]
    fn cross_product_with_the_last_key_fastest() {
        let t = task("{b: [1, 2], a: [x, y, z]}");
        let e = Expansion::of(&t, &TemplateContext::default())
            .expect("mapped")
            .expect("ok");
        assert_eq!(e.len(), 6);
        assert_eq!(
            e.bind(0),
            Some([("a".into(), json!("x")), ("b".into(), json!(1))].into())
        );
        assert_eq!(
            e.bind(1),
            Some([("a".into(), json!("y")), ("b".into(), json!(1))].into())
        );
        assert_eq!(
            e.bind(5),
            Some([("a".into(), json!("z")), ("b".into(), json!(2))].into())
        );
        assert_eq!(e.bind(6), None);
    }

    #[test]
    fn templates_yield_lists_or_a_clear_error() {
        let mut ctx = TemplateContext::default();
        ctx.params.insert("items".into(), json!([1, 2, 3]));
        let t = task("{n: '{{ params.items }}'}");
        assert_eq!(
            Expansion::of(&t, &ctx).expect("mapped").map(|e| e.len()),
            Ok(3)
        );
        ctx.params.insert("items".into(), json!("nope"));
        let err = Expansion::of(&t, &ctx)
            .expect("mapped")
            .expect_err("not a list");
        assert!(
            err.contains("expand 'n' of task 'm' must yield a list, got a string"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_list_gives_no_instances() {
        let t = task("{n: []}");
        let e = Expansion::of(&t, &TemplateContext::default())
            .expect("mapped")
            .expect("ok");
        assert!(e.is_empty());
    }
}
