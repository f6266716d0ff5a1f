//! What a node reports about itself: its groups' states, the groups it runs
//! by local takeover, and its failure detector's verdicts on its peers.
//! Sent by every agent to the leader (`POST /v1/report`), committed in the
//! domain state, shown by `asctl status`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::model::Name;

/// Where a group stands on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GroupState {
    Offline,
    Starting,
    Online,
    Stopping,
    /// Gave up on this node (restart limit reached, or a resource that cannot
    /// work here); offline here until its spec changes or it moves.
    Failed,
}

/// One group's state on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalGroupStatus {
    pub state: GroupState,
    /// When the group entered `state`.
    #[serde(with = "rfc3339")]
    pub since: SystemTime,
    /// Local restarts after failures since the group was placed on this node.
    pub restarts: u32,
    /// Why the group is in this state, when there is more to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Set while this node may still hold the group's storage because its
    /// stop failed (an unmount refused, an OCF `stop` failed or timed out):
    /// the cause. The leader places the group nowhere while any node is
    /// unclean for it (`asctl confirm-down` overrides, docs/storage.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unclean: Option<String>,
    /// Failed because the group's configuration is invalid anywhere (an OCF
    /// agent answered 6, `OCF_ERR_CONFIGURED`): the leader marks it failed
    /// on every node at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fatal: bool,
}

/// What this node reports about its groups: every group of the configuration
/// (`offline` when not placed here), plus groups that are still being taken
/// down after they left the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeReport {
    pub node: Name,
    /// The newest configuration generation the node's reconciler has acted
    /// on (not necessarily converged to: read the group states for that).
    pub generation_seen: u64,
    pub groups: BTreeMap<Name, LocalGroupStatus>,
    /// Groups running here by local takeover (two nodes without a witness), each with
    /// the placement revision it overrode, for the leader to adopt into the
    /// placement. Filled by the agent, not the reconciler.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub taken_over: BTreeMap<Name, u64>,
    /// The peers this node's failure detector has Failed: the verdicts a
    /// leader without a detector of its own (the witness) decides node
    /// health from. Filled by the agent, not the reconciler.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub failed_peers: BTreeSet<Name>,
    /// The peers this node's failure detector hears (Up or Suspected): a
    /// leader does not take a node down that another live node still
    /// hears. Filled by the agent.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub alive_peers: BTreeSet<Name>,
}

/// `SystemTime` as RFC 3339 (UTC, milliseconds), readable in JSON and by humans.
mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text).map_err(serde::de::Error::custom)
    }
}
