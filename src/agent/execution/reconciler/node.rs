//! The node task: turns each [`Desired`] into a [`Want`] per group and owns
//! the group tasks.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::group::GroupWorker;
use super::{Desired, Options, Want};
use crate::drivers;
use crate::model::Name;
use crate::wire::{GroupState, LocalGroupStatus, NodeReport};

pub(super) struct Worker {
    want: watch::Sender<Want>,
    task: JoinHandle<()>,
}

pub(super) struct NodeLoop {
    pub(super) opts: Arc<Options>,
    pub(super) report: Arc<watch::Sender<NodeReport>>,
    pub(super) workers: BTreeMap<Name, Worker>,
}

/// The change from `old` to `new` stops what runs: a restart (a spec
/// change that needs one, other data sources) or offline.
fn stops_what_runs(old: &Want, new: &Want) -> bool {
    match (old, new) {
        (Want::Online(a, sa), Want::Online(b, sb)) => {
            sa != sb || (a != b && crate::plan::needs_restart(a, b))
        }
        (Want::Online(..), Want::Offline) => true,
        _ => false,
    }
}

impl NodeLoop {
    pub(super) async fn run(
        mut self,
        mut desired: watch::Receiver<Desired>,
        mut stop: oneshot::Receiver<bool>,
    ) {
        // Groups recorded by a previous agent run get a task on the first
        // pass, so that what runs for them is adopted or stopped.
        let mut recorded: BTreeSet<Name> = drivers::process::recorded_groups(&self.opts.data_dir)
            .into_iter()
            .collect();
        recorded.extend(
            drivers::storage::records::recorded_groups(&self.opts.data_dir)
                .into_iter()
                .chain(drivers::ocf::records::recorded_groups(&self.opts.data_dir))
                .filter_map(|g| g.parse::<Name>().ok()),
        );
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
                let mut leaving = false;
                w.want.send_if_modified(|cur| {
                    let changed = *cur != want;
                    leaving = changed && stops_what_runs(cur, &want);
                    *cur = want;
                    changed
                });
                if leaving {
                    self.mark_stopping(name);
                }
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
                            unclean: None,
                            fatal: false,
                            errors: BTreeMap::new(),
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

    /// Reports `name` stopping at once, before `generation_seen` moves on:
    /// its task acts on the new want a moment later, and until then the
    /// report must not say "online, generation seen" of what is about to
    /// restart or stop, or `apply` would count it converged.
    fn mark_stopping(&self, name: &Name) {
        self.report.send_if_modified(|r| {
            let Some(g) = r.groups.get_mut(name) else {
                return false;
            };
            if !matches!(g.state, GroupState::Online | GroupState::Starting) {
                return false;
            }
            g.state = GroupState::Stopping;
            g.since = SystemTime::now();
            true
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
            unclean: Default::default(),
            fatal: false,
            errors: BTreeMap::new(),
        };
        let task = tokio::spawn(worker.run());
        self.workers.insert(name.clone(), Worker { want: tx, task });
    }

    async fn shutdown(&mut self, leave_running: bool) {
        info!(leave_running, "node reconciler shutting down");
        let want = if leave_running {
            Want::Abandon
        } else {
            Want::Shutdown
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
