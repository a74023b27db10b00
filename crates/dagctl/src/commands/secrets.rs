//! `dagctl variables …` and `dagctl connections …`: list, get, set/add, delete, import and
//! export, sealed and opened with the configured Fernet key.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use store::secrets::Connection;

use crate::output::{print_object, print_rows};
use crate::settings::Settings;
use crate::{ConnectionsCommand, VariablesCommand, backend};

pub async fn variables(settings: Settings, command: VariablesCommand) -> Result<ExitCode> {
    let store = backend::open(&settings.database_url).await?;
    let vault = settings.vault()?;
    match command {
        VariablesCommand::List(output) => {
            let mut rows = Vec::new();
            for record in store.list_variables().await? {
                let value = vault.open_variable(&record)?;
                let shown = if store::secrets::is_secret_variable(&record.key) {
                    "***".to_string()
                } else {
                    value
                };
                rows.push(
                    json!({"key": record.key, "val": shown, "description": record.description}),
                );
            }
            print_rows(output.format, &["key", "val", "description"], &rows)?;
        }
        VariablesCommand::Get { key, json } => {
            let record = store
                .get_variable(&key)
                .await?
                .ok_or_else(|| anyhow!("variable '{key}' not found"))?;
            let value = vault.open_variable(&record)?;
            if json {
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
        } => {
            store
                .set_variable(&vault.seal_variable(&key, &value, description.as_deref()))
                .await?;
            println!("variable '{key}' set");
        }
        VariablesCommand::Delete { key } => {
            store.delete_variable(&key).await?;
            println!("variable '{key}' deleted");
        }
        VariablesCommand::Import { file } => {
            let text = read(&file)?;
            let entries: BTreeMap<String, Value> =
                serde_json::from_str(&text).with_context(|| {
                    format!("{}: expected a JSON object of key: value", file.display())
                })?;
            for (key, value) in &entries {
                // Strings are stored as they are; anything else as its JSON text.
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                store
                    .set_variable(&vault.seal_variable(key, &text, None))
                    .await?;
            }
            println!(
                "{} variable(s) imported from {}",
                entries.len(),
                file.display()
            );
        }
        VariablesCommand::Export { file } => {
            let mut entries = serde_json::Map::new();
            for record in store.list_variables().await? {
                let value = vault.open_variable(&record)?;
                entries.insert(record.key, Value::String(value));
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

pub async fn connections(settings: Settings, command: ConnectionsCommand) -> Result<ExitCode> {
    let store = backend::open(&settings.database_url).await?;
    let vault = settings.vault()?;
    match command {
        ConnectionsCommand::List(output) => {
            let mut rows = Vec::new();
            for record in store.list_connections().await? {
                rows.push(shown(&vault.open_connection(&record)?, "database"));
            }
            for connection in &settings.env_connections {
                rows.push(shown(connection, "environment"));
            }
            print_rows(
                output.format,
                &[
                    "conn_id",
                    "conn_type",
                    "host",
                    "port",
                    "login",
                    "schema",
                    "source",
                ],
                &rows,
            )?;
        }
        ConnectionsCommand::Get { conn_id, output } => {
            let connection = match settings
                .env_connections
                .iter()
                .find(|c| c.conn_id == conn_id)
            {
                Some(connection) => shown(connection, "environment"),
                None => {
                    let record = store
                        .get_connection(&conn_id)
                        .await?
                        .ok_or_else(|| anyhow!("connection '{conn_id}' not found"))?;
                    shown(&vault.open_connection(&record)?, "database")
                }
            };
            print_object(output.format, &connection)?;
        }
        ConnectionsCommand::Add(args) => {
            let connection = args.connection()?;
            store
                .set_connection(&vault.seal_connection(&connection))
                .await?;
            println!("connection '{}' added", connection.conn_id);
        }
        ConnectionsCommand::Delete { conn_id } => {
            store.delete_connection(&conn_id).await?;
            println!("connection '{conn_id}' deleted");
        }
        ConnectionsCommand::Import { file } => {
            let text = read(&file)?;
            let entries: BTreeMap<String, Value> =
                serde_json::from_str(&text).with_context(|| {
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
        }
        ConnectionsCommand::Export { file } => {
            let mut entries = serde_json::Map::new();
            for record in store.list_connections().await? {
                let connection = vault.open_connection(&record)?;
                let mut value = serde_json::to_value(&connection)?;
                if let Value::Object(map) = &mut value {
                    map.remove("conn_id");
                }
                entries.insert(connection.conn_id, value);
            }
            write(&file, &serde_json::to_string_pretty(&entries)?)?;
            println!(
                "{} connection(s) exported to {}",
                entries.len(),
                file.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A connection as listed: the password hidden.
fn shown(connection: &Connection, source: &str) -> Value {
    json!({
        "conn_id": connection.conn_id,
        "conn_type": connection.conn_type,
        "description": connection.description,
        "host": connection.host,
        "port": connection.port,
        "login": connection.login,
        "password": connection.password.as_ref().map(|_| "***"),
        "schema": connection.schema,
        "extra": connection.extra_json(),
        "source": source,
    })
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

/// Flags of `connections add`, after Airflow's.
#[derive(Debug, clap::Args)]
pub struct AddConnection {
    pub conn_id: String,
    /// The whole connection as a URI: `type://login:password@host:port/schema?extra=…`.
    #[arg(long)]
    pub conn_uri: Option<String>,
    #[arg(long)]
    pub conn_type: Option<String>,
    #[arg(long)]
    pub conn_host: Option<String>,
    #[arg(long)]
    pub conn_login: Option<String>,
    #[arg(long)]
    pub conn_password: Option<String>,
    #[arg(long)]
    pub conn_schema: Option<String>,
    #[arg(long)]
    pub conn_port: Option<i32>,
    /// JSON object.
    #[arg(long)]
    pub conn_extra: Option<String>,
    #[arg(long)]
    pub conn_description: Option<String>,
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
