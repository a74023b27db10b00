//! Logging in and out of the web UI: a wrong password is refused with a message, the admin
//! lands on the DAG list, the session cookie is out of the page scripts' reach, logout
//! closes the session, and a user made with the CLI logs in too.

use super::{Browser, Role, UiServer};

const SUBMIT: &str = "form#login-form button[type=submit]";

/// The DAG list is loaded and shows `dag_id`.
fn wait_for_dag_list_with(browser: &Browser, dag_id: &str) {
    browser.wait_for_path("/dags");
    browser.wait_for_attr("main#page", "data-page", "dags");
    browser.wait_for_attr("main#page", "data-ready", "true");
    browser.wait_for(&format!(r#"table#dag-list tr[data-dag-id="{dag_id}"]"#));
}

#[test]
fn admin_logs_in_to_the_dag_list_and_out_again() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let ui = UiServer::examples();
    ui.wait_for_dag("hello");
    let browser = browser.on(&ui);

    // Logged out, the DAG list sends the browser to the login page.
    browser.goto("/dags");
    browser.wait_for_path("/login");
    browser.wait_for("form#login-form input#username");
    browser.wait_for("form#login-form input#password");
    browser.screenshot("login-page");

    // A wrong password: a message, still on the login page, no session.
    browser.type_text("input#username", "admin");
    browser.type_text("input#password", "not-the-password");
    browser.click(SUBMIT);
    let message = browser.wait_until("a message in #login-error", |b| {
        b.try_text("#login-error")
            .filter(|text| !text.trim().is_empty())
    });
    assert!(
        browser.path().starts_with("/login"),
        "a refused login left the login page for {} ({message:?})",
        browser.path()
    );
    assert!(
        browser.cookie("_token").is_none(),
        "a refused login set a session cookie"
    );
    browser.screenshot("login-wrong-password");

    // The right password lands on the DAG list, with the example DAGs.
    browser.type_text("input#username", "admin");
    browser.type_text("input#password", &ui.admin_password);
    browser.click(SUBMIT);
    wait_for_dag_list_with(&browser, "hello");
    let row = browser.text(r#"table#dag-list tr[data-dag-id="hello"]"#);
    assert!(row.contains("hello"), "the row of hello shows {row:?}");
    let listed: Vec<String> = ui
        .sandbox
        .json(&["dags", "list", "-o", "json"])
        .as_array()
        .expect("dags list prints a list")
        .iter()
        .filter_map(|dag| dag["dag_id"].as_str().map(str::to_string))
        .collect();
    assert!(listed.len() > 1, "the API lists {listed:?}");
    let rows = browser.texts("table#dag-list tr[data-dag-id]");
    assert_eq!(
        rows.len(),
        listed.len(),
        "the page lists {rows:#?}, the API {listed:?}"
    );
    for dag_id in &listed {
        let row = browser.text(&format!(r#"table#dag-list tr[data-dag-id="{dag_id}"]"#));
        assert!(
            row.contains(dag_id.as_str()),
            "the row of {dag_id} shows {row:?}"
        );
    }
    browser.screenshot("dags-list");

    // The session cookie is HttpOnly: sent with every request, unreadable by scripts.
    let cookie = browser
        .cookie("_token")
        .expect("a _token session cookie after login");
    assert_eq!(cookie.http_only(), Some(true), "_token is not HttpOnly");
    let script_view = browser.execute("return document.cookie");
    assert!(
        !script_view.as_str().unwrap_or_default().contains("_token"),
        "document.cookie shows the session: {script_view}"
    );

    // The session survives a reload.
    browser.goto("/dags");
    wait_for_dag_list_with(&browser, "hello");

    // Logout returns to the login page, and the DAG list is closed again.
    browser.click("#logout");
    browser.wait_for_path("/login");
    browser.wait_for("form#login-form");
    browser.wait_for_absent("#logout");
    browser.screenshot("logged-out");
    browser.goto("/dags");
    browser.wait_for_path("/login");
    browser.wait_for("form#login-form");
}

#[test]
fn users_of_every_role_created_with_the_cli_log_in() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let ui = UiServer::examples();
    ui.wait_for_dag("hello");
    let browser = browser.on(&ui);
    for (username, role) in [
        ("vera", Role::Viewer),
        ("uma", Role::User),
        ("otto", Role::Op),
        ("ada", Role::Admin),
    ] {
        let password = format!("{username}-password");
        ui.create_user(username, role, &password);
        browser.log_in(username, &password);
        wait_for_dag_list_with(&browser, "hello");
        browser.screenshot(&format!("dags-list-{role:?}").to_lowercase());
        browser.click("#logout");
        browser.wait_for_path("/login");
    }
}
