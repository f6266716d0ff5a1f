//! The failover policy driven with made-up instants, detector views and
//! domain states: what it publishes, announces and asks the driver to do.

use super::*;
use crate::agent::detection::detector::PeerSnapshot;
use crate::agent::failover::takeover::fixtures;
use crate::domain::Command;
use crate::model::testing::n;
use crate::plan::documents::to_document_texts;
use crate::plan::{GroupPlacement, Placement};

const WAIT: Duration = Duration::from_millis(500);

/// A peer `b` as the detector sees it.
fn peer(state: PeerState, since: Option<Instant>) -> PeerSnapshot {
    PeerSnapshot {
        state,
        since,
        lines: BTreeMap::new(),
        takeover: false,
        heard: true,
        answers: None,
        verification: None,
        restarted: false,
        crossed: false,
    }
}

fn view_of(p: PeerSnapshot) -> DetectorSnapshot {
    DetectorSnapshot {
        peers: [(n("b"), p)].into_iter().collect(),
        isolated: false,
    }
}

fn check(state: &Arc<DomainState>, view: Option<DetectorSnapshot>, report: &NodeReport) -> Input {
    Input::Check(Check {
        state: Arc::clone(state),
        view,
        report: report.clone(),
        quorum: None,
    })
}

/// Node `a` of the two-node fixture, its detector running.
fn node_a(t0: Instant) -> Policy {
    let mut p = Policy::new(n("a"));
    let started = Input::DetectorStarted {
        response: IsolationResponse::Offline,
        wait: WAIT,
    };
    assert!(p.step(started, t0).is_empty());
    p
}

/// Node `a` of the two-node fixture, its detector running since `t0`: the
/// start instant, the fixture's committed state (web on a, db on b), `a`'s
/// report (idle) and the policy.
fn pair() -> (Instant, Arc<DomainState>, NodeReport, Policy) {
    let t0 = Instant::now();
    let state = Arc::new(fixtures::state(&fixtures::config()));
    (t0, state, fixtures::report("a", &[]), node_a(t0))
}

/// The detector's event: peer `b` went from Up to `to`, last heard at `at`.
fn b_went(to: PeerState, at: Instant) -> Input {
    Input::Detector(Event::Peer {
        peer: n("b"),
        from: PeerState::Up,
        to,
        last_heard: at,
    })
}

fn notes(actions: &[Action]) -> Vec<&Note> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Note(note) => Some(note),
            _ => None,
        })
        .collect()
}

fn announces(actions: &[Action]) -> Option<bool> {
    actions.iter().find_map(|a| match a {
        Action::Announce(on) => Some(*on),
        _ => None,
    })
}

fn groups(names: &[&str]) -> BTreeSet<Name> {
    names.iter().map(|g| n(g)).collect()
}

#[test]
fn the_survivor_of_two_takes_over_once_its_peer_has_been_failed_for_the_wait() {
    let (t0, state, idle, mut p) = pair();
    let failed = || Some(view_of(peer(PeerState::Failed, Some(t0))));

    // Failed, but not for the takeover wait yet: b may still be stopping.
    let out = p.step(check(&state, failed(), &idle), t0 + WAIT / 2);
    assert_eq!(announces(&out), Some(false));
    assert!(p.clearance().taken.is_empty());
    assert!(!p.clearance().alone);
    assert!(p.clearance().settled, "b was heard");

    let out = p.step(check(&state, failed(), &idle), t0 + WAIT);
    assert_eq!(notes(&out), [&Note::Taken(groups(&["db"]))]);
    assert_eq!(announces(&out), Some(true));
    let published = out.iter().find_map(|a| match a {
        Action::Publish(c) => Some(c.clone()),
        _ => None,
    });
    let c = published.expect("the takeover is published");
    assert_eq!(c.taken.keys().collect::<Vec<_>>(), [&n("db")]);
    assert_eq!(c.down, groups(&["b"]));
    assert!(c.alone && !c.fenced && !c.hold);

    // Nothing new on the next check: nothing is published again.
    let out = p.step(check(&state, failed(), &idle), t0 + 2 * WAIT);
    assert!(!out.iter().any(|a| matches!(a, Action::Publish(_))));
    assert_eq!(announces(&out), Some(true));
}

#[test]
fn a_node_of_two_whose_peer_asks_but_never_answers_fences_until_caught_up() {
    let (t0, state, idle, mut p) = pair();
    let link = |answers| {
        let mut b = peer(PeerState::Up, None);
        b.verification = Some(true);
        b.answers = Some(answers);
        Some(view_of(b))
    };

    let out = p.step(check(&state, link(true), &idle), t0);
    assert!(notes(&out).is_empty());
    assert!(!p.clearance().fenced);

    let out = p.step(check(&state, link(false), &idle), t0);
    assert_eq!(notes(&out), [&Note::Muted, &Note::QuorumLost]);
    assert!(p.clearance().fenced);
    assert!(out.contains(&Action::Publish(p.clearance().clone())));

    // The link works again: catch up first, the fence stays up meanwhile.
    let out = p.step(check(&state, link(true), &idle), t0);
    assert_eq!(notes(&out), [&Note::QuorumBack]);
    assert!(out.contains(&Action::CatchUp));
    assert!(p.clearance().fenced);

    let out = p.step(Input::CaughtUp, t0);
    assert_eq!(notes(&out), [&Note::CaughtUp]);
    assert!(!p.clearance().fenced);
}

/// The quickstart example: three nodes, so a quorum lease.
fn three_nodes() -> Arc<DomainState> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart");
    let loaded = crate::load::load(&[crate::load::Input::Path(dir.into())]).expect("loads");
    let mut s = DomainState::default();
    let out = s.apply(Command::ApplyConfig {
        base_generation: 0,
        documents: to_document_texts(&loaded.config),
    });
    assert_eq!(out, crate::domain::Outcome::Applied { generation: 1 });
    Arc::new(s)
}

#[test]
fn a_node_out_of_touch_with_a_quorum_for_the_lease_fences_and_waits_to_catch_up() {
    let t0 = Instant::now();
    let state = three_nodes();
    let lease = Duration::from_secs(2);
    let report = fixtures::report("node1", &[]);
    let mut p = Policy::new(n("node1"));
    let at = |seen: Instant, view: Option<DetectorSnapshot>| {
        Input::Check(Check {
            state: Arc::clone(&state),
            view,
            report: report.clone(),
            quorum: Some(QuorumEvidence { lease, seen }),
        })
    };

    let out = p.step(at(t0, None), t0 + lease / 2);
    assert!(notes(&out).is_empty());
    assert!(p.clearance().settled && !p.clearance().fenced);

    // Hearing a majority on its own lines keeps a node up past the lease.
    let two_heard = DetectorSnapshot {
        peers: [(n("node2"), peer(PeerState::Up, None))]
            .into_iter()
            .collect(),
        isolated: false,
    };
    let out = p.step(at(t0, Some(two_heard)), t0 + lease);
    assert!(notes(&out).is_empty());
    assert!(!p.clearance().fenced);

    let out = p.step(at(t0, None), t0 + lease);
    assert_eq!(notes(&out), [&Note::QuorumLost]);
    assert!(p.clearance().fenced);

    // Raft evidence of a quorum again: catch up, then run.
    let back = t0 + 2 * lease;
    let out = p.step(at(back, None), back);
    assert_eq!(notes(&out), [&Note::QuorumBack]);
    assert_eq!(out.iter().filter(|a| **a == Action::CatchUp).count(), 1);
    assert!(p.clearance().fenced, "not before the catch-up is done");

    // Isolated while catching up: the catch-up stops, the fence stays.
    let isolated = Input::Detector(Event::Isolation { isolated: true });
    let out = p.step(isolated, back);
    assert!(out.contains(&Action::StopCatchUp));
    assert_eq!(notes(&out), [&Note::Isolated]);
    assert!(p.clearance().fenced);
}

/// A placement decision of the domain: web and db on these nodes.
fn decide(state: &mut DomainState, web: &str, db: &str) {
    let placement: Placement = [("web", web), ("db", db)]
        .into_iter()
        .map(|(g, node)| {
            let at = GroupPlacement {
                node: Some(n(node)),
                ..Default::default()
            };
            (n(g), at)
        })
        .collect();
    let out = state.apply(Command::SetPlacement {
        generation: state.generation,
        placement,
        health: fixtures::health(NodeState::Up, NodeState::Up),
        base: None,
    });
    assert_eq!(out, crate::domain::Outcome::Done);
}

#[test]
fn a_group_taken_over_is_kept_until_the_domain_decides_and_announced_until_stopped() {
    let t0 = Instant::now();
    let config = fixtures::config();
    let mut state = fixtures::state(&config);
    let mut p = node_a(t0);
    let failed = Some(view_of(peer(PeerState::Failed, Some(t0))));
    let both = fixtures::report(
        "a",
        &[("web", GroupState::Online), ("db", GroupState::Online)],
    );
    p.step(check(&Arc::new(state.clone()), failed, &both), t0 + WAIT);
    assert!(p.clearance().taken.contains_key(&n("db")));

    // b is back: a keeps db, and says so, until the domain decides anew.
    let back = || Some(view_of(peer(PeerState::Up, Some(t0 + 2 * WAIT))));
    let out = p.step(
        check(&Arc::new(state.clone()), back(), &both),
        t0 + 3 * WAIT,
    );
    assert_eq!(announces(&out), Some(true));
    assert!(p.clearance().taken.contains_key(&n("db")));
    assert!(!p.clearance().alone && p.clearance().down.is_empty());

    // The domain adopts the takeover (db placed on a): nothing runs outside
    // the placement any more.
    decide(&mut state, "a", "a");
    let out = p.step(
        check(&Arc::new(state.clone()), back(), &both),
        t0 + 4 * WAIT,
    );
    assert_eq!(notes(&out), [&Note::Taken(BTreeSet::new())]);
    assert!(p.clearance().taken.is_empty());
    assert_eq!(announces(&out), Some(false));

    // Failback: db placed on b again. a announces while db is still
    // stopping here, so b holds until it has stopped.
    decide(&mut state, "a", "b");
    let state = Arc::new(state);
    let stopping = fixtures::report(
        "a",
        &[("web", GroupState::Online), ("db", GroupState::Stopping)],
    );
    let out = p.step(check(&state, back(), &stopping), t0 + 5 * WAIT);
    assert_eq!(announces(&out), Some(true));
    assert!(p.clearance().taken.is_empty());
    let stopped = fixtures::report(
        "a",
        &[("web", GroupState::Online), ("db", GroupState::Offline)],
    );
    let out = p.step(check(&state, back(), &stopped), t0 + 6 * WAIT);
    assert_eq!(announces(&out), Some(false));
}

#[test]
fn a_stall_fences_and_a_group_online_after_a_peer_failure_is_timed() {
    let (t0, state, idle, mut p) = pair();
    let out = p.step(Input::Detector(Event::Stalled { gap: WAIT }), t0);
    assert!(out.contains(&Action::CatchUp));
    assert!(p.clearance().fenced);

    // db was committed to b.
    p.step(check(&state, None, &idle), t0);
    p.step(b_went(PeerState::Failed, t0), t0);
    let online = |state| Input::Report(fixtures::report("a", &[("db", state)]));
    let out = p.step(online(GroupState::Starting), t0 + WAIT);
    assert_eq!(out, [Action::GroupState(n("db"), GroupState::Starting)]);
    let out = p.step(online(GroupState::Online), t0 + 3 * WAIT);
    let failover = Action::Failover {
        group: n("db"),
        after: 3 * WAIT,
    };
    assert!(out.contains(&failover), "{out:?}");
    // Only the transition to Online counts.
    let out = p.step(online(GroupState::Online), t0 + 4 * WAIT);
    assert!(!out.iter().any(|a| matches!(a, Action::Failover { .. })));
}

#[test]
fn a_node_of_two_is_muted_when_its_peer_asks_but_never_answers() {
    let view = |verification, answers| {
        let mut b = peer(PeerState::Up, None);
        b.verification = verification;
        b.answers = answers;
        view_of(b)
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
fn a_restarted_peer_that_has_not_answered_yet_is_no_mute() {
    let mut b = peer(PeerState::Up, None);
    b.verification = Some(true);
    b.answers = Some(false);
    b.restarted = true;
    assert!(!muted(&view_of(b.clone())), "a new run, not answered yet");
    b.restarted = false;
    assert!(
        muted(&view_of(b.clone())),
        "its timeout to answer has passed"
    );
    b.crossed = true;
    assert!(
        !muted(&view_of(b)),
        "its last request may have crossed this node's unanswered one"
    );
}

#[test]
fn a_node_of_two_holds_for_an_announcing_or_unheard_peer_until_it_is_down() {
    let view = |takeover, heard| {
        let mut b = peer(PeerState::Up, None);
        b.takeover = takeover;
        b.heard = heard;
        view_of(b)
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
fn a_node_of_two_waiting_to_catch_up_decides_alone_once_its_peer_is_down() {
    let (t0, state, idle, mut p) = pair();
    p.step(Input::Detector(Event::Stalled { gap: WAIT }), t0);
    assert!(p.clearance().fenced);

    // The peer failed, not yet for the takeover wait: still catching up.
    let failed = || Some(view_of(peer(PeerState::Failed, Some(t0))));
    let out = p.step(check(&state, failed(), &idle), t0 + WAIT / 2);
    assert!(!out.contains(&Action::StopCatchUp));
    assert!(p.clearance().fenced);

    // Down: there is no leader to catch up with; this node won the
    // tie-break and runs, the peer's groups included.
    let out = p.step(check(&state, failed(), &idle), t0 + WAIT);
    assert!(out.contains(&Action::StopCatchUp), "{out:?}");
    assert!(notes(&out).contains(&&Note::Alone), "{out:?}");
    let c = p.clearance();
    assert!(!c.fenced && c.alone && c.taken.contains_key(&n("db")));
    // The catch-up it stopped does not lift the fence a second time later.
    let out = p.step(check(&state, failed(), &idle), t0 + 2 * WAIT);
    assert!(!notes(&out).contains(&&Note::Alone));
}

/// Failover actions among `out`.
fn failovers(out: &[Action]) -> Vec<&Name> {
    out.iter()
        .filter_map(|a| match a {
            Action::Failover { group, .. } => Some(group),
            _ => None,
        })
        .collect()
}

#[test]
fn only_a_group_that_was_on_the_failed_peer_counts_as_its_failover() {
    let (t0, state, idle, mut p) = pair();
    // web committed to a (this node), db to b; "new" nowhere yet.
    p.step(check(&state, None, &idle), t0);
    p.step(b_went(PeerState::Failed, t0), t0);
    use GroupState::{Offline, Online};
    let report = |groups: &[(&str, GroupState)]| Input::Report(fixtures::report("a", groups));

    // A first start and a start of a group this node already had are
    // placement changes, not failovers.
    let out = p.step(report(&[("web", Online), ("new", Online)]), t0 + WAIT);
    assert!(failovers(&out).is_empty(), "{out:?}");
    // The failed peer's group is.
    let out = p.step(
        report(&[("web", Online), ("new", Online), ("db", Online)]),
        t0 + 2 * WAIT,
    );
    assert_eq!(failovers(&out), [&n("db")]);
    // A restart here afterwards is not another one.
    p.step(report(&[("db", Offline)]), t0 + 3 * WAIT);
    let out = p.step(report(&[("db", Online)]), t0 + 4 * WAIT);
    assert!(failovers(&out).is_empty(), "{out:?}");
    // Nor is a move here once the peer is back.
    p.step(b_went(PeerState::Failed, t0), t0 + 5 * WAIT);
    p.step(b_went(PeerState::Up, t0), t0 + 5 * WAIT);
    p.step(report(&[("db", Offline)]), t0 + 6 * WAIT);
    let out = p.step(report(&[("db", Online)]), t0 + 7 * WAIT);
    assert!(failovers(&out).is_empty(), "{out:?}");
}

#[test]
fn a_node_of_two_holds_after_its_peers_takeover_ends_until_caught_up() {
    let (t0, state, idle, mut p) = pair();
    let view = |takeover| {
        let mut b = peer(PeerState::Up, None);
        b.takeover = takeover;
        Some(view_of(b))
    };
    p.step(check(&state, view(true), &idle), t0);
    assert!(p.clearance().hold, "the peer announces");
    // The peer stopped announcing: it applied the commit adopting its
    // copies, which this node may not have applied yet. It catches up with
    // the leader first, holding meanwhile.
    let out = p.step(check(&state, view(false), &idle), t0 + WAIT);
    assert!(out.contains(&Action::CatchUp), "{out:?}");
    assert!(p.clearance().hold);
    let out = p.step(check(&state, view(false), &idle), t0 + 2 * WAIT);
    assert!(!out.contains(&Action::CatchUp), "once: {out:?}");
    assert!(p.clearance().hold);
    p.step(Input::CaughtUp, t0 + 2 * WAIT);
    p.step(check(&state, view(false), &idle), t0 + 3 * WAIT);
    assert!(!p.clearance().hold);
    assert!(!p.clearance().fenced);
}
