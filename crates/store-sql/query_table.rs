//! The build script of each SQL backend: turns its `queries/*.sql` into the name→SQL table
//! and the `query_sql` lookup behind its `Dialect::sql`, so a new query file needs no Rust
//! edit in the backend.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let folder = Path::new(&root).join("queries");
    println!("cargo:rerun-if-changed={}", folder.display());
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .expect("the backend has a queries folder")
        .map(|entry| entry.expect("a readable queries folder").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .map(|path| {
            let stem = path.file_stem().expect("a .sql file has a name");
            stem.to_string_lossy().into_owned()
        })
        .collect();
    // Sorted, so lookups can binary-search.
    names.sort();
    let mut table = String::from("/// Every query of this backend by file name, sorted by name.\n");
    table.push_str("static QUERIES: &[(&str, &str)] = &[\n");
    for name in &names {
        let path = folder.join(format!("{name}.sql"));
        writeln!(
            table,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a String never fails");
    }
    table.push_str("];\n\n");
    table.push_str("/// The SQL of the query `name`, if this backend has it.\n");
    table.push_str("fn query_sql(name: &str) -> Option<&'static str> {\n");
    table.push_str("    let found = QUERIES.binary_search_by(|(known, _)| (*known).cmp(name));\n");
    table.push_str("    found.ok().map(|at| QUERIES[at].1)\n");
    table.push_str("}\n");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out).join("queries.rs"), table).expect("OUT_DIR is writable");
}
