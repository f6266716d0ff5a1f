//! The replicated state of a domain and the commands that change it.
//!
//! Pure: [`DomainState::apply`] is the state machine every member runs on
//! the committed log, so it must give the same result everywhere — no
//! clock, no I/O, no randomness. The raft plumbing around it lives in
//! [`super::store`].
//!
//! - [`command`]: the commands written to the log, their outcomes and
//!   [`DomainState::apply`].
//! - [`documents`]: turning stored documents back into a configuration, and
//!   the validation every configuration passes before it is committed.
//! - [`events`]: the domain's history, a bounded ring derived from the
//!   commands applied.
//! - [`overrides`]: the operator's overrides (`asctl move`, `standby`) as
//!   commands.

mod command;
mod documents;
mod events;
mod overrides;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{Config, Heartbeat, Name};
use crate::plan::overrides::Overrides;
use crate::plan::{Health, LiveState, NodeState, Placement, Unclean};
use crate::wire::{GroupState, NodeReport};

pub use command::{Command, Outcome};
pub use documents::{config_from_documents, validate_documents};
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
    /// Per node, the newest entry of its fencing journal recorded in the
    /// history ([`Command::SelfFenced`]): older ones submitted again are
    /// not recorded twice, and the node stops submitting them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub self_fencings_seen: BTreeMap<Name, u64>,
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
            && self.self_fencings_seen == other.self_fencings_seen
    }
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

    /// Per group, the nodes whose last report says they may still hold its
    /// storage (a stop failed there). A node that went silent stays so: only
    /// its own clean report or an operator's `confirm-down` clears it.
    pub fn unclean(&self) -> Unclean {
        let mut out = Unclean::new();
        for (node, r) in &self.nodes {
            let Some(rep) = &r.last_report else { continue };
            for (group, s) in &rep.groups {
                if s.unclean.is_some() {
                    out.entry(group.clone()).or_default().insert(node.clone());
                }
            }
        }
        out
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
}
