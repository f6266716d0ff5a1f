//! Data sources on Linux nodes: types without a driver there, and OCF
//! agents (`agent` of a data source, `resources` of a group) checked
//! against their meta-data.
//!
//! The meta-data is gathered by the caller (running each agent's
//! `meta-data` is I/O, done by the validate command) and passed
//! in, so the checks stay pure. Without it (`None`: nobody gathered) the
//! parameter rules are skipped; an agent gathered but not installed where
//! validate runs gets a note.

use std::collections::BTreeSet;

use crate::diag::Finding;
use crate::load::did_you_mean;
pub use crate::model::ocf_metadata::OcfCatalog;
use crate::model::{DataSourceType, Kind, OcfAgent, OsName, split_ocf};

use super::{Ctx, catalog as cat};

/// Types a Linux node runs without an `agent`.
fn has_linux_driver(t: DataSourceType) -> bool {
    matches!(
        t,
        DataSourceType::SharedDisk | DataSourceType::MountPoint | DataSourceType::Composite
    )
}

pub fn check(ctx: &mut Ctx, ocf: Option<&OcfCatalog>) {
    no_driver(ctx);
    for d in &ctx.config.data_sources {
        if let Some(a) = &d.spec.agent {
            agent(
                ctx,
                a,
                d.doc,
                "/spec/agent",
                (Kind::DataSource, d.name().as_str()),
                ocf,
            );
        }
    }
    for g in &ctx.config.groups {
        for (i, r) in g.spec.resources.iter().enumerate() {
            let base = format!("/spec/resources/{i}");
            agent(
                ctx,
                &r.agent(),
                g.doc,
                &base,
                (Kind::ResourceGroup, g.name().as_str()),
                ocf,
            );
        }
    }
}

/// AS0314: a data source a Linux node may have to run, of a type without a
/// driver there and without an `agent`.
fn no_driver(ctx: &mut Ctx) {
    let cfg = ctx.config;
    let on_linux = |n: &str| {
        cfg.nodes
            .get(n)
            .and_then(|n| n.spec.os.as_ref())
            .is_some_and(|os| os.name == OsName::Linux)
    };
    let mut reported = BTreeSet::new();
    for g in &cfg.groups {
        let Some(node) = g.spec.preferred_nodes.iter().find(|n| on_linux(n.as_str())) else {
            continue;
        };
        // The group's data sources and, through composites, their members.
        let mut todo: Vec<&str> = g.spec.data_sources.iter().map(|n| n.as_str()).collect();
        let mut seen = BTreeSet::new();
        while let Some(name) = todo.pop() {
            let Some(d) = cfg.data_sources.get(name) else {
                continue;
            };
            if !seen.insert(name) {
                continue;
            }
            todo.extend(d.spec.members.iter().map(|m| m.as_str()));
            if d.spec.agent.is_some() || has_linux_driver(d.spec.kind) || !reported.insert(name) {
                continue;
            }
            let f = Finding::new(
                &cat::NO_LINUX_DRIVER,
                format!(
                    "no driver for `{}` on linux: give data source `{name}` an `agent`",
                    d.spec.kind
                ),
                ctx.at(d.doc, "/spec/type"),
            )
            .with_related(
                ctx.at_name(g),
                format!("group `{}` may run on linux node `{node}`", g.name()),
            )
            .about(Kind::DataSource, name)
            .about(Kind::ResourceGroup, g.name().as_str());
            ctx.report(f);
        }
    }
}

/// AS0315–AS0318 for one agent use at `base` in document `doc`.
fn agent(
    ctx: &mut Ctx,
    a: &OcfAgent,
    doc: crate::model::DocId,
    base: &str,
    about: (Kind, &str),
    ocf: Option<&OcfCatalog>,
) {
    if split_ocf(&a.ocf).is_none() {
        let f = Finding::new(
            &cat::OCF_AGENT_NAME,
            format!("`{}` is not an OCF agent name", a.ocf),
            ctx.at(doc, &format!("{base}/ocf")),
        )
        .about(about.0, about.1);
        ctx.report(f);
        return;
    }
    let Some(catalog) = ocf else { return };
    let Some(Some(md)) = catalog.get(&a.ocf) else {
        let f = Finding::new(
            &cat::OCF_AGENT_NOT_INSTALLED,
            format!(
                "OCF agent `{}` is not installed where validate runs: its parameters are not checked",
                a.ocf
            ),
            ctx.at(doc, &format!("{base}/ocf")),
        )
        .about(about.0, about.1);
        ctx.report(f);
        return;
    };
    for (name, p) in &md.params {
        if p.required && !a.params.contains_key(name) {
            let f = Finding::new(
                &cat::OCF_PARAM_MISSING,
                format!("OCF agent `{}` requires parameter `{name}`", a.ocf),
                ctx.at(doc, &format!("{base}/ocf")),
            )
            .about(about.0, about.1);
            ctx.report(f);
        }
    }
    let known: Vec<&str> = md.params.keys().map(String::as_str).collect();
    for name in a.params.keys() {
        if md.params.contains_key(name) {
            continue;
        }
        let help = match did_you_mean(name, &known) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("its parameters: {}", known.join(", ")),
        };
        let f = Finding::new(
            &cat::OCF_PARAM_UNKNOWN,
            format!("OCF agent `{}` has no parameter `{name}`", a.ocf),
            ctx.at_key(doc, &format!("{base}/params/{name}")),
        )
        .with_help(help)
        .about(about.0, about.1);
        ctx.report(f);
    }
}
