//! The tree builder: `rlsp-yaml-parser` events → spanned documents.
//!
//! The limits (nesting depth, alias expansion) are enforced as the events
//! arrive, so hostile input stops before it has cost anything; the first
//! syntax error or limit ends the reading of the file.

use rlsp_yaml_parser::{CollectionStyle, Event, ScalarStyle};
use smallvec::SmallVec;

use super::scalar::resolve_scalar;
use super::{
    Document, MAX_ALIAS_NODES, MAX_DEPTH, Node, Parsed, Problem, ProblemKind, Span, Value,
};
use crate::diag::Pos;

/// An open collection.
struct Frame<'t> {
    start: Span,
    anchor: Option<&'t str>,
    /// A flow collection (`[...]`, `{...}`), whose span takes in its
    /// closing bracket.
    flow: bool,
    open: Open<'t>,
}

enum Open<'t> {
    Seq(Vec<Node<'t>>),
    Map {
        entries: Vec<(Node<'t>, Node<'t>)>,
        key: Option<Node<'t>>,
        /// The pending key repeats an earlier one: its value is dropped.
        duplicate: bool,
    },
}

/// Parses every document of `text`.
pub fn parse(text: &str) -> Parsed<'_> {
    let mut documents = Vec::new();
    let problems = parse_each(text, |d| documents.push(d));
    Parsed {
        documents,
        problems,
    }
}

/// Parses `text`, handing each document to `each` as soon as it ends, so
/// that a file of many documents never holds more than one tree; returns
/// the problems met.
pub fn parse_each<'t>(text: &'t str, each: impl FnMut(Document<'t>)) -> Vec<Problem> {
    let mut builder = Builder {
        text,
        lines: Lines::new(text),
        last_end: 0,
        each,
        problems: Vec::new(),
        stack: SmallVec::new(),
        anchors: foldhash::HashMap::default(),
        alias_budget: MAX_ALIAS_NODES,
        doc_start: Pos { line: 1, column: 1 },
        root: None,
        doc_has_duplicate: false,
    };
    for next in rlsp_yaml_parser::parse_events(text) {
        let step = match next {
            Ok((event, mut span)) => {
                builder.flow_brackets(&event, &mut span);
                builder.last_end = span.end as usize;
                let span = builder.lines.span(span);
                builder.event(event, span)
            }
            Err(e) => Err(builder.parse_error(&e)),
        };
        if let Err(problem) = step {
            builder.problems.push(problem);
            break;
        }
    }
    builder.problems
}

/// What `rlsp-yaml-parser` says past its own nesting limit.
const PARSER_DEPTH_LIMIT: &str = "collection nesting depth exceeds limit";

struct Builder<'t, F> {
    text: &'t str,
    lines: Lines<'t>,
    /// Where the last event ended (a byte offset).
    last_end: usize,
    each: F,
    problems: Vec<Problem>,
    /// The open collections, innermost last: a document nests a few
    /// levels, kept here without an allocation of their own.
    stack: SmallVec<[Frame<'t>; 8]>,
    /// The anchors of the document so far, with each node's size (a name
    /// anchored again names the later node).
    anchors: foldhash::HashMap<&'t str, (Node<'t>, usize)>,
    alias_budget: usize,
    doc_start: Pos,
    root: Option<Node<'t>>,
    doc_has_duplicate: bool,
}

impl<'t, F: FnMut(Document<'t>)> Builder<'t, F> {
    /// Takes one event; a problem that stops the reading is the error.
    fn event(&mut self, event: Event<'t>, span: Span) -> Result<(), Problem> {
        let node = match event {
            Event::StreamStart | Event::StreamEnd | Event::Comment { .. } => return Ok(()),
            Event::DocumentStart { .. } => {
                self.doc_start = span.start;
                self.root = None;
                self.doc_has_duplicate = false;
                self.anchors.clear();
                return Ok(());
            }
            Event::DocumentEnd { .. } => {
                (self.each)(Document {
                    start: self.doc_start,
                    root: self.root.take(),
                    duplicate_keys: self.doc_has_duplicate,
                });
                return Ok(());
            }
            Event::Scalar { value, style, meta } => {
                let (anchor, tag) = match &meta {
                    Some(meta) => (meta.anchor, meta.tag.as_deref()),
                    None => (None, None),
                };
                let node = Node {
                    span,
                    value: resolve_scalar(value, style == ScalarStyle::Plain, tag),
                };
                if let Some(name) = anchor {
                    self.remember(name, &node, 1);
                }
                node
            }
            Event::Alias { name } => self.alias(name, span)?,
            Event::SequenceStart { ref meta, style } | Event::MappingStart { ref meta, style } => {
                if self.stack.len() >= MAX_DEPTH {
                    return Err(problem(
                        ProblemKind::Limit,
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                        span,
                    ));
                }
                self.stack.push(Frame {
                    start: span,
                    anchor: meta.as_ref().and_then(|m| m.anchor),
                    flow: style == CollectionStyle::Flow,
                    open: if matches!(event, Event::SequenceStart { .. }) {
                        Open::Seq(Vec::new())
                    } else {
                        Open::Map {
                            entries: Vec::new(),
                            key: None,
                            duplicate: false,
                        }
                    },
                });
                return Ok(());
            }
            Event::SequenceEnd | Event::MappingEnd => match self.close(span) {
                Some(node) => node,
                None => return Ok(()),
            },
        };
        self.attach(node);
        Ok(())
    }

    /// The parser's spans of a flow collection's start and end are empty,
    /// before each bracket: the node's span takes both brackets in.
    fn flow_brackets(&mut self, event: &Event<'_>, span: &mut rlsp_yaml_parser::Span) {
        match event {
            // The opening bracket itself (the parser's span is empty).
            Event::SequenceStart { style, .. } | Event::MappingStart { style, .. }
                if *style == CollectionStyle::Flow && span.end == span.start =>
            {
                span.end += 1;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                // The collection's frame is closed after this.
                let flow = self.stack.last().is_some_and(|f| f.flow);
                let rest = &self.text.as_bytes()[(span.end as usize).min(self.text.len())..];
                if flow
                    && let Some(i) = rest.iter().position(|b| !b.is_ascii_whitespace())
                    && matches!(rest[i], b']' | b'}')
                {
                    span.end += i as u32 + 1;
                }
            }
            _ => {}
        }
    }

    /// A copy of the anchored node, within the file's expansion budget.
    fn alias(&mut self, name: &str, span: Span) -> Result<Node<'t>, Problem> {
        let Some((node, size)) = self.anchors.get(name) else {
            return Err(problem(
                ProblemKind::Syntax,
                format!("alias `*{name}` to an unknown anchor"),
                span,
            ));
        };
        if *size > self.alias_budget {
            return Err(problem(
                ProblemKind::Limit,
                format!(
                    "alias expansion would create more than {MAX_ALIAS_NODES} nodes in this file (a \"billion laughs\" structure?)"
                ),
                span,
            ));
        }
        self.alias_budget -= size;
        Ok(Node {
            span,
            value: node.value.clone(),
        })
    }

    /// The collection that ends at `end`, remembered if it is anchored.
    fn close(&mut self, end: Span) -> Option<Node<'t>> {
        let Frame {
            start,
            anchor,
            open,
            ..
        } = self.stack.pop()?;
        let value = match open {
            Open::Seq(items) => Value::Seq(items),
            Open::Map { entries, .. } => Value::Map(entries),
        };
        let node = Node {
            span: Span {
                start: start.start,
                end: end.end,
            },
            value,
        };
        if let Some(name) = anchor {
            let size = node.count();
            self.remember(name, &node, size);
        }
        Some(node)
    }

    /// Attaches a finished node to its parent (or makes it the root).
    fn attach(&mut self, node: Node<'t>) {
        match self.stack.last_mut().map(|f| &mut f.open) {
            None => self.root = Some(node),
            Some(Open::Seq(items)) => items.push(node),
            Some(Open::Map {
                entries,
                key,
                duplicate,
            }) => match key.take() {
                None => {
                    // Complex keys have no text to compare; the loader
                    // reports each of them.
                    let first = node
                        .is_scalar()
                        .then(|| {
                            let text = node.key_text();
                            entries.iter().find(|(k, _)| k.is_key(&text))
                        })
                        .flatten();
                    if let Some((first, _)) = first {
                        self.problems.push(Problem {
                            kind: ProblemKind::DuplicateKey,
                            message: format!("duplicate key `{}`", node.key_text()),
                            span: node.span,
                            first: Some(first.span),
                        });
                        self.doc_has_duplicate = true;
                        *duplicate = true;
                    }
                    *key = Some(node);
                }
                Some(_) if std::mem::take(duplicate) => {}
                Some(k) => entries.push((k, node)),
            },
        }
    }

    fn parse_error(&mut self, e: &rlsp_yaml_parser::Error) -> Problem {
        let p = Pos {
            line: e.pos.line.max(1) as u32,
            column: e.pos.column as u32 + 1,
        };
        let at = one_character(p);
        let stop = e.pos.byte_offset.min(self.text.len());
        let open = open_before(self.text, self.last_end.min(stop), stop);
        // The parser reads a flow collection whole before its events, so
        // a very deep `[[[...` stops it (at its own limit) before the depth
        // limit sees the events: the same limit, at the bracket past it.
        if e.message == PARSER_DEPTH_LIMIT {
            let past = open.get(MAX_DEPTH.saturating_sub(self.stack.len()));
            let start = past.map_or(p, |&(_, offset)| self.lines.pos(offset));
            return problem(
                ProblemKind::Limit,
                format!("nesting deeper than {MAX_DEPTH} levels"),
                one_character(start),
            );
        }
        // Inside an unclosed `[`, `{` or quote, the parser notices only
        // where the text stops making sense, often lines later: the opening
        // is where the user must look. The parser reads a flow collection or
        // a quoted scalar whole before its event, so the opening lies
        // between the last event and the error.
        match open.last() {
            Some(&(opening, offset)) => {
                let start = self.lines.pos(offset);
                Problem {
                    kind: ProblemKind::Syntax,
                    message: format!(
                        "{}: the `{opening}` opened here is not closed where the parser expected (it stopped at {}:{})",
                        e.message, p.line, p.column
                    ),
                    span: one_character(start),
                    first: Some(at),
                }
            }
            None => problem(ProblemKind::Syntax, e.message.clone(), at),
        }
    }

    fn remember(&mut self, name: &'t str, node: &Node<'t>, size: usize) {
        self.anchors.insert(name, (node.clone(), size));
    }
}

/// The span of the one character at `start`.
fn one_character(start: Pos) -> Span {
    let end = Pos {
        column: start.column + 1,
        ..start
    };
    Span { start, end }
}

fn problem(kind: ProblemKind, message: String, span: Span) -> Problem {
    Problem {
        kind,
        message,
        span,
        first: None,
    }
}

/// The `[`, `{`, `'` and `"` opened in `text[from..to]` and left open,
/// outermost first, with their offsets. A bracket or quote counts where a
/// node can start (after `:`, `-`, `?`, `,`, an open bracket or at a
/// line's start); `it's` or `a[1]` in a plain scalar open nothing.
fn open_before(text: &str, from: usize, to: usize) -> Vec<(char, usize)> {
    let bytes = &text.as_bytes()[..to];
    let mut open: Vec<(char, usize)> = Vec::new();
    // The last byte that is not a space or a tab ('\n' at a line's start).
    let mut prev = b'\n';
    let mut i = from;
    while i < bytes.len() {
        let b = bytes[i];
        let node_starts = !open.is_empty() || matches!(prev, b':' | b'-' | b'?' | b',' | b'\n');
        match b {
            b'#' if i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b'\n') => {
                i = memchr::memchr(b'\n', &bytes[i..]).map_or(bytes.len(), |n| i + n);
                continue;
            }
            b'\'' | b'"' if node_starts => match closing_quote(bytes, i) {
                Some(end) => i = end,
                None => {
                    open.push((b as char, i));
                    return open;
                }
            },
            b'[' | b'{' if node_starts => open.push((b as char, i)),
            b']' | b'}' => {
                open.pop();
            }
            _ => {}
        }
        if !matches!(bytes[i], b' ' | b'\t') {
            prev = bytes[i];
        }
        i += 1;
    }
    open
}

/// The offset of the quote that closes the one at `start`, if any.
fn closing_quote(bytes: &[u8], start: usize) -> Option<usize> {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote == b'"' => i += 1,
            // `''` is a quote inside a single-quoted scalar.
            b'\'' if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 1,
            b if b == quote => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Byte offsets → line and column (1-based, the column in characters).
/// The parser's offsets come almost in order, a few bytes apart: a cursor
/// reads each byte between two of them once.
struct Lines<'t> {
    text: &'t str,
    /// The offset last asked for, its line and column (1-based).
    at: usize,
    line: u32,
    column: u32,
}

impl<'t> Lines<'t> {
    fn new(text: &'t str) -> Self {
        Lines {
            text,
            at: 0,
            line: 1,
            column: 1,
        }
    }

    fn span(&mut self, span: rlsp_yaml_parser::Span) -> Span {
        Span {
            start: self.pos(span.start as usize),
            end: self.pos(span.end as usize),
        }
    }

    fn pos(&mut self, offset: usize) -> Pos {
        let bytes = self.text.as_bytes();
        let offset = offset.min(bytes.len());
        if offset < self.at {
            // Back (rare): from the start of the offset's line.
            let start = memchr::memrchr(b'\n', &bytes[..offset]).map_or(0, |i| i + 1);
            self.line -= memchr::memchr_iter(b'\n', &bytes[offset..self.at]).count() as u32;
            self.at = start;
            self.column = 1;
        }
        for &b in &bytes[self.at..offset] {
            if b == b'\n' {
                self.line += 1;
                self.column = 1;
            } else if !is_utf8_continuation(b) {
                self.column += 1;
            }
        }
        self.at = offset;
        Pos {
            line: self.line,
            column: self.column,
        }
    }
}

/// A byte that continues a UTF-8 character (`10xxxxxx`): not a character
/// of its own.
fn is_utf8_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_answer_offsets_in_any_order() {
        let text = "ab\ncdé\n\nfg";
        let expected = |offset: usize| {
            let before = &text[..offset];
            let line = before.matches('\n').count() as u32 + 1;
            let column = before.rsplit('\n').next().unwrap().chars().count() as u32 + 1;
            Pos { line, column }
        };
        let offsets: Vec<usize> = (0..=text.len())
            .filter(|&o| text.is_char_boundary(o))
            .collect();
        let mut lines = Lines::new(text);
        for &o in offsets
            .iter()
            .chain(offsets.iter().rev())
            .chain(&[0, 9, 2, 11])
        {
            assert_eq!(lines.pos(o), expected(o), "offset {o}");
        }
    }
}
