use super::*;
use crate::plan::documents::to_document_texts;
use crate::wire::LocalGroupStatus;

fn quickstart() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart");
    let loaded = crate::load::load(&[crate::load::Input::Path(dir.into())]).expect("loads");
    to_document_texts(&loaded.config)
}

fn name(n: &str) -> Name {
    n.parse().expect("name")
}

/// A fresh state with the quickstart's nodes up and the quickstart applied
/// (generation 1).
fn applied() -> DomainState {
    let mut s = DomainState::default();
    up(&mut s);
    let out = s.apply(Command::ApplyConfig {
        base_generation: 0,
        documents: quickstart(),
    });
    assert_eq!(out, Outcome::Applied { generation: 1 });
    s
}

/// `node`'s report, having seen `generation`, with these groups.
fn report(node: &str, generation: u64, groups: BTreeMap<Name, LocalGroupStatus>) -> Command {
    Command::NodeReport {
        report: NodeReport {
            node: name(node),
            generation_seen: generation,
            groups,
            taken_over: Default::default(),
            failed_peers: Default::default(),
            alive_peers: Default::default(),
        },
    }
}

fn up(state: &mut DomainState) {
    let health = ["node1", "node2", "node3"]
        .iter()
        .map(|n| (name(n), NodeState::Up))
        .collect();
    state.apply(Command::SetPlacement {
        generation: state.generation,
        placement: state.placement.clone(),
        health,
        base: None,
    });
}

#[test]
fn a_decision_taken_on_a_state_that_moved_on_changes_nothing() {
    let mut s = applied();
    let moved = |to: &str, down: &str| {
        let mut p = s.placement.clone();
        p.get_mut("web").expect("web").node = Some(name(to));
        let mut health = s.health();
        health.insert(name(down), NodeState::Down);
        (p, health)
    };
    // Two leaders decided on the same state: the one committed first wins.
    let base = s.decisions;
    let (first, h1) = moved("node2", "node1");
    let (stale, h2) = moved("node3", "node2");
    let out = s.apply(Command::SetPlacement {
        generation: s.generation,
        placement: first.clone(),
        health: h1,
        base: Some(base),
    });
    assert_eq!(out, Outcome::Done);
    assert_eq!(s.decisions, base + 1);
    let before = s.clone();
    let out = s.apply(Command::SetPlacement {
        generation: s.generation,
        placement: stale,
        health: h2,
        base: Some(base),
    });
    assert_eq!(out, Outcome::Ignored);
    // Neither its placement nor its health: node2 stays up.
    assert_eq!(s, before);
    assert_eq!(s.nodes.get("node2").map(|r| r.state), Some(NodeState::Up));
    // A configuration and cleared failures count as decisions too.
    let d = s.decisions;
    s.apply(Command::ApplyConfig {
        base_generation: s.generation,
        documents: quickstart(),
    });
    assert_eq!(s.decisions, d + 1);
}

#[test]
fn apply_places_groups_and_refuses_a_stale_base() {
    let mut s = DomainState::default();
    up(&mut s);
    let docs = quickstart();
    let out = s.apply(Command::ApplyConfig {
        base_generation: 0,
        documents: docs.clone(),
    });
    assert_eq!(out, Outcome::Applied { generation: 1 });
    let web = s.placement.get("web").and_then(|p| p.node.clone());
    assert_eq!(web.as_ref().map(Name::as_str), Some("node1"));
    let before = s.clone();
    let out = s.apply(Command::ApplyConfig {
        base_generation: 0,
        documents: vec![],
    });
    assert_eq!(
        out,
        Outcome::Stale {
            expected: 0,
            current: 1
        }
    );
    assert_eq!(s, before, "a refused apply changes nothing");
}

#[test]
fn validation_runs_the_rules_not_just_the_loader() {
    assert_eq!(validate_documents(&quickstart()), Ok(()));
    // Loads (schema and types are fine) but a rule refuses it: the
    // state machine alone would have applied it.
    let mut docs = quickstart();
    docs.push(
        r#"{"apiVersion":"asctl/v1","kind":"ResourceGroup","metadata":{"name":"x"},"spec":{"preferredNodes":["nowhere"]}}"#
            .into(),
    );
    assert!(config_from_documents(&docs).is_ok());
    let err = validate_documents(&docs).expect_err("refused");
    assert!(err.contains("nothing was applied"), "{err}");
    assert!(err.contains("nowhere"), "{err}");
}

#[test]
fn placement_for_an_old_generation_is_ignored() {
    let mut s = applied();
    let out = s.apply(Command::SetPlacement {
        generation: 0,
        placement: Placement::new(),
        health: Health::new(),
        base: None,
    });
    assert_eq!(out, Outcome::Ignored);
    assert_eq!(s.placement.len(), 3);
}

#[test]
fn reports_of_nodes_outside_the_configuration_are_ignored() {
    let mut s = DomainState::default();
    up(&mut s);
    let report = |node: &str| report(node, 0, BTreeMap::new());
    // Before any configuration, every member's report counts.
    assert_eq!(s.apply(report("node9")), Outcome::Done);
    s.apply(Command::ApplyConfig {
        base_generation: 0,
        documents: quickstart(),
    });
    assert!(!s.nodes.contains_key("node9"), "dropped with the apply");
    assert_eq!(s.apply(report("node9")), Outcome::Ignored);
    assert!(!s.nodes.contains_key("node9"));
    assert_eq!(s.apply(report("node1")), Outcome::Done);
}

#[test]
fn clear_failures_removes_one_node_or_all_and_refuses_unknown_names() {
    let mut s = applied();
    let web = s.placement.get_mut("web").expect("web placed");
    web.failed_on = [name("node1"), name("node2")].into_iter().collect();
    let placed = web.node.clone();
    let revision = s.revision_of(&name("web"));
    let before = s.clone();

    let out = s.apply(Command::ClearFailures {
        group: name("nope"),
        node: None,
    });
    assert_eq!(
        out,
        Outcome::UnknownGroup {
            group: name("nope")
        }
    );
    assert_eq!(s, before, "an unknown group changes nothing");
    let out = s.apply(Command::ClearFailures {
        group: name("web"),
        node: Some(name("node9")),
    });
    assert_eq!(
        out,
        Outcome::UnknownNode {
            node: name("node9")
        }
    );
    assert_eq!(s, before, "an unknown node changes nothing");

    let out = s.apply(Command::ClearFailures {
        group: name("web"),
        node: Some(name("node2")),
    });
    assert_eq!(
        out,
        Outcome::Cleared {
            group: name("web"),
            nodes: vec![name("node2")]
        }
    );
    let web = &s.placement["web"];
    assert_eq!(web.failed_on, [name("node1")].into_iter().collect());
    assert_eq!(web.node, placed, "clearing places nothing itself");
    assert_eq!(s.revision_of(&name("web")), revision);
    // Again: nothing left to clear on node2.
    let out = s.apply(Command::ClearFailures {
        group: name("web"),
        node: Some(name("node2")),
    });
    assert_eq!(
        out,
        Outcome::Cleared {
            group: name("web"),
            nodes: vec![]
        }
    );

    s.placement.get_mut("web").expect("web").failed_on =
        [name("node1"), name("node3")].into_iter().collect();
    let out = s.apply(Command::ClearFailures {
        group: name("web"),
        node: None,
    });
    assert_eq!(
        out,
        Outcome::Cleared {
            group: name("web"),
            nodes: vec![name("node1"), name("node3")]
        }
    );
    assert!(s.placement["web"].failed_on.is_empty());
    // Other groups are untouched.
    assert_eq!(s.placement["api"], before.placement["api"]);
}

#[test]
fn clear_failures_before_any_configuration_is_an_unknown_group() {
    let mut s = DomainState::default();
    let out = s.apply(Command::ClearFailures {
        group: name("web"),
        node: None,
    });
    assert_eq!(out, Outcome::UnknownGroup { group: name("web") });
}

#[test]
fn clear_failures_is_a_tagged_camel_case_command() {
    let cmd = Command::ClearFailures {
        group: name("web"),
        node: Some(name("node1")),
    };
    let text = serde_json::to_string(&cmd).expect("serialises");
    assert_eq!(
        text,
        r#"{"command":"clearFailures","group":"web","node":"node1"}"#
    );
    let all: Command =
        serde_json::from_str(r#"{"command":"clearFailures","group":"web"}"#).expect("parses");
    assert_eq!(
        all,
        Command::ClearFailures {
            group: name("web"),
            node: None
        }
    );
    let out =
        serde_json::to_string(&Outcome::UnknownGroup { group: name("web") }).expect("serialises");
    assert_eq!(out, r#"{"outcome":"unknownGroup","group":"web"}"#);
}

#[test]
fn state_round_trips_through_json_with_its_config() {
    let s = applied();
    let text = serde_json::to_string(&s).expect("serialises");
    let mut back: DomainState = serde_json::from_str(&text).expect("parses");
    back.restore();
    assert_eq!(back, s);
    assert_eq!(back.config(), s.config());
}

#[test]
fn a_removed_node_still_running_a_group_is_kept_until_it_reports_the_stop() {
    let report = |state: Option<GroupState>| {
        let groups = state.map(|state| {
            let status = LocalGroupStatus {
                state,
                since: std::time::SystemTime::now(),
                restarts: 0,
                message: None,
                unclean: None,
                fatal: false,
                errors: Default::default(),
            };
            (name("batch"), status)
        });
        report("node3", 1, groups.into_iter().collect())
    };
    // What the new node of a group waits for (break before make): a node
    // up whose last report has the group starting, online or stopping.
    let holds_batch = |s: &DomainState| {
        s.nodes.get("node3").is_some_and(|r| {
            r.state == NodeState::Up
                && r.last_report
                    .as_ref()
                    .and_then(|rep| rep.groups.get("batch"))
                    .is_some_and(|g| g.state != GroupState::Offline)
        })
    };
    let mut s = applied();
    s.apply(report(Some(GroupState::Online)));
    assert!(holds_batch(&s));
    // Remove node3, which runs batch: its record stays.
    assert_eq!(
        s.apply(Command::ApplyConfig {
            base_generation: 1,
            documents: quickstart_without_node3(),
        }),
        Outcome::Applied { generation: 2 }
    );
    assert!(holds_batch(&s), "kept while it runs batch");
    // Still stopping: still kept.
    assert_eq!(s.apply(report(Some(GroupState::Stopping))), Outcome::Done);
    assert!(holds_batch(&s));
    // Stopped: the record goes, and a report after that is ignored again.
    assert_eq!(s.apply(report(Some(GroupState::Offline))), Outcome::Done);
    assert!(!s.nodes.contains_key("node3"));
    assert_eq!(s.apply(report(None)), Outcome::Ignored);
    assert!(!s.nodes.contains_key("node3"));
}

/// The quickstart with node3 gone from the nodes, the lines and the groups.
fn quickstart_without_node3() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart");
    let texts: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("quickstart")
        .map(|e| {
            let e = e.expect("entry");
            let text = std::fs::read_to_string(e.path()).expect("read");
            let text = match text
                .find("---\napiVersion: asctl/v1\nkind: Node\nmetadata:\n  name: node3")
            {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            let text: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("node3:"))
                .map(|l| l.replace(", node3", "").replace("node3, ", "") + "\n")
                .collect();
            (e.file_name().to_string_lossy().into_owned(), text)
        })
        .collect();
    let loaded = crate::load::load_texts(texts.iter().map(|(n, t)| (n.as_str(), t.as_bytes())));
    assert!(
        loaded
            .config
            .nodes
            .iter()
            .all(|n| n.name().as_str() != "node3"),
        "node3 removed"
    );
    to_document_texts(&loaded.config)
}

#[test]
fn a_self_fencing_is_recorded_once_at_the_nodes_time() {
    use crate::wire::{EventKind, SelfFencing};
    let mut s = DomainState::default();
    up(&mut s);
    s.apply(Command::ApplyConfig {
        base_generation: 0,
        documents: quickstart(),
    });
    let node1: Name = "node1".parse().expect("name");
    let fencing = |seq: u64, at_ms: u64| SelfFencing {
        seq,
        at_ms,
        cause: format!("isolated ({seq})"),
        groups: vec!["web".parse().expect("name")],
    };
    let submit = |s: &mut DomainState, f: Vec<SelfFencing>| {
        s.apply(
            Command::SelfFenced {
                node: node1.clone(),
                fencings: f,
            }
            .at(9_000_000),
        )
    };
    let before = s.events.last_seq();
    assert_eq!(submit(&mut s, vec![fencing(1, 1_000)]), Outcome::Done);
    // Submitted again (a report sent before the node saw its commit) with
    // a newer one: only the newer one is recorded.
    assert_eq!(
        submit(&mut s, vec![fencing(2, 2_000), fencing(1, 1_000)]),
        Outcome::Done
    );
    assert_eq!(submit(&mut s, vec![fencing(2, 2_000)]), Outcome::Ignored);
    let new = s.events.after(before);
    let got: Vec<(EventKind, u64, &str)> = new
        .iter()
        .map(|e| (e.kind, e.at_ms, e.detail.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                EventKind::Fencing,
                1_000,
                "node1 fenced itself: isolated (1) (took web offline); recorded once it was \
                 back in contact"
            ),
            (
                EventKind::Fencing,
                2_000,
                "node1 fenced itself: isolated (2) (took web offline); recorded once it was \
                 back in contact"
            ),
        ]
    );
    assert!(new.iter().all(|e| e.node.as_ref() == Some(&node1)));
    assert_eq!(s.self_fencings_seen.get(&node1), Some(&2));
    // A node the domain does not have is refused.
    let out = s.apply(Command::SelfFenced {
        node: "node9".parse().expect("name"),
        fencings: vec![fencing(1, 1_000)],
    });
    assert!(matches!(out, Outcome::UnknownNode { .. }), "{out:?}");
}
