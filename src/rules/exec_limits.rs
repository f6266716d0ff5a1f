//! `exec-too-large` (AS0319): a process whose command, arguments and
//! environment the kernel would refuse to exec (`E2BIG`) can never start,
//! so it is an error here rather than a start that fails on every node.
//! The limit is the one of the machine `validate` runs on (see
//! [`crate::model::exec_limits`]).

use super::Ctx;
use crate::catalog as cat;
use crate::diag::Finding;
use crate::model::Kind;
use crate::model::exec_limits::{ExecString, MAX_ARG_STRLEN, arg_max};

/// A JSON pointer token (RFC 6901).
fn token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

pub fn check(ctx: &mut Ctx) {
    let limit = arg_max();
    for group in &ctx.config.groups {
        // The agent adds the node's name: the longest one it may run on.
        let node = group
            .spec
            .preferred_nodes
            .iter()
            .map(|n| n.as_str())
            .max_by_key(|n| n.len())
            .unwrap_or("");
        for (i, process) in group.spec.processes.iter().enumerate() {
            // Located only when reported: a location parses the file again.
            let at_process = |ctx: &Ctx| ctx.at(group.doc, &format!("/spec/processes/{i}/name"));
            let size = process.exec_size(node, group.name().as_str());
            let what = format!("process `{}/{}`", group.name(), process.name);
            for (string, bytes) in &size.too_long {
                let (pointer, name) = match string {
                    ExecString::Command(j) => (format!("command/{j}"), format!("command[{j}]")),
                    ExecString::Env(key) => (format!("env/{}", token(key)), format!("env `{key}`")),
                };
                let at = ctx.at(group.doc, &format!("/spec/processes/{i}/{pointer}"));
                let f = Finding::new(
                    &cat::EXEC_TOO_LARGE,
                    format!(
                        "{what}: {name} is {bytes} bytes, over the kernel's limit of \
                         {MAX_ARG_STRLEN} bytes for one string: it could never start (E2BIG)"
                    ),
                    at.or_else(|| at_process(ctx)),
                )
                .with_help("pass large values in a file (its path in the environment) instead")
                .about(Kind::ResourceGroup, group.name().as_str());
                ctx.report(f);
            }
            if size.total > limit {
                let f = Finding::new(
                    &cat::EXEC_TOO_LARGE,
                    format!(
                        "{what}: its command, arguments and environment take {} bytes, over \
                         the argument limit ARG_MAX of {limit} bytes here: it could never \
                         start (E2BIG)",
                        size.total
                    ),
                    at_process(ctx),
                )
                .with_help("pass large values in a file (its path in the environment) instead")
                .about(Kind::ResourceGroup, group.name().as_str());
                ctx.report(f);
            }
        }
    }
}
