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
//! from the same spec (see `crate::drivers::process`), and everything
//! recorded for groups not placed here is stopped. So the first [`Desired`]
//! must be the real one (the placement the agent persisted), not an empty
//! placeholder, or a restart would stop what it should adopt.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::drivers::datasource::DataSources;
use crate::drivers::process::StartGate;
use crate::drivers::{self, GroupContext, Health, Resource};
use crate::model::{Config, Name, ResourceGroupSpec};
use crate::wire::{GroupState, LocalGroupStatus, NodeReport};

use crate::agent::failover::guard::Lease;

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
            // The agent's own executable is the gate; its lease, the check.
            start_gate: self.asctl_exe.clone().map(|exe| {
                let lease = self.lease.clone();
                StartGate {
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
    /// Offline, then the task ends.
    Offline,
    /// End the task and leave everything running (agent shutdown with
    /// `leave_running`).
    Abandon,
}

struct Worker {
    want: watch::Sender<Want>,
    task: JoinHandle<()>,
}

struct NodeLoop {
    opts: Arc<Options>,
    report: Arc<watch::Sender<NodeReport>>,
    workers: BTreeMap<Name, Worker>,
}

impl NodeLoop {
    async fn run(
        mut self,
        mut desired: watch::Receiver<Desired>,
        mut stop: oneshot::Receiver<bool>,
    ) {
        // Groups recorded by a previous agent run get a task on the first
        // pass, so that what runs for them is adopted or stopped.
        let mut recorded: BTreeSet<Name> = drivers::process::recorded_groups(&self.opts.data_dir)
            .into_iter()
            .collect();
        // Managed addresses an earlier run added for groups that are not
        // placed here now (it stopped with --leave-running, and the group
        // moved meanwhile): nobody else would ever remove them.
        let keep: BTreeSet<IpAddr> = {
            let d = desired.borrow();
            d.groups_here
                .iter()
                .filter_map(|g| d.config.groups.get(g.as_str()))
                .flat_map(|g| g.spec.ip_addresses.iter().map(|ip| ip.address.addr()))
                .collect()
        };
        for address in drivers::ip::remove_recorded_except(&self.opts.data_dir, &keep).await {
            info!(%address, "removed a managed address an earlier run left for a group not placed here");
        }
        let mut desired_open = true;
        let pulse = crate::agent::vital::pulse("reconciler", self.opts.tick * 2);
        loop {
            pulse.beat();
            let current = desired.borrow_and_update().clone();
            self.pass(&current, &std::mem::take(&mut recorded));
            tokio::select! {
                changed = desired.changed(), if desired_open => {
                    // The owner went away: keep things as they are until shutdown.
                    desired_open = changed.is_ok();
                }
                () = tokio::time::sleep(self.opts.tick * 2) => {}
                leave_running = &mut stop => {
                    // A dropped handle means nobody can ask for anything else:
                    // take the safe way and leave the groups running.
                    self.shutdown(leave_running.unwrap_or(true)).await;
                    return;
                }
            }
        }
    }

    /// One level-triggered pass: compute each group's want and hand it over.
    fn pass(&mut self, desired: &Desired, recorded: &BTreeSet<Name>) {
        self.workers.retain(|_, w| !w.task.is_finished());
        let config = &desired.config;
        let mut names: BTreeSet<Name> = config.groups.iter().map(|g| g.name().clone()).collect();
        names.extend(self.workers.keys().cloned());
        names.extend(recorded.iter().cloned());
        // Groups that left the configuration stay in the report until their
        // task has taken them offline; then their entry goes.
        names.extend(self.report.borrow().groups.keys().cloned());

        for name in &names {
            let spec = config.groups.get(name.as_str()).map(|g| &g.spec);
            let want = match spec {
                Some(spec) if desired.groups_here.contains(name) => Want::Online(
                    Arc::new(spec.clone()),
                    Arc::new(drivers::datasource::resolve(config, spec)),
                ),
                _ => Want::Offline,
            };
            if let Some(w) = self.workers.get(name) {
                w.want.send_if_modified(|cur| {
                    let changed = *cur != want;
                    *cur = want;
                    changed
                });
            } else if matches!(want, Want::Online(..))
                || recorded.contains(name)
                || self.reported_active(name)
            {
                // Also when the report says something may run without a task
                // to own it (that task panicked): a new one adopts or stops it.
                self.spawn_worker(name, want);
            } else if spec.is_some() {
                self.report.send_if_modified(|r| {
                    let fresh = !r.groups.contains_key(name);
                    r.groups
                        .entry(name.clone())
                        .or_insert_with(|| LocalGroupStatus {
                            state: GroupState::Offline,
                            since: SystemTime::now(),
                            restarts: 0,
                            message: None,
                        });
                    fresh
                });
            } else {
                self.report
                    .send_if_modified(|r| r.groups.remove(name).is_some());
            }
        }
        self.report.send_if_modified(|r| {
            let changed = r.generation_seen != desired.generation;
            r.generation_seen = desired.generation;
            changed
        });
    }

    fn reported_active(&self, name: &Name) -> bool {
        self.report
            .borrow()
            .groups
            .get(name)
            .is_some_and(|g| g.state != GroupState::Offline)
    }

    fn spawn_worker(&mut self, name: &Name, want: Want) {
        let (tx, rx) = watch::channel(want);
        let worker = GroupWorker {
            ctx: self.opts.group_context(name),
            tick: self.opts.tick,
            lease: self.opts.lease.clone(),
            want: rx,
            report: Arc::clone(&self.report),
            running: None,
            failed: None,
            sources: Arc::default(),
            recent_restarts: VecDeque::new(),
            restarts: 0,
        };
        let task = tokio::spawn(worker.run());
        self.workers.insert(name.clone(), Worker { want: tx, task });
    }

    async fn shutdown(&mut self, leave_running: bool) {
        info!(leave_running, "node reconciler shutting down");
        let want = if leave_running {
            Want::Abandon
        } else {
            Want::Offline
        };
        for w in self.workers.values() {
            w.want.send_replace(want.clone());
        }
        // Groups stop side by side; each one in reverse order.
        for (name, w) in std::mem::take(&mut self.workers) {
            if let Err(e) = w.task.await {
                warn!(group = %name, "group task ended abnormally: {e}");
            }
        }
    }
}

/// The group's resources while it is (being) online.
struct RunningGroup {
    spec: Arc<ResourceGroupSpec>,
    sources: Arc<DataSources>,
    resources: Vec<Resource>,
}

struct GroupWorker {
    ctx: GroupContext,
    tick: Duration,
    lease: Option<Arc<Lease>>,
    want: watch::Receiver<Want>,
    report: Arc<watch::Sender<NodeReport>>,
    running: Option<RunningGroup>,
    /// The spec that failed here; the group stays Failed while it is wanted
    /// with this same spec.
    failed: Option<(Arc<ResourceGroupSpec>, Arc<DataSources>)>,
    /// The data sources of the latest want.
    sources: Arc<DataSources>,
    /// Restarts inside the current `restart.window`.
    recent_restarts: VecDeque<Instant>,
    restarts: u32,
}

impl GroupWorker {
    async fn run(mut self) {
        loop {
            let want = self.want.borrow_and_update().clone();
            match want {
                Want::Abandon => return,
                Want::Offline => {
                    self.go_offline().await;
                    return;
                }
                Want::Online(spec, sources) => self.keep_online(spec, sources).await,
            }
            tokio::select! {
                changed = self.want.changed() => {
                    if changed.is_err() {
                        // The node task is gone; leave things as they are.
                        return;
                    }
                }
                () = tokio::time::sleep(self.tick) => {}
            }
        }
    }

    /// One step towards "online with this spec": start, restart on a spec
    /// change, or check what runs.
    async fn keep_online(&mut self, spec: Arc<ResourceGroupSpec>, sources: Arc<DataSources>) {
        if self.lease.as_ref().is_some_and(|l| !l.may_start()) {
            // The agent was frozen or starved long enough for the guard to
            // fence this node, and the group may be starting elsewhere: do
            // nothing (a restart here would be a second copy) until the fence
            // takes the group offline or the node has caught up.
            return;
        }
        self.sources = sources;
        if let Some((failed, failed_sources)) = &self.failed {
            if *failed == spec && *failed_sources == self.sources {
                return;
            }
            // A new spec deserves a fresh start: the operator changed something.
            self.failed = None;
            self.recent_restarts.clear();
        }
        if let Some(run) = &mut self.running {
            // Placement-only changes (preferred nodes, failback, restart
            // policy) take effect without a restart: the same rule `plan`
            // uses to predict, so the plan is what happens.
            if run.spec != spec && !crate::plan::needs_restart(&run.spec, &spec) {
                run.spec = spec.clone();
            }
        }
        if let Some(run) = &self.running {
            if run.spec != spec || run.sources != self.sources {
                info!(group = %self.ctx.group, "spec changed; restarting the group");
                self.set(
                    GroupState::Stopping,
                    Some("restarting: the spec changed".into()),
                );
                if let Some(err) = self.stop_all().await {
                    warn!(group = %self.ctx.group, "{err}");
                }
            }
        }
        let Some(run) = &mut self.running else {
            self.start(spec).await;
            return;
        };
        let health = tokio::select! {
            h = check_all(&mut run.resources) => h,
            // A new want is acted on at once rather than after a slow probe.
            _ = self.want.changed() => return,
        };
        match health {
            Health::Healthy => self.set(GroupState::Online, None),
            Health::Unhealthy(why) => {
                warn!(group = %self.ctx.group, "{why}");
                self.set(GroupState::Stopping, Some(why.clone()));
                let why = match self.stop_all().await {
                    Some(err) => format!("{why}; {err}"),
                    None => why,
                };
                self.on_failure(&spec, why, false);
            }
        }
    }

    async fn start(&mut self, spec: Arc<ResourceGroupSpec>) {
        let message = self.current().and_then(|s| s.message);
        self.set(GroupState::Starting, message);
        // Processes a previous agent run recorded and this spec no longer has.
        let keep: BTreeSet<Name> = spec.processes.iter().map(|p| p.name.clone()).collect();
        for e in drivers::process::stop_stale(&self.ctx, &keep).await {
            warn!(group = %self.ctx.group, "{e}");
        }
        let sources = Arc::clone(&self.sources);
        let mut resources = Resource::for_group(&self.ctx, &spec, &sources);
        for i in 0..resources.len() {
            if let Err(e) = resources[i].start().await {
                let why = format!("{}: {e}", resources[i].label());
                warn!(group = %self.ctx.group, "cannot start {why}");
                // Including the one that failed: it may be half started.
                let mut started: Vec<Resource> = resources.drain(..=i).collect();
                let why = match stop_resources(&mut started).await {
                    Some(err) => format!("{why}; {err}"),
                    None => why,
                };
                self.on_failure(&spec, why, e.is_permanent());
                return;
            }
        }
        info!(group = %self.ctx.group, "group online");
        self.running = Some(RunningGroup {
            spec,
            sources,
            resources,
        });
        self.set(GroupState::Online, None);
    }

    /// After a failure (everything already stopped): restart within the
    /// policy, or give up on this node.
    fn on_failure(&mut self, spec: &Arc<ResourceGroupSpec>, why: String, permanent: bool) {
        let policy = &spec.restart;
        let now = Instant::now();
        let used = restarts_in_window(&mut self.recent_restarts, now, policy.window.get());
        if permanent || used >= policy.limit {
            let why = if permanent {
                why
            } else {
                format!(
                    "{why} (restart limit reached: {} in {})",
                    policy.limit, policy.window
                )
            };
            warn!(group = %self.ctx.group, "group failed on this node: {why}");
            self.failed = Some((Arc::clone(spec), Arc::clone(&self.sources)));
            self.set(GroupState::Failed, Some(why));
        } else {
            self.recent_restarts.push_back(now);
            self.restarts += 1;
            self.set(
                GroupState::Starting,
                Some(format!(
                    "restart {} of {} in {}: {why}",
                    used + 1,
                    policy.limit,
                    policy.window
                )),
            );
        }
    }

    async fn go_offline(&mut self) {
        let mut message = None;
        if self.running.is_some() {
            self.set(GroupState::Stopping, None);
            message = self.stop_all().await;
        }
        for e in drivers::process::stop_stale(&self.ctx, &BTreeSet::new()).await {
            warn!(group = %self.ctx.group, "{e}");
            message.get_or_insert_with(|| e.to_string());
        }
        if let Some(m) = &message {
            warn!(group = %self.ctx.group, "offline with errors: {m}");
        }
        info!(group = %self.ctx.group, "group offline");
        self.restarts = 0;
        self.recent_restarts.clear();
        self.failed = None;
        self.set(GroupState::Offline, message);
    }

    /// Stops every resource in reverse order; returns the errors, if any.
    async fn stop_all(&mut self) -> Option<String> {
        let mut run = self.running.take()?;
        stop_resources(&mut run.resources).await
    }

    fn current(&self) -> Option<LocalGroupStatus> {
        self.report.borrow().groups.get(&self.ctx.group).cloned()
    }

    /// Records the group's state; `since` moves only when the state does.
    fn set(&self, state: GroupState, message: Option<String>) {
        let restarts = self.restarts;
        self.report.send_if_modified(|r| {
            let now = SystemTime::now();
            let previous = r.groups.get(&self.ctx.group);
            let next = LocalGroupStatus {
                state,
                since: match previous {
                    Some(p) if p.state == state => p.since,
                    _ => now,
                },
                restarts,
                message,
            };
            // A new entry is a change too, even in the state a default would have.
            if previous == Some(&next) {
                return false;
            }
            r.groups.insert(self.ctx.group.clone(), next);
            true
        });
    }
}

/// The first unhealthy resource, if any.
async fn check_all(resources: &mut [Resource]) -> Health {
    for r in resources.iter_mut() {
        if let Health::Unhealthy(why) = r.check().await {
            return Health::Unhealthy(why);
        }
    }
    Health::Healthy
}

/// Stops resources in reverse order, every one even when some fail.
async fn stop_resources(resources: &mut [Resource]) -> Option<String> {
    let mut errors: Vec<String> = Vec::new();
    for r in resources.iter_mut().rev() {
        if let Err(e) = r.stop().await {
            errors.push(format!("cannot stop {}: {e}", r.label()));
        }
    }
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// The restarts of `recent` (oldest first) still inside the sliding
/// `restart.window` at `now`; older ones are dropped: a group that fails
/// now and then, less often than `limit` per window, restarts forever.
fn restarts_in_window(recent: &mut VecDeque<Instant>, now: Instant, window: Duration) -> u32 {
    while recent
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        recent.pop_front();
    }
    u32::try_from(recent.len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_older_than_the_window_drop_out() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut recent: VecDeque<Instant> = [t0, t0 + s(10), t0 + s(50)].into_iter().collect();
        let window = s(60);
        // All three inside the window.
        assert_eq!(restarts_in_window(&mut recent, t0 + s(59), window), 3);
        // Exactly one window after the first: it no longer counts.
        assert_eq!(restarts_in_window(&mut recent, t0 + s(60), window), 2);
        assert_eq!(recent.front(), Some(&(t0 + s(10))));
        assert_eq!(restarts_in_window(&mut recent, t0 + s(109), window), 1);
        assert_eq!(restarts_in_window(&mut recent, t0 + s(200), window), 0);
        assert!(recent.is_empty());
        // A clock reading from before the restarts drops nothing.
        let mut recent: VecDeque<Instant> = [t0 + s(5)].into_iter().collect();
        assert_eq!(restarts_in_window(&mut recent, t0, window), 1);
    }
}
