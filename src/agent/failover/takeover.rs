//! Local takeover: failover in a domain of two nodes without a witness.
//!
//! There the domain database commits nothing while one node is down (two
//! raft voters need both), so the survivor cannot have a failover
//! committed. Instead, the node that wins the tie-break of docs/ha.md — its
//! detector has had the peer Failed for the takeover wait, and it is not
//! isolated — runs the groups that [`place`] gives it under that health, on
//! top of the committed placement: the same decision the leader would
//! commit, taken locally, with the same timing argument.
//!
//! Ending it without a second copy:
//!
//! - The taker announces it in every heartbeat ([`FLAG_TAKEOVER`], set for
//!   any group running here that the committed placement puts elsewhere,
//!   which also covers a group still stopping after a move) and in its node
//!   reports (`takenOver`).
//! - A node whose peer announces starts nothing new ([`Clearance::hold`]): the
//!   node that comes back does not start the groups its stale placement
//!   still gives it.
//! - Once both nodes commit again, the leader adopts the running copies
//!   into the placement (`crate::domain::leader::adopted_placement`); the
//!   takeover of a group ends when the committed placement of that group
//!   changes (adopted here, or moved on by a decision made with both nodes
//!   voting), and the announcement when nothing runs here outside it.
//!
//! [`FLAG_TAKEOVER`]: crate::agent::detection::packet::FLAG_TAKEOVER

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::DomainState;
use crate::domain::leader::with_failures;
use crate::model::{Config, Name};
use crate::plan::{Health, NodeState, place_with};

use crate::wire::{GroupState, NodeReport};

/// What the HA loop lets this node run, on top of the committed placement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clearance {
    /// Nothing runs here (isolation, a stall, no quorum, a lapsed lease).
    pub fenced: bool,
    /// Groups this node runs by local takeover, each with the placement
    /// revision it overrode.
    pub taken: BTreeMap<Name, u64>,
    /// Start nothing new: the peer runs groups outside the committed
    /// placement.
    pub hold: bool,
    /// `hold` is known: with two nodes, the peer has been heard since this
    /// agent started (or is down); elsewhere, from the HA loop's first
    /// pass. The reconciler starts only then.
    pub settled: bool,
    /// Two nodes: the peers this node's own detector has Down (the domain
    /// cannot commit that while one of two is down); not waited for by
    /// break before make ([`held_elsewhere`]).
    pub down: BTreeSet<Name>,
    /// Two nodes: the peer is down and this node won the tie-break, so
    /// there is no leader to catch up with and this node decides alone (a
    /// restarted agent stops waiting for one).
    pub alone: bool,
}

/// The groups taken over, each with the committed placement it overrode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Taken(BTreeMap<Name, Overrode>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Overrode {
    generation: u64,
    /// `DomainState::revision_of` the group when it was taken.
    revision: u64,
}

impl Taken {
    pub fn groups(&self) -> BTreeSet<Name> {
        self.0.keys().cloned().collect()
    }

    /// Each group with the placement revision it overrode.
    pub fn revisions(&self) -> BTreeMap<Name, u64> {
        self.0
            .iter()
            .map(|(g, o)| (g.clone(), o.revision))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A domain of two nodes without a witness: the only one with local
/// takeover.
pub fn applies(config: &Config) -> bool {
    config.nodes.len() == 2
        && config
            .domain
            .as_ref()
            .is_none_or(|d| d.spec.witness.is_none())
}

/// The groups `me` runs by local takeover now. `local` is this node's own
/// health view when it has won the tie-break (a peer Down, `me` Up); a
/// takeover made earlier lasts until the domain decides anew about its
/// group (its placement revision moves) or the configuration changes.
pub fn next(
    config: &Config,
    state: &DomainState,
    me: &Name,
    local: Option<&Health>,
    prev: &Taken,
) -> Taken {
    let committed = |g: &Name| state.placement.get(g).and_then(|p| p.node.clone());
    let mut out: BTreeMap<Name, Overrode> = prev
        .0
        .iter()
        .filter(|(g, o)| o.generation == state.generation && state.revision_of(g) == o.revision)
        .map(|(g, o)| (g.clone(), o.clone()))
        .collect();
    let won = local
        .filter(|h| h.get(me) == Some(&NodeState::Up) && h.values().any(|s| *s == NodeState::Down));
    if let Some(health) = won {
        // The operator's overrides count here as for the leader (a node on
        // standby by override takes nothing over), judged at the last
        // committed stamp: this decision is pure.
        let current = with_failures(state);
        for (g, p) in place_with(
            config,
            health,
            &current,
            &state.unclean(),
            &state.overrides,
            state.clock_ms,
        ) {
            if p.node.as_ref() == Some(me) && committed(&g).as_ref() != Some(me) {
                let revision = state.revision_of(&g);
                out.entry(g).or_insert(Overrode {
                    generation: state.generation,
                    revision,
                });
            }
        }
    }
    Taken(out)
}

/// Whether this node must announce [`crate::agent::detection::packet::FLAG_TAKEOVER`]: it
/// runs (or is still stopping) a group the committed placement does not
/// put here.
pub fn announce(state: &DomainState, me: &Name, taken: &Taken, report: &NodeReport) -> bool {
    !taken.is_empty()
        || report.groups.iter().any(|(g, s)| {
            matches!(
                s.state,
                GroupState::Starting | GroupState::Online | GroupState::Stopping
            ) && state.placement.get(g).and_then(|p| p.node.as_ref()) != Some(me)
        })
}

/// The groups this node should run: the committed placement's and its
/// takeovers, none when fenced, and while holding only those already
/// running (`report`). A group placed here starts only once no other node
/// that is up reports it running ([`held_elsewhere`]): break before make,
/// whatever moved it.
pub fn groups_here(
    state: &DomainState,
    me: &Name,
    clearance: &Clearance,
    report: &NodeReport,
) -> BTreeSet<Name> {
    if clearance.fenced {
        return BTreeSet::new();
    }
    let running_here = |g: &Name| {
        report
            .groups
            .get(g)
            .is_some_and(|s| matches!(s.state, GroupState::Starting | GroupState::Online))
    };
    let mut groups = state.groups_on(me);
    groups.retain(|g| running_here(g) || !held_elsewhere(state, me, &clearance.down, g));
    groups.extend(clearance.taken.keys().cloned());
    if clearance.hold {
        groups.retain(|g| running_here(g));
    }
    groups
}

/// Whether a node other than `me` that the domain has Up (and that is not
/// in `down`, this node's own verdicts with two nodes) last reported
/// `group` starting, online or stopping. A move between two live nodes
/// (failback, a decision on health this node never saw) then waits for the
/// old holder's report that it stopped; a node that is down is not waited
/// for — the takeover wait of docs/ha.md has covered its stop. With two
/// nodes the domain cannot commit a node down, hence `down`: a holder that
/// crashed before reporting its stop would otherwise be waited for forever.
pub fn held_elsewhere(state: &DomainState, me: &Name, down: &BTreeSet<Name>, group: &Name) -> bool {
    state.nodes.iter().any(|(n, r)| {
        n != me
            && r.state == NodeState::Up
            && !down.contains(n)
            && r.last_report.as_ref().is_some_and(|rep| {
                rep.groups.get(group).is_some_and(|s| {
                    matches!(
                        s.state,
                        GroupState::Starting | GroupState::Online | GroupState::Stopping
                    )
                })
            })
    })
}

/// A domain of two nodes for tests of local takeover and of the failover
/// policy that runs it.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::time::SystemTime;

    use super::*;
    use crate::domain::Command;
    use crate::plan::documents::to_document_texts;
    use crate::plan::{GroupPlacement, Placement};
    use crate::wire::LocalGroupStatus;

    use crate::model::testing::n;

    /// Two nodes a and b, no witness; web prefers a, db prefers b.
    pub(crate) fn config() -> Config {
        let yaml = "apiVersion: asctl/v1\nkind: Domain\nmetadata: {name: two}\nspec:\n  qualification: generic\n\
            ---\napiVersion: asctl/v1\nkind: Node\nmetadata: {name: a}\nspec: {physical: true}\n\
            ---\napiVersion: asctl/v1\nkind: Node\nmetadata: {name: b}\nspec: {physical: true}\n\
            ---\napiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {name: web}\nspec:\n  preferredNodes: [a, b]\n  \
            processes:\n    - {name: s, command: [\"true\"]}\n\
            ---\napiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {name: db}\nspec:\n  preferredNodes: [b, a]\n  \
            processes:\n    - {name: s, command: [\"true\"]}\n";
        let loaded = crate::load::load_texts([("two.yaml", yaml.as_bytes())]);
        assert!(loaded.config.domain.is_some(), "{:#?}", loaded.findings);
        loaded.config
    }

    pub(crate) fn health(a: NodeState, b: NodeState) -> Health {
        [(n("a"), a), (n("b"), b)].into_iter().collect()
    }

    /// Committed: web on a, db on b.
    pub(crate) fn state(config: &Config) -> DomainState {
        let mut s = DomainState::default();
        s.apply(Command::ApplyConfig {
            base_generation: 0,
            documents: to_document_texts(config),
        });
        let placement: Placement = [("web", "a"), ("db", "b")]
            .into_iter()
            .map(|(g, node)| {
                let p = GroupPlacement {
                    node: Some(n(node)),
                    ..Default::default()
                };
                (n(g), p)
            })
            .collect();
        s.apply(Command::SetPlacement {
            generation: s.generation,
            placement,
            health: health(NodeState::Up, NodeState::Up),
            base: None,
        });
        s
    }

    pub(crate) fn report(node: &str, groups: &[(&str, GroupState)]) -> NodeReport {
        NodeReport {
            node: n(node),
            generation_seen: 1,
            groups: groups
                .iter()
                .map(|(g, st)| {
                    let s = LocalGroupStatus {
                        state: *st,
                        since: SystemTime::now(),
                        restarts: 0,
                        message: None,
                        unclean: None,
                        fatal: false,
                    };
                    (n(g), s)
                })
                .collect(),
            taken_over: BTreeMap::new(),
            failed_peers: Default::default(),
            alive_peers: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{config, health, report, state};
    use super::*;
    use crate::domain::Command;
    use crate::plan::documents::to_document_texts;
    use crate::plan::{GroupPlacement, Placement};

    use crate::model::testing::n;

    #[test]
    fn only_two_nodes_without_a_witness() {
        assert!(applies(&config()));
        let quickstart = crate::load::load(&[crate::load::Input::Path(
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart").into(),
        )])
        .expect("loads")
        .config;
        assert!(!applies(&quickstart));
    }

    #[test]
    fn the_winner_takes_the_peers_groups_and_keeps_them_until_the_domain_decides() {
        let c = config();
        let mut s = state(&c);
        let a = n("a");
        // No tie-break won: nothing taken.
        let t = next(&c, &s, &a, None, &Taken::default());
        assert!(t.is_empty());
        // b Down, a Up: a takes db.
        let won = health(NodeState::Up, NodeState::Down);
        let t = next(&c, &s, &a, Some(&won), &Taken::default());
        assert_eq!(t.groups(), [n("db")].into_iter().collect());
        // b back (a no longer has a won view): still taken, the committed
        // placement has not changed.
        let t = next(&c, &s, &a, None, &t);
        assert_eq!(t.groups(), [n("db")].into_iter().collect());
        // The leader adopts it: the takeover is over (the placement runs it).
        let mut adopted = s.placement.clone();
        adopted.get_mut(&n("db")).expect("db").node = Some(a.clone());
        s.apply(Command::SetPlacement {
            generation: s.generation,
            placement: adopted,
            health: health(NodeState::Up, NodeState::Up),
            base: None,
        });
        let t = next(&c, &s, &a, None, &t);
        assert!(t.is_empty());
        assert!(s.groups_on(&a).contains(&n("db")));
    }

    #[test]
    fn an_isolated_node_takes_nothing() {
        let c = config();
        let s = state(&c);
        let lost = health(NodeState::Down, NodeState::Up);
        assert!(next(&c, &s, &n("a"), Some(&lost), &Taken::default()).is_empty());
    }

    #[test]
    fn announce_while_anything_runs_outside_the_placement() {
        let c = config();
        let s = state(&c);
        let a = n("a");
        let none = Taken::default();
        assert!(!announce(
            &s,
            &a,
            &none,
            &report("a", &[("web", GroupState::Online)])
        ));
        assert!(announce(
            &s,
            &a,
            &none,
            &report("a", &[("db", GroupState::Stopping)])
        ));
        assert!(!announce(
            &s,
            &a,
            &none,
            &report("a", &[("db", GroupState::Offline)])
        ));
    }

    #[test]
    fn holding_starts_nothing_new_and_fenced_runs_nothing() {
        let c = config();
        let s = state(&c);
        let b = n("b");
        let idle = report("b", &[]);
        let running = report("b", &[("db", GroupState::Online)]);
        let open = Clearance::default();
        let hold = Clearance {
            hold: true,
            ..Clearance::default()
        };
        let fenced = Clearance {
            fenced: true,
            ..Clearance::default()
        };
        let db: BTreeSet<Name> = [n("db")].into_iter().collect();
        assert_eq!(groups_here(&s, &b, &open, &idle), db);
        assert!(groups_here(&s, &b, &hold, &idle).is_empty());
        assert_eq!(groups_here(&s, &b, &hold, &running), db);
        assert!(groups_here(&s, &b, &fenced, &running).is_empty());
        let taken = Clearance {
            taken: [(n("web"), 1)].into_iter().collect(),
            ..Clearance::default()
        };
        assert_eq!(groups_here(&s, &b, &taken, &idle).len(), 2);
    }

    /// Three nodes: a moves web to b while a still reports it running.
    #[test]
    fn with_a_quorum_a_moved_group_waits_for_its_old_holder_to_stop() {
        let yaml = "apiVersion: asctl/v1\nkind: Domain\nmetadata: {name: three}\nspec:\n  qualification: generic\n\
            ---\napiVersion: asctl/v1\nkind: Node\nmetadata: {name: a}\nspec: {physical: true}\n\
            ---\napiVersion: asctl/v1\nkind: Node\nmetadata: {name: b}\nspec: {physical: true}\n\
            ---\napiVersion: asctl/v1\nkind: Node\nmetadata: {name: c}\nspec: {physical: true}\n\
            ---\napiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {name: web}\nspec:\n  preferredNodes: [a, b, c]\n  \
            processes:\n    - {name: s, command: [\"true\"]}\n";
        let c = crate::load::load_texts([("three.yaml", yaml.as_bytes())]).config;
        assert!(!applies(&c));
        let mut s = DomainState::default();
        s.apply(Command::ApplyConfig {
            base_generation: 0,
            documents: to_document_texts(&c),
        });
        let all = |st: NodeState| -> Health {
            [
                (n("a"), st),
                (n("b"), NodeState::Up),
                (n("c"), NodeState::Up),
            ]
            .into_iter()
            .collect()
        };
        let place_on = |s: &mut DomainState, node: &str, a: NodeState| {
            let p: Placement = [(
                n("web"),
                GroupPlacement {
                    node: Some(n(node)),
                    ..Default::default()
                },
            )]
            .into_iter()
            .collect();
            s.apply(Command::SetPlacement {
                generation: s.generation,
                placement: p,
                health: all(a),
                base: None,
            });
        };
        place_on(&mut s, "a", NodeState::Up);
        s.apply(Command::NodeReport {
            report: report("a", &[("web", GroupState::Online)]),
        });
        // Moved to b while a is up and still runs it: b waits.
        place_on(&mut s, "b", NodeState::Up);
        let b = n("b");
        let idle = report("b", &[]);
        let open = Clearance::default();
        assert!(held_elsewhere(&s, &b, &BTreeSet::new(), &n("web")));
        assert!(groups_here(&s, &b, &open, &idle).is_empty());
        // a reports it stopping, still waited for; then offline: b starts.
        s.apply(Command::NodeReport {
            report: report("a", &[("web", GroupState::Stopping)]),
        });
        assert!(groups_here(&s, &b, &open, &idle).is_empty());
        s.apply(Command::NodeReport {
            report: report("a", &[("web", GroupState::Offline)]),
        });
        let web: BTreeSet<Name> = [n("web")].into_iter().collect();
        assert_eq!(groups_here(&s, &b, &open, &idle), web);
        // A node the domain has down is not waited for (its stop is the
        // takeover wait's to cover).
        s.apply(Command::NodeReport {
            report: report("a", &[("web", GroupState::Online)]),
        });
        assert!(groups_here(&s, &b, &open, &idle).is_empty());
        place_on(&mut s, "b", NodeState::Down);
        assert_eq!(groups_here(&s, &b, &open, &idle), web);
        // What already runs here keeps running.
        place_on(&mut s, "b", NodeState::Up);
        let running = report("b", &[("web", GroupState::Online)]);
        assert_eq!(groups_here(&s, &b, &open, &running), web);
    }

    /// Two nodes, failback to a while b (still up in the committed state,
    /// which cannot change without b) last reported web online.
    #[test]
    fn with_two_nodes_a_failback_waits_for_the_peer_unless_this_node_has_it_down() {
        let c = config();
        let mut s = state(&c);
        s.apply(Command::NodeReport {
            report: report("b", &[("web", GroupState::Online)]),
        });
        let a = n("a");
        let idle = report("a", &[]);
        let open = Clearance::default();
        assert!(!groups_here(&s, &a, &open, &idle).contains(&n("web")));
        let b_down = Clearance {
            down: [n("b")].into_iter().collect(),
            ..Clearance::default()
        };
        assert!(groups_here(&s, &a, &b_down, &idle).contains(&n("web")));
    }
}
