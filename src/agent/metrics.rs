//! The agent's runtime metrics, rendered in the Prometheus text format
//! (version 0.0.4) by [`Metrics::render_prometheus`] for the API's
//! `/metrics`.
//!
//! One [`Metrics`] per agent, shared (`Arc`) by the heartbeat tasks, the
//! failure detector and the reconciler glue. Updates take a mutex for a few
//! nanoseconds; heartbeats are a handful of packets per second per line, so
//! contention is not a concern and the data stays plain.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::Name;

use crate::agent::detection::packet::DropReason;
use crate::wire::{GroupState, LineView, LinesView, PeerLinesView, PeerState};

/// Bucket bounds (seconds) of the detection and failover histograms:
/// dense around the 1 s / 2 s targets so the 99th percentile can be read.
const BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct LineCounters {
    sent: u64,
    send_errors: u64,
    received: u64,
    dropped: BTreeMap<DropReason, u64>,
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let v = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if v <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += v;
    }
}

#[derive(Debug, Default)]
struct Inner {
    lines: BTreeMap<Name, LineCounters>,
    /// (peer, line) → when a valid packet last arrived.
    last_seen: BTreeMap<(Name, Name), Instant>,
    line_up: BTreeMap<(Name, Name), bool>,
    /// Each peer's detector state and when it entered it.
    peers: BTreeMap<Name, (PeerState, Instant)>,
    isolated: bool,
    detection: Histogram,
    failover: Histogram,
    groups: BTreeMap<Name, GroupState>,
    /// Per line: when a rejected packet was last logged, and how many were
    /// rejected without a log line since.
    drop_warned: BTreeMap<Name, (Instant, u64)>,
}

/// At most one log line per line and this period for rejected heartbeats:
/// an unauthenticated sender must not be able to grow the log at its own
/// packet rate (the counters count every packet).
pub const DROP_WARNING_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// Woken on every change of a peer's detector state: the node's report
    /// carries its verdicts (`NodeReport::failed_peers`), sent at once.
    pub peers_changed: tokio::sync::Notify,
}

/// A copy of one line's counters, for tests and `asctl status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineStats {
    pub sent: u64,
    pub send_errors: u64,
    pub received: u64,
    pub dropped: BTreeMap<DropReason, u64>,
}

impl LineStats {
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(&reason).copied().unwrap_or(0)
    }
}

impl Metrics {
    pub fn new() -> Self {
        Metrics::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A panic elsewhere while holding the lock leaves counters that are
        // still counters: keep serving them.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    pub fn sent(&self, line: &Name) {
        self.with(|m| m.lines.entry(line.clone()).or_default().sent += 1);
    }

    pub fn send_error(&self, line: &Name) {
        self.with(|m| m.lines.entry(line.clone()).or_default().send_errors += 1);
    }

    pub fn received(&self, line: &Name, peer: &Name, at: Instant) {
        self.with(|m| {
            m.lines.entry(line.clone()).or_default().received += 1;
            m.last_seen.insert((peer.clone(), line.clone()), at);
        });
    }

    pub fn dropped(&self, line: &Name, reason: DropReason) {
        self.with(|m| {
            *m.lines
                .entry(line.clone())
                .or_default()
                .dropped
                .entry(reason)
                .or_default() += 1
        });
    }

    /// Whether a packet rejected on `line` at `now` is to be logged: the
    /// first one, then one per [`DROP_WARNING_EVERY`]. `Some(n)`: log it,
    /// saying that `n` more were rejected unlogged since the last line.
    pub fn drop_warning(&self, line: &Name, now: Instant) -> Option<u64> {
        self.with(|m| match m.drop_warned.get_mut(line) {
            Some((at, quiet)) if now.saturating_duration_since(*at) < DROP_WARNING_EVERY => {
                *quiet += 1;
                None
            }
            Some((at, quiet)) => {
                *at = now;
                Some(std::mem::take(quiet))
            }
            None => {
                m.drop_warned.insert(line.clone(), (now, 0));
                Some(0)
            }
        })
    }

    pub fn line_state(&self, peer: &Name, line: &Name, up: bool) {
        self.with(|m| m.line_up.insert((peer.clone(), line.clone()), up));
    }

    /// The peers the detector hears now (Up or Suspected).
    pub fn alive_peers(&self) -> std::collections::BTreeSet<Name> {
        self.with(|m| {
            m.peers
                .iter()
                .filter(|(_, (s, _))| *s != PeerState::Failed)
                .map(|(p, _)| p.clone())
                .collect()
        })
    }

    /// The peers the detector has Failed now.
    pub fn failed_peers(&self) -> std::collections::BTreeSet<Name> {
        self.with(|m| {
            m.peers
                .iter()
                .filter(|(_, (s, _))| *s == PeerState::Failed)
                .map(|(p, _)| p.clone())
                .collect()
        })
    }

    pub fn peer_state(&self, peer: &Name, state: PeerState) {
        let changed = self.with(|m| {
            // Repeated reports of the same state keep the first instant.
            let changed = m.peers.get(peer).is_none_or(|(s, _)| *s != state);
            if changed {
                m.peers.insert(peer.clone(), (state, Instant::now()));
            }
            changed
        });
        if changed {
            self.peers_changed.notify_one();
        }
    }

    pub fn isolated(&self, isolated: bool) {
        self.with(|m| m.isolated = isolated);
    }

    /// Time from a peer's last packet to it being declared failed.
    pub fn detection(&self, d: Duration) {
        self.with(|m| m.detection.observe(d));
    }

    /// Time from a peer's last packet to its groups online again elsewhere.
    pub fn failover(&self, d: Duration) {
        self.with(|m| m.failover.observe(d));
    }

    pub fn group_state(&self, group: &Name, state: GroupState) {
        self.with(|m| m.groups.insert(group.clone(), state));
    }

    pub fn line_stats(&self, line: &str) -> LineStats {
        self.with(|m| {
            m.lines
                .get(line)
                .map(|c| LineStats {
                    sent: c.sent,
                    send_errors: c.send_errors,
                    received: c.received,
                    dropped: c.dropped.clone(),
                })
                .unwrap_or_default()
        })
    }

    /// The failure detector's view for `GET /v1/status`: each peer's state
    /// and each line to it, up or down, with the time since its last valid
    /// packet.
    pub fn detector_view(&self) -> LinesView {
        let now = Instant::now();
        self.with(|m| {
            let mut peers: BTreeMap<String, PeerLinesView> = m
                .peers
                .iter()
                .map(|(p, (s, since))| {
                    (
                        p.to_string(),
                        PeerLinesView {
                            state: *s,
                            since_ms_ago: Some(
                                now.saturating_duration_since(*since).as_millis() as u64
                            ),
                            lines: BTreeMap::new(),
                        },
                    )
                })
                .collect();
            for ((peer, line), up) in &m.line_up {
                let heard = m
                    .last_seen
                    .get(&(peer.clone(), line.clone()))
                    .map(|t| now.saturating_duration_since(*t).as_millis() as u64);
                if let Some(p) = peers.get_mut(peer.as_str()) {
                    p.lines.insert(
                        line.to_string(),
                        LineView {
                            up: *up,
                            heard_ms_ago: heard,
                        },
                    );
                }
            }
            LinesView {
                isolated: m.isolated,
                peers,
            }
        })
    }

    /// When a valid packet from `peer` last arrived on `line`.
    pub fn last_seen(&self, peer: &str, line: &str) -> Option<Instant> {
        self.with(|m| {
            m.last_seen
                .iter()
                .find(|((p, l), _)| p.as_str() == peer && l.as_str() == line)
                .map(|(_, t)| *t)
        })
    }

    /// Everything, in the Prometheus text exposition format.
    pub fn render_prometheus(&self) -> String {
        let now = Instant::now();
        self.with(|m| {
            let mut out = String::new();
            let o = &mut out;
            header(o, "asctl_heartbeat_packets_sent_total", "counter",
                "Packets sent per line (heartbeats and verification probes).");
            for (line, c) in &m.lines {
                let _ = writeln!(o, "asctl_heartbeat_packets_sent_total{{line=\"{line}\"}} {}", c.sent);
            }
            header(o, "asctl_heartbeat_send_errors_total", "counter",
                "Packets the kernel refused to send per line (e.g. the interface is down).");
            for (line, c) in &m.lines {
                let _ = writeln!(o, "asctl_heartbeat_send_errors_total{{line=\"{line}\"}} {}", c.send_errors);
            }
            header(o, "asctl_heartbeat_packets_received_total", "counter",
                "Valid packets received per line.");
            for (line, c) in &m.lines {
                let _ = writeln!(o, "asctl_heartbeat_packets_received_total{{line=\"{line}\"}} {}", c.received);
            }
            header(o, "asctl_heartbeat_packets_dropped_total", "counter",
                "Packets dropped per line and reason (malformed, foreign_domain, bad_mac, unknown_sender, replay).");
            for (line, c) in &m.lines {
                for r in DropReason::ALL {
                    let v = c.dropped.get(&r).copied().unwrap_or(0);
                    let _ = writeln!(o, "asctl_heartbeat_packets_dropped_total{{line=\"{line}\",reason=\"{}\"}} {v}", r.as_str());
                }
            }
            header(o, "asctl_peer_last_seen_seconds", "gauge",
                "Seconds since the last valid packet from a peer on a line.");
            for ((peer, line), t) in &m.last_seen {
                let _ = writeln!(o, "asctl_peer_last_seen_seconds{{peer=\"{peer}\",line=\"{line}\"}} {:.3}",
                    now.saturating_duration_since(*t).as_secs_f64());
            }
            header(o, "asctl_line_up", "gauge",
                "1 when the line to a peer carried a packet within the heartbeat timeout.");
            for ((peer, line), up) in &m.line_up {
                let _ = writeln!(o, "asctl_line_up{{peer=\"{peer}\",line=\"{line}\"}} {}", u8::from(*up));
            }
            header(o, "asctl_peer_state", "gauge", "The failure detector's state of each peer.");
            for (peer, (s, _)) in &m.peers {
                for (name, st) in [("up", PeerState::Up), ("suspected", PeerState::Suspected), ("failed", PeerState::Failed)] {
                    let _ = writeln!(o, "asctl_peer_state{{peer=\"{peer}\",state=\"{name}\"}} {}", u8::from(*s == st));
                }
            }
            header(o, "asctl_isolated", "gauge",
                "1 when this node lost every peer and reaches no isolation address.");
            let _ = writeln!(o, "asctl_isolated {}", u8::from(m.isolated));
            histogram(o, "asctl_failure_detection_seconds",
                "From a peer's last packet to the peer declared failed.", &m.detection);
            histogram(o, "asctl_failover_seconds",
                "From a failed peer's last packet to its groups online on this node.", &m.failover);
            header(o, "asctl_group_state", "gauge", "Each group's state on this node.");
            for (group, s) in &m.groups {
                for st in [GroupState::Offline, GroupState::Starting, GroupState::Online, GroupState::Stopping, GroupState::Failed] {
                    let _ = writeln!(o, "asctl_group_state{{group=\"{group}\",state=\"{}\"}} {}",
                        group_state_name(st), u8::from(*s == st));
                }
            }
            out
        })
    }
}

fn group_state_name(s: GroupState) -> &'static str {
    match s {
        GroupState::Offline => "offline",
        GroupState::Starting => "starting",
        GroupState::Online => "online",
        GroupState::Stopping => "stopping",
        GroupState::Failed => "failed",
    }
}

fn header(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}");
    let _ = writeln!(o, "# TYPE {name} {kind}");
}

fn histogram(o: &mut String, name: &str, help: &str, h: &Histogram) {
    header(o, name, "histogram", help);
    for (bound, count) in BUCKETS.iter().zip(h.counts) {
        let _ = writeln!(o, "{name}_bucket{{le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(o, "{name}_sum {}", h.sum);
    let _ = writeln!(o, "{name}_count {}", h.count);
}

#[cfg(test)]
mod tests {
    #[test]
    fn rejected_packets_are_logged_once_per_period_and_counted_always() {
        let m = Metrics::new();
        let line = crate::model::testing::n("d1");
        let t0 = Instant::now();
        assert_eq!(m.drop_warning(&line, t0), Some(0), "the first is logged");
        for i in 1..=1000 {
            m.dropped(&line, DropReason::BadMac);
            assert_eq!(m.drop_warning(&line, t0 + Duration::from_millis(i)), None);
        }
        // Another line has its own budget.
        assert_eq!(m.drop_warning(&crate::model::testing::n("d2"), t0), Some(0));
        assert_eq!(
            m.drop_warning(&line, t0 + DROP_WARNING_EVERY),
            Some(1000),
            "the next line says how many went unlogged"
        );
        assert_eq!(m.drop_warning(&line, t0 + DROP_WARNING_EVERY), None);
        assert_eq!(m.line_stats("d1").dropped(DropReason::BadMac), 1000);
    }

    use super::*;

    use crate::model::testing::n;

    #[test]
    fn renders_every_family_with_labels() {
        let m = Metrics::new();
        let now = Instant::now();
        m.sent(&n("public"));
        m.sent(&n("public"));
        m.received(&n("public"), &n("node2"), now);
        m.dropped(&n("public"), DropReason::Replay);
        m.line_state(&n("node2"), &n("public"), true);
        m.peer_state(&n("node2"), PeerState::Suspected);
        m.detection(Duration::from_millis(1020));
        m.failover(Duration::from_millis(1700));
        m.group_state(&n("web"), GroupState::Online);
        let text = m.render_prometheus();
        for line in [
            "asctl_heartbeat_packets_sent_total{line=\"public\"} 2",
            "asctl_heartbeat_packets_received_total{line=\"public\"} 1",
            "asctl_heartbeat_packets_dropped_total{line=\"public\",reason=\"replay\"} 1",
            "asctl_heartbeat_packets_dropped_total{line=\"public\",reason=\"bad_mac\"} 0",
            "asctl_line_up{peer=\"node2\",line=\"public\"} 1",
            "asctl_peer_state{peer=\"node2\",state=\"suspected\"} 1",
            "asctl_peer_state{peer=\"node2\",state=\"up\"} 0",
            "asctl_isolated 0",
            "asctl_failure_detection_seconds_bucket{le=\"1\"} 0",
            "asctl_failure_detection_seconds_bucket{le=\"1.25\"} 1",
            "asctl_failure_detection_seconds_count 1",
            "asctl_failover_seconds_bucket{le=\"2\"} 1",
            "asctl_group_state{group=\"web\",state=\"online\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
        assert!(text.contains("asctl_peer_last_seen_seconds{peer=\"node2\",line=\"public\"} 0."));
        // Every sample line belongs to a family announced by a TYPE line.
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap_or_default();
            assert!(
                families.iter().any(|f| name.starts_with(f)),
                "`{l}` has no TYPE"
            );
        }
    }
}
