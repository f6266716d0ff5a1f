//! One `umount2` at a time per mount point, off the async runtime and
//! bounded: the unmount of a file system on hung storage blocks its thread
//! in the kernel, where no timeout reaches, so it runs on a thread of its
//! own that the caller waits for only so long — and, while one is still
//! stuck there, no other is started for the same path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::io_check::bounded;

/// One `umount2` of `path` on a thread of its own, waited for up to
/// `left`: its result, or where its thread is stuck ([`unmount_thread`]).
/// Not started while an earlier one of the same path is still in the
/// kernel: on dead storage every retry would leave one more thread stuck
/// there (and the lease guard, which retries every half second while the
/// agent is frozen, locks each one's stack in memory).
pub(super) async fn umount_once(path: &Path, left: Duration) -> Result<nix::Result<()>, String> {
    use std::sync::atomic::{AtomicI32, Ordering};
    let Some(claim) = InFlight::claim(path) else {
        return Err("an earlier unmount of it is still in the kernel".into());
    };
    let p = path.to_path_buf();
    let tid = std::sync::Arc::new(AtomicI32::new(0));
    let tid_in = tid.clone();
    bounded(left, move || {
        let _claim = claim;
        tid_in.store(nix::unistd::gettid().as_raw(), Ordering::Relaxed);
        nix::mount::umount2(&p, nix::mount::MntFlags::empty())
    })
    .await
    .ok_or_else(|| unmount_thread(tid.load(Ordering::Relaxed)))
}

/// The paths with an unmount under way in this process.
static UNMOUNTING: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// An unmount of one path under way; the path is free again on drop.
struct InFlight(PathBuf);

impl InFlight {
    fn claim(path: &Path) -> Option<InFlight> {
        let mut all = UNMOUNTING.lock().unwrap_or_else(|e| e.into_inner());
        if all.iter().any(|p| p == path) {
            return None;
        }
        all.push(path.to_path_buf());
        Some(InFlight(path.to_path_buf()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut all = UNMOUNTING.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|p| *p != self.0);
    }
}

/// Where this process's thread `tid`, running an unmount that did not
/// return, is: its state (`D` waiting on I/O in the kernel, `R` waiting for
/// a CPU) and the innermost kernel functions of its stack (root only).
fn unmount_thread(tid: i32) -> String {
    if tid == 0 {
        return "the unmount's thread never ran".into();
    }
    let dir = Path::new("/proc/self/task").join(tid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, r)| r.split_whitespace().next())
        .unwrap_or("gone");
    let stack: Vec<String> = std::fs::read_to_string(dir.join("stack"))
        .unwrap_or_default()
        .lines()
        .take(4)
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect();
    format!(
        "its thread {tid}: state {state}, in [{}]",
        stack.join(" < ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_unmount_of_a_path_at_a_time() {
        let a = InFlight::claim(Path::new("/gu/test-a")).expect("free");
        assert!(InFlight::claim(Path::new("/gu/test-a")).is_none());
        let b = InFlight::claim(Path::new("/gu/test-b")).expect("another path");
        drop(a);
        assert!(InFlight::claim(Path::new("/gu/test-a")).is_some());
        drop(b);
    }
}
