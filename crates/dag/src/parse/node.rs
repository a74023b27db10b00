//! A located document tree: every YAML/JSON node with the 1-based line:column it came from.
//!
//! Validation walks this tree instead of typed serde structs so that it can report every
//! problem (not only the first serde meets) and point each one at its own node.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};
use serde_saphyr::Spanned;

/// A 1-based position in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, column: 1 };

    fn known(self) -> bool {
        self.line > 0
    }
}

/// One node of the document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Number(Number),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A short description of the node's type for "expected X, got Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Number(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Null)
    }

    /// The value of `key` in a mapping, with the key node (for "unknown key" positions).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The node as plain JSON, dropping positions (for specs kept raw in the model).
    pub fn to_json(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Number(n) => Value::Number(n.clone()),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_text(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// A mapping key as text; non-string keys (`1: x`, `true: y`) are written as JSON would.
    pub fn key_text(&self) -> String {
        match &self.kind {
            Kind::Str(s) => s.clone(),
            Kind::Null => "null".to_string(),
            _ => self.to_json().to_string(),
        }
    }

    /// Give nodes without a location (the parser could not say) their parent's position,
    /// so that no error ever points at 0:0 when an enclosing location is known.
    fn fill_positions(&mut self, parent: Pos) {
        if !self.pos.known() {
            self.pos = parent;
        }
        let here = self.pos;
        match &mut self.kind {
            Kind::Seq(items) => items.iter_mut().for_each(|n| n.fill_positions(here)),
            Kind::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
                k.fill_positions(here);
                let key_pos = k.pos;
                v.fill_positions(key_pos);
            }),
            _ => {}
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Kind>::deserialize(deserializer)?;
        let at = spanned.referenced;
        Ok(Node {
            pos: Pos {
                line: usize::try_from(at.line()).unwrap_or(usize::MAX),
                column: usize::try_from(at.column()).unwrap_or(usize::MAX),
            },
            kind: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        d.deserialize_any(KindVisitor)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Kind, E> {
        Ok(Kind::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Kind, E> {
        Ok(Kind::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Kind, E> {
        Ok(Kind::Number(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Kind, E> {
        // Beyond 64 bits a number can only be kept approximately.
        self.visit_f64(v as f64)
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Kind, E> {
        self.visit_f64(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Kind, E> {
        // JSON has no NaN or infinity; keep such YAML floats as their text so that a
        // field expecting a number reports them instead of silently accepting them.
        Ok(Number::from_f64(v)
            .map(Kind::Number)
            .unwrap_or_else(|| Kind::Str(v.to_string())))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
        Ok(Kind::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Kind, E> {
        Ok(Kind::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Kind, E> {
        Ok(Kind::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Kind::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<Node, Node>()? {
            entries.push((k, v));
        }
        Ok(Kind::Map(entries))
    }
}

/// A syntax error with the position the parser reported.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Alias replay budget: far above any real DAG file, far below what a "billion laughs"
/// file needs, so such a file fails after a bounded amount of work and memory.
const MAX_REPLAYED_ALIAS_EVENTS: usize = 100_000;

/// Parse YAML text into a located tree.
pub(crate) fn load_yaml(text: &str) -> Result<Node, SyntaxError> {
    let mut options = serde_saphyr::Options::default();
    options.alias_limits.max_total_replayed_events = MAX_REPLAYED_ALIAS_EVENTS;
    // Our own message carries the location; the snippet would repeat the file's text.
    options.with_snippet = false;
    // YAML 1.2 booleans only: with YAML 1.1's `y`/`n`/`on`/`off` a param or key named `y`
    // would silently become `true`.
    options.strict_booleans = true;
    match serde_saphyr::from_str_with_options::<Option<Node>>(text, options) {
        Ok(Some(mut node)) => {
            node.fill_positions(Pos::START);
            Ok(node)
        }
        Ok(None) => Ok(Node {
            pos: Pos::START,
            kind: Kind::Null,
        }),
        Err(e) => {
            let pos = e
                .location()
                .map(|l| Pos {
                    line: usize::try_from(l.line()).unwrap_or(usize::MAX),
                    column: usize::try_from(l.column()).unwrap_or(usize::MAX),
                })
                .filter(|p| p.known())
                .unwrap_or(Pos::START);
            Err(SyntaxError {
                pos,
                message: format!("invalid YAML: {}", strip_location(&e.to_string())),
            })
        }
    }
}

/// Parse JSON text into a located tree. serde_json checks the syntax (so its messages are
/// about JSON); the tree is then built by the YAML parser, since JSON is a subset of YAML
/// and only the YAML parser records where each node is.
pub(crate) fn load_json(text: &str) -> Result<Node, SyntaxError> {
    if let Err(e) = serde_json::from_str::<de::IgnoredAny>(text) {
        let message = strip_location(&e.to_string());
        return Err(SyntaxError {
            pos: Pos {
                line: e.line().max(1),
                column: e.column().max(1),
            },
            message: format!("invalid JSON: {message}"),
        });
    }
    load_yaml(text)
}

/// Both parsers append " at line L column C" (in some spelling); our errors carry the
/// position separately.
fn strip_location(message: &str) -> String {
    let mut text = message.trim().to_string();
    for marker in [" at line ", " at position "] {
        if let Some(i) = text.rfind(marker) {
            text.truncate(i);
        }
    }
    text
}

/// Line and column (1-based, in characters) of byte `offset` of `bytes`, which must be
/// valid UTF-8 up to `offset`.
pub(crate) fn pos_of_byte(bytes: &[u8], offset: usize) -> Pos {
    let before = &bytes[..offset.min(bytes.len())];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    Pos { line, column }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions(node: &Node, out: &mut Vec<String>) {
        let label = match &node.kind {
            Kind::Str(s) => s.clone(),
            Kind::Number(n) => n.to_string(),
            Kind::Seq(_) => "[]".into(),
            Kind::Map(_) => "{}".into(),
            Kind::Bool(b) => b.to_string(),
            Kind::Null => "null".into(),
        };
        out.push(format!("{label}@{}:{}", node.pos.line, node.pos.column));
        match &node.kind {
            Kind::Seq(items) => items.iter().for_each(|n| positions(n, out)),
            Kind::Map(entries) => entries.iter().for_each(|(k, v)| {
                positions(k, out);
                positions(v, out);
            }),
            _ => {}
        }
    }

    #[test]
    fn yaml_positions() {
        let node = load_yaml("a: 1\nb:\n  - x\n  - {y: true}\n").expect("valid");
        let mut out = Vec::new();
        positions(&node, &mut out);
        assert_eq!(
            out.join(" "),
            "{}@1:1 a@1:1 1@1:4 b@2:1 []@3:3 x@3:5 {}@4:5 y@4:6 true@4:9"
        );
    }

    #[test]
    fn json_positions() {
        let node = load_json("{\"a\": [1,\n  \"x\"]}").expect("valid");
        let mut out = Vec::new();
        positions(&node, &mut out);
        assert_eq!(out.join(" "), "{}@1:1 a@1:2 []@1:7 1@1:8 x@2:3");
    }
}
