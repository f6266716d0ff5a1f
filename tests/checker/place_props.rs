//! Properties of `place()` over generated domains: up to 6 nodes, up to 8
//! groups with random preference lists and failback, random health, and a
//! random current placement (including nodes outside a group's list and
//! stale entries of groups that no longer exist).

use std::collections::{BTreeMap, BTreeSet};

use asctl::model::{Config, Metadata, Name, Object, ResourceGroupSpec};
use asctl::plan::{GroupPlacement, Health, NodeState, Placement, place};
use proptest::prelude::*;
use serde_json::json;

const NODES: usize = 6;

fn node(i: usize) -> Name {
    format!("node{i}").parse().expect("valid name")
}

fn group_name(i: usize) -> Name {
    format!("g{i}").parse().expect("valid name")
}

#[derive(Debug, Clone)]
struct GroupDef {
    preferred: Vec<usize>,
    auto: bool,
}

fn group_def() -> impl Strategy<Value = GroupDef> {
    (
        proptest::sample::subsequence((0..NODES).collect::<Vec<_>>(), 1..=NODES).prop_shuffle(),
        any::<bool>(),
    )
        .prop_map(|(preferred, auto)| GroupDef { preferred, auto })
}

fn spec(def: &GroupDef) -> ResourceGroupSpec {
    let preferred: Vec<String> = def.preferred.iter().map(|&i| node(i).to_string()).collect();
    serde_json::from_value(json!({
        "preferredNodes": preferred,
        "failback": if def.auto { "auto" } else { "manual" },
    }))
    .expect("valid group spec")
}

fn config(groups: &[(Name, GroupDef)]) -> Config {
    let mut c = Config::default();
    for (name, def) in groups {
        c.groups.push(Object {
            metadata: Metadata {
                name: name.clone(),
                labels: Default::default(),
            },
            spec: spec(def),
            doc: 0,
        });
    }
    c
}

#[derive(Debug, Clone)]
struct Case {
    groups: Vec<(Name, GroupDef)>,
    health: Health,
    current: Placement,
}

fn case() -> impl Strategy<Value = Case> {
    let groups = proptest::collection::vec(group_def(), 0..8);
    // Some(true) up, Some(false) down, None absent from the map.
    let health = proptest::collection::vec(proptest::option::of(any::<bool>()), NODES);
    // For each of 10 group slots (2 more than can exist: stale entries), an
    // optional current node and a failed-on set.
    let current = proptest::collection::vec(
        (
            any::<bool>(),
            proptest::option::of(0..NODES),
            proptest::collection::btree_set(0..NODES, 0..3),
        ),
        10,
    );
    (groups, health, current).prop_map(|(groups, health, current)| {
        let groups: Vec<(Name, GroupDef)> = groups
            .into_iter()
            .enumerate()
            .map(|(i, d)| (group_name(i), d))
            .collect();
        let health = health
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.map(|up| (node(i), if up { NodeState::Up } else { NodeState::Down }))
            })
            .collect();
        let current = current
            .into_iter()
            .enumerate()
            .filter(|(_, (present, _, _))| *present)
            .map(|(i, (_, n, failed))| {
                (
                    group_name(i),
                    GroupPlacement {
                        node: n.map(node),
                        failed_on: failed.into_iter().map(node).collect(),
                    },
                )
            })
            .collect();
        Case {
            groups,
            health,
            current,
        }
    })
}

fn eligible(def: &GroupDef, health: &Health, failed_on: &BTreeSet<Name>, n: &Name) -> bool {
    health.get(n) == Some(&NodeState::Up)
        && !failed_on.contains(n)
        && def.preferred.iter().any(|&i| node(i) == *n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every group of the configuration is placed exactly once, and nothing
    /// else is: no group is on two nodes, none is lost, removed ones are gone.
    #[test]
    fn each_group_on_at_most_one_node(c in case()) {
        let cfg = config(&c.groups);
        let placed = place(&cfg, &c.health, &c.current);
        let names: BTreeSet<&Name> = c.groups.iter().map(|(n, _)| n).collect();
        prop_assert_eq!(placed.keys().collect::<BTreeSet<_>>(), names);
        // Invert to node → groups and count each group's appearances.
        let mut by_node: BTreeMap<&Name, Vec<&Name>> = BTreeMap::new();
        for (g, p) in &placed {
            if let Some(n) = &p.node {
                by_node.entry(n).or_default().push(g);
            }
        }
        for (g, _) in &c.groups {
            let count = by_node.values().filter(|gs| gs.contains(&g)).count();
            prop_assert!(count <= 1, "{} placed on {} nodes", g, count);
        }
    }

    /// A group only ever lands on an Up node of its preferredNodes where it
    /// has not failed; and it is offline only when no such node exists.
    #[test]
    fn only_eligible_nodes(c in case()) {
        let cfg = config(&c.groups);
        let placed = place(&cfg, &c.health, &c.current);
        for (name, def) in &c.groups {
            let p = &placed[name];
            let failed = c.current.get(name).map(|p| p.failed_on.clone()).unwrap_or_default();
            prop_assert_eq!(&p.failed_on, &failed, "failedOn is carried unchanged");
            match &p.node {
                Some(n) => prop_assert!(eligible(def, &c.health, &failed, n), "{} on ineligible {}", name, n),
                None => prop_assert!(
                    (0..NODES).all(|i| !eligible(def, &c.health, &failed, &node(i))),
                    "{} offline although a node is eligible", name
                ),
            }
        }
    }

    /// Placing again changes nothing: the placement is a fixed point.
    #[test]
    fn idempotent(c in case()) {
        let cfg = config(&c.groups);
        let once = place(&cfg, &c.health, &c.current);
        let twice = place(&cfg, &c.health, &once);
        prop_assert_eq!(once, twice);
    }

    /// Adding a group moves no other group.
    #[test]
    fn unrelated_group_added_moves_nothing(c in case(), extra in group_def()) {
        let cfg = config(&c.groups);
        let mut more = c.groups.clone();
        more.push(("added".parse().expect("valid name"), extra));
        let before = place(&cfg, &c.health, &c.current);
        let after = place(&config(&more), &c.health, &c.current);
        for (name, p) in &before {
            prop_assert_eq!(Some(p), after.get(name));
        }
    }

    /// Stickiness and failback: a group whose node is still eligible stays
    /// there with failback manual, and goes to the most preferred eligible
    /// node with failback auto; a group whose node is not eligible goes to
    /// the most preferred eligible node.
    #[test]
    fn stickiness_and_failback(c in case()) {
        let cfg = config(&c.groups);
        let placed = place(&cfg, &c.health, &c.current);
        for (name, def) in &c.groups {
            let cur = c.current.get(name);
            let failed = cur.map(|p| p.failed_on.clone()).unwrap_or_default();
            let best = def.preferred.iter().map(|&i| node(i)).find(|n| eligible(def, &c.health, &failed, n));
            let here = cur.and_then(|p| p.node.clone());
            let expected = match here {
                Some(h) if eligible(def, &c.health, &failed, &h) && !def.auto => Some(h),
                _ => best,
            };
            prop_assert_eq!(&placed[name].node, &expected, "group {}", name);
        }
    }

    /// Health of nodes a group cannot use never changes where it goes.
    #[test]
    fn health_of_other_nodes_is_irrelevant(c in case(), flip in 0..NODES) {
        let cfg = config(&c.groups);
        let placed = place(&cfg, &c.health, &c.current);
        let mut health = c.health.clone();
        let n = node(flip);
        let flipped = match health.get(&n) {
            Some(NodeState::Up) => NodeState::Down,
            _ => NodeState::Up,
        };
        health.insert(n.clone(), flipped);
        let again = place(&cfg, &health, &c.current);
        for (name, def) in &c.groups {
            if !def.preferred.iter().any(|&i| node(i) == n) {
                prop_assert_eq!(&placed[name], &again[name]);
            }
        }
    }
}
