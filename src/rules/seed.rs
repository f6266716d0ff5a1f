//! The seed's prose rules (AS02xx): every sentence of the seed that
//! constrains a configuration and is not one of its tables.
//!
//! Limits (qualified versions, guest systems, module word sizes, ...) come
//! from the profile in force, so that a later qualification changes data,
//! not these checks.

use std::collections::{BTreeMap, HashMap};

use super::Ctx;
use super::catalog as cat;
use super::profile::{self, Profile};
use super::tables::Topology;
use super::topology::{self, NodePair, PairKind};
use crate::diag::Finding;
use crate::model::{
    Backing, BusSharing, DataSourceSpec, DataSourceType, Kind, LineRole, Name, NicTeaming,
    NodeSpec, Object, OsName, Platform, Provisioning, ReplicationMode, ResourceGroupSpec, Vmotion,
};

pub fn check(ctx: &mut Ctx) {
    let profile = profile::of(ctx.config);
    hypervisor_versions(ctx, profile);
    guest_os(ctx, profile);
    modules(ctx, profile);
    windows_only(ctx);
    mirroring(ctx);
    mount_points(ctx);
    shared_disks(ctx);
    replication_pairing(ctx);
    composites(ctx, profile);
    vmotion(ctx);
    nic_teaming(ctx);
    vmware_ha(ctx);
    cluster_in_a_box(ctx);
    network(ctx, profile);
    pci_and_scsi(ctx, profile);
}

fn hypervisor_versions(ctx: &mut Ctx, profile: &Profile) {
    if profile.hypervisor_versions.is_empty() {
        return;
    }
    for host in &ctx.config.hosts {
        let v = &host.spec.hypervisor.version;
        if profile.hypervisor_versions.iter().any(|p| p.matches(v)) {
            continue;
        }
        let f = Finding::new(
            &cat::HYPERVISOR_VERSION,
            format!(
                "host `{}` runs hypervisor version {v}, which {} is not qualified on",
                host.name(),
                profile.qualification.as_str()
            ),
            ctx.at(host.doc, "/spec/hypervisor/version"),
        )
        .with_help(format!("qualified versions: {}", profile.version_labels()))
        .about(Kind::Host, host.name().as_str());
        ctx.report(f);
    }
}

fn guest_os(ctx: &mut Ctx, profile: &Profile) {
    for node in &ctx.config.nodes {
        let Some(os) = &node.spec.os else { continue };
        if node.spec.is_vm() && !profile.guest_os.is_empty() && !profile.guest_os.contains(&os.name)
        {
            let allowed: Vec<String> = profile.guest_os.iter().map(|o| os_label(*o)).collect();
            let f = Finding::new(
                &cat::GUEST_OS,
                format!(
                    "VM `{}` runs {}, which is not a supported guest OS",
                    node.name(),
                    os_label(os.name)
                ),
                ctx.at(node.doc, "/spec/os/name"),
            )
            .with_help(format!("supported guest OS: {}", allowed.join(", ")))
            .about(Kind::Node, node.name().as_str());
            ctx.report(f);
        }
        if os.bits.get() == 64 && node.spec.platform == Some(Platform::X86) {
            let f = Finding::new(
                &cat::GUEST_OS_PLATFORM,
                format!(
                    "node `{}` runs a 64-bit OS on the x86 platform: 64-bit Windows is supported on x64 only",
                    node.name()
                ),
                ctx.at(node.doc, "/spec/os/bits"),
            )
            .with_related(ctx.at(node.doc, "/spec/platform"), "the platform is x86")
            .with_help("use `platform: x64`, or a 32-bit OS")
            .about(Kind::Node, node.name().as_str());
            ctx.report(f);
        }
    }
}

fn os_label(os: OsName) -> String {
    serde_json::to_value(os)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn modules(ctx: &mut Ctx, profile: &Profile) {
    for group in &ctx.config.groups {
        let Some(module) = &group.spec.module else {
            continue;
        };
        let Some(bits) = profile.module_support(module.kind).and_then(|m| m.bits) else {
            continue;
        };
        for node in topology::preferred(ctx, group) {
            let Some(os) = &node.spec.os else { continue };
            if os.bits == bits {
                continue;
            }
            let f = Finding::new(
                &cat::MODULE_WORD_SIZE,
                format!(
                    "module {} runs on {}-bit Windows only, but node `{}` runs a {}-bit OS",
                    module.kind.as_str(),
                    bits.get(),
                    node.name(),
                    os.bits.get()
                ),
                ctx.at(group.doc, "/spec/module/type"),
            )
            .with_related(
                ctx.at(node.doc, "/spec/os/bits"),
                format!("`{}` is {}-bit", node.name(), os.bits.get()),
            )
            .with_help(format!(
                "run the group on {}-bit Windows nodes only",
                bits.get()
            ))
            .about(Kind::ResourceGroup, group.name().as_str())
            .about(Kind::Node, node.name().as_str());
            ctx.report(f);
        }
    }
}

fn windows_only(ctx: &mut Ctx) {
    for group in &ctx.config.groups {
        let mut what: Vec<(&str, String)> = Vec::new();
        if let Some(m) = &group.spec.module {
            what.push(("/spec/module/type", format!("module {}", m.kind.as_str())));
        }
        if let Some(alias) = &group.spec.node_alias {
            what.push(("/spec/nodeAlias", format!("node alias `{alias}`")));
        }
        if what.is_empty() {
            continue;
        }
        for node in topology::preferred(ctx, group) {
            let Some(os) = &node.spec.os else { continue };
            if os.name.is_windows() {
                continue;
            }
            for (pointer, label) in &what {
                let f = Finding::new(
                    &cat::WINDOWS_ONLY,
                    format!(
                        "{label} is a Windows resource, but preferred node `{}` runs {}",
                        node.name(),
                        os_label(os.name)
                    ),
                    ctx.at(group.doc, pointer),
                )
                .with_related(ctx.at(node.doc, "/spec/os/name"), "the node's OS")
                .with_help("run the group on Windows nodes only, or replace the module/alias with processes and a managed IP")
                .about(Kind::ResourceGroup, group.name().as_str())
                .about(Kind::Node, node.name().as_str());
                ctx.report(f);
            }
        }
    }
}

fn mirroring(ctx: &mut Ctx) {
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

fn mount_points(ctx: &mut Ctx) {
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
    uses: BTreeMap<Topology, (&'a Object<ResourceGroupSpec>, usize, NodePair<'a>)>,
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

fn shared_disks(ctx: &mut Ctx) {
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
    for s in sharings(ctx) {
        let same = s.uses.get(&Topology::VmVmSameHost);
        let across = s
            .uses
            .get(&Topology::VmVmCrossHost)
            .or_else(|| s.uses.get(&Topology::PhyVm));
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
        let Some(dev) = &s.disk.spec.device else {
            continue;
        };
        let (required, why) = if let Some(a) = across {
            (BusSharing::Physical, a)
        } else if let Some(s) = same {
            (BusSharing::Virtual, s)
        } else {
            continue;
        };
        if dev.scsi_bus_sharing == Some(required) {
            continue;
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
}

/// MirrorView/SRDF and the data source they are combined with (seed,
/// "MirrorView", "SRDF"): in RDM mode a Shared Disk on the RDM device, in
/// VMFS mode the VMFS data source; and a group that uses one uses the other.
fn replication_pairing(ctx: &mut Ctx) {
    // Correctly paired data sources: (MirrorView/SRDF, its partner).
    let mut paired: Vec<(&Object<DataSourceSpec>, &Object<DataSourceSpec>)> = Vec::new();
    for ds in &ctx.config.data_sources {
        if !matches!(
            ds.spec.kind,
            DataSourceType::MirrorView | DataSourceType::Srdf
        ) {
            continue;
        }
        let target = ds
            .spec
            .paired_with
            .as_ref()
            .and_then(|p| ctx.config.data_sources.get(p.as_str()));
        let Some(dev) = &ds.spec.device else {
            // No device (`data-source-field-missing`): the mode is unknown,
            // but a partner of either kind still belongs in the group.
            if let Some(t) = target
                && matches!(
                    t.spec.kind,
                    DataSourceType::SharedDisk | DataSourceType::Vmfs
                )
            {
                paired.push((ds, t));
            }
            continue;
        };
        let need = if dev.backing.is_rdm() {
            DataSourceType::SharedDisk
        } else {
            DataSourceType::Vmfs
        };
        let mode = if dev.backing.is_rdm() { "RDM" } else { "VMFS" };
        let (loc, problem, related) = match (&ds.spec.paired_with, target) {
            (None, _) => (
                ctx.at(ds.doc, "/spec/device/backing"),
                "has no `pairedWith`".to_owned(),
                None,
            ),
            // A dangling name is `dangling-reference`.
            (Some(_), None) => continue,
            (Some(p), Some(target)) if target.spec.kind != need => (
                ctx.at(ds.doc, "/spec/pairedWith"),
                format!("is paired with `{p}`, a {} data source", target.spec.kind),
                Some((ctx.at(target.doc, "/spec/type"), "its type")),
            ),
            // RDM mode: the shared disk is the replicated LUN, mapped as an
            // RDM; a virtual disk on a VMFS volume is not that LUN.
            (Some(p), Some(target))
                if need == DataSourceType::SharedDisk
                    && target.spec.device.as_ref().map(|d| d.backing) == Some(Backing::Vmfs) =>
            {
                (
                    ctx.at(ds.doc, "/spec/pairedWith"),
                    format!("is paired with `{p}`, a sharedDisk on a VMFS virtual disk"),
                    Some((ctx.at(target.doc, "/spec/device/backing"), "its backing")),
                )
            }
            (Some(_), Some(target)) => {
                paired.push((ds, target));
                continue;
            }
        };
        let need_text = match need {
            DataSourceType::SharedDisk => {
                "Shared Disk data source on the RDM device (`backing: rdm-physical` or `rdm-virtual`)"
            }
            _ => "VMFS data source (`type: vmfs`)",
        };
        let mut f = Finding::new(
            &cat::REPLICATION_PAIRING,
            format!(
                "{} `{}` in {mode} mode {problem}: in {mode} mode it must be combined with a {need_text}",
                ds.spec.kind,
                ds.name()
            ),
            loc,
        )
        .with_help(format!(
            "set `pairedWith:` to a data source of `type: {need}`{}",
            if need == DataSourceType::SharedDisk {
                " whose device is the same RDM"
            } else {
                ""
            }
        ))
        .about(Kind::DataSource, ds.name().as_str());
        if let Some((at, label)) = related {
            f = f.with_related(at, label);
        }
        ctx.report(f);
    }
    if paired.is_empty() {
        return;
    }
    // The two work together in the resource group (the VMFS data source adds
    // and removes the disks when the group goes online or offline): a group
    // that uses MirrorView/SRDF uses its partner too, which is then checked
    // like any data source of the group (tables, bus sharing, VMotion).
    for group in &ctx.config.groups {
        let mut used: Vec<&Name> = Vec::new();
        for name in &group.spec.data_sources {
            if let Some(ds) = ctx.config.data_sources.get(name.as_str()) {
                used.extend(topology::expand(ctx, ds).into_iter().map(|d| d.name()));
            }
        }
        for (i, name) in group.spec.data_sources.iter().enumerate() {
            let Some((ds, partner)) = paired.iter().find(|(d, _)| d.name() == name) else {
                continue;
            };
            if used.contains(&partner.name()) {
                continue;
            }
            let f = Finding::new(
                &cat::REPLICATION_PARTNER_IN_GROUP,
                format!(
                    "group `{}` uses {} `{}` but not `{}`, the {} data source it is combined with: the two work together in the group",
                    group.name(),
                    ds.spec.kind,
                    ds.name(),
                    partner.name(),
                    partner.spec.kind
                ),
                ctx.at(group.doc, &format!("/spec/dataSources/{i}")),
            )
            .with_related(ctx.at(ds.doc, "/spec/pairedWith"), "paired here")
            .with_help(format!(
                "add `{}` to the group's `dataSources`",
                partner.name()
            ))
            .about(Kind::ResourceGroup, group.name().as_str())
            .about(Kind::DataSource, ds.name().as_str())
            .about(Kind::DataSource, partner.name().as_str());
            ctx.report(f);
        }
    }
}

fn composites(ctx: &mut Ctx, profile: &Profile) {
    for ds in &ctx.config.data_sources {
        if ds.spec.kind != DataSourceType::Composite {
            continue;
        }
        let mut distinct: Vec<&Name> = Vec::new();
        for (i, m) in ds.spec.members.iter().enumerate() {
            if !distinct.contains(&m) {
                distinct.push(m);
            }
            let Some(member) = ctx.config.data_sources.get(m.as_str()) else {
                continue;
            };
            if profile.composite_members.contains(&member.spec.kind) {
                continue;
            }
            let allowed: Vec<&str> = profile
                .composite_members
                .iter()
                .map(|t| t.as_str())
                .collect();
            let f = Finding::new(
                &cat::COMPOSITE_MEMBER_TYPE,
                format!(
                    "composite `{}` groups `{m}`, a {} data source: a composite can group only {}",
                    ds.name(),
                    member.spec.kind,
                    allowed.join(", ")
                ),
                ctx.at(ds.doc, &format!("/spec/members/{i}")),
            )
            .with_related(ctx.at(member.doc, "/spec/type"), "its type")
            .with_help("list the data source in the group directly instead of in the composite")
            .about(Kind::DataSource, ds.name().as_str());
            ctx.report(f);
        }
        if distinct.len() < 2 {
            let loc = if ds.spec.members.is_empty() {
                ctx.at(ds.doc, "/spec/type")
            } else {
                ctx.at(ds.doc, "/spec/members")
            };
            let f = Finding::new(
                &cat::COMPOSITE_TOO_FEW_MEMBERS,
                format!(
                    "composite `{}` groups {} data source{}: a composite groups two or more",
                    ds.name(),
                    distinct.len(),
                    if distinct.len() == 1 { "" } else { "s" }
                ),
                loc,
            )
            .with_help("add members, or use the single data source directly")
            .about(Kind::DataSource, ds.name().as_str());
            ctx.report(f);
        }
    }
}

fn vmotion(ctx: &mut Ctx) {
    for node in &ctx.config.nodes {
        if !node.spec.is_vm() || !node.spec.vmotion.is_enabled() {
            continue;
        }
        // Shared storage: a shared disk, or any device on a shared SCSI bus.
        let mut shared = None;
        'groups: for g in ctx.groups_of(node.name().as_str()).iter().copied() {
            for name in &g.spec.data_sources {
                let Some(ds) = ctx.config.data_sources.get(name.as_str()) else {
                    continue;
                };
                for d in topology::expand(ctx, ds) {
                    let bus = d.spec.device.as_ref().and_then(|dev| dev.scsi_bus_sharing);
                    let is_shared = d.spec.kind == DataSourceType::SharedDisk
                        || matches!(bus, Some(BusSharing::Virtual | BusSharing::Physical));
                    if is_shared {
                        shared = Some((g, d));
                        break 'groups;
                    }
                }
            }
        }
        if let Some((g, d)) = shared {
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
        let Vmotion::Targets(targets) = &node.spec.vmotion else {
            continue;
        };
        let Some(host) = node
            .spec
            .host
            .as_ref()
            .and_then(|h| ctx.config.hosts.get(h.as_str()))
        else {
            continue;
        };
        let Some(dc) = &host.spec.datacenter else {
            continue;
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
}

fn nic_teaming(ctx: &mut Ctx) {
    for node in &ctx.config.nodes {
        if node.spec.nic_teaming != NicTeaming::Guest {
            continue;
        }
        let f = Finding::new(
            &cat::GUEST_NIC_TEAMING,
            format!(
                "node `{}` teams NICs in the guest OS, which AutoStart does not support",
                node.name()
            ),
            ctx.at(node.doc, "/spec/nicTeaming"),
        )
        .with_help("team the NICs in ESX (`nicTeaming: hypervisor`), or use several domain lines")
        .about(Kind::Node, node.name().as_str());
        ctx.report(f);
    }
}

fn vmware_ha(ctx: &mut Ctx) {
    for host in &ctx.config.hosts {
        if !host.spec.vmware_ha {
            continue;
        }
        let nodes: Vec<&Object<NodeSpec>> = ctx
            .config
            .nodes
            .iter()
            .filter(|n| n.spec.host.as_ref() == Some(host.name()))
            .collect();
        if nodes.is_empty() {
            continue;
        }
        let names: Vec<String> = nodes.iter().map(|n| format!("`{}`", n.name())).collect();
        let mut f = Finding::new(
            &cat::VMWARE_HA,
            format!(
                "host `{}` has VMware HA enabled and runs node {}: AutoStart is not qualified with VMware HA",
                host.name(),
                names.join(", ")
            ),
            ctx.at(host.doc, "/spec/vmwareHA"),
        )
        .with_help("disable VMware HA for the AutoStart VMs (AutoStart does the failover), or accept the warning with a reason")
        .about(Kind::Host, host.name().as_str());
        for n in nodes {
            f = f.about(Kind::Node, n.name().as_str());
        }
        ctx.report(f);
    }
}

fn cluster_in_a_box(ctx: &mut Ctx) {
    for group in &ctx.config.groups {
        let nodes = topology::preferred(ctx, group);
        if nodes.len() < 2 {
            continue;
        }
        let Some(Some(host)) = topology::placement(&nodes[0].spec) else {
            continue;
        };
        let all_same = nodes
            .iter()
            .all(|n| topology::placement(&n.spec) == Some(Some(host)));
        if !all_same {
            continue;
        }
        let f = Finding::new(
            &cat::CLUSTER_IN_A_BOX,
            format!(
                "every preferred node of group `{}` is a VM on host `{host}`: a failure of that host stops the group (cluster in a box protects against OS and application failures only)",
                group.name()
            ),
            ctx.at(group.doc, "/spec/preferredNodes"),
        )
        .with_help("add a preferred node on another host or a physical machine, or accept the warning with the reason")
        .about(Kind::ResourceGroup, group.name().as_str())
        .about(Kind::Host, host.as_str());
        ctx.report(f);
    }
}

fn network(ctx: &mut Ctx, profile: &Profile) {
    let cfg = ctx.config;
    for node in &cfg.nodes {
        let lines = ctx.lines_of(node.name().as_str());
        let count = |role: LineRole| lines.iter().filter(|l| l.spec.role == role).count();
        let (domain, verification) = (count(LineRole::Domain), count(LineRole::Verification));
        if domain >= profile.min_domain_lines && verification >= profile.min_verification_lines {
            continue;
        }
        let f = Finding::new(
            &cat::NETWORK_LINES,
            format!(
                "node `{}` is on {domain} domain line{} and {verification} verification line{}: at least {} domain lines and {} verification line are recommended",
                node.name(),
                if domain == 1 { "" } else { "s" },
                if verification == 1 { "" } else { "s" },
                profile.min_domain_lines,
                profile.min_verification_lines
            ),
            ctx.at_name(node),
        )
        .with_help("add the node to two `role: domain` lines and one `role: verification` line, each on its own NIC")
        .about(Kind::Node, node.name().as_str());
        ctx.report(f);
    }
    let Some(domain) = &cfg.domain else { return };
    if domain.spec.heartbeat.multicast.is_none() {
        let loc = ctx
            .at(domain.doc, "/spec/heartbeat")
            .or_else(|| ctx.at_name(domain));
        let f = Finding::new(
            &cat::NO_MULTICAST_HEARTBEAT,
            format!(
                "domain `{}` sends heartbeats without multicast",
                domain.name()
            ),
            loc,
        )
        .with_help("add `heartbeat: {multicast: 239.192.0.1}` (an administratively scoped group)")
        .about(Kind::Domain, domain.name().as_str());
        ctx.report(f);
    }
    let has_addresses = domain
        .spec
        .isolation
        .as_ref()
        .is_some_and(|i| !i.addresses.is_empty());
    if !has_addresses {
        let loc = ctx
            .at(domain.doc, "/spec/isolation/addresses")
            .or_else(|| ctx.at(domain.doc, "/spec/isolation"))
            .or_else(|| ctx.at_name(domain));
        let f = Finding::new(
            &cat::NO_ISOLATION_ADDRESSES,
            format!("domain `{}` has no isolation addresses", domain.name()),
            loc,
        )
        .with_help("add external addresses, e.g. the lines' default gateways: `isolation: {addresses: [10.0.1.1]}`")
        .about(Kind::Domain, domain.name().as_str());
        ctx.report(f);
    }
    for host in &cfg.hosts {
        let Some(nics) = host.spec.nics else { continue };
        if nics >= profile.min_host_nics {
            continue;
        }
        let f = Finding::new(
            &cat::HOST_NICS,
            format!(
                "host `{}` has {nics} network card{}: at least {} are recommended, one per network line",
                host.name(),
                if nics == 1 { "" } else { "s" },
                profile.min_host_nics
            ),
            ctx.at(host.doc, "/spec/nics"),
        )
        .with_help("give the host at least three physical NICs")
        .about(Kind::Host, host.name().as_str());
        ctx.report(f);
    }
}

fn pci_and_scsi(ctx: &mut Ctx, profile: &Profile) {
    for node in &ctx.config.nodes {
        if !node.spec.is_vm() {
            continue;
        }
        let nics = node.spec.nics.unwrap_or(0);
        let scsi = node.spec.effective_scsi_controllers();
        let slots = node.spec.pci_slots.unwrap_or(NodeSpec::DEFAULT_PCI_SLOTS);
        if nics.saturating_add(scsi) > slots {
            let loc = ctx
                .at(node.doc, "/spec/nics")
                .or_else(|| ctx.at(node.doc, "/spec/scsiControllers"));
            let scsi_text = match node.spec.scsi_controllers {
                Some(n) => format!("{n} SCSI controller{}", if n == 1 { "" } else { "s" }),
                None => "1 SCSI controller (SCSI 0, `scsiControllers` not given)".to_owned(),
            };
            let f = Finding::new(
                &cat::PCI_SLOTS,
                format!(
                    "VM `{}` has {nics} NIC{} and {scsi_text}, {} devices for {slots} PCI slots",
                    node.name(),
                    if nics == 1 { "" } else { "s" },
                    nics.saturating_add(scsi)
                ),
                loc,
            )
            .with_related(
                ctx.at(node.doc, "/spec/scsiControllers"),
                "SCSI controllers",
            )
            .with_related(ctx.at(node.doc, "/spec/pciSlots"), "PCI slots")
            .with_help("a VM has 5 PCI slots: 3 NICs (one per line) and 2 SCSI controllers")
            .about(Kind::Node, node.name().as_str());
            ctx.report(f);
        }
        if profile.min_scsi_controllers == 0 {
            continue;
        }
        let have = node.spec.effective_scsi_controllers();
        if have >= profile.min_scsi_controllers {
            continue;
        }
        let uses_disks = ctx
            .groups_of(node.name().as_str())
            .iter()
            .copied()
            .into_iter()
            .any(|g| {
                g.spec.data_sources.iter().any(|n| {
                    ctx.config.data_sources.get(n.as_str()).is_some_and(|ds| {
                        topology::expand(ctx, ds)
                            .iter()
                            .any(|d| d.spec.device.is_some())
                    })
                })
            });
        if !uses_disks {
            continue;
        }
        let loc = ctx
            .at(node.doc, "/spec/scsiControllers")
            .or_else(|| ctx.at_name(node));
        let f = Finding::new(
            &cat::SCSI_CONTROLLERS,
            format!(
                "VM `{}` uses data source disks with {have} SCSI controller{}: adding a controller later moves the NICs to new PCI slots and resets the network connections",
                node.name(),
                if have == 1 { "" } else { "s" }
            ),
            loc,
        )
        .with_help("create SCSI controller 1 before configuring AutoStart or networking, and write `scsiControllers: 2`")
        .about(Kind::Node, node.name().as_str());
        ctx.report(f);
    }
}
