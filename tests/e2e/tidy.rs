//! Conventions that matter, checked: every Rust file says what it owns, and the crate
//! boundaries of ARCHITECTURE.md hold in the manifests.

use std::path::{Path, PathBuf};

use crate::harness::repo_root;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let root = repo_root();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    rust_files(&root.join("tests"), &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        assert!(
            text.starts_with("//!"),
            "{} does not start with a //! line",
            file.display()
        );
    }
}

/// The `[dependencies]` table of a crate's manifest.
fn dependencies(krate: &str) -> String {
    let manifest =
        std::fs::read_to_string(repo_root().join("crates").join(krate).join("Cargo.toml"))
            .expect("manifest");
    let start = manifest.find("[dependencies]").expect("dependencies table");
    let rest = &manifest[start + "[dependencies]".len()..];
    rest[..rest.find("\n[").unwrap_or(rest.len())].to_string()
}

#[test]
fn crate_boundaries_hold() {
    let crates = [
        "dag",
        "store",
        "store-sqlite",
        "store-postgres",
        "scheduler",
        "worker",
        "api",
        "hooks",
        "dagctl",
    ];
    for krate in crates {
        let deps = dependencies(krate);
        let names = |name: &str| deps.lines().any(|l| l.trim_start().starts_with(name));
        if krate == "dag" {
            for forbidden in ["tokio", "sqlx", "axum", "reqwest"] {
                assert!(
                    !names(forbidden),
                    "dag must stay pure but depends on {forbidden}"
                );
            }
        }
        // `hooks` speaks to users' SQL connections, never to Updraft's own database.
        if !krate.starts_with("store-") && krate != "hooks" {
            assert!(
                !names("sqlx"),
                "only store-* and hooks may name sqlx, but {krate} does"
            );
        }
        if krate != "api" {
            assert!(!names("axum"), "only api may name axum, but {krate} does");
        }
        if krate != "dagctl" {
            assert!(
                !names("anyhow"),
                "only dagctl may use anyhow, but {krate} does"
            );
        }
    }
}
