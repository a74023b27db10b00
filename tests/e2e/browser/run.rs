//! The run page and the task instance page: a running task's log streams into the page
//! without a reload, and a log line of HTML shows as that text; a failed task is cleared
//! through the dialog (its dry-run list names it) and runs again live, with a new try tab;
//! a run is marked failed and success from its page, then deleted; a 100,000-line log opens
//! at once (the time to its first paint is printed) and its last line is reachable. Screenshots of both
//! pages go to `ui-screenshots/` (the README's come from here).

use std::time::Duration;

use super::{Browser, Role, UiServer};
use crate::harness::Sandbox;

const DAG: &str = "run_page";

/// Tasks that show every part of the two pages: a live log, markup in a log line, a failure
/// to clear, and a task downstream of them.
const DAG_FILE: &str = r#"
description: Run page and log view checks
schedule: null
tags: [ui]
params:
  lines: {default: 15, type: integer}
tasks:
  - id: ticker
    bash: 'for i in $(seq 1 {{ params.lines }}); do echo "tick $i"; echo "warn $i" >&2; sleep 0.3; done'
  - id: markup
    bash: |
      echo '<b>x</b><script>window.__injected = 1</script><img src=x onerror="window.__injected = 2">'
  - id: flaky
    bash: 'sleep 1; echo "about to fail"; exit 1'
    retries: 0
  - id: report
    bash: 'echo report'
    depends_on: [ticker, markup]
"#;

const LONG_DAG: &str = "run_long_log";
const LONG_DAG_FILE: &str = r#"
description: A task that writes 100,000 lines
schedule: null
tasks:
  - id: big
    bash: 'seq 1 100000'
"#;

const SLOW_DAG: &str = "run_marks";
const SLOW_DAG_FILE: &str = r#"
description: A run that runs long enough to be marked by hand
schedule: null
tasks:
  - id: slow
    bash: 'sleep 60'
  - id: after
    bash: 'echo after'
    depends_on: [slow]
"#;

/// A standalone on a sandbox holding the test DAGs, unpaused, with a logged-in browser.
fn start() -> Option<(Browser, UiServer)> {
    let browser = Browser::start()?;
    let sandbox = Sandbox::new();
    sandbox.write_dag(&format!("{DAG}.yaml"), DAG_FILE);
    sandbox.write_dag(&format!("{SLOW_DAG}.yaml"), SLOW_DAG_FILE);
    sandbox.write_dag(&format!("{LONG_DAG}.yaml"), LONG_DAG_FILE);
    let ui = UiServer::start(sandbox);
    for dag_id in [DAG, SLOW_DAG, LONG_DAG] {
        ui.wait_for_dag(dag_id);
        ui.sandbox.ok(&["dags", "unpause", dag_id]);
    }
    let browser = browser.on(&ui);
    browser.log_in("admin", &ui.admin_password);
    Some((browser, ui))
}

fn trigger(ui: &UiServer, dag_id: &str, run_id: &str) {
    ui.sandbox
        .ok(&["dags", "trigger", dag_id, "--run-id", run_id]);
}

fn run_path(dag_id: &str, run_id: &str) -> String {
    format!("/dags/{dag_id}/runs/{run_id}")
}

fn task_path(dag_id: &str, run_id: &str, task_id: &str) -> String {
    format!("{}/tasks/{task_id}", run_path(dag_id, run_id))
}

/// Open `path` and wait for its page to be ready.
fn open(browser: &Browser, path: &str, page: &str) {
    browser.goto(path);
    browser.wait_for_attr("main#page", "data-page", page);
    browser.wait_for_attr("main#page", "data-ready", "true");
}

/// Mark the page, so that a later check can tell it was never reloaded.
fn mark_page(browser: &Browser) {
    browser.execute("window.__runPageMark = 'still here';");
}

fn assert_not_reloaded(browser: &Browser, what: &str) {
    let mark = browser.execute("return window.__runPageMark || null;");
    assert_eq!(
        mark.as_str(),
        Some("still here"),
        "the page reloaded while {what}"
    );
}

/// The log view's number of lines.
fn log_lines(browser: &Browser) -> u64 {
    browser
        .attr("#log-view", "data-lines")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The texts of the log rows in the DOM now.
fn log_texts(browser: &Browser) -> Vec<String> {
    let value = browser.execute(
        "return [...document.querySelectorAll('#log-view .log-row .tx')].map(e => e.textContent);",
    );
    value
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_running_tasks_log_streams_in_and_markup_in_a_log_line_stays_text() {
    let Some((browser, ui)) = start() else {
        return;
    };
    trigger(&ui, DAG, "live_log");
    let ticker = task_path(DAG, "live_log", "ticker");
    open(&browser, &ticker, "task-instance");
    mark_page(&browser);

    // While the task runs, its lines arrive in the open page.
    browser.wait_for("#ti-state .state[data-state=running]");
    let first = browser.wait_until("the running task's first log lines", |b| {
        let n = log_lines(b);
        (n > 0).then_some(n)
    });
    let running = browser.wait_until("more log lines to arrive while the task runs", |b| {
        (log_lines(b) >= first + 4).then(|| b.exists("#ti-state .state[data-state=running]"))
    });
    assert!(
        running,
        "the lines arrived only after the task had finished"
    );
    assert_eq!(
        browser.attr("#log-status", "data-live").as_deref(),
        Some("true"),
        "the status line does not say the log is live"
    );
    browser.screenshot("task-instance-log-live");

    // Follow mode keeps the newest line in view until the try ends.
    browser.wait_for("#ti-state .state[data-state=success]");
    browser.wait_for_attr("#log-view", "data-ended", "true");
    browser.wait_until("the last tick in view", |b| {
        log_texts(b).iter().any(|t| t == "tick 15").then_some(())
    });
    assert_eq!(
        browser.attr("#log-follow", "aria-pressed").as_deref(),
        Some("true")
    );
    assert!(
        browser.exists("#log-view .log-row[data-stream=stderr]"),
        "stderr lines are not marked"
    );
    assert_not_reloaded(&browser, "the log streamed in");

    // Searching counts and highlights matches, and jumps between them.
    browser.type_text("#log-search", "tick 1");
    browser.wait_for_text("#log-matches", "of 7");
    let current = browser.text("#log-view .log-row.current .tx");
    assert!(current.starts_with("tick 1"), "current match: {current:?}");
    assert!(browser.exists("#log-view .log-row mark"));
    browser.click("#log-only-matches");
    browser.wait_until("only the matching lines", |b| {
        let texts = log_texts(b);
        (texts.len() == 7 && texts.iter().all(|t| t.contains("tick 1"))).then_some(())
    });
    browser.screenshot("task-instance-log-search");

    // A log line of markup is its literal text: no element, no script ran.
    let markup = task_path(DAG, "live_log", "markup");
    open(&browser, &markup, "task-instance");
    let line = browser.wait_until("the markup line", |b| {
        log_texts(b).into_iter().find(|t| t.starts_with("<b>x</b>"))
    });
    assert_eq!(
        line,
        r#"<b>x</b><script>window.__injected = 1</script><img src=x onerror="window.__injected = 2">"#
    );
    assert_eq!(
        browser.count("#log-view b, #log-view script, #log-view img"),
        0,
        "a log line became markup"
    );
    assert_eq!(
        browser.execute("return window.__injected || null;"),
        serde_json::Value::Null,
        "a log line ran a script"
    );

    // The rendered-templates tab shows the command rendered with the run's params.
    open(
        &browser,
        &format!("{ticker}/rendered_templates"),
        "task-instance",
    );
    browser.wait_for_text("#rendered", "for i in $(seq 1 15)");

    // The run page: every task instance, linking to its page, and a state filter.
    open(&browser, &run_path(DAG, "live_log"), "run");
    browser.wait_for(r#"#ti-table tr[data-task-id="report"][data-state=success]"#);
    browser.wait_for(r#"#ti-table tr[data-task-id="flaky"][data-state=failed]"#);
    browser.wait_for("#run-state .state[data-state=failed]");
    assert_eq!(browser.count("#ti-table tbody tr"), 4);
    let ticker_href = browser.attr(r#"#ti-table tr[data-task-id="ticker"] a"#, "href");
    assert_eq!(ticker_href.as_deref(), Some(ticker.as_str()));
    browser.wait_for_text("#fact-run-type", "Manual");
    browser.wait_for_text("#run-conf", "None");
    browser.screenshot("run-page");
    browser.click("#ti-state-filter button[data-state=failed]");
    browser.wait_until("only the failed task instance", |b| {
        (b.count("#ti-table tbody tr") == 1 && b.exists(r#"#ti-table tr[data-task-id="flaky"]"#))
            .then_some(())
    });
    assert!(
        browser.path().ends_with("?state=failed"),
        "the filter is not in the URL: {}",
        browser.path()
    );

    // A task's page opened before it starts says so, then shows its log once it runs.
    trigger(&ui, DAG, "early_look");
    open(
        &browser,
        &task_path(DAG, "early_look", "report"),
        "task-instance",
    );
    browser.wait_for_text("#log-placeholder", "Waiting for the task to start");
    mark_page(&browser);
    browser.wait_for("#ti-state .state[data-state=success]");
    browser.wait_until("the downstream task's log", |b| {
        log_texts(b).iter().any(|t| t == "report").then_some(())
    });
    assert_not_reloaded(&browser, "the task started and ran");
}

#[test]
fn a_failed_task_is_cleared_through_the_dialog_and_runs_again_live() {
    let Some((browser, ui)) = start() else {
        return;
    };
    trigger(&ui, DAG, "clear_me");
    let flaky = task_path(DAG, "clear_me", "flaky");
    open(&browser, &flaky, "task-instance");
    browser.wait_for("#ti-state .state[data-state=failed]");
    browser.wait_for_attr("#log-view", "data-ended", "true");
    browser.wait_until("the failure in the log", |b| {
        log_texts(b)
            .iter()
            .any(|t| t == "about to fail")
            .then_some(())
    });
    assert_eq!(browser.count("#log-view .log-tries a"), 1);
    mark_page(&browser);

    // The dialog lists what the server's dry run would clear: this task instance.
    browser.click("#ti-clear");
    browser.wait_for_attr("#clear-dialog", "data-ready", "true");
    let listed = browser.texts("#clear-list tbody tr td:first-child");
    assert_eq!(listed, vec!["flaky".to_string()], "the dry-run list");
    let confirm = browser.text("#clear-dialog button[data-confirm]");
    assert_eq!(confirm, "Clear 1 task instance");
    browser.screenshot("clear-task-dialog");
    browser.click("#clear-dialog button[data-confirm]");
    browser.wait_for_absent("#clear-dialog");

    // It runs again: the state changes live, and its new try gets a tab of its own.
    browser.wait_for(r#"#log-view .log-tries a[data-try="2"]"#);
    browser.wait_for("#ti-state .state[data-state=running]");
    browser.wait_for("#ti-state .state[data-state=failed]");
    browser.wait_for_text("#ti-try", "Try 2");
    browser.wait_for_attr("#log-view", "data-try", "2");
    browser.wait_until("try 2's log", |b| {
        log_texts(b)
            .iter()
            .any(|t| t.contains("try 2"))
            .then_some(())
    });
    assert_not_reloaded(&browser, "the task ran again");
    browser.screenshot("task-instance-after-clear");

    // The first try's log is still there under its tab.
    browser.click(r#"#log-view .log-tries a[data-try="1"]"#);
    browser.wait_for_attr("#log-view", "data-try", "1");
    browser.wait_until("try 1's log", |b| {
        log_texts(b)
            .iter()
            .any(|t| t.contains("try 1"))
            .then_some(())
    });
    assert!(
        browser.path().ends_with("?try=1"),
        "the try is not in the URL: {}",
        browser.path()
    );

    // Clearing the whole run lists the failed task instance when only failed ones are asked.
    open(&browser, &run_path(DAG, "clear_me"), "run");
    browser.wait_for(r#"#ti-table tr[data-task-id="report"][data-state=success]"#);
    browser.click("#run-clear");
    browser.wait_for_attr("#clear-dialog", "data-ready", "true");
    assert_eq!(browser.count("#clear-list tbody tr"), 4);
    browser.click("#clear-only-failed");
    browser.wait_until("the dry run of only the failed ones", |b| {
        (b.attr("#clear-dialog", "data-ready").as_deref() == Some("true")
            && b.texts("#clear-list tbody tr td:first-child") == vec!["flaky".to_string()])
        .then_some(())
    });
    browser.click("#clear-dialog button[data-confirm]");
    browser.wait_for_absent("#clear-dialog");
    browser.wait_until("flaky to run a third try", |b| {
        (b.text(r#"#ti-table tr[data-task-id="flaky"] td:nth-child(4)"#)
            .starts_with('3')
            && b.exists(r#"#ti-table tr[data-task-id="flaky"][data-state=failed]"#))
        .then_some(())
    });
}

#[test]
fn a_run_is_marked_failed_and_then_success_from_its_page() {
    let Some((browser, ui)) = start() else {
        return;
    };
    trigger(&ui, SLOW_DAG, "mark_me");
    open(&browser, &run_path(SLOW_DAG, "mark_me"), "run");
    browser.wait_for("#run-state .state[data-state=running]");
    browser.wait_for(r#"#ti-table tr[data-task-id="slow"][data-state=running]"#);
    mark_page(&browser);

    // The running duration ticks without a reload.
    let before = browser.text("#run-duration");
    browser.wait_until("the run's duration to tick", |b| {
        (b.text("#run-duration") != before).then_some(())
    });

    // Mark failed: the dialog names what changes; the run and its running task turn failed.
    browser.click("#run-mark-failed");
    browser.wait_for("dialog #affected-list");
    let changing = browser.texts("dialog #affected-list tbody tr td:first-child");
    assert!(
        changing.contains(&"slow".to_string()),
        "the mark dialog lists {changing:?}"
    );
    browser.screenshot("mark-run-dialog");
    browser.click("dialog button[data-confirm]");
    browser.wait_for("#run-state .state[data-state=failed]");
    browser.wait_for(r#"#ti-table tr[data-task-id="slow"][data-state=failed]"#);
    browser.wait_for(r#"#ti-table tr[data-task-id="after"][data-state=skipped]"#);
    assert!(browser.exists("#run-mark-failed[disabled]"));

    // Mark success.
    browser.click("#run-mark-success");
    browser.wait_for("dialog button[data-confirm]");
    browser.click("dialog button[data-confirm]");
    browser.wait_for("#run-state .state[data-state=success]");
    browser.wait_for_text("#fact-state", "success");
    assert_not_reloaded(&browser, "the run was marked");

    // Delete: confirmed, then back to the DAG.
    browser.click("#run-delete");
    browser.wait_for("dialog button[data-confirm]");
    browser.click("dialog button[data-confirm]");
    browser.wait_for_path(&format!("/dags/{SLOW_DAG}"));
    let runs = ui
        .sandbox
        .json(&["dags", "list-runs", SLOW_DAG, "-o", "json"]);
    assert_eq!(runs.as_array().map(Vec::len), Some(0), "runs left: {runs}");

    // A Viewer sees a run and its task instances, but no control that changes them.
    trigger(&ui, SLOW_DAG, "look_only");
    ui.create_user("watcher", Role::Viewer, "watcher-pass-1");
    browser.click("#logout");
    browser.wait_for_path("/login");
    browser.log_in("watcher", "watcher-pass-1");
    open(&browser, &run_path(SLOW_DAG, "look_only"), "run");
    browser.wait_for(r#"#ti-table tr[data-task-id="slow"]"#);
    assert_eq!(browser.count("#run-actions button"), 0, "a Viewer may act");
    open(
        &browser,
        &task_path(SLOW_DAG, "look_only", "slow"),
        "task-instance",
    );
    browser.wait_for("#log-view");
    assert_eq!(browser.count("#ti-actions button"), 0, "a Viewer may act");
}

#[test]
fn a_100k_line_log_opens_at_once_and_its_last_line_is_reachable() {
    let Some((browser, ui)) = start() else {
        return;
    };
    trigger(&ui, LONG_DAG, "long_log");
    open(&browser, &run_path(LONG_DAG, "long_log"), "run");
    browser.wait_for(r#"#ti-table tr[data-task-id="big"][data-state=success]"#);

    open(
        &browser,
        &task_path(LONG_DAG, "long_log", "big"),
        "task-instance",
    );
    let open_ms: u64 = browser.wait_until("the log's first paint", |b| {
        b.attr("#log-view", "data-open-ms")
            .and_then(|ms| ms.parse().ok())
    });
    println!("100,000-line log: first paint {open_ms} ms after the log view opened");
    assert!(
        open_ms < 3_000,
        "the 100k-line log took {open_ms} ms to show"
    );
    // Follow mode: the last line comes into view once every line has arrived. How soon they
    // all arrive is the server's reading speed (an unoptimized build reads about 20,000 lines
    // a second, slower on a busy machine), so this wait is longer.
    let browser = browser.with_wait(Duration::from_secs(60));
    browser.wait_for_attr("#log-view", "data-ended", "true");
    let browser = browser.with_wait(Duration::from_secs(20));
    let complete_ms = browser.attr("#log-view", "data-complete-ms");
    println!(
        "100,000-line log: every line received after {} ms",
        complete_ms.as_deref().unwrap_or("?")
    );
    assert_eq!(
        browser.attr("#log-view", "data-lines").as_deref(),
        Some("100004"),
        "start and command lines, 100,000 lines, exit and end lines"
    );
    browser.wait_until("the last number in view", |b| {
        log_texts(b).iter().any(|t| t == "100000").then_some(())
    });
    // Only the rows around the viewport exist.
    let rows = browser.count("#log-view .log-row");
    assert!(rows < 400, "{rows} log rows in the DOM");
    browser.screenshot("task-instance-long-log");

    // Top and bottom, and a search over every line.
    browser.click("#log-top");
    browser.wait_until("the first line in view", |b| {
        b.exists(r#"#log-view .log-row[data-n="1"]"#).then_some(())
    });
    assert_eq!(
        browser.attr("#log-follow", "aria-pressed").as_deref(),
        Some("false"),
        "follow mode stays on at the top"
    );
    browser.type_text("#log-search", "99999");
    browser.wait_for_text("#log-matches", "1 of 1");
    let current = browser.text("#log-view .log-row.current .tx");
    assert_eq!(current, "99999");
    browser.click("#log-bottom");
    browser.wait_until("the last line in view again", |b| {
        b.exists(r#"#log-view .log-row[data-n="100004"]"#)
            .then_some(())
    });

    // A link to a line opens the log at that line, marked.
    let big = task_path(LONG_DAG, "long_log", "big");
    open(&browser, &format!("{big}?try=1#L50002"), "task-instance");
    let pinned = browser.text(r#"#log-view .log-row.pinned[data-n="50002"] .tx"#);
    assert_eq!(pinned, "50000");
}
