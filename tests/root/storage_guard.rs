//! The lease guard releases storage without the agent: a real one-node
//! domain whose agent runs in a mount namespace of its own (`unshare -m`,
//! private propagation: the node's mounts are its own) holds `db` — shared
//! disk on a loop device, mount point, writer. The agent is frozen with
//! SIGSTOP: its guard kills the writer and unmounts the file system, and
//! the mount is gone from the node's mount namespace before the others of a
//! domain with these timings could start the group (`T − I + W` after the
//! freeze, docs/ha.md). Root only.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::storage_support::{Lun, Watch, ack, db_group, live};
use asctl::agent::detection::detector::takeover_wait;

const ASCTL: &str = env!("CARGO_BIN_EXE_asctl");
pub(crate) const INTERVAL: Duration = Duration::from_millis(250);
pub(crate) const TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) fn free_tcp() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

pub(crate) fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port()
}

pub(crate) fn write_config(dir: &Path, dev: &Path, mnt: &Path, api: u16, hb: u16, port: u16) {
    let files = [
        (
            "domain.yaml",
            format!(
                "apiVersion: asctl/v1\nkind: Domain\nmetadata: {{name: dguard}}\nspec:\n  \
                 qualification: generic\n  heartbeat:\n    port: {hb}\n    interval: 250ms\n    \
                 timeout: 1s\n"
            ),
        ),
        (
            "nodes.yaml",
            format!(
                "apiVersion: asctl/v1\nkind: Node\nmetadata: {{name: node1}}\nspec:\n  \
                 physical: true\n  os: {{name: linux, bits: 64}}\n  platform: x64\n  \
                 agent: {{address: \"127.0.0.1:{api}\"}}\n"
            ),
        ),
        (
            "lines.yaml",
            "apiVersion: asctl/v1\nkind: NetworkLine\nmetadata: {name: lo-a}\nspec:\n  role: \
             domain\n  subnet: 127.0.1.0/24\n  members: {node1: 127.0.1.1}\n"
                .to_string(),
        ),
        ("db.yaml", db_group(dev, mnt, port, Watch::Writer)),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write config");
    }
}

pub(crate) fn asctl(args: &[&str]) -> std::process::Output {
    Command::new(ASCTL).args(args).output().expect("asctl")
}

/// Whether `path` is a mount point in the mount namespace of `pid`.
pub(crate) fn mounted_in(pid: u32, path: &Path) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == path.to_str())
}

/// The pids whose parent is `parent`.
pub(crate) fn children(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

pub(crate) fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

pub(crate) fn poll<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The agent in its own mount namespace; killed (and its namespace with its
/// last process) on drop.
pub(crate) struct NodeAgent {
    pub(crate) unshare: Child,
    pub(crate) log: PathBuf,
}

impl NodeAgent {
    /// Starts node1's agent of the domain in `state`, with `env` added to
    /// its environment.
    pub(crate) fn start(state: &Path, env: &[(&str, &std::ffi::OsStr)]) -> NodeAgent {
        let log = state.join("nodes/node1/agent.log");
        let log_file = std::fs::File::create(&log).unwrap();
        // `unshare` execs the agent: the child's pid is the agent's.
        let unshare = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                ASCTL,
                "agent",
                "--config",
            ])
            .arg(state.join("nodes/node1/agent.yaml"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("unshare");
        NodeAgent { unshare, log }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.unshare.id()
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        // SAFETY: signals to processes this test started.
        unsafe { libc::kill(self.unshare.id() as i32, libc::SIGCONT) };
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        eprintln!(
            "agent log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

#[test]
#[ignore = "needs root: run with --include-ignored"]
fn a_frozen_agents_guard_unmounts_before_the_others_may_take_the_disk() {
    crate::support::require_root();
    let lun = Lun::new("ext4");
    let lo = lun.attach();
    let mnt = lun.dir("srv/db");
    let work = tempfile::Builder::new()
        .prefix("d9-guard")
        .tempdir()
        .unwrap();
    let config = work.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    let (api, hb, port) = (free_tcp(), free_udp(), free_tcp());
    write_config(&config, &lo.dev, &mnt, api, hb, port);
    let state = work.path().join("state");
    let (cfg, st) = (config.to_str().unwrap(), state.to_str().unwrap());
    let out = asctl(&["up", cfg, "--state-dir", st, "--init-only"]);
    assert!(out.status.success(), "{out:?}");

    let agent = NodeAgent::start(&state, &[]);
    let pid = agent.pid();

    // The agent answers before the apply is sent (on a loaded machine it
    // takes a while to open its API).
    poll("the agent to answer", Duration::from_secs(60), || {
        asctl(&["status", "--state-dir", st])
            .status
            .success()
            .then_some(())
    });
    let out = asctl(&[
        "apply",
        cfg,
        "--auto-approve",
        "--timeout",
        "60s",
        "--state-dir",
        st,
    ]);
    assert!(out.status.success(), "apply: {out:?}");
    assert_eq!(
        poll("the writer to answer", Duration::from_secs(60), || ack(
            port, "alpha"
        )),
        "ack 1"
    );
    assert!(mounted_in(pid, &mnt), "mounted in the node's namespace");
    assert!(
        !crate::storage_support::mounted(&mnt),
        "and only there: the namespace is private"
    );
    let guard = poll("the guard", Duration::from_secs(5), || {
        children(pid)
            .into_iter()
            .find(|c| cmdline(*c).contains(" guard "))
    });
    let writer = poll("the writer's pid", Duration::from_secs(5), || {
        let path = state.join("nodes/node1");
        let pidfile = walk_find(&path, "writer.pid")?;
        let text = std::fs::read_to_string(pidfile).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v.get("pid")?.as_u64().map(|p| p as u32)
    });

    // Freeze the agent: the renewals stop, the guard's pipe stays open.
    // SAFETY: a signal to the agent this test started.
    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    let frozen = Instant::now();
    let others_may_start = TIMEOUT - INTERVAL + takeover_wait(INTERVAL);
    let released = poll("the mount to go", others_may_start * 3, || {
        (!mounted_in(guard, &mnt)).then(|| frozen.elapsed())
    });
    eprintln!(
        "unmounted {} ms after the freeze (lease {} ms; the others start the group no earlier \
         than {} ms)",
        released.as_millis(),
        TIMEOUT.as_millis(),
        others_may_start.as_millis()
    );
    assert!(
        released < others_may_start,
        "the mount must be gone before the others may take the disk"
    );
    assert!(
        released >= TIMEOUT - Duration::from_millis(100),
        "not before the lease ran out"
    );
    assert!(!live(writer), "the writer was killed first");
    assert!(
        mounted_in(pid, &mnt) == mounted_in(guard, &mnt),
        "the guard shares the agent's mount namespace"
    );
    // The record goes right after the unmount.
    poll("the mount's record to go", Duration::from_secs(2), || {
        walk_find(&state.join("nodes/node1"), "-db-data")
            .is_none()
            .then_some(())
    });
    // The acknowledged record is on the disk, read through this test's own
    // mount of its own view (a fresh mount in the test's namespace).
    let check = lun.dir("check");
    std::fs::create_dir_all(&check).unwrap();
    crate::storage_support::sh(
        "mount",
        &[lo.dev.to_str().unwrap(), check.to_str().unwrap()],
    );
    let records = std::fs::read_to_string(check.join("records.log")).unwrap_or_default();
    crate::storage_support::sh("umount", &[check.to_str().unwrap()]);
    assert_eq!(records, "1 alpha\n");
    drop(agent);
}

/// The first file under `dir` whose name ends with `suffix`.
pub(crate) fn walk_find(dir: &Path, suffix: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = walk_find(&p, suffix) {
                return Some(f);
            }
        } else if e.file_name().to_string_lossy().ends_with(suffix) {
            return Some(p);
        }
    }
    None
}
