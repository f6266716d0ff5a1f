//! `asctl move`, `asctl standby`, `asctl unstandby`: the operator's
//! temporary overrides, kept in the domain database (like `pcs resource
//! move --lifetime` and `pcs node standby`). `asctl clear` removes them
//! (`super::clear`); `status` and `plan` show the ones in force.

use std::fmt::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use asctl::domain::{Command, Outcome};
use asctl::model::Name;
use asctl::plan::overrides::{Lifetime, Overrides};
use clap::Args;

use super::remote::{Remote, RemoteArgs, runtime, who};
use super::{EXIT_FINDINGS, EXIT_OK};

pub const MOVE_ABOUT: &str = "Move a resource group to a node, for a while or until cleared. \
The override is kept in the domain database; the leader places the group on NODE at once and \
keeps it there while NODE can take it (up, one of the group's preferred nodes, not on standby, \
not failed there). With --for it ends by itself; without, `asctl clear GROUP` ends it. When it \
ends, the group goes back to the node its rules choose (its most preferred eligible node).\n\n\
A move the rules do not allow is refused with the reason and changes nothing: NODE not one of \
the group's preferred nodes, on standby, down, a node the group failed on, a group declared \
offline, or a pair of nodes the seed's support tables do not support the group on.\n\n\
Exit codes: 0 moved, 1 refused (or no such group or node), 2 usage error, I/O failure, or no \
leader to commit the change.";

pub const STANDBY_ABOUT: &str = "Put a node on standby, for a while or until `asctl unstandby`: \
it takes no group, and the groups on it move to their next eligible node, as with `standby: true` \
in its Node but without a change in git. When it ends, groups with `failback: auto` come back.\n\n\
Exit codes: 0 done, 1 no such node, 2 usage error, I/O failure, or no leader.";

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  asctl move web node2 --for 1h\n  asctl move web node2   \
# until `asctl clear web`"
)]
pub struct MoveArgs {
    #[arg(value_name = "GROUP")]
    pub group: Name,
    #[arg(value_name = "NODE")]
    pub node: Name,
    /// How long the move lasts (e.g. `30m`, `2h`) [default: until cleared].
    #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub lifetime: Option<Duration>,
    /// How long to wait for a leader to commit the change.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub timeout: Duration,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  asctl standby node2 --for 2h\n  asctl unstandby node2")]
pub struct StandbyArgs {
    #[arg(value_name = "NODE")]
    pub node: Name,
    /// How long the standby lasts [default: until `asctl unstandby`].
    #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub lifetime: Option<Duration>,
    /// How long to wait for a leader to commit the change.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub timeout: Duration,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub struct UnstandbyArgs {
    #[arg(value_name = "NODE")]
    pub node: Name,
    /// How long to wait for a leader to commit the change.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub timeout: Duration,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

fn millis(d: Option<Duration>) -> Option<u64> {
    d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Commits `cmd` in the name of whoever runs the CLI.
fn commit(remote: &RemoteArgs, cmd: Command, timeout: Duration) -> anyhow::Result<Outcome> {
    let remote = Remote::resolve(remote, None)?;
    runtime()?.block_on(remote.write(&cmd.noted(Some(who())), timeout))
}

pub fn run_move(args: MoveArgs) -> anyhow::Result<ExitCode> {
    let cmd = Command::MoveGroup {
        group: args.group.clone(),
        node: args.node.clone(),
        for_ms: millis(args.lifetime),
    };
    let outcome = commit(&args.remote, cmd, args.timeout)?;
    let what = format!("{} to {}", args.group, args.node);
    Ok(ExitCode::from(report(&outcome, &what, || {
        format!("`asctl clear {}` ends it", args.group)
    })?))
}

pub fn run_standby(args: StandbyArgs) -> anyhow::Result<ExitCode> {
    let cmd = Command::Standby {
        node: args.node.clone(),
        for_ms: millis(args.lifetime),
    };
    let outcome = commit(&args.remote, cmd, args.timeout)?;
    let what = format!("{} on standby", args.node);
    Ok(ExitCode::from(report(&outcome, &what, || {
        format!("`asctl unstandby {}` ends it", args.node)
    })?))
}

pub fn run_unstandby(args: UnstandbyArgs) -> anyhow::Result<ExitCode> {
    let cmd = Command::ClearOverrides {
        group: None,
        node: Some(args.node.clone()),
    };
    match commit(&args.remote, cmd, args.timeout)? {
        Outcome::OverridesCleared { removed } if removed.is_empty() => {
            println!(
                "{} is not on standby by an override: nothing to end.",
                args.node
            );
            Ok(ExitCode::from(EXIT_OK))
        }
        Outcome::OverridesCleared { .. } => {
            println!(
                "{} is no longer on standby; groups with `failback: auto` come back to it.",
                args.node
            );
            Ok(ExitCode::from(EXIT_OK))
        }
        other => anyhow::bail!("the domain answered an unexpected outcome: {other:?}"),
    }
}

/// Prints what `outcome` says of the override `what`; the exit code.
fn report(outcome: &Outcome, what: &str, ends: impl Fn() -> String) -> anyhow::Result<u8> {
    match outcome {
        Outcome::OverrideSet { until_ms } => {
            let until = match until_ms {
                Some(u) => format!("until {}", time_of(*u)),
                None => ends(),
            };
            println!("Override in force: {what} ({until}); the leader places the groups now.");
            Ok(EXIT_OK)
        }
        Outcome::Refused { reason } => {
            eprintln!("error: refused: {what}: {reason}; nothing was changed");
            Ok(EXIT_FINDINGS)
        }
        other => super::remote::unknown_or_unexpected(other),
    }
}

/// An instant in ms since the Unix epoch, as RFC 3339 (UTC, seconds).
pub fn time_of(ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn lifetime_text(l: &Lifetime, now_ms: u64) -> String {
    match l.until_ms {
        Some(u) if u <= now_ms => "expired, being removed".into(),
        Some(u) => format!(
            "until {} (in {})",
            time_of(u),
            humantime::format_duration(Duration::from_secs((u - now_ms).div_ceil(1000)))
        ),
        None => "until cleared".into(),
    }
}

/// The overrides as lines for `status` and `plan` (empty when there are
/// none). `now_ms` 0: judged by this machine's clock.
pub fn render(o: &Overrides, now_ms: u64) -> String {
    if o.is_empty() {
        return String::new();
    }
    let now_ms = if now_ms == 0 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    } else {
        now_ms
    };
    let mut out = String::from("\nOverrides in force (asctl clear / unstandby removes them):\n");
    for (group, m) in &o.moves {
        let _ = writeln!(
            out,
            "  move {group} to {}, {}",
            m.node,
            lifetime_text(&m.lifetime, now_ms)
        );
    }
    for (node, l) in &o.standby {
        let _ = writeln!(out, "  standby {node}, {}", lifetime_text(l, now_ms));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use asctl::plan::overrides::MoveOverride;

    fn name(s: &str) -> Name {
        s.parse().expect("name")
    }

    #[test]
    fn overrides_render_with_their_lifetimes() {
        assert_eq!(render(&Overrides::default(), 1), "");
        let mut o = Overrides::default();
        o.moves.insert(
            name("web"),
            MoveOverride {
                node: name("node2"),
                lifetime: Lifetime {
                    since_ms: 0,
                    until_ms: Some(90_000),
                },
            },
        );
        o.standby.insert(name("node3"), Lifetime::default());
        let text = render(&o, 30_000);
        assert!(
            text.contains("move web to node2, until 1970-01-01T00:01:30Z (in 1m)"),
            "{text}"
        );
        assert!(text.contains("standby node3, until cleared"), "{text}");
        assert!(render(&o, 90_000).contains("expired"));
    }

    #[test]
    fn refusals_and_unknown_names_exit_1() {
        let refused = Outcome::Refused {
            reason: "node2 is down".into(),
        };
        assert_eq!(
            report(&refused, "web to node2", String::new).expect("ok"),
            EXIT_FINDINGS
        );
        let set = Outcome::OverrideSet { until_ms: None };
        assert_eq!(
            report(&set, "web to node2", String::new).expect("ok"),
            EXIT_OK
        );
        assert!(report(&Outcome::Done, "x", String::new).is_err());
    }
}
