//! asctl's own rules (AS03xx): what must hold for a domain to work at all,
//! whatever the qualification — addresses, node placement, the fields each
//! data source type needs, split brain.

use foldhash::HashMap;
use std::net::IpAddr;

use super::Ctx;
use super::profile;
use super::topology;
use crate::catalog as cat;
use crate::diag::{Finding, Location};
use crate::model::{
    Backing, DataSourceSpec, DataSourceType, Kind, LineRole, Name, NetworkLineSpec, NicTeaming,
    Object, ResourceGroupSpec,
};

pub fn check(ctx: &mut Ctx) {
    managed_ips(ctx);
    line_members(ctx);
    duplicate_addresses(ctx);
    preferred_nodes(ctx);
    node_placement(ctx);
    data_source_fields(ctx);
    split_brain(ctx);
    heartbeat_timing(ctx);
    os_not_given(ctx);
    node_nics(ctx);
}

fn managed_ips(ctx: &mut Ctx) {
    let cfg = ctx.config;
    for group in &cfg.groups {
        for (i, ip) in group.spec.ip_addresses.iter().enumerate() {
            let Some(line) = cfg.lines.get(ip.line.as_str()) else {
                continue;
            };
            if !line.spec.subnet.contains(&ip.address.addr()) {
                let f = Finding::new(
                    &cat::MANAGED_IP_OUTSIDE_SUBNET,
                    format!(
                        "managed IP {} is outside subnet {} of line `{}`",
                        ip.address.addr(),
                        line.spec.subnet,
                        line.name()
                    ),
                    ctx.at(group.doc, &format!("/spec/ipAddresses/{i}/address")),
                )
                .with_related(ctx.at(line.doc, "/spec/subnet"), "the line's subnet")
                .with_help("use an address of the line's subnet, or the line whose subnet holds it")
                .about(Kind::ResourceGroup, group.name().as_str())
                .about(Kind::NetworkLine, line.name().as_str());
                ctx.report(f);
            }
            let mut missing: Vec<&Name> = Vec::new();
            for n in &group.spec.preferred_nodes {
                if cfg.nodes.get(n.as_str()).is_some()
                    && !line.spec.members.contains_key(n)
                    && !missing.contains(&n)
                {
                    missing.push(n);
                }
            }
            if missing.is_empty() {
                continue;
            }
            let names: Vec<String> = missing.iter().map(|n| format!("`{n}`")).collect();
            let mut f = Finding::new(
                &cat::MANAGED_IP_LINE_UNREACHABLE,
                format!(
                    "line `{}` of managed IP {} does not reach preferred node {}: the address cannot come online there",
                    line.name(),
                    ip.address.addr(),
                    names.join(", ")
                ),
                ctx.at(group.doc, &format!("/spec/ipAddresses/{i}/line")),
            )
            .with_related(ctx.at(line.doc, "/spec/members"), "the line's members")
            .with_help("add the nodes to the line's members, or use a line every preferred node is on")
            .about(Kind::ResourceGroup, group.name().as_str())
            .about(Kind::NetworkLine, line.name().as_str());
            for n in missing {
                f = f.about(Kind::Node, n.as_str());
            }
            ctx.report(f);
        }
    }
}

fn line_members(ctx: &mut Ctx) {
    for line in &ctx.config.lines {
        for (node, ip) in &line.spec.members {
            if line.spec.subnet.contains(ip) {
                continue;
            }
            let f = Finding::new(
                &cat::LINE_MEMBER_OUTSIDE_SUBNET,
                format!(
                    "node `{node}` has address {ip} on line `{}`, outside its subnet {}",
                    line.name(),
                    line.spec.subnet
                ),
                ctx.at(line.doc, &format!("/spec/members/{node}")),
            )
            .with_related(ctx.at(line.doc, "/spec/subnet"), "the line's subnet")
            .with_help("give the node an address of the line's subnet")
            .about(Kind::NetworkLine, line.name().as_str())
            .about(Kind::Node, node.as_str());
            ctx.report(f);
        }
    }
}

/// Where an address is used: a node's address on a line, or a managed IP.
#[derive(Clone, Copy)]
enum AddressUse<'a> {
    Member(&'a Object<NetworkLineSpec>, &'a Name),
    Managed(&'a Object<ResourceGroupSpec>, usize),
}

impl AddressUse<'_> {
    /// Located only for a finding: locating reads the file's spans again.
    fn at(&self, ctx: &Ctx) -> Option<Location> {
        match self {
            AddressUse::Member(line, node) => ctx.at(line.doc, &format!("/spec/members/{node}")),
            AddressUse::Managed(group, i) => {
                ctx.at(group.doc, &format!("/spec/ipAddresses/{i}/address"))
            }
        }
    }

    fn what(&self) -> String {
        match self {
            AddressUse::Member(line, node) => format!("node `{node}` on line `{}`", line.name()),
            AddressUse::Managed(group, _) => format!("a managed IP of group `{}`", group.name()),
        }
    }

    fn about(&self) -> (Kind, &str) {
        match self {
            AddressUse::Member(line, _) => (Kind::NetworkLine, line.name().as_str()),
            AddressUse::Managed(group, _) => (Kind::ResourceGroup, group.name().as_str()),
        }
    }
}

fn duplicate_addresses(ctx: &mut Ctx) {
    let cfg = ctx.config;
    // Line members first, then managed IPs, in document order.
    let members = cfg.lines.iter().flat_map(|line| {
        line.spec
            .members
            .iter()
            .map(move |(node, ip)| (*ip, AddressUse::Member(line, node)))
    });
    let managed = cfg.groups.iter().flat_map(|group| {
        group
            .spec
            .ip_addresses
            .iter()
            .enumerate()
            .map(move |(i, ip)| (ip.address.addr(), AddressUse::Managed(group, i)))
    });
    let addresses = cfg
        .lines
        .iter()
        .map(|l| l.spec.members.len())
        .sum::<usize>()
        + cfg
            .groups
            .iter()
            .map(|g| g.spec.ip_addresses.len())
            .sum::<usize>();
    let mut seen: HashMap<IpAddr, AddressUse> = HashMap::default();
    seen.reserve(addresses);
    let mut found = Vec::new();
    for (ip, use_) in members.chain(managed) {
        match seen.get(&ip) {
            Some(first) => found.push((ip, use_, *first)),
            None => {
                seen.insert(ip, use_);
            }
        }
    }
    for (ip, second, first) in found {
        let (what, first_what) = (second.what(), first.what());
        let (kind, name) = second.about();
        let f = Finding::new(
            &cat::DUPLICATE_ADDRESS,
            format!("address {ip} is used twice: by {what} and by {first_what}"),
            second.at(ctx),
        )
        .with_related(first.at(ctx), format!("first used by {first_what}"))
        .with_help("give every node address and managed IP its own address")
        .about(kind, name);
        ctx.report(f);
    }
}

fn preferred_nodes(ctx: &mut Ctx) {
    for group in &ctx.config.groups {
        let list = &group.spec.preferred_nodes;
        for (j, n) in list.iter().enumerate() {
            let Some(first) = list[..j].iter().position(|m| m == n) else {
                continue;
            };
            let f = Finding::new(
                &cat::DUPLICATE_PREFERRED_NODE,
                format!(
                    "node `{n}` is listed twice in the preferred nodes of group `{}`",
                    group.name()
                ),
                ctx.at(group.doc, &format!("/spec/preferredNodes/{j}")),
            )
            .with_related(
                ctx.at(group.doc, &format!("/spec/preferredNodes/{first}")),
                "first listed here",
            )
            .with_help("list each node once, in failover order")
            .about(Kind::ResourceGroup, group.name().as_str());
            ctx.report(f);
        }
    }
}

fn node_placement(ctx: &mut Ctx) {
    for node in &ctx.config.nodes {
        let (loc, message) = match (&node.spec.host, node.spec.physical) {
            (Some(h), true) => (
                ctx.at(node.doc, "/spec/physical"),
                format!(
                    "node `{}` is both a VM on host `{h}` and a physical machine",
                    node.name()
                ),
            ),
            (None, false) => (
                ctx.at_name(node),
                format!(
                    "node `{}` is neither a VM (`host:`) nor a physical machine (`physical: true`)",
                    node.name()
                ),
            ),
            _ => continue,
        };
        let f = Finding::new(&cat::NODE_PLACEMENT, message, loc)
            .with_help("give exactly one of `host: <Host>` or `physical: true`")
            .about(Kind::Node, node.name().as_str());
        ctx.report(f);
    }
}

fn data_source_fields(ctx: &mut Ctx) {
    let cfg = ctx.config;
    for ds in &cfg.data_sources {
        missing_fields(ctx, ds);
        unused_fields(ctx, ds);
        vmfs_backing(ctx, ds);
    }
}

/// Fields the data source's type needs and that are not there.
fn missing_fields(ctx: &mut Ctx, ds: &Object<DataSourceSpec>) {
    use DataSourceType as T;
    let s = &ds.spec;
    let t = s.kind;
    let mut missing: Vec<&str> = Vec::new();
    if t.needs_device() && s.device.is_none() {
        missing.push("device");
    }
    if t == T::MountPoint {
        if s.on.is_none() {
            missing.push("on");
        }
        if s.path.is_none() {
            missing.push("path");
        }
    }
    if t == T::NetworkShare && s.share.is_none() {
        missing.push("share");
    }
    if !missing.is_empty() {
        let fields: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
        let f = Finding::new(
            &cat::DATA_SOURCE_FIELD_MISSING,
            format!(
                "{t} data source `{}` needs {}",
                ds.name(),
                fields.join(" and ")
            ),
            ctx.at(ds.doc, "/spec/type"),
        )
        .with_help(match t {
            T::MountPoint => "a mount point needs `on: <shared disk>` and `path: <directory>`",
            T::NetworkShare => "write the share as `share: '\\\\server\\name'`",
            _ => "describe the disk: `device: {backing: vmfs | rdm-physical | rdm-virtual, ...}`",
        })
        .about(Kind::DataSource, ds.name().as_str());
        ctx.report(f);
    }
}

/// Fields that mean nothing for the data source's type.
fn unused_fields(ctx: &mut Ctx, ds: &Object<DataSourceSpec>) {
    use DataSourceType as T;
    let s = &ds.spec;
    let t = s.kind;
    let unused: [(&str, bool, &str); 8] = [
        (
            "device",
            s.device.is_some() && !t.needs_device(),
            "has no device of its own",
        ),
        (
            "on",
            s.on.is_some() && t != T::MountPoint,
            "is not a mount point",
        ),
        (
            "path",
            s.path.is_some() && t != T::MountPoint,
            "is not a mount point",
        ),
        (
            "fsType",
            s.fs_type.is_some() && t != T::MountPoint,
            "is not a mount point",
        ),
        (
            "members",
            !s.members.is_empty() && t != T::Composite,
            "is not a composite",
        ),
        (
            "share",
            s.share.is_some() && t != T::NetworkShare,
            "is not a network share",
        ),
        (
            "pairedWith",
            s.paired_with.is_some() && !matches!(t, T::MirrorView | T::Srdf),
            "is not MirrorView or SRDF",
        ),
        (
            "mode",
            s.mode.is_some() && !matches!(t, T::MirrorView | T::Srdf | T::Mirroring),
            "has no replication mode",
        ),
    ];
    for (field, present, why) in unused {
        if !present {
            continue;
        }
        let f = Finding::new(
            &cat::DATA_SOURCE_FIELD_UNUSED,
            format!(
                "`{field}` does not apply to {t} data source `{}`: a {t} {why}",
                ds.name()
            ),
            ctx.at_key(ds.doc, &format!("/spec/{field}")),
        )
        .with_help(format!("remove `{field}`, or correct `type`"))
        .about(Kind::DataSource, ds.name().as_str());
        ctx.report(f);
    }
}

fn vmfs_backing(ctx: &mut Ctx, ds: &Object<DataSourceSpec>) {
    use DataSourceType as T;
    let s = &ds.spec;
    let t = s.kind;
    if t == T::Vmfs
        && let Some(dev) = &s.device
        && dev.backing != Backing::Vmfs
    {
        let f = Finding::new(
            &cat::VMFS_DATA_SOURCE_BACKING,
            format!(
                "vmfs data source `{}` has a {} device: the VMFS data source manages virtual disks on a VMFS volume",
                ds.name(),
                dev.backing
            ),
            ctx.at(ds.doc, "/spec/device/backing"),
        )
        .with_help("write `backing: vmfs`, or use a sharedDisk data source for an RDM device")
        .about(Kind::DataSource, ds.name().as_str());
        ctx.report(f);
    }
}

fn split_brain(ctx: &mut Ctx) {
    let cfg = ctx.config;
    let Some(domain) = &cfg.domain else { return };
    let mut nodes: Vec<&Name> = cfg.nodes.iter().map(|n| n.name()).collect();
    nodes.sort();
    nodes.dedup();
    if nodes.len() != 2 || domain.spec.witness.is_some() {
        return;
    }
    let isolation = domain.spec.isolation.as_ref();
    let no_addresses = isolation.is_none_or(|i| i.addresses.is_empty());
    let keeps_running =
        isolation.is_some_and(|i| i.response == crate::model::IsolationResponse::None);
    let verified = cfg.lines.iter().any(|l| {
        l.spec.role == LineRole::Verification
            && cfg
                .nodes
                .iter()
                .all(|n| l.spec.members.contains_key(n.name()))
    });
    // Profiles that recommend isolation addresses and verification lines
    // warn about their absence themselves (`no-isolation-addresses`,
    // `network-lines`); only the isolation response is left to this rule.
    let recommended_elsewhere = profile::of(cfg).qualifies_vmware;
    let reason = if keeps_running {
        "an isolated node keeps its groups running (`isolation.response: none`)"
    } else if recommended_elsewhere {
        return;
    } else if no_addresses {
        "there are no isolation addresses"
    } else if !verified {
        "no verification line joins the two nodes"
    } else {
        return;
    };
    let loc = if keeps_running {
        ctx.at(domain.doc, "/spec/isolation/response")
    } else {
        ctx.at_name(domain)
    };
    let f = Finding::new(
        &cat::TWO_NODE_SPLIT_BRAIN,
        format!(
            "domain `{}` has two nodes and no witness, and {reason}: a network partition can bring a group online on both nodes",
            domain.name()
        ),
        loc,
    )
    .with_help("add `witness: <host:port>`, or give both nodes a verification line and isolation addresses with `response: offline`")
    .about(Kind::Domain, domain.name().as_str());
    ctx.report(f);
}

fn heartbeat_timing(ctx: &mut Ctx) {
    let Some(domain) = &ctx.config.domain else {
        return;
    };
    let hb = &domain.spec.heartbeat;
    let written = |field: &str| ctx.at(domain.doc, &format!("/spec/heartbeat/{field}"));
    let (loc, message) = if hb.interval.get().is_zero() {
        (
            written("interval"),
            "the heartbeat interval is 0: heartbeats would be sent without pause".to_owned(),
        )
    } else if hb.timeout <= hb.interval {
        (
            // Point at what was written: the timeout, else the interval.
            written("timeout")
                .or_else(|| written("interval"))
                .or_else(|| ctx.at(domain.doc, "/spec/heartbeat")),
            format!(
                "the heartbeat timeout ({}) is not longer than the interval ({}): a healthy peer is silent for a whole timeout between two heartbeats and would be suspected at every beat",
                hb.timeout, hb.interval
            ),
        )
    } else {
        return;
    };
    let mut f = Finding::new(&cat::HEARTBEAT_TIMING, message, loc)
        .with_help("make `timeout` several intervals long, e.g. `heartbeat: {interval: 250ms, timeout: 1s}`")
        .about(Kind::Domain, domain.name().as_str());
    if loc != written("interval") {
        f = f.with_related(written("interval"), "the interval");
    }
    ctx.report(f);
}

/// Nodes without `os`: the OS rules (guest OS, platform, module word size,
/// Windows-only resources) would pass them silently.
fn os_not_given(ctx: &mut Ctx) {
    let cfg = ctx.config;
    // The seed's OS rules exist only under a VMware profile (and without a
    // Domain the profile is unknown).
    if cfg.domain.is_some() && profile::of(cfg).qualifies_vmware {
        for node in cfg.nodes.iter().filter(|n| n.spec.os.is_none()) {
            let what = if node.spec.is_vm() { "VM" } else { "node" };
            let f = Finding::new(
                &cat::OS_NOT_GIVEN,
                format!(
                    "{what} `{}` does not give its OS: the seed's guest OS, platform and module rules cannot be checked for it",
                    node.name()
                ),
                ctx.at_name(node),
            )
            .with_help("add `os: {name: windows-2008, bits: 64}` (the guest OS and its word size) and `platform: x64`")
            .about(Kind::Node, node.name().as_str());
            ctx.report(f);
        }
    }
    // Windows-only resources (`windows-only-resource`) apply in every profile.
    for group in &cfg.groups {
        let unknown: Vec<_> = topology::preferred(ctx, group)
            .iter()
            .filter(|n| n.spec.os.is_none())
            .collect();
        if unknown.is_empty() {
            continue;
        }
        let mut what: Vec<(&str, String)> = Vec::new();
        if let Some(m) = &group.spec.module {
            what.push(("/spec/module/type", format!("module {}", m.kind.as_str())));
        }
        if let Some(alias) = &group.spec.node_alias {
            what.push(("/spec/nodeAlias", format!("node alias `{alias}`")));
        }
        let names: Vec<String> = unknown.iter().map(|n| format!("`{}`", n.name())).collect();
        let (nodes, verb) = if unknown.len() == 1 {
            (
                format!("preferred node {}", names[0]),
                "does not give its OS",
            )
        } else {
            (
                format!("preferred nodes {}", names.join(", ")),
                "do not give their OS",
            )
        };
        for (pointer, label) in what {
            let mut f = Finding::new(
                &cat::OS_NOT_GIVEN,
                format!(
                    "{label} of group `{}` needs Windows, but {nodes} {verb}: whether it can run there cannot be checked",
                    group.name()
                ),
                ctx.at(group.doc, pointer),
            )
            .with_help("give every preferred node its `os`, e.g. `os: {name: windows-2008, bits: 64}`")
            .about(Kind::ResourceGroup, group.name().as_str());
            for n in &unknown {
                f = f
                    .with_related(ctx.at_name(n), format!("`{}` has no `os`", n.name()))
                    .about(Kind::Node, n.name().as_str());
            }
            ctx.report(f);
        }
    }
}

/// A node on more network lines than it has NICs: lines that share an
/// adapter fail together. Nodes that do not give `nics` are not judged.
fn node_nics(ctx: &mut Ctx) {
    for node in &ctx.config.nodes {
        let Some(nics) = node.spec.nics else { continue };
        let lines = ctx.lines_of(node.name().as_str());
        // `nics` is the adapters the node sees. Teaming in the hypervisor is
        // below them and changes nothing; teaming in the guest groups "one or
        // more NICs" (seed, "Network redundancy") into an interface, so the
        // node has at most `nics` interfaces either way.
        if lines.len() <= nics as usize {
            continue;
        }
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let teamed = if node.spec.nic_teaming == NicTeaming::Guest {
            " (teamed in the guest: at most as many interfaces)"
        } else {
            ""
        };
        let mut f = Finding::new(
            &cat::NODE_NICS,
            format!(
                "node `{}` is on {} but has {}{teamed}: lines that share an adapter fail together, so they are not redundant",
                node.name(),
                plural(lines.len(), "network line"),
                plural(nics as usize, "NIC"),
            ),
            ctx.at(node.doc, "/spec/nics"),
        )
        .with_help(format!(
            "give the node one NIC per line (`nics: {}`), or take it off a line",
            lines.len()
        ))
        .about(Kind::Node, node.name().as_str());
        for l in lines {
            f = f
                .with_related(
                    ctx.at_key(l.doc, &format!("/spec/members/{}", node.name())),
                    format!("on line `{}`", l.name()),
                )
                .about(Kind::NetworkLine, l.name().as_str());
        }
        ctx.report(f);
    }
}
