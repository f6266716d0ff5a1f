//! A failure detector's view of its peers and of each line to them, as
//! `GET /v1/status` shows it (`lines`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A peer's state in a node's failure detector: Up (heard on a domain
/// line), Suspected (domain lines silent, the verification line still
/// answers), Failed (silent everywhere for the timeout; only this state
/// moves the peer's groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PeerState {
    Up,
    Suspected,
    Failed,
}

/// What this node's failure detector sees (`GET /v1/status`, `lines`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinesView {
    /// This node considers itself isolated.
    pub isolated: bool,
    pub peers: BTreeMap<String, PeerLinesView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerLinesView {
    pub state: PeerState,
    /// Milliseconds since the peer entered `state` (when a node was declared
    /// failed, read from outside without polling bias).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms_ago: Option<u64>,
    /// Each line shared with the peer.
    pub lines: BTreeMap<String, LineView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineView {
    /// A valid packet arrived on the line within `heartbeat.timeout`.
    pub up: bool,
    /// Milliseconds since the last valid packet on the line, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heard_ms_ago: Option<u64>,
}
