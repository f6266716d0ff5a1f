//! The failure detector: a pure state machine, no I/O and no clock of its own.
//!
//! The caller feeds it what the network said ([`Detector::heard`]: a valid
//! packet from a peer on a line; [`Detector::isolation_reply`]: an isolation
//! address answered) and the time ([`Detector::tick`]), and gets back the
//! transitions ([`Event`]). The same inputs always give the same outputs, so
//! the tests drive it with made-up instants and no sockets.
//!
//! Per peer, from the silences (time since the last packet) on its lines:
//! - **Up**: heard on some domain line within `timeout`.
//! - **Suspected**: silent on every domain line for `timeout`, but the
//!   verification line answered within `timeout`: the peer is alive, only its
//!   domain lines are cut. No failover.
//! - **Failed**: silent on every domain line *and* the verification line for
//!   `timeout`. Only this state moves the peer's groups.
//!
//! The verification line is probed continuously (one request per interval,
//! see `crate::agent::detection::heartbeat`), not only once a peer is suspected: so when
//! the domain lines have been silent for `timeout`, the evidence of the
//! verification line is already at hand and a dead peer is declared failed
//! at `timeout`, not `timeout` plus a probe round trip. A peer that dies is
//! reported Suspected then Failed in the same tick.
//!
//! Losing one line while another still carries heartbeats is a line event
//! ([`Event::Line`]), never a peer state change.
//!
//! **Isolation.** This node is isolated when it has at least one peer, every
//! peer is Failed, and no isolation address that counts (see
//! [`TieBreak`]) answered within `timeout`. Without isolation addresses a
//! node never considers itself isolated (it cannot tell); the validator
//! warns about that configuration. The reasoning, including the two-node
//! tie-break, is in docs/ha.md.
//!
//! **One-way links.** With a verification line it also watches the peer's
//! answers to this node's requests ([`Event::Answers`]) and whether the
//! peer's own requests keep arriving unanswered ([`Event::OneWay`],
//! [`PeerSnapshot::one_way`]) — not while they may have crossed this node's
//! unanswered request, nor for a timeout after the first packet of a new
//! run of the peer ([`Event::Restarted`]): a peer that died or came back.
//!
//! Files: `setup.rs`, what the detector watches ([`DetectorConfig`], from
//! the configuration); `timing.rs`, the bounds of docs/ha.md's timing
//! argument ([`takeover_wait`], [`quorum_lease`]); this file, the machine.

#[cfg(test)]
mod one_way_tests;
mod setup;
#[cfg(test)]
mod tests;
mod timing;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::model::Name;
use crate::wire::PeerState;

pub use setup::{DetectorConfig, IsolationTarget, PeerLines, TieBreak};
pub use timing::{
    GUARD_KILL_BOUND, ISOLATION_STOP_BOUND, SCHEDULING_SLACK, fence_budget, quorum_lease,
    takeover_wait,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A line to a peer went silent for `timeout` (`up: false`) or carried a
    /// packet again (`up: true`).
    Line { peer: Name, line: Name, up: bool },
    /// A peer changed state. `last_heard` is when anything was last received
    /// from it on any line: detection time is `now - last_heard`.
    Peer {
        peer: Name,
        from: PeerState,
        to: PeerState,
        last_heard: Instant,
    },
    /// This node became isolated (`true`) or reached a peer or an isolation
    /// address again (`false`).
    Isolation { isolated: bool },
    /// A peer's packets started (`true`) or stopped (`false`) announcing
    /// that it runs groups outside the committed placement
    /// (`crate::agent::detection::packet::FLAG_TAKEOVER`).
    Takeover { peer: Name, announced: bool },
    /// The detector itself was not run for `timeout` or longer (the agent
    /// was frozen, e.g. SIGSTOP, or starved of CPU). Its peers may have
    /// declared this node failed and started its groups meanwhile, so the
    /// agent must take its groups offline before anything else.
    Stalled { gap: Duration },
    /// The first packet from a peer since this detector started: from now
    /// on its takeover flag is known (two nodes wait for it).
    Heard { peer: Name },
    /// A peer stopped (`false`) or started again (`true`) answering this
    /// node's verification requests within the timeout: whether the link
    /// works both ways, for the quorum lease (a node that hears its peers
    /// but is not heard must not count them).
    Answers { peer: Name, up: bool },
    /// A newer run of a peer (a higher incarnation) was heard (`waiting:
    /// true`): until it answers one of this node's verification requests,
    /// or for one timeout, its requests without answers are no sign of a
    /// one-way link. `waiting: false`: it answered, or the timeout passed.
    Restarted { peer: Name, waiting: bool },
    /// The peer's verification requests arrive but it answers none of this
    /// node's (`on: true`, [`PeerSnapshot::one_way`]), or no longer so.
    OneWay { peer: Name, on: bool },
}

#[derive(Debug, Clone)]
struct LineWatch {
    last: Instant,
    up: bool,
    /// The packet that last brought it up (or the detector's start).
    since: Instant,
}

#[derive(Debug, Clone)]
struct PeerWatch {
    /// Domain lines first, in config order, then the verification line.
    lines: Vec<(Name, LineWatch)>,
    domain_count: usize,
    state: PeerState,
    /// When `state` was entered.
    since: Instant,
    /// The peer's latest packet announced a takeover.
    takeover: bool,
    /// A packet from the peer arrived since this detector started: until
    /// then its takeover flag is unknown, not false.
    heard: bool,
    /// With a verification line: the peer's replies to this node's
    /// requests, watched like a line.
    answers: Option<LineWatch>,
    /// The newest incarnation (agent run) of the peer heard, and when its
    /// first packet arrived.
    run: Option<(u64, Instant)>,
    /// When the first packet of a newer run arrived, while that run has
    /// not answered yet and a timeout has not passed.
    restarted: Option<Instant>,
    /// [`PeerSnapshot::one_way`], as of the last tick.
    one_way: bool,
}

impl PeerWatch {
    /// Whether the peer's verification packets stopped within `window` of
    /// its last answer, or of the verification line coming back up
    /// ([`PeerSnapshot::crossed`]).
    fn crossed(&self, window: Duration) -> bool {
        match (&self.answers, self.lines.get(self.domain_count)) {
            (Some(a), Some((_, v))) => v.last <= a.last.max(v.since) + window,
            _ => false,
        }
    }

    fn one_way(&self, window: Duration) -> bool {
        let verification = self.lines.get(self.domain_count).map(|(_, l)| l.up);
        let answers = self.answers.as_ref().map(|a| a.up);
        PeerSnapshot::one_way_of(
            verification,
            answers,
            self.restarted.is_some(),
            self.crossed(window),
        )
    }

    /// Re-evaluates the peer's lines, its answers, a new run's grace and
    /// the one-way link against `silent`, pushing each change.
    fn tick_watches(
        &mut self,
        name: &Name,
        silent: &impl Fn(Instant) -> bool,
        crossing: Duration,
        events: &mut Vec<Event>,
    ) {
        if self.restarted.is_some_and(silent) {
            self.restarted = None;
            events.push(Event::Restarted {
                peer: name.clone(),
                waiting: false,
            });
        }
        if let Some(a) = &mut self.answers {
            let up = !silent(a.last);
            if up != a.up {
                a.up = up;
                events.push(Event::Answers {
                    peer: name.clone(),
                    up,
                });
            }
        }
        for (line, lw) in &mut self.lines {
            let up = !silent(lw.last);
            if up != lw.up {
                lw.up = up;
                if up {
                    lw.since = lw.last;
                }
                events.push(Event::Line {
                    peer: name.clone(),
                    line: line.clone(),
                    up,
                });
            }
        }
        let one_way = self.one_way(crossing);
        if one_way != self.one_way {
            self.one_way = one_way;
            events.push(Event::OneWay {
                peer: name.clone(),
                on: one_way,
            });
        }
    }

    fn last_heard(&self) -> Instant {
        // Never empty: a peer is only watched when it shares a line.
        self.lines
            .iter()
            .map(|(_, w)| w.last)
            .max()
            .unwrap_or_else(Instant::now)
    }
}

/// The detector's view of one peer, for status and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerSnapshot {
    pub state: PeerState,
    /// When the peer entered `state` (this process's clock).
    #[serde(skip)]
    pub since: Option<Instant>,
    /// Each line to the peer and whether it carries packets.
    pub lines: BTreeMap<Name, bool>,
    /// Its packets announce groups running outside the committed placement.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub takeover: bool,
    /// A packet from it arrived since this detector started.
    #[serde(skip)]
    pub heard: bool,
    /// With a verification line: it answered this node's requests within
    /// the timeout (the link works both ways).
    #[serde(skip)]
    pub answers: Option<bool>,
    /// With a verification line: it carried a packet (a request or a
    /// reply) within the timeout.
    #[serde(skip)]
    pub verification: Option<bool>,
    /// A newer run of it began less than a timeout ago and has not answered
    /// this node's requests yet ([`Event::Restarted`]).
    #[serde(skip)]
    pub restarted: bool,
    /// Its last verification packet arrived within an interval (plus the
    /// scheduling slack) of its last answer, or of the verification line
    /// coming back up after a silence: it may have been sent before this
    /// node's first unanswered request reached the peer, so it proves
    /// nothing about this node's traffic out. A peer that dies right after
    /// answering leaves exactly this behind for up to an interval, and so
    /// does one heard again after a cut both ways healed.
    #[serde(skip)]
    pub crossed: bool,
}

impl PeerSnapshot {
    /// The peer's verification requests reach this node but it answers
    /// none of this node's: the link works one way only — unless it has
    /// just restarted, or its requests may have crossed this node's
    /// unanswered one in flight (docs/ha.md, "One-way links").
    pub fn one_way(&self) -> bool {
        Self::one_way_of(
            self.verification,
            self.answers,
            self.restarted,
            self.crossed,
        )
    }

    fn one_way_of(
        verification: Option<bool>,
        answers: Option<bool>,
        restarted: bool,
        crossed: bool,
    ) -> bool {
        verification == Some(true) && answers == Some(false) && !restarted && !crossed
    }
}

#[derive(Debug, Clone)]
pub struct Detector {
    timeout: Duration,
    /// [`PeerSnapshot::crossed`]'s window: one interval (this node's next
    /// request after an answer) plus the scheduling slack.
    crossing: Duration,
    peers: BTreeMap<Name, PeerWatch>,
    isolation: Vec<(IsolationTarget, Instant)>,
    tie_break: TieBreak,
    isolated: bool,
    last_input: Instant,
}

impl Detector {
    /// Starts with every line heard at `now`: a peer gets a full `timeout`
    /// to show up before anything is declared.
    pub fn new(cfg: DetectorConfig, now: Instant) -> Self {
        let peers = cfg
            .peers
            .into_iter()
            .filter(|(_, l)| !l.domain.is_empty() || l.verification.is_some())
            .map(|(name, l)| {
                let domain_count = l.domain.len();
                let has_verification = l.verification.is_some();
                let lines = l
                    .domain
                    .into_iter()
                    .chain(l.verification)
                    .map(|line| {
                        (
                            line,
                            LineWatch {
                                last: now,
                                up: true,
                                since: now,
                            },
                        )
                    })
                    .collect();
                let answers = has_verification.then_some(LineWatch {
                    last: now,
                    up: true,
                    since: now,
                });
                let watch = PeerWatch {
                    lines,
                    domain_count,
                    state: PeerState::Up,
                    since: now,
                    takeover: false,
                    heard: false,
                    answers,
                    run: None,
                    restarted: None,
                    one_way: false,
                };
                (name, watch)
            })
            .collect();
        Detector {
            timeout: cfg.timeout,
            crossing: cfg.interval + SCHEDULING_SLACK,
            peers,
            isolation: cfg.isolation.into_iter().map(|t| (t, now)).collect(),
            tie_break: cfg.tie_break,
            isolated: false,
            last_input: now,
        }
    }

    /// A valid packet from `peer` arrived on `line` (a heartbeat on a domain
    /// line, a verification reply on the verification line). Packets from
    /// unknown peers or lines are ignored: the receiver already checked them.
    pub fn heard(&mut self, now: Instant, peer: &str, line: &str) -> Vec<Event> {
        let mut first = None;
        if let Some((name, w)) = self.peers.iter_mut().find(|(n, _)| n.as_str() == peer)
            && let Some((_, lw)) = w.lines.iter_mut().find(|(n, _)| n.as_str() == line)
        {
            lw.last = lw.last.max(now);
            if !w.heard {
                w.heard = true;
                first = Some(Event::Heard { peer: name.clone() });
            }
        }
        let mut events: Vec<Event> = first.into_iter().collect();
        events.extend(self.tick(now));
        events
    }

    /// `peer` answered one of this node's verification requests.
    pub fn answered(&mut self, now: Instant, peer: &str) -> Vec<Event> {
        let mut events = Vec::new();
        if let Some((name, w)) = self.peers.iter_mut().find(|(n, _)| n.as_str() == peer) {
            if let Some(a) = w.answers.as_mut() {
                a.last = a.last.max(now);
            }
            if w.restarted.take().is_some() {
                events.push(Event::Restarted {
                    peer: name.clone(),
                    waiting: false,
                });
            }
        }
        events.extend(self.tick(now));
        events
    }

    /// The incarnation of a valid packet from `peer`. A newer one than
    /// heard before is a new run of the peer, which has not had the time to
    /// hear this node: it gets one timeout, from its first packet, to
    /// answer before its unanswered requests count as a one-way link
    /// (`PeerSnapshot::restarted`). Only when the run before it was heard
    /// for a whole timeout: at this detector's start the first run heard
    /// may be a replay of an older one (the replay guard knows nothing
    /// yet), and a peer that lived less than that could not have taken
    /// anything over (docs/ha.md, "One-way links").
    pub fn incarnation(&mut self, now: Instant, peer: &str, incarnation: u64) -> Option<Event> {
        let timeout = self.timeout;
        let (name, w) = self.peers.iter_mut().find(|(n, _)| n.as_str() == peer)?;
        let previous = w.run;
        if previous.is_some_and(|(known, _)| known >= incarnation) {
            return None;
        }
        w.run = Some((incarnation, now));
        let (_, seen) = previous?;
        if now.saturating_duration_since(seen) < timeout {
            return None;
        }
        w.restarted = Some(now);
        Some(Event::Restarted {
            peer: name.clone(),
            waiting: true,
        })
    }

    /// The flags of `peer`'s latest packet: an event when its takeover
    /// announcement changed.
    pub fn flags(&mut self, peer: &str, flags: u8) -> Option<Event> {
        let w = self.peers.get_mut(peer)?;
        let announced = flags & crate::agent::detection::packet::FLAG_TAKEOVER != 0;
        if w.takeover == announced {
            return None;
        }
        w.takeover = announced;
        Some(Event::Takeover {
            peer: peer.parse().ok()?,
            announced,
        })
    }

    /// `address` answered an isolation probe.
    pub fn isolation_reply(&mut self, now: Instant, address: IpAddr) -> Vec<Event> {
        for (t, last) in &mut self.isolation {
            if t.address == address {
                *last = (*last).max(now);
            }
        }
        self.tick(now)
    }

    /// Re-evaluates every silence at `now`.
    pub fn tick(&mut self, now: Instant) -> Vec<Event> {
        // Silences are never judged at an instant earlier than the latest
        // input's. A packet received before a deadline can reach the
        // detector after the deadline's tick (the monitor ran the tick
        // first); `heard` then ticks at the packet's older instant, and
        // judging there would bring back lines already seen silent, and with
        // them the peer, on no new evidence.
        let now = now.max(self.last_input);
        let timeout = self.timeout;
        let silent = |last: Instant| now.saturating_duration_since(last) >= timeout;
        let mut events = Vec::new();
        // The caller ticks several times per interval; a gap of a whole
        // timeout means this process did not run, not that peers are quiet.
        let gap = now.saturating_duration_since(self.last_input);
        if gap >= timeout {
            events.push(Event::Stalled { gap });
        }
        self.last_input = self.last_input.max(now);
        for (name, w) in &mut self.peers {
            w.tick_watches(name, &silent, self.crossing, &mut events);
            let domain_up = w.lines[..w.domain_count].iter().any(|(_, l)| l.up);
            let verification_up = w.lines[w.domain_count..].iter().any(|(_, l)| l.up);
            let target = if domain_up {
                PeerState::Up
            } else if verification_up {
                PeerState::Suspected
            } else {
                PeerState::Failed
            };
            if target == w.state {
                continue;
            }
            let last_heard = w.last_heard();
            // A peer is never declared failed without having been suspected:
            // observers (logs, metrics, tests) see the whole path.
            if w.state == PeerState::Up && target == PeerState::Failed {
                events.push(Event::Peer {
                    peer: name.clone(),
                    from: PeerState::Up,
                    to: PeerState::Suspected,
                    last_heard,
                });
                w.state = PeerState::Suspected;
            }
            events.push(Event::Peer {
                peer: name.clone(),
                from: w.state,
                to: target,
                last_heard,
            });
            w.state = target;
            w.since = now;
        }
        let isolated = self.compute_isolated(now);
        if isolated != self.isolated {
            self.isolated = isolated;
            events.push(Event::Isolation { isolated });
        }
        events
    }

    /// The next instant at which [`Self::tick`] would change something by
    /// itself: a line that carries packets going silent, or an isolation
    /// address's last answer expiring. The monitor wakes exactly then, so a
    /// peer is declared failed one timeout after its last packet rather
    /// than at the next periodic tick after that.
    /// Only instants after `now`: an isolation answer that expired stays
    /// expired, and must not wake the monitor over and over.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let lines = self
            .peers
            .values()
            .flat_map(|w| w.lines.iter().map(|(_, l)| l).chain(w.answers.as_ref()))
            .filter(|l| l.up)
            .map(|l| l.last + self.timeout);
        let isolation = self.isolation.iter().map(|(_, last)| *last + self.timeout);
        let restarted = self.peers.values().filter_map(|w| w.restarted);
        lines
            .chain(isolation)
            .chain(restarted.map(|at| at + self.timeout))
            .filter(|at| *at > now)
            .min()
    }

    fn compute_isolated(&self, now: Instant) -> bool {
        if self.peers.is_empty() || self.isolation.is_empty() {
            return false;
        }
        if self.peers.values().any(|w| w.state != PeerState::Failed) {
            return false;
        }
        let counts = |t: &IsolationTarget| match self.tie_break {
            TieBreak::Quorum => true,
            TieBreak::TwoNodes { ranked_first } => t.on_line || ranked_first,
        };
        !self
            .isolation
            .iter()
            .any(|(t, last)| counts(t) && now.saturating_duration_since(*last) < self.timeout)
    }

    pub fn peer_state(&self, peer: &str) -> Option<PeerState> {
        self.peers.get(peer).map(|w| w.state)
    }

    /// Whether the line to `peer` carries packets.
    pub fn line_up(&self, peer: &str, line: &str) -> Option<bool> {
        let w = self.peers.get(peer)?;
        w.lines
            .iter()
            .find(|(n, _)| n.as_str() == line)
            .map(|(_, l)| l.up)
    }

    pub fn is_isolated(&self) -> bool {
        self.isolated
    }

    /// Every peer's state and lines.
    pub fn view(&self) -> BTreeMap<Name, PeerSnapshot> {
        self.peers
            .iter()
            .map(|(name, w)| {
                let lines = w.lines.iter().map(|(n, l)| (n.clone(), l.up)).collect();
                (
                    name.clone(),
                    PeerSnapshot {
                        state: w.state,
                        since: Some(w.since),
                        lines,
                        takeover: w.takeover,
                        heard: w.heard,
                        answers: w.answers.as_ref().map(|a| a.up),
                        verification: w.lines.get(w.domain_count).map(|(_, l)| l.up),
                        restarted: w.restarted.is_some(),
                        crossed: w.crossed(self.crossing),
                    },
                )
            })
            .collect()
    }
}
