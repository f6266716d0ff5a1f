//! The failover policy: what this node does with its failure detector's
//! verdicts.
//!
//! - [`machine`]: the decisions, pure — the fence (every group offline on
//!   isolation, a stall or a lost quorum, until caught up with the domain),
//!   the local takeover of a domain of two nodes without a witness, and the
//!   failover time of the groups that come online here.
//! - [`health`]: [`DetectorHealth`], the leader's [`HealthSource`]: node
//!   states from this node's failure detector (with the takeover wait of
//!   docs/ha.md), and the freshness of node reports for nodes the detector
//!   does not watch (the witness, nodes on no shared line, before the first
//!   configuration).
//! - This file: the driver, [`run`]. It keeps the node monitor in step with
//!   the applied configuration (restarted when lines, heartbeat or isolation
//!   settings change), feeds the machine, and carries out its actions: the
//!   [`Clearance`] the daemon gives the reconciler (while fenced, no groups,
//!   so they go offline at once), the catch-up with the domain's leader, the
//!   takeover flag of outgoing heartbeats, metrics and log lines.
//!
//! [`HealthSource`]: crate::domain::leader::HealthSource

pub mod health;
pub mod machine;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::agent::detection::detector::{Event, takeover_wait};
use crate::agent::detection::heartbeat::incarnation_now;
use crate::agent::detection::monitor::{self, DetectorSnapshot, NodeMonitor};
use crate::agent::detection::packet::DomainKey;
use crate::agent::failover::journal::Journal;
use crate::agent::failover::takeover::Clearance;
use crate::agent::metrics::Metrics;
use crate::clock::sleep_until;
use crate::domain::Replica;
use crate::model::{Config, IsolationResponse, Name};
use crate::wire::NodeReport;

pub use health::{DetectorHealth, disputed, quorum_lease_of};
use machine::{Action, Check, Input, Note, Policy, QuorumEvidence};

/// How often the quorum lease is checked: well within the scheduling slack
/// of docs/ha.md's timing argument.
const QUORUM_CHECK: Duration = Duration::from_millis(50);
/// How soon a failure detector that could not start is tried again.
const DETECTOR_RETRY: Duration = Duration::from_secs(2);

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
    /// Where the fences this node puts on itself are recorded.
    pub journal: Journal,
}

/// The I/O around the [`Policy`]: the node monitor it runs and the
/// catch-up under way.
struct Driver {
    cx: PolicyContext,
    policy: Policy,
    /// The node monitor with the fingerprint of the configuration it was
    /// started from (`None` inside: it could not start).
    monitor: Option<(String, Option<NodeMonitor>)>,
    /// Running while fenced after an isolation, a stall or a lost quorum
    /// ended: the fence lifts when it has caught up with the domain's
    /// leader ([`catch_up_task`]), never on a timer — a node that reaches
    /// no leader does not know where the groups are.
    resync: Option<JoinHandle<()>>,
    /// Set when the detector could not start (a heartbeat port still held
    /// by a process on its way out): try again then, not only on the next
    /// configuration change.
    retry: Option<tokio::time::Instant>,
}

/// Runs until `stop` changes.
pub async fn run(cx: PolicyContext, mut stop: watch::Receiver<bool>) {
    let mut applied = cx.domain.applied.clone();
    let mut d = Driver {
        policy: Policy::new(cx.node.clone()),
        cx,
        monitor: None,
        resync: None,
        retry: None,
    };
    let mut quorum_tick = tokio::time::interval(QUORUM_CHECK);
    quorum_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let pulse = crate::agent::vital::pulse("failover policy", QUORUM_CHECK);
    loop {
        pulse.beat();
        d.follow_config().await;
        let events = d.monitor.as_mut().and_then(|(_, m)| m.as_mut());
        let input = tokio::select! {
            _ = stop.changed() => return,
            r = applied.changed() => if r.is_err() { return } else { continue },
            r = d.cx.reports.changed() => {
                if r.is_err() {
                    return;
                }
                Input::Report(d.cx.reports.borrow_and_update().clone())
            }
            () = sleep_until(d.retry) => {
                d.retry = None;
                d.monitor = None;
                continue;
            }
            _ = quorum_tick.tick() => {
                // One instant for what the check reads and what it decides.
                let now = Instant::now();
                d.step(Input::Check(d.check(now)), now);
                continue;
            }
            () = joined(&mut d.resync) => {
                d.resync = None;
                Input::CaughtUp
            }
            Some((_, e)) = next_event(events) => Input::Detector(e),
        };
        d.step(input, Instant::now());
    }
}

impl Driver {
    fn step(&mut self, input: Input, now: Instant) {
        for action in self.policy.step(input, now) {
            self.act(action);
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Publish(c) => {
                self.cx.clearance.send_if_modified(|g| {
                    let changed = *g != c;
                    *g = c;
                    changed
                });
            }
            Action::CatchUp => {
                self.resync = Some(catch_up_task(&self.cx.domain, self.resync.take()));
            }
            Action::StopCatchUp => cancel(self.resync.take()),
            Action::Announce(on) => {
                if let Some(m) = self.monitor.as_ref().and_then(|(_, m)| m.as_ref()) {
                    m.announce_takeover(on);
                }
            }
            Action::GroupState(group, state) => self.cx.metrics.group_state(&group, state),
            Action::Failover { group, after } => {
                self.cx.metrics.failover(after);
                info!(%group, failover_ms = after.as_millis() as u64, "group online after a peer failure");
            }
            Action::Note(note) => {
                log(&note);
                self.journal(&note);
            }
        }
    }

    /// A fence this node puts on itself goes to its journal when it took
    /// groups offline: the domain's history gets it once the node is back
    /// in contact (a fence of a node that ran nothing changes nothing).
    fn journal(&self, note: &Note) {
        let now = SystemTime::now();
        let (cause, began) = match note {
            Note::Isolated => ("isolated: no isolation address answered".to_string(), now),
            Note::Stalled { gap } => (
                format!(
                    "frozen or starved for {} ms (its failure detector stalled)",
                    gap.as_millis()
                ),
                now.checked_sub(*gap).unwrap_or(now),
            ),
            Note::QuorumLost => ("out of touch with a quorum of the domain".to_string(), now),
            _ => return,
        };
        let groups = held_groups(&self.cx.reports.borrow());
        if groups.is_empty() {
            return;
        }
        match self.cx.journal.record(now, began, &cause, groups) {
            Ok(Some(e)) => {
                info!(seq = e.seq, cause = %e.cause, "fence recorded in the fencing journal")
            }
            Ok(None) => {}
            Err(e) => warn!("cannot write the fencing journal: {e}"),
        }
    }

    /// What the periodic check reads, now.
    fn check(&self, now: Instant) -> Check {
        let state = self.cx.domain.state();
        let quorum = state.config().and_then(|config| {
            Some(QuorumEvidence {
                lease: quorum_lease_of(&config, &self.cx.domain)?,
                seen: self.cx.domain.contact.quorum_seen(now),
            })
        });
        Check {
            view: self.view().map(|v| v.borrow().clone()),
            report: self.cx.reports.borrow().clone(),
            state,
            quorum,
        }
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
                let wait = takeover_wait(hb.cloned().unwrap_or_default().interval.get());
                let response = config
                    .domain
                    .as_ref()
                    .and_then(|d| d.spec.isolation.as_ref())
                    .map_or(IsolationResponse::Offline, |i| i.response);
                cx.health.set(Some((m.monitor.view.clone(), wait)));
                info!(method = ?m.isolation_method, "failure detector running");
                self.monitor = Some((fp, Some(m)));
                self.step(Input::DetectorStarted { response, wait }, Instant::now());
            }
            Err(e) => {
                // Health falls back to report freshness.
                warn!("no failure detector on this node: {e}; retrying in {DETECTOR_RETRY:?}");
                self.monitor = Some((fp, None));
                self.retry = Some(tokio::time::Instant::now() + DETECTOR_RETRY);
            }
        }
    }
}

/// The groups a report has starting, online or stopping: what a fence
/// takes offline.
pub fn held_groups(report: &NodeReport) -> Vec<Name> {
    use crate::wire::GroupState;
    report
        .groups
        .iter()
        .filter(|(_, g)| {
            matches!(
                g.state,
                GroupState::Starting | GroupState::Online | GroupState::Stopping
            )
        })
        .map(|(n, _)| n.clone())
        .collect()
}

fn log(note: &Note) {
    match note {
        Note::Isolated => warn!("isolated: taking every group offline"),
        Note::Stalled { gap } => warn!(
            gap_ms = gap.as_millis() as u64,
            "the agent was frozen: taking every group offline until caught up"
        ),
        Note::Muted => warn!(
            "the peer's requests arrive but it does not answer this node's: this node's traffic out is cut, and the peer takes over; taking every group offline"
        ),
        Note::QuorumLost => {
            warn!("out of touch with a quorum of the domain: taking every group offline");
        }
        Note::QuorumBack => {
            info!("in touch with a quorum again: catching up before groups run here");
        }
        Note::CaughtUp => info!("caught up with the domain's leader: groups may run here again"),
        Note::Alone => {
            info!("the peer is down and this node is not isolated: groups may run here again");
        }
        Note::Taken(groups) => {
            info!(
                ?groups,
                "groups run here by local takeover (two nodes, no quorum to commit)"
            );
        }
    }
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
