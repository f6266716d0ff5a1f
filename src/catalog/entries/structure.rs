//! Names and references across documents (`rules::structure`).

use crate::catalog::Origin::Asctl;

rules! {
    STRUCTURE_FAMILY;
    DUPLICATE_NAME = {
        id: "AS0012",
        name: "duplicate-name",
        severity: Error,
        title: "two objects of the same kind have the same name",
        origin: Asctl,
        scope: Structural,
        fix: "rename one of the two objects (names are unique per kind across all files)",
        explanation: "Objects refer to each other by name, so a name must designate one object. The finding points at the second definition, with the first as a related location.",
    }
    DOMAIN_COUNT = {
        id: "AS0013",
        name: "domain-count",
        severity: Error,
        title: "a domain has more than one Domain document",
        origin: Asctl,
        scope: Structural,
        fix: "keep one `kind: Domain` document per domain directory; put another domain in a directory of its own",
        explanation: "The directory of a file holding a `Domain` document roots a domain: every file below it, down to the next such directory, belongs to that domain. Two Domain documents in one directory make it unclear which settings (heartbeats, isolation, qualification) apply. Files under no Domain are not an error: each is checked alone, as far as a file alone can be; `plan` and `apply` refuse them, since they need a domain.",
    }
    DANGLING_REFERENCE = {
        id: "AS0014",
        name: "dangling-reference",
        severity: Error,
        title: "a reference names an object that does not exist",
        origin: Asctl,
        scope: Structural,
        fix: "define the object, or correct the name",
        explanation: "References between objects are by name (a node's `host`, a group's `preferredNodes`, `dataSources`, an IP's `line`, a data source's `on`, `pairedWith` and `members`). The finding points at the referring value and suggests the closest existing name.",
    }
}
