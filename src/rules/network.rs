//! Rules about the network (AS02xx): NIC teaming in the guest, the domain
//! and verification lines per node, multicast heartbeats, isolation
//! addresses (present, and external), and NICs per host.
//!
//! Limits come from the profile in force, so that a later qualification
//! changes data, not these checks.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::Ctx;
use super::profile::Profile;
use crate::catalog as cat;
use crate::diag::Finding;
use crate::model::{DocId, DomainSpec, Kind, LineRole, NicTeaming, Object};

pub(super) fn nic_teaming(ctx: &mut Ctx) {
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

pub(super) fn network(ctx: &mut Ctx, profile: &Profile) {
    lines_per_node(ctx, profile);
    let cfg = ctx.config;
    let Some(domain) = &cfg.domain else { return };
    multicast_heartbeat(ctx, domain);
    isolation_addresses(ctx, domain);
    nics_per_host(ctx, profile);
}

/// Each node on the profile's minimum of domain and verification lines.
fn lines_per_node(ctx: &mut Ctx, profile: &Profile) {
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
}

/// The domain's heartbeats sent by multicast.
fn multicast_heartbeat(ctx: &mut Ctx, domain: &Object<DomainSpec>) {
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
}

/// The domain names isolation addresses at all (whether they are external:
/// [`isolation_not_external`]).
fn isolation_addresses(ctx: &mut Ctx, domain: &Object<DomainSpec>) {
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
}

/// Each host with a known NIC count has the profile's minimum.
fn nics_per_host(ctx: &mut Ctx, profile: &Profile) {
    let cfg = ctx.config;
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

/// Isolation addresses that belong to the domain itself. A node pings its
/// isolation addresses to tell "I am cut off" from "the others are down";
/// the virtual switch of an ESX host keeps the VMs of that host reachable
/// from each other when every external line is down, so an address of the
/// domain (a node's own address on a line, or a managed address that moves
/// with a group onto a node) may still answer an isolated node. Only an
/// address outside the domain tells it the truth.
pub(super) fn isolation_not_external(ctx: &mut Ctx) {
    let cfg = ctx.config;
    let Some(domain) = &cfg.domain else { return };
    let Some(isolation) = &domain.spec.isolation else {
        return;
    };
    // Every address of the domain, first use first: the document and
    // pointer where it is written (located only for a finding: locating
    // reads the file's spans again), and how to name it.
    let wanted: HashSet<&IpAddr> = isolation.addresses.iter().collect();
    let mut own: HashMap<IpAddr, (DocId, String, String)> = HashMap::new();
    for line in &cfg.lines {
        for (node, ip) in line
            .spec
            .members
            .iter()
            .filter(|(_, ip)| wanted.contains(ip))
        {
            own.entry(*ip).or_insert_with(|| {
                (
                    line.doc,
                    format!("/spec/members/{node}"),
                    format!("node `{node}`'s own address on line `{}`", line.name()),
                )
            });
        }
    }
    for group in &cfg.groups {
        for (i, ip) in group.spec.ip_addresses.iter().enumerate() {
            if !wanted.contains(&ip.address.addr()) {
                continue;
            }
            own.entry(ip.address.addr()).or_insert_with(|| {
                (
                    group.doc,
                    format!("/spec/ipAddresses/{i}/address"),
                    format!("a managed address of group `{}`", group.name()),
                )
            });
        }
    }
    for (i, ip) in isolation.addresses.iter().enumerate() {
        let Some((doc, pointer, what)) = own.get(ip) else {
            continue;
        };
        let f = Finding::new(
            &cat::ISOLATION_ADDRESS_NOT_EXTERNAL,
            format!(
                "isolation address {ip} is {what}: isolation addresses should be external to the domain"
            ),
            ctx.at(domain.doc, &format!("/spec/isolation/addresses/{i}")),
        )
        .with_related(ctx.at(*doc, pointer), format!("{ip} is {what}"))
        .with_help("use an address outside the domain that every node reaches through its lines, e.g. a line's default gateway")
        .about(Kind::Domain, domain.name().as_str());
        ctx.report(f);
    }
}
