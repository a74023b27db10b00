//! The subcommands, one module per group, and what they share.

pub mod dag_tasks;
pub mod dags;
pub mod db;
pub mod defaults;
pub mod engine;
pub mod local_run;
pub mod pools;
pub mod secrets;
pub mod server;
pub mod tasks;
pub mod users;

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::settings::Settings;

/// Logs go to stderr; `RUST_LOG` overrides `logging.level`. Coloured only for a terminal,
/// and never with `NO_COLOR` set (no-color.org): a log written to a file or a pipe carries
/// no escape codes.
pub fn init_tracing(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&settings.log_level));
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .try_init();
}

/// A date given on the command line: RFC 3339, or `YYYY-MM-DD` (midnight UTC).
pub fn parse_date(text: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Some(t) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Ok(t.and_utc());
    }
    bail!("invalid date '{text}': use YYYY-MM-DD or RFC 3339 (2024-01-01T00:00:00Z)")
}

/// `--conf` as a JSON object.
pub fn parse_conf(text: Option<&str>) -> Result<Option<serde_json::Value>> {
    let Some(text) = text else {
        return Ok(None);
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(Some(value)),
        Ok(_) => bail!("--conf must be a JSON object, e.g. '{{\"key\": 1}}'"),
        Err(e) => bail!("--conf is not valid JSON: {e}"),
    }
}

/// RFC 3339 text of an optional timestamp, for listings.
pub fn ts(t: Option<DateTime<Utc>>) -> serde_json::Value {
    t.map_or(serde_json::Value::Null, |t| {
        serde_json::Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    })
}

/// A time as the API takes it: RFC 3339 in UTC. It is also the form the server's JSON writes
/// timestamps in (chrono's serde form), so a timestamp read typed prints as it was sent.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Typed answers as the JSON rows `print_rows` shows, field for field and in field order.
pub fn rows<T: Serialize>(items: &[T]) -> Result<Vec<serde_json::Value>> {
    items
        .iter()
        .map(|item| Ok(serde_json::to_value(item)?))
        .collect()
}

/// Ask a yes/no question (default no), as Airflow does: on a terminal, of whoever types;
/// otherwise the answer is the first line of standard input, so that a script can pipe it in
/// (`yes | dagctl dags delete x`). `y` or `yes` in any case is yes, anything else no. Input
/// that ends before an answer is an error saying to pass `--yes`, which callers check before
/// asking.
pub fn confirm(question: &str) -> Result<bool> {
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprint!("{question} [y/N] ");
        std::io::stderr().flush().ok();
    }
    let mut answer = String::new();
    let read = std::io::stdin()
        .read_line(&mut answer)
        .context("cannot read the answer from standard input")?;
    if read == 0 {
        if interactive {
            eprintln!();
        }
        bail!(
            "{question} No answer: standard input ended; pipe one in (`yes | dagctl …`) or \
             pass --yes (-y)"
        );
    }
    let answer = answer.trim();
    if !interactive {
        // The question and its piped answer, so that the output reads as the dialogue it was.
        eprintln!("{question} [y/N] {answer}");
    }
    Ok(answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes"))
}
