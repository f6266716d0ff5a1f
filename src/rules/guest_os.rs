//! Rules about the guest operating system (AS02xx): the supported guest
//! systems of the profile in force, and 64-bit Windows on x64 only.
//!
//! Limits come from the profile in force, so that a later qualification
//! changes data, not these checks.

use super::Ctx;
use super::profile::Profile;
use crate::catalog as cat;
use crate::diag::Finding;
use crate::model::{Kind, OsName, Platform};

pub(super) fn guest_os(ctx: &mut Ctx, profile: &Profile) {
    for node in &ctx.config.nodes {
        let Some(os) = &node.spec.os else { continue };
        if node.spec.is_vm() && !profile.guest_os.is_empty() && !profile.guest_os.contains(&os.name)
        {
            let allowed: Vec<String> = profile.guest_os.iter().map(|o| os_label(*o)).collect();
            let f = Finding::new(
                &cat::GUEST_OS,
                format!(
                    "VM `{}` runs {}, which is not a supported guest OS",
                    node.name(),
                    os_label(os.name)
                ),
                ctx.at(node.doc, "/spec/os/name"),
            )
            .with_help(format!("supported guest OS: {}", allowed.join(", ")))
            .about(Kind::Node, node.name().as_str());
            ctx.report(f);
        }
        if os.bits.get() == 64 && node.spec.platform == Some(Platform::X86) {
            let f = Finding::new(
                &cat::GUEST_OS_PLATFORM,
                format!(
                    "node `{}` runs a 64-bit OS on the x86 platform: 64-bit Windows is supported on x64 only",
                    node.name()
                ),
                ctx.at(node.doc, "/spec/os/bits"),
            )
            .with_related(ctx.at(node.doc, "/spec/platform"), "the platform is x86")
            .with_help("use `platform: x64`, or a 32-bit OS")
            .about(Kind::Node, node.name().as_str());
            ctx.report(f);
        }
    }
}

pub(super) fn os_label(os: OsName) -> String {
    serde_json::to_value(os)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
