//! `dagctl pools list/set/delete` through the server's REST API.

use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::PoolsCommand;
use crate::credentials;
use crate::output::print_rows;

pub async fn run(server: &str, command: PoolsCommand) -> Result<ExitCode> {
    let client = credentials::connect(server)?;
    match command {
        PoolsCommand::List(output) => {
            let pools = client
                .list_all(&["api", "v2", "pools"], &[], "pools")
                .await?;
            print_rows(
                output.format,
                &[
                    "name",
                    "slots",
                    "running_slots",
                    "queued_slots",
                    "open_slots",
                    "description",
                ],
                &pools,
            )?;
        }
        PoolsCommand::Set {
            name,
            slots,
            description,
        } => {
            if slots < 0 {
                bail!("a pool's slots cannot be negative, got {slots}");
            }
            let existing: Option<Value> =
                client.get_optional(&["api", "v2", "pools", &name]).await?;
            if existing.is_some() {
                // A patch changes only what is given: without --description the old one stays.
                let mut body = json!({"slots": slots});
                if let Some(description) = &description {
                    body["description"] = json!(description);
                }
                let _: Value = client
                    .patch(&["api", "v2", "pools", &name], &[], &body)
                    .await?;
            } else {
                let _: Value = client
                    .post(
                        &["api", "v2", "pools"],
                        &json!({"name": name, "slots": slots, "description": description}),
                    )
                    .await?;
            }
            println!("pool '{name}' set to {slots} slots");
        }
        PoolsCommand::Delete { name } => {
            client.delete(&["api", "v2", "pools", &name]).await?;
            println!("pool '{name}' deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}
