//! Variables and connections as a user meets them: set with the CLI through the server,
//! sealed at rest, read by templates (and by `expand`), masked in task logs, also defined
//! from the environment.

use serde_json::json;

use crate::harness::{Sandbox, Server};

fn sandbox() -> Sandbox {
    let mut sandbox = Sandbox::with_examples();
    // A fixed key for the sandbox, as an operator would configure one.
    sandbox.set(
        "UPDRAFT__CORE__FERNET_KEY",
        "x9mJ8X5yJZ3b3hZHxv0d2Qp6g3sJY4Q2m3cVv8n8b0Q=",
    );
    sandbox.set(
        "UPDRAFT_CONN_ENV_API",
        "https://robot:env-pw@api.example:8443/v1?timeout=5",
    );
    sandbox
}

/// The sandbox with a standalone server it is logged in to.
fn served() -> (Sandbox, Server) {
    let mut sandbox = sandbox();
    let server = sandbox.standalone_logged_in();
    (sandbox, server)
}

fn ok(sandbox: &Sandbox, args: &[&str]) -> String {
    sandbox.ok(args)
}

#[test]
fn templates_read_variables_and_connections_and_logs_mask_secrets() {
    let (sandbox, _server) = served();
    ok(
        &sandbox,
        &[
            "variables",
            "set",
            "data_sources",
            r#"[{"name": "crm", "table": "customers"}, {"name": "erp", "table": "orders"}]"#,
        ],
    );
    ok(&sandbox, &["variables", "set", "api_token", "tok-123456"]);
    ok(
        &sandbox,
        &[
            "connections",
            "add",
            "warehouse",
            "--conn-uri",
            "postgres://ana:s3cr3t-pw@db.internal:5432/sales?sslmode=require",
        ],
    );

    // Sealed at rest: the database file never holds the secrets in the clear.
    let db = std::fs::read(sandbox.path().join(".updraft/updraft.db")).expect("database file");
    let wal = std::fs::read(sandbox.path().join(".updraft/updraft.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains("s3cr3t-pw") && !text.contains("tok-123456"),
            "secret stored in the clear"
        );
    }
    let listed = sandbox.json(&["connections", "list", "-o", "json"]);
    let ids: Vec<&str> = listed
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["connection_id"].as_str())
        .collect();
    // The server lists what it stores (with the two standalone made for the examples); a
    // connection from this shell's environment is only seen by the processes that have it.
    assert_eq!(ids, ["http_default", "sqlite_default", "warehouse"]);
    assert_eq!(listed[2]["host"], "db.internal");
    assert_eq!(listed[2]["port"], 5432);
    assert!(!listed.to_string().contains("s3cr3t-pw"), "{listed}");
    // A secret-looking variable never leaves the server in the clear.
    assert_eq!(
        ok(&sandbox, &["variables", "get", "api_token"]).trim(),
        "***"
    );

    // Expand over a Variable: one instance per source.
    let out = sandbox.run(&["dags", "test", "data_sources", "-o", "json"]);
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        result,
        json!({"state": "success", "tasks": {
            "process_source[0]": "success", "process_source[1]": "success", "summary": "success"
        }})
    );
    assert!(
        logs.contains("processing crm.customers") && logs.contains("processing erp.orders"),
        "{logs}"
    );
    assert!(logs.contains("processed 2 sources"), "{logs}");

    // Connections and secret variables in templates; their secrets masked in the log.
    sandbox.write_dag(
        "uses_secrets.yaml",
        "tasks:\n  - id: connect\n    bash: 'echo host={{ conn.warehouse.host }}:{{ conn.warehouse.port }} mode={{ conn.warehouse.extra.sslmode }} pw={{ conn.warehouse.password }} token={{ var.value.api_token }} env={{ conn.env_api.host }}'\n",
    );
    let out = sandbox.run(&["dags", "test", "uses_secrets"]);
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    assert!(
        logs.contains("host=db.internal:5432 mode=require pw=*** token=*** env=api.example"),
        "{logs}"
    );
    assert!(
        !logs.contains("s3cr3t-pw") && !logs.contains("tok-123456"),
        "{logs}"
    );
}

#[test]
fn a_missing_connection_or_variable_fails_the_task_naming_it() {
    let sandbox = sandbox();
    sandbox.write_dag(
        "missing.yaml",
        "tasks:\n  - {id: needs_conn, bash: 'echo {{ conn.nope.host }}'}\n  - {id: needs_var, bash: 'echo {{ var.value.absent }}'}\n  - {id: fine, bash: 'true'}\n",
    );
    let out = sandbox.run(&["dags", "test", "missing", "-o", "json"]);
    let logs = String::from_utf8_lossy(&out.stderr);
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        result,
        json!({"state": "failed", "tasks": {"needs_conn": "failed", "needs_var": "failed", "fine": "success"}})
    );
    assert!(logs.contains("connection 'nope' does not exist"), "{logs}");
    assert!(logs.contains("variable 'absent' is not set"), "{logs}");
}

#[test]
fn variables_and_connections_export_and_import() {
    let (sandbox, _server) = served();
    ok(
        &sandbox,
        &[
            "variables",
            "set",
            "region",
            "eu",
            "--description",
            "where we run",
        ],
    );
    ok(
        &sandbox,
        &[
            "connections",
            "add",
            "db",
            "--conn-type",
            "postgres",
            "--conn-host",
            "h",
            "--conn-password",
            "pw1",
            "--conn-port",
            "5432",
        ],
    );
    let vars = sandbox.path().join("vars.json");
    let conns = sandbox.path().join("conns.json");
    ok(
        &sandbox,
        &["variables", "export", vars.to_str().expect("path")],
    );
    ok(
        &sandbox,
        &["connections", "export", conns.to_str().expect("path")],
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&vars).expect("file"))
            .expect("json"),
        json!({
            "data_sources": r#"[{"name": "crm", "table": "customers"}, {"name": "erp", "table": "orders"}]"#,
            "region": "eu"
        })
    );
    ok(&sandbox, &["variables", "delete", "region"]);
    ok(&sandbox, &["connections", "delete", "db"]);
    let out = sandbox.run(&["variables", "get", "region"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("region") && stderr.lines().count() == 1,
        "{stderr}"
    );
    ok(
        &sandbox,
        &["variables", "import", vars.to_str().expect("path")],
    );
    ok(
        &sandbox,
        &["connections", "import", conns.to_str().expect("path")],
    );
    assert_eq!(ok(&sandbox, &["variables", "get", "region"]).trim(), "eu");
    let db = sandbox.json(&["connections", "get", "db", "-o", "json"]);
    assert_eq!(db["host"], "h");
    assert_eq!(db["port"], 5432);
    assert_ne!(db["password"], "pw1", "the API never shows a password");
}
