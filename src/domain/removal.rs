//! A member removed from the domain. Raft never tells a removed server: the
//! leader stops replicating to it once the configuration without it is in
//! its log, so the removed member keeps the joint configuration, in which
//! it is still a voter of the old half, and would start elections forever.
//! The member therefore notices it itself ([`wait_removed`]), and the agent
//! then stops its groups and its raft core and answers only `status`.

use std::path::Path;

use openraft::Membership;

use super::{Member, NodeId, Replica};
use crate::domain::leader::desired_members;

/// The file, in the raft directory, that marks this member removed (its
/// content: the generation that removed it). Moving the raft directory
/// aside, which re-adding the node takes, takes the mark with it.
const MARK: &str = "removed";

/// What a removed member tells whoever asks it.
pub fn removal_message(generation: u64) -> String {
    format!(
        "this member was removed from the domain by the configuration of generation \
         {generation}, which no longer names it: its groups and its raft core are stopped and \
         it shows the domain as it was then. Stop this agent. To add the node back: stop the \
         agent, move its dataDir/raft aside, name the node in the configuration again and apply \
         it, then start the agent (it joins as a new member and receives the domain from the \
         leader)"
    )
}

/// Whether raft's newest configuration counts `me` in: a voter of its last
/// half (the one a joint configuration moves to), or a learner.
pub fn in_membership(me: NodeId, mem: &Membership<NodeId, Member>) -> bool {
    let voter_now = mem
        .get_joint_config()
        .last()
        .is_some_and(|c| c.contains(&me));
    let learner = mem.get_node(&me).is_some() && !mem.voter_ids().any(|v| v == me);
    voter_now || learner
}

/// Resolves with the generation of the configuration that removed this
/// member: one that no longer names it, applied while raft's newest
/// configuration no longer counts it in either — after raft had counted it
/// in during this run. That last condition keeps a member that is still
/// catching up from the log (whose early entries predate it) from taking
/// the history for its removal.
pub async fn wait_removed(domain: &Replica) -> u64 {
    let mut metrics = domain.raft.metrics();
    let mut applied = domain.applied.clone();
    let mut seen_in = false;
    loop {
        let in_raft = in_membership(
            domain.id,
            metrics.borrow_and_update().membership_config.membership(),
        );
        seen_in |= in_raft;
        if seen_in && !in_raft {
            let state = domain.state();
            let named = state
                .config()
                .is_none_or(|c| desired_members(&c).contains_key(&domain.id));
            if !named {
                return state.generation;
            }
        }
        tokio::select! {
            r = metrics.changed() => if r.is_err() { return std::future::pending().await },
            r = applied.changed() => if r.is_err() { return std::future::pending().await },
        }
    }
}

/// Records that this member was removed (so that a restarted agent stays
/// removed instead of starting elections again).
pub fn mark(raft_dir: &Path, generation: u64) -> std::io::Result<()> {
    super::store::write_private(&raft_dir.join(MARK), format!("{generation}\n").as_bytes())
}

/// The generation recorded by [`mark`], if this member was removed.
pub fn marked(raft_dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(raft_dir.join(MARK)).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn member(n: u64) -> (NodeId, Member) {
        (
            n,
            Member {
                name: format!("node{n}"),
                addr: format!("127.0.0.1:{n}"),
            },
        )
    }

    fn joint(configs: Vec<Vec<u64>>, learners: &[u64]) -> Membership<NodeId, Member> {
        let mut nodes: BTreeMap<NodeId, Member> = BTreeMap::new();
        for id in configs.iter().flatten().chain(learners) {
            nodes.extend([member(*id)]);
        }
        let configs: Vec<BTreeSet<NodeId>> = configs
            .into_iter()
            .map(|c| c.into_iter().collect())
            .collect();
        Membership::new(configs, nodes)
    }

    #[test]
    fn a_voter_leaving_in_a_joint_configuration_is_out() {
        let mem = joint(vec![vec![1, 2, 3, 4], vec![1, 2, 4]], &[]);
        assert!(!in_membership(3, &mem));
        assert!(in_membership(4, &mem));
    }

    #[test]
    fn learners_and_voters_are_in_and_others_out() {
        let mem = joint(vec![vec![1, 2, 3]], &[4]);
        assert!(in_membership(1, &mem));
        assert!(in_membership(4, &mem));
        assert!(!in_membership(5, &mem));
    }

    #[test]
    fn the_mark_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(marked(dir.path()), None);
        mark(dir.path(), 4).expect("mark");
        assert_eq!(marked(dir.path()), Some(4));
    }
}
