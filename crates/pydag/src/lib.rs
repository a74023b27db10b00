//! Airflow's own Python DAG files: the `airflow` compatibility package embedded in the
//! binary (`python/`), installed once per version into a folder every Python process Updraft
//! starts puts first on its path, and the importer that turns a `.py` file into DAG documents
//! through a warm, forking Python host.
//!
//! Running a task of such a DAG is the worker's: it forks the try from a warm zygote that
//! has loaded the DAG version ([`Zygotes`]), or starts the same host cold in `run` mode
//! ([`host_script`]) with the try's spec ([`spec::RunSpec`], the one place that document is
//! built). Python callbacks that no try's process runs (a DAG's, when a run ends; a task's,
//! when its try was killed or its worker died) run through the host's callback mode
//! ([`CallbackRun`]), started by the scheduler or the worker.
//!
//! Architecture invariant: a try's or a callback's process never sees Updraft's database
//! credentials ([`is_credential_variable`] names what is removed from its environment).

mod callback;
mod package;
mod parser;
pub mod spec;
mod zygote;

pub use callback::{CallbackEnd, CallbackError, CallbackOutput, CallbackRun};
pub use package::{PackageError, host_script, package_digest, package_dir};
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

/// True for environment variables that may carry the store's URL or credentials, which no
/// task or callback process may inherit. Matching is by name, so that a new config key under
/// `UPDRAFT__` is covered without a change here.
pub fn is_credential_variable(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("UPDRAFT__")
        || upper.contains("DATABASE_URL")
        || upper.contains("SQL_ALCHEMY_CONN")
}

/// Ask the kernel to SIGKILL the child `command` starts when its parent dies, and make the
/// start fail if the parent is already gone by then: the rule for a task process and for a
/// zygote alike, so that nothing a worker started outlives it.
///
/// The signal fires when the *thread* that forked the child exits. Children are spawned from
/// tokio runtime threads, which live as long as the runtime, so in practice this means the
/// process. (Code sharing that runtime must therefore not use `tokio::task::block_in_place`,
/// which can retire a runtime thread.) Grandchildren are not covered by the kernel here;
/// they die with the child's process group when it is ended normally.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn die_with_parent(command: &mut tokio::process::Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // functions may be called. It calls `prctl` and `getppid` (both plain system calls, which
    // are async-signal-safe), allocates nothing, takes no locks, and touches no state shared
    // with other threads: it only reads a copied `u32`.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then the signal would never
            // come, so give up now rather than run unsupervised.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Without Linux's parent-death signal, nothing is set.
#[cfg(not(target_os = "linux"))]
pub fn die_with_parent(_command: &mut tokio::process::Command) {}

/// Airflow's "safe mode" discovery: a `.py` file is a DAG file only if its text mentions both
/// `airflow` and `dag` (in any case), so helper modules in the folder are not imported.
pub fn looks_like_dag_file(bytes: &[u8]) -> bool {
    let lower = bytes.to_ascii_lowercase();
    let has = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    has(b"airflow") && has(b"dag")
}

#[cfg(test)]
mod tests {
    use super::{is_credential_variable, looks_like_dag_file};

    #[test]
    fn credential_variables_are_recognised() {
        for name in [
            "UPDRAFT__DATABASE__URL",
            "updraft__core__fernet_key",
            "DATABASE_URL",
            "MY_DATABASE_URL",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        ] {
            assert!(is_credential_variable(name), "{name}");
        }
        for name in ["PATH", "HOME", "UPDRAFT_DAG_ID", "DATABASE"] {
            assert!(!is_credential_variable(name), "{name}");
        }
    }

    #[test]
    fn safe_mode_needs_both_words() {
        assert!(looks_like_dag_file(b"from airflow import DAG"));
        assert!(looks_like_dag_file(b"import Airflow # my Dag"));
        assert!(!looks_like_dag_file(b"def extract_sales(): pass"));
        assert!(!looks_like_dag_file(b"# airflow helpers"));
    }
}
