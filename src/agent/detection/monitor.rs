//! The node monitor: the I/O shell around the pure failure detector.
//!
//! It feeds the detector the heartbeat observations, the isolation probe
//! answers and the time (a tick every quarter interval, so a silence is seen
//! within `timeout + interval/4`), logs and counts every transition, and
//! publishes the detector's view. The daemon reads [`MonitorHandle::view`]
//! to give the leader its node health and [`MonitorHandle::events`] to act
//! on isolation.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::clock::sleep_until;
use crate::model::{Config, Name};
use crate::plan::{Health, NodeState};

use crate::agent::detection::detector::{Detector, DetectorConfig, Event, PeerSnapshot};
use crate::agent::detection::heartbeat::{
    self, HeartbeatConfig, HeartbeatError, Heartbeats, Observation,
};
use crate::agent::detection::isolation::{IsolationError, Method, Prober};
use crate::agent::detection::packet::DomainKey;
use crate::agent::metrics::Metrics;
use crate::wire::PeerState;

/// What the detector currently believes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectorSnapshot {
    pub peers: BTreeMap<Name, PeerSnapshot>,
    pub isolated: bool,
}

impl DetectorSnapshot {
    /// The node states the leader's placement reads, as this node sees them:
    /// itself Up unless isolated; a peer Up unless Failed (a Suspected peer
    /// still answers on the verification line). Nodes this one shares no
    /// line with are left out, i.e. Down (`crate::plan::Health`).
    ///
    /// A Failed peer counts as Down only once it has been Failed for `wait`
    /// ([`crate::agent::detection::detector::takeover_wait`]): the time a peer that is alive
    /// but cut off needs to notice and stop its groups. Placement then moves
    /// its groups no earlier than that.
    pub fn health(&self, me: &Name, now: Instant, wait: Duration) -> Health {
        let mut h: Health = self
            .peers
            .iter()
            .map(|(peer, v)| {
                let waited = v
                    .since
                    .is_none_or(|t| now.saturating_duration_since(t) >= wait);
                let state = if v.state == PeerState::Failed && waited {
                    NodeState::Down
                } else {
                    NodeState::Up
                };
                (peer.clone(), state)
            })
            .collect();
        let me_state = if self.isolated {
            NodeState::Down
        } else {
            NodeState::Up
        };
        h.insert(me.clone(), me_state);
        h
    }

    /// This node and the peers it heard within the timeout (anything not
    /// Failed) make a majority of `voters`: the heartbeat half of the quorum
    /// lease (docs/ha.md). The witness is never heard here.
    pub fn hears_majority(&self, voters: usize) -> bool {
        // Both ways: a peer that no longer answers this node's verification
        // requests does not hear it, whatever arrives from it.
        let heard = 1 + self
            .peers
            .values()
            .filter(|p| p.state != PeerState::Failed && p.answers != Some(false))
            .count();
        heard > voters / 2
    }

    /// Peers that may run groups: anything not Failed (a Suspected peer is
    /// alive on the verification line).
    pub fn is_alive(&self, peer: &str) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|p| p.state != PeerState::Failed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Heartbeat(#[from] HeartbeatError),
    #[error(transparent)]
    Isolation(#[from] IsolationError),
}

/// Heartbeats, isolation probes and the failure detector of one node,
/// running; dropping it stops them all.
#[derive(Debug)]
pub struct NodeMonitor {
    pub monitor: MonitorHandle,
    /// The isolation probe method in use (`None`: no isolation addresses).
    pub isolation_method: Option<Method>,
    heartbeats: Heartbeats,
}

impl NodeMonitor {
    /// Announces (or stops announcing) in every packet sent from now on
    /// that this node runs groups outside the committed placement.
    pub fn announce_takeover(&self, on: bool) {
        let flags = if on {
            crate::agent::detection::packet::FLAG_TAKEOVER
        } else {
            0
        };
        self.heartbeats.set_flags(flags);
    }

    /// Stops the monitor and waits until its heartbeat sockets are closed,
    /// so that a new monitor can bind the same addresses.
    pub async fn stop(self) {
        drop(self.monitor);
        self.heartbeats.stop().await;
    }
}

/// Starts everything `node` needs to watch its peers and itself, from the
/// applied configuration: the daemon's one call.
pub fn start_node(
    config: &Config,
    node: &Name,
    key: DomainKey,
    incarnation: u64,
    metrics: Arc<Metrics>,
) -> Result<NodeMonitor, MonitorError> {
    let hb = HeartbeatConfig::from_config(config, node, key, incarnation)?;
    let interval = hb.interval;
    let det = DetectorConfig::from_config(config, node);
    let prober = if det.isolation.is_empty() {
        None
    } else {
        let tcp_port = config
            .domain
            .as_ref()
            .and_then(|d| d.spec.isolation.as_ref())
            .and_then(|i| i.tcp_port);
        Some(Prober::new(tcp_port, None)?)
    };
    let isolation_method = prober.as_ref().map(Prober::method);
    let (tx, rx) = mpsc::channel(1024);
    let heartbeats = heartbeat::start(hb, metrics.clone(), tx)?;
    Ok(NodeMonitor {
        monitor: spawn(det, interval, rx, prober, metrics),
        isolation_method,
        heartbeats,
    })
}

#[derive(Debug)]
pub struct MonitorHandle {
    pub view: watch::Receiver<DetectorSnapshot>,
    /// Every transition, in order. Unread events are dropped when the
    /// buffer is full; the view is always current.
    pub events: mpsc::Receiver<(Instant, Event)>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for MonitorHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts the monitor. `prober` is `None` when the domain has no isolation
/// addresses.
pub fn spawn(
    cfg: DetectorConfig,
    interval: Duration,
    observations: mpsc::Receiver<Observation>,
    prober: Option<Prober>,
    metrics: Arc<Metrics>,
) -> MonitorHandle {
    let timeout = cfg.timeout;
    let addresses: Vec<IpAddr> = cfg.isolation.iter().map(|t| t.address).collect();
    let detector = Detector::new(cfg, Instant::now());
    let (view_tx, view) = watch::channel(DetectorSnapshot {
        peers: detector.view(),
        isolated: false,
    });
    for (peer, v) in detector.view() {
        metrics.peer_state(&peer, v.state);
        for (line, up) in v.lines {
            metrics.line_state(&peer, &line, up);
        }
    }
    let (events_tx, events) = mpsc::channel(1024);
    let (reply_tx, replies) = mpsc::channel::<(Instant, IpAddr)>(64);
    let mut tasks = match prober {
        Some(prober) => spawn_probes(prober, addresses, interval, timeout, &reply_tx),
        None => Vec::new(),
    };
    drop(reply_tx);
    let inputs = Inputs {
        observations,
        replies,
        tick: interval / 4,
    };
    let outputs = Outputs {
        metrics,
        events: events_tx,
        view: view_tx,
    };
    // Ends only when every heartbeat task is gone (the monitor stopped).
    tasks.push(crate::agent::vital::spawn_may_end(
        "detector",
        drive(detector, inputs, outputs),
    ));
    MonitorHandle {
        view,
        events,
        tasks,
    }
}

/// One task per isolation address, probing it every `interval` and sending
/// each answer (with its time) to `replies`.
fn spawn_probes(
    prober: Prober,
    addresses: Vec<IpAddr>,
    interval: Duration,
    timeout: Duration,
    replies: &mpsc::Sender<(Instant, IpAddr)>,
) -> Vec<JoinHandle<()>> {
    let prober = Arc::new(prober);
    info!(
        method = prober.method().as_str(),
        "probing isolation addresses"
    );
    addresses
        .into_iter()
        .map(|addr| {
            let prober = prober.clone();
            let tx = replies.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    // Waits up to one timeout: a slow answer still counts,
                    // and a probe never overlaps the next one by much.
                    if prober.probe(addr, timeout).await
                        && tx.send((Instant::now(), addr)).await.is_err()
                    {
                        return;
                    }
                }
            })
        })
        .collect()
}

/// What the detector is fed.
struct Inputs {
    observations: mpsc::Receiver<Observation>,
    replies: mpsc::Receiver<(Instant, IpAddr)>,
    tick: Duration,
}

/// Where its transitions go.
struct Outputs {
    metrics: Arc<Metrics>,
    events: mpsc::Sender<(Instant, Event)>,
    view: watch::Sender<DetectorSnapshot>,
}

/// Feeds the detector until the observations end: every observation,
/// isolation answer and tick in; every transition logged, counted, queued,
/// and the view published.
async fn drive(mut detector: Detector, mut inputs: Inputs, out: Outputs) {
    let mut tick = tokio::time::interval(inputs.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut probes_open = true;
    let pulse = crate::agent::vital::pulse("detector", inputs.tick);
    loop {
        pulse.beat();
        let events = tokio::select! {
            // Evidence before the clock: after a scheduling delay, every
            // packet already received is fed in before a tick judges the
            // silences, so a peer is not suspected (then up again) for want
            // of a packet that sat in the queue.
            biased;
            o = inputs.observations.recv() => match o {
                Some(o) => {
                    // The run first: a restarted peer's grace starts with
                    // its first packet, before that packet's line counts.
                    let mut events: Vec<Event> =
                        detector.incarnation(o.at, o.peer.as_str(), o.incarnation).into_iter().collect();
                    events.extend(detector.heard(o.at, o.peer.as_str(), o.line.as_str()));
                    if o.reply {
                        events.extend(detector.answered(o.at, o.peer.as_str()));
                    }
                    events.extend(detector.flags(o.peer.as_str(), o.flags));
                    events
                }
                None => return,
            },
            r = inputs.replies.recv(), if probes_open => match r {
                Some((at, addr)) => detector.isolation_reply(at, addr),
                None => { probes_open = false; continue; }
            },
            _ = tick.tick() => detector.tick(Instant::now()),
            // At the deadline itself, not up to a tick later.
            _ = sleep_until(wake_at(detector.next_deadline(Instant::now()))) => detector.tick(Instant::now()),
        };
        if events.is_empty() {
            continue;
        }
        let now = Instant::now();
        for e in events {
            record(&out.metrics, now, &e);
            // A full or closed event queue must not stop detection.
            let _ = out.events.try_send((now, e));
        }
        out.view.send_replace(DetectorSnapshot {
            peers: detector.view(),
            isolated: detector.is_isolated(),
        });
    }
}

fn record(metrics: &Metrics, now: Instant, e: &Event) {
    match e {
        Event::Line { peer, line, up } => {
            metrics.line_state(peer, line, *up);
            if *up {
                info!(%peer, %line, "line up");
            } else {
                warn!(%peer, %line, "line down");
            }
        }
        Event::Peer {
            peer,
            from,
            to,
            last_heard,
        } => {
            metrics.peer_state(peer, *to);
            let silent_ms = now.saturating_duration_since(*last_heard).as_millis() as u64;
            match to {
                PeerState::Failed => {
                    metrics.detection(now.saturating_duration_since(*last_heard));
                    warn!(%peer, ?from, silent_ms, "peer failed: silent on every line");
                }
                PeerState::Suspected => {
                    warn!(%peer, ?from, silent_ms, "peer suspected: silent on every domain line")
                }
                PeerState::Up => info!(%peer, ?from, "peer up"),
            }
        }
        Event::Takeover { peer, announced } => {
            if *announced {
                info!(%peer, "peer announces groups running outside the committed placement");
            } else {
                info!(%peer, "peer runs only what the committed placement gives it");
            }
        }
        Event::Heard { peer } => {
            info!(%peer, "first packet from the peer since this agent started")
        }
        Event::Answers { peer, up: true } => {
            info!(%peer, "the peer answers verification requests again")
        }
        Event::Answers { peer, up: false } => {
            warn!(%peer, "the peer stopped answering verification requests: the link may work one way only")
        }
        Event::Restarted {
            peer,
            waiting: true,
        } => info!(
            %peer,
            "the peer restarted (a newer incarnation): its requests are no sign of a one-way link until it answers this node's, or for a timeout"
        ),
        Event::Restarted {
            peer,
            waiting: false,
        } => info!(%peer, "the restarted peer answered, or its timeout to answer passed"),
        Event::OneWay { peer, on: true } => warn!(
            %peer,
            "the peer's verification requests arrive but it answers none of this node's: the link works one way only"
        ),
        Event::OneWay { peer, on: false } => {
            info!(%peer, "the link to the peer no longer works one way only")
        }
        Event::Stalled { gap } => {
            warn!(
                gap_ms = gap.as_millis() as u64,
                "the agent did not run for a whole timeout: peers may have taken over its groups"
            );
        }
        Event::Isolation { isolated } => {
            metrics.isolated(*isolated);
            if *isolated {
                warn!("isolated: no peer and no isolation address answers");
            } else {
                info!("no longer isolated");
            }
        }
    }
}

/// Wakes the detector at `at` plus a millisecond, so it sees the deadline
/// passed.
fn wake_at(at: Option<Instant>) -> Option<tokio::time::Instant> {
    at.map(|at| tokio::time::Instant::from_std(at + Duration::from_millis(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::testing::n;

    #[test]
    fn a_majority_counts_this_node_and_every_peer_not_failed() {
        let view = |states: &[PeerState]| DetectorSnapshot {
            peers: states
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let p = PeerSnapshot {
                        state: *s,
                        since: None,
                        lines: BTreeMap::new(),
                        takeover: false,
                        heard: true,
                        answers: None,
                        verification: None,
                        restarted: false,
                        crossed: false,
                    };
                    (n(&format!("p{i}")), p)
                })
                .collect(),
            isolated: false,
        };
        use PeerState::*;
        // Three nodes: one peer heard (even on the verification line only)
        // is a majority; none is not.
        assert!(view(&[Up, Failed]).hears_majority(3));
        assert!(view(&[Suspected, Failed]).hears_majority(3));
        assert!(!view(&[Failed, Failed]).hears_majority(3));
        // Two nodes and a witness (never heard on a line): both nodes needed.
        assert!(view(&[Up]).hears_majority(3));
        assert!(!view(&[Failed]).hears_majority(3));
        // Four nodes: half is not a majority.
        assert!(!view(&[Up, Failed, Failed]).hears_majority(4));
        assert!(view(&[Up, Up, Failed]).hears_majority(4));
        // Heard but not answering this node's verification requests: the
        // link works one way only, the peer does not count.
        let mut one_way = view(&[Up, Up]);
        for p in one_way.peers.values_mut() {
            p.answers = Some(false);
        }
        assert!(!one_way.hears_majority(3));
        one_way
            .peers
            .values_mut()
            .for_each(|p| p.answers = Some(true));
        assert!(one_way.hears_majority(3));
    }

    #[test]
    fn health_for_placement() {
        let t0 = Instant::now();
        let peer = |state| PeerSnapshot {
            state,
            since: Some(t0),
            lines: BTreeMap::new(),
            takeover: false,
            heard: true,
            answers: None,
            verification: None,
            restarted: false,
            crossed: false,
        };
        let wait = Duration::from_millis(500);
        let mut v = DetectorSnapshot {
            peers: [
                (n("b"), peer(PeerState::Up)),
                (n("c"), peer(PeerState::Suspected)),
                (n("d"), peer(PeerState::Failed)),
            ]
            .into_iter()
            .collect(),
            isolated: false,
        };
        // Failed, but not for the whole takeover wait yet: still Up.
        let h = v.health(&n("a"), t0 + wait / 2, wait);
        assert_eq!(h.get("d"), Some(&NodeState::Up));
        let h = v.health(&n("a"), t0 + wait, wait);
        assert_eq!(h.get("a"), Some(&NodeState::Up));
        assert_eq!(h.get("b"), Some(&NodeState::Up));
        assert_eq!(h.get("c"), Some(&NodeState::Up));
        assert_eq!(h.get("d"), Some(&NodeState::Down));
        v.isolated = true;
        assert_eq!(v.health(&n("a"), t0, wait).get("a"), Some(&NodeState::Down));
    }
}
