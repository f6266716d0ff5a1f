//! Rules about EMC Mirroring (AS02xx): synchronous only, between exactly
//! two nodes.
//!
//! Limits come from the profile in force, so that a later qualification
//! changes data, not these checks.

use super::Ctx;
use super::topology;
use crate::catalog as cat;
use crate::diag::Finding;
use crate::model::{DataSourceType, Kind, ReplicationMode};

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
    for group in &ctx.config.groups {
        let nodes = topology::preferred(ctx, group).len();
        if nodes == 2 {
            continue;
        }
        for (i, name) in group.spec.data_sources.iter().enumerate() {
            let Some(ds) = ctx.config.data_sources.get(name.as_str()) else {
                continue;
            };
            let Some(m) = topology::expand(ctx, ds)
                .into_iter()
                .find(|d| d.spec.kind == DataSourceType::Mirroring)
            else {
                continue;
            };
            let f = Finding::new(
                &cat::MIRRORING_TWO_NODES,
                format!(
                    "mirroring `{}` is used by group `{}`, which has {nodes} preferred node{}: mirroring works between exactly two nodes",
                    m.name(),
                    group.name(),
                    if nodes == 1 { "" } else { "s" }
                ),
                ctx.at(group.doc, &format!("/spec/dataSources/{i}")),
            )
            .with_related(ctx.at(group.doc, "/spec/preferredNodes"), "the preferred nodes")
            .with_help("give the group exactly two preferred nodes, or use a shared disk or replication for more")
            .about(Kind::ResourceGroup, group.name().as_str())
            .about(Kind::DataSource, m.name().as_str());
            ctx.report(f);
        }
    }
}
