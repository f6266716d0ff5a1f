//! Node health for the leader from the failure detectors: this node's own
//! where it watches, the nodes' reports on the witness, and never Down
//! while another live node still hears the node or its quorum lease may
//! still run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::agent::detection::detector::{quorum_lease, takeover_wait};
use crate::agent::detection::monitor::DetectorSnapshot;
use crate::agent::metrics::Metrics;
use crate::domain::leader::{HealthSource, ReportFreshness};
use crate::domain::{Replica, node_id};
use crate::model::{Config, Name};
use crate::plan::{Health, NodeState};
use crate::wire::PeerState;

/// Node health for the leader: the failure detector where it watches, the
/// report freshness elsewhere; and never Down while the node may still hold
/// a quorum lease this leader renewed (docs/ha.md).
#[derive(Debug)]
pub struct DetectorHealth {
    me: Option<Name>,
    fallback: Arc<ReportFreshness>,
    domain: Replica,
    view: Mutex<Option<(watch::Receiver<DetectorSnapshot>, Duration)>>,
    /// Without a detector of its own (the witness): since when some live
    /// node has reported each node Failed ([`Self::reported_down`]).
    claimed: Mutex<BTreeMap<Name, Instant>>,
    /// This node's detector's per-line view, the evidence recorded with a
    /// node the leader declares lost ([`HealthSource::evidence`]).
    lines: std::sync::OnceLock<Arc<Metrics>>,
}

impl DetectorHealth {
    /// With the metrics that carry this node's per-line detector view.
    pub fn with_lines(self, metrics: Arc<Metrics>) -> Self {
        let _ = self.lines.set(metrics);
        self
    }

    /// `me`: this node (`None` on the witness, which has no detector).
    pub fn new(me: Option<Name>, fallback: Arc<ReportFreshness>, domain: Replica) -> Self {
        DetectorHealth {
            me,
            fallback,
            domain,
            view: Mutex::new(None),
            claimed: Mutex::new(BTreeMap::new()),
            lines: std::sync::OnceLock::new(),
        }
    }

    /// The witness leads without a failure detector: it takes the
    /// detectors of the nodes instead. A node is Down when another node,
    /// itself reporting within `2T`, has reported it Failed for the whole
    /// takeover wait `W` (counted from when this member first saw it, so
    /// later than the reporter's own verdict), and the node's own reports
    /// have stopped for `T`. That is the decision a node leader takes from
    /// its own detector, a report's latency later; the quorum-lease rule of
    /// [`HealthSource::health`] still applies on top. Two nodes that cannot
    /// hear each other but both reach the witness report each other failed
    /// and both keep reporting: neither is Down, nothing moves.
    fn reported_down(&self, nodes: &[Name], now: Instant) -> Vec<Name> {
        let state = self.domain.state();
        let Some(config) = state.config() else {
            return Vec::new();
        };
        let Some(hb) = config.domain.as_ref().map(|d| &d.spec.heartbeat) else {
            return Vec::new();
        };
        let timing = (hb.timeout.get(), takeover_wait(hb.interval.get()));
        let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
        let heard = |n: &Name, d: Duration| self.fallback.heard_within(n, d);
        down_by_reports(&state, nodes, &heard, &mut claimed, now, timing)
    }

    pub(super) fn set(&self, view: Option<(watch::Receiver<DetectorSnapshot>, Duration)>) {
        *self.view.lock().unwrap_or_else(|e| e.into_inner()) = view;
    }

    /// When `node`'s quorum lease, as last renewed by this member's appends,
    /// is surely over and the node has had the takeover wait to stop:
    /// `None` when this member never reached it or the domain has no lease.
    fn lease_over_at(&self, node: &Name) -> Option<Instant> {
        let config = self.domain.state().config()?;
        let lease = quorum_lease_of(&config, &self.domain)?;
        let wait = self
            .domain
            .state()
            .heartbeat()
            .unwrap_or_default()
            .interval
            .get();
        let last = self.domain.contact.last_append_ok(node_id(node.as_str()))?;
        Some(last + lease + takeover_wait(wait))
    }
}

impl HealthSource for DetectorHealth {
    fn health(&self, nodes: &[Name]) -> Health {
        let mut h = self.fallback.health(nodes);
        let guard = self.view.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(me), Some((rx, wait))) = (&self.me, guard.as_ref()) {
            let detected = rx.borrow().health(me, Instant::now(), *wait);
            for n in nodes {
                if let Some(s) = detected.get(n) {
                    h.insert(n.clone(), *s);
                }
            }
        }
        let no_detector = guard.is_none();
        drop(guard);
        let now = Instant::now();
        if self.me.is_none() || no_detector {
            for n in self.reported_down(nodes, now) {
                h.insert(n, NodeState::Down);
            }
        }
        let state = self.domain.state();
        let timeout = state.heartbeat().unwrap_or_default().timeout.get();
        let heard = |n: &Name, d: Duration| self.fallback.heard_within(n, d);
        for (n, s) in h.iter_mut() {
            if *s == NodeState::Down
                && (self.lease_over_at(n).is_some_and(|at| at > now)
                    || disputed(&state, n, self.me.as_ref(), &heard, timeout))
            {
                *s = NodeState::Up;
            }
        }
        h
    }

    fn leadership_gained(&self, up: &[Name]) {
        self.fallback.leadership_gained(up);
    }

    fn evidence(&self, node: &Name) -> Option<String> {
        let me = self.me.as_ref()?;
        let view = self.lines.get()?.detector_view();
        let peer = view.peers.get(node.as_str())?;
        let lines: Vec<String> = peer
            .lines
            .iter()
            .map(|(line, l)| match (l.up, l.heard_ms_ago) {
                (true, _) => format!("{line} up"),
                (false, Some(ms)) => format!("{line} silent for {:.1} s", ms as f64 / 1000.0),
                (false, None) => format!("{line} never heard"),
            })
            .collect();
        let state = format!("{:?}", peer.state).to_lowercase();
        Some(format!(
            "{me}'s detector has it {state}: {}",
            if lines.is_empty() {
                "no line shared".into()
            } else {
                lines.join(", ")
            }
        ))
    }

    fn next_change(&self) -> Option<tokio::time::Instant> {
        let guard = self.view.lock().unwrap_or_else(|e| e.into_inner());
        let (rx, wait) = guard.as_ref()?;
        let now = Instant::now();
        rx.borrow()
            .peers
            .iter()
            .filter(|(_, v)| v.state == PeerState::Failed)
            .filter_map(|(peer, v)| {
                let detected = v.since? + *wait;
                Some(detected.max(self.lease_over_at(peer).unwrap_or(detected)))
            })
            .map(|at| at + Duration::from_millis(1))
            .filter(|at| *at > now)
            .min()
            .map(tokio::time::Instant::from_std)
    }
}

/// Whether another live node still hears `node`: a node other than `node`
/// and `me` (the deciding member), itself reporting within `2T`, whose
/// detector last reported `node` up or suspected. The leader then does not
/// take `node` down on its own detector's word — a link that fails between
/// the leader and `node` only, or in one direction only, is not a failure
/// of `node`, and moving its groups would start them next to a live copy.
/// A crash is seen by every detector within about the same timeout, so the
/// others' verdicts arrive (reports go out at once) well within the
/// takeover wait.
pub fn disputed(
    state: &crate::domain::DomainState,
    node: &Name,
    me: Option<&Name>,
    heard: &dyn Fn(&Name, Duration) -> bool,
    timeout: Duration,
) -> bool {
    state.nodes.iter().any(|(y, r)| {
        y != node
            && Some(y) != me
            && heard(y, 2 * timeout)
            && r.last_report
                .as_ref()
                .is_some_and(|rep| rep.alive_peers.contains(node))
    })
}

/// [`DetectorHealth::reported_down`], pure: `heard(n, d)` says whether
/// `n` reported within `d`, `claimed` keeps since when each node has been
/// reported Failed, `timing` is `(T, W)`.
fn down_by_reports(
    state: &crate::domain::DomainState,
    nodes: &[Name],
    heard: &dyn Fn(&Name, Duration) -> bool,
    claimed: &mut BTreeMap<Name, Instant>,
    now: Instant,
    (t, wait): (Duration, Duration),
) -> Vec<Name> {
    let mut down = Vec::new();
    for x in nodes {
        let claim = state.nodes.iter().any(|(y, r)| {
            y != x
                && heard(y, 2 * t)
                && r.last_report
                    .as_ref()
                    .is_some_and(|rep| rep.failed_peers.contains(x))
        });
        if !claim {
            claimed.remove(x);
            continue;
        }
        let since = *claimed.entry(x.clone()).or_insert(now);
        if now.saturating_duration_since(since) >= wait && !heard(x, t) {
            down.push(x.clone());
        }
    }
    down
}

/// The quorum lease of this domain ([`quorum_lease`]); `None` with fewer
/// than three voters (two nodes without a witness use the tie-break).
pub fn quorum_lease_of(config: &Config, domain: &Replica) -> Option<Duration> {
    let d = config.domain.as_ref()?;
    let witness = d.spec.witness.is_some();
    if config.nodes.len() + usize::from(witness) < 3 {
        return None;
    }
    Some(quorum_lease(
        d.spec.heartbeat.timeout.get(),
        witness,
        Duration::from_millis(domain.timing.heartbeat_ms),
        Duration::from_millis(domain.timing.election_max_ms),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::domain::{Command, DomainState};
    use crate::wire::NodeReport;

    use crate::model::testing::n;

    fn reporting(state: &mut DomainState, node: &str, failed: &[&str]) {
        state.apply(Command::NodeReport {
            report: NodeReport {
                node: n(node),
                generation_seen: 0,
                groups: BTreeMap::new(),
                taken_over: BTreeMap::new(),
                failed_peers: failed.iter().map(|f| n(f)).collect::<BTreeSet<_>>(),
                alive_peers: Default::default(),
            },
        });
    }

    #[test]
    fn a_node_another_live_node_still_hears_is_not_taken_down() {
        let mut state = DomainState::default();
        let t = Duration::from_millis(1000);
        let report = |node: &str, alive: &[&str]| Command::NodeReport {
            report: NodeReport {
                node: n(node),
                generation_seen: 0,
                groups: BTreeMap::new(),
                taken_over: BTreeMap::new(),
                failed_peers: BTreeSet::new(),
                alive_peers: alive.iter().map(|a| n(a)).collect(),
            },
        };
        state.apply(report("c", &["a", "b"]));
        state.apply(report("b", &[]));
        let everyone = |_: &Name, _: Duration| true;
        // b leads and no longer hears a; c still does: disputed.
        assert!(disputed(&state, &n("a"), Some(&n("b")), &everyone, t));
        // c's report is stale (c cut off or dead): its word counts no more.
        let not_c = |x: &Name, _: Duration| x.as_str() != "c";
        assert!(!disputed(&state, &n("a"), Some(&n("b")), &not_c, t));
        // c hears a no more either: a crash, agreed.
        state.apply(report("c", &["b"]));
        assert!(!disputed(&state, &n("a"), Some(&n("b")), &everyone, t));
        // The leader's own report and the node's own never count.
        state.apply(report("b", &["a"]));
        state.apply(report("a", &["a"]));
        assert!(!disputed(&state, &n("a"), Some(&n("b")), &everyone, t));
    }

    #[test]
    fn the_witness_takes_a_node_down_on_a_live_peer_s_verdict_after_the_wait() {
        let mut state = DomainState::default();
        let nodes = [n("a"), n("b")];
        let (t, w) = (Duration::from_millis(1000), Duration::from_millis(500));
        let t0 = Instant::now();
        let mut claimed = BTreeMap::new();
        reporting(&mut state, "b", &["a"]);
        // b reports, a is silent.
        let silent_a = |x: &Name, _: Duration| x.as_str() == "b";
        let down =
            |claimed: &mut BTreeMap<Name, Instant>, at, heard: &dyn Fn(&Name, Duration) -> bool| {
                down_by_reports(&state, &nodes, heard, claimed, at, (t, w))
            };
        assert!(down(&mut claimed, t0, &silent_a).is_empty(), "not before W");
        assert!(down(&mut claimed, t0 + w / 2, &silent_a).is_empty());
        assert_eq!(down(&mut claimed, t0 + w, &silent_a), [n("a")]);
        // a still reports to the witness (a cut between a and b only): not
        // down, whatever b says.
        let both = |_: &Name, _: Duration| true;
        assert!(down(&mut claimed, t0 + 2 * w, &both).is_empty());
        // The accuser itself silent: its verdict counts for nothing.
        let nobody = |_: &Name, _: Duration| false;
        assert!(down(&mut claimed, t0 + 3 * w, &nobody).is_empty());
        // ... and the wait starts again when a live node reports it anew.
        assert!(claimed.is_empty());
        assert!(down(&mut claimed, t0 + 4 * w, &silent_a).is_empty());
    }
}
