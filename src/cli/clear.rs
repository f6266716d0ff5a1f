//! `asctl clear GROUP [--node NODE]`: forget where a group failed, like
//! Veritas `hagrp -clear` or Pacemaker `crm_resource --cleanup`, and end
//! the group's `asctl move`; `asctl clear --node NODE` ends a node's
//! `asctl standby`, `asctl clear --overrides` every override.
//!
//! A group that exceeded its restart limit on a node has that node in its
//! `failedOn` (docs/plan.md) and is not placed there again until its spec
//! changes or an operator clears it. The clear is a replicated command
//! (`Command::ClearFailures`) committed through the raft leader; the leader
//! places the group again on its next pass.

use std::process::ExitCode;
use std::time::Duration;

use asctl::domain::{Command, Outcome};
use asctl::model::Name;
use clap::Args;

use super::EXIT_OK;
use super::remote::{Remote, RemoteArgs, runtime, who};

/// `asctl clear --help` (set on the subcommand in `super::Command`: its doc
/// comment would replace a `long_about` given here).
pub const LONG_ABOUT: &str = "Clear a resource group's failures: the nodes where it exceeded its \
restart limit (`failedOn` in `asctl status --format json`, \"failed on\" in its table) become \
eligible for it again, and the domain leader re-places the group on its next pass (a group that \
was offline for want of an eligible node starts again; a running group stays where it is unless \
`failback: auto` sends it home). Fix the cause first: a group that fails again is marked failed \
again.\n\n\
It also removes the operator's overrides (`asctl move`, `asctl standby`): `clear GROUP` ends \
the group's move (the group goes back to the node its rules choose), `clear --node NODE` without \
a group ends the node's standby (as `asctl unstandby`), `clear --overrides` ends every \
override.\n\n\
Exit codes: 0 cleared (or nothing to clear), 1 the domain has no such group or node, 2 usage \
error, I/O failure, or no leader to commit the change.";

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  asctl clear web                 # every node web failed on, and its move\n  \
asctl clear web --node node1    # only node1\n  \
asctl clear --node node2        # node2's standby override\n  \
asctl clear --overrides         # every override",
    group(clap::ArgGroup::new("what").required(true).multiple(true).args(["group", "node", "overrides"]))
)]
pub struct ClearArgs {
    /// The resource group whose failures (and move override) to clear.
    #[arg(value_name = "GROUP")]
    pub group: Option<Name>,
    /// With GROUP: clear only this node [default: every node the group
    /// failed on]. Without: end this node's standby override.
    #[arg(long, value_name = "NODE")]
    pub node: Option<Name>,
    /// End every operator override (moves and standbys).
    #[arg(long, conflicts_with_all = ["group", "node"])]
    pub overrides: bool,
    /// How long to wait for a leader to commit the change.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub timeout: Duration,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(args: ClearArgs) -> anyhow::Result<ExitCode> {
    let remote = Remote::resolve(&args.remote, None)?;
    let rt = runtime()?;
    let write = |cmd: Command| rt.block_on(remote.write(&cmd.noted(Some(who())), args.timeout));
    let Some(group) = &args.group else {
        let outcome = write(Command::ClearOverrides {
            group: None,
            node: args.node.clone(),
        })?;
        return Ok(ExitCode::from(report_overrides(&outcome, true)?));
    };
    let cmd = Command::ClearFailures {
        group: group.clone(),
        node: args.node.clone(),
    };
    let code = report(&write(cmd)?, args.node.as_ref())?;
    if code != EXIT_OK {
        return Ok(ExitCode::from(code));
    }
    let outcome = write(Command::ClearOverrides {
        group: Some(group.clone()),
        node: None,
    })?;
    report_overrides(&outcome, false)?;
    Ok(ExitCode::from(code))
}

/// Prints which overrides `outcome` removed (and, when `say_none`, that
/// there was none).
fn report_overrides(outcome: &Outcome, say_none: bool) -> anyhow::Result<u8> {
    match outcome {
        Outcome::OverridesCleared { removed } if removed.is_empty() => {
            if say_none {
                println!("No such override in force: nothing to clear.");
            }
            Ok(EXIT_OK)
        }
        Outcome::OverridesCleared { removed } => {
            println!(
                "Ended the override{}: {}; the leader places the groups again.",
                if removed.len() == 1 { "" } else { "s" },
                removed.join(", ")
            );
            Ok(EXIT_OK)
        }
        other => anyhow::bail!("the domain answered an unexpected outcome: {other:?}"),
    }
}

/// Prints what `outcome` says and returns the exit code.
fn report(outcome: &Outcome, node: Option<&Name>) -> anyhow::Result<u8> {
    match outcome {
        Outcome::Cleared { group, nodes } if nodes.is_empty() => {
            match node {
                Some(n) => println!("Group {group} has not failed on {n}: nothing to clear."),
                None => println!("Group {group} has not failed on any node: nothing to clear."),
            }
            Ok(EXIT_OK)
        }
        Outcome::Cleared { group, nodes } => {
            let nodes: Vec<&str> = nodes.iter().map(Name::as_str).collect();
            println!(
                "Cleared the failures of group {group} on {}; the leader places it again on its \
                 next pass.",
                nodes.join(", ")
            );
            Ok(EXIT_OK)
        }
        other => super::remote::unknown_or_unexpected(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::EXIT_FINDINGS;

    fn name(s: &str) -> Name {
        s.parse().expect("name")
    }

    #[test]
    fn outcomes_map_to_exit_codes() {
        let cleared = Outcome::Cleared {
            group: name("web"),
            nodes: vec![name("node1")],
        };
        assert_eq!(report(&cleared, None).expect("ok"), EXIT_OK);
        let nothing = Outcome::Cleared {
            group: name("web"),
            nodes: vec![],
        };
        assert_eq!(report(&nothing, Some(&name("node2"))).expect("ok"), EXIT_OK);
        let unknown = Outcome::UnknownGroup {
            group: name("nope"),
        };
        assert_eq!(report(&unknown, None).expect("ok"), EXIT_FINDINGS);
        let unknown = Outcome::UnknownNode {
            node: name("node9"),
        };
        assert_eq!(report(&unknown, None).expect("ok"), EXIT_FINDINGS);
        assert!(report(&Outcome::Done, None).is_err());
    }
}
