//! The event-driven check of `db`'s file system: mounted in at most one
//! node's mount namespace at any instant. The kernel signals every change
//! of a mount namespace's mount table to a `poll` on an open
//! `/proc/PID/mountinfo` of a process in it (`POLLPRI | POLLERR`, what
//! `findmnt --poll` waits for), so one thread per node follows its
//! namespace — through the process that holds it (`db::boot`'s `sleep`) —
//! and re-reads the table on each change: a double mount is caught however
//! short, and stamped with the wall clock when it was read
//! ([`addr_watch::Overlap`], shared with the address watch).
//!
//! The open `mountinfo` holds a reference to the namespace, which would
//! keep a crashed node's mounts alive: each thread also polls a pidfd of
//! the process it follows and lets go the moment it exits. A node with no
//! namespace (down, or booting) is looked for again every
//! [`LOOK_AGAIN`]; its first table is read as soon as it is found, so a
//! mount made before is seen too.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::addr_watch::Overlap;
use super::db;

/// How often a node without a mount namespace is looked for again, and how
/// long one poll waits before it looks at the stop flag.
const LOOK_AGAIN: Duration = Duration::from_millis(20);
const POLL_MS: i32 = 100;

struct Shared {
    /// Nodes whose namespace has one of the LUN's loop devices mounted.
    mounted: BTreeSet<String>,
    overlap: Overlap,
    /// Tables read, and mounts of the LUN seen: printed at the end, the
    /// proof that the watch saw the run.
    reads: usize,
    mounts: usize,
}

impl Shared {
    fn new(violations: Arc<Mutex<Vec<String>>>) -> Self {
        Shared {
            mounted: BTreeSet::new(),
            overlap: Overlap::new(
                "db's file system mounted".into(),
                "mount events",
                violations,
            ),
            reads: 0,
            mounts: 0,
        }
    }

    /// A table of `node` read: whether it has the LUN mounted.
    fn read(&mut self, node: &str, mounted: bool) {
        self.reads += 1;
        self.set(node, mounted);
    }

    fn set(&mut self, node: &str, mounted: bool) {
        let changed = if mounted {
            self.mounted.insert(node.to_owned())
        } else {
            self.mounted.remove(node)
        };
        self.mounts += usize::from(changed && mounted);
        if changed {
            self.overlap.update(self.mounted.iter().cloned().collect());
        }
    }
}

/// The running watch; dropping it stops the threads and reports an overlap
/// still open.
pub struct MountWatch {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl MountWatch {
    /// Watches `nodes` (name, network namespace) for a mount of any of
    /// `devnums` (mountinfo's `MAJOR:MINOR`), adding violations to
    /// `violations`.
    pub fn start(
        nodes: &[(String, String)],
        devnums: Arc<Vec<String>>,
        violations: Arc<Mutex<Vec<String>>>,
    ) -> MountWatch {
        let shared = Arc::new(Mutex::new(Shared::new(violations)));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = nodes
            .iter()
            .map(|(name, ns)| {
                let node = Node {
                    name: name.clone(),
                    ns: ns.clone(),
                    devnums: devnums.clone(),
                    shared: shared.clone(),
                    stop: stop.clone(),
                };
                std::thread::spawn(move || node.run())
            })
            .collect();
        MountWatch {
            shared,
            stop,
            threads,
        }
    }
}

impl Drop for MountWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let mut s = self.shared.lock().expect("mount watch");
        s.overlap.close();
        eprintln!(
            "chaos mount watch: {} mount tables read, db's file system mounted {} times",
            s.reads, s.mounts
        );
    }
}

/// One node's thread.
struct Node {
    name: String,
    ns: String,
    devnums: Arc<Vec<String>>,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
}

impl Node {
    fn run(self) {
        let mut last_ns = None;
        while !self.stop.load(Ordering::SeqCst) {
            match holder(&self.ns, last_ns.as_ref()) {
                Some((pid, ns)) => {
                    last_ns = Some(ns);
                    self.follow(pid);
                }
                None => {
                    // No process left in it: the namespace, and its mounts,
                    // are gone.
                    self.gone();
                    std::thread::sleep(LOOK_AGAIN);
                }
            }
        }
    }

    /// No namespace: nothing mounted.
    fn gone(&self) {
        self.shared
            .lock()
            .expect("mount watch")
            .set(&self.name, false);
    }

    /// Follows the mount table of `pid`'s namespace until `pid` exits (or
    /// the watch stops): read now, and again on every change.
    fn follow(&self, pid: i32) {
        let (Ok(mut table), Some(exited)) =
            (File::open(format!("/proc/{pid}/mountinfo")), pidfd(pid))
        else {
            // Exited since it was found: look again, without spinning.
            std::thread::sleep(LOOK_AGAIN);
            return;
        };
        let mut text = String::new();
        loop {
            text.clear();
            if table.rewind().is_err() || table.read_to_string(&mut text).is_err() {
                return;
            }
            let mounted = mounts_any(&text, &self.devnums);
            self.shared
                .lock()
                .expect("mount watch")
                .read(&self.name, mounted);
            // Until the table changes or the process exits.
            loop {
                if self.stop.load(Ordering::SeqCst) {
                    return;
                }
                let mut fds = [
                    libc::pollfd {
                        fd: table.as_raw_fd(),
                        events: libc::POLLPRI,
                        revents: 0,
                    },
                    libc::pollfd {
                        fd: exited.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    },
                ];
                // SAFETY: `fds` is a valid array of two pollfds.
                let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, POLL_MS) };
                if n < 0
                    && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
                {
                    return;
                }
                if fds[1].revents != 0 {
                    // Let go of the namespace at once (see the module doc).
                    return;
                }
                if fds[0].revents & (libc::POLLPRI | libc::POLLERR) != 0 {
                    break;
                }
            }
        }
    }
}

/// Whether a mountinfo table has one of `devnums` mounted (its third
/// field).
pub fn mounts_any(table: &str, devnums: &[String]) -> bool {
    table.lines().any(|line| {
        line.split(' ')
            .nth(2)
            .is_some_and(|d| devnums.iter().any(|x| x == d))
    })
}

/// A process of network namespace `ns` in a mount namespace other than the
/// harness's, and that namespace: the node's `sleep` that holds it first,
/// else one in the namespace followed last.
fn holder(ns: &str, last: Option<&PathBuf>) -> Option<(i32, PathBuf)> {
    let host = std::fs::read_link("/proc/self/ns/mnt").ok()?;
    let mut same = None;
    for pid in db::pids_of(ns) {
        let Ok(mnt) = std::fs::read_link(format!("/proc/{pid}/ns/mnt")) else {
            continue;
        };
        if mnt == host {
            continue;
        }
        if std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == b"sleep\0infinity\0") {
            return Some((pid, mnt));
        }
        if same.is_none() && last == Some(&mnt) {
            same = Some((pid, mnt));
        }
    }
    same
}

/// A pidfd of `pid`: readable once the process has exited.
fn pidfd(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative result is a new fd that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_mounts_the_lun_when_a_loop_device_is_in_it() {
        let devnums = vec!["7:3".to_owned(), "7:4".to_owned()];
        let table = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                     97 1 7:4 / /tmp/x/srv/db rw,relatime - ext4 /dev/loop4 rw\n";
        assert!(mounts_any(table, &devnums));
        let bound = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                     98 1 0:5 /loop4 /tmp/x/dev/db-lun rw - devtmpfs udev rw\n";
        assert!(
            !mounts_any(bound, &devnums),
            "the device's bind is not a mount"
        );
    }

    /// Needs root: two network namespaces (`s2mw-a`, `s2mw-b`), each with
    /// a mount namespace held by `sleep infinity` as `db::boot` makes them,
    /// and one loop device over a small ext4 file, mounted in `a`, then in
    /// `b` and at once unmounted there: the overlap lasts a few
    /// milliseconds, far less than a poll's period.
    #[test]
    #[ignore]
    fn a_mount_in_two_namespaces_for_an_instant_is_caught() {
        use std::process::Command;
        let dir = tempfile::tempdir().expect("tempdir");
        let img = dir.path().join("lun.img");
        File::create(&img)
            .and_then(|f| f.set_len(8 << 20))
            .expect("image");
        let ok = |c: &mut Command| {
            let o = c.output().expect("run");
            assert!(
                o.status.success(),
                "{c:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8_lossy(&o.stdout).trim().to_owned()
        };
        ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        let dev = ok(Command::new("losetup").args(["--find", "--show"]).arg(&img));
        let rdev = std::os::unix::fs::MetadataExt::rdev(&std::fs::metadata(&dev).expect("loop"));
        let devnums = Arc::new(vec![format!("{}:{}", libc::major(rdev), libc::minor(rdev))]);
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mkdir");
        let mut inits = Vec::new();
        let mut nodes = Vec::new();
        for ns in ["s2mw-a", "s2mw-b"] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(std::process::Stdio::null())
                .status();
            ok(Command::new("ip").args(["netns", "add", ns]));
            let init = Command::new("ip")
                .args(["netns", "exec", ns, "unshare", "--mount", "--propagation"])
                .args(["slave", "sleep", "infinity"])
                .spawn()
                .expect("unshare");
            inits.push(init);
            nodes.push((ns.to_owned(), ns.to_owned()));
        }
        std::thread::sleep(Duration::from_millis(300));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let watch = MountWatch::start(&nodes, devnums, violations.clone());
        std::thread::sleep(Duration::from_millis(300));
        let enter = |init: &std::process::Child, script: &str| {
            ok(Command::new("nsenter")
                .arg("-t")
                .arg(init.id().to_string())
                .args(["-m", "sh", "-c", script, "sh", &dev])
                .arg(&mnt));
        };
        enter(&inits[0], "mount \"$1\" \"$2\"");
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            violations.lock().expect("v").is_empty(),
            "one mount is no violation"
        );
        enter(&inits[1], "mount \"$1\" \"$2\" && umount \"$2\"");
        std::thread::sleep(Duration::from_millis(300));
        let v = violations.lock().expect("v").clone();
        // Killing `a`'s namespace unmounts its file system.
        for mut init in inits {
            let _ = init.kill();
            let _ = init.wait();
        }
        std::thread::sleep(Duration::from_millis(300));
        drop(watch);
        for ns in ["s2mw-a", "s2mw-b"] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(std::process::Stdio::null())
                .status();
        }
        let _ = Command::new("losetup").args(["-d", &dev]).status();
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("[\"s2mw-a\", \"s2mw-b\"]"), "{v:?}");
    }

    #[test]
    fn a_double_mount_is_a_violation_as_it_starts() {
        let violations = Arc::new(Mutex::new(Vec::new()));
        let mut s = Shared::new(violations.clone());
        s.set("node1", true);
        s.set("node1", true);
        assert!(violations.lock().expect("v").is_empty());
        s.set("node2", true);
        let v = violations.lock().expect("v").clone();
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("[\"node1\", \"node2\"]"), "{v:?}");
        s.set("node1", false);
        s.set("node1", true);
        assert_eq!(violations.lock().expect("v").len(), 2, "a second overlap");
    }
}
