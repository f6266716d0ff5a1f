//! Storage faults: every node's data directory on an ext4 file system of
//! its own (a loop device over a file in `/dev/shm`, so that the raft
//! log's fsyncs cost what they cost on tmpfs, not the shared disk's
//! latency). `DiskFull` fills it while the domain keeps writing; `DiskRo`
//! shuts it down under the agent, as a failed disk: every write and fsync
//! then fails with EIO. In both, the node's raft core fails at its next
//! append, and the agent must fail-stop (its groups fenced, exit non-zero)
//! rather than keep running its groups while the others start them; the
//! harness repairs the storage and starts it again, as an operator (or a
//! service manager after the operator) would. `DiskSlow` throttles the
//! agent's own writes to the device so that every fsync takes seconds: the
//! raft core neither fails nor progresses, and the agent must fail-stop on
//! the stall.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use super::{Lab, run};
use std::os::unix::fs::MetadataExt;

/// Each node's data file system: large enough for many rounds' raft log.
const SIZE: u64 = 64 << 20;
/// How long the disk stays full or shut down: writes go on meanwhile.
const HOLD: Duration = Duration::from_secs(6);

/// An ext4 file system on a loop device (`mount -o loop`: detached when
/// unmounted) at a node's data directory, over a file in `/dev/shm`;
/// unmounted and deleted when dropped.
pub struct DataFs {
    mount: PathBuf,
    backing: PathBuf,
    /// The node's directory, bound on itself as a shared mount.
    parent: PathBuf,
}

impl DataFs {
    pub fn mount(path: &Path) -> DataFs {
        std::fs::create_dir_all(path).expect("data dir");
        // The node's directory bound on itself and shared: the mount
        // namespaces that `ip netns exec` gives every process it starts
        // (agents, guards, groups' processes, the observer's monitors)
        // hold copies of the data file system as slaves of it, so that an
        // unmount here unmounts them too. Under a private parent they would
        // keep the shut-down file system alive, and mounting the file
        // again would attach that same dead file system.
        let parent = path.parent().expect("a node directory").to_owned();
        for args in [&["--bind"][..], &["--make-shared"][..]] {
            let mut cmd = Command::new("mount");
            cmd.args(args);
            if args == ["--bind"] {
                cmd.arg(&parent);
            }
            let o = run(cmd.arg(&parent));
            assert!(o.status.success(), "mount {args:?}: {}", super::text(&o));
        }
        let backing = tempfile::Builder::new()
            .prefix("asctl-chaos-data-")
            .tempfile_in("/dev/shm")
            .expect("backing file in /dev/shm")
            .into_temp_path()
            .keep()
            .expect("keep the backing file");
        std::fs::File::options()
            .write(true)
            .open(&backing)
            .and_then(|f| f.set_len(SIZE))
            .expect("size the backing file");
        let o = run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(&backing));
        assert!(o.status.success(), "mkfs.ext4: {}", super::text(&o));
        let fs = DataFs {
            mount: path.to_owned(),
            backing,
            parent,
        };
        fs.attach();
        // The agent's data directory: its own, nothing else in it.
        let _ = std::fs::remove_dir(path.join("lost+found"));
        fs
    }

    fn attach(&self) {
        let o = run(Command::new("mount")
            .args(["-t", "ext4", "-o", "loop"])
            .arg(&self.backing)
            .arg(&self.mount));
        assert!(o.status.success(), "mount ext4: {}", super::text(&o));
        let o = run(Command::new("chmod").arg("0700").arg(&self.mount));
        assert!(o.status.success(), "chmod: {}", super::text(&o));
    }

    /// Unmounts (retrying while the last holders go: the lease guard, a
    /// fenced process), checks the file system and mounts it again.
    fn repair(&self) -> Result<(), String> {
        let t0 = Instant::now();
        loop {
            let o = run(Command::new("umount").arg(&self.mount));
            if o.status.success() {
                break;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                return Err(format!(
                    "the shut-down data file system stays busy: {}",
                    super::text(&o)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The loop device goes with the last mount of the file system, in
        // any namespace ([`Self::attach`]).
        while attached(&self.backing) {
            if t0.elapsed() > Duration::from_secs(10) {
                return Err(format!(
                    "the shut-down data file system is still held 10 s after the agent \
                     exited, mounted in the namespaces of {:?}",
                    holders(&self.mount)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The journal was flushed at the shutdown: a check finds it clean
        // or repairs it; 0 and 1 (corrected) are success.
        let o = run(Command::new("e2fsck").args(["-f", "-y"]).arg(&self.backing));
        if !matches!(o.status.code(), Some(0 | 1)) {
            return Err(format!("e2fsck after the shutdown: {}", super::text(&o)));
        }
        self.attach();
        Ok(())
    }
}

/// The processes whose mount namespace has `mount` mounted, with their
/// command lines.
fn holders(mount: &Path) -> Vec<String> {
    let needle = format!(" {} ", mount.display());
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
                .is_ok_and(|m| m.contains(&needle))
        })
        .map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            format!("{pid} {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
        })
        .collect()
}

/// Whether a loop device is attached to `backing`.
fn attached(backing: &Path) -> bool {
    let o = run(Command::new("losetup").arg("-j").arg(backing));
    !String::from_utf8_lossy(&o.stdout).trim().is_empty()
}

impl Drop for DataFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
        let _ = Command::new("umount").arg(&self.parent).status();
        let _ = std::fs::remove_file(&self.backing);
    }
}

/// Writes zeros to `dir/filler` until the file system is full.
fn fill(dir: &Path) {
    let mut f = std::fs::File::create(dir.join("filler")).expect("filler");
    let block = vec![0u8; 1 << 16];
    while f.write_all(&block).is_ok() {}
    while f.write_all(&block[..64]).is_ok() {}
    let _ = f.sync_all();
}

/// `DiskFull` on node `victim`: fills its data file system, makes the
/// domain write (`asctl clear web`, one append on every member) until its
/// agent exits or [`HOLD`] passed, frees the space and, if the agent exited,
/// checks how and starts it again. An agent that kept running on a full
/// disk is a violation only if it also kept its raft core running is not
/// knowable from outside: its log must say the raft core stopped if it
/// exited, and the observer's invariants do the rest.
pub fn disk_full(lab: &mut Lab, victim: usize) -> Result<(), String> {
    let name = lab.nodes[victim].name.clone();
    let data = lab.path(&format!("nodes/{name}/data"));
    fill(&data);
    let t0 = Instant::now();
    let exited = write_until_exit(lab, victim, HOLD);
    let _ = std::fs::remove_file(data.join("filler"));
    let Some(status) = exited else {
        eprintln!("chaos disk-full: {name}'s agent kept running ({HOLD:?} on a full disk)");
        return Ok(());
    };
    let log =
        std::fs::read_to_string(lab.path(&format!("nodes/{name}/agent.log"))).unwrap_or_default();
    eprintln!(
        "chaos disk-full: {name}'s agent stopped after {:.2} s ({status}); started again",
        t0.elapsed().as_secs_f64()
    );
    lab.start_agent(Some(victim));
    if status.success() || !log.contains("No space left on device") {
        return Err(format!(
            "{name}'s agent exited on a full disk with {status}, its log not naming the cause"
        ));
    }
    Ok(())
}

/// `EXT4_IOC_SHUTDOWN` (the same number as XFS's `XFS_IOC_GOINGDOWN`):
/// `_IOR('X', 125, __u32)`.
const EXT4_IOC_SHUTDOWN: u64 = 0x8004_587d;
/// Flush the journal, then fail every I/O: the disk is gone, and what the
/// file system acknowledged as durable (every fsync) survives.
const EXT4_GOING_FLAGS_LOGFLUSH: u32 = 1;

/// Shuts down the file system mounted at `dir`.
fn shut_down(dir: &Path) -> Result<(), String> {
    let d = std::fs::File::open(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let flags = EXT4_GOING_FLAGS_LOGFLUSH;
    // SAFETY: a valid descriptor and a pointer to a u32, as the ioctl takes.
    let rc = unsafe { libc::ioctl(d.as_raw_fd(), EXT4_IOC_SHUTDOWN as _, &flags) };
    if rc != 0 {
        return Err(format!(
            "EXT4_IOC_SHUTDOWN on {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Makes the domain write (`asctl clear web`: one append on every member)
/// until `victim`'s agent exits or `hold` passed; how it exited.
fn write_until_exit(lab: &mut Lab, victim: usize, hold: Duration) -> Option<ExitStatus> {
    write_until(lab, victim, hold, &|| false)
}

/// [`write_until_exit`], also ending (with `None`) once `done` holds.
fn write_until(
    lab: &mut Lab,
    victim: usize,
    hold: Duration,
    done: &dyn Fn() -> bool,
) -> Option<ExitStatus> {
    let name = lab.nodes[victim].name.clone();
    let other = lab
        .nodes
        .iter()
        .find(|n| n.name != name)
        .map(|n| n.host)
        .expect("another node");
    let t0 = Instant::now();
    // One write at a time, never waited for here: in a domain of two nodes
    // a write blocks while the victim is down (no quorum), and the agent's
    // exit must still be seen within `hold`.
    let mut write: Option<std::process::Child> = None;
    let mut exited = None;
    while t0.elapsed() < hold && !done() {
        let agent = lab.nodes[victim].agent.as_mut();
        if let Some(status) = agent.and_then(|c| c.try_wait().ok().flatten()) {
            lab.nodes[victim].agent = None;
            exited = Some(status);
            break;
        }
        if write
            .as_mut()
            .is_none_or(|w| w.try_wait().ok().flatten().is_some())
        {
            write = lab
                .asctl_command(&["clear", "web"], other)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(mut w) = write {
        let _ = w.kill();
        let _ = w.wait();
    }
    exited
}

/// What the agent logged at `path` after its first `before` bytes.
fn log_since(path: &Path, before: usize) -> String {
    let log = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(log.get(before..).unwrap_or_default()).into_owned()
}

/// Kills the victim's agent that a disk fault did not stop.
fn kill_agent(lab: &mut Lab, victim: usize) {
    if let Some(mut c) = lab.nodes[victim].agent.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Whether the guard's fence, in `log`, removed the service address (among
/// others: the node may hold db's too).
fn guard_fenced_vip(log: &str) -> bool {
    let vip = format!("\"{}/24\"", super::VIP);
    log.lines().any(|l| {
        l.contains("asctl guard: fenced")
            && l.split_once("removed addresses [")
                .is_some_and(|(_, removed)| {
                    removed.split(']').next().is_some_and(|r| r.contains(&vip))
                })
    })
}

/// `DiskRo` on node `victim`: its data file system shut down
/// (`EXT4_IOC_SHUTDOWN`: every later write, fsync and metadata change
/// fails with EIO — a disk lost under a mounted file system, or one that
/// ext4 took read-only on an error), while the domain writes. The agent
/// must exit non-zero naming the I/O error within [`HOLD`]; then the file
/// system is unmounted, checked, mounted again, and the agent started.
pub fn disk_ro(lab: &mut Lab, victim: usize, holder: bool) -> Result<(), String> {
    let name = lab.nodes[victim].name.clone();
    let log_path = lab.path(&format!("nodes/{name}/agent.log"));
    let before = std::fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
    let t0 = Instant::now();
    shut_down(&lab.data_fs(victim).mount)?;
    let exited = write_until_exit(lab, victim, HOLD);
    let log = log_since(&log_path, before);
    // The guard fences first, from the records it read before the file
    // system failed (reading them now fails too): the address must be in
    // its fence, not left to the agent's own stop.
    let guard_fenced = guard_fenced_vip(&log);
    let verdict = match exited {
        None => {
            kill_agent(lab, victim);
            Err(format!(
                "{name}'s agent kept running {HOLD:?} on a shut-down data file system"
            ))
        }
        Some(status) if status.success() || !log.contains("Input/output error") => Err(format!(
            "{name}'s agent exited on a shut-down file system with {status}, its log not \
             naming the I/O error"
        )),
        Some(_) if holder && !guard_fenced => Err(format!(
            "{name}'s lease guard did not remove the address of the group it held \
             (its fence read no records from the failed file system)"
        )),
        Some(status) => {
            eprintln!(
                "chaos disk-ro: {name}'s agent stopped after {:.2} s ({status})",
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        }
    };
    lab.data_fs(victim).repair()?;
    lab.start_agent(Some(victim));
    verdict
}

/// The blkio (cgroup v1) hierarchy `DiskSlow` throttles in.
const BLKIO: &str = "/sys/fs/cgroup/blkio";
/// `DiskSlow`'s limit on the agent's writes to its data device: a raft
/// append's fdatasync writes at least one block, so it takes seconds
/// (about 5 s on the kernel the harness was written on).
const SLOW_BPS: u32 = 200;
/// How long `DiskSlow` waits for the agent to fail-stop: its stall limit
/// (`max(3T, 3 s)`), the fail-stop's bounded waits, and the exit, which
/// waits for the write in flight.
const SLOW_HOLD: Duration = Duration::from_secs(25);

/// A blkio cgroup whose members' writes to one device are throttled.
/// What is slowed, honestly: the write requests the member processes
/// submit themselves — the data an fsync or fdatasync writes back, and
/// direct I/O. Not slowed: ext4's journal commit (the jbd2 kernel thread
/// is not a member) and the kernel's background writeback of buffered
/// writes (cgroup v1 does not charge it to the writer). So every raft
/// append, vote or snapshot (each fsyncs its data) waits; a write that
/// nothing fsyncs does not.
struct Throttle {
    dir: PathBuf,
    device: String,
}

impl Throttle {
    /// Throttles process `pid`'s writes to the device under `data` (the
    /// process's threads, and those it starts later, go into the cgroup;
    /// its lease guard and group processes, started before, stay out).
    fn start(data: &Path, pid: u32) -> Result<Throttle, String> {
        let knob = Path::new(BLKIO).join("blkio.throttle.write_bps_device");
        if !knob.exists() {
            return Err(format!(
                "DiskSlow needs the cgroup v1 blkio controller ({} is missing)",
                knob.display()
            ));
        }
        let dev = std::fs::metadata(data)
            .map_err(|e| format!("{}: {e}", data.display()))?
            .dev();
        let device = format!("{}:{}", libc::major(dev), libc::minor(dev));
        let dir = Path::new(BLKIO).join(format!("asctl-chaos-slow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let t = Throttle { dir, device };
        t.write(
            "blkio.throttle.write_bps_device",
            &format!("{} {SLOW_BPS}", t.device),
        )?;
        t.write("cgroup.procs", &pid.to_string())?;
        Ok(t)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        let path = self.dir.join(file);
        std::fs::write(&path, value).map_err(|e| format!("{} <- {value}: {e}", path.display()))
    }
}

impl Drop for Throttle {
    /// Lifts the limit (the writes it held go through at once), moves any
    /// process left back to the root cgroup and removes the cgroup.
    fn drop(&mut self) {
        let _ = self.write(
            "blkio.throttle.write_bps_device",
            &format!("{} 0", self.device),
        );
        let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.split_whitespace() {
            let _ = std::fs::write(Path::new(BLKIO).join("cgroup.procs"), pid);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// `DiskSlow` on node `victim`: its agent's writes to its data device
/// throttled ([`Throttle`]) while the domain writes. Its raft core's next
/// append waits for an fsync of seconds: the agent must fail-stop on the
/// stall — exit non-zero, its log naming the storage call that did not
/// return, its guard fencing what it held — within [`SLOW_HOLD`], and be
/// gone within [`HOLD`] of the limit being lifted; then it is started again.
pub fn disk_slow(lab: &mut Lab, victim: usize, holder: bool) -> Result<(), String> {
    let name = lab.nodes[victim].name.clone();
    let log_path = lab.path(&format!("nodes/{name}/agent.log"));
    let before = std::fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
    let pid = lab.nodes[victim]
        .agent
        .as_ref()
        .map(|c| c.id())
        .ok_or_else(|| format!("{name} has no agent to slow down"))?;
    let t0 = Instant::now();
    let throttle = Throttle::start(&lab.data_fs(victim).mount, pid)?;
    let fail_stopped = || log_since(&log_path, before).contains("fail-stop:");
    let mut exited = write_until(lab, victim, SLOW_HOLD, &fail_stopped);
    // The agent has fail-stopped (its guard fenced at once), but a thread
    // of it may still be in the throttled fsync, in the kernel's
    // uninterruptible sleep, and no process exits before such a call
    // returns — at 200 B/s, seconds or minutes, depending on what the
    // file system had to write. The disk recovers (the limit is lifted),
    // and the agent must then be gone at once.
    drop(throttle);
    if exited.is_none() && fail_stopped() {
        exited = write_until_exit(lab, victim, HOLD);
    }
    let log = log_since(&log_path, before);
    let verdict = match exited {
        None => {
            kill_agent(lab, victim);
            Err(format!(
                "{name}'s agent kept running {SLOW_HOLD:?} while its raft log's fsyncs took seconds"
            ))
        }
        Some(status) if status.success() || !log.contains("has not returned") => Err(format!(
            "{name}'s agent exited on a slow disk with {status}, its log not naming the stalled \
             storage call"
        )),
        Some(_) if holder && !guard_fenced_vip(&log) => Err(format!(
            "{name}'s lease guard did not remove the address of the group it held"
        )),
        Some(status) => {
            eprintln!(
                "chaos disk-slow: {name}'s agent stopped after {:.2} s ({status})",
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        }
    };
    lab.start_agent(Some(victim));
    verdict
}
