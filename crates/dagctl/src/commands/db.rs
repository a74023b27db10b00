//! `dagctl db migrate` (also `db init`, Airflow's older name), `db check` and `db clean`
//! (retention).

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::json;
use store::{CleanHistory, CleanMode, CleanReport};

use crate::backend;
use crate::cli::CleanArgs;
use crate::output::{self, Format};
use crate::settings::Settings;

/// `db init`: Airflow deprecated it for `db migrate`, which it is here.
pub async fn init(settings: Settings) -> Result<ExitCode> {
    eprintln!("note: `db init` is `db migrate` (Airflow's newer name for it)");
    migrate(settings).await
}

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

/// `db clean --before DATE [--dry-run] [--batch-size N] [-y]`: asks first (unless `--yes` or
/// `--dry-run`), before the database is even opened, so a "no" changes nothing. Prints the
/// rows deleted (or that would be) per table and the batch figures.
pub async fn clean(settings: Settings, args: CleanArgs) -> Result<ExitCode> {
    let before = super::rfc3339(args.before);
    let mode = if args.dry_run {
        CleanMode::DryRun
    } else {
        CleanMode::Delete
    };
    if mode == CleanMode::Delete && !args.yes {
        let question = format!(
            "Delete finished runs that ended before {before} with their task instances, logs and \
             XComs, and component heartbeats older than that, from {}? This cannot be undone \
             (--dry-run shows what would go).",
            crate::settings::mask_url(&settings.database_url)
        );
        if !super::confirm(&question)? {
            eprintln!("not confirmed: nothing deleted");
            return Ok(ExitCode::FAILURE);
        }
    }
    // Cleaning a database that is not there must not create one.
    let Some(store) = backend::open_existing(&settings.database_url).await? else {
        bail!(
            "database {} does not exist or is not reachable: nothing to clean (`dagctl db check` \
             says why)",
            crate::settings::mask_url(&settings.database_url)
        );
    };
    let request = CleanHistory::new(args.before)
        .with_batch_size(args.batch_size)
        .with_mode(mode);
    let report = store
        .clean_history(&request)
        .await
        .context("cleaning the history failed (batches already committed stay deleted)")?;
    print_report(args.output.format, &report, &before, args.batch_size.get())?;
    Ok(ExitCode::SUCCESS)
}

fn print_report(
    format: Format,
    report: &CleanReport,
    before: &str,
    batch_size: usize,
) -> Result<()> {
    let dry = report.mode == CleanMode::DryRun;
    let longest_ms = report.longest_batch.as_secs_f64() * 1000.0;
    let seconds = report.elapsed.as_secs_f64();
    if format != Format::Table {
        let tables: serde_json::Map<String, serde_json::Value> = report
            .rows
            .tables()
            .iter()
            .map(|(table, rows)| (table.to_string(), json!(rows)))
            .collect();
        let value = json!({
            "dry_run": dry,
            "before": before,
            "rows": tables,
            "batches": report.batches,
            "batch_size": batch_size,
            "longest_batch_ms": longest_ms,
            "elapsed_seconds": seconds,
        });
        return output::print_object(format, &value);
    }
    let column = if dry { "would delete" } else { "deleted" };
    let rows: Vec<serde_json::Value> = report
        .rows
        .tables()
        .iter()
        .map(|(table, rows)| json!({"table": table, column: rows}))
        .collect();
    output::print_rows(Format::Table, &["table", column], &rows)?;
    println!(
        "{} {} rows of history older than {before} in {} batches of at most {batch_size} runs; \
         longest batch {longest_ms:.1} ms; {seconds:.2} s in all{}",
        if dry { "would delete" } else { "deleted" },
        report.rows.total(),
        report.batches,
        if dry {
            " (dry run: nothing was deleted)"
        } else {
            ""
        },
    );
    Ok(())
}
