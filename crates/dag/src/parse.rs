//! Parse a DAG file (YAML or JSON) into a validated [`Dag`], collecting every problem.

use std::fmt;

mod check;
mod dag;
mod node;
mod python;
mod task;

pub use python::dag_from_python;

use crate::model::Dag;
use check::Problems;
use node::Pos;

/// Largest DAG file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;

/// One problem in a DAG file, with its 1-based location (the offending node, or the nearest
/// enclosing one the parser located).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagError {
    pub errors: Vec<ImportError>,
}

impl fmt::Display for DagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DagError {}

/// Parse file contents; JSON when `path` ends in `.json`, YAML otherwise. Rejects non-UTF-8
/// and files over [`MAX_FILE_BYTES`] with a located error.
pub fn parse_dag_bytes(path: &str, bytes: &[u8]) -> Result<Dag, DagError> {
    let fail = |pos: Pos, message: String| DagError {
        errors: vec![ImportError {
            file: path.to_string(),
            line: pos.line,
            column: pos.column,
            message,
        }],
    };
    if bytes.len() > MAX_FILE_BYTES {
        return Err(fail(
            Pos::START,
            format!("file is {} bytes, over the 10 MiB limit", bytes.len()),
        ));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_dag_str(path, text),
        Err(e) => {
            let at = e.valid_up_to();
            Err(fail(
                node::pos_of_byte(bytes, at),
                format!("the file is not valid UTF-8 (byte 0x{:02x})", bytes[at]),
            ))
        }
    }
}

/// Parse and validate text. `path` names the file in errors; its stem is the default dag_id.
pub fn parse_dag_str(path: &str, text: &str) -> Result<Dag, DagError> {
    let mut problems = Problems::new(path);
    if text.len() > MAX_FILE_BYTES {
        problems.add(
            Pos::START,
            format!("file is {} bytes, over the 10 MiB limit", text.len()),
        );
        return Err(DagError {
            errors: problems.into_sorted(),
        });
    }
    let loaded = if is_json(path) {
        node::load_json(text)
    } else {
        node::load_yaml(text)
    };
    let root = match loaded {
        Ok(root) => root,
        Err(e) => {
            problems.add(e.pos, e.message);
            return Err(DagError {
                errors: problems.into_sorted(),
            });
        }
    };
    let dag = dag::build(&mut problems, path, &root);
    match dag {
        Some(dag) if problems.is_empty() => Ok(dag),
        _ => Err(DagError {
            errors: problems.into_sorted(),
        }),
    }
}

fn is_json(path: &str) -> bool {
    std::path::Path::new(path)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}
