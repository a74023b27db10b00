//! The embedded `airflow` package and host script, written once per content hash into a
//! folder under the system's temporary directory (atomically: a whole copy is renamed into
//! place, so concurrent processes never see half a package).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

#[derive(RustEmbed)]
#[folder = "python/"]
#[exclude = "tests/*"]
#[exclude = "*__pycache__*"]
#[exclude = "*.pyc"]
struct Files;

/// The host script's file name inside the package folder.
const HOST: &str = "updraft_host.py";

/// Why the package could not be installed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("could not install Updraft's airflow package into {path}: {reason}")]
pub struct PackageError {
    pub path: String,
    pub reason: String,
}

/// The folder holding `airflow/` and `updraft_host.py`, installed on first use.
pub fn package_dir() -> Result<&'static Path, PackageError> {
    static DIR: OnceLock<Result<PathBuf, PackageError>> = OnceLock::new();
    DIR.get_or_init(install)
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(Clone::clone)
}

/// The host script (`parse` and `run` modes; see its docstring).
pub fn host_script() -> Result<PathBuf, PackageError> {
    package_dir().map(|dir| dir.join(HOST))
}

/// A short hash of the embedded package's content. A Python DAG file's version includes it,
/// so a new package (which may serialize the same file differently) makes a new version.
pub fn package_digest() -> &'static str {
    static DIGEST: OnceLock<String> = OnceLock::new();
    DIGEST.get_or_init(|| {
        let mut hash = Sha256::new();
        for name in sorted_names() {
            hash.update(name.as_bytes());
            if let Some(file) = Files::get(&name) {
                hash.update(&file.data);
            }
        }
        hash.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

fn sorted_names() -> Vec<String> {
    let mut names: Vec<String> = Files::iter().map(|n| n.into_owned()).collect();
    names.sort();
    names
}

fn install() -> Result<PathBuf, PackageError> {
    let names = sorted_names();
    let root = std::env::temp_dir().join(format!("updraft-python-{}", package_digest()));
    if root.join(HOST).is_file() {
        return Ok(root);
    }
    let fail = |path: &Path, reason: String| PackageError {
        path: path.display().to_string(),
        reason,
    };
    let staging = tempfile::Builder::new()
        .prefix("updraft-python-staging-")
        .tempdir()
        .map_err(|e| fail(&std::env::temp_dir(), e.to_string()))?;
    for name in &names {
        let Some(file) = Files::get(name) else {
            continue;
        };
        let path = staging.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(parent, e.to_string()))?;
        }
        std::fs::write(&path, &file.data).map_err(|e| fail(&path, e.to_string()))?;
    }
    let staged = staging.keep();
    match std::fs::rename(&staged, &root) {
        Ok(()) => Ok(root),
        // Another process installed the same content first.
        Err(_) if root.join(HOST).is_file() => {
            let _ = std::fs::remove_dir_all(&staged);
            Ok(root)
        }
        Err(e) => Err(fail(&root, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn installs_the_package_once() {
        let dir = super::package_dir().expect("installed");
        assert!(dir.join("airflow").join("__init__.py").is_file());
        assert!(super::host_script().expect("host").is_file());
        assert_eq!(super::package_dir().expect("again"), dir);
    }
}
