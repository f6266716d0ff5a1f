//! Fail-stop supervision of the agent's vital tasks.
//!
//! A node keeps its promise (its groups run on it and nowhere else) only
//! while every one of a few tasks runs: the heartbeats and the failure
//! detector (the peers' view of this node, and this node's view of them),
//! the lease renewal, the failover policy, the reconciler and what feeds it,
//! the leader loop and the API. One of them that dies or stalls while the
//! process lives on would leave the node looking alive to the guard while it
//! can no longer do its part — so its death or stall is a fatal error of
//! the whole agent, which then fences and exits (`agent::daemon`).
//!
//! - **Death**: a task started with [`spawn`] that panics, or (unless it
//!   was started with [`spawn_may_end`]) returns before the agent began
//!   to stop.
//! - **Stall**: a task holding a [`Pulse`] that has not beaten for
//!   [`stall_limit`]: it is stuck on an await that never completes, or
//!   blocked.
//! - **Storage stall**: a raft storage call (an append and its fsync, a
//!   vote, a snapshot) in progress for longer than
//!   [`storage_stall_limit`]: the raft core neither quits nor progresses,
//!   its log cannot take writes, while every other task looks healthy.
//!
//! Debug builds read `ASCTL_DEBUG_FAULT=TASK:KIND:FILE` (KIND `panic` or
//! `stall`): every task of that name panics, or is never polled again, once
//! FILE exists (looked for every 100 ms) — how the tests provoke each
//! failure in a real agent at the moment they choose. Release builds ignore
//! the variable.

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::domain::store::InFlight;
use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A vital task's fatal failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub cause: String,
    /// The task returned (rather than panicked or stalled): what its
    /// inputs closing does — above all the raft core quitting, which drops
    /// the state machine they read.
    pub ended: bool,
}

/// The deaths and stalls of one agent's vital tasks.
#[derive(Debug)]
pub struct Vitals {
    base: Instant,
    stopping: AtomicBool,
    fatal: watch::Sender<Option<Failure>>,
    pulses: Mutex<BTreeMap<u64, Beat>>,
    next: AtomicU64,
    storage: Mutex<Vec<Arc<InFlight>>>,
}

#[derive(Debug)]
struct Beat {
    task: &'static str,
    period: Duration,
    last_ms: Arc<AtomicU64>,
}

impl Default for Vitals {
    fn default() -> Self {
        Vitals {
            base: Instant::now(),
            stopping: AtomicBool::new(false),
            fatal: watch::channel(None).0,
            pulses: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
            storage: Mutex::new(Vec::new()),
        }
    }
}

/// The process's one set of vitals (one agent per process).
pub fn global() -> &'static Vitals {
    static VITALS: OnceLock<Vitals> = OnceLock::new();
    VITALS.get_or_init(Vitals::default)
}

/// How long a task's pulse may stay silent, for a lease `lease` and a task
/// that beats every `period`: `5L/8`, so that with the check every `L/8`
/// a stalled task is fenced within `3L/4` of its last progress — sooner
/// than the guard fences a frozen agent (`L`), on whose timing the peers'
/// takeover wait is built (docs/ha.md) — but never less than two of the
/// task's own periods.
pub fn stall_limit(lease: Duration, period: Duration) -> Duration {
    (lease * 5 / 8).max(period * 2)
}

/// How long a raft storage call may stay in progress, for a lease `lease`
/// (= `T`, the heartbeat timeout): `3T`, and at least 3 s. A slow fsync is
/// not yet a failure — a loaded disk stalls for hundreds of milliseconds,
/// and a journal commit can wait behind other writers — but a call still
/// in progress after three times the time in which the peers declare a
/// silent node failed means a log that cannot keep up with the domain:
/// the node stops acting on a state it can no longer follow. Nothing waits
/// on this bound for safety (the node still heartbeats and holds its lease
/// meanwhile, and the domain moves nothing of a node it hears without that
/// node's report), so it can be generous.
pub fn storage_stall_limit(lease: Duration) -> Duration {
    (lease * 3).max(Duration::from_secs(3))
}

impl Vitals {
    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// Registers a pulse for `task`, which beats at least every `period`.
    pub fn pulse(&'static self, task: &'static str, period: Duration) -> Pulse {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let last_ms = Arc::new(AtomicU64::new(self.now_ms()));
        let beat = Beat {
            task,
            period,
            last_ms: last_ms.clone(),
        };
        self.lock().insert(id, beat);
        Pulse {
            vitals: self,
            id,
            last_ms,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Beat>> {
        // A poisoned map only means a panic elsewhere while it was held;
        // the entries are plain numbers and stay usable.
        self.pulses.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches the storage calls of `calls` (see [`storage_stall_limit`]).
    pub fn watch_storage(&self, calls: Arc<InFlight>) {
        self.storage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(calls);
    }

    /// The first stalled task or storage call at `now`, for a lease
    /// `lease`, counting no silence before `since` (the end of a freeze of
    /// the whole process, which is the lease guard's business, not a
    /// task's stall).
    pub fn stalled(&self, now: Instant, since: Instant, lease: Duration) -> Option<String> {
        self.stalled_task(now, since, lease)
            .or_else(|| self.stalled_storage(now, since, lease))
    }

    fn stalled_storage(&self, now: Instant, since: Instant, lease: Duration) -> Option<String> {
        let limit = storage_stall_limit(lease);
        let storage = self.storage.lock().unwrap_or_else(|e| e.into_inner());
        storage.iter().find_map(|calls| {
            let (what, began) = calls.oldest()?;
            let waited = now.saturating_duration_since(began.max(since));
            (waited > limit).then(|| {
                format!(
                    "the raft storage call {what} in {} has not returned for {} ms (limit {} ms): \
                     the disk under the data directory is too slow or hung to keep the \
                     domain's log",
                    calls.dir().display(),
                    waited.as_millis(),
                    limit.as_millis()
                )
            })
        })
    }

    fn stalled_task(&self, now: Instant, since: Instant, lease: Duration) -> Option<String> {
        let from_ms = since.saturating_duration_since(self.base).as_millis() as u64;
        let now_ms = now.saturating_duration_since(self.base).as_millis() as u64;
        self.lock().values().find_map(|b| {
            let last = b.last_ms.load(Ordering::Relaxed).max(from_ms);
            let silent = Duration::from_millis(now_ms.saturating_sub(last));
            let limit = stall_limit(lease, b.period);
            (silent > limit).then(|| {
                format!(
                    "the {} task made no progress for {} ms (limit {} ms)",
                    b.task,
                    silent.as_millis(),
                    limit.as_millis()
                )
            })
        })
    }

    /// Records a fatal failure; the first cause is the one kept. Ignored
    /// once the agent is stopping (its tasks end then by design).
    pub fn fail(&self, failure: Failure) {
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        self.fatal.send_if_modified(|c| {
            let first = c.is_none();
            if first {
                tracing::error!("fail-stop: {}", failure.cause);
                *c = Some(failure);
            }
            first
        });
    }

    /// From now on tasks may end: the agent is stopping.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Resolves with the first fatal failure.
    pub async fn failed(&self) -> Failure {
        let mut rx = self.fatal.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(c) => c.clone().expect("waited for Some"),
            // The sender lives in a static: never dropped.
            Err(_) => std::future::pending().await,
        }
    }

    /// Checks every pulse each `L/8` (`lease` read anew each time) and
    /// records the first stall as fatal. A check that itself woke late by
    /// more than a stall limit found the whole process frozen: it starts
    /// counting anew from there.
    pub async fn watch_stalls(&'static self, lease: impl Fn() -> Duration) {
        let mut since = Instant::now();
        let mut last = since;
        loop {
            let l = lease();
            let every = (l / 8).max(Duration::from_millis(10));
            tokio::time::sleep(every).await;
            let now = Instant::now();
            if now.duration_since(last) > every + stall_limit(l, Duration::ZERO) / 2 {
                since = now;
            }
            last = now;
            if let Some(cause) = self.stalled(now, since, l) {
                self.fail(Failure {
                    cause,
                    ended: false,
                });
                return;
            }
        }
    }
}

/// A vital task's proof of progress; dropping it ends the supervision
/// (a task stopped on purpose, e.g. heartbeats restarted for a new
/// configuration).
#[derive(Debug)]
pub struct Pulse {
    vitals: &'static Vitals,
    id: u64,
    last_ms: Arc<AtomicU64>,
}

impl Pulse {
    pub fn beat(&self) {
        self.last_ms.store(self.vitals.now_ms(), Ordering::Relaxed);
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        self.vitals.lock().remove(&self.id);
    }
}

/// A pulse of the process's [`global`] vitals.
pub fn pulse(task: &'static str, period: Duration) -> Pulse {
    global().pulse(task, period)
}

/// Spawns a vital task: a panic, or a return before the agent stops, is
/// fatal. The handle still yields the output (or the panic) as
/// `tokio::spawn`'s does.
pub fn spawn<F>(task: &'static str, fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_in(global(), task, fut, true)
}

/// [`spawn`] for a task that ends on its own when what it serves goes away
/// (a heartbeat receiver whose detector was replaced): only a panic is
/// fatal.
pub fn spawn_may_end<F>(task: &'static str, fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_in(global(), task, fut, false)
}

fn spawn_in<F>(
    vitals: &'static Vitals,
    task: &'static str,
    fut: F,
    end_is_fatal: bool,
) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let fut = with_debug_fault(task, fut);
    tokio::spawn(async move {
        match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(out) => {
                if end_is_fatal {
                    vitals.fail(Failure {
                        cause: format!("the {task} task ended"),
                        ended: true,
                    });
                }
                out
            }
            Err(panic) => {
                vitals.fail(Failure {
                    cause: format!("the {task} task panicked: {}", message(&*panic)),
                    ended: false,
                });
                std::panic::resume_unwind(panic)
            }
        }
    })
}

fn message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The fault `ASCTL_DEBUG_FAULT` asks for `task`, in debug builds.
fn debug_fault(task: &str) -> Option<(Fault, PathBuf)> {
    if !cfg!(debug_assertions) {
        return None;
    }
    parse_fault(&std::env::var("ASCTL_DEBUG_FAULT").ok()?, task)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Panic,
    Stall,
}

fn parse_fault(spec: &str, task: &str) -> Option<(Fault, PathBuf)> {
    let mut parts = spec.splitn(3, ':');
    if parts.next()? != task {
        return None;
    }
    let kind = match parts.next()? {
        "panic" => Fault::Panic,
        "stall" => Fault::Stall,
        _ => return None,
    };
    Some((kind, PathBuf::from(parts.next()?)))
}

fn with_debug_fault<F>(task: &'static str, fut: F) -> BoxFuture<F::Output>
where
    F: Future + Send + 'static,
{
    let Some((fault, trigger)) = debug_fault(task) else {
        return Box::pin(fut);
    };
    tracing::warn!(
        "debug fault armed: the {task} task will {fault:?} once {} exists",
        trigger.display()
    );
    Box::pin(Faulty {
        inner: Box::pin(fut),
        look: tokio::time::interval(Duration::from_millis(100)),
        trigger,
        fault,
        task,
        fired: false,
    })
}

/// A future that, once `trigger` exists, panics or is never polled again.
struct Faulty<T> {
    inner: BoxFuture<T>,
    look: tokio::time::Interval,
    trigger: PathBuf,
    fault: Fault,
    task: &'static str,
    fired: bool,
}

impl<T> Future for Faulty<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<T> {
        while !self.fired && self.look.poll_tick(cx).is_ready() {
            self.fired = self.trigger.exists();
        }
        if self.fired {
            match self.fault {
                Fault::Panic => panic!("debug fault: the {} task panics", self.task),
                Fault::Stall => {
                    tracing::warn!("debug fault: the {} task stalls", self.task);
                    // Never woken again (the interval is not polled any
                    // more): stuck like an await that never completes.
                    return std::task::Poll::Pending;
                }
            }
        }
        self.inner.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaked() -> &'static Vitals {
        Box::leak(Box::default())
    }

    const L: Duration = Duration::from_millis(800);

    #[test]
    fn a_silent_pulse_is_a_stall_only_past_its_limit() {
        let v = leaked();
        let p = v.pulse("detector", Duration::from_millis(100));
        let t0 = v.base;
        let limit = stall_limit(L, Duration::from_millis(100));
        assert_eq!(limit, Duration::from_millis(500));
        p.last_ms.store(0, Ordering::Relaxed);
        assert_eq!(v.stalled(t0 + limit, t0, L), None);
        let cause = v
            .stalled(t0 + limit + Duration::from_millis(5), t0, L)
            .expect("stalled");
        assert!(
            cause.contains("the detector task made no progress"),
            "{cause}"
        );
        // Silence before the end of a whole-process freeze does not count.
        let woke = t0 + Duration::from_secs(10);
        assert_eq!(v.stalled(woke + Duration::from_millis(100), woke, L), None);
        drop(p);
        assert_eq!(v.stalled(t0 + Duration::from_secs(60), t0, L), None);
    }

    #[test]
    fn a_storage_call_in_progress_past_its_limit_is_a_stall() {
        let v = leaked();
        let calls = InFlight::new(std::path::Path::new("/data/raft"));
        v.watch_storage(calls.clone());
        let limit = storage_stall_limit(L);
        assert_eq!(limit, Duration::from_secs(3), "at least 3 s");
        assert_eq!(
            storage_stall_limit(Duration::from_secs(2)),
            Duration::from_secs(6),
            "3T"
        );
        // Idle: nothing in progress is never a stall, however long.
        let t0 = Instant::now();
        assert_eq!(v.stalled(t0 + Duration::from_secs(60), t0, L), None);
        let append = calls.begin("appending to log.jsonl");
        let began = Instant::now();
        assert_eq!(v.stalled(began + limit, began, L), None);
        let cause = v
            .stalled(began + limit + Duration::from_millis(5), began, L)
            .expect("a storage stall");
        assert!(
            cause.contains(
                "the raft storage call appending to log.jsonl in /data/raft has not returned"
            ),
            "{cause}"
        );
        // Time before the end of a whole-process freeze does not count.
        let woke = began + Duration::from_secs(10);
        assert_eq!(v.stalled(woke + Duration::from_millis(100), woke, L), None);
        // A call that returned is no stall, and the next starts afresh.
        drop(append);
        assert_eq!(v.stalled(began + Duration::from_secs(60), began, L), None);
        let _vote = calls.begin("writing vote.json");
        assert_eq!(v.stalled(Instant::now() + limit / 2, began, L), None);
    }

    #[test]
    fn a_slow_task_gets_two_of_its_periods() {
        assert_eq!(
            stall_limit(L, Duration::from_secs(1)),
            Duration::from_secs(2)
        );
    }

    #[tokio::test]
    async fn a_panic_or_an_early_end_is_fatal_but_not_once_stopping() {
        let v = leaked();
        let h = spawn_in(v, "reconciler", async { panic!("boom") }, true);
        assert!(h.await.expect_err("panics").is_panic());
        let failure = v.failed().await;
        assert_eq!(failure.cause, "the reconciler task panicked: boom");
        assert!(!failure.ended);

        let v = leaked();
        spawn_in(v, "feed", async {}, false).await.expect("ends");
        assert!(v.fatal.borrow().is_none(), "may end");
        spawn_in(v, "feed", async {}, true).await.expect("ends");
        let failure = v.failed().await;
        assert_eq!(failure.cause, "the feed task ended");
        assert!(failure.ended);

        let v = leaked();
        v.stopping();
        spawn_in(v, "feed", async {}, true).await.expect("ends");
        assert!(v.fatal.borrow().is_none());
    }

    #[test]
    fn fault_specs() {
        assert_eq!(
            parse_fault("heartbeat send:stall:/tmp/go", "heartbeat send"),
            Some((Fault::Stall, PathBuf::from("/tmp/go")))
        );
        assert_eq!(parse_fault("detector:panic:/x", "lease renewal"), None);
        assert_eq!(parse_fault("detector:boom:/x", "detector"), None);
        assert_eq!(parse_fault("detector", "detector"), None);
    }
}
