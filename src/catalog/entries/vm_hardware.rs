//! PCI slots and SCSI controllers of a VM (`rules::vm_hardware`).

use crate::catalog::Origin::Seed;

rules! {
    VM_HARDWARE_FAMILY;
    PCI_SLOTS = {
        id: "AS0224",
        name: "pci-slots",
        severity: Error,
        title: "a VM has more NICs and SCSI controllers than PCI slots",
        origin: Seed("Virtual machine network configuration"),
        scope: Qualification,
        fix: "3 NICs and 2 SCSI controllers fill the 5 PCI slots of a VM",
        explanation: "Each VM has five PCI slots by default (`pciSlots`); each network adapter and each SCSI controller takes one. An AutoStart node typically uses three for network adapters and two for SCSI controllers. An unset `scsiControllers` counts as one (SCSI 0, which holds the boot disk, always exists), as for `scsi-controllers`.",
    }
    SCSI_CONTROLLERS = {
        id: "AS0225",
        name: "scsi-controllers",
        severity: Warning,
        title: "a VM with data source disks has fewer than two SCSI controllers",
        origin: Seed("VMware caveats: Network connection loss"),
        scope: Qualification,
        fix: "create SCSI controller 1 before configuring AutoStart or networking, and write `scsiControllers: 2`",
        explanation: "Adding a virtual SCSI controller pushes the virtual Ethernet controllers to new PCI slots: the primary network interface is deleted and a new one added, and the network connections are reset (VMware KB 1513). An AutoStart node uses SCSI 0 (created with the boot disk) and SCSI 1; the workaround is to create SCSI 1 before AutoStart or networking is configured. asctl warns for a VM whose groups use a data source with a disk (anything but a network share) and that declares fewer than two controllers (unset counts as one, SCSI 0).",
    }
}
