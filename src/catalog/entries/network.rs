//! Network lines, heartbeat, isolation addresses and NICs (`rules::network`).

use crate::catalog::Origin::Seed;

rules! {
    NETWORK_FAMILY;
    GUEST_NIC_TEAMING = {
        id: "AS0217",
        name: "guest-nic-teaming",
        severity: Error,
        title: "NIC teaming in the guest OS",
        origin: Seed("Network redundancy"),
        scope: Qualification,
        fix: "team the NICs in ESX (`nicTeaming: hypervisor`), invisible to the guest",
        explanation: "NIC teaming at the ESX Server level is transparent to the guest OS and to AutoStart, and fine. NIC teaming at the operating system level is an unsupported configuration with AutoStart.",
    }
    NETWORK_LINES = {
        id: "AS0220",
        name: "network-lines",
        severity: Warning,
        title: "a node is on fewer than two domain lines or no verification line",
        origin: Seed("Virtual machine network configuration"),
        scope: Qualification,
        fix: "put every node on two `role: domain` lines and one `role: verification` line",
        explanation: "AutoStart recommends that every node be configured with at least three network lines: two domain lines, which carry the heartbeats, and one verification line.",
    }
    NO_MULTICAST_HEARTBEAT = {
        id: "AS0221",
        name: "no-multicast-heartbeat",
        severity: Warning,
        title: "heartbeats are not multicast",
        origin: Seed("Virtual machine network configuration"),
        scope: Qualification,
        fix: "set `heartbeat.multicast` to a multicast group, e.g. `239.192.0.1`",
        explanation: "The seed advises enabling multicast for the node heartbeats.",
    }
    NO_ISOLATION_ADDRESSES = {
        id: "AS0222",
        name: "no-isolation-addresses",
        severity: Warning,
        title: "the domain has no isolation addresses",
        origin: Seed("Virtual machine network configuration"),
        scope: Qualification,
        fix: "add external addresses (e.g. the default gateways) to `isolation.addresses`",
        explanation: "External IP addresses should be configured as isolation addresses: the virtual switch of an ESX Server keeps the VMs of one host reachable from each other even when the external lines are down, so only an address outside the host tells a node it is isolated.",
    }
    HOST_NICS = {
        id: "AS0223",
        name: "host-nics",
        severity: Warning,
        title: "a host has fewer than three network cards",
        origin: Seed("Virtual machine network configuration"),
        scope: Qualification,
        fix: "give the host at least three physical NICs",
        explanation: "An AutoStart node uses three network adapters (two domain lines, one verification line), so the seed recommends at least three network cards in the ESX Server host.",
    }
    ISOLATION_ADDRESS_NOT_EXTERNAL = {
        id: "AS0227",
        name: "isolation-address-not-external",
        severity: Warning,
        title: "an isolation address is an address of the domain itself",
        origin: Seed("Virtual machine network configuration"),
        scope: Qualification,
        fix: "use addresses outside the domain as isolation addresses, e.g. the lines' default gateways",
        explanation: "\"It is also recommended that external IP addresses be configured as the Isolation Addresses for the node. The virtual switch in ESX Server will make the nodes within the ESX Server box reachable even if external lines are down.\" A node that stops hearing the others pings its isolation addresses to tell whether it is cut off itself. An address of the domain — a node's own address on a network line, or a managed address of a group, which lives on whichever node runs the group — can still answer through the virtual switch of the node's own host when every external line is down, so the node wrongly concludes it is not isolated. asctl warns for each isolation address that is a line member's address or a group's managed address. (No isolation address at all is `no-isolation-addresses`.)",
    }
}
