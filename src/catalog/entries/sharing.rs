//! Shared disks, mount points and SCSI bus sharing (`rules::sharing`).

use crate::catalog::Origin::Seed;

rules! {
    SHARING_FAMILY;
    MOUNT_POINT_ON_SHARED_DISK = {
        id: "AS0208",
        name: "mount-point-on-shared-disk",
        severity: Error,
        title: "a mount point is not on a shared disk",
        origin: Seed("Mount Point"),
        scope: Structural,
        fix: "set the mount point's `on:` to a data source of `type: sharedDisk`",
        explanation: "The prerequisite for creating a mount point is a shared disk; the mount point behaves exactly like the shared disk and is judged with its backing (Table 4).",
    }
    SHARED_DISK_MIXED_TOPOLOGY = {
        id: "AS0209",
        name: "shared-disk-mixed-topology",
        severity: Error,
        title: "a shared disk is shared within one host and across hosts at the same time",
        origin: Seed("Shared Disk"),
        scope: Qualification,
        fix: "use one disk for the VMs of one host (bus sharing virtual) and another for sharing across hosts (bus sharing physical)",
        explanation: "Table 3 supports shared disks between VMs of one ESX Server and between VMs of different ESX Servers, but \"a given device cannot be configured to be shared between two virtual machines on an ESX Server and between virtual machines across ESX Servers at the same time\": the SCSI controller's bus sharing is `virtual` for the first and `physical` for the second. A disk is one device whichever groups use it: asctl takes the union of the preferred nodes of every group that uses the disk (directly, through a mount point or a composite, to any depth) and judges every pair of that union, so two groups that each keep to one kind of sharing still share the disk both ways when their nodes together do. Sharing with a physical machine counts as sharing across hosts.",
    }
    VMFS_SHARED_DISK_THICK = {
        id: "AS0210",
        name: "vmfs-shared-disk-thick",
        severity: Error,
        title: "a shared VMFS disk is thin-provisioned",
        origin: Seed("Shared Disk"),
        scope: Qualification,
        fix: "create the disk with the \"thick\" option and write `provisioning: thick`",
        explanation: "A shared disk on a VMFS volume is created from the command line with the \"thick\" option, whether it is shared within one host or across hosts. A thin disk cannot be shared between VMs.",
    }
    SCSI_BUS_SHARING = {
        id: "AS0211",
        name: "scsi-bus-sharing",
        severity: Error,
        title: "a shared disk's SCSI bus sharing does not match how it is shared",
        origin: Seed("Shared Disk"),
        scope: Qualification,
        fix: "`scsiBusSharing: virtual` for VMs of one host; `physical` across hosts or with a physical machine",
        explanation: "To share a disk between VMs on a single ESX Server, the SCSI Bus Sharing of its controller is set to Virtual; across ESX Servers (and with a physical machine) it is set to Physical. Unset means VMware's default, `none`, which shares nothing. How a disk is shared is judged over the union of the preferred nodes of every group that uses it (as for `shared-disk-mixed-topology`): a group on one VM that shares the disk with another group's VM on another host shares it across hosts.",
    }
}
