//! The storage lab: a backing file is the SAN LUN, loop devices over it with
//! direct I/O are each node's view of the LUN (distinct block devices, so
//! distinct superblocks: a double mount is as real a hazard as with two
//! hosts on one LUN). Needs root; every loop device is detached on drop.
//! `node.rs`: a one-node domain whose agent holds a group on the lab.

#![allow(dead_code)]

pub mod node;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// One storage lab at a time in this test binary: the kernel hands a loop
/// device just detached by one test to the next `losetup --find` of
/// another while the first test's last holder may still have it open.
static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

pub fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A formatted LUN (the backing file) in a temporary directory.
pub struct Lun {
    pub dir: tempfile::TempDir,
    pub file: PathBuf,
    /// Held until the LUN is dropped, after the loop devices declared
    /// after it.
    _serial: MutexGuard<'static, ()>,
}

impl Lun {
    /// `fs_type`: ext4 (64 MiB) or xfs (300 MiB, its minimum); sparse.
    pub fn new(fs_type: &str) -> Lun {
        assert!(is_root(), "the storage lab needs root");
        // A test that failed while holding the lock poisons it; the lab it
        // held is gone with it, so the next one may go on.
        let serial = ONE_LAB_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = tempfile::Builder::new().prefix("h4-lun").tempdir().unwrap();
        let file = dir.path().join("lun.img");
        let size = if fs_type == "xfs" {
            300 << 20
        } else {
            64 << 20
        };
        std::fs::File::create(&file).unwrap().set_len(size).unwrap();
        let path = file.to_str().unwrap();
        match fs_type {
            "xfs" => sh("mkfs.xfs", &["-q", "-f", path]),
            _ => sh("mkfs.ext4", &["-q", "-F", path]),
        };
        Lun {
            dir,
            file,
            _serial: serial,
        }
    }

    /// A node's own loop device over the LUN, with direct I/O.
    pub fn attach(&self) -> Loop {
        let dev = sh(
            "losetup",
            &[
                "--direct-io=on",
                "--find",
                "--show",
                self.file.to_str().unwrap(),
            ],
        );
        Loop {
            dev: PathBuf::from(dev),
        }
    }

    /// A mount point directory inside the lab.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

pub struct Loop {
    pub dev: PathBuf,
}

impl Drop for Loop {
    fn drop(&mut self) {
        // Whatever a failed test left mounted from this device goes first.
        if let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") {
            let dev = self.dev.to_str().unwrap_or_default();
            for line in m.lines().filter(|l| l.contains(&format!(" {dev} "))) {
                if let Some(point) = line.split(' ').nth(4) {
                    let _ = Command::new("umount").arg("-l").arg(point).status();
                }
            }
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// Whether `path` is a mount point in this process's mount namespace.
pub fn mounted(path: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(path.to_str().unwrap()))
}

pub fn live(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| t.rsplit_once(')').map(|(_, r)| r.trim().to_string()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

/// How closely group `db` is watched ([`db_group`]).
#[derive(Clone, Copy)]
pub enum Watch {
    /// Every data source monitored and the writer probed every 200 ms: a
    /// test of the monitor.
    Close,
    /// Only the writer, probed every second.
    Writer,
}

/// The documents of group `db`: a shared disk (`db-disk`) on `dev`, its
/// ext4 file system mounted at `mnt` (`db-data`), and the writer
/// (`asctl demo-writer`) on `port`, which acknowledges each record once it
/// is on the disk ([`ack`]).
pub fn db_group(dev: &Path, mnt: &Path, port: u16, watch: Watch) -> String {
    let (sources, writer) = match watch {
        Watch::Close => (
            "\n  monitor: {interval: 200ms, timeout: 2s}",
            "interval: 200ms, timeout: 1s",
        ),
        Watch::Writer => ("", "interval: 1s, timeout: 1s"),
    };
    format!(
        r#"apiVersion: asctl/v1
kind: DataSource
metadata: {{name: db-disk}}
spec:
  type: sharedDisk
  device: {{backing: rdm-physical, path: {dev}}}{sources}
---
apiVersion: asctl/v1
kind: DataSource
metadata: {{name: db-data}}
spec:
  type: mountPoint
  on: db-disk
  path: {mnt}
  fsType: ext4
  options: noatime
  stopTimeout: 2s{sources}
---
apiVersion: asctl/v1
kind: ResourceGroup
metadata: {{name: db}}
spec:
  preferredNodes: [node1]
  dataSources: [db-disk, db-data]
  processes:
    - name: writer
      command: [asctl, demo-writer, --dir, {mnt}, --port, "{port}"]
      stopTimeout: 2s
      monitor: {{{writer}, probe: {{tcp: "127.0.0.1:{port}"}}}}
"#,
        dev = dev.display(),
        mnt = mnt.display(),
    )
}

/// Sends `record` to the writer on `port` and returns its answer
/// (`ack N`), or `None` while it does not answer.
pub fn ack(port: u16, record: &str) -> Option<String> {
    use std::io::{BufRead, BufReader, Write};
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok()?;
    let mut out = s.try_clone().ok()?;
    writeln!(out, "{record}").ok()?;
    BufReader::new(s).lines().next()?.ok()
}
