//! `mountPoint`: a file system on a shared disk, mounted where the group
//! expects its data.
//!
//! Start: record the device as held, check the file system where a crash
//! may have left it dirty, create the directory, mount. Monitor: still mounted there, and a write, fsync
//! and read of a hidden file completes within the timeout. Stop: unmount
//! what is mounted below first, then unmount; while the kernel says busy,
//! signal every process still using the file system (TERM for the first
//! half of the stop timeout, KILL for the second) and retry. A mount that
//! is still there at the deadline is a stop failure: this node still holds
//! the disk and must not be reported clean. So is a process that still has
//! the block device itself open (a check whose start was cancelled, killed
//! but not gone yet).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::Command;
use tokio::time::Instant;

use crate::drivers::{DriverError, GroupKill, ResourceHealth};
use crate::model::Name;

use super::io_check::IoCheck;
use super::umount::umount_once;
use super::{holders, mountinfo, records};

#[derive(Debug, Clone)]
pub struct MountSpec {
    pub name: Name,
    /// The block device (the `on` shared disk's `device.path`).
    pub device: PathBuf,
    pub path: PathBuf,
    pub fs_type: String,
    pub options: Option<String>,
    /// The `fsck` program (a path, or a name looked up in `PATH`).
    pub fsck: PathBuf,
    pub stop_timeout: Duration,
    /// This node's name: the monitor's file is per node, so two nodes that
    /// (wrongly) both mount the disk do not read each other's writes.
    pub node: Name,
    /// The agent's data directory and the group: the mount is recorded under
    /// `mounts/` while it may be present, for the lease guard
    /// ([`super::records`]). `None` records nothing (tests of the driver
    /// alone).
    pub record_in: Option<(PathBuf, Name)>,
}

#[derive(Debug)]
pub struct MountPoint {
    spec: MountSpec,
    /// The device number the file system was mounted from, kept for a stop
    /// after the device node itself vanished.
    dev: Option<(u32, u32)>,
    check: IoCheck,
}

/// How long `mount` and `fsck` may take.
const START_STEP_TIMEOUT: Duration = Duration::from_secs(120);

impl MountPoint {
    pub fn new(spec: MountSpec, interval: Duration, timeout: Duration) -> Self {
        MountPoint {
            spec,
            dev: None,
            check: IoCheck::new(interval, timeout),
        }
    }

    pub fn label(&self) -> String {
        format!(
            "mount point {} ({})",
            self.spec.name,
            self.spec.path.display()
        )
    }

    pub async fn start(&mut self) -> Result<(), DriverError> {
        let s = &self.spec;
        let meta = std::fs::metadata(&s.device).map_err(|e| {
            DriverError::Unavailable(format!(
                "{}: no such device on this node ({e})",
                s.device.display()
            ))
        })?;
        if !meta.file_type().is_block_device() {
            return Err(DriverError::Unavailable(format!(
                "{} is not a block device",
                s.device.display()
            )));
        }
        let dev = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
        self.dev = Some(dev);
        let entries = mountinfo::read().map_err(|e| DriverError::io("reading mountinfo", e))?;
        if let Some(top) = mountinfo::mounted_at(&entries, &s.path).first() {
            if top.dev == dev {
                // Already mounted here: a restart, or adoption.
                return self.record(dev);
            }
            return Err(DriverError::Failed(format!(
                "{} already has another file system mounted ({})",
                s.path.display(),
                top.source
            )));
        }
        if let Some(m) = mountinfo::mounts_of(&entries, dev).first() {
            return Err(DriverError::Failed(format!(
                "{} is already mounted on this node at {}",
                s.device.display(),
                m.mount_point.display()
            )));
        }
        // Recorded before the check: from here on this node writes to the
        // disk (the check repairs, the mount replays the journal), so the
        // guard must know of the device at every instant either may run.
        self.record(dev)?;
        let s = &self.spec;
        fsck(s).await?;
        std::fs::create_dir_all(&s.path)
            .map_err(|e| DriverError::io(format!("creating {}", s.path.display()), e))?;
        let mut cmd = Command::new("mount");
        cmd.arg("-t").arg(&s.fs_type);
        if let Some(o) = &s.options {
            cmd.arg("-o").arg(o);
        }
        cmd.arg(&s.device).arg(&s.path);
        let (code, out) = run(cmd, "mount").await?;
        if code != 0 {
            return Err(DriverError::Failed(format!(
                "mount {} on {} failed (exit {code}): {out}",
                s.device.display(),
                s.path.display()
            )));
        }
        Ok(())
    }

    fn record(&self, dev: (u32, u32)) -> Result<(), DriverError> {
        let Some((data_dir, group)) = &self.spec.record_in else {
            return Ok(());
        };
        records::write(
            data_dir,
            group.as_str(),
            self.spec.name.as_str(),
            dev,
            &self.spec.path,
        )
        .map_err(|e| DriverError::io("recording the mount for the lease guard", e))
    }

    fn forget(&self) -> Result<(), DriverError> {
        let Some((data_dir, group)) = &self.spec.record_in else {
            return Ok(());
        };
        records::remove(data_dir, group.as_str(), self.spec.name.as_str())
            .map_err(|e| DriverError::io("removing the mount's record", e))
    }

    pub async fn stop(&mut self) -> Result<(), DriverError> {
        self.stop_mount().await?;
        if let Some(dev) = self.device_number() {
            let deadline = Instant::now() + self.spec.stop_timeout;
            release_device(dev, deadline, STOP_RETRY).await?;
        }
        self.forget()
    }

    /// The device's number now, else the one it had at the start.
    fn device_number(&self) -> Option<(u32, u32)> {
        match std::fs::metadata(&self.spec.device) {
            Ok(m) if m.file_type().is_block_device() => {
                Some((libc::major(m.rdev()), libc::minor(m.rdev())))
            }
            _ => self.dev,
        }
    }

    async fn stop_mount(&mut self) -> Result<(), DriverError> {
        let dev = self.device_number();
        let deadline = Instant::now() + self.spec.stop_timeout;
        let entries = mountinfo::read().map_err(|e| DriverError::io("reading mountinfo", e))?;
        let ours = |e: &mountinfo::MountEntry| dev.is_none_or(|d| e.dev == d);
        if !mountinfo::mounted_at(&entries, &self.spec.path)
            .into_iter()
            .any(ours)
        {
            return Ok(());
        }
        let half = deadline - self.spec.stop_timeout / 2;
        for sub in mountinfo::below(&entries, &self.spec.path) {
            unmount(&sub.mount_point, sub.dev, half, deadline, STOP_RETRY).await?;
        }
        let dev = dev.unwrap_or_else(|| mountinfo::mounted_at(&entries, &self.spec.path)[0].dev);
        unmount(&self.spec.path, dev, half, deadline, STOP_RETRY).await
    }

    pub async fn check(&mut self) -> ResourceHealth {
        let (path, dev) = (self.spec.path.clone(), self.dev);
        let file = path.join(format!(".asctl-monitor-{}", self.spec.node));
        let what = self.label();
        self.check
            .check(&what, move || {
                let entries = mountinfo::read().map_err(|e| format!("reading mountinfo: {e}"))?;
                let top = mountinfo::mounted_at(&entries, &path);
                match (top.first(), dev) {
                    (None, _) => return Err("no longer mounted".into()),
                    (Some(t), Some(d)) if t.dev != d => {
                        return Err(format!(
                            "another file system is mounted there ({})",
                            t.source
                        ));
                    }
                    _ => {}
                }
                write_fsync_read(&file)
            })
            .await
    }
}

/// The file system check before mounting, with `fsck -p` semantics: repair
/// what is safe to repair without a human, refuse the mount otherwise. Run
/// for the ext family, where `e2fsck -p` also replays the journal and is
/// quick on a clean file system; xfs and btrfs replay their logs at mount
/// time and have no safe automatic repair, so they are mounted directly.
async fn fsck(s: &MountSpec) -> Result<(), DriverError> {
    if !matches!(s.fs_type.as_str(), "ext2" | "ext3" | "ext4") {
        return Ok(());
    }
    let mut cmd = Command::new(&s.fsck);
    cmd.arg("-t").arg(&s.fs_type).arg("-p").arg(&s.device);
    let (code, out) = run(cmd, "fsck").await?;
    match code {
        // 0: clean; 1: errors corrected; 2: corrected, reboot advised (only
        // meaningful for the root file system).
        0..=2 => Ok(()),
        // Killed (by the lease guard's fence, or the step timeout): the file
        // system was not found wanting, the check just did not finish.
        -1 => Err(DriverError::Failed(format!(
            "the check of {} was killed before it finished: {out}",
            s.device.display()
        ))),
        _ => Err(DriverError::Unavailable(format!(
            "the file system on {} has errors `fsck -p` does not repair safely (exit {code}): \
             check it by hand (`fsck -t {} {}`) before the group can start: {out}",
            s.device.display(),
            s.fs_type,
            s.device.display()
        ))),
    }
}

/// Runs a start-up command, killed at [`START_STEP_TIMEOUT`]: its exit code
/// (-1 for a signal) and its output for messages. The command leads a
/// process group of its own, killed whole at the timeout or when the caller
/// drops this future (a start cancelled by a fence): `fsck` runs the
/// checker (`e2fsck`) as its child, which must not outlive it.
async fn run(mut cmd: Command, what: &str) -> Result<(i32, String), DriverError> {
    use std::process::Stdio;
    cmd.kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let spawn_error = |e| DriverError::Spawn {
        what: what.into(),
        err: e,
    };
    let child = cmd.spawn().map_err(spawn_error)?;
    let group = GroupKill::of(&child);
    let out = tokio::time::timeout(START_STEP_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            DriverError::Failed(format!(
                "{what} did not finish within {START_STEP_TIMEOUT:?}"
            ))
        })?
        .map_err(spawn_error)?;
    group.disarm();
    let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let text = if text.is_empty() {
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    } else {
        text
    };
    Ok((out.status.code().unwrap_or(-1), text))
}

/// The stop's retry step while the file system is busy: holders given
/// SIGTERM need time to exit cleanly.
const STOP_RETRY: Duration = Duration::from_millis(200);

/// How often a busy unmount that finds no user by its open files searches
/// every process's memory maps as well.
const MAP_SEARCH_EVERY: Duration = Duration::from_millis(50);

/// Unmounts `path`, signalling the file system's users while it is busy:
/// SIGTERM until `half`, SIGKILL until `deadline`, retrying every `retry`.
/// The lease guard passes `half` = now: a fence kills at once.
pub(super) async fn unmount(
    path: &Path,
    dev: (u32, u32),
    half: Instant,
    deadline: Instant,
    retry: Duration,
) -> Result<(), DriverError> {
    let dev_number = holders::dev_number(dev.0, dev.1);
    let me = std::process::id() as i32;
    let mut last_holders = Vec::new();
    let mut next_map_search = Instant::now();
    loop {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        let result = umount_once(path, left).await;
        match result {
            Ok(Ok(())) | Ok(Err(Errno::EINVAL)) | Ok(Err(Errno::ENOENT)) => return Ok(()),
            Ok(Err(Errno::EBUSY)) => {}
            Ok(Err(e)) => {
                return Err(DriverError::Failed(format!(
                    "cannot unmount {}: {e}",
                    path.display()
                )));
            }
            Err(stuck) => {
                return Err(DriverError::Failed(format!(
                    "unmounting {} hung (the system call did not return within {} ms: the \
                     storage does not answer, or the unmount got no CPU; {}): it is still \
                     mounted{}",
                    path.display(),
                    left.as_millis(),
                    stuck,
                    used_by(&last_holders)
                )));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(DriverError::Failed(format!(
                "cannot unmount {}: still busy at the stop timeout{}",
                path.display(),
                used_by(&last_holders)
            )));
        }
        let signal = if now < half {
            Signal::SIGTERM
        } else {
            Signal::SIGKILL
        };
        last_holders = holders::find_without_maps(Path::new("/proc"), dev_number, me);
        // A file system stays busy for a moment after its last user has
        // gone (an exiting process drops its files and mappings after it
        // leaves /proc's lists): searching the maps at every step of that
        // moment is what costs, so at most once per MAP_SEARCH_EVERY.
        if last_holders.is_empty() && now >= next_map_search {
            last_holders = holders::find(Path::new("/proc"), dev_number, me);
            next_map_search = now + MAP_SEARCH_EVERY;
        }
        for h in &last_holders {
            // Already gone is fine; anything else shows in the final error.
            let _ = kill(Pid::from_raw(h.pid), signal);
        }
        let pids: Vec<i32> = last_holders.iter().map(|h| h.pid).collect();
        if signal == Signal::SIGKILL {
            crate::drivers::process::hasten_exit(&pids);
        }
        let until = if signal == Signal::SIGTERM {
            half
        } else {
            deadline
        };
        // Busy with nobody found (a file system stays busy for a moment
        // after its last user has gone): the next search of all of /proc
        // waits a little longer, so that at the guard's real-time priority
        // the search does not take the CPU the moment needs.
        let step = if pids.is_empty() {
            retry.max(IDLE_RETRY)
        } else {
            retry
        };
        wait_gone(&pids, until, step).await;
    }
}

/// The least step of a busy unmount that found no user to wait for.
const IDLE_RETRY: Duration = Duration::from_millis(20);

/// The users of a mount that would not go, for its error: each with how it
/// uses the file system and what its threads are doing
/// ([`holders::thread_states`]: in the kernel, waiting for a CPU, or
/// exited but for a thread still holding the process's files).
fn used_by(last: &[holders::Holder]) -> String {
    if last.is_empty() {
        return "; no process found using it".into();
    }
    let who: Vec<String> = last
        .iter()
        .map(|h| {
            let threads = holders::thread_states(Path::new("/proc"), h.pid);
            format!("{} ({}; {threads})", h.pid, h.how)
        })
        .collect();
    format!("; used by pid {}", who.join(", "))
}

/// Sleeps `retry`, then on until every process in `pids` has exited
/// (checked every `retry`) or `until` has passed. The unmount is retried
/// only then: a new search for holders reads every process's memory map (tens
/// to hundreds of milliseconds of CPU on a busy machine), and the lease
/// guard runs it at real-time priority, where repeating it every `retry`
/// while a killed process is still exiting would take the CPU from
/// everything else the unmount needs — and, in a cgroup with a real-time
/// budget, exhaust it and stall the guard until the next period.
async fn wait_gone(pids: &[i32], until: Instant, retry: Duration) {
    loop {
        tokio::time::sleep(retry).await;
        if pids.iter().all(|&pid| gone(pid)) || Instant::now() >= until {
            return;
        }
    }
}

/// Whether process `pid` has exited: gone, or a zombie (which holds no
/// file and no mount) — every thread of it, not only its leader
/// ([`crate::drivers::process::alive`]).
fn gone(pid: i32) -> bool {
    !crate::drivers::process::alive(pid)
}

/// Waits until no process of this node has the block device `dev` open,
/// SIGKILLing every one that does, retrying every `retry` until `deadline`;
/// returns the pids it signalled.
/// Such a process writes to the disk without a mount (a file system check,
/// `mkfs`), so the disk is released only once it is gone; its exit also
/// flushes what it left in the device's page cache (the kernel writes a
/// block device back on its last close). Skipped: this process, and its
/// parent — the lease guard's parent is the agent, which opens the raw
/// device only to read (the shared disk's monitor) and must survive a fence
/// to be woken.
pub(super) async fn release_device(
    dev: (u32, u32),
    deadline: Instant,
    retry: Duration,
) -> Result<Vec<i32>, DriverError> {
    let skip = [std::process::id() as i32, nix::unistd::getppid().as_raw()];
    let rdev = holders::dev_number(dev.0, dev.1);
    let mut killed = Vec::new();
    loop {
        let left = holders::openers(Path::new("/proc"), rdev, &skip);
        if left.is_empty() {
            return Ok(killed);
        }
        if Instant::now() >= deadline {
            let pids: Vec<String> = left
                .iter()
                .map(|h| {
                    let threads = holders::thread_states(Path::new("/proc"), h.pid);
                    format!("{} ({threads})", h.pid)
                })
                .collect();
            return Err(DriverError::Failed(format!(
                "the device {}:{} is still open after SIGKILL, by pid {}",
                dev.0,
                dev.1,
                pids.join(", ")
            )));
        }
        for h in &left {
            // Already gone is fine; one that stays shows at the deadline.
            let _ = kill(Pid::from_raw(h.pid), Signal::SIGKILL);
            if !killed.contains(&h.pid) {
                killed.push(h.pid);
            }
        }
        let pids: Vec<i32> = left.iter().map(|h| h.pid).collect();
        crate::drivers::process::hasten_exit(&pids);
        wait_gone(&pids, deadline, retry).await;
    }
}

/// The monitor's I/O: write a small record, fsync it, read it back.
fn write_fsync_read(file: &Path) -> Result<(), String> {
    use std::io::Write;
    let stamp = format!(
        "{:?}\n",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
    );
    let mut f =
        std::fs::File::create(file).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    f.write_all(stamp.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("write+fsync of {} failed: {e}", file.display()))?;
    drop(f);
    let back = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    if back == stamp {
        Ok(())
    } else {
        Err(format!(
            "{} reads back other data than written",
            file.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_process_is_not_gone_and_a_reaped_one_is() {
        assert!(!gone(std::process::id() as i32));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        assert!(gone(pid));
    }

    #[tokio::test]
    async fn waiting_for_no_process_ends_after_one_step_and_a_live_one_at_the_bound() {
        let t = Instant::now();
        wait_gone(&[], t + Duration::from_secs(5), Duration::from_millis(5)).await;
        assert!(t.elapsed() < Duration::from_secs(5));
        let me = std::process::id() as i32;
        wait_gone(
            &[me],
            t + Duration::from_millis(50),
            Duration::from_millis(5),
        )
        .await;
        assert!(t.elapsed() >= Duration::from_millis(50));
    }
}
