//! The domain's history (`GET /v1/events`, `asctl events`): what happened,
//! when, where, and why, as the leader committed it.

use serde::{Deserialize, Serialize};

use crate::model::Name;

/// What kind of thing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EventKind {
    /// A configuration was applied (its generation, by whom).
    Apply,
    /// The leader declared a node down (with the detector's evidence when
    /// it has some: which lines went silent).
    NodeLost,
    /// A node that was down is up again.
    NodeBack,
    /// A group left its node because the node was lost or the group failed
    /// there.
    Failover,
    /// A group moved for another reason: an override, standby, failback,
    /// a configuration change.
    Moved,
    /// A group that ran nowhere was placed on a node.
    Placed,
    /// A group was left without a node.
    Offline,
    /// A node restarted a group in place after a failure.
    Restart,
    /// A node reported a group failed (restart limit reached, or it could
    /// not start).
    GroupFailed,
    /// A node started a group by local takeover (two nodes, no witness).
    Takeover,
    /// An operator override was given, cleared, or expired.
    Override,
    /// Fencing: a node reported it may still hold a group's storage (a stop
    /// failed there, the group starts nowhere), an operator confirmed the
    /// node down (`asctl confirm-down`), or a node fenced itself while out
    /// of contact ([`SelfFencing`], at the node's time, with its cause).
    Fencing,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Apply => "apply",
            EventKind::NodeLost => "nodeLost",
            EventKind::NodeBack => "nodeBack",
            EventKind::Failover => "failover",
            EventKind::Moved => "moved",
            EventKind::Placed => "placed",
            EventKind::Offline => "offline",
            EventKind::Restart => "restart",
            EventKind::GroupFailed => "groupFailed",
            EventKind::Takeover => "takeover",
            EventKind::Override => "override",
            EventKind::Fencing => "fencing",
        }
    }
}

/// One entry of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Its number: increasing by one, the same on every member.
    pub seq: u64,
    /// When the leader committed it, in ms since the Unix epoch.
    pub at_ms: u64,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Name>,
    /// What happened and why, in a sentence.
    pub detail: String,
    /// Who asked for it (applies and overrides): the name the CLI gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// The answer of `GET /v1/events?after=SEQ`: the events after `SEQ` (all
/// that are kept without it), oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsView {
    pub format_version: u32,
    pub events: Vec<Event>,
    /// The number of the newest event (0: none yet), to ask for what
    /// follows it.
    pub last_seq: u64,
}

/// A fence a node put on itself (every group taken offline here: isolated,
/// out of quorum, frozen, a lease that ran out, a fail-stop) while it could
/// not commit anything. Kept in the node's fencing journal
/// (`crate::agent::journal`) and submitted to the domain once the node is
/// back in contact ([`crate::domain::Command::SelfFenced`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelfFencing {
    /// Numbered by the node, increasing: the domain records each number of
    /// a node once, however often it is submitted.
    pub seq: u64,
    /// When the node fenced itself, by its own clock (ms since the Unix
    /// epoch).
    pub at_ms: u64,
    /// Why, in words.
    pub cause: String,
    /// The groups it ran then (what the fence took offline).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Name>,
}
