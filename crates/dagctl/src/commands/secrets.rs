//! `dagctl variables …` and `dagctl connections …` through the server's REST API (list,
//! get, set/add, delete; variables' import and export too). Connections' import and export
//! work on the configured database, sealed and opened with its Fernet key, since only there
//! are passwords in the clear.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use api::models::{
    ConnectionBody, ConnectionCollectionResponse, ConnectionResponse, VariableBody,
    VariableCollectionResponse, VariableResponse,
};
use reqwest::StatusCode;
use serde_json::Value;
use store::secrets::Connection;

use super::rows;
use crate::cli::{AddConnection, ConnectionsCommand, ExistingKey, RemoteArgs, VariablesCommand};
use crate::client::Client;
use crate::output::{print_object, print_rows};
use crate::settings::Settings;
use crate::{backend, credentials};

/// What the server answers in place of a secret.
const MASKED: &str = "***";

pub async fn variables(server_before: Option<&str>, command: VariablesCommand) -> Result<ExitCode> {
    let connect = |remote: &RemoteArgs| credentials::connect(remote.or(server_before));
    match command {
        VariablesCommand::List { output, remote } => {
            let variables = connect(&remote)?
                .list_all::<VariableCollectionResponse>(&["api", "v2", "variables"], &[])
                .await?;
            print_rows(
                output.format,
                &["key", "value", "description"],
                &rows(&variables)?,
            )?;
        }
        VariablesCommand::Get {
            key,
            json,
            default,
            remote,
        } => {
            let client = connect(&remote)?;
            let value = match client
                .get_optional::<VariableResponse>(&["api", "v2", "variables", &key])
                .await?
            {
                Some(variable) => variable.value,
                None => match default {
                    Some(default) => {
                        println!("{default}");
                        return Ok(ExitCode::SUCCESS);
                    }
                    None => bail!(
                        "variable '{key}' does not exist (--default VALUE prints one instead)"
                    ),
                },
            };
            if value == MASKED && store::secrets::is_secret_variable(&key) {
                // The API never sends a secret variable's value, to anyone: say so rather than
                // let `***` pass for it.
                if json {
                    bail!(
                        "variable '{key}' is a secret, masked by the server as ***, so it cannot \
                         be read as JSON; tasks read it as {{{{ var.json.{key} }}}}"
                    );
                }
                eprintln!("{}", masked_note(&key));
                println!("{value}");
            } else if json {
                let parsed: Value = serde_json::from_str(&value)
                    .with_context(|| format!("variable '{key}' is not valid JSON"))?;
                println!("{}", serde_json::to_string_pretty(&parsed)?);
            } else {
                println!("{value}");
            }
        }
        VariablesCommand::Set {
            key,
            value,
            description,
            json,
            remote,
        } => {
            if json {
                serde_json::from_str::<Value>(&value)
                    .with_context(|| format!("--json: the value of '{key}' is not valid JSON"))?;
            }
            set_variable(&connect(&remote)?, &key, &value, description.as_deref()).await?;
            println!("variable '{key}' set");
        }
        VariablesCommand::Delete { key, remote } => {
            connect(&remote)?
                .delete(&["api", "v2", "variables", &key])
                .await?;
            println!("variable '{key}' deleted");
        }
        VariablesCommand::Import {
            file,
            action_on_existing_key,
            remote,
        } => {
            let client = connect(&remote)?;
            let text = read(&file)?;
            let entries: BTreeMap<String, Value> =
                serde_json::from_str(&text).with_context(|| {
                    format!("{}: expected a JSON object of key: value", file.display())
                })?;
            let existing: Vec<String> = if action_on_existing_key == ExistingKey::Overwrite {
                Vec::new()
            } else {
                let stored: BTreeSet<String> = client
                    .list_all::<VariableCollectionResponse>(&["api", "v2", "variables"], &[])
                    .await?
                    .into_iter()
                    .map(|v| v.key)
                    .collect();
                entries
                    .keys()
                    .filter(|key| stored.contains(*key))
                    .cloned()
                    .collect()
            };
            if action_on_existing_key == ExistingKey::Fail && !existing.is_empty() {
                bail!(
                    "{}: nothing imported, these variables exist already: {} (-a overwrite \
                     replaces them, -a skip keeps them)",
                    file.display(),
                    existing.join(", ")
                );
            }
            let mut imported = 0usize;
            for (key, value) in entries.iter().filter(|(key, _)| !existing.contains(key)) {
                // Strings are stored as they are; anything else as its JSON text.
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                set_variable(&client, key, &text, None)
                    .await
                    .with_context(|| format!("{}: variable '{key}'", file.display()))?;
                imported += 1;
            }
            println!("{imported} variable(s) imported from {}", file.display());
            if !existing.is_empty() {
                println!(
                    "{} skipped, as they exist already: {}",
                    existing.len(),
                    existing.join(", ")
                );
            }
        }
        VariablesCommand::Export { file, remote } => {
            let mut entries = serde_json::Map::new();
            let mut masked = Vec::new();
            for variable in connect(&remote)?
                .list_all::<VariableCollectionResponse>(&["api", "v2", "variables"], &[])
                .await?
            {
                // The server masks secret-looking variables; writing `***` would make an
                // import overwrite the real value with it.
                if variable.value == MASKED && store::secrets::is_secret_variable(&variable.key) {
                    masked.push(variable.key);
                    continue;
                }
                entries.insert(variable.key, Value::String(variable.value));
            }
            if !masked.is_empty() {
                eprintln!(
                    "warning: not exported, the server masks their values: {}",
                    masked.join(", ")
                );
            }
            write(&file, &serde_json::to_string_pretty(&entries)?)?;
            println!(
                "{} variable(s) exported to {}",
                entries.len(),
                file.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Why `variables get` of a secret variable prints `***`, and how its value is still used.
fn masked_note(key: &str) -> String {
    format!(
        "note: variable '{key}' is a secret (its key names a password, secret, token or API key), \
         so the server masks its value as *** in every answer, as Airflow's API does; tasks \
         still read the real value as {{{{ var.value.{key} }}}}, masked in their logs. To \
         change it, `dagctl variables set {key} VALUE`."
    )
}

/// Create a variable, or replace the value (and description, if given) of one that exists.
async fn set_variable(
    client: &Client,
    key: &str,
    value: &str,
    description: Option<&str>,
) -> Result<()> {
    let body = VariableBody {
        key: key.to_string(),
        value: Value::String(value.to_string()),
        description: description.map(str::to_string),
        team_name: None,
    };
    // Without --description, an existing variable keeps the one it has.
    let mut mask = vec![("update_mask", "value".to_string())];
    if description.is_some() {
        mask.push(("update_mask", "description".to_string()));
    }
    match client
        .patch::<VariableResponse>(&["api", "v2", "variables", key], &mask, &body)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => {
            let _: VariableResponse = client.post(&["api", "v2", "variables"], &body).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn connections(
    settings: Settings,
    server_before: Option<&str>,
    command: ConnectionsCommand,
) -> Result<ExitCode> {
    let connect = |remote: &RemoteArgs| credentials::connect(remote.or(server_before));
    match command {
        ConnectionsCommand::Import { file } => return import_connections(&settings, &file).await,
        ConnectionsCommand::Export { file } => return export_connections(&settings, &file).await,
        ConnectionsCommand::List { output, remote } => {
            let connections = connect(&remote)?
                .list_all::<ConnectionCollectionResponse>(&["api", "v2", "connections"], &[])
                .await?;
            print_rows(
                output.format,
                &[
                    "connection_id",
                    "conn_type",
                    "host",
                    "port",
                    "login",
                    "schema",
                    "description",
                ],
                &rows(&connections)?,
            )?;
        }
        ConnectionsCommand::Get {
            conn_id,
            output,
            remote,
        } => {
            let connection: ConnectionResponse = connect(&remote)?
                .get(&["api", "v2", "connections", &conn_id], &[])
                .await?;
            print_object(output.format, &serde_json::to_value(&connection)?)?;
        }
        ConnectionsCommand::Add { connection, remote } => {
            let connection = connection.connection()?;
            let body = connection_body(&connection);
            let id = &connection.conn_id;
            // As Airflow's `connections add`: an id that exists is refused, never replaced.
            match connect(&remote)?
                .post::<ConnectionResponse>(&["api", "v2", "connections"], &body)
                .await
            {
                Ok(_) => println!("connection '{id}' added"),
                Err(e) if e.status() == Some(StatusCode::CONFLICT) => bail!(
                    "connection '{id}' already exists, and `connections add` does not replace \
                     one: `dagctl connections delete {id}` first to add it anew"
                ),
                Err(e) => return Err(e.into()),
            }
        }
        ConnectionsCommand::Delete { conn_id, remote } => {
            connect(&remote)?
                .delete(&["api", "v2", "connections", &conn_id])
                .await?;
            println!("connection '{conn_id}' deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The API's `ConnectionBody` of a connection: every field, unset ones as null.
fn connection_body(connection: &Connection) -> ConnectionBody {
    ConnectionBody {
        connection_id: connection.conn_id.clone(),
        conn_type: connection.conn_type.clone(),
        description: connection.description.clone(),
        host: connection.host.clone(),
        login: connection.login.clone(),
        schema: connection.schema.clone(),
        port: connection.port,
        password: connection.password.clone(),
        extra: connection.extra.clone(),
        team_name: None,
    }
}

/// `connections import`, local: seal each connection of the file into the database.
async fn import_connections(settings: &Settings, file: &Path) -> Result<ExitCode> {
    let store = backend::open(&settings.database_url).await?;
    let vault = settings.vault()?;
    let text = read(file)?;
    let entries: BTreeMap<String, Value> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected a JSON object of conn_id: connection",
            file.display()
        )
    })?;
    for (conn_id, value) in &entries {
        let connection = from_json(conn_id, value)
            .with_context(|| format!("{}: connection '{conn_id}'", file.display()))?;
        store
            .set_connection(&vault.seal_connection(&connection))
            .await?;
    }
    println!(
        "{} connection(s) imported from {}",
        entries.len(),
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `connections export`, local: the API never hands out passwords, the database (with the
/// Fernet key) does.
async fn export_connections(settings: &Settings, file: &Path) -> Result<ExitCode> {
    let store = backend::open(&settings.database_url).await?;
    let vault = settings.vault()?;
    let mut entries = serde_json::Map::new();
    for record in store.list_connections().await? {
        let connection = vault.open_connection(&record)?;
        let mut value = serde_json::to_value(&connection)?;
        if let Value::Object(map) = &mut value {
            map.remove("conn_id");
        }
        entries.insert(connection.conn_id, value);
    }
    write(file, &serde_json::to_string_pretty(&entries)?)?;
    println!(
        "{} connection(s) exported to {}",
        entries.len(),
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A connection from an import file: a URI string, or an object of the connection's fields
/// (`extra` as an object or as JSON text).
fn from_json(conn_id: &str, value: &Value) -> Result<Connection> {
    match value {
        Value::String(uri) => Ok(Connection::from_uri(conn_id, uri)?),
        Value::Object(map) => {
            let mut map = map.clone();
            if let Some(extra) = map.get("extra").filter(|e| e.is_object()).cloned() {
                map.insert("extra".into(), Value::String(extra.to_string()));
            }
            map.insert("conn_id".into(), Value::String(conn_id.to_string()));
            let connection: Connection = serde_json::from_value(Value::Object(map))?;
            if connection.conn_type.is_empty() {
                bail!("conn_type is required");
            }
            Ok(connection)
        }
        other => bail!("expected a URI or an object, got {other}"),
    }
}

fn read(file: &Path) -> Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

fn write(file: &Path, text: &str) -> Result<()> {
    std::fs::write(file, format!("{text}\n"))
        .with_context(|| format!("cannot write {}", file.display()))
}

impl AddConnection {
    fn connection(&self) -> Result<Connection> {
        if let Some(uri) = &self.conn_uri {
            let mut connection = Connection::from_uri(&self.conn_id, uri)?;
            connection.description = self.conn_description.clone();
            return Ok(connection);
        }
        let conn_type = self.conn_type.clone().ok_or_else(|| {
            anyhow!("give --conn-uri, or --conn-type with the other --conn-* flags")
        })?;
        if let Some(extra) = &self.conn_extra {
            serde_json::from_str::<Value>(extra).context("--conn-extra is not valid JSON")?;
        }
        Ok(Connection {
            conn_id: self.conn_id.clone(),
            conn_type,
            description: self.conn_description.clone(),
            host: self.conn_host.clone(),
            schema: self.conn_schema.clone(),
            login: self.conn_login.clone(),
            password: self.conn_password.clone(),
            port: self.conn_port,
            extra: self.conn_extra.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn add(args: &[&str]) -> AddConnection {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            add: AddConnection,
        }
        let mut argv = vec!["add"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("flags parse").add
    }

    /// The JSON `connections add` sends for these flags.
    fn body_json(add: &AddConnection) -> Value {
        let body = connection_body(&add.connection().expect("connection"));
        serde_json::to_value(body).expect("a body is JSON")
    }

    #[test]
    fn connections_become_the_apis_connection_body() {
        let from_uri = add(&[
            "warehouse",
            "--conn-uri",
            "postgres://ana:p%40ss@db.internal:5432/sales?sslmode=require",
            "--conn-description",
            "the warehouse",
        ]);
        assert_eq!(
            body_json(&from_uri),
            json!({
                "connection_id": "warehouse", "conn_type": "postgres",
                "description": "the warehouse", "host": "db.internal", "login": "ana",
                "password": "p@ss", "schema": "sales", "port": 5432,
                "extra": "{\"sslmode\":\"require\"}", "team_name": null,
            })
        );
        let from_flags = add(&[
            "api",
            "--conn-type",
            "http",
            "--conn-host",
            "example.com",
            "--conn-extra",
            r#"{"timeout": 5}"#,
        ]);
        assert_eq!(
            body_json(&from_flags),
            json!({
                "connection_id": "api", "conn_type": "http", "description": null,
                "host": "example.com", "login": null, "password": null, "schema": null,
                "port": null, "extra": r#"{"timeout": 5}"#, "team_name": null,
            })
        );
    }

    #[test]
    fn a_connection_without_a_type_or_with_bad_extra_is_refused() {
        for (args, needle) in [
            (vec!["x"], "give --conn-uri"),
            (
                vec!["x", "--conn-type", "http", "--conn-extra", "{nope"],
                "--conn-extra is not valid JSON",
            ),
            (vec!["x", "--conn-uri", "no scheme"], "x"),
        ] {
            let error = format!("{:#}", add(&args).connection().expect_err("refused"));
            assert!(error.contains(needle), "{args:?}: {error}");
        }
    }
}
