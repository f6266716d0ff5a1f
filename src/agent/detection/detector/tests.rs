use super::*;

use crate::model::testing::n;

pub(super) const T: Duration = Duration::from_millis(1000);
pub(super) const I: Duration = Duration::from_millis(250);

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

pub(super) fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

pub(super) fn two_lines_and_verification(
    isolation: Vec<IsolationTarget>,
    tie: TieBreak,
) -> DetectorConfig {
    let lines = PeerLines {
        domain: vec![n("d1"), n("d2")],
        verification: Some(n("v")),
    };
    DetectorConfig {
        timeout: T,
        interval: I,
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
        interval: I,
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
        let cfg = two_lines_and_verification(vec![gw(false)], TieBreak::TwoNodes { ranked_first });
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
            let l = crate::agent::failover::guard::lease_time(t);
            assert!(
                t + takeover_wait(i) >= i + l + SCHEDULING_SLACK + GUARD_KILL_BOUND,
                "I={i:?} T={t:?}"
            );
        }
    }
}

#[test]
fn a_fence_within_its_budget_ends_before_the_survivor_starts() {
    // From a freeze at f: the guard fires by f + L + ε and its fence ends
    // by f + L + ε + budget; the survivor starts no earlier than
    // f − I + T + W. The budget is exactly the gap, and covers the kill.
    for i_ms in [50u64, 100, 250, 500, 1000] {
        for t_mult in [2u32, 4, 8] {
            let i = ms(i_ms);
            let t = i * t_mult;
            let l = crate::agent::failover::guard::lease_time(t);
            let b = fence_budget(t, i, l);
            assert_eq!(
                l + SCHEDULING_SLACK + b,
                t + takeover_wait(i) - i,
                "I={i:?} T={t:?}"
            );
            assert!(b >= GUARD_KILL_BOUND, "I={i:?} T={t:?}: {b:?}");
        }
    }
    // The defaults: I/4 + S.
    assert_eq!(
        fence_budget(ms(1000), ms(250), ms(1000)),
        ms(62) + std::time::Duration::from_micros(500) + ISOLATION_STOP_BOUND
    );
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

    /// The peer's state the detector owes when `alive(i)` tells whether
    /// line `i` (0, 1: domain, 2: verification) is within its timeout.
    fn expected_state(alive: impl Fn(usize) -> bool) -> PeerState {
        if alive(0) || alive(1) {
            PeerState::Up
        } else if alive(2) {
            PeerState::Suspected
        } else {
            PeerState::Failed
        }
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
                let expect = expected_state(alive);
                prop_assert_eq!(d.peer_state("b"), Some(expect));
                prop_assert_eq!(state, expect);
                for (i, name) in names.iter().enumerate() {
                    prop_assert_eq!(d.line_up("b", name), Some(alive(i)));
                }
            }
        }

        /// Packets handled late (stamped before an instant the detector
        /// already judged at, as when a tick ran first) bring back nothing
        /// by themselves: each line is up exactly when its newest packet is
        /// within the timeout of the latest instant judged.
        #[test]
        fn late_packets_are_judged_at_the_latest_instant(
            steps in prop::collection::vec((0u64..600, 0usize..4, 0u64..300), 1..200)
        ) {
            let t0 = Instant::now();
            let mut d = Detector::new(two_lines_and_verification(vec![], TieBreak::Quorum), t0);
            let names = ["d1", "d2", "v"];
            let mut last = [t0; 3];
            let mut now = t0;
            let mut judged = t0;
            for (dt, line, late) in steps {
                now += ms(dt);
                if line < 3 {
                    let at = now.checked_sub(ms(late)).unwrap_or(t0).max(t0);
                    last[line] = last[line].max(at);
                    judged = judged.max(at);
                    d.heard(at, "b", names[line]);
                } else {
                    judged = judged.max(now);
                    d.tick(now);
                }
                let alive = |i: usize| judged.duration_since(last[i]) < T;
                for (i, name) in names.iter().enumerate() {
                    prop_assert_eq!(d.line_up("b", name), Some(alive(i)));
                }
                let expect = expected_state(alive);
                prop_assert_eq!(d.peer_state("b"), Some(expect));
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

#[test]
fn a_packet_handled_after_a_later_tick_does_not_bring_back_silent_lines() {
    let t0 = Instant::now();
    let mut d = Detector::new(two_lines_and_verification(vec![], TieBreak::Quorum), t0);
    d.heard(t0 + ms(100), "b", "d1");
    d.heard(t0 + ms(100), "b", "d2");
    d.heard(t0 + ms(100) + T - ms(60), "b", "v");
    // Both domain lines fall silent at their deadline...
    let at_deadline = d.tick(t0 + ms(100) + T + ms(1));
    assert_eq!(
        peer_events(&at_deadline),
        vec![(PeerState::Up, PeerState::Suspected)]
    );
    // ...and a verification packet received just before it is handled just
    // after: it keeps the peer alive on the verification line, but says
    // nothing of the domain lines.
    let late = d.heard(t0 + ms(100) + T - ms(5), "b", "v");
    assert_eq!(late, vec![]);
    assert_eq!(d.peer_state("b"), Some(PeerState::Suspected));
    assert_eq!(d.line_up("b", "d1"), Some(false));
    assert_eq!(d.line_up("b", "d2"), Some(false));
    // It still counts as evidence of the verification line from its own
    // instant on.
    assert_eq!(
        d.next_deadline(t0 + ms(100) + T + ms(1)),
        Some(t0 + ms(100) + T - ms(5) + T)
    );
}
