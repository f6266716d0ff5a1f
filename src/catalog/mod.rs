//! Every rule asctl knows, with a stable ID.
//!
//! IDs are never reused or renumbered. Ranges:
//! - `AS00xx`: reading the files (syntax, schema, names, references) — asctl's own.
//! - `AS01xx`: the seed's support tables (Tables 1–10).
//! - `AS02xx`: the seed's prose rules.
//! - `AS03xx`: asctl's own structural and operational rules.
//!
//! The catalog is data about the rules, not the checks: `load` and `diag`
//! name rules through it and never depend on `rules`, where the checks live.
//! It depends on nothing else in the crate. The examples it embeds live
//! beside the checks, in `src/rules/examples/<ID>/{fail,pass}.yaml`.

use std::fmt;

use serde::Serialize;

/// How serious a finding is; each rule has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Note,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A rule of the seed document, with the section or table it encodes.
    Seed(&'static str),
    /// A rule of asctl itself (not in the seed).
    Asctl,
}

/// Which qualification profiles a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every profile, including `generic`.
    Structural,
    /// Only profiles that qualify VMware configurations.
    Qualification,
}

/// A rule: its identity, texts and examples.
#[derive(Debug, PartialEq)]
pub struct Rule {
    /// Stable ID, `AS` and four digits.
    pub id: &'static str,
    /// Short kebab-case name, e.g. `duplicate-key`.
    pub name: &'static str,
    pub severity: Severity,
    /// One line: what is wrong.
    pub title: &'static str,
    /// The long text `asctl explain` prints: why it matters.
    pub explanation: &'static str,
    /// How to fix it, in general.
    pub fix: &'static str,
    pub origin: Origin,
    pub scope: Scope,
    /// A configuration that triggers the rule (and only it).
    pub fail_example: &'static [u8],
    /// The same configuration, fixed.
    pub pass_example: &'static [u8],
}

impl Rule {
    pub fn seed_reference(&self) -> Option<&'static str> {
        match self.origin {
            Origin::Seed(r) => Some(r),
            Origin::Asctl => None,
        }
    }

    /// Whether `Domain.spec.accept` may accept this rule's findings: the
    /// seed's rules (its tables, AS01xx, and its prose, AS02xx; errors need
    /// `acknowledgeUnsupported`) and asctl's own warnings and notes. Errors
    /// of asctl's own — reading, schema, names, references (AS00xx) and the
    /// structural rules (AS03xx) — describe a configuration asctl cannot
    /// read or run, and are never accepted; nor is a stale acceptance
    /// (`accept-unused`), which would accept itself.
    pub fn acceptable(&self) -> bool {
        match self.origin {
            Origin::Seed(_) => true,
            Origin::Asctl => {
                self.severity != Severity::Error && !std::ptr::eq(self, &ACCEPT_UNUSED)
            }
        }
    }
}

/// Looks a rule up by ID (case-insensitive) or by name.
pub fn find_rule(key: &str) -> Option<&'static Rule> {
    ALL.iter()
        .copied()
        .find(|r| r.id.eq_ignore_ascii_case(key) || r.name == key)
}

macro_rules! example {
    ($id:literal, $which:literal) => {
        include_bytes!(concat!("../../rules/examples/", $id, "/", $which, ".yaml"))
    };
}

/// A family's entries: a `static` per rule, and the family's list (the
/// first line) that `entries::ALL` gathers.
macro_rules! rules {
    (
        $family:ident;
        $(
            $(#[$meta:meta])*
            $static:ident = {
                id: $id:literal,
                name: $name:literal,
                severity: $sev:ident,
                title: $title:literal,
                origin: $origin:expr,
                scope: $scope:ident,
                fix: $fix:literal,
                explanation: $expl:literal $(,)?
            }
        )*
    ) => {
        $(
            $(#[$meta])*
            pub static $static: $crate::catalog::Rule = $crate::catalog::Rule {
                id: $id,
                name: $name,
                severity: $crate::catalog::Severity::$sev,
                title: $title,
                explanation: $expl,
                fix: $fix,
                origin: $origin,
                scope: $crate::catalog::Scope::$scope,
                fail_example: example!($id, "fail"),
                pass_example: example!($id, "pass"),
            };
        )*
        pub(in $crate::catalog) const $family: &[&$crate::catalog::Rule] = &[$(&$static),*];
    };
}

mod entries;

pub use entries::*;
