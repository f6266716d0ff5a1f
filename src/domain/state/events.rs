//! The domain's history: a bounded ring of [`Event`]s kept in the
//! replicated state, so every member has the same history and a snapshot
//! carries it (the raft log itself is compacted behind snapshots).
//!
//! Events are derived by the state machine from the commands it applies —
//! deterministic, like everything in [`DomainState::apply`] — with the time
//! the leader stamped on the command ([`super::Command::Stamped`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{DomainState, NodeRecord, Outcome};
use crate::model::{Config, Failback, Name};
use crate::plan::{GroupPlacement, Health, NodeState, Placement, standby_nodes};
use crate::wire::{Event, EventKind, GroupState, NodeReport, SelfFencing};

/// How many events the domain keeps; the oldest are dropped first.
pub const EVENTS_KEPT: usize = 10_000;

/// The last [`EVENTS_KEPT`] events. Shared (`Arc`) between the published
/// copies of the state, so publishing the state after every command does
/// not copy the history; it is copied only when an event is added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventLog {
    last_seq: u64,
    events: Arc<VecDeque<Event>>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventLogRepr {
    #[serde(default)]
    last_seq: u64,
    #[serde(default)]
    events: VecDeque<Event>,
}

impl Serialize for EventLog {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("EventLog", 2)?;
        st.serialize_field("lastSeq", &self.last_seq)?;
        st.serialize_field("events", &*self.events)?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for EventLog {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = EventLogRepr::deserialize(d)?;
        Ok(EventLog {
            last_seq: r.last_seq,
            events: Arc::new(r.events),
        })
    }
}

impl EventLog {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The number of the newest event (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The events numbered after `seq`, oldest first.
    pub fn after(&self, seq: u64) -> Vec<Event> {
        // Numbers are consecutive, so the first one wanted is found by
        // arithmetic rather than a scan.
        let first = self.events.front().map_or(0, |e| e.seq);
        let skip = seq.saturating_add(1).saturating_sub(first);
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        self.events.iter().skip(skip).cloned().collect()
    }

    fn push(&mut self, mut event: Event) {
        self.last_seq += 1;
        event.seq = self.last_seq;
        let events = Arc::make_mut(&mut self.events);
        events.push_back(event);
        while events.len() > EVENTS_KEPT {
            events.pop_front();
        }
    }
}

impl DomainState {
    /// Records an event at the time of the command being applied.
    pub(super) fn record(
        &mut self,
        kind: EventKind,
        node: Option<&Name>,
        group: Option<&Name>,
        detail: String,
    ) {
        let by = match kind {
            EventKind::Apply | EventKind::Override | EventKind::Fencing => self.stamp.by.clone(),
            _ => None,
        };
        self.events.push(Event {
            seq: 0,
            at_ms: self.clock_ms,
            kind,
            node: node.cloned(),
            group: group.cloned(),
            detail,
            by,
        });
    }

    /// Records the self-fencings of `node` it had not submitted before, each
    /// at the node's own time of the fence. Entries are numbered by the
    /// node; a number recorded once is ignored after.
    pub(super) fn record_self_fencings(
        &mut self,
        node: &Name,
        mut fencings: Vec<SelfFencing>,
    ) -> Outcome {
        let known = self
            .config()
            .is_some_and(|c| c.nodes.iter().any(|n| n.name() == node));
        if !known {
            return Outcome::UnknownNode { node: node.clone() };
        }
        fencings.sort_by_key(|f| f.seq);
        let mut seen = self.self_fencings_seen.get(node).copied().unwrap_or(0);
        let mut recorded = false;
        for f in fencings {
            if f.seq <= seen {
                continue;
            }
            seen = f.seq;
            recorded = true;
            let held = if f.groups.is_empty() {
                String::new()
            } else {
                let names: Vec<&str> = f.groups.iter().map(Name::as_str).collect();
                format!(" (took {} offline)", names.join(", "))
            };
            let detail = format!(
                "{node} fenced itself: {}{held}; recorded once it was back in contact",
                f.cause
            );
            self.events.push(Event {
                seq: 0,
                at_ms: f.at_ms,
                kind: EventKind::Fencing,
                node: Some(node.clone()),
                group: None,
                detail,
                by: None,
            });
        }
        self.self_fencings_seen.insert(node.clone(), seen);
        if recorded {
            Outcome::Done
        } else {
            Outcome::Ignored
        }
    }

    /// Records the nodes whose state `health` changes: lost (with the
    /// evidence the leader stamped on the command) or back.
    pub(super) fn record_health(&mut self, health: &Health) {
        for (node, state) in health {
            let before = self.nodes.get(node).map(|r| r.state);
            match (before, state) {
                (Some(NodeState::Up), NodeState::Down) => {
                    let detail = match self.stamp.evidence.get(node) {
                        Some(why) => format!("{node} lost: {why}"),
                        None => format!("{node} lost: not heard from within the timeout"),
                    };
                    self.record(EventKind::NodeLost, Some(node), None, detail);
                }
                (Some(NodeState::Down), NodeState::Up) => {
                    self.record(
                        EventKind::NodeBack,
                        Some(node),
                        None,
                        format!("{node} is up"),
                    );
                }
                _ => {}
            }
        }
    }

    /// Records every group `new` moves, with its cause. Called before `new`
    /// is committed, with the node states already updated.
    /// `released`: groups whose operator move just ended.
    pub(super) fn record_placement(&mut self, new: &Placement, released: &BTreeSet<Name>) {
        let Some(config) = self.config() else { return };
        let health = self.health();
        let mut found = Vec::new();
        for (group, after) in new {
            let before = self.placement.get(group).cloned().unwrap_or_default();
            if before.node == after.node {
                continue;
            }
            let (kind, detail) = match (&before.node, &after.node) {
                (None, Some(to)) => (EventKind::Placed, format!("{group} placed on {to}")),
                (Some(from), to) => {
                    let (failed, why) =
                        if released.contains(group) && health.get(from) == Some(&NodeState::Up) {
                            (false, "the operator's move ended".to_string())
                        } else {
                            self.cause(&config, &health, group, from, &before, after)
                        };
                    match to {
                        None => (
                            EventKind::Offline,
                            format!("{group} left {from} ({why}) and has no eligible node"),
                        ),
                        Some(to) if failed => (
                            EventKind::Failover,
                            format!("{group} failed over from {from} to {to}: {why}"),
                        ),
                        Some(to) => (
                            EventKind::Moved,
                            format!("{group} moved from {from} to {to}: {why}"),
                        ),
                    }
                }
                (None, None) => continue,
            };
            let node = after.node.clone().or(before.node.clone());
            found.push((kind, node, group.clone(), detail));
        }
        for (kind, node, group, detail) in found {
            self.record(kind, node.as_ref(), Some(&group), detail);
        }
    }

    /// Why `group` leaves `from`, and whether that is a failure (the node
    /// was lost, or the group failed there).
    fn cause(
        &self,
        config: &Config,
        health: &Health,
        group: &Name,
        from: &Name,
        before: &GroupPlacement,
        after: &GroupPlacement,
    ) -> (bool, String) {
        if health.get(from) != Some(&NodeState::Up) {
            return (true, format!("{from} was lost"));
        }
        if after.failed_on.contains(from) && !before.failed_on.contains(from) {
            let message = self
                .nodes
                .get(from)
                .and_then(|r| r.last_report.as_ref())
                .and_then(|r| r.groups.get(group))
                .and_then(|g| g.message.clone())
                .unwrap_or_else(|| "restart limit reached".into());
            return (true, format!("it failed on {from}: {message}"));
        }
        if after.node.is_some()
            && self.overrides.move_at(group, self.clock_ms) == after.node.as_ref()
        {
            return (false, "moved by an operator (asctl move)".into());
        }
        if self.overrides.standby_at(self.clock_ms).contains(from) {
            return (false, format!("{from} is on standby (asctl standby)"));
        }
        if standby_nodes(config).contains(from) {
            return (false, format!("{from} is on standby (standby: true)"));
        }
        let Some(spec) = config.groups.get(group.as_str()).map(|g| &g.spec) else {
            return (false, "its configuration changed".into());
        };
        if !spec.preferred_nodes.contains(from) {
            return (
                false,
                format!("{from} is no longer one of its preferred nodes"),
            );
        }
        let rank = |n: &Name| spec.preferred_nodes.iter().position(|p| p == n);
        let home_first = after.node.as_ref().and_then(rank) < rank(from);
        if home_first && spec.failback == Failback::Auto {
            return (
                false,
                "failback (failback: auto) to a more preferred node".into(),
            );
        }
        if spec.state == crate::model::DesiredState::Offline {
            return (false, "declared offline (state: offline)".into());
        }
        (false, "its placement changed".into())
    }

    /// Records what a node's new report says happened since its previous
    /// one: restarts, failures, local takeovers.
    pub(super) fn record_report(&mut self, report: &NodeReport) {
        let node = &report.node;
        let previous = self
            .nodes
            .get(node)
            .and_then(|r: &NodeRecord| r.last_report.clone());
        let old = |g: &Name| previous.as_ref().and_then(|p| p.groups.get(g));
        let mut found = Vec::new();
        for (group, now) in &report.groups {
            let was = old(group);
            let why = now.message.as_deref().unwrap_or("no message");
            if now.restarts > was.map_or(0, |w| w.restarts) {
                found.push((
                    EventKind::Restart,
                    group,
                    format!(
                        "{group} restarted on {node} (restart {}): {why}",
                        now.restarts
                    ),
                ));
            }
            if let (Some(cause), None) = (&now.unclean, was.and_then(|w| w.unclean.as_ref())) {
                found.push((
                    EventKind::Fencing,
                    group,
                    format!(
                        "{group} is unclean on {node} ({cause}): it starts nowhere until {node} \
                         releases it or is confirmed down"
                    ),
                ));
            }
            if now.state == GroupState::Failed && was.map(|w| w.state) != Some(GroupState::Failed) {
                found.push((
                    EventKind::GroupFailed,
                    group,
                    format!("{group} failed on {node}: {why}"),
                ));
            }
        }
        let before: BTreeMap<&Name, &u64> =
            previous.iter().flat_map(|p| p.taken_over.iter()).collect();
        for group in report.taken_over.keys() {
            if !before.contains_key(group) {
                found.push((
                    EventKind::Takeover,
                    group,
                    format!("{node} took {group} over locally (its peer was lost)"),
                ));
            }
        }
        for (kind, group, detail) in found {
            self.record(kind, Some(node), Some(group), detail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(detail: &str) -> Event {
        Event {
            seq: 0,
            at_ms: 0,
            kind: EventKind::Apply,
            node: None,
            group: None,
            detail: detail.into(),
            by: None,
        }
    }

    #[test]
    fn the_log_keeps_the_newest_events_and_numbers_them() {
        let mut log = EventLog::default();
        for i in 0..EVENTS_KEPT + 5 {
            log.push(event(&i.to_string()));
        }
        assert_eq!(log.events.len(), EVENTS_KEPT);
        assert_eq!(log.last_seq(), (EVENTS_KEPT + 5) as u64);
        let first = log.events.front().expect("events");
        assert_eq!(first.seq, 6, "the five oldest were dropped");
        assert_eq!(first.detail, "5");
        let tail = log.after(log.last_seq() - 2);
        let seqs: Vec<u64> = tail.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![log.last_seq() - 1, log.last_seq()]);
        assert_eq!(log.after(0).len(), EVENTS_KEPT, "older than kept: all");
        assert!(log.after(log.last_seq()).is_empty());
        let json = serde_json::to_string(&log).expect("serialises");
        let back: EventLog = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, log);
    }
}
