//! Rules about shared disks and what is mounted on them (AS02xx): mount
//! points on shared disks, thick VMFS disks, one kind of sharing per disk and
//! the SCSI bus sharing that kind needs.
//!
//! Limits come from the profile in force, so that a later qualification
//! changes data, not these checks.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::Ctx;
use super::tables::Topology;
use super::topology::{self, NodePair, PairKind};
use crate::catalog as cat;
use crate::diag::Finding;
use crate::model::{
    Backing, BusSharing, DataSourceSpec, DataSourceType, DocId, Kind, NodeSpec, Object,
    Provisioning, ResourceGroupSpec,
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

/// A node among the users of a disk, and the group reference that makes it
/// one.
#[derive(Clone, Copy)]
struct User<'a> {
    node: &'a Object<NodeSpec>,
    group: &'a Object<ResourceGroupSpec>,
    index: usize,
}

impl User<'_> {
    fn at(&self) -> (DocId, usize) {
        (self.group.doc, self.index)
    }
}

/// Two users of a disk and how they relate; `b` is the later one.
#[derive(Clone, Copy)]
struct Use<'a> {
    a: User<'a>,
    b: User<'a>,
    pair: NodePair<'a>,
}

impl Use<'_> {
    /// "`vm1`, `vm2` in group `app`", or with two groups, each node's.
    fn describe(&self) -> String {
        let (a, b) = (self.a, self.b);
        if std::ptr::eq(a.group, b.group) {
            format!(
                "`{}`, `{}` in group `{}`",
                a.node.name(),
                b.node.name(),
                a.group.name()
            )
        } else {
            format!(
                "`{}` in group `{}`, `{}` in group `{}`",
                a.node.name(),
                a.group.name(),
                b.node.name(),
                b.group.name()
            )
        }
    }
}

/// A shared disk and every way it is shared. A disk is one device whichever
/// groups use it, so its users are the union of the preferred nodes of
/// every group that uses it, and every pair of them shares it.
struct Sharing<'a> {
    disk: &'a Object<DataSourceSpec>,
    /// The first user per placement (a host, or physical machines): which
    /// topologies a disk's users form depends only on their placements, so
    /// a new user is classified against these alone.
    firsts: Vec<User<'a>>,
    users: HashSet<&'a str>,
    /// The first pair per topology.
    uses: BTreeMap<Topology, Use<'a>>,
}

impl<'a> Sharing<'a> {
    fn new(disk: &'a Object<DataSourceSpec>) -> Self {
        Sharing {
            disk,
            firsts: Vec::new(),
            users: HashSet::new(),
            uses: BTreeMap::new(),
        }
    }

    fn add(&mut self, user: User<'a>) {
        if !self.users.insert(user.node.name().as_str()) {
            return;
        }
        let Some(place) = topology::placement(&user.node.spec) else {
            return;
        };
        let mut first_here = true;
        for &first in &self.firsts {
            if topology::placement(&first.node.spec) == Some(place) {
                first_here = false;
            }
            let pair = NodePair {
                a: first.node,
                b: user.node,
                kind: match topology::classify(&first.node.spec, &user.node.spec) {
                    Some(k) => k,
                    None => continue,
                },
            };
            if let PairKind::Matrix(t) = pair.kind {
                self.uses.entry(t).or_insert(Use {
                    a: first,
                    b: user,
                    pair,
                });
            }
        }
        if first_here {
            self.firsts.push(user);
        }
    }

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
        let nodes = topology::preferred(ctx, group);
        for (i, name) in group.spec.data_sources.iter().enumerate() {
            let Some(ds) = ctx.config.data_sources.get(name.as_str()) else {
                continue;
            };
            for d in topology::expand(ctx, ds) {
                if d.spec.kind != DataSourceType::SharedDisk {
                    continue;
                }
                let idx = *index.entry(d.name().as_str()).or_insert_with(|| {
                    out.push(Sharing::new(d));
                    out.len() - 1
                });
                for &node in nodes {
                    out[idx].add(User {
                        node,
                        group,
                        index: i,
                    });
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
    let (Some(same), Some(across)) = (same, across) else {
        return;
    };
    // Report where the second kind of sharing appears.
    let at = same.b.at().max(across.b.at());
    let here = if same.b.at() == at { same.b } else { across.b };
    let mut f = Finding::new(
        &cat::SHARED_DISK_MIXED_TOPOLOGY,
        format!(
            "shared disk `{}` is shared between VMs of one host ({}) and across hosts ({}) at the same time",
            s.disk.name(),
            same.describe(),
            across.describe()
        ),
        ctx.at(here.group.doc, &format!("/spec/dataSources/{}", here.index)),
    )
    .with_related(ctx.at_name(s.disk), "the shared disk");
    // The other groups whose nodes share the disk, each once.
    let mut noted = vec![here.at()];
    for u in [same.a, same.b, across.a, across.b] {
        if !noted.iter().any(|n| n.0 == u.at().0) {
            noted.push(u.at());
            f = f.with_related(
                ctx.at(u.group.doc, &format!("/spec/dataSources/{}", u.index)),
                format!("group `{}` uses it too", u.group.name()),
            );
        }
    }
    let (l1, n1) = topology::node_note(ctx, same.pair.b);
    let (l2, n2) = topology::node_note(ctx, across.pair.b);
    let f = f
        .with_related(l1, n1)
        .with_related(l2, n2)
        .with_help("use one disk per kind of sharing: one shared by the VMs of one host (bus sharing virtual), another across hosts (bus sharing physical)")
        .about(Kind::DataSource, s.disk.name().as_str())
        .about(Kind::ResourceGroup, here.group.name().as_str());
    ctx.report(f);
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
            "shared disk `{}` is shared {kind} ({}) but its SCSI bus sharing is {actual}: it must be `{}`",
            s.disk.name(),
            why.describe(),
            required.as_str()
        ),
        loc,
    )
    .with_related(
        ctx.at(why.b.group.doc, &format!("/spec/dataSources/{}", why.b.index)),
        "the group sharing it",
    )
    .with_help(format!(
        "set `scsiBusSharing: {}` on the disk's SCSI controller",
        required.as_str()
    ))
    .about(Kind::DataSource, s.disk.name().as_str());
    ctx.report(f);
}
