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
//! see `crate::agent::heartbeat`), not only once a peer is suspected: so when
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

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::model::{Config, LineRole, Name};
use crate::wire::PeerState;

/// The lines one peer shares with this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerLines {
    /// Domain lines (heartbeats) shared with the peer.
    pub domain: Vec<Name>,
    /// The verification line, when both are on it.
    pub verification: Option<Name>,
}

/// How isolation addresses decide, beyond "some address answered".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TieBreak {
    /// Three or more voters (nodes, or two nodes and a witness): the domain
    /// database's quorum prevents two sides from both placing a group, so
    /// any isolation address that answers means "not isolated".
    Quorum,
    /// Two nodes without a witness. An isolation address inside a line's
    /// subnet proves that this node and its peer share a working segment, so
    /// it always counts. A routed address does not prove that, so it counts
    /// only for the node ranked first (the lower name): in a symmetric
    /// partition where both still reach a routed address, only the first
    /// keeps its groups.
    TwoNodes { ranked_first: bool },
}

/// One isolation address and whether it lies inside a line's subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsolationTarget {
    pub address: IpAddr,
    pub on_line: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorConfig {
    /// Silence after which a line, and then a peer, is given up.
    pub timeout: Duration,
    /// Every peer that shares at least one line with this node.
    pub peers: BTreeMap<Name, PeerLines>,
    pub isolation: Vec<IsolationTarget>,
    pub tie_break: TieBreak,
}

/// The scheduling slack assumed for an agent (`ε` in docs/ha.md): how late
/// its detector may run, beyond its own tick, under load.
pub const SCHEDULING_SLACK: Duration = Duration::from_millis(100);

/// The bound on the isolation response (`S` in docs/ha.md): removing the
/// managed addresses and killing the groups' process groups.
pub const ISOLATION_STOP_BOUND: Duration = Duration::from_millis(100);

/// The bound on the lease guard's fence (`K` in docs/ha.md): SIGKILL to the
/// recorded process groups and removal of the recorded addresses, measured
/// at 3–15 ms (tests/root/guard.rs).
pub const GUARD_KILL_BOUND: Duration = Duration::from_millis(100);

/// How long a survivor waits after declaring a peer failed before its
/// groups may start elsewhere (docs/ha.md). Two ways the peer's groups stop,
/// and W covers the slower:
///
/// - the peer's agent runs but is cut off: it notices and stops them by
///   `I + τ + ε + S` after the survivor may declare it failed;
/// - the peer's agent is frozen or killed: its lease guard fires `L` after
///   the last renewal and has them down `ε + K` later. The agent's heartbeats
///   stopped at the same moment, the last one up to `I` earlier, so the
///   survivor declares the peer failed no earlier than `T − I` after the
///   freeze: `W ≥ L + ε + K − (T − I)`. With `L = T`
///   ([`super::guard::lease_time`]) that is `I + ε + K`.
pub fn takeover_wait(interval: Duration) -> Duration {
    let cut_off = interval + interval / 4 + SCHEDULING_SLACK + ISOLATION_STOP_BOUND;
    let frozen = interval + SCHEDULING_SLACK + GUARD_KILL_BOUND;
    cut_off.max(frozen)
}

/// The quorum lease `Lq` of docs/ha.md: how long a node's evidence of being
/// in touch with a quorum of the domain database lasts. `T` where the nodes
/// alone can hear a majority; with a witness (which sends no heartbeats) the
/// evidence is raft's alone, and it must outlast a raft election after a
/// leader's crash (openraft's leader lease plus the longest election
/// timeout), plus two raft heartbeats for the new leader's first quorum to
/// reach the follower.
pub fn quorum_lease(
    timeout: Duration,
    witness: bool,
    raft_heartbeat: Duration,
    election_max: Duration,
) -> Duration {
    if witness {
        timeout.max(2 * election_max + 2 * raft_heartbeat)
    } else {
        timeout
    }
}

impl DetectorConfig {
    /// The detector setup of `node`: its peers are the nodes sharing a line
    /// with it; two nodes without a witness use [`TieBreak::TwoNodes`], the
    /// first in name order being ranked first.
    pub fn from_config(config: &Config, node: &Name) -> DetectorConfig {
        let mut peers: BTreeMap<Name, PeerLines> = BTreeMap::new();
        for line in &config.lines {
            if !line.spec.members.contains_key(node.as_str()) {
                continue;
            }
            for peer in line.spec.members.keys().filter(|p| *p != node) {
                let e = peers.entry(peer.clone()).or_insert(PeerLines {
                    domain: Vec::new(),
                    verification: None,
                });
                match line.spec.role {
                    LineRole::Domain => e.domain.push(line.name().clone()),
                    // With several verification lines the first one is used.
                    LineRole::Verification => {
                        e.verification.get_or_insert_with(|| line.name().clone());
                    }
                }
            }
        }
        let domain = config.domain.as_ref().map(|d| &d.spec);
        let isolation = domain
            .and_then(|d| d.isolation.as_ref())
            .map(|i| {
                i.addresses
                    .iter()
                    .map(|a| IsolationTarget {
                        address: *a,
                        on_line: config.lines.iter().any(|l| l.spec.subnet.contains(a)),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let witness = domain.is_some_and(|d| d.witness.is_some());
        let tie_break = if config.nodes.len() == 2 && !witness {
            let first = config.nodes.iter().map(|n| n.name()).min();
            TieBreak::TwoNodes {
                ranked_first: first == Some(node),
            }
        } else {
            TieBreak::Quorum
        };
        DetectorConfig {
            timeout: domain.map_or(std::time::Duration::from_secs(1), |d| {
                d.heartbeat.timeout.get()
            }),
            peers,
            isolation,
            tie_break,
        }
    }
}

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
    /// (`super::packet::FLAG_TAKEOVER`).
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
}

#[derive(Debug, Clone)]
struct LineWatch {
    last: Instant,
    up: bool,
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
}

impl PeerWatch {
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
pub struct PeerView {
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
}

#[derive(Debug, Clone)]
pub struct Detector {
    timeout: Duration,
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
                            },
                        )
                    })
                    .collect();
                let answers = has_verification.then_some(LineWatch {
                    last: now,
                    up: true,
                });
                let watch = PeerWatch {
                    lines,
                    domain_count,
                    state: PeerState::Up,
                    since: now,
                    takeover: false,
                    heard: false,
                    answers,
                };
                (name, watch)
            })
            .collect();
        Detector {
            timeout: cfg.timeout,
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
        if let Some(a) = self.peers.get_mut(peer).and_then(|w| w.answers.as_mut()) {
            a.last = a.last.max(now);
        }
        self.tick(now)
    }

    /// The flags of `peer`'s latest packet: an event when its takeover
    /// announcement changed.
    pub fn flags(&mut self, peer: &str, flags: u8) -> Option<Event> {
        let w = self.peers.get_mut(peer)?;
        let announced = flags & super::packet::FLAG_TAKEOVER != 0;
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
            if let Some(a) = &mut w.answers {
                let up = !silent(a.last);
                if up != a.up {
                    a.up = up;
                    events.push(Event::Answers {
                        peer: name.clone(),
                        up,
                    });
                }
            }
            for (line, lw) in &mut w.lines {
                let up = !silent(lw.last);
                if up != lw.up {
                    lw.up = up;
                    events.push(Event::Line {
                        peer: name.clone(),
                        line: line.clone(),
                        up,
                    });
                }
            }
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
        lines.chain(isolation).filter(|at| *at > now).min()
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
    pub fn view(&self) -> BTreeMap<Name, PeerView> {
        self.peers
            .iter()
            .map(|(name, w)| {
                let lines = w.lines.iter().map(|(n, l)| (n.clone(), l.up)).collect();
                (
                    name.clone(),
                    PeerView {
                        state: w.state,
                        since: Some(w.since),
                        lines,
                        takeover: w.takeover,
                        heard: w.heard,
                        answers: w.answers.as_ref().map(|a| a.up),
                        verification: w.lines.get(w.domain_count).map(|(_, l)| l.up),
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::testing::n;

    const T: Duration = Duration::from_millis(1000);

    #[test]
    fn a_peer_that_stops_answering_requests_is_an_event_and_not_a_failure() {
        let t0 = Instant::now();
        let mut d = Detector::new(two_lines_and_verification(vec![], TieBreak::Quorum), t0);
        let mut all = Vec::new();
        // Its heartbeats and its own requests keep arriving (it is heard on
        // every line), but no reply to this node's requests comes back.
        for i in 1..=8 {
            let now = t0 + ms(i * 250);
            for line in ["d1", "d2", "v"] {
                all.extend(d.heard(now, "b", line));
            }
        }
        assert_eq!(d.peer_state("b"), Some(PeerState::Up));
        assert_eq!(d.view()["b"].answers, Some(false));
        assert!(all.contains(&Event::Answers {
            peer: n("b"),
            up: false
        }));
        let back = d.answered(t0 + ms(2100), "b");
        assert!(back.contains(&Event::Answers {
            peer: n("b"),
            up: true
        }));
        assert_eq!(d.view()["b"].answers, Some(true));
    }

    #[test]
    fn the_first_packet_of_a_peer_is_an_event_once() {
        let t0 = Instant::now();
        let mut d = Detector::new(two_lines_and_verification(vec![], TieBreak::Quorum), t0);
        assert!(!d.view()["b"].heard);
        let first = d.heard(t0 + ms(10), "b", "d1");
        assert!(
            first
                .iter()
                .any(|e| matches!(e, Event::Heard { peer } if peer.as_str() == "b"))
        );
        assert!(d.view()["b"].heard);
        let again = d.heard(t0 + ms(20), "b", "d2");
        assert!(!again.iter().any(|e| matches!(e, Event::Heard { .. })));
    }

    #[test]
    fn the_next_deadline_is_the_first_line_to_go_silent() {
        let t0 = Instant::now();
        let mut d = Detector::new(two_lines_and_verification(vec![], TieBreak::Quorum), t0);
        assert_eq!(d.next_deadline(t0), Some(t0 + T));
        d.heard(t0 + ms(300), "b", "d1");
        d.heard(t0 + ms(300), "b", "d2");
        // The verification line, heard last at t0, goes first.
        assert_eq!(d.next_deadline(t0 + ms(300)), Some(t0 + T));
        d.heard(t0 + ms(400), "b", "v");
        d.answered(t0 + ms(400), "b");
        assert_eq!(d.next_deadline(t0 + ms(400)), Some(t0 + ms(300) + T));
        // Ticking at that deadline declares the lines down: the peer is
        // failed a timeout after its last packet, not a tick later.
        let events = d.tick(t0 + ms(300) + T);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Line { up: false, .. }))
        );
        assert_eq!(d.peer_state("b"), Some(PeerState::Suspected));
        assert_eq!(d.next_deadline(t0 + ms(300) + T), Some(t0 + ms(400) + T));
        d.tick(t0 + ms(400) + T);
        assert_eq!(d.peer_state("b"), Some(PeerState::Failed));
        // Nothing left to expire: no deadline, so no busy wake-ups.
        assert_eq!(d.next_deadline(t0 + ms(400) + T), None);
    }

    #[test]
    fn the_quorum_lease_outlasts_an_election_only_with_a_witness() {
        let timing = crate::domain::RaftTiming::from_heartbeat(ms(250), T);
        let (hb, el) = (ms(timing.heartbeat_ms), ms(timing.election_max_ms));
        assert_eq!(quorum_lease(T, false, hb, el), T);
        let with_witness = quorum_lease(T, true, hb, el);
        // A follower's evidence ages from the old leader's last quorum (up
        // to one heartbeat before its last append) until the new leader's
        // first quorum reaches it: lease + election timeout, plus a round.
        assert!(with_witness >= 2 * el + 2 * hb, "{with_witness:?}");
        assert!(with_witness >= T);
        // A long timeout is the lease itself.
        assert_eq!(quorum_lease(ms(10_000), true, hb, el), ms(10_000));
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn two_lines_and_verification(
        isolation: Vec<IsolationTarget>,
        tie: TieBreak,
    ) -> DetectorConfig {
        let lines = PeerLines {
            domain: vec![n("d1"), n("d2")],
            verification: Some(n("v")),
        };
        DetectorConfig {
            timeout: T,
            peers: [(n("b"), lines)].into_iter().collect(),
            isolation,
            tie_break: tie,
        }
    }

    fn peer_events(ev: &[Event]) -> Vec<(PeerState, PeerState)> {
        ev.iter()
            .filter_map(|e| match e {
                Event::Peer { from, to, .. } => Some((*from, *to)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn one_line_lost_is_a_line_event_not_a_failure() {
        let t0 = Instant::now();
        let mut d = Detector::new(two_lines_and_verification(vec![], TieBreak::Quorum), t0);
        let mut all = Vec::new();
        for i in 1..=20 {
            let now = t0 + ms(i * 250);
            all.extend(d.heard(now, "b", "d2"));
            all.extend(d.heard(now, "b", "v"));
            all.extend(d.answered(now, "b"));
        }
        assert_eq!(d.peer_state("b"), Some(PeerState::Up));
        assert_eq!(d.line_up("b", "d1"), Some(false));
        assert_eq!(
            all,
            vec![
                Event::Heard { peer: n("b") },
                Event::Line {
                    peer: n("b"),
                    line: n("d1"),
                    up: false
                }
            ]
        );
        // The line comes back.
        let ev = d.heard(t0 + ms(5100), "b", "d1");
        assert!(ev.contains(&Event::Line {
            peer: n("b"),
            line: n("d1"),
            up: true
        }));
    }

    #[test]
    fn domain_lines_lost_but_verification_answers_is_suspected_only() {
        let t0 = Instant::now();
        let mut d = Detector::new(two_lines_and_verification(vec![], TieBreak::Quorum), t0);
        let mut all = Vec::new();
        for i in 1..=20 {
            all.extend(d.heard(t0 + ms(i * 250), "b", "v"));
        }
        assert_eq!(d.peer_state("b"), Some(PeerState::Suspected));
        assert_eq!(
            peer_events(&all),
            vec![(PeerState::Up, PeerState::Suspected)]
        );
        // Then the verification line goes quiet as well.
        let ev = d.tick(t0 + ms(5000) + T);
        assert_eq!(
            peer_events(&ev),
            vec![(PeerState::Suspected, PeerState::Failed)]
        );
        // And a heartbeat brings it straight back.
        let ev = d.heard(t0 + ms(7000), "b", "d2");
        assert_eq!(peer_events(&ev), vec![(PeerState::Failed, PeerState::Up)]);
    }

    #[test]
    fn a_dead_peer_is_suspected_then_failed_at_the_timeout() {
        let t0 = Instant::now();
        let mut d = Detector::new(two_lines_and_verification(vec![], TieBreak::Quorum), t0);
        d.heard(t0 + ms(100), "b", "d1");
        d.heard(t0 + ms(100), "b", "d2");
        d.heard(t0 + ms(100), "b", "v");
        assert!(peer_events(&d.tick(t0 + ms(1099))).is_empty());
        let ev = d.tick(t0 + ms(1100));
        assert_eq!(
            peer_events(&ev),
            vec![
                (PeerState::Up, PeerState::Suspected),
                (PeerState::Suspected, PeerState::Failed)
            ]
        );
        match ev.last() {
            Some(Event::Peer { last_heard, .. }) => assert_eq!(*last_heard, t0 + ms(100)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn without_verification_line_silence_on_domain_lines_is_failure() {
        let t0 = Instant::now();
        let cfg = DetectorConfig {
            timeout: T,
            peers: [(
                n("b"),
                PeerLines {
                    domain: vec![n("d1")],
                    verification: None,
                },
            )]
            .into_iter()
            .collect(),
            isolation: vec![],
            tie_break: TieBreak::Quorum,
        };
        let mut d = Detector::new(cfg, t0);
        d.tick(t0 + T);
        assert_eq!(d.peer_state("b"), Some(PeerState::Failed));
    }

    fn gw(on_line: bool) -> IsolationTarget {
        IsolationTarget {
            address: "192.0.2.1".parse().expect("ip"),
            on_line,
        }
    }

    #[test]
    fn isolated_only_when_every_peer_and_every_address_is_silent() {
        let t0 = Instant::now();
        let mut d = Detector::new(
            two_lines_and_verification(vec![gw(true)], TieBreak::Quorum),
            t0,
        );
        // The gateway answers, peers are gone: not isolated, the peer failed.
        for i in 1..=8 {
            d.isolation_reply(t0 + ms(i * 250), gw(true).address);
        }
        assert_eq!(d.peer_state("b"), Some(PeerState::Failed));
        assert!(!d.is_isolated());
        // The gateway stops answering as well.
        let ev = d.tick(t0 + ms(2000) + T);
        assert!(ev.contains(&Event::Isolation { isolated: true }));
        // Any peer packet ends the isolation.
        let ev = d.heard(t0 + ms(3500), "b", "v");
        assert!(ev.contains(&Event::Isolation { isolated: false }));
        assert!(!d.is_isolated());
    }

    #[test]
    fn two_nodes_routed_isolation_address_counts_only_for_the_first() {
        let t0 = Instant::now();
        for (ranked_first, expect_isolated) in [(true, false), (false, true)] {
            let cfg =
                two_lines_and_verification(vec![gw(false)], TieBreak::TwoNodes { ranked_first });
            let mut d = Detector::new(cfg, t0);
            for i in 1..=8 {
                d.isolation_reply(t0 + ms(i * 250), gw(false).address);
            }
            assert_eq!(d.peer_state("b"), Some(PeerState::Failed));
            assert_eq!(
                d.is_isolated(),
                expect_isolated,
                "ranked_first={ranked_first}"
            );
        }
        // An address on a line's subnet counts for both.
        let cfg = two_lines_and_verification(
            vec![gw(true)],
            TieBreak::TwoNodes {
                ranked_first: false,
            },
        );
        let mut d = Detector::new(cfg, t0);
        for i in 1..=8 {
            d.isolation_reply(t0 + ms(i * 250), gw(true).address);
        }
        assert!(!d.is_isolated());
    }

    #[test]
    fn no_isolation_addresses_never_isolated() {
        let t0 = Instant::now();
        let mut d = Detector::new(two_lines_and_verification(vec![], TieBreak::Quorum), t0);
        d.tick(t0 + ms(10_000));
        assert_eq!(d.peer_state("b"), Some(PeerState::Failed));
        assert!(!d.is_isolated());
    }

    #[test]
    fn the_survivor_waits_for_the_lease_guard() {
        // From a freeze at f, the survivor starts no earlier than
        // f − I + T + W; the guard has the node down by f + L + ε + K.
        for i_ms in [50u64, 100, 250, 500, 1000] {
            for t_mult in [2u32, 4, 8] {
                let i = ms(i_ms);
                let t = i * t_mult;
                let l = crate::agent::guard::lease_time(t);
                assert!(
                    t + takeover_wait(i) >= i + l + SCHEDULING_SLACK + GUARD_KILL_BOUND,
                    "I={i:?} T={t:?}"
                );
            }
        }
    }

    #[test]
    fn a_gap_between_ticks_of_a_whole_timeout_is_a_stall() {
        let t0 = Instant::now();
        let mut d = Detector::new(two_lines_and_verification(vec![], TieBreak::Quorum), t0);
        assert!(
            !d.tick(t0 + ms(250))
                .iter()
                .any(|e| matches!(e, Event::Stalled { .. }))
        );
        let ev = d.tick(t0 + ms(250) + T);
        assert_eq!(ev.first(), Some(&Event::Stalled { gap: T }));
    }

    #[test]
    fn unknown_peers_and_lines_are_ignored() {
        let t0 = Instant::now();
        let mut d = Detector::new(two_lines_and_verification(vec![], TieBreak::Quorum), t0);
        d.heard(t0 + ms(900), "zz", "d1");
        d.heard(t0 + ms(900), "b", "nope");
        d.tick(t0 + T);
        assert_eq!(d.peer_state("b"), Some(PeerState::Failed));
        assert_eq!(d.peer_state("zz"), None);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// An input: after `dt` ms, a packet on line index `line` (0, 1: domain,
        /// 2: verification, 3: nothing, just a tick).
        fn inputs() -> impl Strategy<Value = Vec<(u64, usize)>> {
            prop::collection::vec((0u64..600, 0usize..4), 1..200)
        }

        proptest! {
            /// Whatever the packet pattern, the state is exactly what the
            /// silences say, transitions chain (each `from` is the previous
            /// `to`), and Failed is only ever entered from Suspected.
            #[test]
            fn state_follows_silences(steps in inputs()) {
                let t0 = Instant::now();
                let mut d = Detector::new(two_lines_and_verification(vec![], TieBreak::Quorum), t0);
                let names = ["d1", "d2", "v"];
                let mut last = [t0; 3];
                let mut now = t0;
                let mut state = PeerState::Up;
                for (dt, line) in steps {
                    now += ms(dt);
                    let ev = if line < 3 {
                        last[line] = now;
                        d.heard(now, "b", names[line])
                    } else {
                        d.tick(now)
                    };
                    for e in &ev {
                        if let Event::Peer { from, to, last_heard, .. } = e {
                            prop_assert_eq!(*from, state);
                            prop_assert!(*to != PeerState::Failed || *from == PeerState::Suspected);
                            prop_assert_eq!(*last_heard, *last.iter().max().expect("3"));
                            state = *to;
                        }
                    }
                    let alive = |i: usize| now.duration_since(last[i]) < T;
                    let expect = if alive(0) || alive(1) {
                        PeerState::Up
                    } else if alive(2) {
                        PeerState::Suspected
                    } else {
                        PeerState::Failed
                    };
                    prop_assert_eq!(d.peer_state("b"), Some(expect));
                    prop_assert_eq!(state, expect);
                    for (i, name) in names.iter().enumerate() {
                        prop_assert_eq!(d.line_up("b", name), Some(alive(i)));
                    }
                }
            }

            /// Isolation never holds while a peer is not Failed, and with
            /// the quorum rule never while an address answered within `timeout`.
            #[test]
            fn isolation_needs_total_silence(steps in inputs()) {
                let t0 = Instant::now();
                let mut d = Detector::new(two_lines_and_verification(vec![gw(false)], TieBreak::Quorum), t0);
                let mut now = t0;
                let mut last_gw = t0;
                for (dt, line) in steps {
                    now += ms(dt);
                    match line {
                        0 => { d.heard(now, "b", "d1"); }
                        3 => { last_gw = now; d.isolation_reply(now, gw(false).address); }
                        _ => { d.tick(now); }
                    }
                    if d.is_isolated() {
                        prop_assert_eq!(d.peer_state("b"), Some(PeerState::Failed));
                        prop_assert!(now.duration_since(last_gw) >= T);
                    }
                }
            }
        }
    }
}
