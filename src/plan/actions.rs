//! The runtime consequences of a plan: which groups start, restart, move or
//! stop, and which managed IP addresses follow them.
//!
//! Actions compare the live placement with the placement [`place`] predicts
//! for the desired configuration, so they are what the leader will do, not
//! a guess made from the diff.
//!
//! [`place`]: super::place

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::place::{Health, NodeState, Placement, standby_nodes};
use crate::model::{Cidr, Config, DesiredState, Name, ResourceGroupSpec};

/// One thing that will happen at runtime when the plan is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Action {
    /// The group comes online on `node`.
    Start {
        group: Name,
        node: Name,
        reason: String,
    },
    /// The group is stopped and started again on the node it runs on.
    Restart {
        group: Name,
        node: Name,
        reasons: Vec<String>,
    },
    /// Nothing happens to the group.
    Stay { group: Name, node: Name },
    /// The group goes offline on `from` and online on `to`.
    Move {
        group: Name,
        from: Name,
        to: Name,
        reason: String,
    },
    /// The group goes offline on `node` and nowhere else.
    Stop {
        group: Name,
        node: Name,
        reason: String,
    },
    /// The group was offline and stays so.
    Offline { group: Name, reason: String },
    /// A managed IP address of `group` goes down on `from` (if any) and up
    /// on `to` (if any).
    Ip {
        address: Cidr,
        group: Name,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Name>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<Name>,
    },
}

impl Action {
    /// The group the action is about.
    pub fn group(&self) -> &Name {
        match self {
            Action::Start { group, .. }
            | Action::Restart { group, .. }
            | Action::Stay { group, .. }
            | Action::Move { group, .. }
            | Action::Stop { group, .. }
            | Action::Offline { group, .. }
            | Action::Ip { group, .. } => group,
        }
    }

    /// Whether the action changes something at runtime.
    pub fn is_change(&self) -> bool {
        !matches!(self, Action::Stay { .. } | Action::Offline { .. })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Start {
                group,
                node,
                reason,
            } => write!(f, "group {group}: start on {node} ({reason})"),
            Action::Restart {
                group,
                node,
                reasons,
            } => write!(
                f,
                "group {group}: restart on {node} ({})",
                reasons.join("; ")
            ),
            Action::Stay { group, node } => write!(f, "group {group}: stays on {node}"),
            Action::Move {
                group,
                from,
                to,
                reason,
            } => write!(f, "group {group}: move {from} → {to} ({reason})"),
            Action::Stop {
                group,
                node,
                reason,
            } => write!(f, "group {group}: stop on {node} ({reason})"),
            Action::Offline { group, reason } => {
                write!(f, "group {group}: stays offline ({reason})")
            }
            Action::Ip {
                address, from, to, ..
            } => match (from, to) {
                (Some(from), Some(to)) => write!(f, "ip {address} moves to {to} (from {from})"),
                (None, Some(to)) => write!(f, "ip {address} comes up on {to}"),
                (Some(from), None) => write!(f, "ip {address} goes down on {from}"),
                (None, None) => write!(f, "ip {address} stays down"),
            },
        }
    }
}

/// Why a running group must be restarted to take `new` instead of `old`;
/// empty when it can keep running.
///
/// Everything the node reconciler starts (data sources, IP addresses, node
/// alias, module, services, processes) requires a restart when it changes.
/// Four fields do not, because they only matter to the leader or to the next
/// failure: `preferredNodes`, `failback` and `state` (placement: when they
/// change where the group goes, that is a move, a start or a stop, not a
/// restart) and `restart` (the limit applies from the next failure on).
pub fn restart_reasons(old: &ResourceGroupSpec, new: &ResourceGroupSpec) -> Vec<String> {
    let mut same_runtime = new.clone();
    same_runtime.preferred_nodes = old.preferred_nodes.clone();
    same_runtime.failback = old.failback;
    same_runtime.state = old.state;
    same_runtime.restart = old.restart.clone();
    if same_runtime == *old {
        return Vec::new();
    }

    let mut reasons = Vec::new();
    let mut changed = |differs: bool, what: &str| {
        if differs {
            reasons.push(format!("{what} changed"));
        }
    };
    changed(old.data_sources != new.data_sources, "data sources");
    changed(old.ip_addresses != new.ip_addresses, "IP addresses");
    changed(old.node_alias != new.node_alias, "node alias");
    changed(old.module != new.module, "module");
    changed(old.services != new.services, "services");

    for p in &new.processes {
        let Some(o) = old.processes.iter().find(|o| o.name == p.name) else {
            reasons.push(format!("process added: {}", p.name));
            continue;
        };
        let mut process_changed = |differs: bool, what: &str| {
            if differs {
                reasons.push(format!("process {what} changed: {}", p.name));
            }
        };
        process_changed(o.command != p.command, "command");
        // Names only: the values are secrets.
        process_changed(o.env != p.env, "environment");
        process_changed(o.working_dir != p.working_dir, "working directory");
        process_changed(o.monitor != p.monitor, "monitor");
        process_changed(o.stop_timeout != p.stop_timeout, "stop timeout");
    }
    for o in &old.processes {
        if !new.processes.iter().any(|p| p.name == o.name) {
            reasons.push(format!("process removed: {}", o.name));
        }
    }
    if reasons.is_empty() {
        // Same processes, same settings: only their start order differs, or
        // a field this function does not know yet. Either way, restart.
        let order_differs = old
            .processes
            .iter()
            .map(|p| &p.name)
            .ne(new.processes.iter().map(|p| &p.name));
        reasons.push(if order_differs {
            "process order changed".into()
        } else {
            "group spec changed".into()
        });
    }
    reasons
}

/// Whether a running group must restart to take `new` instead of `old`.
pub fn needs_restart(old: &ResourceGroupSpec, new: &ResourceGroupSpec) -> bool {
    !restart_reasons(old, new).is_empty()
}

/// The actions that take the domain from `current` (placement of `old`) to
/// `next` (placement of `new`), by group name.
pub(crate) fn actions(
    old: Option<&Config>,
    new: &Config,
    health: &Health,
    current: &Placement,
    next: &Placement,
) -> Vec<Action> {
    let names: BTreeSet<&Name> = new
        .groups
        .iter()
        .map(|g| g.name())
        .chain(
            old.into_iter()
                .flat_map(|o| o.groups.iter().map(|g| g.name())),
        )
        .collect();
    let standby = standby_nodes(new);
    let mut out = Vec::new();
    for name in names {
        let before = old
            .and_then(|o| o.groups.get(name.as_str()))
            .map(|g| &g.spec);
        let after = new.groups.get(name.as_str()).map(|g| &g.spec);
        let from = current.get(name).and_then(|p| p.node.as_ref());
        let placed = next.get(name);
        let to = placed.and_then(|p| p.node.as_ref());
        let failed_on = placed.map(|p| p.failed_on.clone()).unwrap_or_default();
        let nodes = NodeView {
            health,
            standby: &standby,
        };
        let change = GroupChange {
            group: name,
            before,
            after,
            from,
            to,
            failed_on: &failed_on,
        };
        group_actions(&change, &nodes, &mut out);
    }
    out
}

/// One group's change: its spec before and after, the node it runs on and
/// the one `place()` chose, and the nodes it failed on.
struct GroupChange<'a> {
    group: &'a Name,
    before: Option<&'a ResourceGroupSpec>,
    after: Option<&'a ResourceGroupSpec>,
    from: Option<&'a Name>,
    to: Option<&'a Name>,
    failed_on: &'a BTreeSet<Name>,
}

fn group_actions(c: &GroupChange, nodes: &NodeView, out: &mut Vec<Action>) {
    let group = c.group.clone();
    let ips = |spec: Option<&ResourceGroupSpec>| -> Vec<Cidr> {
        spec.map(|s| s.ip_addresses.iter().map(|ip| ip.address).collect())
            .unwrap_or_default()
    };
    let (old_ips, new_ips) = (ips(c.before), ips(c.after));
    let Some(after) = c.after else {
        // Removed from the configuration.
        if let Some(from) = c.from {
            out.push(Action::Stop {
                group: group.clone(),
                node: from.clone(),
                reason: "group removed".into(),
            });
            ip_actions(&group, &old_ips, &[], Some(from), None, out);
        }
        return;
    };
    match (c.from, c.to) {
        (Some(a), Some(b)) if a == b => match c.before {
            Some(before) => {
                let reasons = restart_reasons(before, after);
                if reasons.is_empty() {
                    out.push(Action::Stay {
                        group,
                        node: a.clone(),
                    });
                } else {
                    out.push(Action::Restart {
                        group: group.clone(),
                        node: a.clone(),
                        reasons,
                    });
                    ip_actions(&group, &old_ips, &new_ips, Some(a), Some(b), out);
                }
            }
            None => start(&group, b, "new group", &new_ips, out),
        },
        (Some(a), Some(b)) => {
            out.push(Action::Move {
                group: group.clone(),
                from: a.clone(),
                to: b.clone(),
                reason: move_reason(after, nodes, c.failed_on, a),
            });
            ip_actions(&group, &old_ips, &new_ips, Some(a), Some(b), out);
        }
        (None, Some(b)) => {
            let reason = if c.before.is_some() {
                "was offline"
            } else {
                "new group"
            };
            start(&group, b, reason, &new_ips, out);
        }
        (Some(a), None) => {
            out.push(Action::Stop {
                group: group.clone(),
                node: a.clone(),
                reason: no_node_reason(after, nodes, c.failed_on),
            });
            ip_actions(&group, &old_ips, &[], Some(a), None, out);
        }
        (None, None) => out.push(Action::Offline {
            group,
            reason: no_node_reason(after, nodes, c.failed_on),
        }),
    }
}

/// A start of `group` on `node`, its addresses coming up with it.
fn start(group: &Name, node: &Name, reason: &str, ips: &[Cidr], out: &mut Vec<Action>) {
    out.push(Action::Start {
        group: group.clone(),
        node: node.clone(),
        reason: reason.into(),
    });
    ip_actions(group, &[], ips, None, Some(node), out);
}

/// IP addresses in both lists move (or stay, when the node is the same and
/// the group restarts: no action), the others go down or come up.
fn ip_actions(
    group: &Name,
    old: &[Cidr],
    new: &[Cidr],
    from: Option<&Name>,
    to: Option<&Name>,
    out: &mut Vec<Action>,
) {
    let ip = |address: Cidr, from: Option<&Name>, to: Option<&Name>| Action::Ip {
        address,
        group: group.clone(),
        from: from.cloned(),
        to: to.cloned(),
    };
    for &address in new {
        if old.contains(&address) {
            if from != to {
                out.push(ip(address, from, to));
            }
        } else if to.is_some() {
            out.push(ip(address, None, to));
        }
    }
    for &address in old {
        if !new.contains(&address) && from.is_some() {
            out.push(ip(address, from, None));
        }
    }
}

/// The domain's view of the nodes that the reasons of actions cite.
struct NodeView<'a> {
    health: &'a Health,
    standby: &'a BTreeSet<Name>,
}

/// Why a group leaves `from`: the first reason [`super::place`] would not
/// keep it there.
fn move_reason(
    spec: &ResourceGroupSpec,
    nodes: &NodeView,
    failed_on: &BTreeSet<Name>,
    from: &Name,
) -> String {
    if !spec.preferred_nodes.contains(from) {
        format!("{from} no longer in preferredNodes")
    } else if nodes.health.get(from) != Some(&NodeState::Up) {
        format!("{from} is down")
    } else if nodes.standby.contains(from) {
        format!("{from} is on standby")
    } else if failed_on.contains(from) {
        format!("failed on {from}")
    } else {
        "failback auto".into()
    }
}

fn no_node_reason(
    spec: &ResourceGroupSpec,
    nodes: &NodeView,
    failed_on: &BTreeSet<Name>,
) -> String {
    if spec.state == DesiredState::Offline {
        return "state: offline".into();
    }
    let why: Vec<String> = spec
        .preferred_nodes
        .iter()
        .map(|n| {
            if nodes.health.get(n) != Some(&NodeState::Up) {
                format!("{n} down")
            } else if nodes.standby.contains(n) {
                format!("{n} on standby")
            } else if failed_on.contains(n) {
                format!("failed on {n}")
            } else {
                format!("{n} eligible")
            }
        })
        .collect();
    format!("no eligible node: {}", why.join(", "))
}
