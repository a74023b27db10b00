//! Printing listings as a table (default), JSON or YAML.

use std::str::FromStr;

use anyhow::Result;
use serde_json::Value;

/// `-o table|json|yaml` (Airflow's `plain` is read as `table`, whose form it is: columns
/// without borders).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" | "plain" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "yaml" => Ok(Format::Yaml),
            other => Err(format!(
                "unknown output format '{other}': use table, json, yaml or plain"
            )),
        }
    }
}

/// Print rows (JSON objects) with the given columns for the table form.
pub fn print_rows(format: Format, columns: &[&str], rows: &[Value]) -> Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(rows)?),
        Format::Yaml => print!("{}", serde_saphyr::to_string(&rows.to_vec())?),
        Format::Table => {
            let mut table = comfy_table::Table::new();
            table.load_style(comfy_table::presets::NOTHING);
            table.set_header(columns.iter().map(|c| c.to_string()));
            for row in rows {
                table.add_row(columns.iter().map(|c| cell(row.get(*c))));
            }
            println!("{table}");
        }
    }
    Ok(())
}

/// Print one object.
pub fn print_object(format: Format, value: &Value) -> Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Yaml => print!("{}", serde_saphyr::to_string(value)?),
        Format::Table => {
            if let Value::Object(map) = value {
                let mut table = comfy_table::Table::new();
                table.load_style(comfy_table::presets::NOTHING);
                for (key, v) in map {
                    table.add_row(vec![key.clone(), cell(Some(v))]);
                }
                println!("{table}");
            } else {
                println!("{}", cell(Some(value)));
            }
        }
    }
    Ok(())
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| cell(Some(v)))
            .collect::<Vec<_>>()
            .join(", "),
        // Named things (a DAG's tags) show their names.
        Some(Value::Object(map)) if map.get("name").is_some_and(Value::is_string) => {
            cell(map.get("name"))
        }
        Some(other) => other.to_string(),
    }
}
