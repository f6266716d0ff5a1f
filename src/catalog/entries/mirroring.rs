//! Host-based mirroring (`rules::mirroring`).

use crate::catalog::Origin::Seed;

rules! {
    MIRRORING_FAMILY;
    MIRRORING_ASYNC = {
        id: "AS0206",
        name: "mirroring-async",
        severity: Error,
        title: "EMC Mirroring set to asynchronous",
        origin: Seed("EMC Mirroring"),
        scope: Structural,
        fix: "remove `mode` (mirroring is synchronous), or use repliStor for asynchronous replication",
        explanation: "The EMC Mirroring data source provides synchronous volume-level mirroring. `mode: async` describes something it does not do.",
    }
    MIRRORING_TWO_NODES = {
        id: "AS0207",
        name: "mirroring-two-nodes",
        severity: Error,
        title: "a mirror is used on other than exactly two nodes",
        origin: Seed("EMC Mirroring"),
        scope: Structural,
        fix: "let the groups that use the mirror have exactly two preferred nodes between them",
        explanation: "\"Mirroring is synchronous and is supported only between two nodes\": the two copies of the volume live on the two nodes. A mirror is one volume whichever groups use it, so asctl takes the union of the preferred nodes of every group that uses the mirroring data source (directly or in a composite) and requires exactly two distinct nodes: two groups of two nodes each that share one node put the mirror on three nodes. The finding points at the group's reference that brings the third node (or, with a single node, at the first reference). A group with a node that was dropped (it failed the schema) or that is elsewhere (a file checked alone) leaves the union unknown, and the mirror is not judged.",
    }
}
