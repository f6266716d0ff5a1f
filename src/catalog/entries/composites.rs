//! Composite data sources (`rules::composites`).

use crate::catalog::Origin::Seed;

rules! {
    COMPOSITES_FAMILY;
    COMPOSITE_MEMBER_TYPE = {
        id: "AS0213",
        name: "composite-member-type",
        severity: Error,
        title: "a composite groups a data source type it cannot contain",
        origin: Seed("Composite"),
        scope: Structural,
        fix: "put only mirroring, sharedDisk, repliStor and vxvm data sources in a composite",
        explanation: "A composite data source can contain four types of data sources: EMC Mirroring, Shared Disk, RepliStor and Veritas Volume Manager. Its support in each configuration is the intersection of its members' (checked by `matrix-unsupported`).",
    }
    COMPOSITE_TOO_FEW_MEMBERS = {
        id: "AS0214",
        name: "composite-too-few-members",
        severity: Error,
        title: "a composite groups fewer than two data sources",
        origin: Seed("Composite"),
        scope: Structural,
        fix: "list two or more `members`, or use the single data source directly",
        explanation: "The Composite data source groups two or more individual data sources into one.",
    }
}
