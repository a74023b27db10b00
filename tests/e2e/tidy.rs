//! Conventions that matter, checked: every Rust file says what it owns, the crate boundaries
//! of ARCHITECTURE.md hold in every crate's manifest, and no two modules of a crate import
//! each other.

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
    for krate in workspace_crates() {
        let krate = krate.as_str();
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
        // The test kit is for tests: no production crate may link it.
        assert!(
            !names("testkit"),
            "testkit is a dev-dependency only, but {krate} depends on it"
        );
    }
}

/// Every crate of the workspace, from the `crates/` folder, so a new crate is checked too.
fn workspace_crates() -> Vec<String> {
    let mut crates: Vec<String> = std::fs::read_dir(repo_root().join("crates"))
        .expect("crates folder")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    crates.sort();
    crates
}

/// A crate's modules by path (`""` for the crate root, `commands::dags`), with their text.
fn modules(krate: &str) -> Vec<(String, String)> {
    let src = repo_root().join("crates").join(krate).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut modules: Vec<(String, String)> = files
        .into_iter()
        .map(|file| {
            let relative = file.strip_prefix(&src).expect("file under src");
            let mut parts: Vec<String> = relative
                .with_extension("")
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|last| last == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                parts.clear();
            }
            let text = std::fs::read_to_string(&file).expect("readable");
            (parts.join("::"), text)
        })
        .collect();
    modules.sort();
    modules
}

/// The modules of its crate that one module's code (not its comments) names, as
/// `crate::a::b`, `super::b` or inside `use crate::{a, b}`; only siblings and cousins count,
/// since a module always reaches into its own children and parents.
fn imports(module: &str, text: &str, known: &[String]) -> Vec<String> {
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let parent: Vec<&str> = module.split("::").filter(|p| !p.is_empty()).collect();
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut paths: Vec<Vec<String>> = Vec::new();
    for prefix in ["crate::", "super::"] {
        for (at, _) in code.match_indices(prefix) {
            if code[..at].chars().next_back().is_some_and(is_word) {
                continue;
            }
            let base: Vec<String> = if prefix == "super::" {
                parent[..parent.len().saturating_sub(1)]
                    .iter()
                    .map(|p| p.to_string())
                    .collect()
            } else {
                Vec::new()
            };
            let rest = &code[at + prefix.len()..];
            let path_end = rest
                .find(|c: char| !(is_word(c) || c == ':'))
                .unwrap_or(rest.len());
            let head = rest[..path_end].trim_end_matches(':');
            let mut heads: Vec<String> = Vec::new();
            if head.is_empty() && rest.starts_with('{') {
                // `crate::{a, b::c}` names each of a and b.
                let list = &rest[1..rest.find('}').unwrap_or(rest.len())];
                heads.extend(list.split(',').map(|item| item.trim().to_string()));
            } else {
                heads.push(head.to_string());
            }
            for head in heads {
                let mut path = base.clone();
                path.extend(
                    head.split("::")
                        .map(str::trim)
                        .take_while(|seg| !seg.is_empty() && seg.chars().all(is_word))
                        .map(str::to_string),
                );
                paths.push(path);
            }
        }
    }
    let mut found = Vec::new();
    for path in paths {
        let target = (1..=path.len())
            .rev()
            .map(|n| path[..n].join("::"))
            .find(|candidate| known.contains(candidate));
        let Some(target) = target else { continue };
        let related = target == module
            || module.is_empty()
            || target.is_empty()
            || module.starts_with(&format!("{target}::"))
            || target.starts_with(&format!("{module}::"));
        if !related && !found.contains(&target) {
            found.push(target);
        }
    }
    found
}

#[test]
fn no_two_modules_of_a_crate_import_each_other() {
    let mut circles = Vec::new();
    for krate in workspace_crates() {
        let modules = modules(&krate);
        let known: Vec<String> = modules.iter().map(|(name, _)| name.clone()).collect();
        let edges: Vec<(String, String)> = modules
            .iter()
            .flat_map(|(name, text)| {
                imports(name, text, &known)
                    .into_iter()
                    .map(move |target| (name.clone(), target))
            })
            .collect();
        for (from, to) in &edges {
            if from < to && edges.contains(&(to.clone(), from.clone())) {
                circles.push(format!("{krate}: {from} <-> {to}"));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "modules importing each other: {circles:#?}"
    );
}

#[test]
fn imports_are_read_from_paths_braces_and_super_but_not_comments() {
    let known: Vec<String> = ["", "a", "b", "c", "d", "d::e"]
        .iter()
        .map(|m| m.to_string())
        .collect();
    let text = "//! Uses `crate::c` in prose only.\n\
                use crate::b::Thing;\n\
                use crate::{c::More, d};\n\
                use super::d::e::Deep;\n\
                fn f() { crate::a::g() }\n";
    assert_eq!(imports("a", text, &known), ["b", "c", "d", "d::e"]);
    assert_eq!(
        imports("a", "// crate::b::x\n", &known),
        Vec::<String>::new()
    );
}
