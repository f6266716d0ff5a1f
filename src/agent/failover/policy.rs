//! The glue between the failure detector and the rest of the agent:
//!
//! - [`DetectorHealth`] is the leader's [`HealthSource`]: node states from
//!   this node's failure detector (with the takeover wait of docs/ha.md), and
//!   the freshness of node reports for nodes the detector does not watch
//!   (the witness, nodes on no shared line, before the first configuration).
//! - [`run`] keeps the node monitor in step with the applied configuration
//!   (restarted when lines, heartbeat or isolation settings change), and
//!   turns isolation, stalls and an expired quorum lease into the *fence*:
//!   while it is up, the daemon gives the reconciler no groups, so they go
//!   offline at once. After the cause ends, the fence stays up until the
//!   node has caught up with the domain (the applied state quiet for a
//!   moment, or a grace period), so it never restarts groups from a
//!   placement the others have moved on from.
//! - In a domain of two nodes without a witness it also runs the local
//!   takeover ([`crate::agent::failover::takeover`]): what this node takes over, whether it
//!   announces groups outside the placement, whether it holds.
//! - It feeds the group metrics and the failover time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::domain::leader::{HealthSource, ReportFreshness};
use crate::domain::{DomainState, Replica, node_id};
use crate::model::{Config, IsolationResponse, Name};
use crate::plan::{Health, NodeState};

use crate::agent::detection::detector::{Event, quorum_lease, takeover_wait};
use crate::agent::detection::heartbeat::incarnation_now;
use crate::agent::detection::monitor::{self, DetectorSnapshot, NodeMonitor};
use crate::agent::detection::packet::DomainKey;
use crate::agent::failover::takeover::{self, Clearance, Taken};
use crate::agent::metrics::Metrics;
use crate::clock::sleep_until;
use crate::wire::{GroupState, NodeReport, PeerState};

/// A group coming online here this long after a peer failed counts as that
/// peer's failover (for `asctl_failover_seconds`).
const FAILOVER_WINDOW: Duration = Duration::from_secs(60);
/// How often the quorum lease is checked: well within the scheduling slack
/// of docs/ha.md's timing argument.
const QUORUM_CHECK: Duration = Duration::from_millis(50);
/// How soon a failure detector that could not start is tried again.
const DETECTOR_RETRY: Duration = Duration::from_secs(2);

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

    fn set(&self, view: Option<(watch::Receiver<DetectorSnapshot>, Duration)>) {
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

/// Two nodes: this node's outbound traffic is cut — a peer's verification
/// requests reach it (the peer's verification line is up here) but the
/// peer answers none of this node's: the peer hears nothing from this node,
/// declares it failed and takes over, so this node must stop first. A
/// verification line down both ways (no requests either) is not this.
fn muted(view: &DetectorSnapshot) -> bool {
    view.peers
        .values()
        .any(|p| p.verification == Some(true) && p.answers == Some(false))
}

/// Whether a node of two must hold (start nothing new): a peer that is not
/// Down in `local` announces a takeover, or has not been heard since this
/// agent started (its flag is unknown until its first packet).
fn holds(view: &DetectorSnapshot, local: Option<&Health>) -> bool {
    view.peers.iter().any(|(peer, p)| {
        (p.takeover || !p.heard) && local.and_then(|h| h.get(peer)) != Some(&NodeState::Down)
    })
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

/// Whether this node must fence for want of a quorum: the domain has a
/// quorum lease, the node does not hear a majority of the voters on its
/// lines, and its raft evidence of a quorum is older than the lease.
fn lacks_quorum(
    config: &Config,
    domain: &Replica,
    view: Option<&DetectorSnapshot>,
    now: Instant,
) -> bool {
    let Some(lease) = quorum_lease_of(config, domain) else {
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
    now.saturating_duration_since(domain.contact.quorum_seen(now)) >= lease
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

/// The grace a member gives the domain before it decides on its own:
/// `T + W + 1 s`, the time the others need to declare this member failed
/// and move its groups, plus a second (3 s before any configuration).
pub fn catch_up_grace(domain: &Replica) -> Duration {
    domain
        .state()
        .heartbeat()
        .map_or(Duration::from_secs(3), |hb| {
            hb.timeout.get() + takeover_wait(hb.interval.get()) + Duration::from_secs(1)
        })
}

/// Waits until this member has applied everything the domain committed
/// before it started waiting ([`Replica::catch_up`], the read-index
/// protocol), so that its reconciler never starts groups from a stale
/// placement: a restarted agent replays only its own log, and a member back
/// from a freeze or a cut still holds the state from before, and either
/// would otherwise start a group next to its new holder.
/// With no leader answering for four times [`catch_up_grace`] (a member
/// alone: the other of two nodes is down, or the domain is restarting), it
/// gives up and the caller goes on from the local state; the quorum lease
/// and the takeover rules decide from there.
pub async fn wait_caught_up(domain: &Replica) {
    let give_up = tokio::time::Instant::now() + catch_up_grace(domain) * 4;
    loop {
        match domain.catch_up(Duration::from_secs(2)).await {
            Ok(_) => return,
            Err(e) if tokio::time::Instant::now() >= give_up => {
                warn!("no leader answered ({e}): starting the reconciler on the local state");
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// What decides the node monitor's setup; a change restarts it.
fn fingerprint(config: &Config) -> String {
    let domain = config.domain.as_ref().map(|d| {
        (
            d.name(),
            &d.spec.heartbeat,
            &d.spec.isolation,
            &d.spec.witness,
        )
    });
    let nodes: Vec<&Name> = config.nodes.iter().map(|n| n.name()).collect();
    serde_json::to_string(&(domain, &config.lines, nodes)).unwrap_or_default()
}

/// Everything [`run`] needs.
pub struct PolicyContext {
    pub domain: Replica,
    pub node: Name,
    pub key: DomainKey,
    pub metrics: Arc<Metrics>,
    pub health: Arc<DetectorHealth>,
    /// What this node may run: fenced (every group offline), local
    /// takeovers and the hold of `crate::agent::failover::takeover`.
    pub clearance: watch::Sender<Clearance>,
    pub reports: watch::Receiver<NodeReport>,
}

/// The failover policy's state between events: the node monitor it runs
/// and why the node is fenced. One method per event; [`run`] is the driver.
struct Policy {
    cx: PolicyContext,
    /// The node monitor with the fingerprint of the configuration it was
    /// started from (`None` inside: it could not start).
    monitor: Option<(String, Option<NodeMonitor>)>,
    response: IsolationResponse,
    /// The takeover wait of the running configuration ([`takeover_wait`]).
    wait: Duration,
    /// Running while fenced after an isolation, a stall or a lost quorum
    /// ended: the fence lifts when it has caught up with the domain's
    /// leader ([`catch_up_task`]), never on a timer — a node that reaches
    /// no leader does not know where the groups are.
    resync: Option<JoinHandle<()>>,
    /// When the latest peer failure was last heard from, for the failover
    /// time of the groups that come online here after it.
    last_failure: Option<Instant>,
    /// Set when the detector could not start (a heartbeat port still held
    /// by a process on its way out): try again then, not only on the next
    /// configuration change.
    retry: Option<tokio::time::Instant>,
    /// Fenced for want of a quorum (domains of three voters or more, or a
    /// mute link with two): lifted, through the same catch-up as after an
    /// isolation, once a quorum is in touch again.
    quorum_lost: bool,
    /// Groups run here by local takeover (two nodes without a witness).
    taken: Taken,
    /// Each group's latest state here, to see it come online.
    online: BTreeMap<Name, GroupState>,
}

/// Runs until `stop` changes.
pub async fn run(cx: PolicyContext, mut stop: watch::Receiver<bool>) {
    let mut applied = cx.domain.applied.clone();
    let mut p = Policy::new(cx);
    let mut quorum_tick = tokio::time::interval(QUORUM_CHECK);
    quorum_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        p.follow_config().await;
        let events = p.monitor.as_mut().and_then(|(_, m)| m.as_mut());
        tokio::select! {
            _ = stop.changed() => return,
            r = applied.changed() => if r.is_err() { return },
            r = p.cx.reports.changed() => {
                if r.is_err() {
                    return;
                }
                p.on_report();
            }
            () = sleep_until(p.retry) => {
                p.retry = None;
                p.monitor = None;
            }
            _ = quorum_tick.tick() => p.on_quorum_check(),
            () = joined(&mut p.resync) => p.on_caught_up(),
            Some((_, e)) = next_event(events) => p.on_event(e),
        }
    }
}

impl Policy {
    fn new(cx: PolicyContext) -> Policy {
        Policy {
            cx,
            monitor: None,
            response: IsolationResponse::Offline,
            wait: Duration::ZERO,
            resync: None,
            last_failure: None,
            retry: None,
            quorum_lost: false,
            taken: Taken::default(),
            online: BTreeMap::new(),
        }
    }

    fn fence(&mut self, fenced: bool) {
        self.cx.clearance.send_modify(|g| g.fenced = fenced);
    }

    fn view(&self) -> Option<watch::Receiver<DetectorSnapshot>> {
        self.monitor
            .as_ref()
            .and_then(|(_, m)| m.as_ref())
            .map(|m| m.monitor.view.clone())
    }

    /// Keeps the node monitor in step with the applied configuration:
    /// restarted when its lines, heartbeat or isolation settings change.
    async fn follow_config(&mut self) {
        let Some(config) = self.cx.domain.state().config() else {
            return;
        };
        let fp = fingerprint(&config);
        if self.monitor.as_ref().map(|(f, _)| f) == Some(&fp) {
            return;
        }
        // The old sockets go before the new ones bind the same port:
        // waited for, since an aborted task closes them only later.
        if let Some((_, Some(old))) = self.monitor.take() {
            old.stop().await;
        }
        let cx = &self.cx;
        cx.health.set(None);
        let started = monitor::start_node(
            &config,
            &cx.node,
            cx.key.clone(),
            incarnation_now(),
            cx.metrics.clone(),
        );
        match started {
            Ok(m) => {
                self.retry = None;
                let hb = config.domain.as_ref().map(|d| &d.spec.heartbeat);
                let interval = hb.cloned().unwrap_or_default().interval.get();
                self.response = config
                    .domain
                    .as_ref()
                    .and_then(|d| d.spec.isolation.as_ref())
                    .map_or(IsolationResponse::Offline, |i| i.response);
                self.wait = takeover_wait(interval);
                cx.health.set(Some((m.monitor.view.clone(), self.wait)));
                info!(method = ?m.isolation_method, "failure detector running");
                self.monitor = Some((fp, Some(m)));
            }
            Err(e) => {
                // Health falls back to report freshness.
                warn!("no failure detector on this node: {e}; retrying in {DETECTOR_RETRY:?}");
                self.monitor = Some((fp, None));
                self.retry = Some(tokio::time::Instant::now() + DETECTOR_RETRY);
            }
        }
    }

    /// A new report from the reconciler: group metrics, and the failover
    /// time of a group that came online after a peer failed.
    fn on_report(&mut self) {
        let report = self.cx.reports.borrow_and_update().clone();
        for (group, status) in &report.groups {
            self.cx.metrics.group_state(group, status.state);
            let was = self.online.insert(group.clone(), status.state);
            if status.state == GroupState::Online
                && was != Some(GroupState::Online)
                && let Some(t) = self.last_failure.filter(|t| t.elapsed() < FAILOVER_WINDOW)
            {
                self.cx.metrics.failover(t.elapsed());
                info!(%group, failover_ms = t.elapsed().as_millis() as u64, "group online after a peer failure");
            }
        }
    }

    /// Every [`QUORUM_CHECK`]: local takeover with two nodes, then the
    /// quorum fence.
    fn on_quorum_check(&mut self) {
        let now = Instant::now();
        let state = self.cx.domain.state();
        let config = state.config();
        let view = self.view().map(|v| v.borrow().clone());
        match config.as_deref().filter(|c| takeover::applies(c)) {
            Some(config) => self.two_nodes(config, &state, view.as_ref(), now),
            None => {
                self.cx
                    .clearance
                    .send_if_modified(|g| !std::mem::replace(&mut g.settled, true));
            }
        }
        let muted =
            config.as_deref().is_some_and(takeover::applies) && view.as_ref().is_some_and(muted);
        let lost = muted
            || config
                .is_some_and(|config| lacks_quorum(&config, &self.cx.domain, view.as_ref(), now));
        if lost && !self.quorum_lost {
            if muted {
                warn!(
                    "the peer's requests arrive but it does not answer this node's: this node's traffic out is cut, and the peer takes over; taking every group offline"
                );
            }
            warn!("out of touch with a quorum of the domain: taking every group offline");
            self.quorum_lost = true;
            cancel(self.resync.take());
            self.fence(true);
        } else if !lost && self.quorum_lost {
            info!("in touch with a quorum again: catching up before groups run here");
            self.quorum_lost = false;
            self.resync = Some(catch_up_task(&self.cx.domain, self.resync.take()));
        }
    }

    /// Two nodes without a witness: what this node takes over, whether it
    /// announces that, and whether it holds for its peer's takeover.
    fn two_nodes(
        &mut self,
        config: &Config,
        state: &DomainState,
        view: Option<&DetectorSnapshot>,
        now: Instant,
    ) {
        let me = self.cx.node.clone();
        let local = view.map(|v| v.health(&me, now, self.wait));
        // With the peer down there is no leader to catch up with; having
        // won the tie-break, this node decides alone (the takeover below).
        let won = local.as_ref().is_some_and(|h| {
            h.get(&me) == Some(&NodeState::Up) && h.values().any(|s| *s == NodeState::Down)
        });
        if won && self.resync.is_some() {
            cancel(self.resync.take());
            info!("the peer is down and this node is not isolated: groups may run here again");
            self.fence(false);
        }
        let next = takeover::next(config, state, &me, local.as_ref(), &self.taken);
        if next != self.taken {
            info!(groups = ?next.groups(), "groups run here by local takeover (two nodes, no quorum to commit)");
            self.taken = next;
        }
        let report = self.cx.reports.borrow().clone();
        if let Some(m) = self.monitor.as_ref().and_then(|(_, m)| m.as_ref()) {
            m.announce_takeover(takeover::announce(state, &me, &self.taken, &report));
        }
        // A peer's announcement is its last packet's; once the peer has been
        // Failed for the takeover wait (Down), what it ran has stopped, and
        // holding for it would hold forever after a crash. A peer not heard
        // yet since this agent started may be announcing: hold until its
        // first packet says (or until it is Down), so a restarted node never
        // starts its stale placement's groups before the taker's flag
        // reached it.
        let hold = view.is_some_and(|v| holds(v, local.as_ref()));
        let settled = view.is_some_and(|v| {
            v.peers.iter().all(|(peer, p)| {
                p.heard || local.as_ref().and_then(|h| h.get(peer)) == Some(&NodeState::Down)
            })
        });
        let down: BTreeSet<Name> = local
            .iter()
            .flatten()
            .filter(|(n, s)| **s == NodeState::Down && **n != me)
            .map(|(n, _)| n.clone())
            .collect();
        let next = Clearance {
            fenced: false,
            taken: self.taken.revisions(),
            hold,
            settled,
            down,
            alone: won,
        };
        self.cx.clearance.send_if_modified(|g| {
            let fenced = g.fenced;
            let changed = *g
                != Clearance {
                    fenced,
                    ..next.clone()
                };
            *g = Clearance { fenced, ..next };
            changed
        });
    }

    /// The catch-up after a fence's cause ended is done.
    fn on_caught_up(&mut self) {
        self.resync = None;
        info!("caught up with the domain's leader: groups may run here again");
        self.fence(false);
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Isolation { isolated: true } if self.response == IsolationResponse::Offline => {
                warn!("isolated: taking every group offline");
                cancel(self.resync.take());
                self.fence(true);
            }
            Event::Isolation { isolated: false }
                if self.cx.clearance.borrow().fenced && !self.quorum_lost =>
            {
                // Anything committed meanwhile reaches us within a few raft
                // heartbeats once the lines are back.
                self.resync = Some(catch_up_task(&self.cx.domain, self.resync.take()));
            }
            Event::Stalled { gap } => {
                warn!(
                    gap_ms = gap.as_millis() as u64,
                    "the agent was frozen: taking every group offline until caught up"
                );
                self.fence(true);
                if !self.quorum_lost {
                    self.resync = Some(catch_up_task(&self.cx.domain, self.resync.take()));
                }
            }
            Event::Peer {
                to: PeerState::Failed,
                last_heard,
                ..
            } => self.last_failure = Some(last_heard),
            _ => {}
        }
    }
}

/// Catches up with the domain's leader in the background, retrying until
/// it answers (replacing `previous`).
fn catch_up_task(domain: &Replica, previous: Option<JoinHandle<()>>) -> JoinHandle<()> {
    cancel(previous);
    let domain = domain.clone();
    tokio::spawn(async move {
        while domain.catch_up(Duration::from_secs(2)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

fn cancel(task: Option<JoinHandle<()>>) {
    if let Some(t) = task {
        t.abort();
    }
}

/// Completes when `task` is done (never when there is none).
async fn joined(task: &mut Option<JoinHandle<()>>) {
    match task {
        Some(t) => {
            let _ = t.await;
        }
        None => std::future::pending().await,
    }
}

async fn next_event(m: Option<&mut NodeMonitor>) -> Option<(Instant, Event)> {
    match m {
        Some(m) => m.monitor.events.recv().await,
        None => std::future::pending().await,
    }
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
    fn a_node_of_two_is_muted_when_its_peer_asks_but_never_answers() {
        use crate::agent::detection::detector::PeerSnapshot;
        let view = |verification, answers| DetectorSnapshot {
            peers: [(
                n("b"),
                PeerSnapshot {
                    state: PeerState::Up,
                    since: None,
                    lines: BTreeMap::new(),
                    takeover: false,
                    heard: true,
                    answers,
                    verification,
                },
            )]
            .into_iter()
            .collect(),
            isolated: false,
        };
        assert!(!muted(&view(Some(true), Some(true))));
        assert!(
            muted(&view(Some(true), Some(false))),
            "its requests arrive, no answer"
        );
        assert!(
            !muted(&view(Some(false), Some(false))),
            "the line is down both ways"
        );
        assert!(!muted(&view(None, None)), "no verification line");
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
    fn a_node_of_two_holds_for_an_announcing_or_unheard_peer_until_it_is_down() {
        use crate::agent::detection::detector::PeerSnapshot;
        let view = |takeover, heard| DetectorSnapshot {
            peers: [(
                n("b"),
                PeerSnapshot {
                    state: PeerState::Up,
                    since: None,
                    lines: BTreeMap::new(),
                    takeover,
                    heard,
                    answers: None,
                    verification: None,
                },
            )]
            .into_iter()
            .collect(),
            isolated: false,
        };
        let b = |s| -> Health { [(n("a"), NodeState::Up), (n("b"), s)].into_iter().collect() };
        let up = b(NodeState::Up);
        assert!(!holds(&view(false, true), Some(&up)));
        assert!(holds(&view(true, true), Some(&up)), "the peer announces");
        assert!(holds(&view(false, false), Some(&up)), "not heard yet");
        assert!(holds(&view(false, false), None));
        let down = b(NodeState::Down);
        assert!(!holds(&view(true, true), Some(&down)), "a crashed taker");
        assert!(!holds(&view(false, false), Some(&down)));
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
