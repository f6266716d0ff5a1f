//! The one-way link rule's exclusions: a peer that died right after
//! answering, and a new run of a peer (docs/ha.md, "One-way links").

use super::tests::{I, T, ms, two_lines_and_verification};
use super::*;

use crate::model::testing::n;

/// `b` heard on every line at `at`, its verification requests included;
/// with `answer`, it also answered one of this node's.
fn hear_all(d: &mut Detector, at: Instant, answer: bool) -> Vec<Event> {
    let mut events = Vec::new();
    for line in ["d1", "d2", "v"] {
        events.extend(d.heard(at, "b", line));
    }
    if answer {
        events.extend(d.answered(at, "b"));
    }
    events
}

fn restarted(waiting: bool) -> Event {
    Event::Restarted {
        peer: n("b"),
        waiting,
    }
}

#[test]
fn a_newer_run_of_a_peer_gets_a_timeout_to_answer_and_no_more() {
    let t0 = Instant::now();
    let mut d = Detector::new(two_lines_and_verification(vec![], TieBreak::Quorum), t0);
    // The first run heard since this detector started: no grace (the
    // detector's own start gave every peer a timeout already).
    assert_eq!(d.incarnation(t0 + ms(10), "b", 7), None);
    hear_all(&mut d, t0 + ms(10), true);
    // b dies at 10 ms and comes back at 3 s with a newer run: it is heard
    // at once, but has not answered this node's requests yet.
    d.tick(t0 + ms(3000));
    assert_eq!(d.view()["b"].answers, Some(false));
    assert_eq!(d.incarnation(t0 + ms(3000), "b", 8), Some(restarted(true)));
    hear_all(&mut d, t0 + ms(3000), false);
    let v = &d.view()["b"];
    assert_eq!(
        (v.verification, v.answers, v.restarted),
        (Some(true), Some(false), true)
    );
    // Packets of the same run, or an older one, change nothing.
    assert_eq!(d.incarnation(t0 + ms(3100), "b", 8), None);
    assert_eq!(d.incarnation(t0 + ms(3100), "b", 7), None);
    // The grace ends when it answers...
    let events = hear_all(&mut d, t0 + ms(3200), true);
    assert!(events.contains(&restarted(false)), "{events:?}");
    assert!(!d.view()["b"].restarted);

    // ... or one timeout after the new run's first packet, woken at that
    // instant, with no answer: its requests count again.
    assert_eq!(d.incarnation(t0 + ms(5000), "b", 9), Some(restarted(true)));
    hear_all(&mut d, t0 + ms(5000), false);
    assert_eq!(d.next_deadline(t0 + ms(5000)), Some(t0 + ms(5000) + T));
    hear_all(&mut d, t0 + ms(5500), false);
    assert!(d.view()["b"].restarted);
    let events = d.tick(t0 + ms(6000));
    assert!(events.contains(&restarted(false)), "{events:?}");
    assert!(!d.view()["b"].restarted);
}

#[test]
fn a_run_heard_for_less_than_a_timeout_buys_its_successor_no_grace() {
    let t0 = Instant::now();
    let mut d = Detector::new(two_lines_and_verification(vec![], TieBreak::Quorum), t0);
    // At this detector's start a replayed packet of an older run may come
    // first (the replay guard is empty): the current run right after it
    // gets no grace. Nor does a peer that restarts again within a timeout
    // of its previous run's first packet.
    assert_eq!(d.incarnation(t0 + ms(10), "b", 7), None);
    assert_eq!(d.incarnation(t0 + ms(20), "b", 8), None);
    assert_eq!(d.incarnation(t0 + ms(1010), "b", 9), None);
    assert_eq!(d.incarnation(t0 + ms(2010), "b", 10), Some(restarted(true)));
    // A peer not watched (unknown) is ignored.
    assert_eq!(d.incarnation(t0 + ms(5000), "zz", 11), None);
}

#[test]
fn requests_within_an_interval_of_the_last_answer_prove_no_one_way_link() {
    let t0 = Instant::now();
    let mut d = Detector::new(two_lines_and_verification(vec![], TieBreak::Quorum), t0);
    // b answers at 100 ms, sends its own requests until 300 ms (after
    // this node's next request went out, 250 ms after the last), and dies.
    hear_all(&mut d, t0 + ms(100), true);
    hear_all(&mut d, t0 + ms(300), false);
    let events = d.tick(t0 + ms(100) + T);
    assert_eq!(d.view()["b"].answers, Some(false));
    assert_eq!(d.view()["b"].verification, Some(true));
    assert!(d.view()["b"].crossed);
    assert!(!d.view()["b"].one_way());
    assert!(!events.iter().any(|e| matches!(e, Event::OneWay { .. })));
}

#[test]
fn requests_still_arriving_after_an_interval_without_answers_are_a_one_way_link() {
    let t0 = Instant::now();
    let mut d = Detector::new(two_lines_and_verification(vec![], TieBreak::Quorum), t0);
    // This node's traffic out is cut after b's answer at 100 ms; b's
    // packets keep arriving every interval.
    hear_all(&mut d, t0 + ms(100), true);
    let mut events = Vec::new();
    let mut at = ms(100);
    while at < ms(100) + T {
        at += I;
        events.extend(hear_all(&mut d, t0 + at, false));
    }
    events.extend(d.tick(t0 + ms(100) + T));
    let on = Event::OneWay {
        peer: n("b"),
        on: true,
    };
    // As soon as the answers are silent for the timeout: not later.
    assert!(events.contains(&on), "{events:?}");
    assert!(d.view()["b"].one_way());
    let events = hear_all(&mut d, t0 + ms(100) + T + ms(10), true);
    assert!(events.contains(&Event::OneWay {
        peer: n("b"),
        on: false
    }));
}

#[test]
fn a_peer_heard_again_after_a_cut_both_ways_gets_an_interval_to_answer() {
    let t0 = Instant::now();
    let mut d = Detector::new(two_lines_and_verification(vec![], TieBreak::Quorum), t0);
    hear_all(&mut d, t0 + ms(100), true);
    // Cut both ways: b silent on every line, its answers too.
    d.tick(t0 + ms(3000));
    assert_eq!(d.peer_state("b"), Some(PeerState::Failed));
    // Healed: b's request arrives before its answer to this node's next
    // request (same run: no restart grace).
    let events = hear_all(&mut d, t0 + ms(3000), false);
    assert!(d.view()["b"].crossed);
    assert!(!d.view()["b"].one_way());
    assert!(!events.iter().any(|e| matches!(e, Event::OneWay { .. })));
    hear_all(&mut d, t0 + ms(3100), true);
    assert!(!d.view()["b"].one_way());
    // Healed one way only: b's requests keep arriving past an interval
    // (plus the slack) after the line came back, unanswered.
    d.tick(t0 + ms(6000));
    hear_all(&mut d, t0 + ms(6000), false);
    assert!(!d.view()["b"].one_way());
    let events = hear_all(&mut d, t0 + ms(6000) + I + ms(150), false);
    assert!(d.view()["b"].one_way(), "{events:?}");
}
