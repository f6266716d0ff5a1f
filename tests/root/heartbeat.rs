//! Heartbeats and failure detection between real network namespaces.
//!
//! Two nodes `a` and `b`, joined by three veth pairs: domain lines `d1` and
//! `d2` and the verification line `v`. Faults are `ip link set down` on one
//! end of a pair (both ends lose carrier). Root only: ignored unless run with `--include-ignored`.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::support::agent::{Agent, KEY, LIMIT, holds_for, n};
use crate::support::{Netns, veth, wait_for};
use asctl::agent::packet::{DomainKey, DropReason, Kind, Packet};
use asctl::model::Config;
use asctl::wire::PeerState;

const INTERVAL: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_millis(500);

/// The domain, through the real loader. `subnet` is the second octet of
/// the test's addresses, distinct per test so parallel tests never meet.
fn config(subnet: u8, multicast: bool) -> Config {
    let mcast = if multicast {
        ", multicast: 239.192.0.7"
    } else {
        ""
    };
    let yaml = format!(
        "apiVersion: asctl/v1\nkind: Domain\nmetadata: {{name: hbtest}}\nspec:\n  qualification: generic\n  \
         heartbeat: {{interval: 100ms, timeout: 500ms, port: 7600{mcast}}}\n\
         ---\napiVersion: asctl/v1\nkind: Node\nmetadata: {{name: a}}\nspec: {{physical: true}}\n\
         ---\napiVersion: asctl/v1\nkind: Node\nmetadata: {{name: b}}\nspec: {{physical: true}}\n\
         ---\napiVersion: asctl/v1\nkind: NetworkLine\nmetadata: {{name: d1}}\nspec:\n  role: domain\n  \
         subnet: 10.{subnet}.1.0/24\n  members: {{a: 10.{subnet}.1.1, b: 10.{subnet}.1.2}}\n\
         ---\napiVersion: asctl/v1\nkind: NetworkLine\nmetadata: {{name: d2}}\nspec:\n  role: domain\n  \
         subnet: 10.{subnet}.2.0/24\n  members: {{a: 10.{subnet}.2.1, b: 10.{subnet}.2.2}}\n\
         ---\napiVersion: asctl/v1\nkind: NetworkLine\nmetadata: {{name: v}}\nspec:\n  role: verification\n  \
         subnet: 10.{subnet}.3.0/24\n  members: {{a: 10.{subnet}.3.1, b: 10.{subnet}.3.2}}\n"
    );
    let loaded = asctl::load::load_texts([("domain.yaml", yaml.as_bytes())]);
    assert!(
        loaded.config.domain.is_some() && loaded.config.lines.len() == 3,
        "{:#?}",
        loaded.findings
    );
    loaded.config
}

/// Two namespaces and the three lines.
struct Pair {
    a: Netns,
    b: Netns,
    subnet: u8,
}

fn pair(tag: &str, subnet: u8) -> Pair {
    let a = Netns::new(&format!("{tag}a"));
    let b = Netns::new(&format!("{tag}b"));
    for (i, line) in ["d1", "d2", "v"].iter().enumerate() {
        let i = i + 1;
        veth(
            &a,
            line,
            &format!("10.{subnet}.{i}.1/24"),
            &b,
            line,
            &format!("10.{subnet}.{i}.2/24"),
        );
    }
    Pair { a, b, subnet }
}

fn run_line_faults(multicast: bool, tag: &str, subnet: u8) {
    let p = pair(tag, subnet);
    let cfg = config(p.subnet, multicast);
    let a = Agent::start(&p.a, &cfg, "a");
    let b = Agent::start(&p.b, &cfg, "b");
    a.wait_lines_up("b", &["d1", "d2", "v"]);
    b.wait_lines_up("a", &["d1", "d2", "v"]);
    assert_eq!(a.peer("b"), Some(PeerState::Up));

    // One domain line cut: a line event on both sides, the peer stays up.
    p.a.ip("link set d1 down");
    let t = wait_for("line d1 down at a", LIMIT, || {
        a.line_up("b", "d1") == Some(false)
    });
    eprintln!("line down seen after {t:?}");
    wait_for("line d1 down at b", LIMIT, || {
        b.line_up("a", "d1") == Some(false)
    });
    holds_for("peer up with one line left", 3 * TIMEOUT, || {
        a.peer("b") == Some(PeerState::Up) && b.peer("a") == Some(PeerState::Up)
    });
    assert!(a.peer_events().is_empty(), "{:?}", a.peer_events());
    assert!(a.metrics.line_stats("d1").send_errors > 0 || a.metrics.line_stats("d1").sent > 0);

    // The line comes back.
    p.a.ip("link set d1 up");
    wait_for("line d1 up again", LIMIT, || {
        a.line_up("b", "d1") == Some(true)
    });

    // Both domain lines cut: suspected, not failed, while verification answers.
    p.a.ip("link set d1 down");
    p.a.ip("link set d2 down");
    wait_for("b suspected", LIMIT, || {
        a.peer("b") == Some(PeerState::Suspected)
    });
    holds_for("b alive on the verification line", 3 * TIMEOUT, || {
        a.peer("b") == Some(PeerState::Suspected)
    });

    // The verification line cut as well: failed.
    let cut = Instant::now();
    p.a.ip("link set v down");
    let t = wait_for("b failed", LIMIT, || a.peer("b") == Some(PeerState::Failed));
    eprintln!("failure declared {t:?} after the last line was cut (timeout {TIMEOUT:?})");
    assert!(
        cut.elapsed() >= TIMEOUT - INTERVAL,
        "declared before the timeout"
    );
    wait_for("a failed at b", LIMIT, || {
        b.peer("a") == Some(PeerState::Failed)
    });
    assert_eq!(
        a.peer_events(),
        vec![
            (PeerState::Up, PeerState::Suspected),
            (PeerState::Suspected, PeerState::Failed)
        ]
    );
    let text = a.metrics.render_prometheus();
    assert!(
        text.contains("asctl_failure_detection_seconds_count 1"),
        "{text}"
    );

    // Everything back: up again.
    for l in ["d1", "d2", "v"] {
        p.a.ip(&format!("link set {l} up"));
    }
    wait_for("b up again", LIMIT, || a.peer("b") == Some(PeerState::Up));
}

#[test]
#[ignore = "needs root: run with --include-ignored"]
fn unicast_line_faults_are_line_events_then_suspicion_then_failure() {
    crate::support::require_root();
    run_line_faults(false, "hbu", 201);
}

#[test]
#[ignore = "needs root: run with --include-ignored"]
fn multicast_line_faults_are_line_events_then_suspicion_then_failure() {
    crate::support::require_root();
    run_line_faults(true, "hbm", 202);
}

#[test]
#[ignore = "needs root: run with --include-ignored"]
fn forged_replayed_foreign_and_spoofed_packets_are_dropped_and_counted() {
    crate::support::require_root();
    let subnet = 203;
    let p = pair("hbf", subnet);
    let cfg = config(subnet, false);
    let a = Agent::start(&p.a, &cfg, "a");
    let b = Agent::start(&p.b, &cfg, "b");
    a.wait_lines_up("b", &["d1", "d2", "v"]);
    let before = a.metrics.line_stats("d1");

    // The attacker sits in b's namespace and sends from b's own d1 address,
    // so only the packet's content can give it away.
    let target: SocketAddr = format!("10.{subnet}.1.1:7600").parse().expect("addr");
    let from: SocketAddr = format!("10.{subnet}.1.2:0").parse().expect("addr");
    let b_incarnation = b.incarnation;
    let sent =
        p.b.spawn(move || async move {
            let s = UdpSocket::bind(from).expect("bind attacker");
            let packet = |domain: &str, seq: u64, line: &str| Packet {
                flags: 0,
                kind: Kind::Heartbeat,
                incarnation: b_incarnation,
                sequence: seq,
                timestamp_ms: 0,
                echo: 0,
                domain: n(domain),
                sender: n("b"),
                line: n(line),
            };
            let good = DomainKey::new(KEY);
            let forged =
                packet("hbtest", u64::MAX, "d1").encode(&DomainKey::new(b"guess".to_vec()));
            // The real sender is far past sequence 1 by now: a replay.
            let replay = packet("hbtest", 1, "d1").encode(&good);
            let foreign = packet("other", u64::MAX, "d1").encode(&good);
            // Authentic, but claims to come over d2 while it arrives on d1.
            let wrong_line = packet("hbtest", u64::MAX, "d2").encode(&good);
            for bytes in [
                forged.clone(),
                forged,
                replay.clone(),
                replay,
                foreign,
                wrong_line,
                b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            ] {
                s.send_to(&bytes, target).expect("send");
            }
        })
        .join();
    sent.expect("attacker thread");

    wait_for("every bad packet counted", LIMIT, || {
        let s = a.metrics.line_stats("d1");
        s.dropped(DropReason::BadMac) == before.dropped(DropReason::BadMac) + 2
            && s.dropped(DropReason::Replay) == before.dropped(DropReason::Replay) + 2
            && s.dropped(DropReason::ForeignDomain) == before.dropped(DropReason::ForeignDomain) + 1
            && s.dropped(DropReason::UnknownSender) == before.dropped(DropReason::UnknownSender) + 1
            && s.dropped(DropReason::Malformed) == before.dropped(DropReason::Malformed) + 1
    });
    // The real heartbeats still get through.
    let received = a.metrics.line_stats("d1").received;
    wait_for("genuine heartbeats keep arriving", LIMIT, || {
        a.metrics.line_stats("d1").received > received
    });
    assert_eq!(a.peer("b"), Some(PeerState::Up));
    let text = a.metrics.render_prometheus();
    assert!(
        text.contains("asctl_heartbeat_packets_dropped_total{line=\"d1\",reason=\"bad_mac\"} 2"),
        "{text}"
    );
}
