//! Storage faults: every node's data directory on an ext4 file system of
//! its own (a loop device over a file in `/dev/shm`, so that the raft
//! log's fsyncs cost what they cost on tmpfs, not the shared disk's
//! latency). `DiskFull` fills it while the domain keeps writing; `DiskRo`
//! shuts it down under the agent, as a failed disk: every write and fsync
//! then fails with EIO. In both, the node's raft core fails at its next
//! append, and the agent must fail-stop (its groups fenced, exit non-zero)
//! rather than keep running its groups while the others start them; the
//! harness repairs the storage and starts it again, as an operator (or a
//! service manager after the operator) would.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use super::{Lab, run};

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
    let exited = write_until_exit(lab, victim);
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
/// until `victim`'s agent exits or [`HOLD`] passed; how it exited.
fn write_until_exit(lab: &mut Lab, victim: usize) -> Option<ExitStatus> {
    let name = lab.nodes[victim].name.clone();
    let other = lab
        .nodes
        .iter()
        .find(|n| n.name != name)
        .map(|n| n.host)
        .expect("another node");
    let t0 = Instant::now();
    while t0.elapsed() < HOLD {
        let agent = lab.nodes[victim].agent.as_mut();
        if let Some(status) = agent.and_then(|c| c.try_wait().ok().flatten()) {
            lab.nodes[victim].agent = None;
            return Some(status);
        }
        let _ = lab.asctl(&["clear", "web"], other);
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// `DiskRo` on node `victim`: its data file system shut down
/// (`EXT4_IOC_SHUTDOWN`: every later write, fsync and metadata change
/// fails with EIO — a disk lost under a mounted file system, or one that
/// ext4 took read-only on an error), while the domain writes. The agent
/// must exit non-zero naming the I/O error within [`HOLD`]; then the file
/// system is unmounted, checked, mounted again, and the agent started.
pub fn disk_ro(lab: &mut Lab, victim: usize) -> Result<(), String> {
    let name = lab.nodes[victim].name.clone();
    let t0 = Instant::now();
    shut_down(&lab.data_fs(victim).mount)?;
    let exited = write_until_exit(lab, victim);
    let log =
        std::fs::read_to_string(lab.path(&format!("nodes/{name}/agent.log"))).unwrap_or_default();
    let verdict = match exited {
        None => {
            if let Some(mut c) = lab.nodes[victim].agent.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            Err(format!(
                "{name}'s agent kept running {HOLD:?} on a shut-down data file system"
            ))
        }
        Some(status) if status.success() || !log.contains("Input/output error") => Err(format!(
            "{name}'s agent exited on a shut-down file system with {status}, its log not \
             naming the I/O error"
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
