//! The node reconciler: keeps this node's resources where the domain wants
//! them.
//!
//! It is level-triggered, in the kube-rs sense: it never acts on events,
//! only on the whole desired state ([`Desired`]: the applied configuration
//! and the groups placed here) compared with what actually runs. Start-up,
//! a configuration change, a failover to this node and a local restart are
//! the same loop. Running it twice does nothing the second time.
//!
//! Shape: one task for the node and one task per group. The node task turns
//! each new [`Desired`] into a [`Want`] per group; a group task brings its
//! group online in dependency order (data sources → IP addresses → node alias
//! → module → services → processes), keeps it there, and takes it offline in
//! reverse order. Per-group tasks keep one slow group (a process that ignores
//! SIGTERM, a probe at its timeout) from delaying the others.
//!
//! Failures: a resource that dies or fails its probe gets the group
//! restarted (stopped in reverse order, started again) up to
//! `restart.limit` times within the sliding `restart.window`; one more
//! failure marks the group [`GroupState::Failed`] and leaves it offline here.
//! The caller reads that from [`NodeReport`] and has the leader move the
//! group. A driver that cannot work on this node at all
//! ([`crate::drivers::DriverError::is_permanent`]) fails the group at once: restarting would
//! only delay the failover. A Failed group stays so until its spec changes or
//! it is placed elsewhere.
//!
//! Agent restarts: processes record themselves under `<data_dir>/run/`; on
//! start-up, a group still placed here adopts its processes that still run
//! from the same spec (see `crate::drivers::process`) and the mounts and OCF
//! resources its spec still names, and releases the rest before it starts;
//! everything recorded for groups not placed here is stopped. So the first [`Desired`]
//! must be the real one (the placement the agent persisted), not an empty
//! placeholder, or a restart would stop what it should adopt.
//!
//! Files: this one holds what callers see ([`Desired`], [`Options`],
//! [`spawn`]); `node` is the node task, `group` the per-group task.

mod group;
mod node;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::warn;

use crate::agent::failover::guard::Lease;
use crate::drivers::GroupContext;
use crate::drivers::datasource::DataSources;
use crate::drivers::process::ExecGate;
use crate::model::{Config, Name, ResourceGroupSpec};
use crate::wire::NodeReport;

use node::NodeLoop;

/// What this node should run, as decided by the domain.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// The configuration generation this placement belongs to.
    pub generation: u64,
    /// The applied configuration.
    pub config: Arc<Config>,
    /// The groups placed on this node. Names absent from `config` are ignored.
    pub groups_here: BTreeSet<Name>,
}

/// How the reconciler runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// This node's name (`ASCTL_NODE` of the processes).
    pub node: Name,
    /// Where logs (`logs/<group>/<process>.log`) and pid files (`run/`) go.
    pub data_dir: PathBuf,
    /// The program a process command `asctl` runs (the agent passes its own
    /// executable); `None` leaves it to `PATH`.
    pub asctl_exe: Option<PathBuf>,
    /// The `systemctl` program for services.
    pub systemctl: PathBuf,
    /// The `fsck` program for mount points.
    pub fsck: PathBuf,
    /// How often running groups are checked (process alive, probes due).
    pub tick: Duration,
    /// The node's lease (`crate::agent::failover::guard`): while it is not valid, no group
    /// starts and running groups are left alone (the guard may have fenced
    /// them; the agent's fence takes them offline). `None`: no lease.
    pub lease: Option<Arc<Lease>>,
}

impl Options {
    pub fn new(node: Name, data_dir: PathBuf) -> Self {
        Options {
            node,
            data_dir,
            asctl_exe: None,
            systemctl: PathBuf::from("systemctl"),
            fsck: PathBuf::from("fsck"),
            tick: Duration::from_millis(250),
            lease: None,
        }
    }

    fn group_context(&self, group: &Name) -> GroupContext {
        GroupContext {
            node: self.node.clone(),
            group: group.clone(),
            data_dir: self.data_dir.clone(),
            asctl_exe: self.asctl_exe.clone(),
            systemctl: self.systemctl.clone(),
            fsck: self.fsck.clone(),
            // The agent's own executable is the gate; its lease, the check.
            exec_gate: self.asctl_exe.clone().map(|exe| {
                let lease = self.lease.clone();
                ExecGate {
                    exe,
                    may_start: Arc::new(move || lease.as_ref().is_none_or(|l| l.may_start())),
                }
            }),
        }
    }
}

/// The running reconciler.
#[derive(Debug)]
pub struct ReconcilerHandle {
    /// The latest report; `changed()` wakes on every state change.
    pub reports: watch::Receiver<NodeReport>,
    stop: oneshot::Sender<bool>,
    task: JoinHandle<()>,
}

impl ReconcilerHandle {
    /// Stops the reconciler. Unless `leave_running`, every group goes offline
    /// first (reverse order); with it, processes keep running for the next
    /// agent run to adopt.
    pub async fn shutdown(self, leave_running: bool) {
        // The task may already be gone (panicked); then there is nothing to tell.
        let _ = self.stop.send(leave_running);
        if let Err(e) = self.task.await {
            warn!("the node reconciler ended abnormally: {e}");
        }
    }
}

/// The channel a reconciler of `node` reports on, for a caller that needs
/// the receiving end before the reconciler starts.
pub fn report_channel(node: &Name) -> (watch::Sender<NodeReport>, watch::Receiver<NodeReport>) {
    watch::channel(NodeReport {
        node: node.clone(),
        generation_seen: 0,
        groups: BTreeMap::new(),
        taken_over: BTreeMap::new(),
        failed_peers: Default::default(),
        alive_peers: Default::default(),
    })
}

/// Starts the reconciler for this node. It acts on every new value of
/// `desired` and re-checks on its own at every tick.
pub fn spawn(opts: Options, desired: watch::Receiver<Desired>) -> ReconcilerHandle {
    let (report, _) = report_channel(&opts.node);
    spawn_reporting_to(opts, desired, report)
}

/// [`spawn`], reporting on a channel of [`report_channel`].
pub fn spawn_reporting_to(
    opts: Options,
    desired: watch::Receiver<Desired>,
    report: watch::Sender<NodeReport>,
) -> ReconcilerHandle {
    let reports = report.subscribe();
    let (stop, stop_rx) = oneshot::channel();
    let node = NodeLoop {
        opts: Arc::new(opts),
        report: Arc::new(report),
        workers: BTreeMap::new(),
    };
    // Ends only when told to (its handle's shutdown): a panic is the death.
    let task = crate::agent::vital::spawn_may_end("reconciler", node.run(desired, stop_rx));
    ReconcilerHandle {
        reports,
        stop,
        task,
    }
}

/// What the node task asks of one group task.
#[derive(Debug, Clone, PartialEq)]
enum Want {
    /// Online with this spec, using these data sources (resolved from the
    /// configuration, so that a changed data source restarts the group).
    Online(Arc<ResourceGroupSpec>, Arc<DataSources>),
    /// Offline, then the task ends — unless storage could not be released:
    /// then the task stays and retries.
    Offline,
    /// Offline, then the task ends in any case (agent shutdown).
    Shutdown,
    /// End the task and leave everything running (agent shutdown with
    /// `leave_running`).
    Abandon,
}
