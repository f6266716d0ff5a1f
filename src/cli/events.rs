//! `asctl events`: the domain's history from its database — nodes lost and
//! back, failovers and their causes, restarts, applies, overrides — oldest
//! first, filtered, and with `--follow` streamed as it happens.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use asctl::model::Name;
use asctl::wire::{Event, EventsView};
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::EXIT_OK;
use super::remote::{Remote, RemoteArgs, runtime};

pub const LONG_ABOUT: &str = "List the domain's history, kept in its replicated database (the \
last 10,000 events; the oldest are dropped): nodes lost (with the failure detector's evidence) \
and back, failovers with their cause, moves, restarts and failures reported by the nodes, \
applies (generation, and who: the name the CLI that applied gave, `ASCTL_BY` or user@host), \
and operator overrides given, cleared or expired. Oldest first.\n\n\
Exit codes: 0 listed, 2 usage error or no member answered.";

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  asctl events --since 1h\n  asctl events --group web \
--format json\n  asctl events --follow"
)]
pub struct EventsArgs {
    /// Only events from this long ago (`30m`, `2h`) or from this time (RFC 3339).
    #[arg(long, value_name = "DURATION|TIME", value_parser = parse_since)]
    pub since: Option<SystemTime>,
    /// Only events about this group.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<Name>,
    /// Only events about this node.
    #[arg(long, value_name = "NODE")]
    pub node: Option<Name>,
    /// Keep printing new events as they happen, until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    #[arg(long, value_enum, default_value_t = EventsFormat::Human)]
    pub format: EventsFormat,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventsFormat {
    Human,
    /// `{formatVersion: 1, events: [...]}`; with --follow, one event object per line.
    Json,
}

/// A duration ago, or an RFC 3339 time.
fn parse_since(s: &str) -> Result<SystemTime, String> {
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(SystemTime::now().checked_sub(d).unwrap_or(UNIX_EPOCH));
    }
    humantime::parse_rfc3339_weak(s)
        .map_err(|_| format!("`{s}` is neither a duration (e.g. 30m, 2h) nor an RFC 3339 time"))
}

/// An event as `asctl events --format json` prints it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventOut<'a> {
    time: String,
    #[serde(flatten)]
    event: &'a Event,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventsOut<'a> {
    format_version: u32,
    events: Vec<EventOut<'a>>,
}

struct Filter {
    since_ms: u64,
    group: Option<Name>,
    node: Option<Name>,
}

impl Filter {
    fn keeps(&self, e: &Event) -> bool {
        e.at_ms >= self.since_ms
            && self
                .group
                .as_ref()
                .is_none_or(|g| e.group.as_ref() == Some(g))
            && self
                .node
                .as_ref()
                .is_none_or(|n| e.node.as_ref() == Some(n))
    }
}

fn out(e: &Event) -> EventOut<'_> {
    EventOut {
        time: time_of_ms(e.at_ms),
        event: e,
    }
}

fn time_of_ms(ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// One event as a line of the human listing.
pub fn line(e: &Event) -> String {
    let by = match (e.by.as_deref(), e.note.as_deref()) {
        (Some(b), Some(n)) if n != b => format!(" (by {b}: {n})"),
        (Some(b), _) => format!(" (by {b})"),
        (None, Some(n)) => format!(" ({n})"),
        (None, None) => String::new(),
    };
    format!(
        "{}  {:<11}  {}{by}",
        time_of_ms(e.at_ms),
        e.kind.as_str(),
        e.detail
    )
}

pub fn run(args: EventsArgs) -> anyhow::Result<ExitCode> {
    let remote = Remote::resolve(&args.remote, None)?;
    let filter = Filter {
        since_ms: args.since.map_or(0, |t| {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
        }),
        group: args.group.clone(),
        node: args.node.clone(),
    };
    let rt = runtime()?;
    let first: EventsView = rt.block_on(remote.get("/v1/events"))?;
    let kept: Vec<&Event> = first.events.iter().filter(|e| filter.keeps(e)).collect();
    match (args.format, args.follow) {
        (EventsFormat::Json, false) => {
            let doc = EventsOut {
                format_version: first.format_version,
                events: kept.into_iter().map(out).collect(),
            };
            println!("{}", serde_json::to_string_pretty(&doc)?);
            return Ok(ExitCode::from(EXIT_OK));
        }
        (EventsFormat::Json, true) => {
            for e in kept {
                println!("{}", serde_json::to_string(&out(e))?);
            }
        }
        (EventsFormat::Human, _) => {
            if kept.is_empty() && !args.follow {
                println!("No events.");
            }
            for e in kept {
                println!("{}", line(e));
            }
        }
    }
    if !args.follow {
        return Ok(ExitCode::from(EXIT_OK));
    }
    rt.block_on(follow(&remote, first.last_seq, &filter, args.format))?;
    Ok(ExitCode::from(EXIT_OK))
}

/// Prints the events after `seq` as they come, until Ctrl-C.
async fn follow(
    remote: &Remote,
    mut seq: u64,
    filter: &Filter,
    format: EventsFormat,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stop = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            r = &mut stop => return r.context("waiting for Ctrl-C"),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let view: EventsView = match remote.get(&format!("/v1/events?after={seq}")).await {
            Ok(v) => v,
            Err(e) => {
                // A member going away (a failover being watched) is no
                // reason to stop following: the next poll asks the others.
                eprintln!("warning: {e:#}");
                continue;
            }
        };
        for e in view.events.iter().filter(|e| e.seq > seq) {
            if filter.keeps(e) {
                match format {
                    EventsFormat::Human => println!("{}", line(e)),
                    EventsFormat::Json => println!("{}", serde_json::to_string(&out(e))?),
                }
            }
        }
        std::io::stdout().flush().ok();
        seq = seq.max(view.last_seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use asctl::wire::EventKind;

    fn event(kind: EventKind, group: Option<&str>, at_ms: u64) -> Event {
        Event {
            seq: 1,
            at_ms,
            kind,
            node: Some("node1".parse().expect("name")),
            group: group.map(|g| g.parse().expect("name")),
            detail: "web failed over from node1 to node2: node1 was lost".into(),
            by: None,
            note: None,
        }
    }

    #[test]
    fn filters_by_time_group_and_node() {
        let f = Filter {
            since_ms: 1_000,
            group: Some("web".parse().expect("name")),
            node: None,
        };
        assert!(f.keeps(&event(EventKind::Failover, Some("web"), 1_000)));
        assert!(!f.keeps(&event(EventKind::Failover, Some("web"), 999)));
        assert!(!f.keeps(&event(EventKind::Failover, Some("api"), 2_000)));
        assert!(!f.keeps(&event(EventKind::NodeLost, None, 2_000)));
        let by_node = Filter {
            since_ms: 0,
            group: None,
            node: Some("node2".parse().expect("name")),
        };
        assert!(!by_node.keeps(&event(EventKind::NodeLost, None, 5)));
    }

    #[test]
    fn since_takes_a_duration_or_a_time() {
        let t = parse_since("2026-12-02T07:00:00Z").expect("a time");
        assert_eq!(
            humantime::format_rfc3339_seconds(t).to_string(),
            "2026-12-02T07:00:00Z"
        );
        let ago = parse_since("1h").expect("a duration");
        assert!(ago < SystemTime::now() - Duration::from_secs(3_590));
        assert!(parse_since("yesterday").is_err());
    }

    #[test]
    fn a_line_has_the_time_kind_detail_and_who() {
        let mut e = event(EventKind::Apply, None, 1_500);
        e.detail = "generation 2 applied".into();
        e.by = Some("alice".into());
        assert_eq!(
            line(&e),
            "1970-01-01T00:00:01.500Z  apply        generation 2 applied (by alice)"
        );
        e.note = Some("ops@host".into());
        assert_eq!(
            line(&e),
            "1970-01-01T00:00:01.500Z  apply        generation 2 applied (by alice: ops@host)"
        );
        let json = serde_json::to_value(out(&e)).expect("json");
        assert_eq!(json["time"], "1970-01-01T00:00:01.500Z");
        assert_eq!(json["kind"], "apply");
        assert_eq!(json["by"], "alice");
        assert_eq!(json["note"], "ops@host");
    }
}
