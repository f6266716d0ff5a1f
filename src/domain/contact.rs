//! Quorum contact: the evidence a member has of being in touch with a quorum
//! of the domain database, for the *quorum lease* of docs/ha.md.
//!
//! - As the leader, a member is in touch with a quorum as of the instant it
//!   *sent* the appends that a majority of the voters (itself included)
//!   accepted in its current term. Send instants, not reply instants: a
//!   reply proves the follower was reachable at some time after the send.
//! - As a follower, it is in touch as of the instant its leader last had a
//!   quorum *and* last heard back from this follower: every append carries
//!   the leader's quorum age (`quorum_ack_ms`) and the age of the
//!   follower's last accepted reply (`heard_ms`), and the follower
//!   subtracts the larger from the instant the append arrived. A follower
//!   whose outbound traffic is cut keeps receiving appends, but its
//!   evidence ages from its last reply that got through. That trusts the
//!   append to have travelled in much less than the lease (the same
//!   assumption as the scheduling slack ε of docs/ha.md).
//! - Before any of this, the agent's start counts as contact, so that a
//!   restarted member has one lease to find its quorum.
//!
//! The leader also keeps, per peer, when an append to it last succeeded
//! ([`Contact::last_append_ok`]): a peer the leader reached recently holds a
//! lease the leader itself renewed, so its groups must not move yet.
//!
//! No I/O here: the network layer ([`super::network`]) and the API handler
//! record, the agent's HA loop and the leader's health source read.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use openraft::{RaftMetrics, ServerState};
use tokio::sync::watch;

use super::{Member, NodeId};

#[derive(Debug)]
pub struct Contact {
    started: Instant,
    metrics: OnceLock<watch::Receiver<RaftMetrics<NodeId, Member>>>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Follower side: the latest instant at which a leader that sent this
    /// member an accepted append was in touch with a quorum.
    leader_quorum_at: Option<Instant>,
    /// Leader side: per peer, the term and send instant of the latest
    /// accepted append.
    appended: BTreeMap<NodeId, (u64, Instant)>,
}

impl Default for Contact {
    fn default() -> Self {
        Self::new()
    }
}

impl Contact {
    pub fn new() -> Self {
        Contact {
            started: Instant::now(),
            metrics: OnceLock::new(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Gives the contact raft's metrics (who leads, the voters, the term):
    /// the network is built before raft, so this comes second.
    pub fn attach(&self, metrics: watch::Receiver<RaftMetrics<NodeId, Member>>) {
        let _ = self.metrics.set(metrics);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leader side: `peer` accepted (did not reject for a higher vote) an
    /// append of `term` sent at `sent`.
    pub fn append_ok(&self, peer: NodeId, term: u64, sent: Instant) {
        let mut inner = self.lock();
        let e = inner.appended.entry(peer).or_insert((term, sent));
        if (term, sent) > *e {
            *e = (term, sent);
        }
    }

    /// Leader side: when an append to `peer` was last accepted (any term).
    pub fn last_append_ok(&self, peer: NodeId) -> Option<Instant> {
        self.lock().appended.get(&peer).map(|(_, at)| *at)
    }

    /// Follower side: an append was accepted from a leader whose quorum was
    /// `age` old when it sent it.
    pub fn append_accepted(&self, age: Duration, now: Instant) {
        let at = now.checked_sub(age).unwrap_or(now);
        let mut inner = self.lock();
        if inner.leader_quorum_at.is_none_or(|t| at > t) {
            inner.leader_quorum_at = Some(at);
        }
    }

    /// When this member, leading now, last had a quorum; `None` when it
    /// does not lead.
    pub fn leader_quorum_at(&self, now: Instant) -> Option<Instant> {
        let m = self.metrics.get()?.borrow();
        if m.state != ServerState::Leader {
            return None;
        }
        let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
        let inner = self.lock();
        let acks = voters.iter().map(|v| {
            if *v == m.id {
                Some(now)
            } else {
                inner
                    .appended
                    .get(v)
                    .filter(|(term, _)| *term == m.current_term)
                    .map(|(_, at)| *at)
            }
        });
        quorum_instant(acks)
    }

    /// The latest instant this member knows it was in touch with a quorum.
    pub fn quorum_seen(&self, now: Instant) -> Instant {
        let follower = self.lock().leader_quorum_at;
        [Some(self.started), follower, self.leader_quorum_at(now)]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(self.started)
    }
}

/// The latest instant by which a majority of the voters had acknowledged:
/// the majority-th most recent acknowledgement (`None`: never acknowledged).
pub fn quorum_instant(acks: impl Iterator<Item = Option<Instant>>) -> Option<Instant> {
    let acks: Vec<Option<Instant>> = acks.collect();
    let majority = acks.len() / 2 + 1;
    let mut seen: Vec<Instant> = acks.into_iter().flatten().collect();
    if seen.len() < majority {
        return None;
    }
    seen.sort_unstable_by(|a, b| b.cmp(a));
    Some(seen[majority - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_is_the_majority_th_latest_ack() {
        let t0 = Instant::now();
        let at = |ms| Some(t0 + Duration::from_millis(ms));
        // Three voters: me (now) and one peer make a majority.
        assert_eq!(
            quorum_instant([at(900), at(500), None].into_iter()),
            at(500)
        );
        assert_eq!(quorum_instant([at(900), None, None].into_iter()), None);
        // Five voters: the third most recent.
        assert_eq!(
            quorum_instant([at(900), at(100), at(700), at(300), None].into_iter()),
            at(300)
        );
        assert_eq!(
            quorum_instant([at(900), at(100), None, None, None].into_iter()),
            None
        );
    }

    #[test]
    fn a_follower_keeps_the_newest_evidence() {
        let c = Contact::new();
        let now = Instant::now() + Duration::from_secs(10);
        c.append_accepted(Duration::from_millis(300), now);
        c.append_accepted(Duration::from_millis(900), now);
        assert_eq!(c.quorum_seen(now), now - Duration::from_millis(300));
        c.append_ok(7, 2, now);
        c.append_ok(7, 1, now + Duration::from_secs(1));
        assert_eq!(c.last_append_ok(7), Some(now));
    }
}
