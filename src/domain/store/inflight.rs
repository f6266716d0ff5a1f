//! The raft storage calls in progress, and how they block.
//!
//! A write to a disk whose fsync takes seconds neither fails nor returns:
//! the raft core neither quits (which the agent sees) nor progresses, and
//! everything else in the agent — heartbeats, lease renewal — goes on as
//! if the node were healthy. Only the age of the call shows it, so every
//! call that writes registers here and the agent's supervision
//! (`agent::vital`) reads the oldest one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The writing calls in progress on one store's files.
#[derive(Debug)]
pub struct InFlight {
    dir: PathBuf,
    calls: Mutex<BTreeMap<u64, (&'static str, Instant)>>,
    next: AtomicU64,
}

/// A call in progress; it ends when dropped.
#[derive(Debug)]
pub struct Call {
    owner: Arc<InFlight>,
    id: u64,
}

impl InFlight {
    /// For the store in `dir`.
    pub fn new(dir: &Path) -> Arc<InFlight> {
        Arc::new(InFlight {
            dir: dir.to_owned(),
            calls: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
        })
    }

    /// The store's directory, for messages.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, (&'static str, Instant)>> {
        // The map holds plain values: a panic elsewhere leaves it usable.
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a call (`what`: e.g. "appending to log.jsonl") from now
    /// until the returned [`Call`] is dropped.
    pub fn begin(self: &Arc<Self>, what: &'static str) -> Call {
        self.begin_at(what, Instant::now())
    }

    fn begin_at(self: &Arc<Self>, what: &'static str, at: Instant) -> Call {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, (what, at));
        Call {
            owner: self.clone(),
            id,
        }
    }

    /// The call in progress that began first, and when.
    pub fn oldest(&self) -> Option<(&'static str, Instant)> {
        self.lock().values().min_by_key(|(_, at)| *at).copied()
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.owner.lock().remove(&self.id);
    }
}

/// Runs blocking file I/O. On a multi-threaded runtime the worker first
/// hands its other tasks to another thread (`block_in_place`), so that a
/// write taking seconds holds back neither the heartbeats nor the check
/// that finds it stuck; elsewhere (a single-threaded test runtime) it just
/// runs.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Debug builds: `ASCTL_DEBUG_FAULT=raft storage:stall:FILE` makes every
/// log append block, once FILE exists, as a write to a hung disk does (it
/// never returns): how the live tests provoke a raft core stuck in storage
/// without root (the chaos harness slows a real disk). Called inside
/// [`blocking`]. Release builds ignore the variable.
pub(crate) fn debug_stall() {
    if !cfg!(debug_assertions) {
        return;
    }
    static TRIGGER: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let trigger = TRIGGER.get_or_init(|| {
        let spec = std::env::var("ASCTL_DEBUG_FAULT").ok()?;
        Some(PathBuf::from(spec.strip_prefix("raft storage:stall:")?))
    });
    if trigger.as_ref().is_some_and(|t| t.exists()) {
        tracing::warn!("debug fault: the raft storage call stalls");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_oldest_call_in_progress_is_reported_until_it_ends() {
        let calls = InFlight::new(Path::new("/data/raft"));
        assert_eq!(calls.oldest(), None);
        let t0 = Instant::now();
        let append = calls.begin_at("appending to log.jsonl", t0);
        let vote = calls.begin_at("writing vote.json", t0 + Duration::from_millis(5));
        assert_eq!(calls.oldest(), Some(("appending to log.jsonl", t0)));
        drop(append);
        assert_eq!(
            calls.oldest(),
            Some(("writing vote.json", t0 + Duration::from_millis(5)))
        );
        drop(vote);
        assert_eq!(calls.oldest(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_blocking_call_leaves_the_runtime_running() {
        // One worker runs both tasks: without `block_in_place` the ticker
        // could not run while the other task's call blocks it.
        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        tokio::spawn(async { blocking(|| std::thread::sleep(Duration::from_millis(300))) })
            .await
            .expect("the blocking task");
        let n = ticks.load(Ordering::Relaxed);
        ticker.abort();
        assert!(
            n >= 5,
            "the runtime ran {n} ticks during a 300 ms blocking call"
        );
    }
}
