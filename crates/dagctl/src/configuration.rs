//! `dagctl config show` (alias `config list`) and `config get-value SECTION OPTION`: the
//! effective configuration, secrets masked. Local: the file and the environment, no server.
//!
//! `get-value` reads its value back from what `show` prints, so that the two can never
//! disagree about a default or a mask, and knows the options from the file's own schema.

use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::Value;

use crate::cli::ConfigCommand;
use crate::settings::{self, RawConfig, Settings};

pub fn run(settings: &Settings, command: ConfigCommand) -> Result<ExitCode> {
    match command {
        ConfigCommand::Show => print!("{}", settings::show(settings)?),
        ConfigCommand::GetValue { section, option } => {
            println!("{}", get_value(settings, &section, &option)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The effective value of `[section] option` as text: strings as they are, anything else as
/// its TOML (and JSON) form.
pub fn get_value(settings: &Settings, section: &str, option: &str) -> Result<String> {
    let schema = serde_json::to_value(RawConfig::default())?;
    let sections = schema
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>());
    let Some(options) = schema.get(section).and_then(Value::as_object) else {
        bail!(
            "there is no configuration section [{section}]: the sections are {}",
            sections.unwrap_or_default().join(", ")
        );
    };
    if !options.contains_key(option) {
        let names: Vec<&str> = options.keys().map(String::as_str).collect();
        bail!(
            "section [{section}] has no option '{option}': its options are {}",
            names.join(", ")
        );
    }
    match shown_value(&settings::show(settings)?, section, option) {
        Some(Value::String(text)) => Ok(text),
        Some(other) => Ok(other.to_string()),
        None => bail!(
            "[{section}] {option} is not set (in the configuration file or as \
             UPDRAFT__{}__{}) and has no default",
            section.to_ascii_uppercase(),
            option.to_ascii_uppercase()
        ),
    }
}

/// `option`'s value in `section` of the text `settings::show` prints: `[section]` headers, then
/// `option = <JSON value>` lines.
fn shown_value(shown: &str, section: &str, option: &str) -> Option<Value> {
    let header = format!("[{section}]");
    let mut in_section = false;
    for line in shown.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == header;
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((key, value)) = line.split_once(" = ")
            && key == option
        {
            return serde_json::from_str(value).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(edit: impl FnOnce(&mut RawConfig)) -> Settings {
        let mut raw = RawConfig::default();
        edit(&mut raw);
        settings::resolve(raw).expect("resolves")
    }

    #[test]
    fn values_are_the_effective_ones_with_secrets_masked() {
        let s = settings(|raw| {
            raw.smtp.password = Some("hunter2".into());
            raw.smtp.port = Some(2525);
        });
        for (section, option, expected) in [
            ("core", "dags_folder", "dags"),
            ("database", "url", "sqlite://.updraft/updraft.db"),
            ("api", "port", "8080"),
            ("worker", "queues", r#"["default"]"#),
            ("smtp", "port", "2525"),
            ("smtp", "password", "***"),
        ] {
            assert_eq!(
                get_value(&s, section, option).expect(option),
                expected,
                "[{section}] {option}"
            );
        }
    }

    #[test]
    fn unknown_and_unset_options_are_named() {
        let s = settings(|_| {});
        for (section, option, needle) in [
            (
                "nope",
                "x",
                "there is no configuration section [nope]: the sections are ",
            ),
            (
                "core",
                "nope",
                "section [core] has no option 'nope': its options are ",
            ),
            ("core", "fernet_key", "[core] fernet_key is not set"),
        ] {
            let error = get_value(&s, section, option)
                .expect_err(option)
                .to_string();
            assert!(error.contains(needle), "{error}");
        }
    }
}
