//! The admin pages: variables created, edited and deleted through the UI (secrets masked),
//! connections whose stored password is never shown and survives an edit, pools with their
//! usage moving live as tasks take slots (and default_pool refusing deletion), import errors
//! with their `file:line:col`, users added and deleted by an Admin; and a Viewer, who sees
//! no write control anywhere, and whose forged requests the server refuses — without the
//! CSRF header by the CSRF check, with it by the role check.

use serde_json::{Value, json};

use super::{Browser, Role, UiServer};
use crate::harness::Sandbox;

/// Go to `path` inside the app, as a link would (no page load).
fn visit(browser: &Browser, path: &str, page: &str) {
    browser.execute(&format!(
        "history.pushState(null, '', {path:?}); dispatchEvent(new PopStateEvent('popstate'));"
    ));
    browser.wait_for_attr("main#page", "data-page", page);
    browser.wait_for_attr("main#page", "data-ready", "true");
}

/// A request from the page itself with its session cookie (a synchronous XHR, so that the
/// WebDriver script returns its answer): `[status, body]`. With `csrf`, the session's CSRF
/// header is sent, read from `/ui/session` as the app reads it.
fn page_request(
    browser: &Browser,
    method: &str,
    path: &str,
    body: &Value,
    csrf: bool,
) -> (u64, String) {
    let answer = browser.execute(&format!(
        "const session = new XMLHttpRequest();
         session.open('GET', '/ui/session', false);
         session.send();
         const info = JSON.parse(session.responseText);
         const x = new XMLHttpRequest();
         x.open({method:?}, {path:?}, false);
         x.setRequestHeader('Content-Type', 'application/json');
         if ({csrf}) x.setRequestHeader(info.csrf_header, info.csrf_token);
         x.send({body:?});
         return [x.status, x.responseText];",
        body = body.to_string(),
    ));
    (
        answer[0].as_u64().expect("a status"),
        answer[1].as_str().unwrap_or_default().to_string(),
    )
}

fn variable(ui: &UiServer, key: &str) -> Option<String> {
    let out = ui.sandbox.run(&["variables", "get", key]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Toasts gone, so that a screenshot shows the page itself.
fn without_toasts(browser: &Browser) {
    browser.execute("document.getElementById('toasts').replaceChildren()");
}

fn page_text(browser: &Browser) -> String {
    browser.text("main#page")
}

#[test]
fn variables_are_created_edited_and_deleted_through_the_ui() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let ui = UiServer::start(Sandbox::new());
    let browser = browser.on(&ui);
    browser.log_in("admin", &ui.admin_password);

    // None yet: the empty state says how to add one, with the CLI's real syntax.
    visit(&browser, "/variables", "variables");
    let hint = browser.wait_for_text("main#page .empty", "No variables yet");
    assert!(
        hint.contains("dagctl variables set KEY VALUE"),
        "the empty state says {hint:?}"
    );
    browser.screenshot("variables-empty");

    // Add one.
    browser.click("#add-variable");
    browser.wait_for("dialog#variable-dialog");
    browser.type_text("#variable-dialog input[name=key]", "report_recipients");
    browser.type_text("#variable-dialog textarea[name=value]", "ops@example.com");
    browser.type_text(
        "#variable-dialog input[name=description]",
        "Who gets the daily report",
    );
    browser.click("#variable-dialog button[type=submit]");
    browser.wait_for_absent("dialog#variable-dialog");
    let row = browser.wait_for_text(r#"tr[data-key="report_recipients"]"#, "ops@example.com");
    assert!(
        row.contains("Who gets the daily report"),
        "the row shows {row:?}"
    );
    assert_eq!(
        variable(&ui, "report_recipients").as_deref(),
        Some("ops@example.com")
    );

    // The same key again: the server's 409, next to the key.
    browser.click("#add-variable");
    browser.type_text("#variable-dialog input[name=key]", "report_recipients");
    browser.type_text("#variable-dialog textarea[name=value]", "x");
    browser.click("#variable-dialog button[type=submit]");
    browser.wait_for_text(
        r#"#variable-dialog [data-error-for="key"]"#,
        "already exists",
    );
    browser.click("#variable-dialog header button.close");
    browser.wait_for_absent("dialog#variable-dialog");
    assert_eq!(
        variable(&ui, "report_recipients").as_deref(),
        Some("ops@example.com")
    );

    // Edit it.
    browser.click(r#"tr[data-key="report_recipients"] button.edit"#);
    browser.wait_for("dialog#variable-dialog");
    let key_readonly = browser
        .execute("return document.querySelector('#variable-dialog input[name=key]').readOnly");
    assert_eq!(
        key_readonly,
        json!(true),
        "the key of an edited variable can be changed"
    );
    browser.type_text(
        "#variable-dialog textarea[name=value]",
        "data-team@example.com",
    );
    browser.click("#variable-dialog button[type=submit]");
    browser.wait_for_absent("dialog#variable-dialog");
    browser.wait_for_text(
        r#"tr[data-key="report_recipients"]"#,
        "data-team@example.com",
    );
    assert_eq!(
        variable(&ui, "report_recipients").as_deref(),
        Some("data-team@example.com")
    );

    // A secret-looking key: masked in the list, and its edit dialog does not hold it.
    ui.sandbox
        .ok(&["variables", "set", "warehouse_password", "hunter2-secret"]);
    ui.sandbox.ok(&[
        "variables",
        "set",
        "data_sources",
        r#"[{"name": "crm", "table": "customers"}, {"name": "erp", "table": "orders"}]"#,
        "--description",
        "Sources the data_sources DAG maps over",
    ]);
    ui.sandbox
        .ok(&["variables", "set", "greeting", "Hello from Updraft"]);
    visit(&browser, "/variables?page=1", "variables");
    let secret = browser.text(r#"tr[data-key="warehouse_password"]"#);
    assert!(
        secret.contains("secret"),
        "the secret's row shows {secret:?}"
    );
    assert!(
        !page_text(&browser).contains("hunter2"),
        "the page shows a secret variable's value"
    );
    browser.click(r#"tr[data-key="warehouse_password"] button.edit"#);
    browser.wait_for("dialog#variable-dialog");
    let shown = browser
        .execute("return document.querySelector('#variable-dialog textarea[name=value]').value");
    assert_eq!(shown, json!(""), "the edit dialog holds the secret");
    browser.click("#variable-dialog header button.close");
    browser.wait_for_absent("dialog#variable-dialog");
    without_toasts(&browser);
    browser.screenshot("variables");

    // Search narrows the list and stays in the URL.
    browser.type_text("#variable-search", "data");
    browser.wait_until("the search to leave only data_sources", |b| {
        (b.count("#variable-list tbody tr") == 1 && b.exists(r#"tr[data-key="data_sources"]"#))
            .then_some(())
    });
    assert!(
        browser.path().contains("search=data"),
        "the URL is {}",
        browser.path()
    );
    browser.type_text("#variable-search", "report");
    browser.wait_until("the search to leave only report_recipients", |b| {
        (b.count("#variable-list tbody tr") == 1 && b.exists(r#"tr[data-key="report_recipients"]"#))
            .then_some(())
    });

    // Delete, after a confirmation.
    browser.click(r#"tr[data-key="report_recipients"] button.delete"#);
    browser.click("dialog button[data-confirm]");
    browser.wait_for_absent(r#"tr[data-key="report_recipients"]"#);
    assert_eq!(
        variable(&ui, "report_recipients"),
        None,
        "the deleted variable is still there"
    );

    // The page's own requests need the CSRF header: without it the server refuses, with it
    // an Op's request goes through (what the Viewer test's refusals are measured against).
    let body = json!({"key": "from_the_page", "value": "1"});
    let (status, answer) = page_request(&browser, "POST", "/api/v2/variables", &body, false);
    assert_eq!(status, 403, "without the CSRF header: {answer}");
    assert!(answer.contains("x-csrf-token"), "the refusal says {answer}");
    assert_eq!(variable(&ui, "from_the_page"), None);
    let (status, answer) = page_request(&browser, "POST", "/api/v2/variables", &body, true);
    assert_eq!(status, 201, "with the CSRF header, as Admin: {answer}");
    assert_eq!(variable(&ui, "from_the_page").as_deref(), Some("1"));
}

const POOLED: &str = r#"
description: Three slow loads that share a pool of two slots
schedule: null
start_date: 2024-01-01
tasks:
  - {id: load_a, bash: 'sleep 12', pool: narrow}
  - {id: load_b, bash: 'sleep 12', pool: narrow}
  - {id: load_c, bash: 'sleep 12', pool: narrow}
"#;

fn exported_connections(ui: &UiServer) -> Value {
    let file = ui.sandbox.path().join("connections-export.json");
    ui.sandbox
        .ok(&["connections", "export", &file.display().to_string()]);
    serde_json::from_str(&std::fs::read_to_string(&file).expect("the export file")).expect("JSON")
}

#[test]
fn connections_keep_their_secrets_and_pools_show_their_usage_live() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write_dag("pooled.yaml", POOLED);
    let ui = UiServer::start(sandbox);
    ui.wait_for_dag("pooled");
    ui.sandbox.ok(&[
        "pools",
        "set",
        "narrow",
        "2",
        "--description",
        "Two loads at a time",
    ]);
    ui.sandbox
        .ok(&["pools", "set", "etl", "8", "--description", "ETL slots"]);
    ui.sandbox.ok(&[
        "connections",
        "add",
        "warehouse",
        "--conn-uri",
        "postgres://ana:s3cret-pw@db.internal:5432/sales",
        "--conn-description",
        "Sales warehouse",
    ]);
    let browser = browser.on(&ui);
    browser.log_in("admin", &ui.admin_password);

    // A stored password shows as set, never as itself.
    visit(&browser, "/connections", "connections");
    let row = browser.text(r#"tr[data-conn-id="warehouse"]"#);
    for part in [
        "postgres",
        "db.internal",
        "5432",
        "sales",
        "ana",
        "set",
        "Sales warehouse",
    ] {
        assert!(
            row.contains(part),
            "the warehouse row lacks {part:?}: {row:?}"
        );
    }
    assert!(
        !page_text(&browser).contains("s3cret"),
        "the page shows a password"
    );

    // Add one through the UI.
    browser.click("#add-connection");
    browser.wait_for("dialog#connection-dialog");
    browser.type_text(
        "#connection-dialog input[name=connection_id]",
        "partner_api",
    );
    browser.type_text("#connection-dialog input[name=conn_type]", "https");
    browser.type_text("#connection-dialog input[name=host]", "api.partner.example");
    browser.type_text("#connection-dialog input[name=port]", "x");
    browser.type_text("#connection-dialog input[name=password]", "pw-one");
    browser.type_text(
        "#connection-dialog textarea[name=extra]",
        r#"{"timeout": 30"#,
    );
    browser.click("#connection-dialog button[type=submit]");
    browser.wait_for_text(
        r#"#connection-dialog [data-error-for="port"]"#,
        "1 to 65535",
    );
    browser.wait_for_text(
        r#"#connection-dialog [data-error-for="extra"]"#,
        "Not valid JSON",
    );
    browser.type_text("#connection-dialog input[name=port]", "443");
    browser.type_text(
        "#connection-dialog textarea[name=extra]",
        r#"{"timeout": 30}"#,
    );
    browser.click("#connection-dialog button[type=submit]");
    browser.wait_for_absent("dialog#connection-dialog");
    browser.wait_for_text(r#"tr[data-conn-id="partner_api"]"#, "api.partner.example");
    let stored = &exported_connections(&ui)["partner_api"];
    assert_eq!(stored["password"], "pw-one", "stored: {stored}");
    assert_eq!(stored["port"], 443);

    // Editing without typing a password keeps the stored one.
    browser.click(r#"tr[data-conn-id="partner_api"] button.edit"#);
    browser.wait_for("dialog#connection-dialog");
    let shown = browser
        .execute("return document.querySelector('#connection-dialog input[name=password]').value");
    assert_eq!(shown, json!(""), "the edit dialog holds the password");
    browser.type_text(
        "#connection-dialog input[name=host]",
        "api2.partner.example",
    );
    browser.click("#connection-dialog button[type=submit]");
    browser.wait_for_absent("dialog#connection-dialog");
    browser.wait_for_text(r#"tr[data-conn-id="partner_api"]"#, "api2.partner.example");
    let stored = &exported_connections(&ui)["partner_api"];
    assert_eq!(stored["host"], "api2.partner.example");
    assert_eq!(
        stored["password"], "pw-one",
        "an edit lost the password: {stored}"
    );
    without_toasts(&browser);
    browser.screenshot("connections");

    // Delete one.
    browser.click(r#"tr[data-conn-id="partner_api"] button.delete"#);
    browser.click("dialog button[data-confirm]");
    browser.wait_for_absent(r#"tr[data-conn-id="partner_api"]"#);
    assert!(exported_connections(&ui).get("partner_api").is_none());

    // Pools: add, resize, and default_pool refusing deletion with the server's message.
    visit(&browser, "/pools", "pools");
    browser.click("#add-pool");
    browser.wait_for("dialog#pool-dialog");
    browser.type_text("#pool-dialog input[name=name]", "reports");
    browser.type_text("#pool-dialog input[name=slots]", "3");
    browser.click("#pool-dialog button[type=submit]");
    browser.wait_for_absent("dialog#pool-dialog");
    browser.wait_for(r#"tr[data-pool="reports"]"#);
    browser.click(r#"tr[data-pool="reports"] button.edit"#);
    browser.type_text("#pool-dialog input[name=slots]", "-5");
    browser.click("#pool-dialog button[type=submit]");
    browser.wait_for_text(
        r#"#pool-dialog [data-error-for="slots"]"#,
        "greater than or equal to -1",
    );
    browser.type_text("#pool-dialog input[name=slots]", "5");
    browser.click("#pool-dialog button[type=submit]");
    browser.wait_for_absent("dialog#pool-dialog");
    browser.wait_for_text(r#"tr[data-pool="reports"] td.slots"#, "5");
    let pools = ui.sandbox.json(&["pools", "list", "-o", "json"]);
    let reports = pools
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "reports"))
        .unwrap_or_else(|| panic!("no pool reports in {pools}"));
    assert_eq!(reports["slots"], 5);
    browser.click(r#"tr[data-pool="default_pool"] button.delete"#);
    browser.click("dialog button[data-confirm]");
    browser.wait_for_text("#toasts", "Default Pool can't be deleted");
    assert!(browser.exists(r#"tr[data-pool="default_pool"]"#));
    browser.click(r#"tr[data-pool="reports"] button.delete"#);
    browser.click("dialog button[data-confirm]");
    browser.wait_for_absent(r#"tr[data-pool="reports"]"#);

    // Three tasks in a pool of two: two run, one waits — shown without reloading the page.
    assert_eq!(browser.text(r#"tr[data-pool="narrow"] td.running"#), "0");
    ui.sandbox.ok(&["dags", "trigger", "pooled"]);
    browser.wait_for_text(r#"tr[data-pool="narrow"] td.running"#, "2");
    browser.wait_for_text(r#"tr[data-pool="narrow"] td.queued"#, "1");
    assert_eq!(browser.text(r#"tr[data-pool="narrow"] td.open"#), "0");
    without_toasts(&browser);
    browser.screenshot("pools");
}

#[test]
fn an_import_error_shows_its_file_line_and_column() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write_dag("hello.yaml", "tasks:\n  - {id: hello, bash: 'echo hi'}\n");
    sandbox.write_dag(
        "broken.yaml",
        "description: A DAG file with a typo\ntasks:\n  - {id: a, bash: 'echo a'}\n  - id: b\n   bash: 'echo b'\n",
    );
    // Where the parser places the problem, from the CLI's own check of the folder.
    let validate = sandbox.run(&["dags", "validate"]);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );
    let place = report
        .lines()
        .find_map(|line| {
            let at = line.find("broken.yaml:")?;
            let rest = &line[at..];
            let mut parts = rest.splitn(4, ':');
            let (file, line_no, col) = (parts.next()?, parts.next()?, parts.next()?);
            (line_no.parse::<u32>().is_ok() && col.parse::<u32>().is_ok())
                .then(|| format!("{file}:{line_no}:{col}"))
        })
        .unwrap_or_else(|| panic!("dags validate names no place in broken.yaml: {report}"));
    let ui = UiServer::start(sandbox);
    ui.wait_for_dag("hello");
    let browser = browser.on(&ui);
    browser.log_in("admin", &ui.admin_password);

    // The DAG list's banner leads to the import errors.
    browser.click("#import-error-banner a");
    browser.wait_for_attr("main#page", "data-page", "import-errors");
    browser.wait_for_attr("main#page", "data-ready", "true");
    let card = browser.wait_for_text(r#"article.import-error[data-file$="broken.yaml"]"#, &place);
    let message = browser.text("article.import-error pre.import-message");
    assert!(
        message.contains(&place),
        "the message {message:?} lacks {place}"
    );
    let heading = browser.text("article.import-error h2.import-file");
    assert!(
        heading.ends_with(&place),
        "the heading {heading:?} does not end with {place}: {card:?}"
    );
    let white_space = browser.execute(
        "return getComputedStyle(document.querySelector('pre.import-message')).whiteSpace",
    );
    assert_eq!(white_space, json!("pre-wrap"));
    without_toasts(&browser);
    browser.screenshot("import-errors");

    // Fixed: the page says every file imported.
    ui.sandbox
        .write_dag("broken.yaml", "tasks:\n  - {id: a, bash: 'echo a'}\n");
    browser.wait_until("the import error to go away", |b| {
        visit(b, "/import-errors", "import-errors");
        b.try_text("main#page .empty")
            .filter(|text| text.contains("All DAG files imported"))
    });
    browser.screenshot("import-errors-none");
}

#[test]
fn an_admin_manages_users_and_a_viewer_can_change_nothing() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write_dag(
        "hello.yaml",
        "description: Says hello\ntasks:\n  - {id: hello, bash: 'echo hi'}\n",
    );
    let ui = UiServer::start(sandbox);
    ui.wait_for_dag("hello");
    ui.create_user("vera", Role::Viewer, "viewer-pass-1");
    ui.create_user("uma", Role::User, "user-pass-1");
    let browser = browser.on(&ui);
    browser.log_in("admin", &ui.admin_password);

    // Users: yourself marked and not deletable; add one (the passwords must match).
    visit(&browser, "/users", "users");
    let own = browser.text(r#"tr[data-username="admin"]"#);
    assert!(
        own.contains("you") && own.contains("Admin"),
        "the admin row shows {own:?}"
    );
    let disabled = browser.execute(
        "return document.querySelector('tr[data-username=\"admin\"] button.delete').disabled",
    );
    assert_eq!(disabled, json!(true), "an admin may delete themself");
    browser.click("#add-user");
    browser.wait_for("dialog#user-dialog");
    browser.type_text("#user-dialog input[name=username]", "olga");
    browser.type_text("#user-dialog input[name=password]", "op-pass-1");
    browser.type_text("#user-dialog input[name=password_again]", "op-pass-2");
    browser.click("#user-dialog select[name=role] option[value=Op]");
    browser.click("#user-dialog button[type=submit]");
    browser.wait_for_text(
        r#"#user-dialog [data-error-for="password_again"]"#,
        "differ",
    );
    browser.type_text("#user-dialog input[name=password_again]", "op-pass-1");
    browser.click("#user-dialog button[type=submit]");
    browser.wait_for_absent("dialog#user-dialog");
    browser.wait_for_text(r#"tr[data-username="olga"]"#, "Op");
    let users = ui.sandbox.json(&["users", "list", "-o", "json"]);
    assert!(
        users.as_array().is_some_and(|u| u
            .iter()
            .any(|u| u["username"] == "olga" && u["role"] == "Op")),
        "users list: {users}"
    );
    without_toasts(&browser);
    browser.screenshot("users");
    browser.click(r#"tr[data-username="uma"] button.delete"#);
    browser.click("dialog button[data-confirm]");
    browser.wait_for_absent(r#"tr[data-username="uma"]"#);
    let users = ui.sandbox.json(&["users", "list", "-o", "json"]);
    assert!(
        users
            .as_array()
            .is_some_and(|u| !u.iter().any(|u| u["username"] == "uma")),
        "uma is still a user: {users}"
    );

    // The Viewer: no trigger, no enabled pause toggle, no write control on any page.
    browser.click("#logout");
    browser.wait_for_path("/login");
    browser.log_in("vera", "viewer-pass-1");
    browser.wait_for_attr("main#page", "data-page", "dags");
    browser.wait_for(r#"tr[data-dag-id="hello"]"#);
    assert_eq!(
        browser.count("button.trigger"),
        0,
        "a Viewer sees a trigger button"
    );
    let toggles = browser.execute(
        "const t = [...document.querySelectorAll('input.pause-toggle')]; return [t.length, t.every((x) => x.disabled)];",
    );
    assert_eq!(
        toggles,
        json!([1, true]),
        "the Viewer's pause toggles (count, all disabled)"
    );
    browser.screenshot("viewer-dag-list");
    visit(&browser, "/dags/hello", "dag");
    assert_eq!(
        browser.count("main#page button.trigger"),
        0,
        "a Viewer sees a trigger on the DAG page"
    );
    visit(&browser, "/variables", "variables");
    browser.wait_for_text("#role-needed", "needs the Op role");
    for control in ["#add-variable", "button.edit", "button.delete"] {
        assert!(
            !browser.exists(control),
            "a Viewer sees {control} on /variables"
        );
    }
    browser.screenshot("viewer-variables");
    visit(&browser, "/connections", "connections");
    browser.wait_for_text("#role-needed", "needs the Op role");
    visit(&browser, "/pools", "pools");
    browser.wait_for(r#"tr[data-pool="default_pool"]"#);
    for control in ["#add-pool", "button.edit", "button.delete"] {
        assert!(
            !browser.exists(control),
            "a Viewer sees {control} on /pools"
        );
    }
    visit(&browser, "/users", "users");
    browser.wait_for_text("#role-needed", "needs the Admin role");

    // Forged requests with the Viewer's cookie: refused by the CSRF check without the header,
    // by the role check with it; nothing is made.
    let body = json!({"key": "forged", "value": "1"});
    let (status, answer) = page_request(&browser, "POST", "/api/v2/variables", &body, false);
    assert_eq!(status, 403, "no CSRF header: {answer}");
    assert!(
        answer.contains("x-csrf-token"),
        "not the CSRF check: {answer}"
    );
    let (status, answer) = page_request(&browser, "POST", "/api/v2/variables", &body, true);
    assert_eq!(status, 403, "a Viewer with the CSRF header: {answer}");
    assert!(
        answer.contains("needs the Op role"),
        "not the role check: {answer}"
    );
    let run = json!({"logical_date": null, "conf": {}});
    let (status, answer) = page_request(&browser, "POST", "/api/v2/dags/hello/dagRuns", &run, true);
    assert_eq!(status, 403, "a Viewer's trigger: {answer}");
    assert!(
        answer.contains("needs the User role"),
        "not the role check: {answer}"
    );
    let (status, answer) = page_request(
        &browser,
        "PATCH",
        "/api/v2/dags/hello",
        &json!({"is_paused": true}),
        false,
    );
    assert_eq!(status, 403, "a Viewer's pause without the header: {answer}");
    assert_eq!(
        variable(&ui, "forged"),
        None,
        "a forged request made a variable"
    );
    let runs = ui
        .sandbox
        .json(&["dags", "list-runs", "hello", "-o", "json"]);
    assert_eq!(runs, json!([]), "a forged request made a run");
}
