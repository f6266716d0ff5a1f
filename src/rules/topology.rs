//! Topology: how the preferred nodes of a group relate, and the matrix rule
//! that judges every data source, managed IP and node alias of a group
//! against the profile's tables for every pair of its preferred nodes.

use super::Ctx;
use super::profile;
use super::tables::{self, Cell, Subject, Topology};
use crate::catalog as cat;
use crate::diag::{Finding, Location};
use crate::load::Unit;
use crate::model::{
    Backing, Config, DataSourceSpec, DataSourceType, DocId, Kind, Name, NodeSpec, Object,
    ResourceGroupSpec,
};
use foldhash::HashMap;

/// How two nodes relate. `PhyPhy` is outside the VMware matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PairKind {
    Matrix(Topology),
    PhyPhy,
}

/// Two distinct preferred nodes of a group and how they relate.
#[derive(Debug, Clone, Copy)]
pub struct NodePair<'a> {
    pub a: &'a Object<NodeSpec>,
    pub b: &'a Object<NodeSpec>,
    pub kind: PairKind,
}

/// Whether a node is a VM (on which host) or physical; `None` when the node
/// is neither or both (`node-placement` reports it) and cannot be placed.
pub fn placement(node: &NodeSpec) -> Option<Option<&Name>> {
    match (&node.host, node.physical) {
        (Some(h), false) => Some(Some(h)),
        (None, true) => Some(None),
        _ => None,
    }
}

pub fn classify(a: &NodeSpec, b: &NodeSpec) -> Option<PairKind> {
    Some(match (placement(a)?, placement(b)?) {
        (Some(ha), Some(hb)) if ha == hb => PairKind::Matrix(Topology::VmVmSameHost),
        (Some(_), Some(_)) => PairKind::Matrix(Topology::VmVmCrossHost),
        (None, None) => PairKind::PhyPhy,
        _ => PairKind::Matrix(Topology::PhyVm),
    })
}

/// The existing, distinct preferred nodes of a group, in order. Empty when
/// the group cannot be judged: one of its nodes was dropped (it failed the
/// schema), or, in a file checked alone, is simply elsewhere — judging the
/// others alone would be judging another group.
pub fn preferred<'a>(
    ctx: &Ctx<'a>,
    group: &Object<ResourceGroupSpec>,
) -> &'a [&'a Object<NodeSpec>] {
    ctx.index
        .preferred
        .get(&group.doc)
        .map_or(&[], Vec::as_slice)
}

/// [`preferred`] of every group, computed once per unit.
pub(super) fn preferred_by_group<'a>(
    config: &'a Config,
    unit: &Unit,
) -> HashMap<DocId, Vec<&'a Object<NodeSpec>>> {
    let mut by_group = HashMap::default();
    by_group.reserve(config.groups.len());
    for group in &config.groups {
        by_group.insert(group.doc, judged_nodes(config, unit, group));
    }
    by_group
}

fn judged_nodes<'a>(
    config: &'a Config,
    unit: &Unit,
    group: &Object<ResourceGroupSpec>,
) -> Vec<&'a Object<NodeSpec>> {
    let mut out: Vec<&Object<NodeSpec>> = Vec::with_capacity(group.spec.preferred_nodes.len());
    for n in &group.spec.preferred_nodes {
        match config.nodes.get(n.as_str()) {
            Some(node) if !out.iter().any(|o| o.name() == node.name()) => out.push(node),
            Some(_) => {}
            None if unit.alone()
                || unit.incomplete
                || unit.declares(config, Kind::Node, n.as_str()) =>
            {
                return Vec::new();
            }
            None => {}
        }
    }
    out
}

/// Every unordered pair of the group's preferred nodes that can be classified.
pub fn pairs<'a>(ctx: &Ctx<'a>, group: &'a Object<ResourceGroupSpec>) -> Vec<NodePair<'a>> {
    let nodes = preferred(ctx, group);
    let mut out = Vec::new();
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            if let Some(kind) = classify(&a.spec, &b.spec) {
                out.push(NodePair { a, b, kind });
            }
        }
    }
    out
}

/// The backing of the device a data source uses: its own device, or for a
/// mount point the device of the disk it is `on`.
pub fn backing(ctx: &Ctx, ds: &DataSourceSpec) -> Option<Backing> {
    if ds.kind == DataSourceType::MountPoint {
        let on = ctx.config.data_sources.get(ds.on.as_ref()?.as_str())?;
        return on.spec.device.as_ref().map(|d| d.backing);
    }
    ds.device.as_ref().map(|d| d.backing)
}

/// A data source and what it stands on: itself, the disk of a mount point,
/// and the members of a composite with what they stand on, to any depth
/// (nested composites are rejected by `composite-member-type`, but the
/// devices under them are still used). Each once: reference cycles end.
pub fn expand<'a>(
    ctx: &Ctx<'a>,
    ds: &'a Object<DataSourceSpec>,
) -> Vec<&'a Object<DataSourceSpec>> {
    let mut out = vec![ds];
    let mut next = 0;
    while let Some(&d) = out.get(next) {
        next += 1;
        let under: &[Name] = match d.spec.kind {
            DataSourceType::MountPoint => d.spec.on.as_slice(),
            DataSourceType::Composite => &d.spec.members,
            _ => &[],
        };
        for name in under {
            if let Some(u) = ctx.config.data_sources.get(name.as_str())
                && !out.iter().any(|o| o.name() == u.name())
            {
                out.push(u);
            }
        }
    }
    out
}

/// Where a node's placement is written, and how to say it.
pub fn node_note(ctx: &Ctx, node: &Object<NodeSpec>) -> (Option<Location>, String) {
    match (&node.spec.host, node.spec.physical) {
        (Some(h), _) => (
            ctx.at(node.doc, "/spec/host"),
            format!("`{}` is a VM on host `{h}`", node.name()),
        ),
        (None, true) => (
            ctx.at(node.doc, "/spec/physical"),
            format!("`{}` is a physical machine", node.name()),
        ),
        (None, false) => (
            ctx.at_name(node),
            format!("`{}` is defined here", node.name()),
        ),
    }
}

/// What one reference of a group asks the tables about.
struct Judged<'a> {
    subject: Subject,
    backing: Option<Backing>,
    /// How the finding names it, e.g. "sharedDisk `sql-disk` (vmfs)".
    what: String,
    objects: Vec<&'a Name>,
}

pub fn check(ctx: &mut Ctx) {
    let profile = profile::of(ctx.config);
    if profile.tables.is_empty() {
        return;
    }
    let cfg = ctx.config;
    for group in &cfg.groups {
        let pairs = pairs(ctx, group);
        let matrix: Vec<(Topology, &NodePair)> = pairs
            .iter()
            .filter_map(|p| match p.kind {
                PairKind::Matrix(t) => Some((t, p)),
                PairKind::PhyPhy => None,
            })
            .collect();
        if matrix.is_empty() {
            continue;
        }
        for (pointer, judged) in references(ctx, group) {
            for j in judged {
                for topology in Topology::ALL {
                    let in_force = profile.tables;
                    if let Some(f) =
                        matrix_finding(ctx, in_force, group, &pointer, &j, topology, &matrix)
                    {
                        ctx.report(f);
                    }
                }
            }
        }
    }
}

/// The matrix finding for reference `j` of `group` (at `pointer`) between
/// the group's node pairs of `topology`, named by the first of them; `None`
/// when the profile's tables (`in_force`) support it or do not judge it.
fn matrix_finding(
    ctx: &Ctx,
    in_force: &'static [tables::Table],
    group: &Object<ResourceGroupSpec>,
    pointer: &str,
    j: &Judged,
    topology: Topology,
    matrix: &[(Topology, &NodePair)],
) -> Option<Finding> {
    let with: Vec<&&NodePair> = matrix
        .iter()
        .filter(|(t, _)| *t == topology)
        .map(|(_, p)| p)
        .collect();
    let pair = with.first()?;
    let v = tables::verdict(in_force, j.subject, j.backing, topology)?;
    let rule = match v.cell {
        Cell::Yes => return None,
        Cell::No => &cat::MATRIX_UNSUPPORTED,
        Cell::Na => &cat::MATRIX_NOT_APPLICABLE,
    };
    let others = match with.len() - 1 {
        0 => String::new(),
        1 => " (and 1 other pair)".into(),
        n => format!(" (and {n} other pairs)"),
    };
    let cite = format!(
        "{}, row \"{}\", column \"{}\" says {}",
        v.table.reference(),
        v.row.label,
        topology.seed_label(),
        v.cell.as_str()
    );
    let message = match v.cell {
        Cell::Na => format!(
            "{} between `{}` and `{}` ({topology}){others} cannot exist: {cite}",
            j.what,
            pair.a.name(),
            pair.b.name()
        ),
        _ => format!(
            "{} is not supported between `{}` and `{}` ({topology}){others}: {cite}",
            j.what,
            pair.a.name(),
            pair.b.name()
        ),
    };
    let (la, na) = node_note(ctx, pair.a);
    let (lb, nb) = node_note(ctx, pair.b);
    let help = match v.cell {
        Cell::Na => "replication between two VMs of one host has nothing to replicate between: use a shared disk for that pair, or keep such nodes out of the group".to_owned(),
        _ => help_for(in_force, j.subject, topology),
    };
    let mut f = Finding::new(rule, message, ctx.at(group.doc, pointer))
        .with_related(la, na)
        .with_related(lb, nb)
        .with_help(help)
        .about(Kind::ResourceGroup, group.name().as_str())
        .about(Kind::Node, pair.a.name().as_str())
        .about(Kind::Node, pair.b.name().as_str());
    for o in &j.objects {
        f = f.about(Kind::DataSource, o.as_str());
    }
    Some(f)
}

/// What a group asks the tables about, with the pointer of each reference:
/// its data sources, managed IP addresses and node alias.
fn references<'a>(
    ctx: &Ctx<'a>,
    group: &'a Object<ResourceGroupSpec>,
) -> Vec<(String, Vec<Judged<'a>>)> {
    let mut refs: Vec<(String, Vec<Judged>)> = Vec::new();
    for (i, name) in group.spec.data_sources.iter().enumerate() {
        let Some(ds) = ctx.config.data_sources.get(name.as_str()) else {
            continue;
        };
        refs.push((format!("/spec/dataSources/{i}"), judged(ctx, ds)));
    }
    let fixed = |subject, what: &str| Judged {
        subject,
        backing: None,
        what: what.into(),
        objects: vec![],
    };
    for i in 0..group.spec.ip_addresses.len() {
        refs.push((
            format!("/spec/ipAddresses/{i}"),
            vec![fixed(Subject::ManagedIp, "managed IP address")],
        ));
    }
    if group.spec.node_alias.is_some() {
        refs.push((
            "/spec/nodeAlias".into(),
            vec![fixed(Subject::NodeAlias, "Windows node alias")],
        ));
    }
    refs
}

/// Why the profile's tables do not support `group` failing over between
/// nodes `a` and `b`: the first reference whose cell for the pair's topology
/// is not `yes`, with the table that says so. `None` when every reference is
/// supported or the tables do not judge the pair (two physical machines, an
/// unplaceable node, a profile without tables) — the same judgement as the
/// matrix rule, for one pair, so that what-if answers agree with `validate`.
pub fn pair_unsupported(
    ctx: &Ctx,
    group: &Object<ResourceGroupSpec>,
    a: &NodeSpec,
    b: &NodeSpec,
) -> Option<String> {
    let profile = profile::of(ctx.config);
    let PairKind::Matrix(topology) = classify(a, b)? else {
        return None;
    };
    references(ctx, group)
        .into_iter()
        .flat_map(|(_, judged)| judged)
        .find_map(|j| {
            let v = tables::verdict(profile.tables, j.subject, j.backing, topology)?;
            (v.cell != Cell::Yes).then(|| {
                format!(
                    "{} ({topology}): {}, row \"{}\", column \"{}\" says {}",
                    j.what,
                    v.table.reference(),
                    v.row.label,
                    topology.seed_label(),
                    v.cell.as_str()
                )
            })
        })
}

/// The table lookups a data source reference stands for: its own type and
/// backing; for a composite, each member's (support is the intersection of
/// the members' verdicts — seed, "Composite").
fn judged<'a>(ctx: &Ctx<'a>, ds: &'a Object<DataSourceSpec>) -> Vec<Judged<'a>> {
    let profile = profile::of(ctx.config);
    let describe = |d: &Object<DataSourceSpec>, b: Option<Backing>| match b {
        Some(b) => format!("{} `{}` ({b})", d.spec.kind, d.name()),
        None => format!("{} `{}`", d.spec.kind, d.name()),
    };
    if ds.spec.kind != DataSourceType::Composite {
        let b = backing(ctx, &ds.spec);
        return vec![Judged {
            subject: Subject::DataSource(ds.spec.kind),
            backing: b,
            what: describe(ds, b),
            objects: vec![ds.name()],
        }];
    }
    let mut out = Vec::new();
    for m in &ds.spec.members {
        let Some(member) = ctx.config.data_sources.get(m.as_str()) else {
            continue;
        };
        if !profile.composite_members.contains(&member.spec.kind) {
            continue;
        }
        let b = backing(ctx, &member.spec);
        let what = format!("composite `{}`: member {}", ds.name(), describe(member, b));
        for subject in [
            Subject::DataSource(DataSourceType::Composite),
            Subject::DataSource(member.spec.kind),
        ] {
            out.push(Judged {
                subject,
                backing: b,
                what: what.clone(),
                objects: vec![ds.name(), member.name()],
            });
        }
    }
    out
}

/// Which backings the table supports for this topology, as a hint.
fn help_for(tables: &'static [tables::Table], subject: Subject, topology: Topology) -> String {
    let Some(table) = tables::table_for(tables, subject) else {
        return String::new();
    };
    let ok: Vec<&str> = table
        .rows
        .iter()
        .filter(|r| r.cell(topology) == Cell::Yes)
        .map(|r| r.label)
        .collect();
    if ok.is_empty() || !table.by_backing() {
        format!(
            "{} supports no {} configuration for {}: use another data source type, or keep such nodes out of the group",
            table.reference(),
            subject.as_str(),
            topology.seed_label()
        )
    } else {
        format!(
            "for {} {} supports: {} (`asctl matrix {}` shows the table)",
            topology.seed_label(),
            table.reference(),
            ok.join(", "),
            subject.as_str()
        )
    }
}
