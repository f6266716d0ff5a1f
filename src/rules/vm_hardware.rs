//! Rules about a VM's virtual hardware (AS02xx): NICs and SCSI controllers
//! within the PCI slots, and the second SCSI controller created up front.
//!
//! Limits come from the profile in force, so that a later qualification
//! changes data, not these checks.

use super::Ctx;
use super::profile::Profile;
use super::topology;
use crate::catalog as cat;
use crate::diag::Finding;
use crate::model::{Kind, NodeSpec};

pub(super) fn pci_and_scsi(ctx: &mut Ctx, profile: &Profile) {
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
