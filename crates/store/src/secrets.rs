//! Secrets at rest: variables and connection passwords/extras sealed with Fernet (the same
//! tokens Airflow writes, so a key from `AIRFLOW__CORE__FERNET_KEY` reads them), connections
//! from URIs, and which values task logs must mask.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::records::{ConnectionRecord, VariableRecord};

/// Why a secret could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// `core.fernet_key` holds something that is not a Fernet key.
    #[error("core.fernet_key: '{0}' is not a valid Fernet key (32 url-safe base64 bytes)")]
    BadKey(String),
    /// A value was written encrypted but no key (or no matching key) is configured.
    #[error("{0} is encrypted and none of the configured Fernet keys opens it")]
    CannotDecrypt(String),
    /// A connection URI that does not parse.
    #[error("connection '{conn_id}': invalid URI: {message}")]
    BadUri { conn_id: String, message: String },
}

/// Seals and opens stored secrets with the configured Fernet keys (comma-separated: the
/// first encrypts, every one decrypts, so keys rotate). Without a key values are stored in
/// the clear, marked as such, as Airflow does.
pub struct Vault {
    fernet: Option<fernet::MultiFernet>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("encrypting", &self.fernet.is_some())
            .finish()
    }
}

impl Vault {
    /// A vault for `keys` (comma-separated Fernet keys), or one that stores in the clear.
    pub fn new(keys: Option<&str>) -> Result<Vault, SecretError> {
        let keys: Vec<&str> = keys
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .collect();
        if keys.is_empty() {
            return Ok(Vault { fernet: None });
        }
        let fernets = keys
            .iter()
            .map(|k| fernet::Fernet::new(k).ok_or_else(|| SecretError::BadKey(mask_key(k))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Vault {
            fernet: Some(fernet::MultiFernet::new(fernets)),
        })
    }

    /// A vault without a key: values are stored and read in the clear.
    pub fn clear() -> Vault {
        Vault { fernet: None }
    }

    /// A fresh random key.
    pub fn generate_key() -> String {
        fernet::Fernet::generate_key()
    }

    pub fn encrypts(&self) -> bool {
        self.fernet.is_some()
    }

    fn seal(&self, text: &str) -> String {
        match &self.fernet {
            Some(f) => f.encrypt(text.as_bytes()),
            None => text.to_string(),
        }
    }

    fn open(&self, text: &str, encrypted: bool, what: &str) -> Result<String, SecretError> {
        if !encrypted {
            return Ok(text.to_string());
        }
        let fernet = self
            .fernet
            .as_ref()
            .ok_or_else(|| SecretError::CannotDecrypt(what.to_string()))?;
        let bytes = fernet
            .decrypt(text)
            .map_err(|_| SecretError::CannotDecrypt(what.to_string()))?;
        String::from_utf8(bytes).map_err(|_| SecretError::CannotDecrypt(what.to_string()))
    }

    pub fn seal_variable(
        &self,
        key: &str,
        value: &str,
        description: Option<&str>,
    ) -> VariableRecord {
        VariableRecord {
            key: key.to_string(),
            val: self.seal(value),
            description: description.map(str::to_string),
            is_encrypted: self.encrypts(),
        }
    }

    pub fn open_variable(&self, record: &VariableRecord) -> Result<String, SecretError> {
        self.open(
            &record.val,
            record.is_encrypted,
            &format!("variable '{}'", record.key),
        )
    }

    pub fn seal_connection(&self, connection: &Connection) -> ConnectionRecord {
        ConnectionRecord {
            conn_id: connection.conn_id.clone(),
            conn_type: connection.conn_type.clone(),
            description: connection.description.clone(),
            host: connection.host.clone(),
            schema: connection.schema.clone(),
            login: connection.login.clone(),
            password: connection.password.as_deref().map(|p| self.seal(p)),
            port: connection.port,
            extra: connection.extra.as_deref().map(|e| self.seal(e)),
            is_encrypted: self.encrypts(),
        }
    }

    pub fn open_connection(&self, record: &ConnectionRecord) -> Result<Connection, SecretError> {
        let what = format!("connection '{}'", record.conn_id);
        let open = |field: &Option<String>| {
            field
                .as_deref()
                .map(|v| self.open(v, record.is_encrypted, &what))
                .transpose()
        };
        Ok(Connection {
            conn_id: record.conn_id.clone(),
            conn_type: record.conn_type.clone(),
            description: record.description.clone(),
            host: record.host.clone(),
            schema: record.schema.clone(),
            login: record.login.clone(),
            password: open(&record.password)?,
            port: record.port,
            extra: open(&record.extra)?,
        })
    }
}

fn mask_key(key: &str) -> String {
    let head: String = key.chars().take(4).collect();
    format!("{head}…")
}

/// A connection in the clear, as users and templates see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Connection {
    pub conn_id: String,
    pub conn_type: String,
    pub description: Option<String>,
    pub host: Option<String>,
    pub schema: Option<String>,
    pub login: Option<String>,
    pub password: Option<String>,
    pub port: Option<i32>,
    /// JSON text.
    pub extra: Option<String>,
}

impl Connection {
    /// Parse an Airflow-style URI: `scheme://login:password@host:port/schema?key=value`; the
    /// query becomes `extra`.
    pub fn from_uri(conn_id: &str, uri: &str) -> Result<Connection, SecretError> {
        let bad = |message: String| SecretError::BadUri {
            conn_id: conn_id.to_string(),
            message,
        };
        let url = url::Url::parse(uri).map_err(|e| bad(e.to_string()))?;
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        let extra: serde_json::Map<String, Value> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        Ok(Connection {
            conn_id: conn_id.to_string(),
            conn_type: url.scheme().replace('-', "_"),
            description: None,
            host: url.host_str().map(decode).and_then(non_empty),
            schema: non_empty(decode(url.path().trim_start_matches('/'))),
            login: non_empty(decode(url.username())),
            password: url.password().map(decode).and_then(non_empty),
            port: url.port().map(i32::from),
            extra: (!extra.is_empty()).then(|| Value::Object(extra).to_string()),
        })
    }

    /// What templates see as `conn.ID`.
    pub fn template_value(&self) -> Value {
        serde_json::json!({
            "conn_id": self.conn_id,
            "conn_type": self.conn_type,
            "host": self.host,
            "port": self.port,
            "login": self.login,
            "password": self.password,
            "schema": self.schema,
            "extra": self.extra_json(),
        })
    }

    /// `extra` parsed as JSON (`{}` when absent; the text itself when it is not JSON).
    pub fn extra_json(&self) -> Value {
        match &self.extra {
            None => Value::Object(Default::default()),
            Some(text) => {
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()))
            }
        }
    }
}

/// Variables and connections opened for templates, and the values task logs must hide.
#[derive(Debug, Clone, Default)]
pub struct TemplateSecrets {
    pub variables: std::collections::BTreeMap<String, String>,
    /// Connection id → [`Connection::template_value`].
    pub connections: std::collections::BTreeMap<String, Value>,
    /// Connection passwords and the values of secret variables ([`is_secret_variable`]).
    pub masks: Vec<String>,
}

/// Open every variable and connection for templates. Connections from the environment
/// (`env_connections`) win over stored ones with the same id, as in Airflow.
pub async fn load_template_secrets(
    store: &dyn crate::Store,
    vault: &Vault,
    env_connections: &[Connection],
) -> Result<TemplateSecrets, String> {
    let mut secrets = TemplateSecrets::default();
    let variables = store
        .list_variables()
        .await
        .map_err(|e| format!("could not read variables: {e}"))?;
    for record in variables {
        let value = vault.open_variable(&record).map_err(|e| e.to_string())?;
        if is_secret_variable(&record.key) {
            secrets.masks.push(value.clone());
        }
        secrets.variables.insert(record.key, value);
    }
    let stored = store
        .list_connections()
        .await
        .map_err(|e| format!("could not read connections: {e}"))?;
    let mut connections = Vec::with_capacity(stored.len() + env_connections.len());
    for record in &stored {
        connections.push(vault.open_connection(record).map_err(|e| e.to_string())?);
    }
    connections.extend(env_connections.iter().cloned());
    for connection in connections {
        if let Some(password) = &connection.password {
            secrets.masks.push(password.clone());
        }
        secrets
            .connections
            .insert(connection.conn_id.clone(), connection.template_value());
    }
    Ok(secrets)
}

/// Whether a variable's value is a secret to mask in task logs: its key names a password,
/// secret, token or API key.
pub fn is_secret_variable(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "token", "api_key", "apikey"]
        .iter()
        .any(|word| key.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_and_rotate() {
        let old = Vault::generate_key();
        let new = Vault::generate_key();
        let vault = Vault::new(Some(&old)).expect("key");
        let sealed = vault.seal_connection(&Connection {
            conn_id: "db".into(),
            conn_type: "postgres".into(),
            password: Some("hunter2".into()),
            extra: Some("{\"sslmode\": \"require\"}".into()),
            ..Connection::default()
        });
        assert!(sealed.is_encrypted);
        assert_ne!(sealed.password.as_deref(), Some("hunter2"));
        // A rotated configuration (new key first, old key kept) still opens it.
        let rotated = Vault::new(Some(&format!("{new},{old}"))).expect("keys");
        let opened = rotated.open_connection(&sealed).expect("opens");
        assert_eq!(opened.password.as_deref(), Some("hunter2"));
        // Without the key it cannot be read, and says so.
        let other = Vault::new(Some(&new)).expect("key");
        assert_eq!(
            other.open_connection(&sealed).map(|_| ()),
            Err(SecretError::CannotDecrypt("connection 'db'".into()))
        );
    }

    #[test]
    fn clear_vault_stores_plain_text() {
        let vault = Vault::new(None).expect("no key");
        let record = vault.seal_variable("k", "v", None);
        assert!(!record.is_encrypted);
        assert_eq!(record.val, "v");
        assert_eq!(vault.open_variable(&record).as_deref(), Ok("v"));
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(matches!(
            Vault::new(Some("not-a-key")),
            Err(SecretError::BadKey(_))
        ));
    }

    #[test]
    fn uris() {
        let c = Connection::from_uri(
            "db",
            "postgres://ana:p%40ss@db.example:5433/sales?sslmode=require",
        )
        .expect("valid");
        assert_eq!(c.conn_type, "postgres");
        assert_eq!(c.login.as_deref(), Some("ana"));
        assert_eq!(c.password.as_deref(), Some("p@ss"));
        assert_eq!(c.host.as_deref(), Some("db.example"));
        assert_eq!(c.port, Some(5433));
        assert_eq!(c.schema.as_deref(), Some("sales"));
        assert_eq!(c.extra_json(), serde_json::json!({"sslmode": "require"}));
        assert!(Connection::from_uri("x", "not a uri").is_err());
    }

    #[test]
    fn secret_variable_names() {
        for key in ["db_password", "API_KEY", "slack_token", "client_secret"] {
            assert!(is_secret_variable(key), "{key}");
        }
        assert!(!is_secret_variable("data_sources"));
    }
}
