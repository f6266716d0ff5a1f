//! MirrorView/SRDF pairing (`rules::replication`).

use crate::catalog::Origin::Seed;

rules! {
    REPLICATION_FAMILY;
    REPLICATION_PAIRING = {
        id: "AS0212",
        name: "replication-pairing",
        severity: Error,
        title: "MirrorView/SRDF not combined with the data source its mode needs",
        origin: Seed("MirrorView; SRDF"),
        scope: Structural,
        fix: "RDM mode: `pairedWith:` a sharedDisk data source on the RDM device; VMFS mode: `pairedWith:` a vmfs data source",
        explanation: "In RDM mode the MirrorView and SRDF data sources are used in combination with a Shared Disk data source to support local and remote failovers; in VMFS mode, with the VMFS data source, which adds and removes the virtual disks through VirtualCenter when the group goes online or offline. `pairedWith` names that data source. In RDM mode the shared disk is the replicated LUN mapped to the VMs as an RDM, so its device must be an RDM too: a shared disk on a VMFS virtual disk is not that LUN. (A VMFS data source on an RDM is `vmfs-data-source-backing`; a group must also use the partner: `replication-partner-in-group`.)",
    }
    REPLICATION_PARTNER_IN_GROUP = {
        id: "AS0226",
        name: "replication-partner-in-group",
        severity: Error,
        title: "a group uses MirrorView/SRDF without the data source it is combined with",
        origin: Seed("MirrorView; SRDF"),
        scope: Structural,
        fix: "add the `pairedWith` data source to the group's `dataSources`",
        explanation: "In RDM mode the MirrorView and SRDF data sources are used in combination with the Shared Disk data source, in VMFS mode with the VMFS data source, which adds and removes the virtual disks of a VM when the resource group is brought online or offline: the two work together, in the group. So a group that lists a MirrorView or SRDF data source also uses its `pairedWith` data source (listed directly or in a composite); it is then brought online with the group and judged like any of its data sources — the seed's tables (Table 3 for a shared disk) for the group's pairs of nodes, SCSI bus sharing, sharing within and across hosts, VMotion.",
    }
}
