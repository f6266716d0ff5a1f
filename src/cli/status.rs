//! `asctl status`: nodes, groups and where they run.

use std::process::ExitCode;
use std::time::SystemTime;

use asctl::model::Name;
use asctl::plan::NodeState;
use asctl::wire::{GroupState, LocalGroupStatus, ResourceError, StatusView};
use clap::{Args, ValueEnum};

use super::EXIT_OK;
use super::remote::{Remote, RemoteArgs, runtime};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long, value_enum, default_value_t = StatusFormat::Human)]
    pub format: StatusFormat,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Not the plan's formats: the status has its own JSON form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Human,
    /// The versioned JSON form of the status (`formatVersion` 1, docs/runtime.md).
    Json,
}

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let remote = Remote::resolve(&args.remote, None)?;
    let status = runtime()?.block_on(remote.status())?;
    match args.format {
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&status)?),
        StatusFormat::Human => print!("{}", render(&status, SystemTime::now())),
    }
    Ok(ExitCode::from(EXIT_OK))
}

fn ago(since: SystemTime, now: SystemTime) -> String {
    let d = now.duration_since(since).unwrap_or_default();
    let secs = d.as_secs();
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        _ => format!("{}h{}m ago", secs / 3600, secs % 3600 / 60),
    }
}

/// The human table.
pub fn render(s: &StatusView, now: SystemTime) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Domain {}  generation {}  leader {}  (answered by {})",
        s.domain.as_deref().unwrap_or("(no configuration applied)"),
        s.generation,
        s.leader.as_deref().unwrap_or("none"),
        s.answered_by
    );
    if let Some(r) = &s.removed {
        let _ = writeln!(out, "REMOVED at generation {}: {}", r.generation, r.message);
    }
    render_members(&mut out, s);
    render_groups(&mut out, s, now);
    render_not_placed(&mut out, s, now);
    out.push_str(&super::overrides::render(&s.overrides, s.now_ms));
    render_lines(&mut out, s);
    out
}

/// The members: state, role, address and the groups placed on each.
fn render_members(out: &mut String, s: &StatusView) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "\n{:<16} {:<6} {:<9} {:<22} GROUPS",
        "NODE", "STATE", "ROLE", "ADDRESS"
    );
    let mut members: Vec<_> = s.members.iter().collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    for m in members {
        let state = s
            .nodes
            .iter()
            .find(|(n, _)| n.as_str() == m.name)
            .map(|(_, v)| format!("{:?}", v.state).to_lowercase())
            .unwrap_or_else(|| "-".into());
        let role = if StatusView::is_witness(&m.name) {
            "witness"
        } else {
            m.role.as_str()
        };
        let groups: Vec<&str> = s
            .placement
            .iter()
            .filter(|(_, p)| p.node.as_ref().is_some_and(|n| n.as_str() == m.name))
            .map(|(g, _)| g.as_str())
            .collect();
        let _ = writeln!(
            out,
            "{:<16} {:<6} {:<9} {:<22} {}",
            m.name,
            state,
            role,
            m.address,
            groups.join(", ")
        );
    }
}

/// Every placed group: its node, what that node reports of it, and why it
/// failed or waits.
fn render_groups(out: &mut String, s: &StatusView, now: SystemTime) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "\n{:<16} {:<10} {:<9} {:<10} {:<8} MESSAGE",
        "GROUP", "NODE", "STATE", "SINCE", "RESTARTS"
    );
    for (group, p) in &s.placement {
        let node = p.node.as_ref().map(|n| n.as_str()).unwrap_or("-");
        let local = p.node.as_ref().and_then(|n| {
            s.nodes
                .get(n)
                .and_then(|v| v.report.as_ref())
                .and_then(|r| r.groups.get(group))
        });
        let (state, since, restarts, msg) = match local {
            Some(l) => (
                format!("{:?}", l.state).to_lowercase(),
                ago(l.since, now),
                l.restarts.to_string(),
                l.message.clone().unwrap_or_default(),
            ),
            None => ("-".into(), "-".into(), "-".into(), String::new()),
        };
        let msg = group_message(s, group, &p.failed_on, msg);
        let _ = writeln!(
            out,
            "{:<16} {:<10} {:<9} {:<10} {:<8} {}",
            group.as_str(),
            node,
            state,
            since,
            restarts,
            msg
        );
        for line in group_reasons(s, group, p.node.as_ref(), &p.failed_on) {
            let _ = writeln!(out, "  {line}");
        }
    }
}

/// A group's message: the node's own, then the nodes it failed on, then
/// the nodes that may still hold its storage (it starts nowhere).
fn group_message(
    s: &StatusView,
    group: &Name,
    failed_on: &std::collections::BTreeSet<Name>,
    mut msg: String,
) -> String {
    if !failed_on.is_empty() {
        let failed: Vec<&str> = failed_on.iter().map(|n| n.as_str()).collect();
        if !msg.is_empty() {
            msg.push_str("; ");
        }
        msg.push_str(&format!("failed on {}", failed.join(", ")));
    }
    for (n, v) in &s.nodes {
        let unclean = v
            .report
            .as_ref()
            .and_then(|r| r.groups.get(group)?.unclean.as_ref());
        if let Some(cause) = unclean {
            if !msg.is_empty() {
                msg.push_str("; ");
            }
            msg.push_str(&format!(
                "UNCLEAN on {n} ({cause}): starts nowhere until {n} releases the storage or \
                 `asctl confirm-down {n}`"
            ));
        }
    }
    msg
}

/// Groups a node still runs although the domain placed them elsewhere
/// (being stopped, or left over from a removed group).
fn render_not_placed(out: &mut String, s: &StatusView, now: SystemTime) {
    use std::fmt::Write;
    for (node, v) in &s.nodes {
        let Some(r) = &v.report else { continue };
        for (g, l) in &r.groups {
            let placed_here = s
                .placement
                .get(g)
                .and_then(|p| p.node.as_ref())
                .is_some_and(|n| n == node);
            if placed_here || l.state == GroupState::Offline {
                continue;
            }
            // A down node's report is its last word, not what runs there
            // now (its lease guard has fenced it, or the machine is gone).
            let (state, why) = if v.state == NodeState::Down {
                (
                    "unknown".to_string(),
                    format!(
                        "not placed here; node down, last reported {}",
                        format!("{:?}", l.state).to_lowercase()
                    ),
                )
            } else {
                (
                    format!("{:?}", l.state).to_lowercase(),
                    "not placed here".to_string(),
                )
            };
            let _ = writeln!(
                out,
                "{:<16} {:<10} {:<9} {:<10} {:<8} {why}",
                g.as_str(),
                node.as_str(),
                state,
                ago(l.since, now),
                l.restarts
            );
        }
    }
}

/// Why `group` failed or restarted: the newest resource error each node
/// reported for it, on the node it is placed on and on every node it failed
/// on, with the driver's details.
fn group_reasons(
    s: &StatusView,
    group: &Name,
    placed: Option<&Name>,
    failed_on: &std::collections::BTreeSet<Name>,
) -> Vec<String> {
    let mut out = Vec::new();
    for node in placed
        .into_iter()
        .chain(failed_on.iter().filter(|n| Some(*n) != placed))
    {
        let local = s
            .nodes
            .get(node)
            .and_then(|v| v.report.as_ref())
            .and_then(|r| r.groups.get(group));
        let Some((resource, e)) = local.and_then(|l| ResourceError::newest(&l.errors)) else {
            continue;
        };
        out.push(format!(
            "↳ {node}, {}: {resource}: {}",
            humantime::format_rfc3339_seconds(e.at),
            e.error
        ));
        out.extend(error_details(e).into_iter().map(|l| format!("    {l}")));
    }
    out
}

/// A resource error's details, one per line: the probe's last answer, how
/// the process ended, its log's last lines.
pub(crate) fn error_details(e: &ResourceError) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = &e.probe {
        out.push(format!("probe's last answer: {p}"));
    }
    if let Some(x) = &e.exit {
        out.push(format!("process ended: {x}"));
    }
    if !e.log_tail.is_empty() {
        out.push("log (last lines):".to_owned());
        out.extend(e.log_tail.iter().map(|l| format!("| {l}")));
    }
    out
}

/// How a group's failure on a node reads, with its newest error's details
/// (the lines after the first): what `apply` prints the moment it fails.
pub(crate) fn failure_lines(group: &Name, node: &Name, local: &LocalGroupStatus) -> Vec<String> {
    let newest = || ResourceError::newest(&local.errors).map(|(r, e)| format!("{r}: {}", e.error));
    // A failed group's message is the whole reason (with the restart
    // policy's verdict); once it moved on, its newest error is.
    let why = match local.state {
        GroupState::Failed => local.message.clone().or_else(newest),
        _ => newest(),
    }
    .unwrap_or_else(|| "no reason reported".to_owned());
    let mut out = vec![format!("{group} failed on {node}: {why}")];
    if let Some((_, e)) = ResourceError::newest(&local.errors) {
        out.extend(error_details(e).into_iter().map(|l| format!("  {l}")));
    }
    out
}

/// Per-line health as the answering member's failure detector sees it.
fn render_lines(out: &mut String, s: &StatusView) {
    use std::fmt::Write;
    let Some(v) = &s.lines else { return };
    let mut names: Vec<&str> = v
        .peers
        .values()
        .flat_map(|p| p.lines.keys().map(|l| l.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let _ = writeln!(
        out,
        "\nLINES (as seen by {}{})",
        s.answered_by,
        if v.isolated {
            ", which is ISOLATED"
        } else {
            ""
        }
    );
    let _ = write!(out, "{:<16} {:<10}", "PEER", "DETECTOR");
    for l in &names {
        let _ = write!(out, " {:<12}", l);
    }
    let trimmed = out.trim_end_matches(' ').len();
    out.truncate(trimmed);
    out.push('\n');
    for (peer, p) in &v.peers {
        let state = format!("{:?}", p.state).to_lowercase();
        let _ = write!(out, "{peer:<16} {state:<10}");
        for l in &names {
            let cell = match p.lines.get(*l) {
                Some(line) => {
                    let mut c = if line.up { "up" } else { "DOWN" }.to_string();
                    if let (false, Some(ms)) = (line.up, line.heard_ms_ago) {
                        c += &format!(" {:.0}s", ms as f64 / 1000.0);
                    }
                    c
                }
                None => "-".into(),
            };
            let _ = write!(out, " {cell:<12}");
        }
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use asctl::domain::DomainState;
    use asctl::wire::{LineView, LinesView, PeerLinesView, PeerState};

    use super::*;

    #[test]
    fn a_failed_group_shows_each_node_s_reason_under_it() {
        let s: StatusView = serde_json::from_value(serde_json::json!({
            "formatVersion": 1, "domain": "d", "generation": 2, "answeredBy": "node1",
            "leader": "node1", "members": [],
            "nodes": {
                "node1": {"state": "up", "report": {"node": "node1", "generationSeen": 2,
                    "groups": {"web": {"state": "failed", "since": "2026-11-25T00:00:00Z",
                        "restarts": 3, "message": "gave up",
                        "errors": {"process server": {"at": "2026-11-25T00:00:00Z",
                            "error": "cannot start process `web/server` (`nope`): entity not found"}}}}}},
                "node2": {"state": "up", "report": {"node": "node2", "generationSeen": 2,
                    "groups": {"web": {"state": "failed", "since": "2026-11-25T00:00:01Z",
                        "restarts": 0, "errors": {"process server": {"at": "2026-11-25T00:00:01Z",
                            "error": "process server (pid 7) exited: exit status: 3",
                            "exit": "exit status: 3", "logTail": ["boom"]}}}}}}
            },
            "placement": {"web": {"node": null, "failedOn": ["node1", "node2"]}}
        }))
        .expect("a status");
        let out = render(&s, SystemTime::now());
        let expected = [
            "  ↳ node1, 2026-11-25T00:00:00Z: process server: cannot start process `web/server` (`nope`): entity not found",
            "  ↳ node2, 2026-11-25T00:00:01Z: process server: process server (pid 7) exited: exit status: 3",
            "      process ended: exit status: 3",
            "      log (last lines):",
            "      | boom",
        ];
        let at = out.find(expected[0]).unwrap_or_else(|| panic!("{out}"));
        let tail: Vec<&str> = out[at..].lines().take(expected.len()).collect();
        assert_eq!(tail, expected, "{out}");
        let local = &s.nodes[&"node2".parse::<Name>().expect("name")]
            .report
            .as_ref()
            .expect("report")
            .groups[&"web".parse::<Name>().expect("name")];
        assert_eq!(
            failure_lines(
                &"web".parse().expect("name"),
                &"node2".parse().expect("name"),
                local
            ),
            [
                "web failed on node2: process server: process server (pid 7) exited: exit status: 3",
                "  process ended: exit status: 3",
                "  log (last lines):",
                "  | boom",
            ]
        );
    }

    #[test]
    fn renders_per_line_health() {
        let line = |up, ms| LineView {
            up,
            heard_ms_ago: Some(ms),
        };
        let mut peers = BTreeMap::new();
        peers.insert(
            "node2".to_string(),
            PeerLinesView {
                state: PeerState::Up,
                since_ms_ago: Some(60_000),
                lines: [
                    ("d1".into(), line(true, 100)),
                    ("d2".into(), line(false, 4200)),
                ]
                .into_iter()
                .collect(),
            },
        );
        peers.insert(
            "node3".to_string(),
            PeerLinesView {
                state: PeerState::Failed,
                since_ms_ago: Some(500),
                lines: [
                    ("d1".into(), line(false, 1500)),
                    ("d2".into(), line(false, 1500)),
                    ("v".into(), line(false, 1500)),
                ]
                .into_iter()
                .collect(),
            },
        );
        let view = LinesView {
            isolated: false,
            peers,
        };
        let s = asctl::domain::status::status_from_state(
            &DomainState::default(),
            "node1".into(),
            None,
            vec![],
        )
        .with_lines(view.clone());
        let out = render(&s, SystemTime::now());
        let tail: Vec<&str> = out.lines().rev().take(4).collect();
        assert_eq!(
            tail.into_iter().rev().collect::<Vec<_>>(),
            [
                "LINES (as seen by node1)",
                "PEER             DETECTOR   d1           d2           v",
                "node2            up         up           DOWN 4s      -",
                "node3            failed     DOWN 2s      DOWN 2s      DOWN 2s",
            ]
        );
        // The JSON field round-trips, and is left out when nothing is watched.
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["lines"]["peers"]["node3"]["state"], "failed");
        assert_eq!(json["lines"]["peers"]["node2"]["lines"]["d2"]["up"], false);
        let back: StatusView = serde_json::from_value(json).expect("parse");
        assert_eq!(back.lines, Some(view));
        let empty = s.with_lines(LinesView::default());
        assert!(
            serde_json::to_value(&empty)
                .expect("json")
                .get("lines")
                .is_none()
        );
    }
}
