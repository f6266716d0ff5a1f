//! The replicated state of a domain and the commands that change it.
//!
//! Pure: [`DomainState::apply`] is the state machine every member runs on
//! the committed log, so it must give the same result everywhere — no
//! clock, no I/O, no randomness. The raft plumbing around it lives in
//! [`super::store`].

mod events;
mod overrides;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::load::load_texts;
use crate::model::{Config, Heartbeat, Name};
use crate::plan::overrides::Overrides;
use crate::plan::{Health, LiveState, NodeState, Placement, carry_over, place_with};
use crate::wire::{EventKind, GroupState, NodeReport};

pub use events::{EVENTS_KEPT, EventLog};

/// What the domain knows about one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    /// Up or Down, as the leader last decided.
    pub state: NodeState,
    /// The node's last report that differed from the one before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_report: Option<NodeReport>,
}

/// The replicated domain database.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainState {
    /// Bumped by every applied configuration; 0 before the first.
    pub generation: u64,
    /// The applied configuration as canonical JSON documents
    /// ([`crate::plan::documents`]).
    pub documents: Vec<String>,
    pub placement: Placement,
    /// Per group, the number of the placement change that last changed its
    /// entry ([`Self::revision_of`]): a node's local takeover names the
    /// revision it overrode, so the leader adopts it only while no decision
    /// about the group came after (local takeover: docs/ha.md).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revisions: BTreeMap<Name, u64>,
    /// The number of the latest placement change.
    #[serde(default)]
    pub placement_revision: u64,
    /// Bumped by every command that changes what the leader decides from:
    /// an applied configuration, a placement decision, cleared failures.
    /// A leader's decision names the count it was computed at
    /// ([`Command::SetPlacement`]'s `base`), and is ignored if anything
    /// came in between — a decision is only ever about the state it saw.
    #[serde(default)]
    pub decisions: u64,
    pub nodes: BTreeMap<Name, NodeRecord>,
    /// The operator's overrides (`asctl move`, `asctl standby`), expired
    /// ones included until the leader removes them.
    #[serde(default, skip_serializing_if = "Overrides::is_empty")]
    pub overrides: Overrides,
    /// The domain's history, bounded ([`EVENTS_KEPT`]).
    #[serde(default, skip_serializing_if = "EventLog::is_empty")]
    pub events: EventLog,
    /// The time of the newest stamped command applied (ms since the Unix
    /// epoch, the leader's clock): the state machine's only notion of now,
    /// so every member computes the same expiries and event times.
    #[serde(default)]
    pub clock_ms: u64,
    /// `documents`, typed; rebuilt on load rather than replicated.
    #[serde(skip)]
    config: Option<Arc<Config>>,
    /// What the stamp of the command being applied says besides its time.
    #[serde(skip)]
    stamp: StampInfo,
}

/// Who asked for the command being applied, and the leader's evidence about
/// nodes ([`Command::Stamped`]).
#[derive(Debug, Clone, Default)]
struct StampInfo {
    by: Option<String>,
    evidence: BTreeMap<Name, String>,
}

impl PartialEq for DomainState {
    fn eq(&self, other: &Self) -> bool {
        self.generation == other.generation
            && self.documents == other.documents
            && self.placement == other.placement
            && self.revisions == other.revisions
            && self.decisions == other.decisions
            && self.nodes == other.nodes
            && self.overrides == other.overrides
            && self.events == other.events
            && self.clock_ms == other.clock_ms
    }
}

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

/// Reads canonical documents back into a configuration. They go through the
/// same loader as files (JSON is YAML), so there is one way to turn text into
/// a [`Config`].
pub fn config_from_documents(documents: &[String]) -> Result<Config, String> {
    let names: Vec<String> = (0..documents.len())
        .map(|i| format!("domain/{i}.json"))
        .collect();
    let loaded = load_texts(
        names
            .iter()
            .zip(documents)
            .map(|(n, d)| (n.as_str(), d.as_bytes())),
    );
    if let Some(f) = loaded
        .findings
        .iter()
        .find(|f| f.severity == crate::diag::Severity::Error)
    {
        return Err(f.message.clone());
    }
    Ok(loaded.config)
}

/// Validates documents before they are committed: the loader and every rule,
/// as `asctl validate` runs them. `Err` carries the findings, rendered (the
/// documents are named `apply/<n>.json`).
///
/// The one gate for every configuration the domain commits, whichever way it
/// came (`POST /v1/apply`, a raw `POST /v1/write`, a member forwarding):
/// [`super::Replica::write_local`] runs it before raft sees the command. The
/// state machine ([`DomainState::apply`]) does not: it replays committed
/// entries, and a rule added by a newer asctl must not make members disagree
/// about an entry committed under an older one.
pub fn validate_documents(documents: &[String]) -> Result<(), String> {
    let names: Vec<String> = (0..documents.len())
        .map(|i| format!("apply/{i}.json"))
        .collect();
    let loaded = load_texts(
        names
            .iter()
            .zip(documents)
            .map(|(n, d)| (n.as_str(), d.as_bytes())),
    );
    // What the domain runs is one whole domain: the checks `plan` and
    // `apply` make first, made again here for every route a write comes by.
    if let Err(e) = loaded.single_domain() {
        return Err(format!(
            "the configuration is not one domain: {e}; nothing was applied"
        ));
    }
    let validation = crate::rules::validate(loaded);
    if !validation.has_errors() {
        return Ok(());
    }
    let text = crate::diag::render_human(
        &validation.findings,
        &validation.loaded.sources,
        validation.loaded.docs.len(),
    );
    Err(format!(
        "the configuration has errors; nothing was applied\n{text}"
    ))
}

impl DomainState {
    /// The placement change that last changed `group`'s entry (0: none).
    pub fn revision_of(&self, group: &Name) -> u64 {
        self.revisions.get(group).copied().unwrap_or(0)
    }

    fn set_placement(&mut self, placement: Placement) {
        let changed: Vec<Name> = placement
            .keys()
            .chain(self.placement.keys())
            .filter(|g| placement.get(*g) != self.placement.get(*g))
            .cloned()
            .collect();
        if !changed.is_empty() {
            self.placement_revision += 1;
            for g in changed {
                self.revisions.insert(g, self.placement_revision);
            }
        }
        self.revisions.retain(|g, _| placement.contains_key(g));
        self.placement = placement;
    }

    /// The applied configuration, if any.
    /// The applied heartbeat settings: `None` before a configuration with a
    /// Domain is applied (callers fall back to `Heartbeat::default()`). The
    /// one place the runtime reads them from.
    pub fn heartbeat(&self) -> Option<Heartbeat> {
        self.config()?
            .domain
            .as_ref()
            .map(|d| d.spec.heartbeat.clone())
    }

    pub fn config(&self) -> Option<Arc<Config>> {
        if self.documents.is_empty() {
            return None;
        }
        self.config.clone()
    }

    /// Rebuilds the typed configuration after deserialising.
    pub fn restore(&mut self) {
        self.config = if self.documents.is_empty() {
            None
        } else {
            // Documents are only ever stored after they loaded once, so a
            // failure here means the file was damaged; run without a config
            // rather than crash, and let the next apply replace it.
            match config_from_documents(&self.documents) {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    tracing::error!("the stored configuration does not load: {e}");
                    None
                }
            }
        };
    }

    /// Node states as the domain sees them.
    pub fn health(&self) -> Health {
        self.nodes
            .iter()
            .map(|(n, r)| (n.clone(), r.state))
            .collect()
    }

    /// Groups placed on `node`.
    pub fn groups_on(&self, node: &Name) -> BTreeSet<Name> {
        self.placement
            .iter()
            .filter(|(_, p)| p.node.as_ref() == Some(node))
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// The live state as `plan` needs it.
    pub fn live(&self) -> LiveState {
        LiveState {
            generation: self.generation,
            config: self.config().map(|c| (*c).clone()),
            placement: self.placement.clone(),
            health: self.health(),
            overrides: self.overrides.clone(),
            now_ms: self.clock_ms,
        }
    }

    /// Where `group` is reported online (or on its way), by node.
    pub fn reported(&self, group: &Name) -> Vec<(Name, GroupState)> {
        self.nodes
            .iter()
            .filter_map(|(n, r)| {
                let s = r.last_report.as_ref()?.groups.get(group)?;
                Some((n.clone(), s.state))
            })
            .collect()
    }

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
            } => {
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
                    &self.overrides,
                    self.clock_ms,
                );
                // A node removed from the configuration is no longer the
                // domain's: its record (state, last report) goes with it.
                self.nodes
                    .retain(|n, _| new.nodes.iter().any(|x| x.name() == n));
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
            Command::SetPlacement {
                generation,
                placement,
                health,
                base,
            } => {
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
            Command::NodeReport { report } => {
                let node = report.node.clone();
                // Reports of a node that is not (or no longer, or not yet)
                // in the configuration say nothing about the domain.
                if let Some(config) = self.config() {
                    if !config.nodes.iter().any(|n| *n.name() == node) {
                        return Outcome::Ignored;
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
            Command::ClearFailures { group, node } => {
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::documents::to_document_texts;

    fn quickstart() -> Vec<String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart");
        let loaded = crate::load::load(&[crate::load::Input::Path(dir.into())]).expect("loads");
        to_document_texts(&loaded.config)
    }

    fn up(state: &mut DomainState) {
        let health = ["node1", "node2", "node3"]
            .iter()
            .map(|n| (n.parse().expect("name"), NodeState::Up))
            .collect();
        state.apply(Command::SetPlacement {
            generation: state.generation,
            placement: state.placement.clone(),
            health,
            base: None,
        });
    }

    #[test]
    fn a_decision_taken_on_a_state_that_moved_on_changes_nothing() {
        let mut s = DomainState::default();
        up(&mut s);
        s.apply(Command::ApplyConfig {
            base_generation: 0,
            documents: quickstart(),
        });
        let name = |n: &str| -> Name { n.parse().expect("name") };
        let moved = |to: &str, down: &str| {
            let mut p = s.placement.clone();
            p.get_mut("web").expect("web").node = Some(name(to));
            let mut health = s.health();
            health.insert(name(down), NodeState::Down);
            (p, health)
        };
        // Two leaders decided on the same state: the one committed first wins.
        let base = s.decisions;
        let (first, h1) = moved("node2", "node1");
        let (stale, h2) = moved("node3", "node2");
        let out = s.apply(Command::SetPlacement {
            generation: s.generation,
            placement: first.clone(),
            health: h1,
            base: Some(base),
        });
        assert_eq!(out, Outcome::Done);
        assert_eq!(s.decisions, base + 1);
        let before = s.clone();
        let out = s.apply(Command::SetPlacement {
            generation: s.generation,
            placement: stale,
            health: h2,
            base: Some(base),
        });
        assert_eq!(out, Outcome::Ignored);
        // Neither its placement nor its health: node2 stays up.
        assert_eq!(s, before);
        assert_eq!(s.nodes.get("node2").map(|r| r.state), Some(NodeState::Up));
        // A configuration and cleared failures count as decisions too.
        let d = s.decisions;
        s.apply(Command::ApplyConfig {
            base_generation: s.generation,
            documents: quickstart(),
        });
        assert_eq!(s.decisions, d + 1);
    }

    #[test]
    fn apply_places_groups_and_refuses_a_stale_base() {
        let mut s = DomainState::default();
        up(&mut s);
        let docs = quickstart();
        let out = s.apply(Command::ApplyConfig {
            base_generation: 0,
            documents: docs.clone(),
        });
        assert_eq!(out, Outcome::Applied { generation: 1 });
        let web = s.placement.get("web").and_then(|p| p.node.clone());
        assert_eq!(web.as_ref().map(Name::as_str), Some("node1"));
        let before = s.clone();
        let out = s.apply(Command::ApplyConfig {
            base_generation: 0,
            documents: vec![],
        });
        assert_eq!(
            out,
            Outcome::Stale {
                expected: 0,
                current: 1
            }
        );
        assert_eq!(s, before, "a refused apply changes nothing");
    }

    #[test]
    fn validation_runs_the_rules_not_just_the_loader() {
        assert_eq!(validate_documents(&quickstart()), Ok(()));
        // Loads (schema and types are fine) but a rule refuses it: the
        // state machine alone would have applied it.
        let mut docs = quickstart();
        docs.push(
            r#"{"apiVersion":"asctl/v1","kind":"ResourceGroup","metadata":{"name":"x"},"spec":{"preferredNodes":["nowhere"]}}"#
                .into(),
        );
        assert!(config_from_documents(&docs).is_ok());
        let err = validate_documents(&docs).expect_err("refused");
        assert!(err.contains("nothing was applied"), "{err}");
        assert!(err.contains("nowhere"), "{err}");
    }

    #[test]
    fn placement_for_an_old_generation_is_ignored() {
        let mut s = DomainState::default();
        up(&mut s);
        s.apply(Command::ApplyConfig {
            base_generation: 0,
            documents: quickstart(),
        });
        let out = s.apply(Command::SetPlacement {
            generation: 0,
            placement: Placement::new(),
            health: Health::new(),
            base: None,
        });
        assert_eq!(out, Outcome::Ignored);
        assert_eq!(s.placement.len(), 3);
    }

    #[test]
    fn reports_of_nodes_outside_the_configuration_are_ignored() {
        let mut s = DomainState::default();
        up(&mut s);
        let report = |node: &str| Command::NodeReport {
            report: NodeReport {
                node: node.parse().expect("name"),
                generation_seen: 0,
                groups: Default::default(),
                taken_over: Default::default(),
                failed_peers: Default::default(),
                alive_peers: Default::default(),
            },
        };
        // Before any configuration, every member's report counts.
        assert_eq!(s.apply(report("node9")), Outcome::Done);
        s.apply(Command::ApplyConfig {
            base_generation: 0,
            documents: quickstart(),
        });
        assert!(!s.nodes.contains_key("node9"), "dropped with the apply");
        assert_eq!(s.apply(report("node9")), Outcome::Ignored);
        assert!(!s.nodes.contains_key("node9"));
        assert_eq!(s.apply(report("node1")), Outcome::Done);
    }

    #[test]
    fn clear_failures_removes_one_node_or_all_and_refuses_unknown_names() {
        let mut s = DomainState::default();
        up(&mut s);
        s.apply(Command::ApplyConfig {
            base_generation: 0,
            documents: quickstart(),
        });
        let n = |x: &str| -> Name { x.parse().expect("name") };
        let web = s.placement.get_mut("web").expect("web placed");
        web.failed_on = [n("node1"), n("node2")].into_iter().collect();
        let placed = web.node.clone();
        let revision = s.revision_of(&n("web"));
        let before = s.clone();

        let out = s.apply(Command::ClearFailures {
            group: n("nope"),
            node: None,
        });
        assert_eq!(out, Outcome::UnknownGroup { group: n("nope") });
        assert_eq!(s, before, "an unknown group changes nothing");
        let out = s.apply(Command::ClearFailures {
            group: n("web"),
            node: Some(n("node9")),
        });
        assert_eq!(out, Outcome::UnknownNode { node: n("node9") });
        assert_eq!(s, before, "an unknown node changes nothing");

        let out = s.apply(Command::ClearFailures {
            group: n("web"),
            node: Some(n("node2")),
        });
        assert_eq!(
            out,
            Outcome::Cleared {
                group: n("web"),
                nodes: vec![n("node2")]
            }
        );
        let web = &s.placement["web"];
        assert_eq!(web.failed_on, [n("node1")].into_iter().collect());
        assert_eq!(web.node, placed, "clearing places nothing itself");
        assert_eq!(s.revision_of(&n("web")), revision);
        // Again: nothing left to clear on node2.
        let out = s.apply(Command::ClearFailures {
            group: n("web"),
            node: Some(n("node2")),
        });
        assert_eq!(
            out,
            Outcome::Cleared {
                group: n("web"),
                nodes: vec![]
            }
        );

        s.placement.get_mut("web").expect("web").failed_on =
            [n("node1"), n("node3")].into_iter().collect();
        let out = s.apply(Command::ClearFailures {
            group: n("web"),
            node: None,
        });
        assert_eq!(
            out,
            Outcome::Cleared {
                group: n("web"),
                nodes: vec![n("node1"), n("node3")]
            }
        );
        assert!(s.placement["web"].failed_on.is_empty());
        // Other groups are untouched.
        assert_eq!(s.placement["api"], before.placement["api"]);
    }

    #[test]
    fn clear_failures_before_any_configuration_is_an_unknown_group() {
        let mut s = DomainState::default();
        let out = s.apply(Command::ClearFailures {
            group: "web".parse().expect("name"),
            node: None,
        });
        assert_eq!(
            out,
            Outcome::UnknownGroup {
                group: "web".parse().expect("name")
            }
        );
    }

    #[test]
    fn clear_failures_is_a_tagged_camel_case_command() {
        let cmd = Command::ClearFailures {
            group: "web".parse().expect("name"),
            node: Some("node1".parse().expect("name")),
        };
        let text = serde_json::to_string(&cmd).expect("serialises");
        assert_eq!(
            text,
            r#"{"command":"clearFailures","group":"web","node":"node1"}"#
        );
        let all: Command =
            serde_json::from_str(r#"{"command":"clearFailures","group":"web"}"#).expect("parses");
        assert_eq!(
            all,
            Command::ClearFailures {
                group: "web".parse().expect("name"),
                node: None
            }
        );
        let out = serde_json::to_string(&Outcome::UnknownGroup {
            group: "web".parse().expect("name"),
        })
        .expect("serialises");
        assert_eq!(out, r#"{"outcome":"unknownGroup","group":"web"}"#);
    }

    #[test]
    fn state_round_trips_through_json_with_its_config() {
        let mut s = DomainState::default();
        up(&mut s);
        s.apply(Command::ApplyConfig {
            base_generation: 0,
            documents: quickstart(),
        });
        let text = serde_json::to_string(&s).expect("serialises");
        let mut back: DomainState = serde_json::from_str(&text).expect("parses");
        back.restore();
        assert_eq!(back, s);
        assert_eq!(back.config(), s.config());
    }
}
