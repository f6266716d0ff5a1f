//! The failover policy as a pure state machine, in the manner of
//! [`crate::agent::detection::detector`]: no I/O and no clock of its own.
//!
//! The driver ([`super::run`]) feeds it [`Input`]s with the time and turns
//! the [`Action`]s it returns into I/O: publishing the [`Clearance`],
//! starting or stopping the catch-up with the domain's leader, setting the
//! takeover flag of outgoing heartbeats, metrics and log lines. The same
//! inputs always give the same actions, so the tests drive it with made-up
//! instants, detector views and domain states.
//!
//! The decisions:
//! - **Fence** (every group offline here) on isolation (with the `Offline`
//!   isolation response), a stall of the agent, a lost quorum (three voters
//!   or more: no majority heard and no raft evidence of one for the quorum
//!   lease), or, with two nodes, a mute link (the peer's requests arrive,
//!   this node's get no answer: the peer takes over).
//! - **Lift** the fence only once caught up with the domain's leader after
//!   the cause ended, never on a timer; or, with two nodes, when the peer is
//!   Down and this node won the tie-break (there is no leader to catch up
//!   with).
//! - **Local takeover** with two nodes and no witness
//!   ([`crate::agent::failover::takeover`]): what this node runs outside the
//!   committed placement, whether it announces that, and whether it holds
//!   for its peer's announcement.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::agent::detection::detector::{Event, PeerSnapshot};
use crate::agent::detection::monitor::DetectorSnapshot;
use crate::agent::failover::takeover::{self, Clearance, Taken};
use crate::domain::DomainState;
use crate::model::{Config, IsolationResponse, Name};
use crate::plan::{Health, NodeState};
use crate::wire::{GroupState, NodeReport, PeerState};

/// A group that was placed on a peer coming online here this long after that
/// peer failed counts as its failover (for `asctl_failover_seconds`).
pub const FAILOVER_WINDOW: Duration = Duration::from_secs(60);

/// What happened, as the driver tells it.
#[derive(Debug, Clone)]
pub enum Input {
    /// The periodic check: what this node sees now.
    Check(Check),
    /// A transition of the failure detector.
    Detector(Event),
    /// A new report from the reconciler.
    Report(NodeReport),
    /// The catch-up started after a fence's cause ended is done.
    CaughtUp,
    /// A failure detector started for the applied configuration.
    DetectorStarted {
        response: IsolationResponse,
        /// The takeover wait of that configuration
        /// ([`crate::agent::detection::detector::takeover_wait`]).
        wait: Duration,
    },
}

/// What the periodic check reads.
#[derive(Debug, Clone)]
pub struct Check {
    /// The applied domain state.
    pub state: Arc<DomainState>,
    /// The failure detector's view, when one runs.
    pub view: Option<DetectorSnapshot>,
    /// The reconciler's latest report.
    pub report: NodeReport,
    /// The domain's quorum lease and this member's evidence of a quorum;
    /// `None` without a lease (fewer than three voters).
    pub quorum: Option<QuorumEvidence>,
}

/// This member's raft evidence of a quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumEvidence {
    /// The quorum lease ([`crate::agent::detection::detector::quorum_lease`]).
    pub lease: Duration,
    /// The latest instant a majority of the voters acknowledged.
    pub seen: Instant,
}

/// What the driver does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Publish what this node may run.
    Publish(Clearance),
    /// Catch up with the domain's leader (replacing a catch-up under way),
    /// and answer [`Input::CaughtUp`] when done.
    CatchUp,
    /// Stop the catch-up under way: the fence's cause is back.
    StopCatchUp,
    /// Whether outgoing heartbeats announce a takeover.
    Announce(bool),
    /// A group's state here (metrics).
    GroupState(Name, GroupState),
    /// A group that was placed on a peer came online here this long after
    /// that peer failed.
    Failover { group: Name, after: Duration },
    /// Something an operator wants in the log.
    Note(Note),
}

/// The log lines of [`Action::Note`].
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    Isolated,
    Stalled {
        gap: Duration,
    },
    Muted,
    QuorumLost,
    QuorumBack,
    CaughtUp,
    /// Two nodes: the peer is down and this node won the tie-break.
    Alone,
    /// The groups run here by local takeover changed.
    Taken(BTreeSet<Name>),
}

/// The failover policy's state between inputs.
#[derive(Debug)]
pub struct Policy {
    me: Name,
    /// What this node may run, as last published.
    clearance: Clearance,
    response: IsolationResponse,
    /// The takeover wait of the running configuration.
    wait: Duration,
    /// A catch-up is under way: the fence lifts when it is done.
    catching_up: bool,
    /// Fenced for want of a quorum (domains of three voters or more, or a
    /// mute link with two): lifted, through the same catch-up as after an
    /// isolation, once a quorum is in touch again.
    quorum_lost: bool,
    /// Failed peers, each with when it was last heard from (the start of
    /// the failover time of its groups) and the groups already counted as
    /// its failover here. A peer heard again leaves.
    failed: BTreeMap<Name, (Instant, BTreeSet<Name>)>,
    /// The last node other than this one each group was committed to (from
    /// the periodic check). Only a group whose last holder failed counts as
    /// a failover when it comes online here: a first start, or a start of
    /// a group that never ran on the failed peer, is not one.
    held_by: BTreeMap<Name, Name>,
    /// Groups run here by local takeover (two nodes without a witness).
    taken: Taken,
    /// Each group's latest state here, to see it come online.
    online: BTreeMap<Name, GroupState>,
    /// Two nodes: a peer stopped announcing a takeover, and this node holds
    /// until a catch-up started after that is done. The peer stops once it
    /// has applied the commit that adopts its copies; this node may not
    /// have applied it yet, and would start those groups from its older
    /// placement while the peer still runs them.
    settling: bool,
    /// The peers whose takeover announcement the last check saw.
    announcing: BTreeSet<Name>,
}

impl Policy {
    pub fn new(me: Name) -> Policy {
        Policy {
            me,
            clearance: Clearance::default(),
            response: IsolationResponse::Offline,
            wait: Duration::ZERO,
            catching_up: false,
            quorum_lost: false,
            failed: BTreeMap::new(),
            held_by: BTreeMap::new(),
            taken: Taken::default(),
            online: BTreeMap::new(),
            settling: false,
            announcing: BTreeSet::new(),
        }
    }

    /// What this node may run, as last published.
    pub fn clearance(&self) -> &Clearance {
        &self.clearance
    }

    /// One input; the actions in the order the driver carries them out. A
    /// changed [`Clearance`] is published once, last.
    pub fn step(&mut self, input: Input, now: Instant) -> Vec<Action> {
        let before = self.clearance.clone();
        let mut out = Vec::new();
        match input {
            Input::Check(check) => self.on_check(&check, now, &mut out),
            Input::Detector(event) => self.on_event(event, &mut out),
            Input::Report(report) => self.on_report(&report, now, &mut out),
            Input::CaughtUp => {
                self.catching_up = false;
                self.settling = false;
                out.push(Action::Note(Note::CaughtUp));
                self.clearance.fenced = false;
            }
            Input::DetectorStarted { response, wait } => {
                self.response = response;
                self.wait = wait;
            }
        }
        if self.clearance != before {
            out.push(Action::Publish(self.clearance.clone()));
        }
        out
    }

    fn fence(&mut self, out: &mut Vec<Action>) {
        self.stop_catch_up(out);
        self.clearance.fenced = true;
    }

    fn catch_up(&mut self, out: &mut Vec<Action>) {
        self.catching_up = true;
        out.push(Action::CatchUp);
    }

    /// Two nodes: starts `settling` when a peer's takeover
    /// announcement seen by the last check has ended; ends it when this
    /// node decides alone (no leader to catch up with).
    fn settle(&mut self, view: Option<&DetectorSnapshot>, won: bool, out: &mut Vec<Action>) {
        let announcing: BTreeSet<Name> = view
            .iter()
            .flat_map(|v| v.peers.iter().filter(|(_, p)| p.takeover))
            .map(|(peer, _)| peer.clone())
            .collect();
        let ended = self.announcing.iter().any(|p| !announcing.contains(p));
        self.announcing = announcing;
        if won {
            self.settling = false;
        } else if ended {
            self.settling = true;
            // A fenced node catches up before its fence lifts anyway; one
            // already catching up may have read the leader's index before
            // the adopting commit, so it starts again.
            if !self.clearance.fenced || self.catching_up {
                self.catch_up(out);
            }
        }
    }

    fn stop_catch_up(&mut self, out: &mut Vec<Action>) {
        if std::mem::take(&mut self.catching_up) {
            out.push(Action::StopCatchUp);
        }
    }

    fn on_event(&mut self, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::Isolation { isolated: true } if self.response == IsolationResponse::Offline => {
                out.push(Action::Note(Note::Isolated));
                self.fence(out);
            }
            Event::Isolation { isolated: false } if self.clearance.fenced && !self.quorum_lost => {
                // Anything committed meanwhile reaches this node within a few
                // raft heartbeats once the lines are back.
                self.catch_up(out);
            }
            Event::Stalled { gap } => {
                out.push(Action::Note(Note::Stalled { gap }));
                self.clearance.fenced = true;
                if !self.quorum_lost {
                    self.catch_up(out);
                }
            }
            Event::Peer {
                peer,
                to: PeerState::Failed,
                last_heard,
                ..
            } => {
                self.failed.insert(peer, (last_heard, BTreeSet::new()));
            }
            Event::Peer {
                peer,
                to: PeerState::Up,
                ..
            } => {
                self.failed.remove(&peer);
            }
            _ => {}
        }
    }

    /// Group metrics, and the failover time of a group that came online
    /// here after the peer that had it failed.
    fn on_report(&mut self, report: &NodeReport, now: Instant, out: &mut Vec<Action>) {
        for (group, status) in &report.groups {
            out.push(Action::GroupState(group.clone(), status.state));
            let was = self.online.insert(group.clone(), status.state);
            if status.state != GroupState::Online || was == Some(GroupState::Online) {
                continue;
            }
            let Some((at, counted)) = self
                .held_by
                .get(group)
                .and_then(|holder| self.failed.get_mut(holder))
            else {
                continue;
            };
            let after = now.saturating_duration_since(*at);
            // Counted once per failure: a restart here later is no move.
            if after < FAILOVER_WINDOW && counted.insert(group.clone()) {
                out.push(Action::Failover {
                    group: group.clone(),
                    after,
                });
            }
        }
    }

    /// Remembers each group's latest holder other than this node.
    fn note_holders(&mut self, state: &DomainState) {
        for (group, placed) in &state.placement {
            if let Some(node) = placed.node.as_ref().filter(|n| **n != self.me) {
                self.held_by.insert(group.clone(), node.clone());
            }
        }
    }

    /// Local takeover with two nodes, then the quorum fence.
    fn on_check(&mut self, check: &Check, now: Instant, out: &mut Vec<Action>) {
        self.note_holders(&check.state);
        let config = check.state.config();
        let two = config.as_deref().filter(|c| takeover::applies(c));
        match two {
            Some(config) => self.two_nodes(config, check, now, out),
            None => self.clearance.settled = true,
        }
        let muted = two.is_some() && check.view.as_ref().is_some_and(muted);
        let lost = muted
            || config.is_some_and(|c| lacks_quorum(&c, check.quorum, check.view.as_ref(), now));
        if lost && !self.quorum_lost {
            if muted {
                out.push(Action::Note(Note::Muted));
            }
            out.push(Action::Note(Note::QuorumLost));
            self.quorum_lost = true;
            self.fence(out);
        } else if !lost && self.quorum_lost {
            out.push(Action::Note(Note::QuorumBack));
            self.quorum_lost = false;
            self.catch_up(out);
        }
    }

    /// Two nodes without a witness: what this node takes over, whether it
    /// announces that, and whether it holds for its peer's takeover.
    fn two_nodes(&mut self, config: &Config, check: &Check, now: Instant, out: &mut Vec<Action>) {
        let (state, view) = (&check.state, check.view.as_ref());
        let local = view.map(|v| v.health(&self.me, now, self.wait));
        // With the peer down there is no leader to catch up with; having
        // won the tie-break, this node decides alone (the takeover below).
        let won = local.as_ref().is_some_and(|h| {
            h.get(&self.me) == Some(&NodeState::Up) && h.values().any(|s| *s == NodeState::Down)
        });
        if won && self.catching_up {
            self.stop_catch_up(out);
            out.push(Action::Note(Note::Alone));
            self.clearance.fenced = false;
        }
        self.settle(view, won, out);
        let next = takeover::next(config, state, &self.me, local.as_ref(), &self.taken);
        if next != self.taken {
            out.push(Action::Note(Note::Taken(next.groups())));
            self.taken = next;
        }
        let announce = takeover::announce(state, &self.me, &self.taken, &check.report);
        out.push(Action::Announce(announce));
        // A peer's announcement is its last packet's; once the peer has been
        // Failed for the takeover wait (Down), what it ran has stopped, and
        // holding for it would hold forever after a crash. A peer not heard
        // yet since this agent started may be announcing: hold until its
        // first packet says (or until it is Down), so a restarted node never
        // starts its stale placement's groups before the taker's flag
        // reached it.
        let is_down =
            |peer: &Name| local.as_ref().and_then(|h| h.get(peer)) == Some(&NodeState::Down);
        self.clearance = Clearance {
            fenced: self.clearance.fenced,
            taken: self.taken.revisions(),
            hold: self.settling || view.is_some_and(|v| holds(v, local.as_ref())),
            settled: view.is_some_and(|v| v.peers.iter().all(|(peer, p)| p.heard || is_down(peer))),
            down: local
                .iter()
                .flatten()
                .filter(|(n, s)| **s == NodeState::Down && **n != self.me)
                .map(|(n, _)| n.clone())
                .collect(),
            alone: won,
        };
    }
}

/// Two nodes: this node's outbound traffic is cut — a peer's verification
/// requests reach it (the peer's verification line is up here) but the
/// peer answers none of this node's: the peer hears nothing from this node,
/// declares it failed and takes over, so this node must stop first. A
/// verification line down both ways (no requests either) is not this, nor
/// is a peer that has just restarted and not yet had the time to answer,
/// nor requests that may have crossed this node's unanswered one (a peer
/// that died right after answering): [`PeerSnapshot::one_way`].
pub fn muted(view: &DetectorSnapshot) -> bool {
    view.peers.values().any(PeerSnapshot::one_way)
}

/// Whether a node of two must hold (start nothing new): a peer that is not
/// Down in `local` announces a takeover, or has not been heard since this
/// agent started (its flag is unknown until its first packet).
pub fn holds(view: &DetectorSnapshot, local: Option<&Health>) -> bool {
    view.peers.iter().any(|(peer, p)| {
        (p.takeover || !p.heard) && local.and_then(|h| h.get(peer)) != Some(&NodeState::Down)
    })
}

/// Whether this node must fence for want of a quorum: the domain has a
/// quorum lease, the node does not hear a majority of the voters on its
/// lines, and its raft evidence of a quorum is older than the lease.
pub fn lacks_quorum(
    config: &Config,
    quorum: Option<QuorumEvidence>,
    view: Option<&DetectorSnapshot>,
    now: Instant,
) -> bool {
    let Some(quorum) = quorum else {
        return false;
    };
    let witness = config
        .domain
        .as_ref()
        .is_some_and(|d| d.spec.witness.is_some());
    let voters = config.nodes.len() + usize::from(witness);
    if view.is_some_and(|v| v.hears_majority(voters)) {
        return false;
    }
    now.saturating_duration_since(quorum.seen) >= quorum.lease
}

#[cfg(test)]
mod tests;
