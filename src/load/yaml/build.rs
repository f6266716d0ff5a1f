//! The tree builder: `saphyr-parser` events → spanned documents.
//!
//! The limits (nesting depth, alias expansion) are enforced as the events
//! arrive, so hostile input stops before it has cost anything; the first
//! syntax error or limit ends the reading of the file.

use saphyr_parser::{Event, Parser, ScanError};

use super::scalar::resolve_scalar;
use super::{
    Document, MAX_ALIAS_NODES, MAX_DEPTH, Node, Parsed, Problem, ProblemKind,
    SCANNER_RECURSION_LIMIT, Span, Value, pos,
};
use crate::diag::Pos;

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

impl Frame {
    fn start(&self) -> Pos {
        match self {
            Frame::Seq { start, .. } | Frame::Map { start, .. } => start.start,
        }
    }
}

/// Parses every document of `text`.
pub fn parse(text: &str) -> Parsed {
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
pub fn parse_each(text: &str, each: impl FnMut(Document)) -> Vec<Problem> {
    let mut builder = Builder {
        text,
        each,
        problems: Vec::new(),
        stack: Vec::new(),
        anchors: Vec::new(),
        alias_budget: MAX_ALIAS_NODES,
        doc_start: Pos { line: 1, column: 1 },
        root: None,
        doc_has_duplicate: false,
    };
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        let step = match next {
            Ok((event, span)) => builder.event(event, Span::from_yaml(&span)),
            Err(e) => Err(builder.scan_error(&e)),
        };
        if let Err(problem) = step {
            builder.problems.push(problem);
            break;
        }
    }
    builder.problems
}

struct Builder<'t, F> {
    text: &'t str,
    each: F,
    problems: Vec<Problem>,
    stack: Vec<Frame>,
    anchors: Vec<Option<(Node, usize)>>,
    alias_budget: usize,
    doc_start: Pos,
    root: Option<Node>,
    doc_has_duplicate: bool,
}

impl<F: FnMut(Document)> Builder<'_, F> {
    /// Takes one event; a problem that stops the reading is the error.
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), Problem> {
        let node = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing => return Ok(()),
            Event::DocumentStart(_) => {
                self.doc_start = span.start;
                self.root = None;
                self.doc_has_duplicate = false;
                self.anchors.clear();
                return Ok(());
            }
            Event::DocumentEnd => {
                (self.each)(Document {
                    start: self.doc_start,
                    root: self.root.take(),
                    duplicate_keys: self.doc_has_duplicate,
                });
                return Ok(());
            }
            Event::Scalar(text, style, anchor, tag) => {
                let node = Node {
                    span,
                    value: resolve_scalar(text, style, tag.as_deref()),
                };
                if anchor != 0 {
                    self.remember(anchor, &node, 1);
                }
                node
            }
            Event::Alias(id) => self.alias(id, span)?,
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.stack.len() >= MAX_DEPTH {
                    return Err(problem(
                        ProblemKind::Limit,
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                        span,
                    ));
                }
                self.stack
                    .push(if matches!(event, Event::SequenceStart(..)) {
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

    /// A copy of the anchored node, within the file's expansion budget.
    fn alias(&mut self, id: usize, span: Span) -> Result<Node, Problem> {
        let Some(Some((node, size))) = self.anchors.get(id) else {
            return Err(problem(
                ProblemKind::Syntax,
                "alias to an unknown anchor".into(),
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
    fn close(&mut self, end: Span) -> Option<Node> {
        let (start, anchor, value) = match self.stack.pop()? {
            Frame::Seq {
                start,
                anchor,
                items,
            } => (start, anchor, Value::Seq(items)),
            Frame::Map {
                start,
                anchor,
                entries,
                ..
            } => (start, anchor, Value::Map(entries)),
        };
        let node = Node {
            span: Span {
                start: start.start,
                end: end.end,
            },
            value,
        };
        if anchor != 0 {
            let size = node.count();
            self.remember(anchor, &node, size);
        }
        Some(node)
    }

    /// Attaches a finished node to its parent (or makes it the root).
    fn attach(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                key,
                duplicate,
                ..
            }) => match key.take() {
                None => {
                    // Complex keys have no text to compare; the loader
                    // reports each of them.
                    let first = node
                        .is_scalar()
                        .then(|| {
                            let text = node.key_text();
                            entries
                                .iter()
                                .find(|(k, _)| k.is_scalar() && k.key_text() == text)
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

    fn scan_error(&self, e: &ScanError) -> Problem {
        let m = e.marker();
        let p = pos(m.line(), m.col());
        // The scanner reads flow collections ahead of the events, so very
        // deep `[[[...` stops it (at 255 levels) before the depth limit
        // sees the events: the same limit, said so.
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
        // Inside an unclosed `[` or `{`, the parser notices only where the
        // text stops making sense, often lines later: the bracket is where
        // the user must look.
        let open = (kind == ProblemKind::Syntax)
            .then(|| self.innermost_flow())
            .flatten();
        match open {
            Some((bracket, at)) => Problem {
                kind,
                message: format!(
                    "{message}: the `{bracket}` opened here is not closed where the parser expected (it stopped at {}:{})",
                    p.line, p.column
                ),
                span: at,
                first: Some(Span { start: p, end }),
            },
            None => problem(kind, message, Span { start: p, end }),
        }
    }

    /// The innermost open flow collection (`[` or `{`) and its bracket.
    fn innermost_flow(&self) -> Option<(char, Span)> {
        self.stack.iter().rev().find_map(|frame| {
            let start = frame.start();
            let line = self
                .text
                .split('\n')
                .nth(start.line.checked_sub(1)? as usize)?;
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

    fn remember(&mut self, anchor: usize, node: &Node, size: usize) {
        if self.anchors.len() <= anchor {
            self.anchors.resize(anchor + 1, None);
        }
        self.anchors[anchor] = Some((node.clone(), size));
    }
}

fn problem(kind: ProblemKind, message: String, span: Span) -> Problem {
    Problem {
        kind,
        message,
        span,
        first: None,
    }
}
