//! Rules about shared disks and what is mounted on them (AS02xx): mount
//! points on shared disks, thick VMFS disks, one kind of sharing per disk and
//! the SCSI bus sharing that kind needs.
//!
//! Limits come from the profile in force, so that a later qualification
//! changes data, not these checks.

use std::collections::{BTreeMap, HashMap};

use super::Ctx;
use super::tables::Topology;
use super::topology::{self, NodePair, PairKind};
use crate::catalog as cat;
use crate::diag::Finding;
use crate::model::{
    Backing, BusSharing, DataSourceSpec, DataSourceType, Kind, Object, Provisioning,
    ResourceGroupSpec,
};

pub(super) fn mount_points(ctx: &mut Ctx) {
    for ds in &ctx.config.data_sources {
        if ds.spec.kind != DataSourceType::MountPoint {
            continue;
        }
        let Some(on) = &ds.spec.on else { continue };
        let Some(target) = ctx.config.data_sources.get(on.as_str()) else {
            continue;
        };
        if target.spec.kind == DataSourceType::SharedDisk {
            continue;
        }
        let f = Finding::new(
            &cat::MOUNT_POINT_ON_SHARED_DISK,
            format!(
                "mount point `{}` is on `{on}`, a {} data source: a mount point needs a shared disk",
                ds.name(),
                target.spec.kind
            ),
            ctx.at(ds.doc, "/spec/on"),
        )
        .with_related(ctx.at(target.doc, "/spec/type"), "its type")
        .with_help("set `on:` to a data source of `type: sharedDisk`")
        .about(Kind::DataSource, ds.name().as_str());
        ctx.report(f);
    }
}

/// A shared disk and every way groups share it.
struct Sharing<'a> {
    disk: &'a Object<DataSourceSpec>,
    /// First (group, reference index, pair) per topology.
    uses: BTreeMap<Topology, Use<'a>>,
}

type Use<'a> = (&'a Object<ResourceGroupSpec>, usize, NodePair<'a>);

impl<'a> Sharing<'a> {
    /// The first use between VMs of one host, and the first across hosts
    /// (or with a physical machine).
    fn kinds(&self) -> (Option<&Use<'a>>, Option<&Use<'a>>) {
        let same = self.uses.get(&Topology::VmVmSameHost);
        let across = self
            .uses
            .get(&Topology::VmVmCrossHost)
            .or_else(|| self.uses.get(&Topology::PhyVm));
        (same, across)
    }
}

fn sharings<'a>(ctx: &Ctx<'a>) -> Vec<Sharing<'a>> {
    let mut out: Vec<Sharing> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for group in &ctx.config.groups {
        let pairs = topology::pairs(ctx, group);
        for (i, name) in group.spec.data_sources.iter().enumerate() {
            let Some(ds) = ctx.config.data_sources.get(name.as_str()) else {
                continue;
            };
            for d in topology::expand(ctx, ds) {
                if d.spec.kind != DataSourceType::SharedDisk {
                    continue;
                }
                let idx = *index.entry(d.name().as_str()).or_insert_with(|| {
                    out.push(Sharing {
                        disk: d,
                        uses: BTreeMap::new(),
                    });
                    out.len() - 1
                });
                for p in &pairs {
                    if let PairKind::Matrix(t) = p.kind {
                        out[idx].uses.entry(t).or_insert((group, i, *p));
                    }
                }
            }
        }
    }
    out
}

pub(super) fn shared_disks(ctx: &mut Ctx) {
    thin_vmfs_disks(ctx);
    for s in sharings(ctx) {
        mixed_sharing(ctx, &s);
        bus_sharing(ctx, &s);
    }
}

fn thin_vmfs_disks(ctx: &mut Ctx) {
    for ds in &ctx.config.data_sources {
        if ds.spec.kind != DataSourceType::SharedDisk {
            continue;
        }
        let Some(dev) = &ds.spec.device else { continue };
        if dev.backing == Backing::Vmfs && dev.provisioning == Some(Provisioning::Thin) {
            let f = Finding::new(
                &cat::VMFS_SHARED_DISK_THICK,
                format!(
                    "shared disk `{}` is a thin VMFS disk: a shared VMFS disk must be created thick",
                    ds.name()
                ),
                ctx.at(ds.doc, "/spec/device/provisioning"),
            )
            .with_help("create the disk with the \"thick\" option (`vmkfstools -d eagerzeroedthick`) and write `provisioning: thick`")
            .about(Kind::DataSource, ds.name().as_str());
            ctx.report(f);
        }
    }
}

/// A disk shared both between VMs of one host and across hosts.
fn mixed_sharing(ctx: &mut Ctx, s: &Sharing) {
    let (same, across) = s.kinds();
    if let (Some(same), Some(across)) = (same, across) {
        // Report where the second kind of sharing appears.
        let (g, i, _) = if (same.0.doc, same.1) > (across.0.doc, across.1) {
            same
        } else {
            across
        };
        let f = Finding::new(
            &cat::SHARED_DISK_MIXED_TOPOLOGY,
            format!(
                "shared disk `{}` is shared between VMs of one host (`{}`, `{}`) and across hosts (`{}`, `{}`) at the same time",
                s.disk.name(),
                same.2.a.name(),
                same.2.b.name(),
                across.2.a.name(),
                across.2.b.name()
            ),
            ctx.at(g.doc, &format!("/spec/dataSources/{i}")),
        )
        .with_related(ctx.at_name(s.disk), "the shared disk")
        .with_related(topology::node_note(ctx, same.2.b).0, topology::node_note(ctx, same.2.b).1)
        .with_related(topology::node_note(ctx, across.2.b).0, topology::node_note(ctx, across.2.b).1)
        .with_help("use one disk per kind of sharing: one shared by the VMs of one host (bus sharing virtual), another across hosts (bus sharing physical)")
        .about(Kind::DataSource, s.disk.name().as_str())
        .about(Kind::ResourceGroup, g.name().as_str());
        ctx.report(f);
    }
}

/// The SCSI bus sharing the way a disk is shared needs.
fn bus_sharing(ctx: &mut Ctx, s: &Sharing) {
    let (same, across) = s.kinds();
    let Some(dev) = &s.disk.spec.device else {
        return;
    };
    let (required, why) = if let Some(a) = across {
        (BusSharing::Physical, a)
    } else if let Some(s) = same {
        (BusSharing::Virtual, s)
    } else {
        return;
    };
    if dev.scsi_bus_sharing == Some(required) {
        return;
    }
    let (loc, actual) = match dev.scsi_bus_sharing {
        Some(b) => (
            ctx.at(s.disk.doc, "/spec/device/scsiBusSharing"),
            format!("`{}`", b.as_str()),
        ),
        None => (
            ctx.at(s.disk.doc, "/spec/device"),
            "not set (VMware's default is `none`)".to_owned(),
        ),
    };
    let kind = match required {
        BusSharing::Virtual => "between VMs of one host",
        _ => "across hosts or with a physical machine",
    };
    let f = Finding::new(
        &cat::SCSI_BUS_SHARING,
        format!(
            "shared disk `{}` is shared {kind} (`{}`, `{}` in group `{}`) but its SCSI bus sharing is {actual}: it must be `{}`",
            s.disk.name(),
            why.2.a.name(),
            why.2.b.name(),
            why.0.name(),
            required.as_str()
        ),
        loc,
    )
    .with_related(
        ctx.at(why.0.doc, &format!("/spec/dataSources/{}", why.1)),
        "the group sharing it",
    )
    .with_help(format!(
        "set `scsiBusSharing: {}` on the disk's SCSI controller",
        required.as_str()
    ))
    .about(Kind::DataSource, s.disk.name().as_str());
    ctx.report(f);
}
