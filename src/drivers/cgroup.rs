//! Each process of a group in a cgroup (v2) of its own, so that stopping it
//! reaches everything it started — also a descendant that left the process
//! group with `setsid`, which `killpg` cannot reach.
//!
//! The cgroups live under the agent's own cgroup (from `/proc/self/cgroup`,
//! on the cgroup2 mount of `/proc/self/mountinfo`):
//! `<agent's cgroup>/asctl-<crc32c of the data dir>/<group>/<process>`. The
//! data directory names the agent (two agents on one machine never share
//! it), and the path is a function of what the lease guard knows too, so
//! its fence reaches them without any record. A process is moved into its
//! cgroup between fork and exec (it writes `0` to `cgroup.procs`), before
//! it can start anything. A process's cgroup is removed when it is stopped
//! (with its group's and the agent's levels once they are empty), and the
//! agent sweeps the empty ones a previous run left (killed before it could
//! remove them) when it starts ([`sweep_empty`]): cgroups that still hold
//! processes — left running across an agent restart — stay, since the
//! kernel refuses to remove them. Where there is no writable cgroup v2 hierarchy
//! (no cgroup2 mount, not root and no delegation), [`Cgroup::for_process`]
//! says so once and the process group is all there is.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tracing::{debug, warn};

/// A process's cgroup.
#[derive(Debug, Clone)]
pub struct Cgroup {
    path: PathBuf,
}

/// Where this agent's cgroups go, if cgroup v2 is usable here.
fn agent_base() -> Option<&'static Path> {
    static BASE: OnceLock<Option<PathBuf>> = OnceLock::new();
    BASE.get_or_init(|| {
        let found = v2_mount()
            .zip(own_cgroup())
            .map(|(mount, own)| mount.join(own.trim_start_matches('/')));
        // Writable: a child can be created there.
        let usable = found.filter(|base| {
            let probe = base.join(format!("asctl-probe-{}", std::process::id()));
            let ok = fs::create_dir(&probe).is_ok();
            let _ = fs::remove_dir(&probe);
            ok
        });
        if usable.is_none() {
            warn!(
                "no writable cgroup v2 hierarchy: a group's processes are stopped by process \
                 group only (a descendant that calls setsid escapes a stop)"
            );
        }
        usable
    })
    .as_deref()
}

/// The cgroup2 mount point, from `/proc/self/mountinfo`.
fn v2_mount() -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}

/// This process's cgroup v2 path (`0::/path` in `/proc/self/cgroup`).
fn own_cgroup() -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

/// The cgroup of the agent of `data_dir`, parent of its groups' cgroups.
fn agent_cgroup(data_dir: &Path) -> Option<PathBuf> {
    let agent = format!(
        "asctl-{:08x}",
        crc32c::crc32c(data_dir.as_os_str().as_bytes())
    );
    Some(agent_base()?.join(agent))
}

/// Removes the empty cgroups of the agent of `data_dir` (deepest first);
/// the number removed. Cgroups with live members stay (`rmdir` of a
/// populated cgroup fails with `EBUSY`). Meant for agent start, before any
/// process is started: a cgroup created by [`Cgroup::prepare`] is empty
/// until its process joins it.
pub fn sweep_empty(data_dir: &Path) -> usize {
    fn sweep(dir: &Path) -> usize {
        let Ok(entries) = fs::read_dir(dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            // A cgroup's own interface files are regular files: only child
            // cgroups are directories.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                removed += sweep(&entry.path());
            }
        }
        match fs::remove_dir(dir) {
            Ok(()) => removed + 1,
            Err(_) => removed,
        }
    }
    let Some(agent) = agent_cgroup(data_dir) else {
        return 0;
    };
    let removed = sweep(&agent);
    if removed > 0 {
        debug!(path = %agent.display(), removed, "empty cgroups of a previous run removed");
    }
    removed
}

impl Cgroup {
    /// The cgroup of `process` of `group` for the agent of `data_dir`
    /// (not created), or `None` without a usable cgroup v2 hierarchy.
    pub fn for_process(data_dir: &Path, group: &str, process: &str) -> Option<Cgroup> {
        Some(Cgroup {
            path: agent_cgroup(data_dir)?.join(group).join(process),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the cgroup, first killing whatever an earlier run of the
    /// same process left in it; the `cgroup.procs` path for
    /// [`join_in_child`].
    pub fn prepare(&self) -> std::io::Result<CString> {
        if self.path.exists() {
            self.kill_all(Duration::from_secs(2));
        }
        fs::create_dir_all(&self.path)?;
        CString::new(self.path.join("cgroup.procs").as_os_str().as_bytes())
            .map_err(std::io::Error::other)
    }

    /// The live members.
    pub fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.path.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Sends `sig` to every member.
    pub fn signal(&self, sig: Signal) {
        for pid in self.pids() {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }

    /// SIGKILL to every member (`cgroup.kill`, or one by one on kernels
    /// before 5.14), waits up to `grace` for them to be gone, then removes
    /// the cgroup. Whether it is empty.
    pub fn kill_all(&self, grace: Duration) -> bool {
        if !self.path.exists() {
            return true;
        }
        let deadline = Instant::now() + grace;
        loop {
            if self.pids().is_empty() {
                if let Err(e) = fs::remove_dir(&self.path) {
                    debug!(path = %self.path.display(), "cgroup not removed: {e}");
                }
                // The agent's and the group's levels go when empty.
                for up in self.path.ancestors().skip(1).take(2) {
                    let _ = fs::remove_dir(up);
                }
                return true;
            }
            if Instant::now() >= deadline {
                warn!(path = %self.path.display(), pids = ?self.pids(),
                    "processes survived SIGKILL in their cgroup");
                return false;
            }
            if fs::write(self.path.join("cgroup.kill"), "1").is_err() {
                self.signal(Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is
/// `procs`. Meant for between fork and exec: only async-signal-safe calls.
pub fn join_in_child(procs: &CString) -> std::io::Result<()> {
    // SAFETY: open/write/close on a NUL-terminated path and a 1-byte
    // buffer we own; no allocation, no locks.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = libc::write(fd, b"0".as_ptr().cast(), 1);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if n != 1 {
            return Err(err);
        }
    }
    Ok(())
}
