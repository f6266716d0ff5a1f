//! Where each resource group runs: a pure function of the configuration, the
//! node states and the current placement.
//!
//! The domain leader calls [`place`] to decide and `asctl plan` calls it to
//! predict, so the plan shows what the leader will do. Nothing here does I/O
//! or reads a clock: the same inputs always give the same placement, which is
//! what lets `tests/scenarios/place/` pin the behaviour down case by case.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::overrides::Overrides;
use crate::model::{Config, DesiredState, Failback, Name, ResourceGroupSpec};

/// Whether a node can run groups, as the domain sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Up,
    Down,
}

/// The state of every node. A node absent from the map is Down: a node the
/// domain has never heard from must not receive groups.
pub type Health = BTreeMap<Name, NodeState>;

/// Where one group is, and where it may not go back to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupPlacement {
    /// The node the group runs on; `None` when no node is eligible (offline).
    pub node: Option<Name>,
    /// Nodes where the group exceeded its restart limit. The leader adds a
    /// node when that node reports the group failed, and clears it when an
    /// operator resets the group or the group's spec changes
    /// ([`carry_over`]).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub failed_on: BTreeSet<Name>,
}

/// The placement of every group, by group name.
pub type Placement = BTreeMap<Name, GroupPlacement>;

/// Places every group of `config`.
///
/// - A group goes to the first node of its `preferredNodes` that is Up, not
///   in its `failed_on` and not on standby (`standby: true`): an *eligible*
///   node.
/// - A group declared `state: offline` is placed nowhere (`node: None`);
///   its `failed_on` is kept.
/// - Stickiness: a group whose current node is still eligible stays there,
///   so an unrelated change (another group, a node coming back) never moves
///   it — except with `failback: auto`, where it goes to the most preferred
///   eligible node (home first).
/// - A group whose node is no longer eligible (Down, failed, or taken out of
///   `preferredNodes`) moves to the first eligible node; with none, it is
///   offline (`node: None`).
/// - Groups absent from `config` are dropped; new groups are placed as above.
///
/// Each group has one `node` field, so a group is on at most one node by
/// construction. The result is a fixed point: placing it again with the same
/// inputs returns it unchanged.
pub fn place(config: &Config, health: &Health, current: &Placement) -> Placement {
    place_with(
        config,
        health,
        current,
        &Unclean::new(),
        &Overrides::default(),
        0,
    )
}

/// Per group, the nodes that may still hold its storage because a stop
/// there failed (docs/storage.md, "Unclean nodes").
pub type Unclean = BTreeMap<Name, BTreeSet<Name>>;

/// [`place`], with the nodes that are *unclean* for a group and the
/// operator's overrides in force at `now` (ms since the Unix epoch; an
/// expired override counts for nothing):
///
/// - a group with any unclean node is placed nowhere (`node: None`),
///   whatever else holds — its storage may still be held there, and
///   starting it anywhere could mount it twice. It is placed again once no
///   node is unclean for it (the node released it, or an operator
///   confirmed the node down);
/// - a node on standby by override is treated as `standby: true`;
/// - a group moved to a node goes there while that node is eligible for it
///   (Up, preferred, not failed, not on standby) — stickiness and failback
///   do not apply to it; when the node is not eligible the group is placed
///   as if there were no override.
pub fn place_with(
    config: &Config,
    health: &Health,
    current: &Placement,
    unclean: &Unclean,
    overrides: &Overrides,
    now: u64,
) -> Placement {
    let mut standby = standby_nodes(config);
    standby.extend(overrides.standby_at(now));
    config
        .groups
        .iter()
        .map(|group| {
            let previous = current.get(group.name());
            let failed_on = previous.map(|p| p.failed_on.clone()).unwrap_or_default();
            let blocked = unclean.get(group.name()).is_some_and(|n| !n.is_empty());
            let not = Unavailable {
                health,
                failed_on: &failed_on,
                standby: &standby,
            };
            let node = match group.spec.state {
                DesiredState::Offline => None,
                DesiredState::Online if blocked => None,
                DesiredState::Online => overrides
                    .move_at(group.name(), now)
                    .filter(|n| eligible(&group.spec, &not, n))
                    .cloned()
                    .or_else(|| choose(&group.spec, &not, previous.and_then(|p| p.node.as_ref()))),
            };
            (group.name().clone(), GroupPlacement { node, failed_on })
        })
        .collect()
}

/// The nodes the configuration puts on standby.
pub fn standby_nodes(config: &Config) -> BTreeSet<Name> {
    config
        .nodes
        .iter()
        .filter(|n| n.spec.standby)
        .map(|n| n.name().clone())
        .collect()
}

/// What keeps nodes from taking a group, besides its `preferredNodes`.
struct Unavailable<'a> {
    health: &'a Health,
    failed_on: &'a BTreeSet<Name>,
    standby: &'a BTreeSet<Name>,
}

fn eligible(spec: &ResourceGroupSpec, not: &Unavailable, node: &Name) -> bool {
    is_eligible(spec, not.health, not.failed_on, node) && !not.standby.contains(node)
}

fn choose(spec: &ResourceGroupSpec, not: &Unavailable, current: Option<&Name>) -> Option<Name> {
    let eligible = |node: &Name| eligible(spec, not, node);
    let best = spec.preferred_nodes.iter().find(|n| eligible(n));
    match current {
        Some(here) if eligible(here) => match spec.failback {
            Failback::Manual => Some(here.clone()),
            // `here` is eligible, so `best` exists and is at least as preferred.
            Failback::Auto => best.cloned(),
        },
        _ => best.cloned(),
    }
}

/// Whether `node` is eligible for `spec` under `health` and `failed_on`:
/// what [`place`] requires of the node it picks, besides not being on
/// standby ([`standby_nodes`]).
pub fn is_eligible(
    spec: &ResourceGroupSpec,
    health: &Health,
    failed_on: &BTreeSet<Name>,
    node: &Name,
) -> bool {
    health.get(node) == Some(&NodeState::Up)
        && !failed_on.contains(node)
        && spec.preferred_nodes.contains(node)
}

/// The placement to hand to [`place`] once `new` replaces `old` as the
/// applied configuration: removed groups are dropped, and a group whose spec
/// changed forgets where it failed (the operator changed something, so the
/// failure may be fixed). The leader calls this when it commits a
/// configuration, and `plan` calls it to predict that commit.
pub fn carry_over(old: Option<&Config>, new: &Config, placement: &Placement) -> Placement {
    placement
        .iter()
        .filter_map(|(name, p)| {
            let group = new.groups.get(name.as_str())?;
            let unchanged = old
                .and_then(|o| o.groups.get(name.as_str()))
                .is_some_and(|before| before.spec == group.spec);
            let failed_on = if unchanged {
                p.failed_on.clone()
            } else {
                BTreeSet::new()
            };
            Some((
                name.clone(),
                GroupPlacement {
                    node: p.node.clone(),
                    failed_on,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        s.parse().expect("name")
    }

    fn config() -> Config {
        let yaml = "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {name: db}\nspec:\n  \
                    preferredNodes: [n1, n2]\n---\napiVersion: asctl/v1\nkind: ResourceGroup\n\
                    metadata: {name: web}\nspec:\n  preferredNodes: [n1, n2]\n";
        crate::load::load_texts([("t.yaml", yaml.as_bytes())]).config
    }

    #[test]
    fn a_group_with_an_unclean_node_is_placed_nowhere_and_others_are_not_affected() {
        let cfg = config();
        let health: Health = [(name("n1"), NodeState::Up), (name("n2"), NodeState::Up)].into();
        let mut current = place(&cfg, &health, &Placement::new());
        assert_eq!(current["db"].node, Some(name("n1")));
        // db's stop failed on n1: it failed there, and n1 may hold its disk.
        current
            .get_mut("db")
            .expect("db")
            .failed_on
            .insert(name("n1"));
        let unclean: Unclean = [(name("db"), [name("n1")].into())].into();
        let placed = place_with(&cfg, &health, &current, &unclean, &Overrides::default(), 0);
        assert_eq!(placed["db"].node, None, "not on n2 either");
        assert_eq!(placed["db"].failed_on, [name("n1")].into());
        assert_eq!(placed["web"].node, Some(name("n1")), "web is not affected");
        // Unclean on a node that is down (it crashed after the failed stop):
        // still nowhere.
        let n1_down: Health = [(name("n1"), NodeState::Down), (name("n2"), NodeState::Up)].into();
        assert_eq!(
            place_with(&cfg, &n1_down, &current, &unclean, &Overrides::default(), 0)["db"].node,
            None
        );
        // An empty set for the group blocks nothing; without it db goes to n2.
        let empty: Unclean = [(name("db"), BTreeSet::new())].into();
        assert_eq!(
            place_with(&cfg, &health, &current, &empty, &Overrides::default(), 0)["db"].node,
            Some(name("n2"))
        );
        assert_eq!(place(&cfg, &health, &current)["db"].node, Some(name("n2")));
    }
}
