//! What flows to and from the node reconciler: the groups it should run
//! (the committed placement under the failover policy's [`Clearance`]), and
//! its reports to the leader.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::agent::execution::reconciler::Desired;
use crate::agent::failover::journal::Journal;
use crate::agent::failover::policy;
use crate::agent::failover::takeover::{self, Clearance};
use crate::agent::metrics::Metrics;
use crate::domain::network::{self, Inbound};
use crate::domain::{Command, DomainState, Replica};
use crate::model::Name;
use crate::wire::NodeReport;

/// Until the reconciler may start: caught up with the domain
/// ([`policy::wait_caught_up`]), and with two nodes, the peer heard since this
/// agent started or down ([`Clearance::settled`]): what the peer runs by
/// takeover is known only from its packets, and the reconciler (which also
/// adopts what an earlier run left running) must not start from a stale
/// placement before it knows.
pub(super) async fn wait_to_reconcile(domain: &Replica, clearance: &watch::Receiver<Clearance>) {
    // Two nodes with the peer down have no leader to catch up with: the
    // survivor of a crash that came while its own agent restarted takes
    // over at once instead of after the catch-up wait's give-up (10 s).
    let mut alone = clearance.clone();
    tokio::select! {
        () = policy::wait_caught_up(domain) => {}
        Ok(_) = alone.wait_for(|g| g.alone) => {
            info!("the peer is down and this node is not isolated: not waiting for a leader");
        }
    }
    let mut settled = clearance.clone();
    if tokio::time::timeout(
        policy::catch_up_grace(domain),
        settled.wait_for(|g| g.settled),
    )
    .await
    .is_err()
    {
        warn!("the failure detector has not settled; starting the reconciler anyway");
    }
}

/// What the reconciler of `node` should run in `state`: its groups and
/// takeovers ([`takeover::groups_here`]), nothing while the node is fenced
/// (isolated, out of quorum, or just back from a freeze or a lapse).
pub(super) fn desired(
    state: &DomainState,
    node: &Name,
    clearance: &Clearance,
    lapsed: bool,
    report: &NodeReport,
) -> Desired {
    let clearance = Clearance {
        fenced: clearance.fenced || lapsed,
        ..clearance.clone()
    };
    Desired {
        generation: state.generation,
        config: state.config().unwrap_or_default(),
        groups_here: takeover::groups_here(state, node, &clearance, report),
    }
}

/// What, besides the committed state, decides what the reconciler runs.
pub(super) struct FeedInputs {
    pub(super) clearance: watch::Receiver<Clearance>,
    pub(super) lapse: watch::Receiver<bool>,
    /// Read, not waited on: what runs now, for the hold.
    pub(super) reports: watch::Receiver<NodeReport>,
}

/// Hands every new committed state to the reconciler, when it changes what
/// this node should run.
pub(super) async fn feed_reconciler(
    domain: Replica,
    node: Name,
    tx: watch::Sender<Desired>,
    mut inputs: FeedInputs,
    mut stop: watch::Receiver<bool>,
) {
    let mut applied = domain.applied.clone();
    loop {
        tokio::select! {
            r = applied.changed() => if r.is_err() { return },
            r = inputs.clearance.changed() => if r.is_err() { return },
            r = inputs.lapse.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
        let (state, index) = {
            let a = applied.borrow_and_update();
            (a.state.clone(), a.index)
        };
        let clearance = inputs.clearance.borrow_and_update().clone();
        let lapsed = *inputs.lapse.borrow_and_update();
        let report = inputs.reports.borrow().clone();
        let next = desired(&state, &node, &clearance, lapsed, &report);
        tx.send_if_modified(|cur| {
            let same = cur.generation == next.generation && cur.groups_here == next.groups_here;
            if !same {
                // What this node runs and why, for the operator and for
                // reading a chaos run's logs side by side.
                info!(
                    groups = ?next.groups_here,
                    applied_index = index,
                    fenced = clearance.fenced || lapsed,
                    taken = ?clearance.taken.keys().collect::<Vec<_>>(),
                    "groups wanted here"
                );
                *cur = next;
            }
            !same
        });
    }
}

/// Sends this node's report to the leader on every change and at least
/// once per period, which is how the leader knows the node is alive.
pub(super) async fn send_reports(
    members: Inbound,
    metrics: Arc<Metrics>,
    journal: Journal,
    mut reports: watch::Receiver<NodeReport>,
    mut clearance: watch::Receiver<Clearance>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let timeout = members
            .domain
            .state()
            .heartbeat()
            .unwrap_or_default()
            .timeout;
        let period = timeout.get().min(Duration::from_secs(1));
        let mut report = reports.borrow_and_update().clone();
        report.taken_over = clearance.borrow_and_update().taken.clone();
        report.failed_peers = metrics.failed_peers();
        report.alive_peers = metrics.alive_peers();
        // Not delivered (no leader yet, or the one this member knows just
        // died): try again soon, not a whole period later — a new leader
        // decides on this report's verdicts (`policy::disputed`), and waiting a
        // period cost a leader's crash 2 s of failover.
        let node = report.node.clone();
        let wait = match network::inbound::deliver_report(&members, report).await {
            Ok(()) => {
                submit_fencings(&members.domain, &node, &journal).await;
                period
            }
            Err(e) => {
                tracing::debug!("report not delivered: {e}");
                Duration::from_millis(100)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            r = reports.changed() => if r.is_err() { return },
            r = clearance.changed() => if r.is_err() { return },
            // A peer failed or came back: the verdict goes out now.
            () = metrics.peers_changed.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

/// Submits the fences this node recorded while it could not commit
/// ([`Journal`]) that the domain's history does not have yet. Called once a
/// report reached the leader, so the domain is in contact; bounded, so a
/// leader lost meanwhile delays the next report by little. Whatever is not
/// committed now goes with the next report.
async fn submit_fencings(domain: &Replica, node: &Name, journal: &Journal) {
    let seen = domain
        .state()
        .self_fencings_seen
        .get(node)
        .copied()
        .unwrap_or(0);
    let fencings = journal.after(seen);
    if fencings.is_empty() {
        return;
    }
    let cmd = Command::SelfFenced {
        node: node.clone(),
        fencings,
    };
    match tokio::time::timeout(SUBMIT_WAIT, domain.write(cmd)).await {
        Ok(Ok(_)) => info!("the fences recorded while out of contact are in the domain's history"),
        Ok(Err(e)) => warn!("cannot submit the fencing journal yet: {e}"),
        Err(_) => warn!("cannot submit the fencing journal yet: no answer within {SUBMIT_WAIT:?}"),
    }
}

/// How long one submission of the fencing journal may take.
const SUBMIT_WAIT: Duration = Duration::from_secs(2);
