//! Raft membership from the configuration: its nodes with an agent address
//! and the witness; a change adds learners, moves members whose address
//! changed (once the agent answers there), then sets the voters.

use std::collections::{BTreeMap, BTreeSet};

use openraft::ChangeMembers;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::domain::{Member, NodeId, Replica, WITNESS, node_id};
use crate::model::Config;
use crate::wire::StatusView;

/// The members the configuration asks for: its nodes that have an agent
/// address, and the witness.
pub fn desired_members(config: &Config) -> BTreeMap<NodeId, Member> {
    let mut out: BTreeMap<NodeId, Member> = config
        .nodes
        .iter()
        .filter_map(|n| {
            let addr = n.spec.agent.as_ref()?.address.to_string();
            let name = n.name().to_string();
            Some((node_id(&name), Member { name, addr }))
        })
        .collect();
    if let Some(w) = config.domain.as_ref().and_then(|d| d.spec.witness.as_ref()) {
        out.insert(
            node_id(WITNESS),
            Member {
                name: WITNESS.into(),
                addr: w.to_string(),
            },
        );
    }
    out
}

/// What it takes to make the raft membership the one the configuration asks
/// for (pure: [`membership_change`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipChange {
    /// Members the membership does not have: added as learners first.
    pub add: BTreeMap<NodeId, Member>,
    /// Members whose agent address changed in the configuration: their node
    /// record is replaced (raft then talks to the new address).
    pub readdress: BTreeMap<NodeId, Member>,
    /// The new voter set, when it differs from the current one.
    pub voters: Option<BTreeSet<NodeId>>,
}

/// Compares the members the configuration asks for (`want`) with the
/// membership's node records and voters — ids *and* addresses: a node whose
/// agent moved to another address must be reached there. `None` when
/// nothing is to change, and when the change must not be made: never shrink
/// to nothing, and never hand the domain to a set that has none of the
/// current voters (a configuration naming other machines than the running
/// ones would otherwise orphan the domain).
pub fn membership_change(
    want: &BTreeMap<NodeId, Member>,
    nodes: &BTreeMap<NodeId, Member>,
    voters: &BTreeSet<NodeId>,
) -> Option<MembershipChange> {
    let want_ids: BTreeSet<NodeId> = want.keys().copied().collect();
    if want_ids.is_empty() || want_ids.is_disjoint(voters) {
        return None;
    }
    let mut change = MembershipChange::default();
    for (id, m) in want {
        match nodes.get(id) {
            None => {
                change.add.insert(*id, m.clone());
            }
            Some(have) if have != m => {
                change.readdress.insert(*id, m.clone());
            }
            Some(_) => {}
        }
    }
    if want_ids != *voters {
        change.voters = Some(want_ids);
    }
    (change != MembershipChange::default()).then_some(change)
}

/// Starts a membership change when the configuration's members differ from
/// the membership ([`membership_change`]).
pub(super) fn sync_membership(domain: &Replica, config: &Config) -> Option<JoinHandle<()>> {
    let (nodes, voters) = domain.members();
    let change = membership_change(&desired_members(config), &nodes, &voters)?;
    let raft = domain.raft.clone();
    let client = domain.client.clone();
    Some(tokio::spawn(async move {
        for (id, m) in &change.add {
            info!("adding {m} to the domain as a learner");
            if let Err(e) = raft.add_learner(*id, m.clone(), false).await {
                warn!("cannot add {m}: {e}");
                return;
            }
        }
        if !change.readdress.is_empty() {
            // openraft's warning about replacing a node record: if the new
            // address belonged to another member, two quorums could form.
            // So the record changes only once the agent answering there is
            // that member; until then the next pass tries again.
            let mut ready = BTreeMap::new();
            for (id, m) in &change.readdress {
                match client.get::<StatusView>(&m.addr, "/v1/status").await {
                    Ok(s) if s.answered_by == m.name => {
                        ready.insert(*id, m.clone());
                    }
                    Ok(s) => warn!(
                        "not moving {} to {}: the agent there is {}",
                        m.name, m.addr, s.answered_by
                    ),
                    Err(e) => tracing::debug!("not moving {} to {} yet: {e}", m.name, m.addr),
                }
            }
            // A member that does not answer at its new address yet holds
            // up neither the others nor a change of the voters.
            if !ready.is_empty() {
                info!(
                    "moving members to their new addresses: {:?}",
                    ready.values().map(|m| m.to_string()).collect::<Vec<_>>()
                );
                if let Err(e) = raft
                    .change_membership(ChangeMembers::SetNodes(ready), false)
                    .await
                {
                    warn!("cannot change the members' addresses: {e}");
                    return;
                }
            }
        }
        if let Some(voters) = change.voters {
            info!("changing the domain's voters to {voters:?}");
            if let Err(e) = raft.change_membership(voters, false).await {
                warn!("cannot change the domain's membership: {e}");
            }
        }
    }))
}
