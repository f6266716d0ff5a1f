//! Guest operating systems (`rules::guest_os`).

use crate::catalog::Origin::Seed;

rules! {
    GUEST_OS_FAMILY;
    GUEST_OS = {
        id: "AS0202",
        name: "guest-os",
        severity: Error,
        title: "the VM's guest OS is not supported",
        origin: Seed("Supported ESX Server"),
        scope: Qualification,
        fix: "run Windows 2003 or Windows 2008 in the VM",
        explanation: "The supported guest operating systems are Windows 2003 and Windows 2008 (32-bit on x86 and x64, 64-bit on x64). The rule applies to VMs (nodes with `host:`); physical nodes are outside the seed's guest OS list.",
    }
    GUEST_OS_PLATFORM = {
        id: "AS0203",
        name: "guest-os-platform",
        severity: Error,
        title: "a 64-bit OS on the x86 platform",
        origin: Seed("Supported ESX Server"),
        scope: Qualification,
        fix: "use `platform: x64`, or a 32-bit OS",
        explanation: "32-bit Windows is supported on x86 and x64 platforms, 64-bit Windows only on x64.",
    }
}
