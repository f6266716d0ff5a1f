//! The tasks a node runs besides its member of the domain (the witness runs
//! none): the lease guard, the failover policy, and the node reconciler with
//! its feed and report sender — started in an order that never lets a group
//! run unfenced, and stopped by one [`NodeTasks::stop`].

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::{AgentError, FAILED_TASK_WAIT, Shutdown, feed, io_error, settle};
use crate::agent::detection::packet::DomainKey;
use crate::agent::execution::reconciler::{self, Options, ReconcilerHandle};
use crate::agent::failover::guard::{self, Guard};
use crate::agent::failover::journal::Journal;
use crate::agent::failover::policy::{self, DetectorHealth, PolicyContext};
use crate::agent::failover::takeover::Clearance;
use crate::agent::metrics::Metrics;
use crate::agent::vital;
use crate::domain::Replica;
use crate::domain::network::Inbound;
use crate::model::Name;

/// What a node's tasks start from.
pub(super) struct NodeStart {
    pub(super) node: Name,
    pub(super) data_dir: PathBuf,
    pub(super) domain: Replica,
    pub(super) key: DomainKey,
    pub(super) metrics: Arc<Metrics>,
    pub(super) health: Arc<DetectorHealth>,
    pub(super) members: Inbound,
    /// Set when the agent stops: every task below ends on it.
    pub(super) stop: watch::Receiver<bool>,
}

/// The tasks a node runs besides the domain member, started in this order
/// and stopped, by [`NodeTasks::stop`], in an order that never leaves a
/// group running unfenced.
pub(super) struct NodeTasks {
    /// Where a fail-stop is recorded, with what ran here then.
    journal: Journal,
    reports: watch::Receiver<crate::wire::NodeReport>,
    /// The lease guard's renewal; told to stop last.
    guard_stop: watch::Sender<bool>,
    guard: JoinHandle<Guard>,
    /// Holds the node fenced after its lease lapsed, until caught up.
    lapse: JoinHandle<()>,
    /// The failover policy with the heartbeats and failure detector.
    policy: JoinHandle<()>,
    /// `None` when a stop came before the reconciler could start.
    reconciling: Option<Reconciling>,
}

/// The node reconciler with the task that feeds it and the one that
/// sends its reports.
struct Reconciling {
    reconciler: ReconcilerHandle,
    feed: JoinHandle<()>,
    reports: JoinHandle<()>,
}

impl NodeTasks {
    pub(super) async fn start(s: NodeStart, shutdown: &Shutdown) -> Result<NodeTasks, AgentError> {
        // The guard runs before anything is started, so nothing runs
        // unfenced; no guard, no groups.
        let exe = std::env::current_exe().map_err(io_error("finding the agent's executable"))?;
        let guard = Guard::start(exe.clone(), s.data_dir.clone())
            .await
            .map_err(io_error("starting the lease guard"))?;
        let lease = guard.lease.clone();
        // Renewed until the very end of a graceful stop, not just until the
        // stop begins: a slow graceful stop must not be cut short by a fence.
        let (guard_stop, guard_stop_rx) = watch::channel(false);
        let guard = vital::spawn("lease renewal", guard.run(s.domain.clone(), guard_stop_rx));
        let (clearance_tx, clearance_rx) = watch::channel(Clearance::default());
        let (lapse_tx, lapse_rx) = watch::channel(false);
        let lapse = vital::spawn(
            "lease lapse",
            guard::hold_after_lapse(
                lease.clone(),
                s.domain.clone(),
                lapse_tx,
                clearance_rx.clone(),
                s.stop.clone(),
            ),
        );
        // Heartbeats and the failure detector run from the replayed state
        // at once, not after the catch-up below: a restarted agent that
        // stayed silent through it would be declared failed by its peers,
        // and its groups (left running for it to adopt) moved away.
        let (report_tx, report_rx) = reconciler::report_channel(&s.node);
        let policy = vital::spawn(
            "failover policy",
            policy::run(
                PolicyContext {
                    domain: s.domain.clone(),
                    node: s.node.clone(),
                    key: s.key.clone(),
                    metrics: s.metrics.clone(),
                    health: s.health.clone(),
                    clearance: clearance_tx,
                    reports: report_rx.clone(),
                    journal: Journal::new(&s.data_dir),
                },
                s.stop.clone(),
            ),
        );
        // Groups start only from a current placement
        // ([`policy::wait_caught_up`]). The guard is already running: an
        // agent frozen while it waits here comes back with stale metrics
        // that look caught up, and only the lease notices the gap. A stop
        // asked for during the wait (or before) starts nothing.
        let journal = Journal::new(&s.data_dir);
        let may_start = !shutdown.is_requested()
            && tokio::select! {
                () = feed::wait_to_reconcile(&s.domain, &clearance_rx) => true,
                () = shutdown.requested() => false,
            };
        let reconciling = may_start.then(|| {
            let mut ropts = Options::new(s.node.clone(), s.data_dir.clone());
            ropts.asctl_exe = Some(exe);
            ropts.lease = Some(lease);
            Reconciling::start(s, ropts, report_tx, clearance_rx, lapse_rx)
        });
        Ok(NodeTasks {
            journal,
            reports: report_rx,
            guard_stop,
            guard,
            lapse,
            policy,
            reconciling,
        })
    }

    /// Once the agent's stop signal went out: the reconciler's feeders end,
    /// the groups go offline (or are left running for the next agent), and
    /// only then may the guard go without fencing.
    ///
    /// After a fatal failure (`fatal`) the guard fences first — it kills
    /// the node's processes and removes its addresses now, from its own
    /// process, whichever task is stuck — then the fail-stop is recorded in
    /// the fencing journal, and the rest is waited for only
    /// [`FAILED_TASK_WAIT`] each. If the lease renewal itself is the stuck
    /// task, no renewal follows and the guard fences when the lease runs
    /// out, as for a frozen agent.
    /// This node's reports (the last one is what ran here).
    pub(super) fn reports(&self) -> watch::Receiver<crate::wire::NodeReport> {
        self.reports.clone()
    }

    pub(super) async fn stop(self, leave_running: bool, fatal: Option<&AgentError>) {
        let failed = fatal.is_some();
        let mut guard = Some(self.guard);
        if let Some(cause) = fatal {
            // What ran here, read before the fence changes it.
            let held = policy::held_groups(&self.reports.borrow());
            let _ = self.guard_stop.send(true);
            if let Some(Some(g)) = settle_opt(guard.take(), failed).await {
                g.fence().await;
                info!("the lease guard fenced this node's groups");
            }
            journal_fail_stop(self.journal.clone(), held, cause).await;
        }
        let reconciler = match self.reconciling {
            Some(r) => {
                let _ = settle(r.feed, failed).await;
                let _ = settle(r.reports, failed).await;
                Some(r.reconciler)
            }
            None => None,
        };
        let _ = settle(self.policy, failed).await;
        let _ = settle(self.lapse, failed).await;
        if let Some(rec) = reconciler {
            let offline = rec.shutdown(leave_running && !failed);
            if failed {
                let _ = tokio::time::timeout(FAILED_TASK_WAIT, offline).await;
            } else {
                offline.await;
            }
        }
        let _ = self.guard_stop.send(true);
        if let Some(Some(g)) = settle_opt(guard, failed).await {
            g.detach().await;
        }
    }
}

/// Records a fail-stop, and the groups it fenced, in the fencing journal,
/// for the domain's history (the node's next agent submits it). After the
/// fence, not before: the journal is on the data disk, which a storage
/// failure may have left hung, so the write is not waited for past
/// [`FAILED_TASK_WAIT`].
async fn journal_fail_stop(journal: Journal, groups: Vec<Name>, cause: &AgentError) {
    if groups.is_empty() {
        return;
    }
    let cause = format!("fail-stop: {cause}");
    let write = tokio::task::spawn_blocking(move || {
        let now = std::time::SystemTime::now();
        journal.record(now, now, &cause, groups)
    });
    match tokio::time::timeout(FAILED_TASK_WAIT, write).await {
        Ok(Ok(Ok(_))) => {}
        Ok(Ok(Err(e))) => warn!("cannot write the fencing journal: {e}"),
        Ok(Err(e)) => warn!("cannot write the fencing journal: {e}"),
        Err(_) => warn!(
            "the fencing journal was not written within {FAILED_TASK_WAIT:?} (a hung data disk?); leaving it"
        ),
    }
}

async fn settle_opt<T>(task: Option<JoinHandle<T>>, failed: bool) -> Option<Option<T>> {
    match task {
        Some(t) => Some(settle(t, failed).await),
        None => None,
    }
}

impl Reconciling {
    fn start(
        s: NodeStart,
        ropts: Options,
        report_tx: watch::Sender<crate::wire::NodeReport>,
        clearance: watch::Receiver<Clearance>,
        lapse: watch::Receiver<bool>,
    ) -> Reconciling {
        let first = feed::desired(
            &s.domain.state(),
            &s.node,
            &clearance.borrow(),
            *lapse.borrow(),
            &report_tx.borrow(),
        );
        info!(groups = ?first.groups_here, "groups wanted here at start");
        let (desired_tx, desired_rx) = watch::channel(first);
        let reconciler = reconciler::spawn_reporting_to(ropts, desired_rx, report_tx);
        let feed = vital::spawn(
            "reconciler feed",
            feed::feed_reconciler(
                s.domain.clone(),
                s.node.clone(),
                desired_tx,
                feed::FeedInputs {
                    clearance: clearance.clone(),
                    lapse,
                    reports: reconciler.reports.clone(),
                },
                s.stop.clone(),
            ),
        );
        let reports = vital::spawn(
            "report sender",
            feed::send_reports(
                s.members,
                s.metrics,
                Journal::new(&s.data_dir),
                reconciler.reports.clone(),
                clearance,
                s.stop,
            ),
        );
        Reconciling {
            reconciler,
            feed,
            reports,
        }
    }
}
