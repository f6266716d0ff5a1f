//! Qualified hypervisor versions, VMware HA, cluster in a box (`rules::hypervisor`).

use crate::catalog::Origin::Seed;

rules! {
    HYPERVISOR_FAMILY;
    HYPERVISOR_VERSION = {
        id: "AS0201",
        name: "hypervisor-version",
        severity: Error,
        title: "the host's hypervisor version is not qualified",
        origin: Seed("Supported ESX Server"),
        scope: Qualification,
        fix: "run a qualified version: ESX Server 3.0.x, 3.5, 4.0 or 3i",
        explanation: "AutoStart has been qualified with VMware ESX Server 3.0.x, 3.5, 4.0 and 3i. A maintenance release of a qualified version (`3.0.2`, `3.5u4`, `4.0.1`) is accepted; any other version is not qualified.",
    }
    VMWARE_HA = {
        id: "AS0218",
        name: "vmware-ha",
        severity: Warning,
        title: "VMware HA is enabled on a host of a node",
        origin: Seed("VMware HA"),
        scope: Qualification,
        fix: "disable VMware HA for the AutoStart VMs, or accept the warning with a reason",
        explanation: "AutoStart has not been qualified to work with VMware HA. Both would restart the application after a failure, without knowing of each other.",
    }
    CLUSTER_IN_A_BOX = {
        id: "AS0219",
        name: "cluster-in-a-box",
        severity: Warning,
        title: "every preferred node of a group is a VM on the same host",
        origin: Seed("Cluster in a Box"),
        scope: Qualification,
        fix: "add a preferred node on another host or a physical machine, or accept the warning",
        explanation: "A Cluster in a Box protects against failures of the operating system or the application but provides no protection against hardware failures: when the host fails, every node of the group fails with it. A supported configuration; the warning makes the limit visible. Accept it (`Domain.spec.accept`) when it is what you want.",
    }
}
