//! `dagctl pools list/get/set/delete` through the server's REST API.

use std::process::ExitCode;

use anyhow::{Result, bail};
use api::models::{PoolBody, PoolCollectionResponse, PoolPatchBody, PoolResponse};

use super::rows;
use crate::cli::PoolsCommand;
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
            let description = description.or(description_arg);
            if slots < 0 {
                bail!("a pool's slots cannot be negative, got {slots}");
            }
            let existing: Option<PoolResponse> =
                client.get_optional(&["api", "v2", "pools", &name]).await?;
            if existing.is_some() {
                // A patch changes only what is given: without --description the old one stays.
                let body = PoolPatchBody {
                    pool: None,
                    slots: Some(slots),
                    description,
                    include_deferred: None,
                    team_name: None,
                };
                let _: PoolResponse = client
                    .patch(&["api", "v2", "pools", &name], &[], &body)
                    .await?;
            } else {
                let body = PoolBody {
                    name: name.clone(),
                    slots,
                    description,
                    include_deferred: false,
                    team_name: None,
                };
                let _: PoolResponse = client.post(&["api", "v2", "pools"], &body).await?;
            }
            println!("pool '{name}' set to {slots} slots");
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
