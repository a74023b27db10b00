//! The harness proven on a page the server has always served: `/docs`, the Swagger UI over
//! the OpenAPI document, rendered by a real Chromium.

use super::{Browser, UiServer};

#[test]
fn swagger_ui_shows_the_api_and_its_operations() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let ui = UiServer::start(crate::harness::Sandbox::new());
    let browser = browser.on(&ui);
    browser.goto("/docs");
    let title = browser.wait_for_text(".swagger-ui .info .title", "Updraft API");
    assert!(title.starts_with("Updraft API"), "title: {title:?}");
    // The operations come from /api/v2/openapi.json, fetched by the page's own script.
    browser.wait_for(r#".opblock-summary-path[data-path="/api/v2/dags"]"#);
    assert!(
        browser.count(".opblock") > 20,
        "only {} operations shown",
        browser.count(".opblock")
    );
    browser.screenshot("docs-swagger-ui");
}
