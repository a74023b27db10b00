//! Run parameters: the DAG's `params` defaults merged with a trigger's `conf`, each checked
//! against its declared type, enum and bounds, so a bad `conf` is refused before any run.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::model::{Dag, Param};

/// The params a run sees: every declared param (conf value, else default), plus conf keys
/// that declare no param. The error names the param and what was wrong with its value.
pub fn resolve_params(
    dag: &Dag,
    conf: &Map<String, Value>,
) -> Result<BTreeMap<String, Value>, String> {
    let mut resolved: BTreeMap<String, Value> = conf.clone().into_iter().collect();
    for (name, param) in &dag.params {
        let value = conf
            .get(name)
            .cloned()
            .unwrap_or_else(|| param.default.clone());
        check(name, param, &value)?;
        resolved.insert(name.clone(), value);
    }
    Ok(resolved)
}

fn check(name: &str, param: &Param, value: &Value) -> Result<(), String> {
    if let Some(kind) = &param.kind {
        if value.is_null() && kind != "null" {
            return Err(format!(
                "param '{name}' needs a value of type {kind}: it has no default and none was given in conf"
            ));
        }
        if !has_type(value, kind) {
            return Err(format!(
                "param '{name}' must be of type {kind}, got {}",
                short(value)
            ));
        }
    }
    if let Some(choices) = param.choices.as_ref().filter(|c| !c.contains(value)) {
        let allowed: Vec<String> = choices.iter().map(short).collect();
        return Err(format!(
            "param '{name}' must be one of {}, got {}",
            allowed.join(", "),
            short(value)
        ));
    }
    if let Some(number) = value.as_f64() {
        if let Some(min) = param.minimum.filter(|min| number < *min) {
            return Err(format!(
                "param '{name}' must be at least {min}, got {number}"
            ));
        }
        if let Some(max) = param.maximum.filter(|max| number > *max) {
            return Err(format!(
                "param '{name}' must be at most {max}, got {number}"
            ));
        }
    }
    Ok(())
}

/// JSON Schema's type names, as Airflow's `Param(type=…)` uses them.
fn has_type(value: &Value, kind: &str) -> bool {
    match kind {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "null" => value.is_null(),
        _ => true,
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 60 {
        format!("{}…", &text[..text.floor_char_boundary(60)])
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::parse_dag_str;

    fn check_conf(conf: Value, expected: Result<Value, &str>) {
        let dag = parse_dag_str(
            "p.yaml",
            "params:\n  rows: {default: 10, type: integer, minimum: 0, maximum: 1000}\n  mode: {default: fast, enum: [fast, slow]}\n  label: plain\n  target: {type: string}\ntasks:\n  - {id: a, bash: 'true'}\n",
        )
        .expect("valid dag");
        let conf = conf.as_object().expect("object").clone();
        let got = resolve_params(&dag, &conf).map(|p| json!(p));
        match expected {
            Ok(value) => assert_eq!(got, Ok(value)),
            Err(needle) => {
                let err = got.expect_err("refused");
                assert!(err.contains(needle), "{err:?} should contain {needle:?}");
            }
        }
    }

    #[test]
    fn params() {
        check_conf(
            json!({"target": "t"}),
            Ok(json!({"rows": 10, "mode": "fast", "label": "plain", "target": "t"})),
        );
        check_conf(
            json!({"target": "t", "rows": 5, "extra": true}),
            Ok(json!({"rows": 5, "mode": "fast", "label": "plain", "target": "t", "extra": true})),
        );
        check_conf(
            json!({"target": "t", "rows": "many"}),
            Err("param 'rows' must be of type integer, got \"many\""),
        );
        check_conf(
            json!({"target": "t", "rows": 5000}),
            Err("param 'rows' must be at most 1000"),
        );
        check_conf(
            json!({"target": "t", "mode": "medium"}),
            Err("param 'mode' must be one of \"fast\", \"slow\""),
        );
        check_conf(
            json!({}),
            Err("param 'target' needs a value of type string"),
        );
    }
}
