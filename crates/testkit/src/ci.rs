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

/// Whether `python3` can be started here, under the same rule: a test that needs it is
/// skipped on a machine without it, and fails under `CI=true`.
pub fn python3_available() -> bool {
    match std::process::Command::new("python3")
        .arg("--version")
        .output()
    {
        Ok(out) if out.status.success() => true,
        Ok(out) => unavailable::<()>(
            "python3",
            format!("`python3 --version` exited {}", out.status),
        )
        .is_some(),
        Err(err) => unavailable::<()>("python3", err).is_some(),
    }
}
