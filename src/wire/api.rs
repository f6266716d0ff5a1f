//! The control API's requests and answers: what `asctl` sends to an agent
//! and reads back. The routes are listed in docs/runtime.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lines::LinesView;
use super::report::NodeReport;
use crate::model::Name;
use crate::plan::overrides::Overrides;
use crate::plan::{NodeState, Placement};

/// The member name of the witness (`Domain.spec.witness`): it votes and runs
/// no groups. A Node may not use this name in a domain with a witness.
pub const WITNESS: &str = "witness";

/// The request header in which the CLI names who asks (`user@host`),
/// recorded with an apply in the domain's history. Declared by the client,
/// not authenticated: the domain has one token.
pub const BY_HEADER: &str = "x-asctl-by";

/// `POST /v1/apply`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRequest {
    /// The generation the plan was computed against.
    pub base_generation: u64,
    /// Canonical JSON documents ([`crate::plan::documents`]).
    pub documents: Vec<String>,
}

/// The answer of a successful `POST /v1/apply`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResponse {
    pub generation: u64,
}

/// What `GET /v1/status` answers: the committed state as the CLI shows it.
/// Versioned like the plan's JSON (`formatVersion`), documented in
/// docs/runtime.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub format_version: u32,
    /// The domain's name, once a configuration is applied.
    pub domain: Option<String>,
    pub generation: u64,
    /// The member that answered.
    pub answered_by: String,
    pub leader: Option<String>,
    pub members: Vec<MemberView>,
    pub nodes: BTreeMap<Name, NodeView>,
    pub placement: Placement,
    /// Per-line health as the answering member's failure detector sees it:
    /// each peer's state and each line to it up or down. Absent on the
    /// witness and before the detector runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<LinesView>,
    /// The operator's overrides in the domain database (`asctl move`,
    /// `asctl standby`), with their lifetimes in ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Overrides::is_empty")]
    pub overrides: Overrides,
    /// When the answering member built this answer (ms since the Unix
    /// epoch): what an override's expiry is judged by.
    #[serde(default)]
    pub now_ms: u64,
    /// Set when the answering member was removed from the domain: what it
    /// shows is its copy from the moment it left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<RemovedView>,
    /// The answering member's raft term: a term that keeps rising while
    /// the leader stays is a member disturbing the domain with elections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
}

/// A member removed from the domain by a configuration that no longer
/// names it: it stopped its groups and its raft core, and answers only
/// `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedView {
    /// The generation of the configuration that removed it.
    pub generation: u64,
    /// What the operator can do about it.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub name: String,
    pub address: String,
    /// `voter`, `learner`; the witness is a voter named [`WITNESS`].
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub state: NodeState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<NodeReport>,
}

impl StatusView {
    /// With the answering member's detector view (left out when it watches
    /// no peer: the witness, or no configuration yet).
    pub fn with_lines(mut self, view: LinesView) -> StatusView {
        self.lines = (!view.peers.is_empty()).then_some(view);
        self
    }

    /// Whether `name` is the witness member.
    pub fn is_witness(name: &str) -> bool {
        name == WITNESS
    }
}

/// Who a request to an agent authenticated as: the name of the credential
/// that matched (`crate::agent::server::auth::Credentials`), and whether it
/// is the domain's own — the members', with which a member forwards a
/// command on behalf of whoever asked it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub domain: bool,
}
