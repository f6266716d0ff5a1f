//! A real one-node domain holding `db` on the storage lab, for the tests of
//! what releases storage when the agent cannot: the agent runs in a mount
//! namespace of its own (`unshare -m`, private propagation: the node's
//! mounts are its own) with its lease guard as a child, heartbeat interval
//! [`INTERVAL`] and timeout [`TIMEOUT`]. [`GuardedNode::start`] builds the
//! loop device, the configuration and the state directory, starts the
//! agent and waits until it answers; each test then applies and freezes.

use std::ffi::OsStr;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use asctl::agent::detection::detector::takeover_wait;

use super::{Loop, Lun, Watch, db_group};

const ASCTL: &str = env!("CARGO_BIN_EXE_asctl");
pub const INTERVAL: Duration = Duration::from_millis(250);
pub const TIMEOUT: Duration = Duration::from_secs(1);

/// The node, its agent running. Fields drop in order: the agent (and with
/// its last process its mount namespace) before the loop device, the loop
/// device before the LUN.
pub struct GuardedNode {
    pub agent: NodeAgent,
    pub lo: Loop,
    /// Where `db-data` mounts, in the agent's namespace.
    pub mnt: PathBuf,
    /// The writer's port.
    pub port: u16,
    pub config: PathBuf,
    pub state: PathBuf,
    pub lun: Lun,
    _work: tempfile::TempDir,
}

impl GuardedNode {
    /// The lab and the domain under a temporary directory named `prefix…`;
    /// with `path_first`, that directory comes first on the agent's `PATH`
    /// (a stand-in for a program the agent runs).
    pub fn start(prefix: &str, path_first: Option<&Path>) -> GuardedNode {
        crate::support::require_root();
        let lun = Lun::new("ext4");
        let lo = lun.attach();
        let mnt = lun.dir("srv/db");
        let work = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        let config = work.path().join("config");
        std::fs::create_dir_all(&config).unwrap();
        let (api, hb, port) = (free_tcp(), free_udp(), free_tcp());
        write_config(&config, &lo.dev, &mnt, api, hb, port);
        let state = work.path().join("state");
        let out = asctl(&[
            "up",
            config.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--init-only",
        ]);
        assert!(out.status.success(), "{out:?}");
        let path = path_first.map(|first| {
            let mut path = first.as_os_str().to_owned();
            path.push(":");
            path.push(std::env::var_os("PATH").unwrap_or_default());
            path
        });
        let env: Vec<(&str, &OsStr)> = path.iter().map(|p| ("PATH", p.as_os_str())).collect();
        let agent = NodeAgent::start(&state, &env);
        let node = GuardedNode {
            agent,
            lo,
            mnt,
            port,
            config,
            state,
            lun,
            _work: work,
        };
        // The agent answers before anything is applied (on a loaded machine
        // it takes a while to open its API).
        poll("the agent to answer", Duration::from_secs(60), || {
            node.asctl(&["status"]).status.success().then_some(())
        });
        node
    }

    /// `asctl ARGS… --state-dir <state>`.
    pub fn asctl(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--state-dir", self.state.to_str().unwrap()]);
        asctl(&all)
    }

    /// Applies the configuration, waiting up to `timeout` for the group.
    pub fn apply(&self, timeout: &str) -> Output {
        let cfg = self.config.to_str().unwrap();
        self.asctl(&["apply", cfg, "--auto-approve", "--timeout", timeout])
    }

    pub fn pid(&self) -> u32 {
        self.agent.pid()
    }

    /// The agent's lease guard.
    pub fn guard(&self) -> u32 {
        poll("the guard", Duration::from_secs(5), || {
            children(self.pid())
                .into_iter()
                .find(|c| cmdline(*c).contains(" guard "))
        })
    }

    /// Freezes the agent (SIGSTOP): its renewals stop, the guard's pipe
    /// stays open. Returns when.
    pub fn freeze(&self) -> Instant {
        // SAFETY: a signal to the agent this test started.
        unsafe { libc::kill(self.pid() as i32, libc::SIGSTOP) };
        Instant::now()
    }

    pub fn thaw(&self) {
        // SAFETY: as in `freeze`.
        unsafe { libc::kill(self.pid() as i32, libc::SIGCONT) };
    }

    /// Waits until the node's record of the `db-data` mount is gone.
    pub fn wait_mount_record_gone(&self) {
        poll("the mount's record to go", Duration::from_secs(2), || {
            walk_find(&self.state.join("nodes/node1"), "-db-data")
                .is_none()
                .then_some(())
        });
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.agent.log).unwrap_or_default()
    }
}

/// The earliest the others of a domain with these timings may start the
/// frozen node's group, after the freeze: `T − I + W` (docs/ha.md).
pub fn others_may_start() -> Duration {
    TIMEOUT - INTERVAL + takeover_wait(INTERVAL)
}

/// `what` was released `released` after the freeze: after the lease ran
/// out, and before the others may take the disk.
pub fn assert_released_in_time(what: &str, released: Duration) {
    assert!(
        released < others_may_start(),
        "{what} must be gone before the others may take the disk"
    );
    assert!(
        released >= TIMEOUT - Duration::from_millis(100),
        "not before the lease ran out"
    );
}

pub fn free_tcp() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

pub fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port()
}

fn write_config(dir: &Path, dev: &Path, mnt: &Path, api: u16, hb: u16, port: u16) {
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

pub fn asctl(args: &[&str]) -> Output {
    Command::new(ASCTL).args(args).output().expect("asctl")
}

/// Whether `path` is a mount point in the mount namespace of `pid`.
pub fn mounted_in(pid: u32, path: &Path) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == path.to_str())
}

/// The pids whose parent is `parent`.
pub fn children(parent: u32) -> Vec<u32> {
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

pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

pub fn poll<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first file under `dir` whose name ends with `suffix`.
pub fn walk_find(dir: &Path, suffix: &str) -> Option<PathBuf> {
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

/// The agent in its own mount namespace; killed (and its namespace with its
/// last process) on drop, its log printed.
pub struct NodeAgent {
    unshare: Child,
    pub log: PathBuf,
}

impl NodeAgent {
    /// Starts node1's agent of the domain in `state`, with `env` added to
    /// its environment.
    fn start(state: &Path, env: &[(&str, &OsStr)]) -> NodeAgent {
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

    pub fn pid(&self) -> u32 {
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
