//! Findings and how they are shown.
//!
//! A [`Finding`] is what every stage (parse, schema, rules) produces. The
//! renderers in this module turn a list of findings into human text (rustc
//! style), JSON, SARIF 2.1.0 or GitHub workflow annotations. Renderers only
//! format: they never decide severity or filter.

mod github;
mod human;
mod json;
mod junit;
mod sarif;

use serde::Serialize;

use crate::catalog::Rule;
pub use crate::catalog::Severity;

pub use github::render_github;
pub use human::{render_human, render_human_styled};
pub use json::{JSON_FORMAT_VERSION, render_json};
pub use junit::render_junit;
pub use sarif::render_sarif;

/// Index of a file in [`Sources`].
pub type FileId = usize;

/// A position: 1-based line, 1-based column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

/// A range in one file; `end` is exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    pub file: FileId,
    pub start: Pos,
    pub end: Pos,
}

/// Another place that explains a finding (e.g. the first definition of a
/// duplicate name).
#[derive(Debug, Clone, PartialEq)]
pub struct Related {
    pub location: Location,
    pub message: String,
}

/// The domain a finding is in: its name and the directory that roots it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DomainRef {
    pub name: String,
    pub root: String,
}

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: &'static Rule,
    pub severity: Severity,
    pub message: String,
    /// Where the offending value is; `None` for findings about the whole
    /// configuration (e.g. "no Domain").
    pub location: Option<Location>,
    pub related: Vec<Related>,
    /// A fix specific to this finding; the rule's general fix is used otherwise.
    pub help: Option<String>,
    /// The objects the finding is about, as `Kind/name` (for `accept`).
    pub objects: Vec<String>,
    /// Set when the Domain accepts this finding on purpose: the recorded reason.
    pub suppressed: Option<String>,
    /// The domain the finding is in; `None` for a file checked alone.
    pub domain: Option<DomainRef>,
}

impl Finding {
    pub fn new(
        rule: &'static Rule,
        message: impl Into<String>,
        location: Option<Location>,
    ) -> Self {
        Finding {
            rule,
            severity: rule.severity,
            message: message.into(),
            location,
            related: Vec::new(),
            help: None,
            objects: Vec::new(),
            suppressed: None,
            domain: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_related(mut self, location: Option<Location>, message: impl Into<String>) -> Self {
        if let Some(location) = location {
            self.related.push(Related {
                location,
                message: message.into(),
            });
        }
        self
    }

    pub fn about(mut self, kind: crate::model::Kind, name: &str) -> Self {
        self.objects.push(kind.key(name));
        self
    }

    /// The help line shown to users: the finding's own, else the rule's.
    pub fn help_text(&self) -> &str {
        self.help.as_deref().unwrap_or(self.rule.fix)
    }

    /// Whether this finding counts against the exit code.
    pub fn is_active(&self) -> bool {
        self.suppressed.is_none()
    }
}

/// The name standard input is shown as, everywhere (human, JSON, SARIF).
pub const STDIN_NAME: &str = "<stdin>";

/// The text of every file read, for showing source lines under findings.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    files: Vec<SourceFile>,
}

#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user gave it (or `<stdin>`).
    pub name: String,
    /// The text; empty for files that could not be decoded.
    pub text: String,
}

impl From<Vec<SourceFile>> for Sources {
    fn from(files: Vec<SourceFile>) -> Self {
        Sources { files }
    }
}

impl Sources {
    pub fn name(&self, file: FileId) -> &str {
        &self.files[file].name
    }

    pub fn text(&self, file: FileId) -> &str {
        &self.files[file].text
    }

    pub fn set_text(&mut self, file: FileId, text: String) {
        self.files[file].text = text;
    }

    /// The text of 1-based line `line`, without its line break.
    pub fn line(&self, file: FileId, line: u32) -> Option<&str> {
        self.text(file)
            .split('\n')
            .nth(line.checked_sub(1)? as usize)
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// Counts of active findings by severity.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub notes: usize,
    pub suppressed: usize,
}

impl Summary {
    pub fn of(findings: &[Finding]) -> Summary {
        let mut s = Summary::default();
        for f in findings {
            if !f.is_active() {
                s.suppressed += 1;
                continue;
            }
            match f.severity {
                Severity::Error => s.errors += 1,
                Severity::Warning => s.warnings += 1,
                Severity::Note => s.notes += 1,
            }
        }
        s
    }
}

/// Orders findings for output: by domain (files checked alone last), file,
/// position, then rule.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        fn domain(f: &Finding) -> (bool, Option<&str>) {
            (
                f.domain.is_none(),
                f.domain.as_ref().map(|d| d.root.as_str()),
            )
        }
        let key = |f: &Finding| f.location.map(|l| (l.file, l.start));
        domain(a)
            .cmp(&domain(b))
            .then_with(|| key(a).map(|k| (0, k)).cmp(&key(b).map(|k| (0, k))))
            .then_with(|| a.rule.id.cmp(b.rule.id))
            .then_with(|| a.message.cmp(&b.message))
    });
}
