//! What-if: where the groups would run if some nodes failed, and the N+1
//! check (every single node lost still leaves every group a node).
//!
//! Pure, like [`place`]: the answers are [`place`]'s own, computed on a
//! health where the failed nodes are Down, starting from the placement the
//! domain would have with every node up. Whether a failover is *supported*
//! (the compatibility tables) is a judgement of the rules, passed in as a
//! [`Judge`] so that this module does not depend on them.

use std::collections::BTreeSet;

use serde::Serialize;

use super::place::{Health, NodeState, Placement, place};
use crate::model::Config;
use crate::model::Name;

/// Why a group may not fail over from one node to another (`None`: it may).
/// Arguments: the group, the node it leaves, the node it goes to.
pub type Judge<'a> = dyn Fn(&Name, &Name, &Name) -> Option<String> + 'a;

/// The health of `config`'s nodes with `failed` Down and every other node Up.
pub fn health_without(config: &Config, failed: &BTreeSet<Name>) -> Health {
    config
        .nodes
        .iter()
        .map(|n| {
            let state = if failed.contains(n.name()) {
                NodeState::Down
            } else {
                NodeState::Up
            };
            (n.name().clone(), state)
        })
        .collect()
}

/// Where every group runs once `failed` are down, starting from `base` (the
/// placement before the failures, e.g. [`home`]): stickiness and failback
/// apply as in the domain.
pub fn with_failed(config: &Config, failed: &BTreeSet<Name>, base: &Placement) -> Placement {
    place(config, &health_without(config, failed), base)
}

/// Where every group runs in a domain whose nodes are all up and that has
/// never placed anything: each group on its most preferred eligible node.
pub fn home(config: &Config) -> Placement {
    with_failed(config, &BTreeSet::new(), &Placement::new())
}

/// A group that changes node between two placements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Move {
    pub group: Name,
    /// `None`: the group was offline before.
    pub from: Option<Name>,
    /// `None`: the group has no node left.
    pub to: Option<Name>,
    /// Set when the rules do not support this failover (the group goes to a
    /// node it cannot run on as its data, addresses or alias need).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
}

impl Move {
    /// The group has no node it can run on after the move.
    pub fn is_homeless(&self) -> bool {
        self.to.is_none() || self.unsupported.is_some()
    }
}

/// The groups that change node from `before` to `after`, by group name, each
/// judged by `judge`. Groups in `wanted_offline` (declared offline) are not
/// moves: they have no node on purpose.
pub fn moves(
    before: &Placement,
    after: &Placement,
    wanted_offline: &BTreeSet<Name>,
    judge: &Judge,
) -> Vec<Move> {
    after
        .iter()
        .filter(|(group, _)| !wanted_offline.contains(*group))
        .filter_map(|(group, p)| {
            let from = before.get(group).and_then(|b| b.node.clone());
            if from == p.node {
                return None;
            }
            let unsupported = match (&from, &p.node) {
                (Some(f), Some(t)) => judge(group, f, t),
                _ => None,
            };
            Some(Move {
                group: group.clone(),
                from,
                to: p.node.clone(),
                unsupported,
            })
        })
        .collect()
}

/// One node lost, on top of the scenario the check started from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Loss {
    pub node: Name,
    /// Every group's node after the loss.
    pub placement: Placement,
    /// What moves because of the loss.
    pub moves: Vec<Move>,
}

impl Loss {
    /// The groups this loss leaves without a (supported) node.
    pub fn homeless(&self) -> impl Iterator<Item = &Move> {
        self.moves.iter().filter(|m| m.is_homeless())
    }
}

/// The N+1 check: for every node not already in `failed`, the placement when
/// that node is lost too, starting from `base` (the placement with `failed`
/// down). The domain is N+1 when no loss has a homeless group.
pub fn each_node(
    config: &Config,
    failed: &BTreeSet<Name>,
    base: &Placement,
    wanted_offline: &BTreeSet<Name>,
    judge: &Judge,
) -> Vec<Loss> {
    config
        .nodes
        .iter()
        .map(|n| n.name())
        .filter(|n| !failed.contains(*n))
        .map(|node| {
            let mut down = failed.clone();
            down.insert(node.clone());
            let placement = with_failed(config, &down, base);
            let moves = moves(base, &placement, wanted_offline, judge);
            Loss {
                node: node.clone(),
                placement,
                moves,
            }
        })
        .collect()
}
