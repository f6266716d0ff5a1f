//! Files → documents with spans → typed configuration, with every finding.
//!
//! The loader never stops at the first problem: it reads every file and
//! every document it can, returns the typed [`Config`] of the documents that
//! passed, and a finding for each one that did not. Only I/O failures (a
//! path that does not exist, an unreadable directory) are errors, because
//! they mean the input itself is wrong (exit code 2). A path that is not a
//! regular file (a FIFO, a device) is not opened and is a finding
//! (`not-regular-file`), like a file that is not UTF-8.

mod domains;
mod files;
mod schema_check;
pub mod yaml;

use std::borrow::Cow;
use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;

use thiserror::Error;

use crate::catalog as cat;
use crate::diag::{FileId, Finding, Location, Pos, Sources};
use crate::model::{self, API_VERSION, Config, Kind, Metadata, Object};

pub use domains::{Grouping, STDIN_NAME, Unit};
pub use schema_check::SchemaChecker;

/// Largest file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 32 * 1024 * 1024;

/// Where configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file, or a directory read recursively for `*.yaml` / `*.yml`.
    Path(PathBuf),
    /// Standard input (`-` on the command line).
    Stdin,
}

impl Input {
    pub fn from_arg(arg: &str) -> Input {
        if arg == "-" {
            Input::Stdin
        } else {
            Input::Path(PathBuf::from(arg))
        }
    }
}

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("{0}: no such file or directory")]
    NotFound(String),
    #[error("{0}: no *.yaml or *.yml file in this directory")]
    EmptyDirectory(String),
}

/// What one input file holds.
#[derive(Debug, Clone)]
pub(crate) enum Content<'a> {
    Bytes(Cow<'a, [u8]>),
    /// Not a regular file, and not opened: what it is ("a FIFO").
    NotRegular(&'static str),
}

/// One document that declared a kind, whether or not it passed the schema.
///
/// Its spanned tree is not kept: it is most of the memory of a large
/// configuration, and only findings need it (for their locations). The
/// file is parsed again, once, when the first location in it is asked for.
#[derive(Debug, Clone)]
pub struct Doc {
    pub file: FileId,
    /// Which document of its file (counting every document the parser saw).
    pub index: usize,
    pub kind: Kind,
    /// The declared name, if it is a string (valid or not).
    pub name: Option<String>,
}

/// Everything read: sources for rendering, documents for spans, the typed
/// configuration, and the findings of the parse and schema stages.
#[derive(Debug, Default)]
pub struct Loaded {
    pub sources: Sources,
    pub docs: Vec<Doc>,
    /// The typed objects when everything read is one unit (one domain, or
    /// one file alone); empty otherwise: each unit then has its own.
    pub config: Config,
    pub findings: Vec<Finding>,
    /// The documents grouped as they are validated: one unit per domain,
    /// and one per file checked alone.
    pub units: Vec<Unit>,
    /// The unit of every file.
    pub unit_of_file: Vec<usize>,
    /// Per file, the documents' spanned trees, parsed again on first use.
    trees: Vec<OnceLock<Vec<Option<yaml::Node>>>>,
}

impl Loaded {
    /// The location of the value at `pointer` in document `doc`.
    pub fn locate(&self, doc: model::DocId, pointer: &str) -> Option<Location> {
        let d = self.docs.get(doc)?;
        let (_, node) = self.root(d)?.lookup(pointer)?;
        Some(location(d.file, node.span))
    }

    /// The location of the key of the entry at `pointer` (falls back to the
    /// value for list items).
    pub fn locate_key(&self, doc: model::DocId, pointer: &str) -> Option<Location> {
        let d = self.docs.get(doc)?;
        let (key, node) = self.root(d)?.lookup(pointer)?;
        Some(location(d.file, key.unwrap_or(node).span))
    }

    /// The spanned tree of a document: its file parsed again (the same text
    /// gives the same documents), once per file.
    pub fn root(&self, doc: &Doc) -> Option<&yaml::Node> {
        let trees = self.trees.get(doc.file)?.get_or_init(|| {
            yaml::parse(self.sources.text(doc.file))
                .documents
                .into_iter()
                .map(|d| d.root)
                .collect()
        });
        trees.get(doc.index)?.as_ref()
    }

    /// The typed objects of a unit.
    pub fn config_of<'a>(&'a self, unit: &'a Unit) -> &'a Config {
        unit.config.as_ref().unwrap_or(&self.config)
    }

    /// The one domain read, for commands that act on a single domain
    /// (`plan`, `apply`, `watch`): an error when the input holds none, or
    /// several (a tree of domain directories).
    pub fn single_domain(&self) -> Result<&Config, DomainsError> {
        let domains: Vec<&Unit> = self.units.iter().filter(|u| !u.alone()).collect();
        match domains.as_slice() {
            [one] if self.units.len() == 1 => Ok(self.config_of(one)),
            [] => Err(DomainsError::NoDomain),
            [_] => Err(DomainsError::Strays(self.alone_files())),
            many => Err(DomainsError::Several(
                many.len(),
                many.iter()
                    .filter_map(|u| u.domain.as_ref())
                    .map(|d| format!("`{}` in {}", d.name, d.root))
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    fn alone_files(&self) -> String {
        self.units
            .iter()
            .filter(|u| u.alone())
            .flat_map(|u| u.files.iter().map(|&f| self.sources.name(f)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a command that acts on one domain cannot use what was read.
#[derive(Debug, Error)]
pub enum DomainsError {
    #[error("no Domain document: this command needs one domain's configuration (its directory)")]
    NoDomain,
    #[error(
        "{0} domains were read ({1}); this command acts on one domain: give the directory of one of them"
    )]
    Several(usize, String),
    #[error(
        "files outside the domain's directory were read ({0}); give the domain's directory alone"
    )]
    Strays(String),
}

pub(crate) fn location(file: FileId, span: yaml::Span) -> Location {
    Location {
        file,
        start: span.start,
        end: span.end,
    }
}

/// Reads every input, grouped by domain. Directories are walked
/// recursively in sorted order. A file named twice (`f.yaml f.yaml`, or a
/// file and its directory, or through a symbolic link) is read once, where
/// it first appears.
pub fn load(inputs: &[Input]) -> Result<Loaded, LoadError> {
    load_with(inputs, Grouping::Domains)
}

/// [`load`] with a choice of grouping (`--file-only`).
pub fn load_with(inputs: &[Input], grouping: Grouping) -> Result<Loaded, LoadError> {
    let mut files = files::Files::default();
    for input in inputs {
        match input {
            Input::Stdin => {
                let mut buf = Vec::new();
                std::io::stdin()
                    .take(MAX_FILE_BYTES as u64 + 1)
                    .read_to_end(&mut buf)
                    .map_err(|source| LoadError::Io {
                        path: STDIN_NAME.into(),
                        err: source,
                    })?;
                files.push_stdin(buf);
            }
            Input::Path(path) => files.read_path(path)?,
        }
    }
    Ok(assemble(
        files.read.into_iter().map(|(n, c)| (Cow::Owned(n), c)),
        grouping,
    ))
}

/// Reads in-memory files (tests, benchmarks, `explain` examples).
pub fn load_texts<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Loaded {
    load_texts_with(files, Grouping::Domains)
}

/// [`load_texts`] with a choice of grouping.
pub fn load_texts_with<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    grouping: Grouping,
) -> Loaded {
    assemble(
        files
            .into_iter()
            .map(|(n, b)| (Cow::Borrowed(n), Content::Bytes(Cow::Borrowed(b)))),
        grouping,
    )
}

/// Reads every file in parallel (files are independent until names are
/// compared), then assembles the results in input order so that document
/// IDs, findings and "first definition" are deterministic.
fn assemble<'a>(
    files: impl IntoIterator<Item = (Cow<'a, str>, Content<'a>)>,
    grouping: Grouping,
) -> Loaded {
    use rayon::prelude::*;
    // The bytes are handed over (not copied) to become each file's text.
    let (names, bytes): (Vec<Cow<str>>, Vec<Content>) = files.into_iter().unzip();
    let results: Vec<FileLoader> = bytes
        .into_par_iter()
        .enumerate()
        .map(|(file, bytes)| {
            let mut loader = FileLoader::new(file);
            loader.read(bytes);
            loader
        })
        .collect();
    let facts: Vec<domains::FileFacts> = names
        .iter()
        .zip(&results)
        .map(|(name, r)| domains::FileFacts {
            name,
            domains: r
                .docs
                .iter()
                .filter(|(d, _)| d.kind == Kind::Domain)
                .map(|(d, _)| d.name.clone().unwrap_or_default())
                .collect(),
        })
        .collect();
    let (unit_of_file, mut units) = domains::partition(&facts, grouping);
    let single = units.len() == 1;
    if !single {
        for u in &mut units {
            u.config = Some(Config::default());
        }
    }
    let mut out = Loaded {
        trees: names.iter().map(|_| OnceLock::new()).collect(),
        ..Loaded::default()
    };
    for ((name, result), &u) in names.into_iter().zip(results).zip(&unit_of_file) {
        out.sources.add(name.into_owned(), result.text);
        out.findings.extend(result.findings);
        let unit = &mut units[u];
        unit.incomplete |= result.incomplete;
        unit.invalid_names.extend(result.invalid_names);
        for (doc, typed) in result.docs {
            let id = out.docs.len();
            out.docs.push(doc);
            unit.docs.push(id);
            if let Some(typed) = typed {
                typed.add_to(unit.config.as_mut().unwrap_or(&mut out.config), id);
            }
        }
    }
    out.units = units;
    out.unit_of_file = unit_of_file;
    out
}

/// One typed object, before it gets its document ID.
enum Typed {
    Domain(Metadata, model::DomainSpec),
    Host(Metadata, model::HostSpec),
    Node(Metadata, model::NodeSpec),
    NetworkLine(Metadata, model::NetworkLineSpec),
    DataSource(Metadata, model::DataSourceSpec),
    ResourceGroup(Metadata, model::ResourceGroupSpec),
}

impl Typed {
    fn add_to(self, cfg: &mut Config, doc: model::DocId) {
        fn obj<S>(metadata: Metadata, spec: S, doc: model::DocId) -> Object<S> {
            Object {
                metadata,
                spec,
                doc,
            }
        }
        match self {
            // A second Domain is reported by the rules (AS0013); the first wins.
            Typed::Domain(m, s) => {
                cfg.domain.get_or_insert(obj(m, s, doc));
            }
            Typed::Host(m, s) => cfg.hosts.push(obj(m, s, doc)),
            Typed::Node(m, s) => cfg.nodes.push(obj(m, s, doc)),
            Typed::NetworkLine(m, s) => cfg.lines.push(obj(m, s, doc)),
            Typed::DataSource(m, s) => cfg.data_sources.push(obj(m, s, doc)),
            Typed::ResourceGroup(m, s) => cfg.groups.push(obj(m, s, doc)),
        }
    }
}

/// What one file yields; merged into [`Loaded`] by [`assemble`].
struct FileLoader {
    file: FileId,
    text: String,
    findings: Vec<Finding>,
    incomplete: bool,
    invalid_names: Vec<(Kind, String)>,
    docs: Vec<(Doc, Option<Typed>)>,
}

impl FileLoader {
    fn new(file: FileId) -> Self {
        FileLoader {
            file,
            text: String::new(),
            findings: Vec::new(),
            incomplete: false,
            invalid_names: Vec::new(),
            docs: Vec::new(),
        }
    }

    fn read(&mut self, content: Content) {
        let file = self.file;
        let at = |line, column| {
            let p = Pos { line, column };
            Some(Location {
                file,
                start: p,
                end: Pos {
                    line,
                    column: column + 1,
                },
            })
        };
        let bytes = match content {
            Content::Bytes(bytes) => bytes,
            Content::NotRegular(kind) => {
                self.incomplete = true;
                self.findings.push(Finding::new(
                    &cat::NOT_REGULAR_FILE,
                    format!("not a regular file ({kind}); it was not opened"),
                    at(1, 1),
                ));
                return;
            }
        };
        if bytes.len() > MAX_FILE_BYTES {
            self.incomplete = true;
            self.findings.push(Finding::new(
                &cat::RESOURCE_LIMIT,
                format!(
                    "the file is larger than {} MiB",
                    MAX_FILE_BYTES / (1024 * 1024)
                ),
                at(1, 1),
            ));
            return;
        }
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        let checked = std::str::from_utf8(bytes.strip_prefix(BOM).unwrap_or(&bytes)).map(|_| ());
        let text = match checked {
            Ok(()) => match bytes {
                Cow::Borrowed(b) => {
                    String::from_utf8_lossy(b.strip_prefix(BOM).unwrap_or(b)).into_owned()
                }
                Cow::Owned(mut v) => {
                    if v.starts_with(BOM) {
                        v.drain(..BOM.len());
                    }
                    // Checked just above.
                    String::from_utf8(v).unwrap_or_default()
                }
            },
            Err(e) => {
                let bytes = bytes.strip_prefix(BOM).unwrap_or(&bytes);
                let valid = &bytes[..e.valid_up_to()];
                // Safe: the prefix up to `valid_up_to` is valid UTF-8 by definition.
                let valid = std::str::from_utf8(valid).unwrap_or_default();
                let line = valid.matches('\n').count() as u32 + 1;
                let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
                let column = valid[line_start..].chars().count() as u32 + 1;
                let bad = bytes[e.valid_up_to()];
                // Keep the readable part so the snippet can show the line.
                self.text = String::from_utf8_lossy(bytes).into_owned();
                self.incomplete = true;
                self.findings.push(Finding::new(
                    &cat::INVALID_ENCODING,
                    format!("byte 0x{bad:02X} is not valid UTF-8"),
                    at(line, column),
                ));
                return;
            }
        };
        let parsed = yaml::parse(&text);
        self.text = text;
        for problem in parsed.problems {
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
        // Exactly: a typed object is large, and most files hold one.
        self.docs.reserve_exact(parsed.documents.len());
        for (index, document) in parsed.documents.into_iter().enumerate() {
            self.add_document(file, index, document);
        }
    }

    fn add_document(&mut self, file: FileId, index: usize, document: yaml::Document) {
        let Some(root) = document.root.filter(|r| r.value != yaml::Value::Null) else {
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
        let here = |node: &yaml::Node| Some(location(file, node.span));
        if !matches!(root.value, yaml::Value::Map(_)) {
            self.incomplete = true;
            self.findings.push(Finding::new(
                &cat::WRONG_TYPE,
                format!(
                    "a document must be a mapping with `apiVersion`, `kind`, `metadata` and `spec`, found {}",
                    root.describe()
                ),
                here(&root),
            ));
            return;
        }
        let api = root.entry("apiVersion");
        let kind = root.entry("kind");
        if api.is_none() || kind.is_none() {
            let missing = match (api.is_none(), kind.is_none()) {
                (true, true) => "`apiVersion` and `kind`",
                (true, false) => "`apiVersion`",
                _ => "`kind`",
            };
            self.incomplete = true;
            self.findings.push(
                Finding::new(
                    &cat::MISSING_HEADER,
                    format!("this document has no {missing}"),
                    Some(Location {
                        file,
                        start: root.span.start,
                        end: root.span.start,
                    }),
                )
                .with_help("start the document with `apiVersion: asctl/v1` and `kind: <Kind>`"),
            );
            return;
        }
        let (_, api) = api.unwrap_or_else(|| unreachable!());
        let (_, kind_node) = kind.unwrap_or_else(|| unreachable!());
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
        let Some(kind) = kind.filter(|_| header_ok) else {
            self.incomplete = true;
            return;
        };

        let name = root
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_owned);
        let before = self.findings.len();
        // A key that is a list or mapping (`? [a, b]`) names no field; the
        // schema never sees it (see `to_json`), so it is reported here.
        for key in root.complex_keys() {
            self.findings.push(
                Finding::new(
                    &cat::WRONG_TYPE,
                    format!("a key must be a string, found {}", key.describe()),
                    here(key),
                )
                .with_help("write the key as plain text: complex keys (`? [a, b]`) are not part of the format"),
            );
        }
        let mut json = root.to_json();
        let unknown = SchemaChecker::get().check(&json, &root, file, &mut self.findings);
        // Unknown fields alone do not make the object unusable: without
        // them it is what the user meant, and the rules still judge it.
        let schema_ok = self.findings[before..]
            .iter()
            .all(|f| std::ptr::eq(f.rule, &cat::UNKNOWN_FIELD));
        if schema_ok {
            for pointer in &unknown {
                remove_pointer(&mut json, pointer);
            }
        }

        let typed = if schema_ok && !document.duplicate_keys {
            self.typed(kind, &json, &root, file)
        } else {
            None
        };
        if typed.is_none() {
            match &name {
                Some(n) => self.invalid_names.push((kind, n.clone())),
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

    /// Deserialises the typed object; reports what the schema could not
    /// express (e.g. an IPv6 address that matches the pattern but is invalid).
    fn typed(
        &mut self,
        kind: Kind,
        json: &serde_json::Value,
        root: &yaml::Node,
        file: FileId,
    ) -> Option<Typed> {
        let metadata: Metadata = match deserialize(&json["metadata"], "/metadata") {
            Ok(m) => m,
            Err(e) => return self.serde_finding(e, root, file),
        };
        let spec = &json["spec"];
        let result = match kind {
            Kind::Domain => deserialize(spec, "/spec").map(|s| Typed::Domain(metadata, s)),
            Kind::Host => deserialize(spec, "/spec").map(|s| Typed::Host(metadata, s)),
            Kind::Node => deserialize(spec, "/spec").map(|s| Typed::Node(metadata, s)),
            Kind::NetworkLine => {
                deserialize(spec, "/spec").map(|s| Typed::NetworkLine(metadata, s))
            }
            Kind::DataSource => deserialize(spec, "/spec").map(|s| Typed::DataSource(metadata, s)),
            Kind::ResourceGroup => {
                deserialize(spec, "/spec").map(|s| Typed::ResourceGroup(metadata, s))
            }
        };
        match result {
            Ok(typed) => Some(typed),
            Err(e) => self.serde_finding(e, root, file),
        }
    }

    fn serde_finding(
        &mut self,
        (pointer, message): (String, String),
        root: &yaml::Node,
        file: FileId,
    ) -> Option<Typed> {
        let loc = root
            .lookup(&pointer)
            .map(|(_, n)| location(file, n.span))
            .or(Some(location(file, root.span)));
        self.findings
            .push(Finding::new(&cat::INVALID_VALUE, message, loc));
        None
    }
}

/// Removes the value at a JSON pointer (an unknown field), if it is there.
fn remove_pointer(json: &mut serde_json::Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    if let Some(serde_json::Value::Object(map)) = json.pointer_mut(parent) {
        map.remove(yaml::unescape_pointer(last).as_ref());
    }
}

/// Deserialises with the path of the failing value, as a JSON pointer.
fn deserialize<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
    base: &str,
) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
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

/// The closest candidate to `word`, if it is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase()),
                *c,
            )
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
