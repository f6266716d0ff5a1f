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
mod reader;
mod schema_check;
mod uring;
pub mod yaml;

use std::borrow::Cow;
use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;

use compact_str::CompactString;
use thiserror::Error;

use crate::diag::{FileId, Finding, Location, SourceFile, Sources};
use crate::model::{self, Config, Kind};
use reader::{FileLoader, Gathered};

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
    pub name: Option<CompactString>,
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
    trees: Vec<OnceLock<Vec<Option<yaml::Node<'static>>>>>,
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
    pub fn root(&self, doc: &Doc) -> Option<&yaml::Node<'_>> {
        let trees = self.trees.get(doc.file)?.get_or_init(|| {
            yaml::parse(self.sources.text(doc.file))
                .documents
                .into_iter()
                .map(|d| d.root.map(yaml::Node::into_owned))
                .collect()
        });
        trees.get(doc.index)?.as_ref()
    }

    /// How many files have been parsed a second time, for locations. A
    /// configuration without findings needs none: a check that locates
    /// before it knows it reports costs a second parse of the file.
    pub fn files_parsed_again(&self) -> usize {
        self.trees.iter().filter(|t| t.get().is_some()).count()
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
    // Each kind's schema is compiled (some milliseconds) on a worker while
    // this thread lists the directories, rather than by the first
    // documents' parsers while the other workers wait for it.
    rayon::spawn(|| SchemaChecker::get().compile_kinds());
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
    // The bytes are handed over (not copied) to become each file's text;
    // each worker hands back the file's entry in the sources with its
    // results, so that the merge below moves only what it must.
    let files: Vec<(Cow<str>, Content)> = files.into_iter().collect();
    let (files, mut results): (Vec<SourceFile>, Vec<FileLoader>) = files
        .into_par_iter()
        .enumerate()
        .map(|(file, (name, bytes))| {
            let mut loader = FileLoader::new(file);
            loader.read(bytes);
            let text = std::mem::take(&mut loader.text);
            let source = SourceFile {
                name: name.into_owned(),
                text,
            };
            (source, loader)
        })
        .unzip();
    let facts: Vec<domains::FileFacts> = files
        .iter()
        .zip(&results)
        .map(|(source, r)| domains::FileFacts {
            name: &source.name,
            domains: r
                .docs
                .iter()
                .filter(|(d, _)| d.kind == Kind::Domain)
                .map(|(d, _)| d.name.as_deref().unwrap_or_default().to_owned())
                .collect(),
        })
        .collect();
    let (unit_of_file, mut units) = domains::partition(&facts, grouping);
    drop(facts);
    let mut out = Loaded {
        trees: files.iter().map(|_| OnceLock::new()).collect(),
        sources: Sources::from(files),
        ..Loaded::default()
    };
    let mut gathered: Vec<Gathered> = units.iter().map(|_| Gathered::default()).collect();
    reserve(&results, &unit_of_file, &mut units, &mut gathered, &mut out);
    for (result, &u) in results.iter_mut().zip(&unit_of_file) {
        out.findings.append(&mut result.findings);
        let unit = &mut units[u];
        unit.incomplete |= result.incomplete;
        unit.invalid_names.append(&mut result.invalid_names);
        for (doc, typed) in result.docs.drain(..) {
            let id = out.docs.len();
            out.docs.push(doc);
            unit.docs.push(id);
            if let Some(typed) = typed {
                gathered[u].add(typed, id);
            }
        }
    }
    let mut configs: Vec<Config> = gathered
        .into_par_iter()
        .map(Gathered::into_config)
        .collect();
    if configs.len() == 1 {
        out.config = configs.pop().unwrap_or_default();
    } else {
        for (unit, config) in units.iter_mut().zip(configs) {
            unit.config = Some(config);
        }
    }
    out.units = units;
    out.unit_of_file = unit_of_file;
    out
}

/// Exact room for every document and typed object: lists grown by
/// doubling would leave up to half of their room unused, and the typed
/// objects are most of the memory of a large configuration.
fn reserve(
    results: &[FileLoader],
    unit_of_file: &[usize],
    units: &mut [Unit],
    gathered: &mut [Gathered],
    out: &mut Loaded,
) {
    let mut counts = vec![[0usize; Kind::ALL.len()]; units.len()];
    let mut docs = vec![0usize; units.len()];
    for (result, &u) in results.iter().zip(unit_of_file) {
        docs[u] += result.docs.len();
        for (doc, typed) in &result.docs {
            if typed.is_some() {
                counts[u][doc.kind as usize] += 1;
            }
        }
    }
    out.docs.reserve_exact(docs.iter().sum());
    for (((unit, gathered), counts), docs) in units.iter_mut().zip(gathered).zip(counts).zip(docs) {
        unit.docs.reserve_exact(docs);
        for (kind, n) in Kind::ALL.into_iter().zip(counts) {
            gathered.reserve_exact(kind, n);
        }
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
