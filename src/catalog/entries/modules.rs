//! Module word size and Windows-only resources (`rules::modules`).

use crate::catalog::Origin::Seed;

rules! {
    MODULES_FAMILY;
    MODULE_WORD_SIZE = {
        id: "AS0204",
        name: "module-word-size",
        severity: Error,
        title: "a module runs on a node whose OS word size it does not support",
        origin: Seed("AutoStart modules"),
        scope: Qualification,
        fix: "run the group on nodes with the module's word size (Exchange 2003: 32-bit; Exchange 2007: 64-bit)",
        explanation: "The AutoStart modules are SQL Server 2005, SQL Server 2008, Exchange 2003 (32-bit Windows only), Exchange 2007 (64-bit Windows only), Oracle and Print Services. A group with a module can fail over to any of its preferred nodes, so every one of them must run an OS the module supports.",
    }
    WINDOWS_ONLY = {
        id: "AS0205",
        name: "windows-only-resource",
        severity: Error,
        title: "a Windows module or node alias on a node that does not run Windows",
        origin: Seed("AutoStart modules; Network redundancy"),
        scope: Structural,
        fix: "run the group on Windows nodes only, or use processes and a managed IP instead",
        explanation: "AutoStart's application modules are provided for Windows, and a node alias is a Windows (NetBIOS) name. A group that has one cannot be brought online on a node running another OS; every preferred node must run Windows. Applies in every profile: it is a property of the resources, not of VMware.",
    }
}
