//! One file → its documents, typed where they pass the schema, and a
//! finding for everything that does not.
//!
//! A document is checked against the schema and typed straight from its
//! spanned tree (no JSON copy), and the tree is dropped when the document
//! is done: only the typed object and the document's kind and name stay.

use std::borrow::Cow;

use compact_str::CompactString;
use smallvec::SmallVec;

use super::{Content, Doc, MAX_FILE_BYTES, SchemaChecker, did_you_mean, location, yaml};
use crate::catalog as cat;
use crate::diag::{FileId, Finding, Location, Pos};
use crate::model::{self, API_VERSION, Config, Kind, Metadata, Object};

/// One typed object, before it gets its document ID: in the allocation it
/// keeps in the configuration (see [`model::Objects`]).
pub(super) enum Typed {
    Domain(Box<Object<model::DomainSpec>>),
    Host(Box<Object<model::HostSpec>>),
    Node(Box<Object<model::NodeSpec>>),
    NetworkLine(Box<Object<model::NetworkLineSpec>>),
    DataSource(Box<Object<model::DataSourceSpec>>),
    ResourceGroup(Box<Object<model::ResourceGroupSpec>>),
}

impl Typed {
    fn new<S>(metadata: Metadata, spec: S, variant: fn(Box<Object<S>>) -> Typed) -> Typed {
        variant(Box::new(Object {
            metadata,
            spec,
            doc: 0,
        }))
    }
}

/// The typed objects of one unit as the files' results are merged, in
/// document order; indexed by name once all are in
/// ([`Gathered::into_config`]).
// Boxed on purpose: each object keeps the allocation it was typed in (on a
// worker), and the configuration holds the same boxes.
#[allow(clippy::vec_box)]
#[derive(Default)]
pub(super) struct Gathered {
    domain: Option<Object<model::DomainSpec>>,
    hosts: Vec<Box<Object<model::HostSpec>>>,
    nodes: Vec<Box<Object<model::NodeSpec>>>,
    lines: Vec<Box<Object<model::NetworkLineSpec>>>,
    data_sources: Vec<Box<Object<model::DataSourceSpec>>>,
    groups: Vec<Box<Object<model::ResourceGroupSpec>>>,
}

impl Gathered {
    /// Room for exactly `n` more objects of `kind`: the loader counts them
    /// first, and the typed objects are most of the memory of a large
    /// configuration.
    pub(super) fn reserve_exact(&mut self, kind: Kind, n: usize) {
        match kind {
            Kind::Domain => {}
            Kind::Host => self.hosts.reserve_exact(n),
            Kind::Node => self.nodes.reserve_exact(n),
            Kind::NetworkLine => self.lines.reserve_exact(n),
            Kind::DataSource => self.data_sources.reserve_exact(n),
            Kind::ResourceGroup => self.groups.reserve_exact(n),
        }
    }

    pub(super) fn add(&mut self, typed: Typed, doc: model::DocId) {
        fn at<S>(mut obj: Box<Object<S>>, doc: model::DocId) -> Box<Object<S>> {
            obj.doc = doc;
            obj
        }
        match typed {
            // A second Domain is reported by the rules (AS0013); the first wins.
            Typed::Domain(o) => {
                self.domain.get_or_insert(*at(o, doc));
            }
            Typed::Host(o) => self.hosts.push(at(o, doc)),
            Typed::Node(o) => self.nodes.push(at(o, doc)),
            Typed::NetworkLine(o) => self.lines.push(at(o, doc)),
            Typed::DataSource(o) => self.data_sources.push(at(o, doc)),
            Typed::ResourceGroup(o) => self.groups.push(at(o, doc)),
        }
    }

    /// The configuration, its five name indexes (tens of thousands of names
    /// on a large domain) built on every core rather than one by one as the
    /// objects were merged.
    pub(super) fn into_config(self) -> Config {
        use model::Objects;
        let Gathered {
            domain,
            hosts,
            nodes,
            lines,
            data_sources,
            groups,
        } = self;
        let ((hosts, nodes), ((lines, data_sources), groups)) = rayon::join(
            || rayon::join(|| Objects::from_boxes(hosts), || Objects::from_boxes(nodes)),
            || {
                rayon::join(
                    || {
                        rayon::join(
                            || Objects::from_boxes(lines),
                            || Objects::from_boxes(data_sources),
                        )
                    },
                    || Objects::from_boxes(groups),
                )
            },
        );
        Config {
            domain,
            hosts,
            nodes,
            lines,
            data_sources,
            groups,
        }
    }
}

/// What one file yields; merged into `Loaded` by `assemble`.
pub(super) struct FileLoader {
    file: FileId,
    pub(super) text: String,
    pub(super) findings: Vec<Finding>,
    pub(super) incomplete: bool,
    pub(super) invalid_names: Vec<(Kind, String)>,
    /// Nearly every file holds one document: kept inline, a file's list
    /// costs no allocation, and the merge reads it where it reads the rest.
    pub(super) docs: SmallVec<[(Doc, Option<Typed>); 1]>,
}

/// What `metadata` or `spec` is when the document has none (the schema
/// then has said so already).
static NULL: yaml::Node = yaml::Node {
    span: yaml::Span {
        start: Pos { line: 1, column: 1 },
        end: Pos { line: 1, column: 1 },
    },
    value: yaml::Value::Null,
};

impl FileLoader {
    pub(super) fn new(file: FileId) -> Self {
        FileLoader {
            file,
            text: String::new(),
            findings: Vec::new(),
            incomplete: false,
            invalid_names: Vec::new(),
            docs: SmallVec::new(),
        }
    }

    pub(super) fn read(&mut self, content: Content) {
        let Some(text) = self.decode(content) else {
            self.incomplete = true;
            return;
        };
        // Each document is checked and typed as soon as it is parsed, and
        // its tree dropped: a file of a thousand documents never holds a
        // thousand trees.
        let start = self.findings.len();
        let mut index = 0;
        let problems = yaml::parse_each(&text, |document| {
            self.add_document(index, document);
            index += 1;
        });
        self.text = text;
        // The file's syntax problems come before its documents' findings.
        let documents_end = self.findings.len();
        self.problems(problems);
        self.findings[start..].rotate_left(documents_end - start);
    }

    /// A one-character location at the start of a line and column.
    fn at(&self, line: u32, column: u32) -> Option<Location> {
        let start = Pos { line, column };
        let end = Pos {
            line,
            column: column + 1,
        };
        Some(Location {
            file: self.file,
            start,
            end,
        })
    }

    /// The file's text, or `None` with a finding saying why it has none.
    fn decode(&mut self, content: Content) -> Option<String> {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        let bytes = match content {
            Content::Bytes(bytes) => bytes,
            Content::NotRegular(kind) => {
                self.findings.push(Finding::new(
                    &cat::NOT_REGULAR_FILE,
                    format!("not a regular file ({kind}); it was not opened"),
                    self.at(1, 1),
                ));
                return None;
            }
        };
        if bytes.len() > MAX_FILE_BYTES {
            self.findings.push(Finding::new(
                &cat::RESOURCE_LIMIT,
                format!(
                    "the file is larger than {} MiB",
                    MAX_FILE_BYTES / (1024 * 1024)
                ),
                self.at(1, 1),
            ));
            return None;
        }
        let body = bytes.strip_prefix(BOM).unwrap_or(&bytes);
        if let Err(e) = std::str::from_utf8(body) {
            self.invalid_utf8(body, e);
            return None;
        }
        // The bytes are checked just above; an owned buffer becomes the text
        // without a copy.
        Some(match bytes {
            Cow::Borrowed(b) => {
                String::from_utf8_lossy(b.strip_prefix(BOM).unwrap_or(b)).into_owned()
            }
            Cow::Owned(mut v) => {
                if v.starts_with(BOM) {
                    v.drain(..BOM.len());
                }
                String::from_utf8(v).unwrap_or_default()
            }
        })
    }

    fn invalid_utf8(&mut self, bytes: &[u8], e: std::str::Utf8Error) {
        let valid = &bytes[..e.valid_up_to()];
        // Safe: the prefix up to `valid_up_to` is valid UTF-8 by definition.
        let valid = std::str::from_utf8(valid).unwrap_or_default();
        let line = valid.matches('\n').count() as u32 + 1;
        let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
        let column = valid[line_start..].chars().count() as u32 + 1;
        let bad = bytes[e.valid_up_to()];
        // Keep the readable part so the snippet can show the line.
        self.text = String::from_utf8_lossy(bytes).into_owned();
        self.findings.push(Finding::new(
            &cat::INVALID_ENCODING,
            format!("byte 0x{bad:02X} is not valid UTF-8"),
            self.at(line, column),
        ));
    }

    fn problems(&mut self, problems: Vec<yaml::Problem>) {
        let file = self.file;
        for problem in problems {
            let loc = Some(location(file, problem.span));
            // A duplicate key leaves the document readable: it is kept,
            // flagged, and left out of the rules by `add_document`.
            self.incomplete |= problem.kind != yaml::ProblemKind::DuplicateKey;
            let finding = match problem.kind {
                yaml::ProblemKind::Syntax => Finding::new(&cat::YAML_SYNTAX, problem.message, loc)
                    .with_related(
                        problem.first.map(|s| location(file, s)),
                        "the parser stopped here",
                    ),
                yaml::ProblemKind::Limit => {
                    Finding::new(&cat::RESOURCE_LIMIT, problem.message, loc)
                }
                yaml::ProblemKind::DuplicateKey => {
                    Finding::new(&cat::DUPLICATE_KEY, problem.message, loc).with_related(
                        problem.first.map(|s| location(file, s)),
                        "first defined here",
                    )
                }
            };
            self.findings.push(finding);
        }
    }

    fn add_document(&mut self, index: usize, document: yaml::Document) {
        let file = self.file;
        let Some(mut root) = document.root.filter(|r| r.value != yaml::Value::Null) else {
            let p = document.start;
            self.findings.push(Finding::new(
                &cat::EMPTY_DOCUMENT,
                "this document is empty and is ignored",
                Some(Location {
                    file,
                    start: p,
                    end: p,
                }),
            ));
            return;
        };
        let Some(kind) = self.header(&root) else {
            self.incomplete = true;
            return;
        };
        let name = root
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .map(CompactString::from);
        let schema_ok = self.schema(&mut root, kind);
        let typed = if schema_ok && !document.duplicate_keys {
            self.typed(kind, &root)
        } else {
            None
        };
        if typed.is_none() {
            match &name {
                Some(n) => self.invalid_names.push((kind, n.to_string())),
                None => self.incomplete = true,
            }
        }
        self.docs.push((
            Doc {
                file,
                index,
                kind,
                name,
            },
            typed,
        ));
    }

    /// The document's kind, if it is a mapping with a known `apiVersion`
    /// and `kind`; a finding otherwise.
    fn header(&mut self, root: &yaml::Node) -> Option<Kind> {
        let here = |node: &yaml::Node| Some(location(self.file, node.span));
        if !matches!(root.value, yaml::Value::Map(_)) {
            self.findings.push(Finding::new(
                &cat::WRONG_TYPE,
                format!(
                    "a document must be a mapping with `apiVersion`, `kind`, `metadata` and `spec`, found {}",
                    root.describe()
                ),
                here(root),
            ));
            return None;
        }
        let (api, kind_node) = match (root.get("apiVersion"), root.get("kind")) {
            (Some(api), Some(kind)) => (api, kind),
            (api, kind) => {
                let missing = match (api.is_none(), kind.is_none()) {
                    (true, true) => "`apiVersion` and `kind`",
                    (true, false) => "`apiVersion`",
                    _ => "`kind`",
                };
                let start = root.span.start;
                let at = Location {
                    file: self.file,
                    start,
                    end: start,
                };
                self.findings.push(
                    Finding::new(
                        &cat::MISSING_HEADER,
                        format!("this document has no {missing}"),
                        Some(at),
                    )
                    .with_help("start the document with `apiVersion: asctl/v1` and `kind: <Kind>`"),
                );
                return None;
            }
        };
        let mut header_ok = true;
        if api.as_str() != Some(API_VERSION) {
            header_ok = false;
            self.findings.push(
                Finding::new(
                    &cat::UNKNOWN_API_VERSION,
                    format!("unknown apiVersion {}", shown(api)),
                    here(api),
                )
                .with_help(format!("this asctl reads `apiVersion: {API_VERSION}`")),
            );
        }
        let kind = kind_node.as_str().and_then(Kind::parse);
        if kind.is_none() {
            header_ok = false;
            let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            let mut f = Finding::new(
                &cat::UNKNOWN_KIND,
                format!("unknown kind {}", shown(kind_node)),
                here(kind_node),
            );
            if let Some(s) = kind_node.as_str().and_then(|s| did_you_mean(s, &names)) {
                f = f.with_help(format!("did you mean `{s}`?"));
            }
            self.findings.push(f);
        }
        kind.filter(|_| header_ok)
    }

    /// Reports the complex keys and every schema error; whether the
    /// document can still be typed. Its unknown fields are then removed.
    fn schema(&mut self, root: &mut yaml::Node, kind: Kind) -> bool {
        let before = self.findings.len();
        // A key that is a list or mapping (`? [a, b]`) names no field; the
        // schema never sees it (see `to_json`), so it is reported here.
        for key in root.complex_keys() {
            self.findings.push(
                Finding::new(
                    &cat::WRONG_TYPE,
                    format!("a key must be a string, found {}", key.describe()),
                    Some(location(self.file, key.span)),
                )
                .with_help("write the key as plain text: complex keys (`? [a, b]`) are not part of the format"),
            );
        }
        let unknown = SchemaChecker::get().check(root, kind, self.file, &mut self.findings);
        // Unknown fields alone do not make the object unusable: without
        // them it is what the user meant, and the rules still judge it.
        let schema_ok = self.findings[before..]
            .iter()
            .all(|f| std::ptr::eq(f.rule, &cat::UNKNOWN_FIELD));
        if schema_ok {
            for pointer in &unknown {
                root.remove(pointer);
            }
        }
        schema_ok
    }

    /// Deserialises the typed object; reports what the schema could not
    /// express (e.g. an IPv6 address that matches the pattern but is invalid).
    fn typed(&mut self, kind: Kind, root: &yaml::Node) -> Option<Typed> {
        let metadata: Metadata =
            match deserialize(root.get("metadata").unwrap_or(&NULL), "/metadata") {
                Ok(m) => m,
                Err(e) => return self.serde_finding(e, root),
            };
        let spec = root.get("spec").unwrap_or(&NULL);
        let m = metadata;
        let result = match kind {
            Kind::Domain => deserialize(spec, "/spec").map(|s| Typed::new(m, s, Typed::Domain)),
            Kind::Host => deserialize(spec, "/spec").map(|s| Typed::new(m, s, Typed::Host)),
            Kind::Node => deserialize(spec, "/spec").map(|s| Typed::new(m, s, Typed::Node)),
            Kind::NetworkLine => {
                deserialize(spec, "/spec").map(|s| Typed::new(m, s, Typed::NetworkLine))
            }
            Kind::DataSource => {
                deserialize(spec, "/spec").map(|s| Typed::new(m, s, Typed::DataSource))
            }
            Kind::ResourceGroup => {
                deserialize(spec, "/spec").map(|s| Typed::new(m, s, Typed::ResourceGroup))
            }
        };
        match result {
            Ok(typed) => Some(typed),
            Err(e) => self.serde_finding(e, root),
        }
    }

    fn serde_finding(
        &mut self,
        (pointer, message): (String, String),
        root: &yaml::Node,
    ) -> Option<Typed> {
        let loc = root
            .lookup(&pointer)
            .map(|(_, n)| location(self.file, n.span))
            .or(Some(location(self.file, root.span)));
        self.findings
            .push(Finding::new(&cat::INVALID_VALUE, message, loc));
        None
    }
}

/// Deserialises with the path of the failing value, as a JSON pointer.
fn deserialize<'de, T: serde::Deserialize<'de>>(
    node: &'de yaml::Node,
    base: &str,
) -> Result<T, (String, String)> {
    // Following the path costs on every value; it is needed only when a
    // value fails, and reading the same tree again fails the same way.
    if let Ok(value) = yaml::from_node(node) {
        return Ok(value);
    }
    serde_path_to_error::deserialize(node).map_err(|e| {
        let mut pointer = base.to_owned();
        for seg in e.path().iter() {
            use serde_path_to_error::Segment;
            match seg {
                Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
                Segment::Map { key } | Segment::Enum { variant: key } => {
                    pointer.push('/');
                    pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                }
                Segment::Unknown => {}
            }
        }
        (pointer, e.into_inner().to_string())
    })
}

/// A scalar as shown in messages: `` `text` `` or its type.
fn shown(node: &yaml::Node) -> String {
    match &node.value {
        yaml::Value::Str(s) => format!("`{s}`"),
        yaml::Value::Seq(_) | yaml::Value::Map(_) | yaml::Value::Null => node.describe().to_owned(),
        _ => format!("`{}`", node.key_text()),
    }
}
