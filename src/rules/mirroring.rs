//! Rules about EMC Mirroring (AS02xx): synchronous only, between exactly
//! two nodes — the nodes of every group that uses the mirror together.
//!
//! Limits come from the profile in force, so that a later qualification
//! changes data, not these checks.

use super::Ctx;
use super::topology;
use crate::catalog as cat;
use crate::diag::Finding;
use crate::model::{
    DataSourceSpec, DataSourceType, Kind, NodeSpec, Object, ReplicationMode, ResourceGroupSpec,
};

pub(super) fn mirroring(ctx: &mut Ctx) {
    for ds in &ctx.config.data_sources {
        if ds.spec.kind == DataSourceType::Mirroring && ds.spec.mode == Some(ReplicationMode::Async)
        {
            let f = Finding::new(
                &cat::MIRRORING_ASYNC,
                format!(
                    "mirroring `{}` is set to async: EMC Mirroring is synchronous only",
                    ds.name()
                ),
                ctx.at(ds.doc, "/spec/mode"),
            )
            .with_help(
                "remove `mode` or write `mode: sync`; for asynchronous replication use repliStor",
            )
            .about(Kind::DataSource, ds.name().as_str());
            ctx.report(f);
        }
    }
    for m in mirrors(ctx) {
        two_nodes(ctx, &m);
    }
}

/// A mirror and the nodes it is used on: the union of the preferred nodes
/// of every group that uses it, each with the reference that brought it.
struct Mirror<'a> {
    ds: &'a Object<DataSourceSpec>,
    nodes: Vec<(&'a Object<NodeSpec>, &'a Object<ResourceGroupSpec>, usize)>,
    groups: Vec<&'a Object<ResourceGroupSpec>>,
    /// A group that uses it could not be judged (a node dropped, or
    /// elsewhere): the union is unknown.
    unknown: bool,
}

fn mirrors<'a>(ctx: &Ctx<'a>) -> Vec<Mirror<'a>> {
    let mut out: Vec<Mirror> = Vec::new();
    for group in &ctx.config.groups {
        let nodes = topology::preferred(ctx, group);
        for (i, name) in group.spec.data_sources.iter().enumerate() {
            let Some(ds) = ctx.config.data_sources.get(name.as_str()) else {
                continue;
            };
            for d in topology::expand(ctx, ds) {
                if d.spec.kind != DataSourceType::Mirroring {
                    continue;
                }
                let m = match out.iter().position(|m| std::ptr::eq(m.ds, d)) {
                    Some(k) => &mut out[k],
                    None => {
                        out.push(Mirror {
                            ds: d,
                            nodes: Vec::new(),
                            groups: Vec::new(),
                            unknown: false,
                        });
                        out.last_mut().expect("just pushed")
                    }
                };
                if !m.groups.iter().any(|g| std::ptr::eq(*g, group)) {
                    m.groups.push(group);
                }
                m.unknown |= nodes.is_empty();
                for &n in nodes {
                    if !m.nodes.iter().any(|(o, _, _)| std::ptr::eq(*o, n)) {
                        m.nodes.push((n, group, i));
                    }
                }
            }
        }
    }
    out
}

fn two_nodes(ctx: &mut Ctx, m: &Mirror) {
    let count = m.nodes.len();
    if m.unknown || count == 2 {
        return;
    }
    // At the reference that brings the third node, or the only one.
    let Some(&(_, group, i)) = m.nodes.get(2).or(m.nodes.first()) else {
        return;
    };
    let names: Vec<String> = m
        .nodes
        .iter()
        .map(|(n, _, _)| format!("`{}`", n.name()))
        .collect();
    let users = if m.groups.len() == 1 {
        format!("group `{}`", group.name())
    } else {
        let g: Vec<String> = m.groups.iter().map(|g| format!("`{}`", g.name())).collect();
        format!("groups {}", g.join(", "))
    };
    let mut f = Finding::new(
        &cat::MIRRORING_TWO_NODES,
        format!(
            "mirroring `{}` is used by {users} on {count} node{} ({}): mirroring works between exactly two nodes",
            m.ds.name(),
            if count == 1 { "" } else { "s" },
            names.join(", ")
        ),
        ctx.at(group.doc, &format!("/spec/dataSources/{i}")),
    )
    .with_related(ctx.at(group.doc, "/spec/preferredNodes"), "the preferred nodes");
    for g in m.groups.iter().filter(|g| !std::ptr::eq(**g, group)) {
        f = f.with_related(
            ctx.at(g.doc, "/spec/preferredNodes"),
            format!(
                "the preferred nodes of group `{}`, which uses it too",
                g.name()
            ),
        );
    }
    let f = f
        .with_help("let the groups that use the mirror have exactly two preferred nodes between them, or use a shared disk or replication for more")
        .about(Kind::DataSource, m.ds.name().as_str());
    let f = m
        .groups
        .iter()
        .fold(f, |f, g| f.about(Kind::ResourceGroup, g.name().as_str()));
    ctx.report(f);
}
