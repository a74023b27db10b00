//! The one rule for a service a test needs but cannot reach: skipped with the reason printed
//! on a developer's machine, a failure under `CI=true`, where every test must really run.

use std::fmt::Display;

/// Whether this is a CI run (`CI=true`), where nothing may be skipped.
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|ci| ci == "true")
}

/// Report that `what` cannot be used, for `reason`: panics under `CI=true`, else prints why
/// the test is skipped. Returns `None` so that a fixture can end with it.
pub fn unavailable<T>(what: &str, reason: impl Display) -> Option<T> {
    if required() {
        panic!("{what} is required under CI=true but unavailable: {reason}");
    }
    eprintln!("skipping: {what} unavailable ({reason}); set CI=true to require it");
    None
}
