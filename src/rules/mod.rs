//! The rule catalog and the checks behind it.
//!
//! `catalog` holds every rule's metadata (ID, severity, texts, seed
//! reference, examples); the other modules hold the checks. Checks are pure:
//! they read the typed [`Config`] and the documents' spans (through
//! [`Ctx`]) and report findings. Which findings count depends on the
//! qualification profile of the Domain (see `profile`).

mod accept;
pub mod catalog;
mod consistency;
pub mod datasources;
pub mod profile;
mod seed;
mod structure;
pub mod tables;
#[cfg(test)]
mod tests;
pub mod topology;

pub use catalog::*;

use crate::diag::{Finding, Location, sort_findings};
use crate::load::Loaded;
use std::collections::HashMap;

use crate::model::{
    Config, DocId, Kind, NetworkLineSpec, Object, Qualification, ResourceGroupSpec,
};

/// What a check sees: the typed configuration, spans, and a sink.
pub struct Ctx<'a> {
    pub loaded: &'a Loaded,
    pub config: &'a Config,
    /// Per node: the groups it is a preferred node of, and the lines it is
    /// on. Built once so that rules stay linear in the size of the domain.
    groups_by_node: HashMap<&'a str, Vec<&'a Object<ResourceGroupSpec>>>,
    lines_by_node: HashMap<&'a str, Vec<&'a Object<NetworkLineSpec>>>,
    findings: Vec<Finding>,
}

impl<'a> Ctx<'a> {
    pub fn new(loaded: &'a Loaded) -> Self {
        let config = &loaded.config;
        let mut groups_by_node: HashMap<&str, Vec<_>> = HashMap::new();
        for g in &config.groups {
            for n in &g.spec.preferred_nodes {
                let list = groups_by_node.entry(n.as_str()).or_default();
                // A node listed twice (AS0305) still has the group once.
                if !list
                    .iter()
                    .any(|x: &&Object<ResourceGroupSpec>| std::ptr::eq(*x, g))
                {
                    list.push(g);
                }
            }
        }
        let mut lines_by_node: HashMap<&str, Vec<_>> = HashMap::new();
        for l in &config.lines {
            for n in l.spec.members.keys() {
                lines_by_node.entry(n.as_str()).or_default().push(l);
            }
        }
        Ctx {
            loaded,
            config,
            groups_by_node,
            lines_by_node,
            findings: Vec::new(),
        }
    }

    /// The groups `node` is a preferred node of, in document order.
    pub fn groups_of(&self, node: &str) -> &[&'a Object<ResourceGroupSpec>] {
        self.groups_by_node.get(node).map_or(&[], Vec::as_slice)
    }

    /// The lines `node` is a member of, in document order.
    pub fn lines_of(&self, node: &str) -> &[&'a Object<NetworkLineSpec>] {
        self.lines_by_node.get(node).map_or(&[], Vec::as_slice)
    }

    /// Location of the value at `pointer` (e.g. `/spec/dataSources/1`) in `doc`.
    pub fn at(&self, doc: DocId, pointer: &str) -> Option<Location> {
        self.loaded.locate(doc, pointer)
    }

    /// Location of the key at `pointer` (for "this field should not be here").
    pub fn at_key(&self, doc: DocId, pointer: &str) -> Option<Location> {
        self.loaded.locate_key(doc, pointer)
    }

    /// Location of an object's name (for findings about the whole object).
    pub fn at_name<S>(&self, obj: &Object<S>) -> Option<Location> {
        self.at(obj.doc, "/metadata/name")
    }

    pub fn report(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    pub fn into_findings(self) -> Vec<Finding> {
        self.findings
    }
}

/// Runs every check and returns their findings (not yet accepted or sorted).
pub fn check(loaded: &Loaded) -> Vec<Finding> {
    check_with(loaded, None)
}

/// [`check`], with the meta-data of the OCF agents the configuration names
/// (see [`datasources`]); `None` skips the checks that need it.
pub fn check_with(loaded: &Loaded, ocf: Option<&datasources::OcfCatalog>) -> Vec<Finding> {
    let mut ctx = Ctx::new(loaded);
    structure::check(&mut ctx);
    topology::check(&mut ctx);
    seed::check(&mut ctx);
    consistency::check(&mut ctx);
    datasources::check(&mut ctx, ocf);
    // Without a Domain the profile is unknown (and AS0013 already says so):
    // only structural rules, rather than a cascade of profile findings.
    let qualification = match loaded.config.domain {
        Some(_) => loaded.config.qualification(),
        None => Qualification::Generic,
    };
    ctx.into_findings()
        .into_iter()
        .filter(|f| applies(f.rule, qualification))
        .collect()
}

/// Whether a rule is in force under a qualification profile.
pub fn applies(rule: &Rule, qualification: Qualification) -> bool {
    match rule.scope {
        Scope::Structural => true,
        Scope::Qualification => qualification != Qualification::Generic,
    }
}

/// The result of `asctl validate`: what was loaded and every finding, with
/// the Domain's acceptances applied, in output order.
pub struct Validation {
    pub loaded: Loaded,
    pub findings: Vec<Finding>,
}

impl Validation {
    pub fn has_errors(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.is_active() && f.severity == crate::diag::Severity::Error)
    }
}

/// Runs every stage on what was loaded.
pub fn validate(loaded: Loaded) -> Validation {
    validate_with(loaded, None)
}

/// [`validate`], with the meta-data of the OCF agents the configuration
/// names (gathered where validate runs).
pub fn validate_with(mut loaded: Loaded, ocf: Option<&datasources::OcfCatalog>) -> Validation {
    let mut findings = std::mem::take(&mut loaded.findings);
    findings.extend(check_with(&loaded, ocf));
    accept::apply(&loaded, &mut findings);
    sort_findings(&mut findings);
    Validation { loaded, findings }
}

/// The `Kind/name` key used in findings and `accept.objects`.
pub fn object_key(kind: Kind, name: &str) -> String {
    format!("{kind}/{name}")
}
