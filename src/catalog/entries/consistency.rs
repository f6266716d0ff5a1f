//! asctl's own rules on addresses, placement, data source fields and timing (`rules::consistency`).

use crate::catalog::Origin::Asctl;

rules! {
    CONSISTENCY_FAMILY;
    MANAGED_IP_OUTSIDE_SUBNET = {
        id: "AS0301",
        name: "managed-ip-outside-subnet",
        severity: Error,
        title: "a managed IP is outside the subnet of its line",
        origin: Asctl,
        scope: Structural,
        fix: "use an address of the line's subnet, or the line whose subnet holds it",
        explanation: "A managed IP is added on the interface of its network line on the node that runs the group; an address outside the line's subnet is unreachable there.",
    }
    MANAGED_IP_LINE_UNREACHABLE = {
        id: "AS0302",
        name: "managed-ip-line-unreachable",
        severity: Error,
        title: "the line of a managed IP does not reach every preferred node of the group",
        origin: Asctl,
        scope: Structural,
        fix: "add the node to the line's members, or use a line every preferred node is on",
        explanation: "The group can fail over to any of its preferred nodes, and its managed IP moves with it: each preferred node must be a member of the IP's line, or the address cannot come online there.",
    }
    LINE_MEMBER_OUTSIDE_SUBNET = {
        id: "AS0303",
        name: "line-member-outside-subnet",
        severity: Error,
        title: "a node's address on a line is outside the line's subnet",
        origin: Asctl,
        scope: Structural,
        fix: "give the node an address of the line's subnet",
        explanation: "Each member of a network line has an address on the line's subnet; heartbeats and verification are sent there. An address outside the subnet is a typo or the wrong line.",
    }
    DUPLICATE_ADDRESS = {
        id: "AS0304",
        name: "duplicate-address",
        severity: Error,
        title: "an IP address is used twice",
        origin: Asctl,
        scope: Structural,
        fix: "give every node address and managed IP its own address",
        explanation: "Node addresses on the lines and managed IP addresses of the groups must all be distinct: two users of one address answer each other's traffic. The finding points at the second use, with the first as a related location.",
    }
    DUPLICATE_PREFERRED_NODE = {
        id: "AS0305",
        name: "duplicate-preferred-node",
        severity: Error,
        title: "a node is listed twice in a group's preferred nodes",
        origin: Asctl,
        scope: Structural,
        fix: "list each node once, in failover order",
        explanation: "`preferredNodes` is the failover order; a node listed twice makes the order ambiguous (and often hides a typo for another node).",
    }
    NODE_PLACEMENT = {
        id: "AS0306",
        name: "node-placement",
        severity: Error,
        title: "a node is neither a VM (`host:`) nor physical, or both",
        origin: Asctl,
        scope: Structural,
        fix: "give exactly one of `host: <Host>` or `physical: true`",
        explanation: "Support depends on whether a node is a VM and on which host (the topology of the seed's tables), so every node says exactly one of the two.",
    }
    DATA_SOURCE_FIELD_MISSING = {
        id: "AS0307",
        name: "data-source-field-missing",
        severity: Error,
        title: "a data source lacks a field its type needs",
        origin: Asctl,
        scope: Structural,
        fix: "add the field the message names",
        explanation: "Each data source type needs its own fields: `device` for every type with a disk of its own (all but networkShare, composite and mountPoint), `on` and `path` for a mountPoint, `share` for a networkShare. (A composite's `members` are checked by `composite-too-few-members`.)",
    }
    DATA_SOURCE_FIELD_UNUSED = {
        id: "AS0308",
        name: "data-source-field-unused",
        severity: Error,
        title: "a data source has a field its type does not use",
        origin: Asctl,
        scope: Structural,
        fix: "remove the field, or correct `type`",
        explanation: "Fields of another type (`device` on a networkShare, `members` on a sharedDisk, `pairedWith` on mirroring, ...) would be silently ignored; like unknown fields they are errors, since they usually mean a wrong `type`.",
    }
    VMFS_DATA_SOURCE_BACKING = {
        id: "AS0309",
        name: "vmfs-data-source-backing",
        severity: Error,
        title: "a vmfs data source's device is not on VMFS",
        origin: Asctl,
        scope: Structural,
        fix: "write `backing: vmfs`, or use a sharedDisk for an RDM device",
        explanation: "The VMFS data source adds and removes virtual disks of a VMFS volume through VirtualCenter; an RDM device is not one.",
    }
    TWO_NODE_SPLIT_BRAIN = {
        id: "AS0310",
        name: "two-node-split-brain",
        severity: Warning,
        title: "a two-node domain without witness can split brain",
        origin: Asctl,
        scope: Structural,
        fix: "add a `witness`, or give both nodes a verification line and isolation addresses with `response: offline`",
        explanation: "When the two nodes of a two-node domain lose sight of each other, neither has a majority. Without a witness, only the verification line and the isolation addresses (with the response `offline`) keep a node that is cut off from bringing a group online while the other still runs it. The warning names what is missing.",
    }
    HEARTBEAT_TIMING = {
        id: "AS0311",
        name: "heartbeat-timing",
        severity: Error,
        title: "the heartbeat timeout is not longer than the interval (or the interval is 0)",
        origin: Asctl,
        scope: Structural,
        fix: "make `heartbeat.timeout` several intervals long (the defaults: `interval: 250ms`, `timeout: 1s`)",
        explanation: "Nodes send a heartbeat on every domain line each `interval`; a peer silent on every line for `timeout` is suspected. With a timeout no longer than the interval, a healthy peer is silent for a whole timeout between two of its heartbeats and would be suspected at every beat; an interval of 0 would send heartbeats without pause. The finding points at the timeout (or the interval when only that is written).",
    }
    OS_NOT_GIVEN = {
        id: "AS0312",
        name: "os-not-given",
        severity: Warning,
        title: "a node does not give its OS, so the rules about its OS cannot be checked",
        origin: Asctl,
        scope: Structural,
        fix: "give the node's `os: {name, bits}` (and `platform`)",
        explanation: "The seed's guest OS rules (`guest-os`, `guest-os-platform`), its module rules (`module-word-size`: Exchange 2003 on 32-bit Windows only, Exchange 2007 on 64-bit only) and the Windows-only resources (`windows-only-resource`: modules and node aliases) are checked against each node's `os`. A node without `os` would pass all of them silently. Under a VMware profile every node without `os` is reported; under every profile (Windows-only resources are not a VMware matter), so is a group with a module or a node alias whose preferred nodes include one without `os`, at the module or alias.",
    }
    NODE_NICS = {
        id: "AS0313",
        name: "node-nics",
        severity: Warning,
        title: "a node is on more network lines than it has NICs",
        origin: Asctl,
        scope: Structural,
        fix: "give the node one network adapter per line (`nics`), or take it off a line",
        explanation: "Several network lines protect a domain only when they fail independently: each line needs its own network adapter on the node (the seed counts three adapters for two domain lines and a verification line). A node on more lines than its `nics` shares an adapter between lines, which then fail together. `nics` counts the adapters the node sees: NIC teaming in the hypervisor (`nicTeaming: hypervisor`) is below them and changes nothing; teaming in the guest (`nicTeaming: guest`, itself unsupported under the seed) groups \"one or more NICs\" into an interface, so the node still has at most `nics` interfaces and is judged the same way. A node that does not give `nics` is not judged.",
    }
}
