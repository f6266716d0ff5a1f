//! VMotion (`rules::vmotion`).

use crate::catalog::Origin::Seed;

rules! {
    VMOTION_FAMILY;
    VMOTION_SHARED_STORAGE = {
        id: "AS0215",
        name: "vmotion-shared-storage",
        severity: Error,
        title: "VMotion enabled on a VM that uses shared storage",
        origin: Seed("VMware caveats: VMotion"),
        scope: Qualification,
        fix: "set `vmotion: false` on VMs whose groups use shared disks",
        explanation: "VMware does not allow VMotion when the VM has storage shared with other VMs: the SCSI bus sharing of its controller must be `none`. So a VM whose groups use a Shared Disk data source (directly, through a mount point or a composite) or any device on a shared SCSI bus cannot have VMotion enabled.",
    }
    VMOTION_ACROSS_DATACENTERS = {
        id: "AS0216",
        name: "vmotion-across-datacenters",
        severity: Error,
        title: "a VMotion target host is in another datacenter",
        origin: Seed("VMware VMotion"),
        scope: Qualification,
        fix: "list only hosts of the VM's datacenter in `vmotion`",
        explanation: "VMotion cannot migrate VMs across datacenters. When `vmotion` lists target hosts, each must be in the datacenter of the VM's host (when both datacenters are given).",
    }
}
