//! YAML text → spanned trees, one per document.
//!
//! Built on the event parser of `rlsp-yaml-parser`, so that every node
//! keeps the span of its text. Scalars are resolved with the YAML 1.2 core schema.
//! The builder enforces the safety limits (nesting depth, alias expansion)
//! while it reads, so hostile input is rejected before it costs anything.

mod build;
mod de;
mod json;
mod scalar;

use std::borrow::Cow;

use crate::diag::Pos;

pub use build::{parse, parse_each};
pub use de::{DeError, from_node};
pub use json::YamlJson;

/// Deepest nesting of collections accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes that alias expansion may create in one file.
pub const MAX_ALIAS_NODES: usize = 100_000;

/// A range in the file; `end` is exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

/// A YAML node with the span of its text. Its strings borrow the text
/// they were read from (`'t`) where they are written as they are: most
/// scalars, and nearly every key, cost no allocation of their own.
#[derive(Debug, Clone, PartialEq)]
pub struct Node<'t> {
    pub span: Span,
    pub value: Value<'t>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value<'t> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'t, str>),
    Seq(Vec<Node<'t>>),
    /// Keys in document order.
    Map(Vec<(Node<'t>, Node<'t>)>),
}

impl<'t> Node<'t> {
    /// The same node, owning its strings (to be kept past its text).
    pub fn into_owned(self) -> Node<'static> {
        let value = match self.value {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            Value::Int(i) => Value::Int(i),
            Value::Float(f) => Value::Float(f),
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::Seq(items) => Value::Seq(items.into_iter().map(Node::into_owned).collect()),
            Value::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            ),
        };
        Node {
            span: self.span,
            value,
        }
    }

    /// The text of a scalar key or value as a map key (`true` → "true").
    pub fn key_text(&self) -> Cow<'_, str> {
        match &self.value {
            Value::Str(s) => Cow::Borrowed(s.as_ref()),
            Value::Null => Cow::Borrowed("null"),
            Value::Bool(b) => Cow::Owned(b.to_string()),
            Value::Int(i) => Cow::Owned(i.to_string()),
            Value::Float(f) => Cow::Owned(f.to_string()),
            Value::Seq(_) | Value::Map(_) => Cow::Borrowed(""),
        }
    }

    /// Whether this node, as a map key, is `key` (a scalar whose key text
    /// it is; strings, nearly every key, compared without converting).
    pub fn is_key(&self, key: &str) -> bool {
        match &self.value {
            Value::Str(s) => s == key,
            _ => self.is_scalar() && self.key_text() == key,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s.as_ref()),
            _ => None,
        }
    }

    /// The value under `key` of a mapping, with the key node.
    pub fn entry(&self, key: &str) -> Option<(&Node<'t>, &Node<'t>)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.is_key(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node<'t>> {
        self.entry(key).map(|(_, v)| v)
    }

    /// Type name for messages: "a string", "a mapping"...
    pub fn describe(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// Whether this node can be a mapping key of the format: a scalar.
    /// A list or mapping as a key (`? [a, b]`) has no name.
    pub fn is_scalar(&self) -> bool {
        !matches!(self.value, Value::Seq(_) | Value::Map(_))
    }

    /// Every key that is a list or a mapping, anywhere under this node, in
    /// document order.
    pub fn complex_keys(&self) -> Vec<&Node<'t>> {
        let mut out = Vec::new();
        fn walk<'a, 't>(n: &'a Node<'t>, out: &mut Vec<&'a Node<'t>>) {
            match &n.value {
                Value::Seq(items) => items.iter().for_each(|i| walk(i, out)),
                Value::Map(entries) => {
                    for (k, v) in entries {
                        if !k.is_scalar() {
                            out.push(k);
                        }
                        walk(v, out);
                    }
                }
                _ => {}
            }
        }
        walk(self, &mut out);
        out
    }

    /// Follows a JSON pointer (`/spec/dataSources/1`). Returns the key node
    /// of the last step too, when the last step is a mapping key.
    pub fn lookup(&self, pointer: &str) -> Option<(Option<&Node<'t>>, &Node<'t>)> {
        let mut node = self;
        let mut key = None;
        if pointer.is_empty() {
            return Some((None, node));
        }
        for raw in pointer.strip_prefix('/')?.split('/') {
            let seg = unescape_pointer(raw);
            match &node.value {
                Value::Map(_) => {
                    let (k, v) = node.entry(&seg)?;
                    key = Some(k);
                    node = v;
                }
                Value::Seq(items) => {
                    node = items.get(seg.parse::<usize>().ok()?)?;
                    key = None;
                }
                _ => return None,
            }
        }
        Some((key, node))
    }

    /// Removes the entry at a JSON pointer (an unknown field), if it is there.
    pub fn remove(&mut self, pointer: &str) {
        let Some((parent, last)) = pointer.rsplit_once('/') else {
            return;
        };
        let last = unescape_pointer(last);
        if let Some(Value::Map(entries)) = self.lookup_mut(parent).map(|n| &mut n.value) {
            entries.retain(|(k, _)| !k.is_key(&last));
        }
    }

    fn lookup_mut(&mut self, pointer: &str) -> Option<&mut Node<'t>> {
        let mut node = self;
        if pointer.is_empty() {
            return Some(node);
        }
        for raw in pointer.strip_prefix('/')?.split('/') {
            let seg = unescape_pointer(raw);
            node = match &mut node.value {
                Value::Map(entries) => entries
                    .iter_mut()
                    .find(|(k, _)| k.is_key(&seg))
                    .map(|(_, v)| v)?,
                Value::Seq(items) => items.get_mut(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    pub(crate) fn count(&self) -> usize {
        match &self.value {
            Value::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            Value::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.count() + v.count())
                    .sum::<usize>()
            }
            _ => 1,
        }
    }
}

/// One segment of a JSON pointer as the key it names (`a~1b~0c` → `a/b~c`).
pub fn unescape_pointer(seg: &str) -> Cow<'_, str> {
    if seg.contains('~') {
        Cow::Owned(seg.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(seg)
    }
}

/// One document of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document<'t> {
    /// Where the document starts (for findings about the whole document).
    pub start: Pos,
    /// `None` for an empty document.
    pub root: Option<Node<'t>>,
    /// Some mapping of the document has a key twice. The first entry is
    /// kept (so the rest of the document is still checked), but the
    /// document's meaning is ambiguous: it takes no part in the rules.
    pub duplicate_keys: bool,
}

/// Why reading a file stopped early.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub message: String,
    pub span: Span,
    /// For duplicate keys: the first occurrence.
    pub first: Option<Span>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    Syntax,
    DuplicateKey,
    Limit,
}

/// The documents read from one text, and the problems met. Syntax errors and
/// limits stop the reading; duplicate keys do not (the document is kept with
/// the first entry of each key, and flagged).
#[derive(Debug, Default)]
pub struct Parsed<'t> {
    pub documents: Vec<Document<'t>>,
    pub problems: Vec<Problem>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node<'_> {
        let p = parse(text);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        p.documents.into_iter().next().unwrap().root.unwrap()
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let n =
            one("a: 1\nb: 1.5\nc: '1'\nd: true\ne: ~\nf: 3i\ng: 0x1f\nh: .inf\ni: 1e3\nj: 1.2.3");
        let get = |k| n.get(k).unwrap().value.clone();
        assert_eq!(get("a"), Value::Int(1));
        assert_eq!(get("b"), Value::Float(1.5));
        assert_eq!(get("c"), Value::Str("1".into()));
        assert_eq!(get("d"), Value::Bool(true));
        assert_eq!(get("e"), Value::Null);
        assert_eq!(get("f"), Value::Str("3i".into()));
        assert_eq!(get("g"), Value::Int(31));
        assert_eq!(get("h"), Value::Float(f64::INFINITY));
        assert_eq!(get("i"), Value::Float(1000.0));
        assert_eq!(get("j"), Value::Str("1.2.3".into()));
    }

    /// Every form of null, boolean and number resolves by its first
    /// character's class, and anything else is a string whatever follows.
    #[test]
    fn each_first_character_of_a_typed_scalar_is_recognised() {
        let cases: [(&str, Value); 16] = [
            ("~", Value::Null),
            ("Null", Value::Null),
            ("NULL", Value::Null),
            ("TRUE", Value::Bool(true)),
            ("False", Value::Bool(false)),
            ("+7", Value::Int(7)),
            ("-7", Value::Int(-7)),
            ("0o17", Value::Int(15)),
            (".5", Value::Float(0.5)),
            ("-.inf", Value::Float(f64::NEG_INFINITY)),
            ("+1e2", Value::Float(100.0)),
            ("yes", Value::Str("yes".into())),
            ("e5", Value::Str("e5".into())),
            ("x0", Value::Str("x0".into())),
            ("Inf", Value::Str("Inf".into())),
            ("nil", Value::Str("nil".into())),
        ];
        for (text, want) in cases {
            let doc = format!("v: {text}\n");
            assert_eq!(one(&doc).get("v").unwrap().value, want, "{text}");
        }
        let nan = one("v: .NaN\n");
        assert!(matches!(nan.get("v").unwrap().value, Value::Float(f) if f.is_nan()));
    }

    #[test]
    fn spans_point_at_values() {
        let n = one("spec:\n  nics: two\n");
        let (key, value) = n.lookup("/spec/nics").unwrap();
        assert_eq!(key.unwrap().span.start, Pos { line: 2, column: 3 });
        assert_eq!(value.span.start, Pos { line: 2, column: 9 });
        assert_eq!(
            value.span.end,
            Pos {
                line: 2,
                column: 12
            }
        );
    }

    #[test]
    fn duplicate_keys_are_reported_with_both_places() {
        let p = parse("a: 1\nb: 2\na: 3\n");
        assert_eq!(p.problems.len(), 1);
        let d = &p.problems[0];
        assert_eq!(d.kind, ProblemKind::DuplicateKey);
        assert_eq!(d.span.start, Pos { line: 3, column: 1 });
        assert_eq!(d.first.unwrap().start, Pos { line: 1, column: 1 });
    }

    #[test]
    fn complex_keys_are_found_and_left_out_of_json() {
        let n = one("a: 1\n? [x, y]\n: 2\n? {k: v}\n: 3\nb:\n  ? [z]\n  : 4\n");
        let keys: Vec<&str> = n.complex_keys().iter().map(|k| k.describe()).collect();
        assert_eq!(keys, ["a list", "a mapping", "a list"]);
        assert_eq!(n.to_json(), serde_json::json!({"a": 1, "b": {}}));
        // Two complex keys are not duplicates of each other (no problem above).
        let p = parse("? [x]\n: 1\n? [y]\n: 2\n");
        assert!(p.problems.is_empty(), "{:?}", p.problems);
    }

    #[test]
    fn billion_laughs_is_stopped_by_the_alias_budget() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let names: Vec<char> = ('b'..='k').collect();
        let mut prev = 'a';
        for n in names {
            text.push_str(&format!(
                "{n}: &{n} [{}]\n",
                vec![format!("*{prev}"); 10].join(", ")
            ));
            prev = n;
        }
        let p = parse(&text);
        assert_eq!(p.problems.len(), 1);
        assert_eq!(p.problems[0].kind, ProblemKind::Limit);
    }

    #[test]
    fn deep_nesting_is_a_limit() {
        let text = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        let p = parse(&text);
        assert_eq!(p.problems[0].kind, ProblemKind::Limit);
    }

    fn syntax(text: &str) -> Problem {
        let p = parse(text);
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        assert_eq!(p.problems[0].kind, ProblemKind::Syntax);
        p.problems[0].clone()
    }

    #[test]
    fn an_unclosed_bracket_or_quote_is_shown_where_it_opens() {
        // The parser stops lines later; the finding points at the opening.
        for (text, opening, line, column) in [
            ("a: 1\nb: [1, 2\nc: 3\nd: 4\n", '[', 2, 4),
            ("a: 1\nb: {x: [1, 2]\nc: 3\n", '{', 2, 4),
            ("a: \"abc\nb: 2\n", '"', 1, 4),
            // Brackets and quotes inside plain scalars or comments open
            // nothing.
            ("a: b[1]\nc: it's # [ nor this\nd: [x\ne: 1\n", '[', 3, 4),
        ] {
            let d = syntax(text);
            assert_eq!(
                d.span.start,
                Pos { line, column },
                "{text:?}: {}",
                d.message
            );
            assert!(
                d.message
                    .contains(&format!("the `{opening}` opened here is not closed")),
                "{}",
                d.message
            );
            assert!(d.first.is_some(), "where the parser stopped");
        }
    }

    #[test]
    fn an_alias_names_the_latest_node_of_its_anchor() {
        let n = one("a: &x 1\nb: &x [2]\nc: *x\n");
        assert_eq!(n.get("c").unwrap().to_json(), serde_json::json!([2]));
        assert_eq!(syntax("a: *nowhere\n").kind, ProblemKind::Syntax);
    }

    #[test]
    fn flow_collections_span_their_brackets() {
        let n = one("a: [1, 2]\nb: { c: d }\n");
        let a = n.get("a").unwrap().span;
        assert_eq!((a.start.column, a.end.column), (4, 10));
        let b = n.get("b").unwrap().span;
        assert_eq!((b.start.column, b.end.column), (4, 12));
    }

    #[test]
    fn columns_count_characters_and_lines_follow_the_text() {
        let n = one("é: ü\nname: x\nlist:\n  - 'q'\n");
        let v = n.get("é").unwrap().span.start;
        assert_eq!(v, Pos { line: 1, column: 4 });
        let item = &n.lookup("/list/0").unwrap().1.span;
        assert_eq!(item.start, Pos { line: 4, column: 5 });
        assert_eq!(item.end, Pos { line: 4, column: 8 });
    }

    /// Past the parser's own limit (512 levels) it is still the nesting
    /// limit, not a syntax error.
    #[test]
    fn very_deep_flow_nesting_is_a_limit_too() {
        for depth in [256, 513, 1000, 100_000] {
            let text = "a: ".to_owned() + &"[".repeat(depth) + &"]".repeat(depth);
            let p = parse(&text);
            assert_eq!(p.problems.len(), 1, "{depth}");
            assert_eq!(p.problems[0].kind, ProblemKind::Limit, "{depth}");
            assert!(
                p.problems[0]
                    .message
                    .starts_with("nesting deeper than 64 levels"),
                "{}",
                p.problems[0].message
            );
            // At the bracket that goes past the limit (the 64th, under
            // the root mapping).
            assert_eq!(
                p.problems[0].span.start,
                Pos {
                    line: 1,
                    column: 67
                }
            );
        }
    }
}
