//! Typed reads from the located tree that record a located problem instead of stopping.
//!
//! Every reader returns `None` after recording its error, so that the caller can carry on
//! with a default and the file's other problems are still found.

use std::collections::BTreeMap;

use serde_json::Value;

use super::ImportError;
use super::node::{Kind, Node, Pos};
use crate::duration::parse_duration;

/// The problems found so far in one file.
pub(crate) struct Problems {
    file: String,
    errors: Vec<ImportError>,
}

impl Problems {
    pub fn new(file: &str) -> Self {
        Problems {
            file: file.to_string(),
            errors: Vec::new(),
        }
    }

    pub fn add(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(ImportError {
            file: self.file.clone(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// In file order, each distinct problem once: a bad value in `default_args` is met once
    /// per task it applies to but is one mistake.
    pub fn into_sorted(self) -> Vec<ImportError> {
        let mut errors = self.errors;
        errors.sort_by_key(|e| (e.line, e.column));
        let mut seen = std::collections::HashSet::new();
        errors.retain(|e| seen.insert((e.line, e.column, e.message.clone())));
        errors
    }
}

/// The nearest of `candidates` to `word`, if it is close enough to be a likely typo.
pub(crate) fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// "; did you mean 'x'?" or nothing.
pub(crate) fn suggestion<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    nearest(word, candidates)
        .map(|c| format!("; did you mean '{c}'?"))
        .unwrap_or_default()
}

/// The entries of a mapping, or a recorded error.
pub(crate) fn map<'n>(p: &mut Problems, node: &'n Node, what: &str) -> Option<&'n [(Node, Node)]> {
    match node.as_map() {
        Some(entries) => Some(entries),
        None => {
            p.add(
                node.pos,
                format!("{what} must be a mapping, got {}", node.type_name()),
            );
            None
        }
    }
}

/// Record every key of `node` (a mapping) that is not in `known`, with a suggestion.
pub(crate) fn known_keys(p: &mut Problems, node: &Node, known: &[&str], where_: &str) {
    for (key, _) in node.as_map().unwrap_or_default() {
        match key.as_str() {
            Some(k) if known.contains(&k) => {}
            Some(k) => p.add(
                key.pos,
                format!(
                    "unknown key '{k}' in {where_}{}",
                    suggestion(k, known.iter().copied())
                ),
            ),
            None => p.add(
                key.pos,
                format!("keys must be strings, got {} in {where_}", key.type_name()),
            ),
        }
    }
}

fn describe(node: &Node) -> String {
    match &node.kind {
        Kind::Str(s) => format!("string '{s}'"),
        Kind::Number(n) => format!("number {n}"),
        Kind::Bool(b) => format!("boolean {b}"),
        _ => node.type_name().to_string(),
    }
}

/// "'retries' in task 'x' must be …, got …".
fn wrong(p: &mut Problems, node: &Node, what: &str, expected: &str) {
    p.add(
        node.pos,
        format!("{what} must be {expected}, got {}", describe(node)),
    );
}

pub(crate) fn string(p: &mut Problems, node: &Node, what: &str) -> Option<String> {
    match &node.kind {
        Kind::Str(s) => Some(s.clone()),
        _ => {
            wrong(p, node, what, "a string");
            None
        }
    }
}

/// A string, or null for "not set".
pub(crate) fn opt_string(p: &mut Problems, node: &Node, what: &str) -> Option<String> {
    if node.is_null() {
        None
    } else {
        string(p, node, what)
    }
}

pub(crate) fn boolean(p: &mut Problems, node: &Node, what: &str) -> Option<bool> {
    match node.kind {
        Kind::Bool(b) => Some(b),
        _ => {
            wrong(p, node, what, "true or false");
            None
        }
    }
}

/// A whole number in [min, u32::MAX].
pub(crate) fn count(p: &mut Problems, node: &Node, what: &str, min: u32) -> Option<u32> {
    let got = match &node.kind {
        Kind::Number(n) => n.as_u64().and_then(|v| u32::try_from(v).ok()),
        _ => None,
    };
    match got {
        Some(v) if v >= min => Some(v),
        _ => {
            let expected = if min == 0 {
                "a non-negative integer".to_string()
            } else {
                format!("an integer of at least {min}")
            };
            wrong(p, node, what, &expected);
            None
        }
    }
}

pub(crate) fn integer(p: &mut Problems, node: &Node, what: &str) -> Option<i64> {
    match &node.kind {
        Kind::Number(n) if n.as_i64().is_some() => n.as_i64(),
        _ => {
            wrong(p, node, what, "an integer");
            None
        }
    }
}

pub(crate) fn number(p: &mut Problems, node: &Node, what: &str) -> Option<f64> {
    match &node.kind {
        Kind::Number(n) => n.as_f64(),
        _ => {
            wrong(p, node, what, "a number");
            None
        }
    }
}

/// Seconds, from a duration string or a number.
pub(crate) fn duration(p: &mut Problems, node: &Node, what: &str) -> Option<f64> {
    let parsed = match &node.kind {
        Kind::Number(n) => parse_duration(&n.to_string()),
        Kind::Str(s) => parse_duration(s),
        _ => Err(format!(
            "expected a duration such as 90s, 5m, 1h30m, 2d or a number of seconds, got {}",
            describe(node)
        )),
    };
    match parsed {
        Ok(seconds) => Some(seconds),
        Err(message) => {
            p.add(node.pos, format!("{what}: {message}"));
            None
        }
    }
}

/// A duration, or null for "none".
pub(crate) fn opt_duration(p: &mut Problems, node: &Node, what: &str) -> Option<f64> {
    if node.is_null() {
        None
    } else {
        duration(p, node, what)
    }
}

/// A list of strings with the position of each; `single` also accepts one bare string.
pub(crate) fn strings(
    p: &mut Problems,
    node: &Node,
    what: &str,
    single: Single,
) -> Vec<(String, Pos)> {
    match &node.kind {
        Kind::Str(s) if single == Single::Allowed => vec![(s.clone(), node.pos)],
        Kind::Null => Vec::new(),
        Kind::Seq(items) => items
            .iter()
            .filter_map(|item| {
                string(p, item, &format!("each entry of {what}")).map(|s| (s, item.pos))
            })
            .collect(),
        _ => {
            let expected = match single {
                Single::Allowed => "a string or a list of strings",
                Single::Refused => "a list of strings",
            };
            wrong(p, node, what, expected);
            Vec::new()
        }
    }
}

/// Whether a list-of-strings field also accepts one bare string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Single {
    Allowed,
    Refused,
}

/// A mapping of names to raw JSON values.
pub(crate) fn json_map(p: &mut Problems, node: &Node, what: &str) -> BTreeMap<String, Value> {
    if node.is_null() {
        return BTreeMap::new();
    }
    map(p, node, what)
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| (k.key_text(), v.to_json()))
        .collect()
}

/// Valid id: `[A-Za-z0-9_-]` plus `.` when `dots` (DAG ids), 1 to 250 characters.
pub(crate) fn id_problem(id: &str, dots: bool) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || (dots && c == '.');
    let set = if dots {
        "[A-Za-z0-9_.-]"
    } else {
        "[A-Za-z0-9_-]"
    };
    if id.is_empty() {
        Some("is empty".to_string())
    } else if id.chars().count() > 250 {
        Some("is longer than 250 characters".to_string())
    } else {
        id.chars()
            .find(|&c| !allowed(c))
            .map(|bad| format!("contains '{bad}'; only {set} is allowed"))
    }
}
