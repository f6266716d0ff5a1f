//! What `GET /v1/status` answers: the committed state as the CLI shows it.
//! Versioned like the plan's JSON (`formatVersion`), documented in
//! docs/runtime.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Domain, DomainState, WITNESS};
use crate::agent::metrics::DetectorView;
use crate::agent::reconciler::NodeReport;
use crate::model::Name;
use crate::plan::{FORMAT_VERSION, NodeState, Placement};

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
    pub lines: Option<DetectorView>,
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
    pub fn of(domain: &Domain) -> StatusView {
        let state = domain.state();
        let (nodes, voters) = domain.members();
        let members = nodes
            .iter()
            .map(|(id, m)| MemberView {
                name: m.name.clone(),
                address: m.addr.clone(),
                role: if voters.contains(id) {
                    "voter"
                } else {
                    "learner"
                }
                .into(),
            })
            .collect();
        StatusView::from_state(
            &state,
            domain.me.name.clone(),
            domain.leader().map(|(_, m)| m.name),
            members,
        )
    }

    pub fn from_state(
        state: &DomainState,
        answered_by: String,
        leader: Option<String>,
        members: Vec<MemberView>,
    ) -> StatusView {
        StatusView {
            format_version: FORMAT_VERSION,
            domain: state
                .config()
                .and_then(|c| c.domain.as_ref().map(|d| d.name().to_string())),
            generation: state.generation,
            answered_by,
            leader,
            members,
            nodes: state
                .nodes
                .iter()
                .map(|(n, r)| {
                    (
                        n.clone(),
                        NodeView {
                            state: r.state,
                            report: r.last_report.clone(),
                        },
                    )
                })
                .collect(),
            placement: state.placement.clone(),
            lines: None,
        }
    }

    /// With the answering member's detector view (left out when it watches
    /// no peer: the witness, or no configuration yet).
    pub fn with_lines(mut self, view: DetectorView) -> StatusView {
        self.lines = (!view.peers.is_empty()).then_some(view);
        self
    }

    /// Whether `name` is the witness member.
    pub fn is_witness(name: &str) -> bool {
        name == WITNESS
    }
}
