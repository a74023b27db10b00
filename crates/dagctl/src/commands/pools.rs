//! `dagctl pools list/get/set/delete/import/export` through the server's REST API; import
//! and export read and write Airflow's pool file, `{"name": {"slots": n, "description": …}}`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use api::models::{PoolBody, PoolCollectionResponse, PoolPatchBody, PoolResponse};
use serde_json::{Value, json};

use super::rows;
use crate::cli::PoolsCommand;
use crate::client::Client;
use crate::credentials;
use crate::output::print_rows;

/// Columns of a pool in a table.
const POOL_COLUMNS: &[&str] = &[
    "name",
    "slots",
    "running_slots",
    "queued_slots",
    "open_slots",
    "description",
];

pub async fn run(server_before: Option<&str>, command: PoolsCommand) -> Result<ExitCode> {
    match command {
        PoolsCommand::List { output, remote } => {
            let pools = credentials::connect(remote.or(server_before))?
                .list_all::<PoolCollectionResponse>(&["api", "v2", "pools"], &[])
                .await?;
            print_rows(output.format, POOL_COLUMNS, &rows(&pools)?)?;
        }
        PoolsCommand::Get {
            name,
            output,
            remote,
        } => {
            let pool: PoolResponse = credentials::connect(remote.or(server_before))?
                .get(&["api", "v2", "pools", &name], &[])
                .await?;
            print_rows(output.format, POOL_COLUMNS, &rows(&[pool])?)?;
        }
        PoolsCommand::Set {
            name,
            slots,
            description_arg,
            description,
            remote,
        } => {
            let client = credentials::connect(remote.or(server_before))?;
            if slots < 0 {
                bail!("a pool's slots cannot be negative, got {slots}");
            }
            let pool = PoolEntry {
                slots,
                description: description.or(description_arg),
                include_deferred: None,
            };
            set_pool(&client, &name, &pool).await?;
            println!("pool '{name}' set to {slots} slots");
        }
        PoolsCommand::Import { file, remote } => {
            let client = credentials::connect(remote.or(server_before))?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let pools = parse_pools(&text).map_err(|problems| {
                anyhow!(
                    "{}: nothing imported:\n  {}",
                    file.display(),
                    problems.join("\n  ")
                )
            })?;
            for (name, pool) in &pools {
                set_pool(&client, name, pool)
                    .await
                    .with_context(|| format!("{}: pool '{name}'", file.display()))?;
            }
            println!("{} pool(s) imported from {}", pools.len(), file.display());
        }
        PoolsCommand::Export { file, remote } => {
            let pools = credentials::connect(remote.or(server_before))?
                .list_all::<PoolCollectionResponse>(&["api", "v2", "pools"], &[])
                .await?;
            let entries: serde_json::Map<String, Value> = pools
                .iter()
                .map(|pool| {
                    (
                        pool.name.clone(),
                        json!({
                            "slots": pool.slots,
                            "description": pool.description,
                            "include_deferred": pool.include_deferred,
                        }),
                    )
                })
                .collect();
            std::fs::write(
                &file,
                format!("{}\n", serde_json::to_string_pretty(&entries)?),
            )
            .with_context(|| format!("cannot write {}", file.display()))?;
            println!("{} pool(s) exported to {}", entries.len(), file.display());
        }
        PoolsCommand::Delete { name, remote } => {
            credentials::connect(remote.or(server_before))?
                .delete(&["api", "v2", "pools", &name])
                .await?;
            println!("pool '{name}' deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One pool of a pool file, or of `pools set`.
#[derive(Debug, PartialEq)]
struct PoolEntry {
    slots: i64,
    /// `None`: an existing pool keeps its description.
    description: Option<String>,
    /// Airflow's flag; Updraft defers no task, so it is checked and passed on, not used.
    include_deferred: Option<bool>,
}

/// Create the pool, or change the slots (and what else is given) of the one that exists.
async fn set_pool(client: &Client, name: &str, pool: &PoolEntry) -> Result<()> {
    let existing: Option<PoolResponse> = client.get_optional(&["api", "v2", "pools", name]).await?;
    if existing.is_some() {
        // A patch changes only what is given: without a description the old one stays.
        let body = PoolPatchBody {
            pool: None,
            slots: Some(pool.slots),
            description: pool.description.clone(),
            include_deferred: pool.include_deferred,
            team_name: None,
        };
        let _: PoolResponse = client
            .patch(&["api", "v2", "pools", name], &[], &body)
            .await?;
    } else {
        let body = PoolBody {
            name: name.to_string(),
            slots: pool.slots,
            description: pool.description.clone(),
            include_deferred: pool.include_deferred.unwrap_or(false),
            team_name: None,
        };
        let _: PoolResponse = client.post(&["api", "v2", "pools"], &body).await?;
    }
    Ok(())
}

/// The pools of a pool file, or every problem it has (each naming its pool and field), so
/// that a file with one bad entry changes nothing.
fn parse_pools(text: &str) -> Result<BTreeMap<String, PoolEntry>, Vec<String>> {
    let object = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => object,
        Ok(_) => {
            return Err(vec![
                r#"expected a JSON object of pools: {"name": {"slots": 5, "description": "…"}}"#
                    .to_string(),
            ]);
        }
        Err(e) => return Err(vec![format!("not valid JSON: {e}")]),
    };
    let mut pools = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, value) in object {
        let Value::Object(fields) = value else {
            problems.push(format!(
                "pool '{name}': expected an object with \"slots\", got {value}"
            ));
            continue;
        };
        if name.trim().is_empty() {
            problems.push("a pool's name is empty".to_string());
            continue;
        }
        let mut entry = PoolEntry {
            slots: 0,
            description: None,
            include_deferred: None,
        };
        match fields.get("slots") {
            Some(slots) => match slots.as_i64() {
                Some(n) if n >= 0 => entry.slots = n,
                _ => problems.push(format!(
                    "pool '{name}': \"slots\" must be a whole number, 0 or more, got {slots}"
                )),
            },
            None => problems.push(format!("pool '{name}': \"slots\" is missing")),
        }
        for (field, value) in &fields {
            match (field.as_str(), value) {
                ("slots", _) => {}
                ("description", Value::String(text)) => entry.description = Some(text.clone()),
                ("description", Value::Null) => {}
                ("include_deferred", Value::Bool(flag)) => entry.include_deferred = Some(*flag),
                // Airflow's multi-team mode; a file exported without it says null.
                ("team_name", Value::Null) => {}
                ("description", other) => problems.push(format!(
                    "pool '{name}': \"description\" must be text, got {other}"
                )),
                ("include_deferred", other) => problems.push(format!(
                    "pool '{name}': \"include_deferred\" must be true or false, got {other}"
                )),
                ("team_name", _) => problems.push(format!(
                    "pool '{name}': \"team_name\": Updraft has no teams"
                )),
                (other, _) => problems.push(format!(
                    "pool '{name}': unknown field \"{other}\" (a pool has slots, description \
                     and include_deferred)"
                )),
            }
        }
        pools.insert(name, entry);
    }
    if problems.is_empty() {
        Ok(pools)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn airflows_pool_file_is_read_and_every_problem_named() {
        let pools = parse_pools(
            r#"{"etl": {"slots": 4, "description": "ETL slots", "include_deferred": false},
                "tiny": {"slots": 0, "description": null, "team_name": null},
                "bare": {"slots": 2}}"#,
        )
        .expect("valid");
        assert_eq!(
            pools,
            BTreeMap::from([
                (
                    "bare".to_string(),
                    PoolEntry {
                        slots: 2,
                        description: None,
                        include_deferred: None
                    }
                ),
                (
                    "etl".to_string(),
                    PoolEntry {
                        slots: 4,
                        description: Some("ETL slots".into()),
                        include_deferred: Some(false)
                    }
                ),
                (
                    "tiny".to_string(),
                    PoolEntry {
                        slots: 0,
                        description: None,
                        include_deferred: None
                    }
                ),
            ])
        );

        let problems = parse_pools(
            r#"{"a": {"slots": -1}, "b": {"description": "x"}, "c": 3,
                "d": {"slots": 1.5, "colour": "red", "include_deferred": "yes"}}"#,
        )
        .expect_err("invalid");
        assert_eq!(
            problems,
            [
                r#"pool 'a': "slots" must be a whole number, 0 or more, got -1"#,
                r#"pool 'b': "slots" is missing"#,
                r#"pool 'c': expected an object with "slots", got 3"#,
                r#"pool 'd': "slots" must be a whole number, 0 or more, got 1.5"#,
                r#"pool 'd': unknown field "colour" (a pool has slots, description and include_deferred)"#,
                r#"pool 'd': "include_deferred" must be true or false, got "yes""#,
            ]
        );
        for (text, expected) in [
            ("[1]", "expected a JSON object of pools"),
            ("{", "not valid JSON"),
        ] {
            let problems = parse_pools(text).expect_err(text);
            assert!(problems[0].starts_with(expected), "{text}: {problems:?}");
        }
    }
}
