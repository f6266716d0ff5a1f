//! The operator's overrides as commands of the state machine: `asctl move`,
//! `asctl standby`/`unstandby`, `asctl clear`, and their expiry.
//!
//! An override changes what the leader decides from, so each one counts as a
//! decision (`decisions`), and the state machine re-places the groups at
//! once, as an apply does: a group whose move ends (expired or cleared) is
//! placed as if it ran nowhere, so it goes back to its most preferred
//! eligible node rather than staying where the override had put it.

use std::collections::BTreeSet;

use super::{DomainState, Outcome};
use crate::model::{Config, DesiredState, Name};
use crate::plan::overrides::{Lifetime, MoveOverride};
use crate::plan::{NodeState, place_with, standby_nodes};
use crate::wire::EventKind;

impl DomainState {
    fn lifetime(&self, for_ms: Option<u64>) -> Lifetime {
        Lifetime {
            since_ms: self.clock_ms,
            until_ms: for_ms.map(|d| self.clock_ms.saturating_add(d)),
        }
    }

    fn until_text(l: &Lifetime) -> String {
        match l.until_ms {
            Some(u) => format!(" for {}", humantime::format_duration(ms(u - l.since_ms))),
            None => " until cleared".into(),
        }
    }

    /// Why `group` may not be moved to `node` by the domain's own rules
    /// (the seed's support tables are checked before the command is
    /// committed, `super::super::seed_refusal`).
    pub fn move_refusal(&self, config: &Config, group: &Name, node: &Name) -> Option<String> {
        let spec = &config.groups.get(group.as_str())?.spec;
        if spec.state == DesiredState::Offline {
            return Some(format!("{group} is declared offline (state: offline)"));
        }
        if !spec.preferred_nodes.contains(node) {
            let nodes: Vec<&str> = spec.preferred_nodes.iter().map(Name::as_str).collect();
            return Some(format!(
                "{node} is not one of {group}'s preferred nodes ({})",
                nodes.join(", ")
            ));
        }
        if standby_nodes(config).contains(node) {
            return Some(format!("{node} is on standby (standby: true in its Node)"));
        }
        if self.overrides.standby_at(self.clock_ms).contains(node) {
            return Some(format!(
                "{node} is on standby (asctl standby; asctl unstandby {node} ends it)"
            ));
        }
        if self.nodes.get(node).map(|r| r.state) != Some(NodeState::Up) {
            return Some(format!("{node} is down"));
        }
        let failed = self
            .placement
            .get(group)
            .is_some_and(|p| p.failed_on.contains(node));
        if failed {
            return Some(format!(
                "{group} failed on {node} (asctl clear {group} --node {node} first)"
            ));
        }
        None
    }

    pub(super) fn move_group(&mut self, group: Name, node: Name, for_ms: Option<u64>) -> Outcome {
        let Some(config) = self.config() else {
            return Outcome::UnknownGroup { group };
        };
        if config.groups.get(group.as_str()).is_none() {
            return Outcome::UnknownGroup { group };
        }
        if !config.nodes.iter().any(|n| *n.name() == node) {
            return Outcome::UnknownNode { node };
        }
        if let Some(reason) = self.move_refusal(&config, &group, &node) {
            return Outcome::Refused { reason };
        }
        let lifetime = self.lifetime(for_ms);
        let detail = format!("move {group} to {node}{}", Self::until_text(&lifetime));
        self.overrides.moves.insert(
            group.clone(),
            MoveOverride {
                node: node.clone(),
                lifetime,
            },
        );
        self.record(EventKind::Override, Some(&node), Some(&group), detail);
        self.replace(&BTreeSet::new());
        Outcome::OverrideSet {
            until_ms: lifetime.until_ms,
        }
    }

    pub(super) fn standby(&mut self, node: Name, for_ms: Option<u64>) -> Outcome {
        let known = self
            .config()
            .is_some_and(|c| c.nodes.iter().any(|n| *n.name() == node));
        if !known {
            return Outcome::UnknownNode { node };
        }
        let lifetime = self.lifetime(for_ms);
        let detail = format!("standby {node}{}", Self::until_text(&lifetime));
        self.overrides.standby.insert(node.clone(), lifetime);
        self.record(EventKind::Override, Some(&node), None, detail);
        self.replace(&BTreeSet::new());
        Outcome::OverrideSet {
            until_ms: lifetime.until_ms,
        }
    }

    /// Removes the move of `group` and the standby of `node`; every
    /// override when both are `None`.
    pub(super) fn clear_overrides(&mut self, group: Option<Name>, node: Option<Name>) -> Outcome {
        let all = group.is_none() && node.is_none();
        let moves: Vec<Name> = self
            .overrides
            .moves
            .keys()
            .filter(|g| all || group.as_ref() == Some(*g))
            .cloned()
            .collect();
        let standby: Vec<Name> = self
            .overrides
            .standby
            .keys()
            .filter(|n| all || node.as_ref() == Some(*n))
            .cloned()
            .collect();
        let removed = self.remove(&moves, &standby, "cleared");
        Outcome::OverridesCleared { removed }
    }

    /// Removes the overrides that have ended by the command's time.
    pub(super) fn expire_overrides(&mut self) -> Outcome {
        let now = self.clock_ms;
        let ended = |l: &Lifetime| !l.active_at(now);
        let moves: Vec<Name> = (self.overrides.moves.iter())
            .filter(|(_, m)| ended(&m.lifetime))
            .map(|(g, _)| g.clone())
            .collect();
        let standby: Vec<Name> = (self.overrides.standby.iter())
            .filter(|(_, l)| ended(l))
            .map(|(n, _)| n.clone())
            .collect();
        let removed = self.remove(&moves, &standby, "expired");
        Outcome::OverridesCleared { removed }
    }

    /// Removes the named overrides, records each, and re-places.
    fn remove(&mut self, moves: &[Name], standby: &[Name], how: &str) -> Vec<String> {
        let mut removed = Vec::new();
        for g in moves {
            if let Some(m) = self.overrides.moves.remove(g) {
                let text = format!("move {g} to {}", m.node);
                self.record(
                    EventKind::Override,
                    Some(&m.node),
                    Some(g),
                    format!("{text}: {how}"),
                );
                removed.push(text);
            }
        }
        for n in standby {
            if self.overrides.standby.remove(n).is_some() {
                let text = format!("standby {n}");
                self.record(EventKind::Override, Some(n), None, format!("{text}: {how}"));
                removed.push(text);
            }
        }
        if !removed.is_empty() {
            self.replace(&moves.iter().cloned().collect());
        }
        removed
    }

    /// Forgets overrides naming a group or node that `config` no longer has.
    pub(super) fn prune_overrides(&mut self, config: &Config) {
        let has_node = |n: &Name| config.nodes.iter().any(|x| x.name() == n);
        self.overrides
            .moves
            .retain(|g, m| config.groups.get(g.as_str()).is_some() && has_node(&m.node));
        self.overrides.standby.retain(|n, _| has_node(n));
    }

    /// Places the groups again after an override changed; `released` (groups
    /// whose move ended) are placed as if they ran nowhere.
    fn replace(&mut self, released: &BTreeSet<Name>) {
        self.decisions += 1;
        let Some(config) = self.config() else { return };
        let mut current = self.placement.clone();
        for g in released {
            if let Some(p) = current.get_mut(g) {
                p.node = None;
            }
        }
        let placement = place_with(
            &config,
            &self.health(),
            &current,
            &self.unclean(),
            &self.overrides,
            self.clock_ms,
        );
        self.record_placement(&placement, released);
        self.set_placement(placement);
    }
}

fn ms(x: u64) -> std::time::Duration {
    std::time::Duration::from_millis(x)
}

#[cfg(test)]
mod tests {
    use super::super::Command;
    use super::*;
    use crate::model::testing::n;
    use crate::plan::documents::to_document_texts;
    use crate::plan::{Health, Placement};

    fn all_up() -> Health {
        ["node1", "node2", "node3"]
            .iter()
            .map(|x| (n(x), NodeState::Up))
            .collect()
    }

    fn applied() -> DomainState {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart");
        let config = crate::load::load(&[crate::load::Input::Path(dir.into())])
            .expect("loads")
            .config;
        let mut s = DomainState::default();
        s.apply(Command::SetPlacement {
            generation: 0,
            placement: Placement::new(),
            health: all_up(),
            base: None,
        });
        s.apply(
            Command::ApplyConfig {
                base_generation: 0,
                documents: to_document_texts(&config),
            }
            .by(Some("ops@host".into()))
            .at(1_000),
        );
        s
    }

    fn at(s: &mut DomainState, ms: u64, cmd: Command) -> Outcome {
        s.apply(cmd.by(Some("ops@host".into())).at(ms))
    }

    fn node_of(s: &DomainState, g: &str) -> Option<String> {
        s.placement[g].node.as_ref().map(|x| x.to_string())
    }

    fn details(s: &DomainState, kind: EventKind) -> Vec<String> {
        s.events
            .after(0)
            .into_iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.detail)
            .collect()
    }

    #[test]
    fn a_move_places_the_group_and_its_expiry_brings_it_back() {
        let mut s = applied();
        assert_eq!(node_of(&s, "web").as_deref(), Some("node1"));
        let apply = s.events.after(0);
        let apply = apply
            .iter()
            .find(|e| e.kind == EventKind::Apply)
            .expect("an apply event");
        assert_eq!(apply.detail, "generation 1 applied");
        assert_eq!(apply.by.as_deref(), Some("ops@host"));
        assert_eq!(apply.at_ms, 1_000);

        let mv = Command::MoveGroup {
            group: n("web"),
            node: n("node3"),
            for_ms: Some(2_000),
        };
        let decisions = s.decisions;
        assert_eq!(
            at(&mut s, 2_000, mv),
            Outcome::OverrideSet {
                until_ms: Some(4_000)
            }
        );
        assert_eq!(s.decisions, decisions + 1, "an override is a decision");
        assert_eq!(node_of(&s, "web").as_deref(), Some("node3"));
        assert_eq!(
            details(&s, EventKind::Moved),
            vec!["web moved from node1 to node3: moved by an operator (asctl move)"]
        );
        // The leader's next decision agrees while the move is in force.
        assert_eq!(crate::domain::leader::decide_at(&s, all_up(), 3_999), None);
        assert!(!s.overrides.any_expired_at(3_999));

        assert_eq!(
            at(&mut s, 4_000, Command::ExpireOverrides),
            Outcome::OverridesCleared {
                removed: vec!["move web to node3".into()]
            }
        );
        assert!(s.overrides.is_empty());
        assert_eq!(node_of(&s, "web").as_deref(), Some("node1"));
        let overrides = details(&s, EventKind::Override);
        assert_eq!(
            overrides,
            vec![
                "move web to node3 for 2s".to_string(),
                "move web to node3: expired".to_string()
            ]
        );
        assert!(
            details(&s, EventKind::Moved)
                .contains(&"web moved from node3 to node1: the operator's move ended".into())
        );
    }

    #[test]
    fn a_refused_move_changes_nothing() {
        let mut s = applied();
        let before = s.clone();
        let refuse = |s: &mut DomainState, g: &str, node: &str| {
            let cmd = Command::MoveGroup {
                group: n(g),
                node: n(node),
                for_ms: None,
            };
            match s.apply(cmd) {
                Outcome::Refused { reason } => reason,
                other => panic!("refused, not {other:?}"),
            }
        };
        let why = refuse(&mut s, "batch", "node2");
        assert_eq!(
            why,
            "node2 is not one of batch's preferred nodes (node3, node1)"
        );
        assert_eq!(s, before);
        s.placement
            .get_mut("web")
            .expect("web")
            .failed_on
            .insert(n("node2"));
        assert!(refuse(&mut s, "web", "node2").contains("failed on node2"));
        at(
            &mut s,
            2_000,
            Command::Standby {
                node: n("node3"),
                for_ms: None,
            },
        );
        assert!(refuse(&mut s, "web", "node3").contains("on standby"));
        let mut down = all_up();
        down.insert(n("node3"), NodeState::Down);
        at(
            &mut s,
            3_000,
            Command::ClearOverrides {
                group: None,
                node: None,
            },
        );
        s.apply(Command::SetPlacement {
            generation: s.generation,
            placement: s.placement.clone(),
            health: down,
            base: None,
        });
        assert_eq!(refuse(&mut s, "web", "node3"), "node3 is down");
        assert_eq!(
            s.apply(Command::MoveGroup {
                group: n("nope"),
                node: n("node1"),
                for_ms: None
            }),
            Outcome::UnknownGroup { group: n("nope") }
        );
        assert_eq!(
            s.apply(Command::MoveGroup {
                group: n("web"),
                node: n("node9"),
                for_ms: None
            }),
            Outcome::UnknownNode { node: n("node9") }
        );
    }

    #[test]
    fn standby_empties_a_node_and_clearing_it_ends_it() {
        let mut s = applied();
        assert_eq!(node_of(&s, "api").as_deref(), Some("node2"));
        let out = at(
            &mut s,
            2_000,
            Command::Standby {
                node: n("node2"),
                for_ms: None,
            },
        );
        assert_eq!(out, Outcome::OverrideSet { until_ms: None });
        assert!(s.groups_on(&n("node2")).is_empty());
        assert_eq!(node_of(&s, "api").as_deref(), Some("node3"));
        assert!(details(&s, EventKind::Moved).contains(
            &"api moved from node2 to node3: node2 is on standby (asctl standby)".into()
        ));
        // Another node's standby is not touched by unstandby node2.
        at(
            &mut s,
            2_500,
            Command::Standby {
                node: n("node1"),
                for_ms: Some(60_000),
            },
        );
        let out = at(
            &mut s,
            3_000,
            Command::ClearOverrides {
                group: None,
                node: Some(n("node2")),
            },
        );
        assert_eq!(
            out,
            Outcome::OverridesCleared {
                removed: vec!["standby node2".into()]
            }
        );
        assert_eq!(s.overrides.standby.len(), 1);
        // api has failback: manual: it stays where it went.
        assert_eq!(node_of(&s, "api").as_deref(), Some("node3"));
        // The overrides survive a snapshot, events included.
        let text = serde_json::to_string(&s).expect("serialises");
        let mut back: DomainState = serde_json::from_str(&text).expect("parses");
        back.restore();
        assert_eq!(back, s);
    }

    #[test]
    fn a_lost_node_and_the_failover_it_causes_are_recorded_with_the_evidence() {
        let mut s = applied();
        let mut down = all_up();
        down.insert(n("node1"), NodeState::Down);
        let Some(decision) = crate::domain::leader::decide(&s, down) else {
            panic!("a decision")
        };
        let stamped = Command::Stamped {
            at_ms: 5_000,
            by: None,
            note: None,
            evidence: [(
                n("node1"),
                "silent on lo-a, lo-b; verification line lo-v silent".into(),
            )]
            .into_iter()
            .collect(),
            stamped: Box::new(decision),
        };
        assert_eq!(s.apply(stamped), Outcome::Done);
        assert_eq!(
            details(&s, EventKind::NodeLost),
            vec!["node1 lost: silent on lo-a, lo-b; verification line lo-v silent"]
        );
        let failovers = details(&s, EventKind::Failover);
        assert!(
            failovers.contains(&"web failed over from node1 to node2: node1 was lost".into()),
            "{failovers:?}"
        );
        let last = s.events.after(0).pop().expect("events");
        assert_eq!(last.at_ms, 5_000);
        assert_eq!(last.by, None, "a failover is nobody's request");
    }
}
