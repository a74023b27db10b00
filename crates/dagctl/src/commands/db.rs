//! `dagctl db migrate` and `db check`.

use std::process::ExitCode;

use anyhow::Result;

use crate::backend;
use crate::settings::Settings;

/// Opening a store applies pending migrations, so migrate is an open.
pub async fn migrate(settings: Settings) -> Result<ExitCode> {
    let store = backend::open(&settings.database_url).await?;
    println!(
        "database {} ({}) is up to date",
        crate::settings::mask_url(&settings.database_url),
        store.backend()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn check(settings: Settings) -> Result<ExitCode> {
    let store = backend::open(&settings.database_url).await?;
    store.list_import_errors().await?;
    println!("database reachable ({})", store.backend());
    Ok(ExitCode::SUCCESS)
}
