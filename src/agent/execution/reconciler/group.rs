//! One group's task: brings the group online in dependency order, keeps it
//! there (checks, restarts within the window), takes it offline in reverse.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use super::Want;
use crate::agent::failover::guard::Lease;
use crate::agent::failover::guard_storage;
use crate::drivers::datasource::DataSources;
use crate::drivers::{self, GroupContext, Resource, ResourceHealth};
use crate::model::{Name, ResourceGroupSpec};
use crate::wire::{GroupState, LocalGroupStatus, NodeReport, ResourceError};

/// The group's resources while it is (being) online.
pub(super) struct RunningGroup {
    spec: Arc<ResourceGroupSpec>,
    sources: Arc<DataSources>,
    resources: Vec<Resource>,
}

pub(super) struct GroupWorker {
    pub(super) ctx: GroupContext,
    pub(super) tick: Duration,
    pub(super) lease: Option<Arc<Lease>>,
    pub(super) want: watch::Receiver<Want>,
    pub(super) report: Arc<watch::Sender<NodeReport>>,
    pub(super) running: Option<RunningGroup>,
    /// The spec that failed here; the group stays Failed while it is wanted
    /// with this same spec.
    pub(super) failed: Option<(Arc<ResourceGroupSpec>, Arc<DataSources>)>,
    /// The data sources of the latest want.
    pub(super) sources: Arc<DataSources>,
    /// Restarts inside the current `restart.window`.
    pub(super) recent_restarts: VecDeque<Instant>,
    pub(super) restarts: u32,
    /// Storage whose stop failed: this node may still hold it, so the node
    /// is *unclean* for the group (reported, and the leader places the group
    /// nowhere) until a retried stop succeeds.
    pub(super) unclean: Unclean,
    /// The last failure was fatal ([`crate::drivers::DriverError::is_fatal`]):
    /// reported, so that the group fails everywhere at once.
    pub(super) fatal: bool,
    /// Each resource's last error here, for the report.
    pub(super) errors: BTreeMap<String, ResourceError>,
}

/// The storage resources of a group whose stop failed, and why.
#[derive(Default)]
pub(super) struct Unclean {
    resources: Vec<Resource>,
    cause: Option<String>,
    last_try: Option<Instant>,
}

/// How often a failed storage stop is tried again.
const RELEASE_RETRY: Duration = Duration::from_secs(2);

impl GroupWorker {
    pub(super) async fn run(mut self) {
        loop {
            let want = self.want.borrow_and_update().clone();
            match want {
                Want::Abandon => return,
                Want::Offline if self.unclean.cause.is_some() => {
                    // Still holding storage: the task stays and retries.
                    if self.retry_release().await {
                        return;
                    }
                }
                Want::Offline => {
                    self.go_offline().await;
                    if self.unclean.cause.is_none() {
                        return;
                    }
                }
                Want::Shutdown => {
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
        if !self.retry_release().await {
            // The node may still hold the group's storage: starting here
            // again could not mount it anyway, and the report keeps the
            // group placed nowhere until the release is done.
            return;
        }
        self.sources = sources;
        if let Some((failed, failed_sources)) = &self.failed {
            if *failed == spec && *failed_sources == self.sources {
                return;
            }
            // A new spec deserves a fresh start: the operator changed something.
            self.failed = None;
            self.fatal = false;
            self.recent_restarts.clear();
            self.errors.clear();
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
        if self.running.is_none() {
            self.start(spec).await;
            return;
        }
        self.check_running(&spec).await;
    }

    /// Checks what runs: online once every resource is ready (every probe
    /// passed once), starting until then, a failure when one fails or is
    /// not ready within its start-up grace.
    async fn check_running(&mut self, spec: &Arc<ResourceGroupSpec>) {
        let Some(run) = &mut self.running else { return };
        let (culprit, health) = tokio::select! {
            h = check_all(&mut run.resources) => h,
            // A new want is acted on at once rather than after a slow probe.
            _ = self.want.changed() => return,
        };
        // A new want (the node task may have reported the group stopping
        // for it already) is acted on before anything is reported.
        if self.want.has_changed().unwrap_or(true) && !health.is_unhealthy() {
            return;
        }
        match health {
            ResourceHealth::Healthy => self.set(GroupState::Online, None),
            ResourceHealth::Starting(what) => self.set(GroupState::Starting, Some(what)),
            ResourceHealth::Unhealthy(why) => {
                warn!(group = %self.ctx.group, "{why}");
                let culprit = culprit
                    .and_then(|i| run.resources.get(i))
                    .map(|r| (r.label(), r.failure_details()));
                if let Some((label, details)) = culprit {
                    // The resource's label is the key; its error without it.
                    let error = why.strip_prefix(&format!("{label}: ")).unwrap_or(&why);
                    self.record_error(label, error, details);
                }
                self.set(GroupState::Stopping, Some(why.clone()));
                let why = match self.stop_all().await {
                    Some(err) => format!("{why}; {err}"),
                    None => why,
                };
                let unclean = self.unclean.cause.is_some();
                self.on_failure(spec, why, unclean);
            }
        }
    }

    /// Keeps `error` as the resource's last error, with its driver's details.
    fn record_error(
        &mut self,
        resource: String,
        error: &str,
        details: drivers::process::FailureDetails,
    ) {
        self.errors.insert(
            resource,
            ResourceError {
                at: SystemTime::now(),
                error: error.to_owned(),
                probe: details.probe,
                exit: details.exit,
                log_tail: details.log_tail,
            },
        );
    }

    async fn start(&mut self, spec: Arc<ResourceGroupSpec>) {
        let message = self.current().and_then(|s| s.message);
        self.set(GroupState::Starting, message);
        // Processes a previous agent run recorded and this spec no longer has.
        let keep: BTreeSet<Name> = spec.processes.iter().map(|p| p.name.clone()).collect();
        for e in drivers::process::stop_stale(&self.ctx, &keep).await {
            warn!(group = %self.ctx.group, "{e}");
        }
        // Likewise storage: mounts and OCF resources of data sources and
        // resources the spec no longer has. Those it has are adopted.
        let keep: BTreeSet<Name> = (self.sources.keys())
            .chain(spec.resources.iter().map(|r| &r.name))
            .cloned()
            .collect();
        if let Some(e) = self.release_recorded(&keep).await {
            return self.on_failure(&spec, e, true);
        }
        let sources = Arc::clone(&self.sources);
        let mut resources = Resource::for_group(&self.ctx, &spec, &sources);
        for i in 0..resources.len() {
            if !self.still_wanted(&spec, &sources) {
                // A start can outlast the want that began it (a file system
                // check, a slow agent): meanwhile the node may have fenced
                // itself or the group moved, and the next resource would be
                // a second copy of what another node is starting.
                info!(group = %self.ctx.group, "start abandoned: no longer wanted here as it was");
                return self.abandon(resources.drain(..i).collect()).await;
            }
            let Some(result) = self.start_one(&mut resources[i], &spec, &sources).await else {
                // Fenced, or moved, while this resource was starting: its
                // start is cut short (a file system check killed with its
                // process group) and undone with what started before it.
                let resource = resources[i].label();
                info!(group = %self.ctx.group, %resource, "start cancelled: no longer wanted here as it was");
                return self.abandon(resources.drain(..=i).collect()).await;
            };
            if let Err(e) = result {
                let why = format!("{}: {e}", resources[i].label());
                warn!(group = %self.ctx.group, "cannot start {why}");
                let details = resources[i].failure_details();
                self.record_error(resources[i].label(), &e.to_string(), details);
                // Including the one that failed: it may be half started.
                let started: Vec<Resource> = resources.drain(..=i).collect();
                let why = match self.stop_resources(started).await {
                    Some(err) => format!("{why}; {err}"),
                    None => why,
                };
                let permanent = e.is_permanent() || self.unclean.cause.is_some();
                self.fatal = e.is_fatal();
                self.on_failure(&spec, why, permanent);
                return;
            }
        }
        info!(group = %self.ctx.group, "group started; online once every resource is ready");
        self.running = Some(RunningGroup {
            spec: Arc::clone(&spec),
            sources,
            resources,
        });
        // Online at once when nothing has a probe to wait for.
        self.check_running(&spec).await;
    }

    /// Releases the storage an earlier agent run recorded for the group and
    /// `keep` does not name; one that stays makes the node unclean for the
    /// group (the error is returned).
    async fn release_recorded(&mut self, keep: &BTreeSet<Name>) -> Option<String> {
        let group = self.ctx.group.as_str();
        let left = guard_storage::release_group(&self.ctx.data_dir, group, keep).await;
        if left.took_something() {
            info!(group = %self.ctx.group, "released what an earlier run left: {left}");
        }
        let e = format!("cannot release {}", left.failed.first()?);
        warn!(group = %self.ctx.group, "this node is unclean: {e}");
        self.unclean.cause = Some(e.clone());
        Some(e)
    }

    /// Stops what an abandoned start had started, newest first.
    async fn abandon(&mut self, started: Vec<Resource>) {
        if let Some(err) = self.stop_resources(started).await {
            warn!(group = %self.ctx.group, "{err}");
        }
    }

    /// The group is still wanted online here with this spec and these data
    /// sources, and the lease lets this node start it.
    fn still_wanted(&self, spec: &Arc<ResourceGroupSpec>, sources: &Arc<DataSources>) -> bool {
        wanted(&self.want, self.lease.as_deref(), spec, sources)
    }

    /// Starts one resource; `None` when the group stopped being wanted here
    /// (the node fenced itself, the group moved) before the start was over
    /// and the start was cancelled: a file system check can take minutes,
    /// and the node's fence must not wait for it while another node takes
    /// the disk over.
    async fn start_one(
        &self,
        resource: &mut Resource,
        spec: &Arc<ResourceGroupSpec>,
        sources: &Arc<DataSources>,
    ) -> Option<Result<(), drivers::DriverError>> {
        if !resource.start_may_be_cancelled() {
            return Some(resource.start().await);
        }
        let unwanted = until_unwanted(
            self.want.clone(),
            self.lease.clone(),
            Arc::clone(spec),
            Arc::clone(sources),
        );
        tokio::select! {
            // A start that ended because the fence killed its command (the
            // guard, while this agent was frozen) ends at the same moment as
            // the wait for the fence: the fence wins, so the end is not
            // taken for a failure of the resource here.
            biased;
            () = unwanted => None,
            result = resource.start() => Some(result),
        }
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
        // Storage an earlier agent run recorded and did not release (none
        // when the stop above went well: each record goes with its stop).
        if self.unclean.cause.is_none()
            && let Some(e) = self.release_recorded(&BTreeSet::new()).await
        {
            message.get_or_insert(e);
        }
        self.retry_release().await;
        if let Some(m) = &message {
            warn!(group = %self.ctx.group, "offline with errors: {m}");
        }
        self.restarts = 0;
        self.recent_restarts.clear();
        // Why it failed here stays in the report after it moved on, for
        // `status` and `apply` to say; any other way offline starts afresh.
        if self.failed.is_none() {
            self.errors.clear();
        }
        self.failed = None;
        self.fatal = false;
        if self.unclean.cause.is_some() {
            self.set(GroupState::Failed, message);
        } else {
            info!(group = %self.ctx.group, "group offline");
            self.set(GroupState::Offline, message);
        }
    }

    /// Stops every resource in reverse order; returns the errors, if any.
    async fn stop_all(&mut self) -> Option<String> {
        let run = self.running.take()?;
        self.stop_resources(run.resources).await
    }

    /// Stops `resources` in reverse order, every one even when some fail;
    /// returns the errors, if any. Storage (data sources, OCF resources)
    /// whose stop failed is kept in [`Self::unclean`].
    async fn stop_resources(&mut self, resources: Vec<Resource>) -> Option<String> {
        let mut errors: Vec<String> = Vec::new();
        for mut r in resources.into_iter().rev() {
            if let Err(e) = r.stop().await {
                let e = format!("cannot stop {}: {e}", r.label());
                if matches!(r, Resource::DataSource(_) | Resource::Ocf(_)) {
                    warn!(group = %self.ctx.group, "this node is unclean: {e}");
                    self.unclean.cause.get_or_insert_with(|| e.clone());
                    self.unclean.resources.push(r);
                }
                errors.push(e);
            }
        }
        (!errors.is_empty()).then(|| errors.join("; "))
    }

    /// Tries again, at most every [`RELEASE_RETRY`], to stop the storage
    /// whose stop failed; `true` once nothing is held (the node is clean for
    /// this group again).
    async fn retry_release(&mut self) -> bool {
        if self.unclean.cause.is_none() {
            return true;
        }
        if self
            .unclean
            .last_try
            .is_some_and(|t| t.elapsed() < RELEASE_RETRY)
        {
            return false;
        }
        self.unclean.last_try = Some(Instant::now());
        let mut still = Vec::new();
        for mut r in std::mem::take(&mut self.unclean.resources) {
            if let Err(e) = r.stop().await {
                self.unclean.cause = Some(format!("cannot stop {}: {e}", r.label()));
                still.push(r);
            }
        }
        self.unclean.resources = still;
        if !self.unclean.resources.is_empty() {
            return false;
        }
        // What is left on record (an earlier run's, or the guard's stop that
        // failed): released the same way.
        let left = guard_storage::release_group(
            &self.ctx.data_dir,
            self.ctx.group.as_str(),
            &BTreeSet::new(),
        )
        .await;
        if let Some(e) = left.failed.first() {
            self.unclean.cause = Some(format!("cannot release {e}"));
            return false;
        }
        info!(group = %self.ctx.group, "the group's storage is released: clean again");
        self.unclean = Unclean::default();
        // The Failed state the release failure caused ends with it.
        self.set(GroupState::Offline, None);
        true
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
                unclean: self.unclean.cause.clone(),
                fatal: self.fatal && state == GroupState::Failed,
                errors: self.errors.clone(),
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

/// The group is wanted online here with `spec` and `sources`, and the lease
/// (if any) lets this node start it.
///
/// A change of placement only (preferred nodes, failback, restart policy)
/// changes nothing that is starting, so the start goes on (as a running
/// group keeps running, `keep_online`).
fn wanted(
    want: &watch::Receiver<Want>,
    lease: Option<&Lease>,
    spec: &Arc<ResourceGroupSpec>,
    sources: &Arc<DataSources>,
) -> bool {
    let here = matches!(
        &*want.borrow(),
        Want::Online(s, d) if d == sources && (s == spec || !crate::plan::needs_restart(spec, s))
    );
    here && lease.is_none_or(|l| l.may_start())
}

/// How often a start in progress looks at the lease: the want changes by
/// message, the lease only with time.
const LEASE_POLL: Duration = Duration::from_millis(20);

/// Resolves once the group is no longer [`wanted`] here as `spec` and
/// `sources`.
async fn until_unwanted(
    mut want: watch::Receiver<Want>,
    lease: Option<Arc<Lease>>,
    spec: Arc<ResourceGroupSpec>,
    sources: Arc<DataSources>,
) {
    while wanted(&want, lease.as_deref(), &spec, &sources) {
        if let Ok(Err(_)) = tokio::time::timeout(LEASE_POLL, want.changed()).await {
            // The node task is gone: only the lease can still change.
            tokio::time::sleep(LEASE_POLL).await;
        }
    }
}

/// The first unhealthy resource (its index and why), else the first that
/// is not ready yet, else healthy.
async fn check_all(resources: &mut [Resource]) -> (Option<usize>, ResourceHealth) {
    let mut starting = None;
    for (i, r) in resources.iter_mut().enumerate() {
        match r.check().await {
            ResourceHealth::Healthy => {}
            ResourceHealth::Unhealthy(why) => return (Some(i), ResourceHealth::Unhealthy(why)),
            ResourceHealth::Starting(what) => {
                starting.get_or_insert((Some(i), ResourceHealth::Starting(what)));
            }
        }
    }
    starting.unwrap_or((None, ResourceHealth::Healthy))
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
