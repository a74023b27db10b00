//! Airflow's own Python DAG files: the `airflow` compatibility package embedded in the
//! binary (`python/`), installed once per version into a folder every Python process Updraft
//! starts puts first on its path, and the importer that turns a `.py` file into DAG documents
//! through a warm, forking Python host.
//!
//! Running a task of such a DAG is the worker's: it forks the try from a warm zygote that
//! has loaded the DAG version ([`Zygotes`]), or starts the same host cold in `run` mode
//! ([`host_script`]) with the try's spec.

mod package;
mod parser;
mod zygote;

pub use package::{PackageError, host_script, package_dir};
pub use parser::{ImportFailure, PythonImporter};
pub use zygote::{ForkedTry, TryGuard, TryRequest, ZygoteError, Zygotes, signal_group};

use std::time::Duration;

/// The exit code of an Airflow task's try that failed in a way no retry may fix
/// (`AirflowFailException`, a sensor's timeout): the worker fails it for good.
pub const NO_RETRY_EXIT_CODE: i32 = 98;

/// How Python DAG files are imported (`core.python`, `core.dagbag_import_timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonSettings {
    /// The interpreter that imports DAG files and runs their Python tasks.
    pub interpreter: String,
    /// Longest one file's import may take.
    pub import_timeout: Duration,
}

impl Default for PythonSettings {
    fn default() -> Self {
        PythonSettings {
            interpreter: "python3".to_string(),
            import_timeout: Duration::from_secs(30),
        }
    }
}

/// Airflow's "safe mode" discovery: a `.py` file is a DAG file only if its text mentions both
/// `airflow` and `dag` (in any case), so helper modules in the folder are not imported.
pub fn looks_like_dag_file(bytes: &[u8]) -> bool {
    let lower = bytes.to_ascii_lowercase();
    let has = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    has(b"airflow") && has(b"dag")
}

#[cfg(test)]
mod tests {
    use super::looks_like_dag_file;

    #[test]
    fn safe_mode_needs_both_words() {
        assert!(looks_like_dag_file(b"from airflow import DAG"));
        assert!(looks_like_dag_file(b"import Airflow # my Dag"));
        assert!(!looks_like_dag_file(b"def extract_sales(): pass"));
        assert!(!looks_like_dag_file(b"# airflow helpers"));
    }
}
