//! The UI's speed where deployments live, measured in the browser and printed for the record
//! (figures, not assertions, since this machine is noisy): the DAG list over 1,000 DAGs, from
//! a click and from a cold load, and the bytes the pages cost on the wire.

use super::{Browser, UiServer};
use crate::harness::Sandbox;

const DAGS: usize = 1_000;

#[test]
fn the_dag_list_over_a_thousand_dags_and_the_bytes_it_costs() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    for i in 0..DAGS {
        sandbox.write_dag(
            &format!("dag_{i:04}.yaml"),
            &format!(
                "description: generated DAG number {i}\ntags: [team_{}, generated]\n\
                 tasks:\n  - {{id: extract, bash: 'true'}}\n  \
                 - {{id: load, bash: 'true', depends_on: [extract]}}\n",
                i % 7
            ),
        );
    }
    let ui = UiServer::start(sandbox);
    ui.wait_for_dag(&format!("dag_{:04}", DAGS - 1));
    let browser = browser.on(&ui);
    browser.log_in("admin", &ui.admin_password);

    // Cold: a full page load of /dags (the shell, its scripts, then the data).
    browser.goto("/dags");
    browser.wait_for_attr("main#page", "data-ready", "true");
    browser.wait_for(r#"table#dag-list tr[data-dag-id="dag_0000"]"#);
    let total = browser.wait_for_text(".pager", "1000 DAGs");
    assert!(total.contains("Page 1 of 40"), "{total}");
    assert_eq!(browser.count("table#dag-list tbody tr"), 25);
    let cold_ms = browser
        .attr("main#page", "data-ready-at")
        .unwrap_or_default();

    // Warm: moving to the next page inside the app.
    browser.click(".pager button:last-of-type");
    browser.wait_for(r#"table#dag-list tr[data-dag-id="dag_0025"]"#);
    browser.wait_for_attr("main#page", "data-ready", "true");
    let search_start = browser.execute("return performance.now()");
    browser.type_text("#dag-search", "dag_0999");
    browser.wait_until("the search to leave one row", |b| {
        (b.count("table#dag-list tbody tr") == 1 && b.exists(r#"tr[data-dag-id="dag_0999"]"#))
            .then_some(())
    });
    let search_ms = browser
        .execute("return performance.now()")
        .as_f64()
        .zip(search_start.as_f64())
        .map_or(f64::NAN, |(end, start)| end - start);
    browser.screenshot("speed-dag-list-1000");

    // What the app's files cost as sent (compressed), and how many there are.
    let assets = browser.execute(
        "return performance.getEntriesByType('resource')
            .filter(e => new URL(e.name).pathname.startsWith('/static/'))
            .map(e => [new URL(e.name).pathname, e.encodedBodySize, e.decodedBodySize])",
    );
    let assets = assets.as_array().cloned().unwrap_or_default();
    let sent: f64 = assets.iter().filter_map(|a| a[1].as_f64()).sum();
    let decoded: f64 = assets.iter().filter_map(|a| a[2].as_f64()).sum();
    assert!(
        !assets.is_empty(),
        "the page loaded its files from /static/"
    );
    assert!(
        sent <= 500.0 * 1024.0,
        "the UI's files cost {sent} bytes on the wire, over the 500 KB budget: {assets:?}"
    );
    println!(
        "ui speed: DAG list of {DAGS} DAGs ready {cold_ms} ms after a cold load; \
         search to one row {search_ms:.0} ms; {} files loaded, {:.1} KB sent compressed \
         ({:.1} KB uncompressed)",
        assets.len(),
        sent / 1024.0,
        decoded / 1024.0
    );
}
