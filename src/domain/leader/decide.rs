//! The leader's decision, pure: node health and the placement to commit
//! from the committed state.

use std::collections::BTreeMap;

use super::HealthSource;
use crate::domain::{Command, DomainState};
use crate::model::Name;
use crate::plan::{Health, NodeState, Placement, place_with};
use crate::wire::{GroupState, NodeReport};
use tracing::info;

/// This node's latest report, if it is for the current generation: a
/// report from before a spec change says nothing about the new spec.
fn current_report<'a>(state: &'a DomainState, node: &Name) -> Option<&'a NodeReport> {
    state
        .nodes
        .get(node)
        .and_then(|r| r.last_report.as_ref())
        .filter(|r| r.generation_seen == state.generation)
}

/// The committed placement with the groups that a node runs by local
/// takeover (two nodes without a witness, docs/ha.md) and
/// reports Online placed there: the running copy is adopted, never a second
/// one started. Only while no decision about the group came after the
/// revision the takeover overrode: a report that still names it after the
/// adoption (or after a failback) adopts nothing.
pub fn adopted_placement(state: &DomainState) -> Placement {
    let mut placement = state.placement.clone();
    for node in state.nodes.keys() {
        let Some(report) = current_report(state, node) else {
            continue;
        };
        for (group, revision) in &report.taken_over {
            if state.revision_of(group) != *revision {
                continue;
            }
            let online = report
                .groups
                .get(group)
                .is_some_and(|g| g.state == GroupState::Online);
            if let (true, Some(p)) = (online, placement.get_mut(group)) {
                p.node = Some(node.clone());
            }
        }
    }
    placement
}

/// `current` with the nodes where groups failed added to their `failed_on`,
/// which is what `place` starts from.
pub fn with_failures(state: &DomainState) -> Placement {
    let mut placement = state.placement.clone();
    let config = state.config();
    for (group, p) in placement.iter_mut() {
        let Some(node) = p.node.clone() else { continue };
        let failed = current_report(state, &node)
            .and_then(|r| r.groups.get(group))
            .filter(|g| g.state == GroupState::Failed);
        if let Some(f) = failed {
            // A configuration invalid anywhere fails on every node: trying
            // each in turn would only fail the same way, node after node.
            if f.fatal {
                let spec = config.as_ref().and_then(|c| c.groups.get(group.as_str()));
                if let Some(g) = spec {
                    p.failed_on.extend(g.spec.preferred_nodes.iter().cloned());
                }
            }
            p.failed_on.insert(node);
        }
    }
    placement
}

/// The leader's decision for `state`: health and placement, or `None` when
/// the committed ones are already right. Overrides are judged at the time
/// of the last committed command ([`decide_at`] takes the leader's clock).
pub fn decide(state: &DomainState, health: Health) -> Option<Command> {
    decide_at(state, health, state.clock_ms)
}

/// [`decide`] with the operator's overrides in force at `now_ms`.
pub fn decide_at(state: &DomainState, health: Health, now_ms: u64) -> Option<Command> {
    // Adoptions are committed on their own first: the taker ends its
    // takeover when it sees the group's placement change, so a failback in
    // the same step (back to where the stale placement had it) must not
    // hide it.
    let adopted = adopted_placement(state);
    if adopted != state.placement {
        return Some(Command::SetPlacement {
            generation: state.generation,
            placement: adopted,
            health,
            base: Some(state.decisions),
        });
    }
    let placement = match state.config() {
        Some(config) => place_with(
            &config,
            &health,
            &with_failures(state),
            &state.unclean(),
            &state.overrides,
            now_ms,
        ),
        None => Placement::new(),
    };
    let committed = state.health();
    let health_changed = health.iter().any(|(n, s)| committed.get(n) != Some(s));
    if placement == state.placement && !health_changed {
        return None;
    }
    Some(Command::SetPlacement {
        generation: state.generation,
        placement,
        health,
        base: Some(state.decisions),
    })
}

/// `cmd` with the health source's evidence about every node it declares
/// lost, for the domain's history.
pub(super) fn with_evidence(
    state: &DomainState,
    cmd: Command,
    health: &dyn HealthSource,
) -> Command {
    let Command::SetPlacement { health: h, .. } = &cmd else {
        return cmd;
    };
    let evidence: BTreeMap<Name, String> = h
        .iter()
        .filter(|(n, s)| {
            **s == NodeState::Down && state.nodes.get(*n).map(|r| r.state) == Some(NodeState::Up)
        })
        .filter_map(|(n, _)| Some((n.clone(), health.evidence(n)?)))
        .collect();
    if evidence.is_empty() {
        return cmd;
    }
    Command::Stamped {
        at_ms: 0,
        by: None,
        note: None,
        evidence,
        stamped: Box::new(cmd),
    }
}

/// Every group `cmd` moves, with the health it decided on: the trail an
/// operator (or a chaos run) follows to see why a group went where it did.
pub(super) fn log_moves(before: &Placement, cmd: &Command) {
    let Command::SetPlacement {
        placement, health, ..
    } = cmd.inner()
    else {
        return;
    };
    for (group, p) in placement {
        let was = before.get(group).and_then(|b| b.node.as_ref());
        if was != p.node.as_ref() {
            let down: Vec<&str> = health
                .iter()
                .filter(|(_, s)| **s == NodeState::Down)
                .map(|(n, _)| n.as_str())
                .collect();
            info!(
                %group,
                from = ?was.map(Name::as_str),
                to = ?p.node.as_ref().map(Name::as_str),
                ?down,
                failed_on = ?p.failed_on,
                "placing group"
            );
        }
    }
}
