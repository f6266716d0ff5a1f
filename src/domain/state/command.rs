//! The commands written to the domain's log, their outcomes, and the state
//! machine that applies them ([`DomainState::apply`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{DomainState, NodeRecord, StampInfo, config_from_documents};
use crate::model::Name;
use crate::plan::{Health, NodeState, Placement, carry_over, place_with};
use crate::wire::{EventKind, GroupState, NodeReport, SelfFencing};

/// A change to the domain, as written to the replicated log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "command")]
pub enum Command {
    /// Replace the configuration. Refused unless `base_generation` is the
    /// current generation, so two concurrent applies cannot both win.
    ApplyConfig {
        base_generation: u64,
        documents: Vec<String>,
    },
    /// The leader's decision on node health and placement for `generation`;
    /// ignored when a configuration was applied in between (it was decided
    /// for a configuration that is gone).
    SetPlacement {
        generation: u64,
        placement: Placement,
        health: Health,
        /// [`DomainState::decisions`] when the leader decided: the whole
        /// command (health included) is ignored when it differs, so a
        /// decision taken on a state that has moved on — one a deposed
        /// leader appended while cut off, committed later — changes
        /// nothing. `None` (entries written before this field) is not
        /// checked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base: Option<u64>,
    },
    /// A node's report of its groups.
    NodeReport { report: NodeReport },
    /// An operator clears a group's failures (`asctl clear`): `node` (every
    /// node when `None`) leaves the group's `failed_on`, so the leader may
    /// place the group there again on its next pass. The group's placed node
    /// and its revision are left alone: this is not a placement decision (a
    /// local takeover that overrode the current revision is still adopted).
    ClearFailures {
        group: Name,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<Name>,
    },
    /// An operator says `node` is really off (`asctl confirm-down`): the
    /// groups it was unclean for (its last report says a storage stop
    /// failed there) forget that, so the leader may place them again. Its
    /// next report, if it ever sends one, counts as usual.
    ConfirmDown { node: Name },
    /// `asctl move GROUP NODE [--for D]`: run the group on the node (while
    /// the node is eligible for it) until `for_ms` has passed or the
    /// override is cleared. Refused when the rules do not let the group run
    /// there ([`DomainState::move_refusal`]).
    MoveGroup {
        group: Name,
        node: Name,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_ms: Option<u64>,
    },
    /// `asctl standby NODE [--for D]`: the node takes no group, as with
    /// `standby: true`.
    Standby {
        node: Name,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_ms: Option<u64>,
    },
    /// `asctl clear` / `asctl unstandby`: removes the move of `group` and
    /// the standby of `node`; every override when both are `None`.
    ClearOverrides {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<Name>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<Name>,
    },
    /// The leader removes the overrides that have ended by the stamp's time.
    ExpireOverrides,
    /// `node` fenced itself while it could not commit (its fencing
    /// journal): each entry is recorded once, at the node's time, however
    /// often the node submits it ([`DomainState::self_fencings_seen`]).
    SelfFenced {
        node: Name,
        fencings: Vec<SelfFencing>,
    },
    /// `stamped`, with the time the leader committed it (its clock, ms since
    /// the Unix epoch), who asked for it (the name the CLI gave) and the
    /// leader's evidence about nodes it declares lost. The leader stamps
    /// every command it commits ([`super::Replica::write_local`]).
    Stamped {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        evidence: BTreeMap<Name, String>,
        stamped: Box<Command>,
    },
}

impl Command {
    /// The command under any stamp.
    pub fn inner(&self) -> &Command {
        match self {
            Command::Stamped { stamped, .. } => stamped.inner(),
            c => c,
        }
    }

    /// `self`, asked for by `by` (stamped with its time when committed).
    pub fn by(self, by: Option<String>) -> Command {
        match self {
            Command::Stamped {
                at_ms,
                evidence,
                stamped,
                ..
            } => Command::Stamped {
                at_ms,
                by,
                evidence,
                stamped,
            },
            c => Command::Stamped {
                at_ms: 0,
                by,
                evidence: BTreeMap::new(),
                stamped: Box::new(c),
            },
        }
    }

    /// `self` stamped with the time `at_ms` (keeping who and why).
    pub fn at(self, at_ms: u64) -> Command {
        match self {
            Command::Stamped {
                by,
                evidence,
                stamped,
                ..
            } => Command::Stamped {
                at_ms,
                by,
                evidence,
                stamped: Box::new(stamped.unstamped()),
            },
            c => Command::Stamped {
                at_ms,
                by: None,
                evidence: BTreeMap::new(),
                stamped: Box::new(c),
            },
        }
    }

    fn unstamped(self) -> Command {
        match self {
            Command::Stamped { stamped, .. } => stamped.unstamped(),
            c => c,
        }
    }
}

/// The outcome of a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Outcome {
    /// A configuration was applied; this is its generation.
    Applied {
        generation: u64,
    },
    /// The configuration was not applied: the domain is not at the base
    /// generation any more.
    Stale {
        expected: u64,
        current: u64,
    },
    /// The configuration was not applied: it has validation errors
    /// ([`validate_documents`], checked before it is committed), or, as a
    /// committed entry, its documents do not load (a bug).
    Invalid {
        message: String,
    },
    Done,
    Ignored,
    /// [`Command::ClearFailures`] ran: the nodes that left the group's
    /// `failed_on` (empty when there was nothing to clear).
    Cleared {
        group: Name,
        nodes: Vec<Name>,
    },
    /// [`Command::ConfirmDown`] ran: the groups `node` was unclean for
    /// (empty when it was unclean for none).
    ConfirmedDown {
        node: Name,
        groups: Vec<Name>,
    },
    /// [`Command::ClearFailures`] named a group the applied configuration
    /// does not have; nothing changed.
    UnknownGroup {
        group: Name,
    },
    /// [`Command::ClearFailures`] named a node the applied configuration
    /// does not have; nothing changed.
    UnknownNode {
        node: Name,
    },
    /// An override was given; it ends at `until_ms` (never: `None`).
    OverrideSet {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_ms: Option<u64>,
    },
    /// A move the rules do not allow; nothing changed.
    Refused {
        reason: String,
    },
    /// [`Command::ClearOverrides`] / [`Command::ExpireOverrides`] ran: the
    /// overrides removed (empty when there was none).
    OverridesCleared {
        removed: Vec<String>,
    },
}

impl DomainState {
    /// Applies one committed command.
    pub fn apply(&mut self, command: Command) -> Outcome {
        match command {
            Command::Stamped {
                at_ms,
                by,
                evidence,
                stamped,
            } => {
                self.clock_ms = self.clock_ms.max(at_ms);
                self.stamp = StampInfo { by, evidence };
                let out = self.apply(*stamped);
                self.stamp = StampInfo::default();
                out
            }
            Command::MoveGroup {
                group,
                node,
                for_ms,
            } => self.move_group(group, node, for_ms),
            Command::Standby { node, for_ms } => self.standby(node, for_ms),
            Command::ClearOverrides { group, node } => self.clear_overrides(group, node),
            Command::ExpireOverrides => self.expire_overrides(),
            Command::ApplyConfig {
                base_generation,
                documents,
            } => self.apply_config(base_generation, documents),
            Command::SetPlacement {
                generation,
                placement,
                health,
                base,
            } => self.apply_placement(generation, placement, health, base),
            Command::NodeReport { report } => self.apply_report(report),
            Command::ClearFailures { group, node } => self.clear_failures(group, node),
            Command::ConfirmDown { node } => self.confirm_down(node),
            Command::SelfFenced { node, fencings } => self.record_self_fencings(&node, fencings),
        }
    }

    fn apply_config(&mut self, base_generation: u64, documents: Vec<String>) -> Outcome {
        if base_generation != self.generation {
            return Outcome::Stale {
                expected: base_generation,
                current: self.generation,
            };
        }
        let new = match config_from_documents(&documents) {
            Ok(c) => c,
            Err(message) => return Outcome::Invalid { message },
        };
        // The commit places the groups at once, with the health the
        // domain has committed: exactly what `plan` predicted from the
        // same live state (`Plan::compute`).
        let old = self.config();
        let carried = carry_over(old.as_deref(), &new, &self.placement);
        self.prune_overrides(&new);
        let placement = place_with(
            &new,
            &self.health(),
            &carried,
            &self.unclean(),
            &self.overrides,
            self.clock_ms,
        );
        // A node removed from the configuration is no longer the
        // domain's: its record (state, last report) goes with it — unless
        // it last reported a group still running there. That record is
        // what makes the group's new node wait for the stop (break before
        // make); the removed node's own report of the stop then drops it.
        self.nodes.retain(|n, r| {
            new.nodes.iter().any(|x| x.name() == n)
                || r.last_report.as_ref().is_some_and(holds_a_group)
        });
        self.generation += 1;
        self.decisions += 1;
        self.documents = documents;
        self.config = Some(Arc::new(new));
        let detail = format!("generation {} applied", self.generation);
        self.record(EventKind::Apply, None, None, detail);
        self.record_placement(&placement, &BTreeSet::new());
        self.set_placement(placement);
        Outcome::Applied {
            generation: self.generation,
        }
    }

    fn apply_placement(
        &mut self,
        generation: u64,
        placement: Placement,
        health: Health,
        base: Option<u64>,
    ) -> Outcome {
        if base.is_some_and(|b| b != self.decisions) {
            return Outcome::Ignored;
        }
        self.decisions += 1;
        self.record_health(&health);
        for (node, state) in health {
            self.nodes
                .entry(node)
                .and_modify(|r| r.state = state)
                .or_insert(NodeRecord {
                    state,
                    last_report: None,
                });
        }
        if generation != self.generation {
            return Outcome::Ignored;
        }
        self.record_placement(&placement, &BTreeSet::new());
        self.set_placement(placement);
        Outcome::Done
    }

    fn apply_report(&mut self, report: NodeReport) -> Outcome {
        let node = report.node.clone();
        // Reports of a node that is not (or no longer, or not yet)
        // in the configuration say nothing about the domain.
        if let Some(config) = self.config() {
            if !config.nodes.iter().any(|n| *n.name() == node) {
                // A removed node still stopping what it ran: its report
                // counts until it holds nothing, then its record goes.
                let Some(record) = self.nodes.get_mut(&node) else {
                    return Outcome::Ignored;
                };
                if holds_a_group(&report) {
                    record.last_report = Some(report);
                } else {
                    self.nodes.remove(&node);
                }
                return Outcome::Done;
            }
        }
        self.record_report(&report);
        self.nodes
            .entry(node)
            .or_insert(NodeRecord {
                state: NodeState::Down,
                last_report: None,
            })
            .last_report = Some(report);
        Outcome::Done
    }

    fn clear_failures(&mut self, group: Name, node: Option<Name>) -> Outcome {
        let known_group = self
            .config()
            .is_some_and(|c| c.groups.get(group.as_str()).is_some());
        let Some(p) = self.placement.get_mut(&group).filter(|_| known_group) else {
            return Outcome::UnknownGroup { group };
        };
        let nodes: Vec<Name> = match node {
            Some(node) => {
                let known_node = self
                    .config
                    .as_ref()
                    .is_some_and(|c| c.nodes.iter().any(|n| *n.name() == node));
                if !known_node {
                    return Outcome::UnknownNode { node };
                }
                if p.failed_on.remove(&node) {
                    vec![node]
                } else {
                    vec![]
                }
            }
            None => std::mem::take(&mut p.failed_on).into_iter().collect(),
        };
        if !nodes.is_empty() {
            self.decisions += 1;
        }
        Outcome::Cleared { group, nodes }
    }

    fn confirm_down(&mut self, node: Name) -> Outcome {
        let known = self
            .config()
            .is_some_and(|c| c.nodes.iter().any(|n| *n.name() == node));
        if !known {
            return Outcome::UnknownNode { node };
        }
        let mut groups = Vec::new();
        if let Some(rep) = self
            .nodes
            .get_mut(&node)
            .and_then(|r| r.last_report.as_mut())
        {
            for (g, s) in rep.groups.iter_mut() {
                if s.unclean.take().is_some() {
                    groups.push(g.clone());
                }
            }
        }
        if !groups.is_empty() {
            self.decisions += 1;
            let names: Vec<&str> = groups.iter().map(Name::as_str).collect();
            let detail = format!(
                "an operator confirmed {node} down: {} may start elsewhere",
                names.join(", ")
            );
            self.record(EventKind::Fencing, Some(&node), None, detail);
        }
        Outcome::ConfirmedDown { node, groups }
    }
}

/// The report has a group starting, online or stopping on its node.
fn holds_a_group(report: &NodeReport) -> bool {
    report.groups.values().any(|g| {
        matches!(
            g.state,
            GroupState::Starting | GroupState::Online | GroupState::Stopping
        )
    })
}
