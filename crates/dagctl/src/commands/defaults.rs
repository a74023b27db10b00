//! What `standalone` sets up for the DAGs in its folder when it starts: Airflow's default
//! connections `sqlite_default` (a SQLite file under `.updraft/`) and `http_default` (this
//! server's own API), and the example variable `data_sources`, so that the example DAGs run
//! on a fresh clone. Each is made only when a DAG of the folder names it and nothing defines
//! it yet, neither the database nor an `UPDRAFT_CONN_<ID>` variable: what a user set is never
//! replaced, and a second start makes nothing (one deleted while a DAG still names it is made
//! again). `dags test` uses the same list to say what a DAG lacks and how to get it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dag::Dag;
use scheduler::DagFolder;
use scheduler::dag_folder::read_dag_file;
use serde_json::Value;
use store::Admin;
use store::secrets::{Connection, Vault};

/// The SQLite connection's database file, inside standalone's home.
pub const SQLITE_FILE: &str = "sqlite_default.db";

/// The value `data_sources` gets: the two sources the example's comment shows.
pub const DATA_SOURCES: &str =
    r#"[{"name": "crm", "table": "customers"}, {"name": "erp", "table": "orders"}]"#;

/// One thing an example DAG needs that standalone can make.
#[derive(Debug, Clone)]
pub enum Needed {
    Connection {
        connection: Connection,
        /// How the start line describes it.
        shown: String,
    },
    Variable {
        key: String,
        value: String,
        description: String,
    },
}

impl Needed {
    fn name(&self) -> String {
        match self {
            Needed::Connection { connection, .. } => {
                format!("connection '{}'", connection.conn_id)
            }
            Needed::Variable { key, .. } => format!("variable '{key}'"),
        }
    }
}

/// Where standalone's defaults point: its home (absolute, because tasks run in the DAGs
/// folder) and the address its API listens on.
#[derive(Debug, Clone)]
pub struct Site {
    pub home: PathBuf,
    pub api: SocketAddr,
}

impl Site {
    /// `home` made absolute, and an unspecified listen address (`0.0.0.0`, `::`) replaced by
    /// the loopback address of its family, which is where a task on this host reaches it.
    pub fn new(home: &Path, api: SocketAddr) -> Result<Site> {
        let home = std::path::absolute(home)
            .with_context(|| format!("cannot resolve {}", home.display()))?;
        let mut api = api;
        if api.ip().is_unspecified() {
            api.set_ip(match api {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        Ok(Site { home, api })
    }
}

/// Every default, as this site makes it.
pub fn defaults(site: &Site) -> Result<Vec<Needed>> {
    let file = site.home.join(SQLITE_FILE);
    let made_by = "made by dagctl standalone for the example DAGs";
    let sqlite = Connection {
        conn_id: "sqlite_default".into(),
        conn_type: "sqlite".into(),
        description: Some(format!("{made_by}: a SQLite file under .updraft/")),
        host: Some(file.display().to_string()),
        ..Connection::default()
    };
    let mut http = Connection::from_uri("http_default", &format!("http://{}", site.api))
        .context("the API's address is no URI")?;
    http.description = Some(format!("{made_by}: this server's own API"));
    Ok(vec![
        Needed::Connection {
            shown: format!("SQLite file {}", file.display()),
            connection: sqlite,
        },
        Needed::Connection {
            shown: format!("this server's API at {}", site.api),
            connection: http,
        },
        Needed::Variable {
            key: "data_sources".into(),
            value: DATA_SOURCES.into(),
            description: format!("{made_by}: the sources data_sources makes one task for"),
        },
    ])
}

/// The connection ids and variable keys a DAG names: literal `conn_id`s of tasks and
/// sensors, and `conn.ID`, `var.value.KEY`, `var.json.KEY` in any of its strings.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Names {
    pub connections: BTreeSet<String>,
    pub variables: BTreeSet<String>,
}

impl Names {
    pub fn of(dag: &Dag) -> Names {
        let mut names = Names::default();
        // A DAG is plain data; if it ever failed to serialize it would simply name nothing.
        if let Ok(value) = serde_json::to_value(dag) {
            names.collect(&value);
        }
        names
    }

    fn collect(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    if key == "conn_id"
                        && let Value::String(id) = item
                        && !id.contains("{{")
                    {
                        self.connections.insert(id.trim().to_string());
                    }
                    self.collect(item);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| self.collect(item)),
            Value::String(text) => {
                self.connections.extend(idents_after(text, "conn."));
                self.variables.extend(idents_after(text, "var.value."));
                self.variables.extend(idents_after(text, "var.json."));
            }
            _ => {}
        }
    }

    fn names(&self, needed: &Needed) -> bool {
        match needed {
            Needed::Connection { connection, .. } => self.connections.contains(&connection.conn_id),
            Needed::Variable { key, .. } => self.variables.contains(key),
        }
    }
}

/// The identifiers that follow `prefix` in `text` where `prefix` starts a name.
fn idents_after(text: &str, prefix: &str) -> Vec<String> {
    text.match_indices(prefix)
        .filter(|(at, _)| {
            !text[..*at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        })
        .map(|(at, _)| {
            text[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|ident| !ident.is_empty())
        .collect()
}

/// Whether the store or the environment already defines it.
async fn defined(store: &dyn Admin, env: &[Connection], needed: &Needed) -> Result<bool> {
    Ok(match needed {
        Needed::Connection { connection, .. } => {
            env.iter().any(|c| c.conn_id == connection.conn_id)
                || store.get_connection(&connection.conn_id).await?.is_some()
        }
        Needed::Variable { key, .. } => store.get_variable(key).await?.is_some(),
    })
}

/// The names of every YAML or JSON DAG in the folder that parses (broken files are the
/// scheduler's to report; Python files are left to the scheduler, whose import they would
/// cost here).
fn folder_names(dags_folder: &Path) -> Vec<(String, Names)> {
    DagFolder::new(dags_folder)
        .list_files()
        .iter()
        .filter(|file| file.extension().is_none_or(|e| e != "py"))
        .filter_map(|file| {
            let (bytes, _) = read_dag_file(file).ok()?;
            dag::parse_dag_bytes(&file.display().to_string(), &bytes).ok()
        })
        .map(|dag| {
            let names = Names::of(&dag);
            (dag.dag_id, names)
        })
        .collect()
}

/// Make each default that a DAG of the folder names and nothing defines yet, sealed by the
/// vault; returns one line per thing made. It runs before the API serves, so nothing else
/// of this standalone writes in between the check and the write.
pub async fn make_missing(
    store: &dyn Admin,
    vault: &Vault,
    env: &[Connection],
    dags_folder: &Path,
    site: &Site,
) -> Result<Vec<String>> {
    let dags = folder_names(dags_folder);
    let mut made = Vec::new();
    for needed in defaults(site)? {
        let users: Vec<&str> = dags
            .iter()
            .filter(|(_, names)| names.names(&needed))
            .map(|(dag_id, _)| dag_id.as_str())
            .collect();
        if users.is_empty() || defined(store, env, &needed).await? {
            continue;
        }
        let line = match &needed {
            Needed::Connection { connection, shown } => {
                store
                    .set_connection(&vault.seal_connection(connection))
                    .await
                    .with_context(|| format!("cannot create {}", needed.name()))?;
                format!("created {} ({shown})", needed.name())
            }
            Needed::Variable {
                key,
                value,
                description,
            } => {
                store
                    .set_variable(&vault.seal_variable(key, value, Some(description)))
                    .await
                    .with_context(|| format!("cannot create {}", needed.name()))?;
                format!("created {} ({value})", needed.name())
            }
        };
        made.push(format!("{line} for {}", users.join(", ")));
    }
    Ok(made)
}

/// For `dags test`: one line per default the DAG names that is not defined, saying what
/// makes it.
pub async fn missing_hints(
    dag: &Dag,
    store: &dyn Admin,
    env: &[Connection],
) -> Result<Vec<String>> {
    let names = Names::of(dag);
    // Which defaults there are does not depend on where they would point.
    let site = Site::new(
        Path::new(crate::settings::HOME),
        SocketAddr::from(([127, 0, 0, 1], 8080)),
    )?;
    let mut hints = Vec::new();
    for needed in defaults(&site)? {
        if !names.names(&needed) || defined(store, env, &needed).await? {
            continue;
        }
        let standalone = "start `dagctl standalone` once here to create it (`dags test` then \
                          finds it)";
        hints.push(match &needed {
            Needed::Connection { connection, .. } if connection.conn_type == "http" => format!(
                "note: DAG '{}' uses {}, which is not defined: `dagctl standalone` creates it, \
                 pointing at its own API, so test this DAG while a standalone started here runs \
                 (`dags test` finds the connection in its database); or run with \
                 {}=http://HOST:PORT of a running Updraft API",
                dag.dag_id,
                needed.name(),
                env_name(&connection.conn_id)
            ),
            Needed::Connection { connection, .. } => format!(
                "note: DAG '{}' uses {}, which is not defined: {standalone}; or run with \
                 {}=sqlite:////tmp/{SQLITE_FILE}",
                dag.dag_id,
                needed.name(),
                env_name(&connection.conn_id)
            ),
            Needed::Variable { key, value, .. } => format!(
                "note: DAG '{}' uses {}, which is not set: {standalone}; or set it on a running \
                 server with `dagctl variables set {key} '{value}'`",
                dag.dag_id,
                needed.name(),
            ),
        });
    }
    Ok(hints)
}

/// The environment variable that defines connection `conn_id`.
fn env_name(conn_id: &str) -> String {
    format!("UPDRAFT_CONN_{}", conn_id.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(yaml: &str) -> Names {
        let dag = dag::parse_dag_bytes("t.yaml", yaml.as_bytes()).expect("a valid DAG");
        Names::of(&dag)
    }

    #[test]
    fn a_dag_names_its_connections_and_variables() {
        let found = names(
            "tasks:\n  - {id: a, sql: {conn_id: sqlite_default, sql: 'select 1'}}\n  - id: b\n    sensor: {http: {conn_id: http_default, url: /x}}\n  - {id: c, bash: 'echo {{ conn.warehouse.host }} {{ var.json.data_sources }} {{ var.value.region }}'}\n  - {id: d, http: {conn_id: '{{ params.c }}', url: /y}}\n  - {id: e, bash: 'echo {{ myconn.x }} {{ env.var.json.y }}'}\n",
        );
        assert_eq!(
            found.connections,
            ["http_default", "sqlite_default", "warehouse"]
                .map(String::from)
                .into()
        );
        assert_eq!(
            found.variables,
            ["data_sources", "region"].map(String::from).into()
        );
    }

    #[test]
    fn defaults_point_at_this_site() {
        let site = Site::new(
            Path::new("/srv/x/.updraft"),
            "0.0.0.0:9090".parse().expect("addr"),
        )
        .expect("site");
        let made = defaults(&site).expect("defaults");
        let Needed::Connection { connection, .. } = &made[0] else {
            panic!("{made:?}")
        };
        assert_eq!(
            connection.host.as_deref(),
            Some("/srv/x/.updraft/sqlite_default.db")
        );
        let Needed::Connection { connection, .. } = &made[1] else {
            panic!("{made:?}")
        };
        assert_eq!(
            (
                connection.conn_type.as_str(),
                connection.host.as_deref(),
                connection.port
            ),
            ("http", Some("127.0.0.1"), Some(9090))
        );
        let Needed::Variable { value, .. } = &made[2] else {
            panic!("{made:?}")
        };
        let sources: Value = serde_json::from_str(value).expect("JSON");
        assert_eq!(sources[1]["table"], "orders");
    }
}
