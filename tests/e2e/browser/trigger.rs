//! The Trigger dialog: a form made from a DAG's typed params (an integer with bounds, an
//! enum, a boolean, a list) with their defaults; a bad value comes back as the server's
//! message next to its field and makes no run; a good one makes exactly the run the form
//! showed, which then shows on the DAG's grid. The conf JSON and the form follow each other,
//! a logical date and a run id reach the run, and a taken run id is refused at its field.

use serde_json::{Value, json};

use super::{Browser, UiServer};
use crate::harness::Sandbox;

const DAG_ID: &str = "typed_params";

const DAG: &str = r#"
description: Loads rows into the warehouse; its params make the trigger form
schedule: null
start_date: 2024-01-01
params:
  rows: {default: 10, type: integer, minimum: 1, maximum: 1000, description: "How many rows to load"}
  mode: {default: fast, enum: [fast, slow, careful], description: "Load strategy"}
  dry_run: {default: false, type: boolean, description: "Only print what would be loaded"}
  tables: {default: [customers, orders], type: array, description: "Tables to copy"}
tasks:
  - {id: load, bash: 'echo "rows={{ params.rows }} mode={{ params.mode }}"'}
"#;

const DIALOG: &str = "dialog#trigger-dialog";
const SUBMIT: &str = "dialog#trigger-dialog button[data-trigger-submit]";

fn server() -> UiServer {
    let sandbox = Sandbox::new();
    sandbox.write_dag("typed_params.yaml", DAG);
    let ui = UiServer::start(sandbox);
    ui.wait_for_dag(DAG_ID);
    ui
}

/// The runs the API lists for the DAG.
fn runs(ui: &UiServer) -> Vec<Value> {
    ui.sandbox
        .json(&["dags", "list-runs", DAG_ID, "-o", "json"])
        .as_array()
        .expect("list-runs prints a list")
        .clone()
}

/// Go to `path` inside the app, as a link would (no page load).
fn visit(browser: &Browser, path: &str, page: &str) {
    browser.execute(&format!(
        "history.pushState(null, '', {path:?}); dispatchEvent(new PopStateEvent('popstate'));"
    ));
    browser.wait_for_attr("main#page", "data-page", page);
    browser.wait_for_attr("main#page", "data-ready", "true");
}

/// What the form's inputs hold now.
fn form_values(browser: &Browser) -> Value {
    browser.execute(
        "const d = document.querySelector('dialog#trigger-dialog');
         const mode = d.querySelector('select[name=mode]');
         return {
           rows: d.querySelector('input[name=rows]').value,
           mode: mode.options[mode.selectedIndex].text,
           dry_run: d.querySelector('input[name=dry_run]').checked,
           tables: JSON.parse(d.querySelector('textarea[name=tables]').value),
         };",
    )
}

fn conf_text(browser: &Browser) -> Value {
    let text = browser.execute(
        "return document.querySelector('dialog#trigger-dialog textarea[name=conf]').value",
    );
    serde_json::from_str(text.as_str().expect("the conf editor holds text"))
        .expect("the conf editor holds JSON")
}

fn open_from_dag_list(browser: &Browser) {
    browser.wait_for_attr("main#page", "data-page", "dags");
    browser.click(&format!(r#"tr[data-dag-id="{DAG_ID}"] button.trigger"#));
    browser.wait_for_attr(DIALOG, "data-ready", "true");
}

#[test]
fn a_bad_param_shows_the_servers_message_and_a_good_one_makes_the_run() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let ui = server();
    let browser = browser.on(&ui);
    browser.log_in("admin", &ui.admin_password);
    open_from_dag_list(&browser);

    // Every param has its input, filled with its default, with its description and bounds.
    assert_eq!(
        form_values(&browser),
        json!({"rows": "10", "mode": "fast", "dry_run": false, "tables": ["customers", "orders"]})
    );
    let choices = browser.execute(
        "return [...document.querySelector('dialog#trigger-dialog select[name=mode]').options].map((o) => o.text)",
    );
    assert_eq!(choices, json!(["fast", "slow", "careful"]));
    let rows = browser.text(r#".param-field[data-param="rows"]"#);
    assert!(
        rows.contains("How many rows to load") && rows.contains("from 1 to 1000"),
        "the rows field says {rows:?}"
    );
    assert!(
        browser
            .text(r#".param-field[data-param="tables"]"#)
            .contains("Tables to copy")
    );
    browser.screenshot("trigger-dialog");

    // Below the minimum: the server's message, next to rows, and no run.
    browser.type_text(&format!("{DIALOG} input[name=rows]"), "0");
    browser.click(SUBMIT);
    let message = browser.wait_for_text(
        r#".param-field[data-param="rows"] [data-error-for="rows"]"#,
        "must be at least 1",
    );
    assert!(message.contains("got 0"), "the rows error says {message:?}");
    for other in ["mode", "dry_run", "tables"] {
        let text = browser
            .try_text(&format!(r#"[data-error-for="{other}"]"#))
            .unwrap_or_default();
        assert!(text.is_empty(), "{other} shows an error too: {text:?}");
    }
    assert!(
        browser.exists(DIALOG),
        "the dialog closed on a refused trigger"
    );
    browser.screenshot("trigger-dialog-error");
    assert_eq!(
        runs(&ui),
        Vec::<Value>::new(),
        "a refused trigger made a run"
    );

    // Text for an integer: the server says what type it wants.
    browser.type_text(&format!("{DIALOG} input[name=rows]"), "many");
    browser.click(SUBMIT);
    browser.wait_for_text(r#"[data-error-for="rows"]"#, "must be of type integer");
    assert_eq!(
        runs(&ui),
        Vec::<Value>::new(),
        "a refused trigger made a run"
    );

    // Good values in every kind of input; the conf JSON follows the form.
    browser.type_text(&format!("{DIALOG} input[name=rows]"), "25");
    browser.click(&format!("{DIALOG} select[name=mode] option[value='1']"));
    browser.click(r#".param-field[data-param="dry_run"] label.switch span"#);
    browser.type_text(
        &format!("{DIALOG} textarea[name=tables]"),
        r#"["customers"]"#,
    );
    browser.type_text("#trigger-run-id", "ui_trigger_1");
    assert_eq!(
        form_values(&browser),
        json!({"rows": "25", "mode": "slow", "dry_run": true, "tables": ["customers"]})
    );
    browser.click("#trigger-advanced summary");
    let wanted = json!({"rows": 25, "mode": "slow", "dry_run": true, "tables": ["customers"]});
    assert_eq!(
        conf_text(&browser),
        wanted,
        "the conf JSON does not follow the form"
    );
    let error = browser
        .try_text(r#"[data-error-for="rows"]"#)
        .unwrap_or_default();
    assert!(error.is_empty(), "editing rows left its error: {error:?}");

    browser.click(SUBMIT);
    browser.wait_for_absent(DIALOG);
    browser.wait_for_text("#toasts", "Triggered ui_trigger_1");
    // From the DAG list, the user is taken to the DAG's grid, where the run shows.
    browser.wait_for_path(&format!("/dags/{DAG_ID}"));
    browser.wait_for(&format!(
        r#"main#page a[href="/dags/{DAG_ID}/runs/ui_trigger_1"]"#
    ));
    browser.screenshot("trigger-run-in-grid");

    let made = runs(&ui);
    assert_eq!(made.len(), 1, "one trigger, runs: {made:?}");
    assert_eq!(made[0]["dag_run_id"], "ui_trigger_1");
    assert_eq!(made[0]["run_type"], "manual");
    assert_eq!(made[0]["conf"], wanted);
}

#[test]
fn the_conf_json_fills_the_form_and_a_taken_run_id_is_refused_at_its_field() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let ui = server();
    ui.sandbox
        .ok(&["dags", "trigger", DAG_ID, "--run-id", "taken"]);
    let browser = browser.on(&ui);
    browser.log_in("admin", &ui.admin_password);
    // From the DAG's own page this time.
    visit(&browser, &format!("/dags/{DAG_ID}"), "dag");
    browser.click("main#page button.trigger");
    browser.wait_for_attr(DIALOG, "data-ready", "true");

    // Typing the conf JSON fills the form's inputs.
    browser.click("#trigger-advanced summary");
    let typed = json!({"rows": 7, "mode": "careful", "dry_run": true, "tables": ["x"], "note": "from JSON"});
    browser.type_text(&format!("{DIALOG} textarea[name=conf]"), &typed.to_string());
    assert_eq!(
        form_values(&browser),
        json!({"rows": "7", "mode": "careful", "dry_run": true, "tables": ["x"]})
    );

    // JSON that does not parse is caught as it is typed, and nothing is sent.
    browser.type_text(&format!("{DIALOG} textarea[name=conf]"), r#"{"rows": "#);
    browser.wait_for_text(r#"[data-error-for="conf"]"#, "Not valid JSON");
    browser.click(SUBMIT);
    assert!(browser.exists(DIALOG), "invalid JSON closed the dialog");
    assert_eq!(runs(&ui).len(), 1, "invalid JSON made a run");

    // A run id that is taken: the server's message, at the run id.
    browser.type_text(&format!("{DIALOG} textarea[name=conf]"), &typed.to_string());
    browser.type_text("#trigger-run-id", "taken");
    browser.click(SUBMIT);
    browser.wait_for_text(r#"[data-error-for="dag_run_id"]"#, "taken");
    assert_eq!(runs(&ui).len(), 1, "a taken run id made a run");

    // A new id and a logical date (read in UTC, the app's default zone) make the run,
    // with the extra key of the JSON in its conf; the page stays on the DAG.
    browser.type_text("#trigger-run-id", "from_json");
    browser.execute("document.querySelector('#trigger-logical-date').value = '2024-03-01T10:30';");
    browser.click(SUBMIT);
    browser.wait_for_absent(DIALOG);
    browser.wait_for(&format!(
        r#"main#page a[href="/dags/{DAG_ID}/runs/from_json"]"#
    ));
    assert_eq!(browser.path(), format!("/dags/{DAG_ID}"));
    let made = runs(&ui);
    let run = made
        .iter()
        .find(|r| r["dag_run_id"] == "from_json")
        .unwrap_or_else(|| panic!("no run from_json in {made:?}"));
    assert_eq!(run["conf"], typed);
    let logical = run["logical_date"].as_str().expect("a logical date");
    assert!(
        logical.starts_with("2024-03-01T10:30:00"),
        "the run's logical date is {logical}"
    );
}
