//! YAML text → spanned trees, one per document.
//!
//! Built on the event parser of `saphyr-parser`, so that every node keeps
//! the span of its text. Scalars are resolved with the YAML 1.2 core schema.
//! The builder enforces the safety limits (nesting depth, alias expansion)
//! while it reads, so hostile input is rejected before it costs anything.

use std::borrow::Cow;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YSpan, Tag};

use crate::diag::Pos;

/// Deepest nesting of collections accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes that alias expansion may create in one file.
pub const MAX_ALIAS_NODES: usize = 100_000;

/// What `saphyr-parser`'s scanner says when flow collections nest deeper
/// than its 8-bit flow level.
const SCANNER_RECURSION_LIMIT: &str = "recursion limit exceeded";

/// A range in the file; `end` is exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    fn from_yaml(span: &YSpan) -> Span {
        Span {
            start: pos(span.start.line(), span.start.col()),
            end: pos(span.end.line(), span.end.col()),
        }
    }
}

fn pos(line: usize, col0: usize) -> Pos {
    Pos {
        line: line.max(1) as u32,
        column: col0 as u32 + 1,
    }
}

/// A YAML node with the span of its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: Span,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in document order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The text of a scalar key or value as a map key (`true` → "true").
    pub fn key_text(&self) -> Cow<'_, str> {
        match &self.value {
            Value::Str(s) => Cow::Borrowed(s),
            Value::Null => Cow::Borrowed("null"),
            Value::Bool(b) => Cow::Owned(b.to_string()),
            Value::Int(i) => Cow::Owned(i.to_string()),
            Value::Float(f) => Cow::Owned(f.to_string()),
            Value::Seq(_) | Value::Map(_) => Cow::Borrowed(""),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value under `key` of a mapping, with the key node.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.is_scalar() && k.key_text() == key)
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
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
    pub fn complex_keys(&self) -> Vec<&Node> {
        let mut out = Vec::new();
        fn walk<'a>(n: &'a Node, out: &mut Vec<&'a Node>) {
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

    /// Converts to JSON for schema validation and typed deserialisation.
    /// Entries whose key is a list or mapping have no JSON form and are left
    /// out (the loader reports them, see [`Node::complex_keys`]).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or_else(|| J::String(f.to_string())),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .filter(|(k, _)| k.is_scalar())
                    .map(|(k, v)| (k.key_text().into_owned(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Follows a JSON pointer (`/spec/dataSources/1`). Returns the key node
    /// of the last step too, when the last step is a mapping key.
    pub fn lookup(&self, pointer: &str) -> Option<(Option<&Node>, &Node)> {
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

    fn count(&self) -> usize {
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
pub struct Document {
    /// Where the document starts (for findings about the whole document).
    pub start: Pos,
    /// `None` for an empty document.
    pub root: Option<Node>,
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
pub struct Parsed {
    pub documents: Vec<Document>,
    pub problems: Vec<Problem>,
}

enum Frame {
    Seq {
        start: Span,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: Span,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        /// The pending key repeats an earlier one: its value is dropped.
        duplicate: bool,
    },
}

/// Parses every document of `text`.
pub fn parse(text: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: Vec<Option<(Node, usize)>> = Vec::new();
    let mut alias_budget = MAX_ALIAS_NODES;
    let mut doc_start = Pos { line: 1, column: 1 };
    let mut root: Option<Node> = None;
    let mut doc_has_duplicate = false;

    while let Some(next) = parser.next_event() {
        let (event, yspan) = match next {
            Ok(ev) => ev,
            Err(e) => {
                let m = e.marker();
                let p = pos(m.line(), m.col());
                // The scanner reads flow collections ahead of the events, so
                // very deep `[[[...` stops it (at 255 levels) before the
                // depth limit below sees the events: the same limit, said so.
                let (kind, message, end) = if e.info() == SCANNER_RECURSION_LIMIT {
                    (
                        ProblemKind::Limit,
                        format!(
                            "nesting deeper than {MAX_DEPTH} levels (flow collections `[` `{{` nested more than 255 deep, where the YAML parser stops)"
                        ),
                        // The bracket it stopped at.
                        Pos {
                            column: p.column + 1,
                            ..p
                        },
                    )
                } else {
                    (ProblemKind::Syntax, e.info().to_owned(), p)
                };
                // Inside an unclosed `[` or `{`, the parser notices only
                // where the text stops making sense, often lines later: the
                // bracket is where the user must look.
                let open = (kind == ProblemKind::Syntax)
                    .then(|| innermost_flow(&stack, text))
                    .flatten();
                out.problems.push(match open {
                    Some((bracket, at)) => Problem {
                        kind,
                        message: format!(
                            "{message}: the `{bracket}` opened here is not closed where the parser expected (it stopped at {}:{})",
                            p.line, p.column
                        ),
                        span: at,
                        first: Some(Span { start: p, end }),
                    },
                    None => Problem {
                        kind,
                        message,
                        span: Span { start: p, end },
                        first: None,
                    },
                });
                return out;
            }
        };
        let span = Span::from_yaml(&yspan);
        let node = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing => continue,
            Event::DocumentStart(_) => {
                doc_start = span.start;
                root = None;
                doc_has_duplicate = false;
                anchors.clear();
                continue;
            }
            Event::DocumentEnd => {
                out.documents.push(Document {
                    start: doc_start,
                    root: root.take(),
                    duplicate_keys: doc_has_duplicate,
                });
                continue;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let node = Node {
                    span,
                    value: resolve_scalar(&text, style, tag.as_deref()),
                };
                remember(&mut anchors, anchor, &node, 1);
                node
            }
            Event::Alias(id) => {
                let Some(Some((node, size))) = anchors.get(id) else {
                    out.problems.push(Problem {
                        kind: ProblemKind::Syntax,
                        message: "alias to an unknown anchor".into(),
                        span,
                        first: None,
                    });
                    return out;
                };
                if *size > alias_budget {
                    out.problems.push(Problem {
                        kind: ProblemKind::Limit,
                        message: format!(
                            "alias expansion would create more than {MAX_ALIAS_NODES} nodes in this file (a \"billion laughs\" structure?)"
                        ),
                        span,
                        first: None,
                    });
                    return out;
                }
                alias_budget -= size;
                Node {
                    span,
                    value: node.value.clone(),
                }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    out.problems.push(Problem {
                        kind: ProblemKind::Limit,
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                        span,
                        first: None,
                    });
                    return out;
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq {
                        start: span,
                        anchor,
                        items: Vec::new(),
                    }
                } else {
                    Frame::Map {
                        start: span,
                        anchor,
                        entries: Vec::new(),
                        key: None,
                        duplicate: false,
                    }
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match stack.pop() {
                    Some(Frame::Seq {
                        start,
                        anchor,
                        items,
                    }) => (
                        Node {
                            span: Span {
                                start: start.start,
                                end: span.end,
                            },
                            value: Value::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        start,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            span: Span {
                                start: start.start,
                                end: span.end,
                            },
                            value: Value::Map(entries),
                        },
                        anchor,
                    ),
                    None => continue,
                };
                if anchor != 0 {
                    let size = node.count();
                    remember(&mut anchors, anchor, &node, size);
                }
                node
            }
        };
        // Attach the finished node to its parent.
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                key,
                duplicate,
                ..
            }) => match key.take() {
                None => {
                    let text = node.key_text();
                    // Complex keys have no text to compare; the loader
                    // reports each of them.
                    let first = node
                        .is_scalar()
                        .then(|| {
                            entries
                                .iter()
                                .find(|(k, _)| k.is_scalar() && k.key_text() == text)
                        })
                        .flatten();
                    if let Some((first, _)) = first {
                        out.problems.push(Problem {
                            kind: ProblemKind::DuplicateKey,
                            message: format!("duplicate key `{text}`"),
                            span: node.span,
                            first: Some(first.span),
                        });
                        doc_has_duplicate = true;
                        *duplicate = true;
                    }
                    *key = Some(node);
                }
                Some(_) if std::mem::take(duplicate) => {}
                Some(k) => entries.push((k, node)),
            },
        }
    }
    out
}

/// The innermost open flow collection (`[` or `{`) and its bracket.
fn innermost_flow(stack: &[Frame], text: &str) -> Option<(char, Span)> {
    stack.iter().rev().find_map(|frame| {
        let start = match frame {
            Frame::Seq { start, .. } | Frame::Map { start, .. } => start.start,
        };
        let line = text.split('\n').nth(start.line.checked_sub(1)? as usize)?;
        let c = line.chars().nth(start.column.checked_sub(1)? as usize)?;
        matches!(c, '[' | '{').then(|| {
            let end = Pos {
                column: start.column + 1,
                ..start
            };
            (c, Span { start, end })
        })
    })
}

fn remember(anchors: &mut Vec<Option<(Node, usize)>>, anchor: usize, node: &Node, size: usize) {
    if anchor == 0 {
        return;
    }
    if anchors.len() <= anchor {
        anchors.resize(anchor + 1, None);
    }
    anchors[anchor] = Some((node.clone(), size));
}

/// YAML 1.2 core schema resolution of a scalar.
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    if let Some(tag) = tag
        && tag.is_yaml_core_schema()
    {
        return match tag.suffix.as_str() {
            "str" => Value::Str(text.to_owned()),
            "null" => Value::Null,
            "bool" => parse_bool(text).map_or_else(|| Value::Str(text.to_owned()), Value::Bool),
            "int" => parse_int(text).map_or_else(|| Value::Str(text.to_owned()), Value::Int),
            "float" => parse_float(text).map_or_else(|| Value::Str(text.to_owned()), Value::Float),
            _ => Value::Str(text.to_owned()),
        };
    }
    if style != ScalarStyle::Plain {
        return Value::Str(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        _ => {}
    }
    if let Some(b) = parse_bool(text) {
        return Value::Bool(b);
    }
    if let Some(i) = parse_int(text) {
        return Value::Int(i);
    }
    if let Some(f) = parse_float(text) {
        return Value::Float(f);
    }
    Value::Str(text.to_owned())
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn parse_int(text: &str) -> Option<i64> {
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok();
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    None
}

fn parse_float(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    match unsigned {
        ".inf" | ".Inf" | ".INF" => {
            return Some(if text.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        ".nan" | ".NaN" | ".NAN" if unsigned.len() == text.len() => return Some(f64::NAN),
        _ => {}
    }
    // Core schema: [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let b = unsigned.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - s
    };
    let int_digits = digits(&mut i);
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        frac_digits = digits(&mut i);
    } else if int_digits == 0 {
        return None;
    }
    if int_digits == 0 && frac_digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
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

    /// Past the scanner's own limit (255 flow levels) it is still the
    /// nesting limit, not a syntax error.
    #[test]
    fn very_deep_flow_nesting_is_a_limit_too() {
        for depth in [256, 1000, 100_000] {
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
        }
    }
}
