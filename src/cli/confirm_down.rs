//! `asctl confirm-down NODE`: an operator's word that a node is really off,
//! like Pacemaker's `stonith_admin --confirm`.
//!
//! A node whose storage stop failed (an unmount the kernel refused, an OCF
//! agent's `stop` that failed or timed out) is *unclean* for that group: it
//! may still hold the disk, so the leader places the group nowhere until the
//! node reports the storage released (its agent retries the stop; a
//! restarted agent releases what it recorded) — or until an operator, who
//! has checked that the node is powered off or cut from the storage, says
//! so with this command (`Command::ConfirmDown`, committed through the raft
//! leader).

use std::process::ExitCode;
use std::time::Duration;

use asctl::domain::{Command, Outcome};
use asctl::model::Name;
use clap::Args;

use super::EXIT_OK;
use super::remote::{Remote, RemoteArgs, runtime, who};

/// `asctl confirm-down --help` (set on the subcommand in `super::Command`).
pub const LONG_ABOUT: &str = "Confirm that a node is down, so that the groups it is unclean for \
may start elsewhere.\n\n\
A node is unclean for a group when stopping the group's storage failed there (an unmount that \
the kernel refused, an OCF agent whose `stop` failed or timed out): the node may still have the \
disk mounted, so the domain starts the group nowhere (`asctl status` shows the node as unclean, \
with the cause). The node becomes clean by itself when its agent's retried stop succeeds.\n\n\
WARNING: run this only when the node is really off — powered off, or cut from the shared \
storage by its fence. If the node is still running with the file system mounted, the group \
starts on another node and two nodes write the same disk: the file system is corrupted and \
acknowledged data may be lost.\n\n\
Exit codes: 0 confirmed (or the node was unclean for nothing), 1 the domain has no such node, \
2 usage error, I/O failure, or no leader to commit the change.";

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  asctl confirm-down node1    # node1 is powered off")]
pub struct ConfirmDownArgs {
    /// The node that is really off.
    #[arg(value_name = "NODE")]
    pub node: Name,
    /// How long to wait for a leader to commit the change.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub timeout: Duration,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(args: ConfirmDownArgs) -> anyhow::Result<ExitCode> {
    let remote = Remote::resolve(&args.remote, None)?;
    let cmd = Command::ConfirmDown {
        node: args.node.clone(),
    };
    // Who confirmed is recorded with the event in the domain's history.
    let cmd = cmd.noted(Some(who()));
    let outcome = runtime()?.block_on(remote.write(&cmd, args.timeout))?;
    Ok(ExitCode::from(report(&outcome)?))
}

/// Prints what `outcome` says and returns the exit code.
fn report(outcome: &Outcome) -> anyhow::Result<u8> {
    match outcome {
        Outcome::ConfirmedDown { node, groups } if groups.is_empty() => {
            println!("Node {node} was not unclean for any group: nothing changed.");
            Ok(EXIT_OK)
        }
        Outcome::ConfirmedDown { node, groups } => {
            let groups: Vec<&str> = groups.iter().map(Name::as_str).collect();
            println!(
                "Confirmed {node} down: {} may start on another node; the leader places them on \
                 its next pass.",
                groups.join(", ")
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
        let done = Outcome::ConfirmedDown {
            node: name("node1"),
            groups: vec![name("db")],
        };
        assert_eq!(report(&done).expect("ok"), EXIT_OK);
        let nothing = Outcome::ConfirmedDown {
            node: name("node1"),
            groups: vec![],
        };
        assert_eq!(report(&nothing).expect("ok"), EXIT_OK);
        let unknown = Outcome::UnknownNode {
            node: name("node9"),
        };
        assert_eq!(report(&unknown).expect("ok"), EXIT_FINDINGS);
        assert!(report(&Outcome::Done).is_err());
    }
}
