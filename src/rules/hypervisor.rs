//! Rules about the hypervisor hosts (AS02xx): the qualified hypervisor
//! versions, VMware HA on a host that runs nodes, and a group whose nodes
//! all sit on one host (cluster in a box).
//!
//! Limits come from the profile in force, so that a later qualification
//! changes data, not these checks.

use super::Ctx;
use super::profile::Profile;
use super::topology;
use crate::catalog as cat;
use crate::diag::Finding;
use crate::model::{Kind, NodeSpec, Object};

pub(super) fn hypervisor_versions(ctx: &mut Ctx, profile: &Profile) {
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

pub(super) fn vmware_ha(ctx: &mut Ctx) {
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

pub(super) fn cluster_in_a_box(ctx: &mut Ctx) {
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
