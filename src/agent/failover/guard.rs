//! The lease guard: the fence for an agent that stops running.
//!
//! The processes a node runs for its groups live in their own process
//! groups, and its managed addresses stay on its interfaces, whatever
//! happens to the agent. An agent killed with `kill -9`, or frozen by
//! SIGSTOP, therefore leaves its groups running while its peers declare the
//! node failed and start them elsewhere: two copies. The guard closes that
//! gap. It is a small separate process (`asctl guard`, started by the agent,
//! in its own process group) that the agent must keep renewing over a pipe:
//!
//! - `renew <ms>\n` every quarter heartbeat interval: the lease runs for
//!   `<ms>` (L, the heartbeat timeout) from now;
//! - `detach\n` on a graceful exit: the guard leaves without touching
//!   anything, so that `--leave-running` keeps the groups for the next agent
//!   to adopt.
//!
//! When the lease runs out (the agent is frozen or starved) or the pipe
//! closes without `detach` (the agent died), the guard *fences* the node:
//! SIGKILL to the process group of every process recorded under
//! `<data_dir>/run/` (the pid files the process driver writes), then removal
//! of every address recorded under `<data_dir>/ips/` (the IP driver records
//! an address before adding it), then release of the node's storage
//! ([`super::guard_storage`]), newest first: every mount recorded under
//! `<data_dir>/mounts/` (the mount point driver records a mount before
//! mounting) has its remaining users SIGKILLed and is unmounted, and every
//! OCF resource recorded under `<data_dir>/ocf/` (the OCF driver records
//! one before its `start`) is stopped with its agent's `stop`.
//! SIGKILL, not SIGTERM: the timing argument of docs/ha.md needs a short
//! bound, and a fence is not a stop. Storage the fence could not release
//! (a mount still busy at its limit) is released again every
//! [`super::fence::RETRY_RELEASE`] while the agent stays frozen: the node
//! may hold the disk until it is, and nobody else will release it before
//! the agent renews. The records are read at every renewal
//! and kept while reading fails ([`OnRecord`]): the data directory's file
//! system may fail before the fence is needed.
//!
//! On the agent's side, [`Lease`] is the gate that keeps a woken agent from
//! undoing the fence: a group may start only while the agent's own last
//! renewal is recent enough that the guard cannot have fired. After a lapse
//! (measured on the monotonic clock, which runs on while the agent is
//! stopped) the agent takes its groups offline and starts nothing until it
//! has caught up with the domain ([`hold_after_lapse`]), exactly as after a
//! stall of the failure detector.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::domain::Replica;
use crate::drivers;
use crate::drivers::storage::records;

/// The lease when no configuration is applied yet (the default heartbeat
/// timeout).
const DEFAULT_LEASE: Duration = Duration::from_secs(1);

/// The lease length `L` for a heartbeat timeout `T`: `L = T`, so the guard
/// fires exactly when a peer may start to suspect this node (docs/ha.md
/// derives the survivor's wait from it).
pub fn lease_time(timeout: Duration) -> Duration {
    timeout
}

/// How long a whole fence may take for the survivors' takeover wait to
/// cover it: the guard fires by `f + L + ε` after a freeze at `f`, and a
/// survivor starts no earlier than `f − I + T + W`
/// ([`crate::agent::detection::detector::fence_budget`]).
fn fence_budget(timeout: Duration, interval: Duration) -> Duration {
    crate::agent::detection::detector::fence_budget(timeout, interval, lease_time(timeout))
}

// ----------------------------------------------------------------------------
// The guard process.

/// `asctl guard --data-dir DIR`: serves the lease on stdin until `detach`
/// or end of input. Returns when it may exit.
pub fn serve(data_dir: &Path) {
    // First, so that every thread the guard starts (the runtime's, the
    // unmount's) runs at its priority too.
    match super::realtime::make_realtime() {
        Ok(prio) => super::fence::say(format_args!(
            "running at real-time priority {prio} (SCHED_RR), memory locked"
        )),
        Err(e) => super::fence::say(format_args!(
            "cannot run at real-time priority ({e}): under CPU starvation the fence may come \
             late or take long (docs/ha.md)"
        )),
    }
    // Built up front so that the fence does not pay for it.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            super::fence::say(format_args!("cannot start: {e}"));
            return;
        }
    };
    let fd = std::io::stdin().as_raw_fd();
    let mut known = OnRecord::default();
    known.refresh(data_dir);
    let mut lease: Option<(Instant, Duration)> = None;
    let mut budget: Option<Duration> = None;
    let mut pending = Vec::new();
    let mut buf = [0u8; 512];
    // Storage a fence could not release while the agent is frozen: when the
    // fence was, and how many retries since.
    let mut unreleased: Option<(Instant, u32)> = None;
    loop {
        let timeout_ms = match unreleased {
            Some(_) => super::fence::RETRY_RELEASE.as_millis() as i32,
            None => poll_timeout_ms(lease),
        };
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call. The kernel
        // checks the pipe once more after the timeout, so a guard that was
        // itself descheduled never fires on renewals already in the pipe.
        let ready = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if ready < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            fence(&rt, data_dir, &known, budget, "cannot wait for renewals");
            return;
        }
        if ready == 0 {
            unreleased = match unreleased {
                Some(retrying) => super::fence::retry(&rt, data_dir, &known, retrying),
                None => super::fence::lease_ran_out(&rt, data_dir, &known, budget, lease),
            };
            // Disarmed until the agent renews again; it knows it lapsed and
            // starts nothing until it has caught up with the domain. What
            // the fence could not release is retried until then.
            lease = None;
            continue;
        }
        // SAFETY: reads into a buffer we own, at most its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            fence(
                &rt,
                data_dir,
                &known,
                budget,
                "the pipe from the agent failed",
            );
            return;
        }
        if n == 0 {
            fence(
                &rt,
                data_dir,
                &known,
                budget,
                "the agent went away without detaching",
            );
            return;
        }
        pending.extend_from_slice(&buf[..n as usize]);
        if let Detached::Yes = read_commands(&mut pending, &mut lease, &mut budget) {
            super::fence::say(format_args!(
                "the agent detached; leaving the groups running"
            ));
            return;
        }
        if lease.is_some() && unreleased.take().is_some() {
            super::fence::say(format_args!(
                "the agent renews again: its own stop releases what the fence could not"
            ));
        }
        known.refresh(data_dir);
    }
}

/// What the fence takes down, as last read: the data directory's file
/// system can fail before the fence is needed (a disk lost, or shut down on
/// an error — the agent then fail-stops), and then reading the records
/// fails too. So each kind of record is read again at every renewal and
/// kept while a read fails, and the fence takes down what was read last
/// together with what it can still read. A record written after the last
/// good read (within one renewal period of the failure) is missed; a stale
/// one costs nothing (a process is checked by its start time, an absent
/// address or mount is left as it is).
#[derive(Debug, Default, Clone)]
pub(super) struct OnRecord {
    pub(super) processes: Vec<drivers::process::Recorded>,
    pub(super) addresses: Vec<String>,
    pub(super) mounts: Vec<records::MountRecord>,
}

impl OnRecord {
    /// Reads every kind again, keeping the old one when a read fails.
    fn refresh(&mut self, data_dir: &Path) {
        if let Ok(p) = drivers::process::recorded(data_dir) {
            self.processes = p;
        }
        if let Ok(a) = drivers::ip::recorded_addresses(data_dir) {
            self.addresses = a;
        }
        if let Ok(m) = records::try_recorded(data_dir) {
            self.mounts = m;
        }
    }

    /// What was read last and what can be read now, together.
    pub(super) fn with_current(&self, data_dir: &Path) -> OnRecord {
        let mut now = self.clone();
        now.refresh(data_dir);
        for p in &self.processes {
            if !now.processes.contains(p) {
                now.processes.push(p.clone());
            }
        }
        for a in &self.addresses {
            if !now.addresses.contains(a) {
                now.addresses.push(a.clone());
            }
        }
        for m in &self.mounts {
            if !now.mounts.contains(m) {
                now.mounts.push(m.clone());
            }
        }
        records::sort_newest_first(&mut now.mounts);
        now
    }
}

/// Fences from what was read last and what can be read now.
fn fence(
    rt: &tokio::runtime::Runtime,
    data_dir: &Path,
    known: &OnRecord,
    budget: Option<Duration>,
    why: &str,
) -> bool {
    super::fence::fence(rt, data_dir, known.with_current(data_dir), budget, why)
}

/// How long `poll` may wait: until the lease is over, rounded up so that
/// the guard never fires before it is; forever while disarmed.
fn poll_timeout_ms(lease: Option<(Instant, Duration)>) -> i32 {
    match lease {
        None => -1,
        Some((renewed, len)) => {
            let left = len.saturating_sub(renewed.elapsed());
            i32::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX)
        }
    }
}

enum Detached {
    Yes,
    No,
}

/// Carries out every whole line in `pending` (`renew <ms> [<budget ms>]`
/// renews the lease from now and sets the fence's storage budget;
/// `detach` ends the guard without fencing) and keeps the unfinished rest.
fn read_commands(
    pending: &mut Vec<u8>,
    lease: &mut Option<(Instant, Duration)>,
    budget: &mut Option<Duration>,
) -> Detached {
    while let Some(end) = pending.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).collect();
        let line = String::from_utf8_lossy(&line);
        let words: Vec<&str> = line.split_whitespace().collect();
        let number = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok());
        match (words.first().copied(), number(1)) {
            (Some("renew"), Some(ms)) => {
                *lease = Some((Instant::now(), Duration::from_millis(ms)));
                if let Some(b) = number(2) {
                    *budget = Some(Duration::from_millis(b));
                }
            }
            (Some("detach"), _) => return Detached::Yes,
            _ => super::fence::say(format_args!("ignoring `{}`", line.trim())),
        }
    }
    Detached::No
}

// ----------------------------------------------------------------------------
// The agent's side.

/// The agent's view of its lease: whether this node may start groups.
#[derive(Debug)]
pub struct Lease {
    state: Mutex<LeaseState>,
    /// Counts lapses; [`hold_after_lapse`] fences on every change.
    lapses: watch::Sender<u64>,
}

#[derive(Debug)]
struct LeaseState {
    /// When the last renewal was written (before the write: the guard got
    /// it no earlier).
    renewed: Option<Instant>,
    length: Duration,
    /// Set on a lapse; cleared only once the node has caught up again.
    lapsed: bool,
}

impl Default for Lease {
    fn default() -> Self {
        Lease {
            state: Mutex::new(LeaseState {
                renewed: None,
                length: DEFAULT_LEASE,
                lapsed: false,
            }),
            lapses: watch::channel(0).0,
        }
    }
}

impl Lease {
    fn lock(&self) -> std::sync::MutexGuard<'_, LeaseState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lease is trusted for three quarters of its length after a
    /// renewal: a start decided inside that window completes while the guard
    /// still waits.
    fn check(&self, s: &mut LeaseState, now: Instant) -> bool {
        let fresh = s
            .renewed
            .is_some_and(|r| now.duration_since(r) < s.length - s.length / 4);
        if !fresh && s.renewed.is_some() && !s.lapsed {
            s.lapsed = true;
            self.lapses.send_modify(|n| *n += 1);
        }
        fresh && !s.lapsed
    }

    /// May this node start a group now? `false` once the lease has lapsed,
    /// until the node has caught up with the domain.
    pub fn may_start(&self) -> bool {
        let mut s = self.lock();
        self.check(&mut s, Instant::now())
    }

    /// Whether a lapse is being handled.
    pub fn lapsed(&self) -> bool {
        self.lock().lapsed
    }

    /// Checks for a lapse *before* renewing: a renewal after a long gap must
    /// not make the gap invisible.
    fn before_renewal(&self, now: Instant) {
        let mut s = self.lock();
        self.check(&mut s, now);
    }

    fn renewed(&self, at: Instant, length: Duration) {
        let mut s = self.lock();
        s.renewed = Some(at);
        s.length = length;
    }

    fn clear_lapse(&self) {
        self.lock().lapsed = false;
    }

    pub fn lapses(&self) -> watch::Receiver<u64> {
        self.lapses.subscribe()
    }
}

/// The running guard, from the agent's side.
pub struct Guard {
    data_dir: PathBuf,
    exe: PathBuf,
    child: Child,
    stdin: ChildStdin,
    pub lease: Arc<Lease>,
}

impl Guard {
    /// Starts `asctl guard` (the agent's own executable) and renews its
    /// lease once, so that nothing runs unguarded.
    pub async fn start(exe: PathBuf, data_dir: PathBuf) -> std::io::Result<Guard> {
        let (child, stdin) = spawn(&exe, &data_dir)?;
        let mut g = Guard {
            data_dir,
            exe,
            child,
            stdin,
            lease: Arc::new(Lease::default()),
        };
        let budget = fence_budget(
            DEFAULT_LEASE,
            crate::model::Heartbeat::default().interval.get(),
        );
        g.renew(DEFAULT_LEASE, budget).await;
        info!(pid = g.child.id(), "lease guard running");
        Ok(g)
    }

    async fn renew(&mut self, length: Duration, budget: Duration) {
        let now = Instant::now();
        self.lease.before_renewal(now);
        let msg = format!("renew {} {}\n", length.as_millis(), budget.as_millis());
        if let Err(e) = self.stdin.write_all(msg.as_bytes()).await {
            // The guard died (killed by hand?): nothing fences this node now,
            // so start another one. A guard that fenced is still there (it
            // exits only when our end of the pipe closes), so this one fenced
            // nothing and the lease goes on.
            error!("the lease guard is gone ({e}); starting a new one");
            match spawn(&self.exe, &self.data_dir) {
                Ok((child, stdin)) => {
                    self.child = child;
                    self.stdin = stdin;
                    if self.stdin.write_all(msg.as_bytes()).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    error!("cannot start the lease guard: {e}");
                    return;
                }
            }
        }
        self.lease.renewed(now, length);
    }

    /// Renews every quarter heartbeat interval until `stop` changes; the
    /// lease is `L` = the heartbeat timeout of the applied configuration.
    pub async fn run(mut self, domain: Replica, mut stop: watch::Receiver<bool>) -> Guard {
        let first = domain
            .state()
            .heartbeat()
            .unwrap_or_default()
            .interval
            .get();
        let pulse = crate::agent::vital::pulse("lease renewal", first / 4);
        loop {
            pulse.beat();
            let hb = domain.state().heartbeat().unwrap_or_default();
            let interval = hb.interval.get();
            let length = lease_time(hb.timeout.get());
            self.renew(length, fence_budget(hb.timeout.get(), interval))
                .await;
            tokio::select! {
                _ = tokio::time::sleep(interval / 4) => {}
                _ = stop.changed() => return self,
            }
        }
    }

    /// An exit that fences now: the pipe closes without `detach`, the guard
    /// kills the node's group processes and removes its addresses, then
    /// exits.
    pub async fn fence(mut self) {
        drop(self.stdin);
        match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            Ok(_) => {}
            Err(_) => warn!("the lease guard did not finish its fence in time"),
        }
    }

    /// A graceful exit: the guard leaves the groups as they are.
    pub async fn detach(mut self) {
        let _ = self.stdin.write_all(b"detach\n").await;
        drop(self.stdin);
        match tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await {
            Ok(_) => {}
            Err(_) => warn!("the lease guard did not leave after detach"),
        }
    }
}

fn spawn(exe: &Path, data_dir: &Path) -> std::io::Result<(Child, ChildStdin)> {
    let mut child = Command::new(exe)
        .arg("guard")
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        // Its messages go to the agent's log.
        .stderr(Stdio::inherit())
        // Its own process group: a Ctrl-C meant for the agent's terminal
        // must not take the fence away.
        .process_group(0)
        // It must outlive a killed agent: that is its purpose.
        .kill_on_drop(false)
        .spawn()?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no pipe to the guard"))?;
    Ok((child, stdin))
}

/// After every lapse of the lease: holds `fence` up (the reconciler is given
/// no groups, so whatever the guard may have missed goes offline) until the
/// node has caught up with the domain, then clears the lapse so groups
/// placed here may start again.
pub async fn hold_after_lapse(
    lease: Arc<Lease>,
    domain: Replica,
    fence: watch::Sender<bool>,
    gate: watch::Receiver<crate::agent::failover::takeover::Clearance>,
    mut stop: watch::Receiver<bool>,
) {
    let mut lapses = lease.lapses();
    loop {
        tokio::select! {
            r = lapses.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
        warn!(
            "the lease lapsed (the agent was frozen or starved): taking every group offline until caught up"
        );
        fence.send_replace(true);
        // Right after waking, the applied state and the raft metrics are
        // those from before the freeze: a member frozen as the leader still
        // reads as a leader with a recent quorum, and its placement may still
        // put groups here that the others have moved. So first give the domain the time it needs
        // to reach this member — the time the others take to declare it
        // failed and move its groups, plus a second — then wait until caught
        // up on fresh metrics.
        let grace = crate::agent::failover::policy::catch_up_grace(&domain);
        let mut alone = gate.clone();
        tokio::select! {
            _ = async {
                tokio::time::sleep(grace).await;
                // Two nodes whose peer is down (silent for T + W since this
                // agent woke: its detector saw the freeze as a stall) have
                // no leader to catch up with; the survivor takes over now
                // rather than after the catch-up's give-up.
                tokio::select! {
                    () = crate::agent::failover::policy::wait_caught_up(&domain) => {}
                    Ok(_) = alone.wait_for(|g| g.alone) => {}
                }
            } => {}
            _ = stop.changed() => return,
        }
        lapses.borrow_and_update();
        lease.clear_lapse();
        fence.send_replace(false);
        info!("caught up after the lapse: groups may run here again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Duration = Duration::from_millis(1000);

    #[test]
    fn no_start_before_the_first_renewal() {
        assert!(!Lease::default().may_start());
    }

    #[test]
    fn a_gap_is_a_lapse_even_when_a_renewal_follows_and_only_catching_up_clears_it() {
        let lease = Lease::default();
        let lapses = lease.lapses();
        let t0 = Instant::now();
        lease.renewed(t0, L);
        assert!(lease.may_start());
        // Woken after a freeze longer than the trusted 3L/4: the renewer
        // checks before it renews, so the renewal does not hide the gap.
        let woke = t0 + L;
        lease.before_renewal(woke);
        lease.renewed(woke, L);
        assert!(lease.lapsed());
        assert!(!lease.may_start(), "fresh renewal, but the lapse stands");
        assert_eq!(*lapses.borrow(), 1);
        lease.clear_lapse();
        assert!(lease.may_start());
    }

    #[test]
    fn renewals_inside_three_quarters_of_the_lease_never_lapse() {
        let lease = Lease::default();
        let t0 = Instant::now();
        lease.renewed(t0, L);
        let t1 = t0 + L * 3 / 4 - Duration::from_millis(1);
        lease.before_renewal(t1);
        lease.renewed(t1, L);
        assert!(!lease.lapsed());
    }
}
