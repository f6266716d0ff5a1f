//! `GET /v1/status` built from this member's copy of the domain state
//! ([`StatusView`] is a wire type).

use crate::plan::FORMAT_VERSION;
use crate::wire::api::RemovedView;
use crate::wire::{MemberView, NodeView, StatusView};

use super::{DomainState, Replica};

/// This member's answer to `GET /v1/status` (without its detector view).
pub fn status_of(domain: &Replica) -> StatusView {
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
    let mut view = status_from_state(
        &state,
        domain.me.name.clone(),
        domain.leader().map(|(_, m)| m.name),
        members,
    );
    view.removed = domain.removed.get().map(|&generation| RemovedView {
        generation,
        message: super::removal::removal_message(generation),
    });
    if view.removed.is_some() {
        // Its raft core stopped: the leader it last knew is hearsay, and a
        // client following it would take this member for part of the
        // domain.
        view.leader = None;
    }
    view.term = Some(domain.raft.metrics().borrow().current_term);
    view
}

/// The status as `answered_by` sees `state`.
pub fn status_from_state(
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
        overrides: state.overrides.clone(),
        now_ms: super::now_ms(),
        removed: None,
        term: None,
    }
}
