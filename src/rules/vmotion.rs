//! Rules about VMotion (AS02xx): not with shared storage, not across
//! datacenters.
//!
//! Limits come from the profile in force, so that a later qualification
//! changes data, not these checks.

use super::Ctx;
use super::topology;
use crate::catalog as cat;
use crate::diag::Finding;
use crate::model::{
    BusSharing, DataSourceSpec, DataSourceType, Kind, NodeSpec, Object, ResourceGroupSpec, Vmotion,
};

pub(super) fn vmotion(ctx: &mut Ctx) {
    let cfg = ctx.config;
    for node in &cfg.nodes {
        if !node.spec.is_vm() || !node.spec.vmotion.is_enabled() {
            continue;
        }
        with_shared_storage(ctx, node);
        across_datacenters(ctx, node);
    }
}

/// Shared storage of one of `node`'s groups: a shared disk, or any device
/// on a shared SCSI bus; the first found, with its group.
fn shared_storage<'a>(
    ctx: &Ctx<'a>,
    node: &str,
) -> Option<(&'a Object<ResourceGroupSpec>, &'a Object<DataSourceSpec>)> {
    for g in ctx.groups_of(node).iter().copied() {
        for name in &g.spec.data_sources {
            let Some(ds) = ctx.config.data_sources.get(name.as_str()) else {
                continue;
            };
            for d in topology::expand(ctx, ds) {
                let bus = d.spec.device.as_ref().and_then(|dev| dev.scsi_bus_sharing);
                let is_shared = d.spec.kind == DataSourceType::SharedDisk
                    || matches!(bus, Some(BusSharing::Virtual | BusSharing::Physical));
                if is_shared {
                    return Some((g, d));
                }
            }
        }
    }
    None
}

/// A VMotion-enabled VM must not use shared storage.
fn with_shared_storage(ctx: &mut Ctx, node: &Object<NodeSpec>) {
    if let Some((g, d)) = shared_storage(ctx, node.name().as_str()) {
        let f = Finding::new(
            &cat::VMOTION_SHARED_STORAGE,
            format!(
                "VM `{}` has VMotion enabled but uses shared storage (`{}` of group `{}`): VMotion needs SCSI bus sharing `none`",
                node.name(),
                d.name(),
                g.name()
            ),
            ctx.at(node.doc, "/spec/vmotion"),
        )
        .with_related(ctx.at_name(d), "the shared storage")
        .with_help("set `vmotion: false` on VMs that use shared disks")
        .about(Kind::Node, node.name().as_str())
        .about(Kind::DataSource, d.name().as_str());
        ctx.report(f);
    }
}

/// A VM's VMotion targets must be hosts of its own host's datacenter.
fn across_datacenters(ctx: &mut Ctx, node: &Object<NodeSpec>) {
    let Vmotion::Targets(targets) = &node.spec.vmotion else {
        return;
    };
    let Some(host) = node
        .spec
        .host
        .as_ref()
        .and_then(|h| ctx.config.hosts.get(h.as_str()))
    else {
        return;
    };
    let Some(dc) = &host.spec.datacenter else {
        return;
    };
    for (i, t) in targets.iter().enumerate() {
        let Some(target) = ctx.config.hosts.get(t.as_str()) else {
            continue;
        };
        let Some(tdc) = &target.spec.datacenter else {
            continue;
        };
        if tdc == dc {
            continue;
        }
        let f = Finding::new(
            &cat::VMOTION_ACROSS_DATACENTERS,
            format!(
                "VM `{}` may migrate to host `{t}` in datacenter `{tdc}`, but runs on `{}` in datacenter `{dc}`: VMotion cannot cross datacenters",
                node.name(),
                host.name()
            ),
            ctx.at(node.doc, &format!("/spec/vmotion/{i}")),
        )
        .with_related(ctx.at(target.doc, "/spec/datacenter"), "the target's datacenter")
        .with_related(ctx.at(host.doc, "/spec/datacenter"), "the VM's datacenter")
        .with_help(format!("list only hosts of datacenter `{dc}`"))
        .about(Kind::Node, node.name().as_str())
        .about(Kind::Host, t.as_str());
        ctx.report(f);
    }
}
