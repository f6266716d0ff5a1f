//! The leader's loop: node health, placement and membership.
//!
//! Every member runs [`run`]; it acts only while this member leads. On every
//! change of the committed state, on every report and on a tick, it
//! recomputes node health ([`HealthSource`]) and the placement
//! ([`crate::plan::place`], the same function `plan` predicts with), and
//! commits them when they differ from what is committed. A group that a node
//! reports Failed (for the current generation) gets that node added to its
//! `failed_on`, so `place` moves it.
//!
//! Membership follows the configuration: members are the configuration's
//! nodes (by their agent address) plus the witness; a change adds the new
//! members as learners, moves members whose agent address changed (once the
//! agent answers there), then makes the new set the voters.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock::sleep_until;
use tracing::{info, warn};

use openraft::ChangeMembers;

use super::{
    Command, DomainState, Member, NodeId, Outcome, Replica, WITNESS, WriteAnswer, node_id,
};
use crate::model::{Config, Name};
use crate::plan::{Health, NodeState, Placement, place_with};
use crate::wire::{GroupState, NodeReport, StatusView};

/// Where node health comes from: implemented by the agent (its failure
/// detector, falling back to the freshness of node reports,
/// [`ReportFreshness`]), so the leader places from health without knowing
/// how it was observed.
pub trait HealthSource: Send + Sync + 'static {
    /// The state of each of `nodes` now.
    fn health(&self, nodes: &[Name]) -> Health;
    /// This member just became leader; `up` were Up in the committed state.
    fn leadership_gained(&self, up: &[Name]);
    /// When [`Self::health`] will next change by itself (a failed node's
    /// takeover wait ending), so the leader re-places at that instant rather
    /// than at its next tick.
    fn next_change(&self) -> Option<Instant> {
        None
    }
    /// Why `node` is considered lost, as evidence for the domain's history
    /// (e.g. which lines went silent); `None` when there is nothing to add.
    fn evidence(&self, _node: &Name) -> Option<String> {
        None
    }
}

/// A node is Up while its agent reported within `down_after`
/// (`heartbeat.timeout` × 3).
#[derive(Debug)]
pub struct ReportFreshness {
    seen: Mutex<HashMap<Name, Instant>>,
    down_after: Mutex<Duration>,
}

impl Default for ReportFreshness {
    fn default() -> Self {
        ReportFreshness {
            seen: Mutex::new(HashMap::new()),
            down_after: Mutex::new(Duration::from_secs(3)),
        }
    }
}

impl ReportFreshness {
    pub fn heard(&self, node: &Name) {
        if let Ok(mut s) = self.seen.lock() {
            s.insert(node.clone(), Instant::now());
        }
    }

    /// Whether a report of `node` arrived within `d`.
    pub fn heard_within(&self, node: &Name, d: Duration) -> bool {
        self.seen
            .lock()
            .map(|s| s.get(node).is_some_and(|t| t.elapsed() <= d))
            .unwrap_or(false)
    }

    pub fn set_down_after(&self, d: Duration) {
        if let Ok(mut x) = self.down_after.lock() {
            *x = d;
        }
    }
}

impl HealthSource for ReportFreshness {
    fn health(&self, nodes: &[Name]) -> Health {
        let down_after = self.down_after.lock().map(|d| *d).unwrap_or_default();
        let seen = match self.seen.lock() {
            Ok(s) => s,
            Err(_) => return Health::new(),
        };
        nodes
            .iter()
            .map(|n| {
                let fresh = seen.get(n).is_some_and(|t| t.elapsed() <= down_after);
                let state = if fresh {
                    NodeState::Up
                } else {
                    NodeState::Down
                };
                (n.clone(), state)
            })
            .collect()
    }

    fn leadership_gained(&self, up: &[Name]) {
        // A new leader has heard nobody yet: give the nodes the committed
        // state says are Up one full period to report before calling them
        // Down, instead of failing over everything at each election. Reports
        // go to the leader only, so what this member heard when it last led
        // is stale and must not count against them.
        if let Ok(mut s) = self.seen.lock() {
            let now = Instant::now();
            for n in up {
                s.insert(n.clone(), now);
            }
        }
    }
}

/// The members the configuration asks for: its nodes that have an agent
/// address, and the witness.
pub fn desired_members(config: &Config) -> BTreeMap<NodeId, Member> {
    let mut out: BTreeMap<NodeId, Member> = config
        .nodes
        .iter()
        .filter_map(|n| {
            let addr = n.spec.agent.as_ref()?.address.to_string();
            let name = n.name().to_string();
            Some((node_id(&name), Member { name, addr }))
        })
        .collect();
    if let Some(w) = config.domain.as_ref().and_then(|d| d.spec.witness.as_ref()) {
        out.insert(
            node_id(WITNESS),
            Member {
                name: WITNESS.into(),
                addr: w.to_string(),
            },
        );
    }
    out
}

/// The nodes whose health the leader decides: the configuration's nodes, or
/// before any configuration, the members that are not the witness.
fn tracked_nodes(domain: &Replica, config: Option<&Config>) -> Vec<Name> {
    match config {
        Some(c) => c.nodes.iter().map(|n| n.name().clone()).collect(),
        None => domain
            .members()
            .0
            .values()
            .filter(|m| m.name != WITNESS)
            .filter_map(|m| m.name.parse().ok())
            .collect(),
    }
}

/// This node's latest report, if it is for the current generation: a
/// report from before a spec change says nothing about the new spec.
fn current_report<'a>(state: &'a DomainState, node: &Name) -> Option<&'a NodeReport> {
    state
        .nodes
        .get(node)
        .and_then(|r| r.last_report.as_ref())
        .filter(|r| r.generation_seen == state.generation)
}

/// The committed placement with the groups that a node runs by local
/// takeover (two nodes without a witness, docs/ha.md) and
/// reports Online placed there: the running copy is adopted, never a second
/// one started. Only while no decision about the group came after the
/// revision the takeover overrode: a report that still names it after the
/// adoption (or after a failback) adopts nothing.
pub fn adopted_placement(state: &DomainState) -> Placement {
    let mut placement = state.placement.clone();
    for node in state.nodes.keys() {
        let Some(report) = current_report(state, node) else {
            continue;
        };
        for (group, revision) in &report.taken_over {
            if state.revision_of(group) != *revision {
                continue;
            }
            let online = report
                .groups
                .get(group)
                .is_some_and(|g| g.state == GroupState::Online);
            if let (true, Some(p)) = (online, placement.get_mut(group)) {
                p.node = Some(node.clone());
            }
        }
    }
    placement
}

/// `current` with the nodes where groups failed added to their `failed_on`,
/// which is what `place` starts from.
pub fn with_failures(state: &DomainState) -> Placement {
    let mut placement = state.placement.clone();
    for (group, p) in placement.iter_mut() {
        let Some(node) = p.node.clone() else { continue };
        let failed = current_report(state, &node)
            .and_then(|r| r.groups.get(group))
            .is_some_and(|g| g.state == GroupState::Failed);
        if failed {
            p.failed_on.insert(node);
        }
    }
    placement
}

/// The leader's decision for `state`: health and placement, or `None` when
/// the committed ones are already right. Overrides are judged at the time
/// of the last committed command ([`decide_at`] takes the leader's clock).
pub fn decide(state: &DomainState, health: Health) -> Option<Command> {
    decide_at(state, health, state.clock_ms)
}

/// [`decide`] with the operator's overrides in force at `now_ms`.
pub fn decide_at(state: &DomainState, health: Health, now_ms: u64) -> Option<Command> {
    // Adoptions are committed on their own first: the taker ends its
    // takeover when it sees the group's placement change, so a failback in
    // the same step (back to where the stale placement had it) must not
    // hide it.
    let adopted = adopted_placement(state);
    if adopted != state.placement {
        return Some(Command::SetPlacement {
            generation: state.generation,
            placement: adopted,
            health,
            base: Some(state.decisions),
        });
    }
    let placement = match state.config() {
        Some(config) => place_with(
            &config,
            &health,
            &with_failures(state),
            &state.overrides,
            now_ms,
        ),
        None => Placement::new(),
    };
    let committed = state.health();
    let health_changed = health.iter().any(|(n, s)| committed.get(n) != Some(s));
    if placement == state.placement && !health_changed {
        return None;
    }
    Some(Command::SetPlacement {
        generation: state.generation,
        placement,
        health,
        base: Some(state.decisions),
    })
}

/// Runs until `stop` changes. `kick` wakes it early (a report arrived).
pub async fn run(
    domain: Replica,
    health: Arc<dyn HealthSource>,
    freshness: Arc<ReportFreshness>,
    kick: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut applied = domain.applied.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = false;
    let mut membership: Option<JoinHandle<()>> = None;
    loop {
        let wake = if leading {
            earliest(health.next_change(), expiry(&domain.state()))
        } else {
            None
        };
        tokio::select! {
            _ = tick.tick() => {}
            _ = sleep_until(wake) => {}
            r = applied.changed() => if r.is_err() { return },
            _ = kick.notified() => {}
            _ = stop.changed() => return,
        }
        if !domain.is_leader() {
            leading = false;
            continue;
        }
        let state = domain.state();
        let config = state.config();
        if !leading {
            leading = true;
            info!("leading the domain at generation {}", state.generation);
            let up: Vec<Name> = state
                .nodes
                .iter()
                .filter(|(_, r)| r.state == NodeState::Up)
                .map(|(n, _)| n.clone())
                .collect();
            health.leadership_gained(&up);
        }
        let timeout = state.heartbeat().unwrap_or_default().timeout.get();
        freshness.set_down_after(timeout * 3);
        let nodes = tracked_nodes(&domain, config.as_deref());
        let now = super::now_ms();
        if state.overrides.any_expired_at(now) {
            // Removed through the log, so every member sees it go; the
            // commit wakes this loop again to place without it.
            if let Err(e) = domain.write_local(Command::ExpireOverrides).await {
                warn!("cannot remove the expired overrides: {e}");
            }
            continue;
        }
        if let Some(cmd) = decide_at(&state, health.health(&nodes), now) {
            let cmd = with_evidence(&state, cmd, health.as_ref());
            // Committed here or not at all: a decision is this leader's,
            // from its own view of node health. Forwarded to whoever leads
            // next (a deposed leader's, decided while it was cut off), it
            // would move groups on health nobody else saw. `base` makes
            // the state machine drop it if anything was decided meanwhile.
            log_moves(&state.placement, &cmd);
            match domain.write_local(cmd).await {
                Ok(WriteAnswer::Committed(Outcome::Ignored)) => {
                    info!("the placement decision was overtaken by another; deciding again")
                }
                Ok(_) => {}
                Err(e) => warn!("cannot commit the placement: {e}"),
            }
        }
        if let Some(config) = &config {
            let busy = membership.as_ref().is_some_and(|t| !t.is_finished());
            if !busy {
                membership = sync_membership(&domain, config);
            }
        }
    }
}

/// The sooner of two wake-up times.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// When the next override in `state` ends, on this member's clock.
fn expiry(state: &DomainState) -> Option<Instant> {
    let until = state.overrides.next_expiry()?;
    let wait = until.saturating_sub(super::now_ms());
    Some(Instant::now() + Duration::from_millis(wait))
}

/// `cmd` with the health source's evidence about every node it declares
/// lost, for the domain's history.
fn with_evidence(state: &DomainState, cmd: Command, health: &dyn HealthSource) -> Command {
    let Command::SetPlacement { health: h, .. } = &cmd else {
        return cmd;
    };
    let evidence: BTreeMap<Name, String> = h
        .iter()
        .filter(|(n, s)| {
            **s == NodeState::Down && state.nodes.get(*n).map(|r| r.state) == Some(NodeState::Up)
        })
        .filter_map(|(n, _)| Some((n.clone(), health.evidence(n)?)))
        .collect();
    if evidence.is_empty() {
        return cmd;
    }
    Command::Stamped {
        at_ms: 0,
        by: None,
        evidence,
        stamped: Box::new(cmd),
    }
}

/// Every group `cmd` moves, with the health it decided on: the trail an
/// operator (or a chaos run) follows to see why a group went where it did.
fn log_moves(before: &Placement, cmd: &Command) {
    let Command::SetPlacement {
        placement, health, ..
    } = cmd.inner()
    else {
        return;
    };
    for (group, p) in placement {
        let was = before.get(group).and_then(|b| b.node.as_ref());
        if was != p.node.as_ref() {
            let down: Vec<&str> = health
                .iter()
                .filter(|(_, s)| **s == NodeState::Down)
                .map(|(n, _)| n.as_str())
                .collect();
            info!(
                %group,
                from = ?was.map(Name::as_str),
                to = ?p.node.as_ref().map(Name::as_str),
                ?down,
                failed_on = ?p.failed_on,
                "placing group"
            );
        }
    }
}

/// What it takes to make the raft membership the one the configuration asks
/// for (pure: [`membership_change`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipChange {
    /// Members the membership does not have: added as learners first.
    pub add: BTreeMap<NodeId, Member>,
    /// Members whose agent address changed in the configuration: their node
    /// record is replaced (raft then talks to the new address).
    pub readdress: BTreeMap<NodeId, Member>,
    /// The new voter set, when it differs from the current one.
    pub voters: Option<BTreeSet<NodeId>>,
}

/// Compares the members the configuration asks for (`want`) with the
/// membership's node records and voters — ids *and* addresses: a node whose
/// agent moved to another address must be reached there. `None` when
/// nothing is to change, and when the change must not be made: never shrink
/// to nothing, and never hand the domain to a set that has none of the
/// current voters (a configuration naming other machines than the running
/// ones would otherwise orphan the domain).
pub fn membership_change(
    want: &BTreeMap<NodeId, Member>,
    nodes: &BTreeMap<NodeId, Member>,
    voters: &BTreeSet<NodeId>,
) -> Option<MembershipChange> {
    let want_ids: BTreeSet<NodeId> = want.keys().copied().collect();
    if want_ids.is_empty() || want_ids.is_disjoint(voters) {
        return None;
    }
    let mut change = MembershipChange::default();
    for (id, m) in want {
        match nodes.get(id) {
            None => {
                change.add.insert(*id, m.clone());
            }
            Some(have) if have != m => {
                change.readdress.insert(*id, m.clone());
            }
            Some(_) => {}
        }
    }
    if want_ids != *voters {
        change.voters = Some(want_ids);
    }
    (change != MembershipChange::default()).then_some(change)
}

/// Starts a membership change when the configuration's members differ from
/// the membership ([`membership_change`]).
fn sync_membership(domain: &Replica, config: &Config) -> Option<JoinHandle<()>> {
    let (nodes, voters) = domain.members();
    let change = membership_change(&desired_members(config), &nodes, &voters)?;
    let raft = domain.raft.clone();
    let client = domain.client.clone();
    Some(tokio::spawn(async move {
        for (id, m) in &change.add {
            info!("adding {m} to the domain as a learner");
            if let Err(e) = raft.add_learner(*id, m.clone(), false).await {
                warn!("cannot add {m}: {e}");
                return;
            }
        }
        if !change.readdress.is_empty() {
            // openraft's warning about replacing a node record: if the new
            // address belonged to another member, two quorums could form.
            // So the record changes only once the agent answering there is
            // that member; until then the next pass tries again.
            let mut ready = BTreeMap::new();
            for (id, m) in &change.readdress {
                match client.get::<StatusView>(&m.addr, "/v1/status").await {
                    Ok(s) if s.answered_by == m.name => {
                        ready.insert(*id, m.clone());
                    }
                    Ok(s) => warn!(
                        "not moving {} to {}: the agent there is {}",
                        m.name, m.addr, s.answered_by
                    ),
                    Err(e) => tracing::debug!("not moving {} to {} yet: {e}", m.name, m.addr),
                }
            }
            // A member that does not answer at its new address yet holds
            // up neither the others nor a change of the voters.
            if !ready.is_empty() {
                info!(
                    "moving members to their new addresses: {:?}",
                    ready.values().map(|m| m.to_string()).collect::<Vec<_>>()
                );
                if let Err(e) = raft
                    .change_membership(ChangeMembers::SetNodes(ready), false)
                    .await
                {
                    warn!("cannot change the members' addresses: {e}");
                    return;
                }
            }
        }
        if let Some(voters) = change.voters {
            info!("changing the domain's voters to {voters:?}");
            if let Err(e) = raft.change_membership(voters, false).await {
                warn!("cannot change the domain's membership: {e}");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::model::testing::n as name;
    use crate::plan::documents::to_document_texts;
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
}
