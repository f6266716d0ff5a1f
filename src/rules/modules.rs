//! Rules about AutoStart modules and other Windows-only resources (AS02xx):
//! a module's word size, and a module or node alias on a non-Windows node.
//!
//! Limits come from the profile in force, so that a later qualification
//! changes data, not these checks.

use super::Ctx;
use super::guest_os::os_label;
use super::profile::Profile;
use super::topology;
use crate::catalog as cat;
use crate::diag::Finding;
use crate::model::Kind;

pub(super) fn modules(ctx: &mut Ctx, profile: &Profile) {
    for group in &ctx.config.groups {
        let Some(module) = &group.spec.module else {
            continue;
        };
        let Some(bits) = profile.module_support(module.kind).and_then(|m| m.bits) else {
            continue;
        };
        for node in topology::preferred(ctx, group) {
            let Some(os) = &node.spec.os else { continue };
            if os.bits == bits {
                continue;
            }
            let f = Finding::new(
                &cat::MODULE_WORD_SIZE,
                format!(
                    "module {} runs on {}-bit Windows only, but node `{}` runs a {}-bit OS",
                    module.kind.as_str(),
                    bits.get(),
                    node.name(),
                    os.bits.get()
                ),
                ctx.at(group.doc, "/spec/module/type"),
            )
            .with_related(
                ctx.at(node.doc, "/spec/os/bits"),
                format!("`{}` is {}-bit", node.name(), os.bits.get()),
            )
            .with_help(format!(
                "run the group on {}-bit Windows nodes only",
                bits.get()
            ))
            .about(Kind::ResourceGroup, group.name().as_str())
            .about(Kind::Node, node.name().as_str());
            ctx.report(f);
        }
    }
}

pub(super) fn windows_only(ctx: &mut Ctx) {
    for group in &ctx.config.groups {
        let mut what: Vec<(&str, String)> = Vec::new();
        if let Some(m) = &group.spec.module {
            what.push(("/spec/module/type", format!("module {}", m.kind.as_str())));
        }
        if let Some(alias) = &group.spec.node_alias {
            what.push(("/spec/nodeAlias", format!("node alias `{alias}`")));
        }
        if what.is_empty() {
            continue;
        }
        for node in topology::preferred(ctx, group) {
            let Some(os) = &node.spec.os else { continue };
            if os.name.is_windows() {
                continue;
            }
            for (pointer, label) in &what {
                let f = Finding::new(
                    &cat::WINDOWS_ONLY,
                    format!(
                        "{label} is a Windows resource, but preferred node `{}` runs {}",
                        node.name(),
                        os_label(os.name)
                    ),
                    ctx.at(group.doc, pointer),
                )
                .with_related(ctx.at(node.doc, "/spec/os/name"), "the node's OS")
                .with_help("run the group on Windows nodes only, or replace the module/alias with processes and a managed IP")
                .about(Kind::ResourceGroup, group.name().as_str())
                .about(Kind::Node, node.name().as_str());
                ctx.report(f);
            }
        }
    }
}
