use std::time::SystemTime;

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::domain::{Command, DomainState, Member, NodeId, node_id};
use crate::model::testing::n as name;
use crate::plan::documents::to_document_texts;
use crate::plan::{Health, Placement};
use crate::wire::GroupState;
use crate::wire::{LocalGroupStatus, NodeReport};

fn all_up() -> Health {
    ["node1", "node2", "node3"]
        .iter()
        .map(|n| (name(n), NodeState::Up))
        .collect()
}

fn quickstart() -> Config {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart");
    crate::load::load(&[crate::load::Input::Path(dir.into())])
        .expect("loads")
        .config
}

fn applied() -> DomainState {
    let mut s = DomainState::default();
    s.apply(Command::SetPlacement {
        generation: 0,
        placement: Placement::new(),
        health: all_up(),
        base: None,
    });
    s.apply(Command::ApplyConfig {
        base_generation: 0,
        documents: to_document_texts(&quickstart()),
    });
    s
}

#[test]
fn nothing_to_decide_when_the_committed_state_is_right() {
    assert_eq!(decide(&applied(), all_up()), None);
}

#[test]
fn a_down_node_moves_its_groups() {
    let s = applied();
    let mut health = all_up();
    health.insert(name("node1"), NodeState::Down);
    let Some(Command::SetPlacement { placement, .. }) = decide(&s, health) else {
        panic!("a decision")
    };
    let web = placement.get("web").and_then(|p| p.node.clone());
    assert_eq!(web, Some(name("node2")));
}

#[test]
fn a_group_failed_on_its_node_moves_and_remembers_it() {
    let mut s = applied();
    let mut groups = BTreeMap::new();
    groups.insert(
        name("api"),
        LocalGroupStatus {
            state: GroupState::Failed,
            since: SystemTime::UNIX_EPOCH,
            restarts: 3,
            message: Some("restart limit".into()),
            unclean: None,
            fatal: false,
            errors: Default::default(),
        },
    );
    let report = NodeReport {
        node: name("node2"),
        generation_seen: s.generation,
        groups,
        taken_over: Default::default(),
        failed_peers: Default::default(),
        alive_peers: Default::default(),
    };
    s.apply(Command::NodeReport {
        report: report.clone(),
    });
    let Some(Command::SetPlacement { placement, .. }) = decide(&s, all_up()) else {
        panic!("a decision")
    };
    let api = placement.get("api").expect("api");
    assert_eq!(api.node, Some(name("node3")));
    assert!(api.failed_on.contains(&name("node2")));

    // A Failed from an older generation says nothing about this one.
    let mut old = applied();
    old.apply(Command::NodeReport {
        report: NodeReport {
            generation_seen: 0,
            ..report
        },
    });
    assert_eq!(decide(&old, all_up()), None);
}

/// The storage stop of `api` failed on node2: node2 may still hold
/// its disk, so `api` is placed nowhere — not on node3 as a plain
/// failure would have it — until an operator confirms node2 down, or
/// node2 reports the storage released.
#[test]
fn a_group_its_node_is_unclean_for_starts_nowhere_until_confirmed_down() {
    let mut s = applied();
    let failed = |unclean: Option<&str>| LocalGroupStatus {
        state: GroupState::Failed,
        since: SystemTime::UNIX_EPOCH,
        restarts: 0,
        message: Some("cannot stop mount point data".into()),
        unclean: unclean.map(str::to_owned),
        fatal: false,
        errors: Default::default(),
    };
    let report = |unclean: Option<&str>| NodeReport {
        node: name("node2"),
        generation_seen: s.generation,
        groups: [(name("api"), failed(unclean))].into_iter().collect(),
        taken_over: Default::default(),
        failed_peers: Default::default(),
        alive_peers: Default::default(),
    };
    let unclean = report(Some("cannot unmount /srv/api: busy"));
    let clean = report(None);
    s.apply(Command::NodeReport { report: unclean });
    assert_eq!(
        s.unclean().get("api").map(|n| n.len()),
        Some(1),
        "node2 is unclean for api"
    );
    let decide_api = |s: &DomainState| {
        let Some(Command::SetPlacement { placement, .. }) = decide(s, all_up()) else {
            panic!("a decision")
        };
        placement.get("api").expect("api").clone()
    };
    let api = decide_api(&s);
    assert_eq!(api.node, None, "not on node3 while node2 may hold the disk");
    assert!(api.failed_on.contains(&name("node2")));

    // A released storage (the agent's retried stop worked) clears it.
    let mut released = s.clone();
    released.apply(Command::NodeReport { report: clean });
    assert!(released.unclean().is_empty());
    assert_eq!(decide_api(&released).node, Some(name("node3")));

    // So does the operator's word; unknown nodes are refused.
    assert_eq!(
        s.apply(Command::ConfirmDown {
            node: name("node9")
        }),
        Outcome::UnknownNode {
            node: name("node9")
        }
    );
    assert_eq!(
        s.apply(Command::ConfirmDown {
            node: name("node2")
        }),
        Outcome::ConfirmedDown {
            node: name("node2"),
            groups: vec![name("api")]
        }
    );
    assert!(s.unclean().is_empty());
    assert_eq!(decide_api(&s).node, Some(name("node3")));
    // Both are in the domain's history.
    let fencing: Vec<String> = (s.events.after(0).into_iter())
        .filter(|e| e.kind == crate::wire::EventKind::Fencing)
        .map(|e| e.detail)
        .collect();
    assert_eq!(
        fencing,
        vec![
            "api is unclean on node2 (cannot unmount /srv/api: busy): it starts nowhere until \
             node2 releases it or is confirmed down"
                .to_string(),
            "an operator confirmed node2 down: api may start elsewhere".to_string(),
        ]
    );
    assert_eq!(
        s.apply(Command::ConfirmDown {
            node: name("node2")
        }),
        Outcome::ConfirmedDown {
            node: name("node2"),
            groups: vec![]
        },
        "a second confirmation changes nothing"
    );
}

/// An OCF agent answered 6 (not configured) on node2: `api` can run on
/// no node, so it is failed on all its preferred nodes at once, not
/// tried on node3 next.
#[test]
fn a_fatal_failure_fails_the_group_everywhere_at_once() {
    let mut s = applied();
    let status = LocalGroupStatus {
        state: GroupState::Failed,
        since: SystemTime::UNIX_EPOCH,
        restarts: 0,
        message: Some("OCF_ERR_CONFIGURED".into()),
        unclean: None,
        fatal: true,
        errors: Default::default(),
    };
    s.apply(Command::NodeReport {
        report: NodeReport {
            node: name("node2"),
            generation_seen: s.generation,
            groups: [(name("api"), status)].into_iter().collect(),
            taken_over: Default::default(),
            failed_peers: Default::default(),
            alive_peers: Default::default(),
        },
    });
    let Some(Command::SetPlacement { placement, .. }) = decide(&s, all_up()) else {
        panic!("a decision")
    };
    let api = placement.get("api").expect("api");
    assert_eq!(api.node, None);
    let config = s.config().expect("config");
    let preferred = &config.groups.get("api").expect("api").spec.preferred_nodes;
    assert!(preferred.len() > 1);
    assert!(
        preferred.iter().all(|n| api.failed_on.contains(n)),
        "{api:?}"
    );
    assert_eq!(
        placement.get("web").and_then(|p| p.node.clone()),
        s.placement.get("web").and_then(|p| p.node.clone()),
        "other groups are not affected"
    );
}

#[test]
fn a_group_a_node_runs_by_takeover_is_adopted_not_started_again() {
    let s = applied();
    let web_home = s.placement.get("web").and_then(|p| p.node.clone());
    assert_eq!(web_home, Some(name("node1")));
    // node2 reports web Online, taken over while node1 was away.
    let online = |state| LocalGroupStatus {
        state,
        since: SystemTime::UNIX_EPOCH,
        restarts: 0,
        message: None,
        unclean: None,
        fatal: false,
        errors: Default::default(),
    };
    let takeover = |state| NodeReport {
        node: name("node2"),
        generation_seen: s.generation,
        groups: [(name("web"), online(state))].into_iter().collect(),
        taken_over: [(name("web"), s.revision_of(&name("web")))]
            .into_iter()
            .collect(),
        failed_peers: Default::default(),
        alive_peers: Default::default(),
    };
    let mut adopted = s.clone();
    adopted.apply(Command::NodeReport {
        report: takeover(GroupState::Online),
    });
    let Some(Command::SetPlacement { placement, .. }) = decide(&adopted, all_up()) else {
        panic!("an adoption")
    };
    assert_eq!(
        placement.get("web").and_then(|p| p.node.clone()),
        Some(name("node2"))
    );
    // Committed, and then moved home (failback): node2's report, still
    // naming the takeover until node2 notices, adopts nothing again.
    adopted.apply(Command::SetPlacement {
        generation: adopted.generation,
        placement: placement.clone(),
        health: all_up(),
        base: None,
    });
    assert_eq!(adopted_placement(&adopted), adopted.placement);
    let mut home = placement;
    home.get_mut("web").expect("web").node = Some(name("node1"));
    adopted.apply(Command::SetPlacement {
        generation: adopted.generation,
        placement: home,
        health: all_up(),
        base: None,
    });
    assert_eq!(adopted_placement(&adopted), adopted.placement);
    assert_eq!(
        adopted.placement.get("web").and_then(|p| p.node.clone()),
        Some(name("node1"))
    );
    // Not Online (still starting, or failed): nothing to adopt.
    let mut starting = s.clone();
    starting.apply(Command::NodeReport {
        report: takeover(GroupState::Starting),
    });
    assert_eq!(adopted_placement(&starting), starting.placement);
}

fn member(name: &str, port: u16) -> (NodeId, Member) {
    (
        node_id(name),
        Member {
            name: name.into(),
            addr: format!("127.0.0.1:{port}"),
        },
    )
}

#[test]
fn membership_follows_ids_and_addresses() {
    let three: BTreeMap<NodeId, Member> = [
        member("node1", 7401),
        member("node2", 7402),
        member("node3", 7403),
    ]
    .into_iter()
    .collect();
    let ids = |m: &BTreeMap<NodeId, Member>| m.keys().copied().collect::<BTreeSet<_>>();
    assert_eq!(membership_change(&three, &three, &ids(&three)), None);

    // node3's agent moved: its record is replaced, the voters stay.
    let mut moved = three.clone();
    moved.extend([member("node3", 7413)]);
    let change = membership_change(&moved, &three, &ids(&three)).expect("a change");
    assert_eq!(
        change,
        MembershipChange {
            add: BTreeMap::new(),
            readdress: [member("node3", 7413)].into_iter().collect(),
            voters: None,
        }
    );

    // A node added, another removed, one moved, at once.
    let mut next = moved.clone();
    next.remove(&node_id("node2"));
    next.extend([member("node4", 7404)]);
    let change = membership_change(&next, &three, &ids(&three)).expect("a change");
    assert_eq!(change.add, [member("node4", 7404)].into_iter().collect());
    assert_eq!(
        change.readdress,
        [member("node3", 7413)].into_iter().collect()
    );
    assert_eq!(change.voters, Some(ids(&next)));

    // A learner already added is not added again; only the voters change.
    let mut with_learner = three.clone();
    with_learner.extend([member("node4", 7404)]);
    let mut four = three.clone();
    four.extend([member("node4", 7404)]);
    let change = membership_change(&four, &with_learner, &ids(&three)).expect("a change");
    assert!(change.add.is_empty() && change.readdress.is_empty());
    assert_eq!(change.voters, Some(ids(&four)));

    // Never to nothing, never to a set without a current voter.
    assert_eq!(
        membership_change(&BTreeMap::new(), &three, &ids(&three)),
        None
    );
    let strangers: BTreeMap<NodeId, Member> = [member("other1", 7501), member("other2", 7502)]
        .into_iter()
        .collect();
    assert_eq!(membership_change(&strangers, &three, &ids(&three)), None);
}

#[test]
fn a_re_elected_leader_does_not_count_reports_it_missed_as_silence() {
    let f = ReportFreshness::default();
    f.set_down_after(Duration::from_millis(50));
    let nodes = [name("node1"), name("node2")];
    f.heard(&nodes[0]);
    f.heard(&nodes[1]);
    // Reports went to another leader meanwhile.
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(f.health(&nodes).get("node2"), Some(&NodeState::Down));
    // Leading again: node2 was Up in the committed state.
    f.leadership_gained(&nodes[1..]);
    let h = f.health(&nodes);
    assert_eq!(h.get("node2"), Some(&NodeState::Up));
    assert_eq!(h.get("node1"), Some(&NodeState::Down));
}

#[test]
fn members_are_the_nodes_with_an_agent_address_and_the_witness() {
    let mut c = quickstart();
    let m = desired_members(&c);
    assert_eq!(m.len(), 3);
    assert!(
        m.values()
            .any(|m| m.name == "node1" && m.addr == "127.0.0.1:7401")
    );
    if let Some(d) = c.domain.as_mut() {
        d.spec.witness = Some("127.0.0.1:7409".parse().expect("endpoint"));
    }
    let m = desired_members(&c);
    assert_eq!(
        m.get(&node_id(WITNESS)).map(|w| w.addr.as_str()),
        Some("127.0.0.1:7409")
    );
}
