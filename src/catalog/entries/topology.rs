//! The seed's support tables (`rules::topology`).

use crate::catalog::Origin::Seed;

rules! {
    TOPOLOGY_FAMILY;
    MATRIX_UNSUPPORTED = {
        id: "AS0101",
        name: "matrix-unsupported",
        severity: Error,
        title: "the seed's table says `no` for this resource, backing and pair of nodes",
        origin: Seed("Tables 1–10"),
        scope: Qualification,
        fix: "use a backing the table supports for this pair of nodes, another data source type, or other preferred nodes",
        explanation: "Tables 1–10 of the seed say, for each data source type (and for managed IPs and node aliases), which device backings (VMFS, RDM physical mode, RDM virtual mode) are supported for each kind of failover: between two VMs of one host, between VMs of different hosts, and between a physical machine and a VM. For each resource group, asctl classifies every pair of its preferred nodes and looks up every data source of the group (with its device's backing; a mount point with the backing of its shared disk; a composite with each member's, support being the intersection of the members') in the table. Pairs of two physical machines are outside the VMware tables and are not judged. The finding names the pair, the backing, the table and the cell, and points at the data source in the group; `asctl matrix` prints the tables.",
    }
    MATRIX_NOT_APPLICABLE = {
        id: "AS0102",
        name: "matrix-not-applicable",
        severity: Error,
        title: "the seed's table says `NA`: this configuration cannot exist",
        origin: Seed("Tables 5, 6"),
        scope: Qualification,
        fix: "array replication needs two arrays: keep MirrorView/SRDF groups off pairs of VMs of one host (use a shared disk between them)",
        explanation: "MirrorView (Table 5) and SRDF (Table 6) replicate a LUN from one storage array to another. Between two VMs of the same ESX Server both see the same array, so there is nothing to replicate between: the seed marks these cells `NA`. asctl reports a group whose preferred nodes include two VMs of one host and which uses such a data source, with its own message because the configuration is not merely unqualified but meaningless.",
    }
}
