//! The checks behind the rule catalog.
//!
//! `crate::catalog` holds every rule's metadata (ID, severity, texts, seed
//! reference, examples); these modules hold the checks. Checks are pure:
//! they read the typed [`Config`] and the documents' spans (through
//! [`Ctx`]) and report findings. Which findings count depends on the
//! qualification profile of the Domain (see `profile`).

mod accept;
mod composites;
mod consistency;
pub mod datasources;
mod exec_limits;
mod guest_os;
mod hypervisor;
mod mirroring;
mod modules;
mod network;
pub mod profile;
mod replication;
mod sharing;
mod structure;
pub mod tables;
#[cfg(test)]
mod tests;
pub mod topology;
mod vm_hardware;
mod vmotion;

// The catalog is its own module below `load` and `diag`; re-exported so
// that the checks' callers can name a rule through `rules` too.
pub use crate::catalog;
pub use crate::catalog::*;

use crate::diag::{Finding, Location, sort_findings};
use crate::load::{Loaded, Unit};
use foldhash::HashMap;

use crate::model::{
    Config, DocId, Kind, NetworkLineSpec, NodeSpec, Object, Qualification, ResourceGroupSpec,
};

/// What a check sees: the typed configuration, spans, and a sink.
pub struct Ctx<'a> {
    pub loaded: &'a Loaded,
    /// The unit being checked: one domain, or one file alone.
    pub unit: &'a Unit,
    pub config: &'a Config,
    index: &'a Index<'a>,
    findings: Vec<Finding>,
}

/// Per node: the groups it is a preferred node of, and the lines it is on;
/// per group: its preferred nodes as the rules judge them. Built once per
/// unit, shared by the checks that run in parallel, so that rules stay
/// linear in the size of the domain and six rules that walk a group's
/// nodes do not each look them up again.
pub struct Index<'a> {
    groups_by_node: HashMap<&'a str, Vec<&'a Object<ResourceGroupSpec>>>,
    lines_by_node: HashMap<&'a str, Vec<&'a Object<NetworkLineSpec>>>,
    /// By the group's document.
    preferred: HashMap<DocId, Vec<&'a Object<NodeSpec>>>,
}

impl<'a> Index<'a> {
    pub fn new(config: &'a Config, unit: &'a Unit) -> Self {
        // Three maps of tens of thousands of entries on a large domain,
        // built while nothing else runs, on both cores.
        let ((groups_by_node, preferred), lines_by_node) = rayon::join(
            || {
                rayon::join(
                    || groups_by_node(config),
                    || topology::preferred_by_group(config, unit),
                )
            },
            || {
                let mut by_node: HashMap<&str, Vec<_>> = HashMap::default();
                by_node.reserve(config.nodes.len());
                for l in &config.lines {
                    for n in l.spec.members.keys() {
                        by_node.entry(n.as_str()).or_default().push(l);
                    }
                }
                by_node
            },
        );
        Index {
            groups_by_node,
            lines_by_node,
            preferred,
        }
    }
}

fn groups_by_node(config: &Config) -> HashMap<&str, Vec<&Object<ResourceGroupSpec>>> {
    let mut by_node: HashMap<&str, Vec<_>> = HashMap::default();
    by_node.reserve(config.nodes.len());
    for g in &config.groups {
        for n in &g.spec.preferred_nodes {
            let list = by_node.entry(n.as_str()).or_default();
            // A node listed twice (AS0305) still has the group once.
            if !list
                .iter()
                .any(|x: &&Object<ResourceGroupSpec>| std::ptr::eq(*x, g))
            {
                list.push(g);
            }
        }
    }
    by_node
}

impl<'a> Ctx<'a> {
    /// A context on the unit's index (`Index::new(loaded.config_of(unit),
    /// unit)`), built once and shared by checks running in parallel.
    pub fn new(loaded: &'a Loaded, unit: &'a Unit, index: &'a Index<'a>) -> Self {
        Ctx {
            loaded,
            unit,
            config: loaded.config_of(unit),
            index,
            findings: Vec::new(),
        }
    }

    /// The groups `node` is a preferred node of, in document order.
    pub fn groups_of(&self, node: &str) -> &[&'a Object<ResourceGroupSpec>] {
        self.index
            .groups_by_node
            .get(node)
            .map_or(&[], Vec::as_slice)
    }

    /// The lines `node` is a member of, in document order.
    pub fn lines_of(&self, node: &str) -> &[&'a Object<NetworkLineSpec>] {
        self.index
            .lines_by_node
            .get(node)
            .map_or(&[], Vec::as_slice)
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

    /// The documents of the unit, with their IDs, in input order.
    pub fn docs(&self) -> impl Iterator<Item = (DocId, &'a crate::load::Doc)> + 'a {
        let docs = &self.loaded.docs;
        self.unit.docs.iter().map(move |&id| (id, &docs[id]))
    }

    /// Whether an object of `kind` named `name` is declared, valid or not.
    pub fn declares(&self, kind: Kind, name: &str) -> bool {
        self.unit.declares(self.config, kind, name)
    }

    pub fn report(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    pub fn into_findings(self) -> Vec<Finding> {
        self.findings
    }
}

/// Rules that conclude from what is absent: a count of nodes or lines, the
/// Domain's own presence, a reference that resolves nowhere. A file checked
/// alone does not hold the rest of its domain, so they say nothing there.
const NEED_WHOLE_DOMAIN: &[&Rule] = &[
    &catalog::DOMAIN_COUNT,
    &catalog::DANGLING_REFERENCE,
    &catalog::TWO_NODE_SPLIT_BRAIN,
    &catalog::NETWORK_LINES,
];

/// Rules that count objects of a kind (nodes of the domain, lines of a
/// node): when an object of that kind was dropped, the count is wrong, and
/// the rule says nothing rather than something false.
fn counts_a_dropped_kind(unit: &Unit, rule: &Rule) -> bool {
    let kind = if std::ptr::eq(rule, &catalog::TWO_NODE_SPLIT_BRAIN) {
        Kind::Node
    } else if std::ptr::eq(rule, &catalog::NETWORK_LINES) {
        Kind::NetworkLine
    } else {
        return false;
    };
    unit.incomplete || unit.invalid_names.iter().any(|(k, _)| *k == kind)
}

/// Runs every check on every unit and returns their findings with the
/// Domain's acceptances applied (not sorted), each tagged with its domain.
pub fn check(loaded: &Loaded) -> Vec<Finding> {
    check_units(loaded, Vec::new(), None)
}

/// [`check`], with the findings of the reading stages (`earlier`) joined
/// to the unit of their file, so that a Domain may accept them too.
/// `ocf`: the meta-data of the OCF agents the configuration names (see
/// [`datasources`]); `None` skips the checks that need it.
fn check_units(
    loaded: &Loaded,
    earlier: Vec<Finding>,
    ocf: Option<&datasources::OcfCatalog>,
) -> Vec<Finding> {
    use rayon::prelude::*;
    let mut per_unit: Vec<Vec<Finding>> = loaded.units.iter().map(|_| Vec::new()).collect();
    for f in earlier {
        let unit = f.location.map_or(0, |l| loaded.unit_of_file[l.file]);
        if let Some(list) = per_unit.get_mut(unit) {
            list.push(f);
        }
    }
    loaded
        .units
        .par_iter()
        .zip(per_unit)
        .flat_map_iter(|(unit, earlier)| check_unit(loaded, unit, earlier, ocf))
        .collect()
}

/// Runs every check on one unit; `earlier` are the unit's findings of the
/// reading stages.
fn check_unit(
    loaded: &Loaded,
    unit: &Unit,
    mut earlier: Vec<Finding>,
    ocf: Option<&datasources::OcfCatalog>,
) -> Vec<Finding> {
    let config = loaded.config_of(unit);
    let index = Index::new(config, unit);
    // The checks are independent of each other: two halves of about the
    // same cost on a large domain, one per core (the findings are sorted
    // afterwards, so which half reports one does not matter).
    let (mut first, second) = rayon::join(
        || {
            let mut ctx = Ctx::new(loaded, unit, &index);
            topology::check(&mut ctx);
            prose(&mut ctx);
            ctx.into_findings()
        },
        || {
            let mut ctx = Ctx::new(loaded, unit, &index);
            structure::check(&mut ctx);
            consistency::check(&mut ctx);
            exec_limits::check(&mut ctx);
            datasources::check(&mut ctx, ocf);
            ctx.into_findings()
        },
    );
    first.extend(second);
    // Without a Domain the profile is unknown (and AS0013 already says so):
    // only structural rules, rather than a cascade of profile findings.
    let qualification = match config.domain {
        Some(_) => config.qualification(),
        None => Qualification::Generic,
    };
    let findings = first
        .into_iter()
        .filter(|f| applies(f.rule, qualification))
        .filter(|f| !(unit.alone() && NEED_WHOLE_DOMAIN.iter().any(|r| std::ptr::eq(*r, f.rule))))
        .filter(|f| !counts_a_dropped_kind(unit, f.rule));
    earlier.extend(findings);
    let mut findings = earlier;
    accept::apply(loaded, config, &mut findings);
    for f in &mut findings {
        f.domain = unit.domain.clone();
    }
    findings
}

/// The seed's prose rules (AS02xx): every sentence of the seed that
/// constrains a configuration and is not one of its tables, one family per
/// module. Limits come from the profile in force.
fn prose(ctx: &mut Ctx) {
    let profile = profile::of(ctx.config);
    hypervisor::hypervisor_versions(ctx, profile);
    guest_os::guest_os(ctx, profile);
    modules::modules(ctx, profile);
    modules::windows_only(ctx);
    mirroring::mirroring(ctx);
    sharing::mount_points(ctx);
    sharing::shared_disks(ctx);
    replication::replication_pairing(ctx);
    composites::composites(ctx, profile);
    vmotion::vmotion(ctx);
    network::nic_teaming(ctx);
    hypervisor::vmware_ha(ctx);
    hypervisor::cluster_in_a_box(ctx);
    network::network(ctx, profile);
    network::isolation_not_external(ctx);
    vm_hardware::pci_and_scsi(ctx, profile);
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
    let earlier = std::mem::take(&mut loaded.findings);
    let mut findings = check_units(&loaded, earlier, ocf);
    sort_findings(&mut findings);
    Validation { loaded, findings }
}
