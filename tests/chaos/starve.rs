//! A starved lab (`CHAOS_STARVE=PCT:LOOPS[:all]`): every node's processes
//! — its agent, lease guard and groups' processes — run in a cgroup of
//! their own (v1 `cpu` controller). A starved node's cgroup is capped at
//! `PCT` % of one CPU, shared with `LOOPS` busy loops: the node then sees
//! what a machine with a load average far above its cores sees (its
//! runnable tasks wait tens to hundreds of milliseconds for a CPU). By
//! default only a round's victim is starved, from just before its fault
//! until the round is over — one overloaded machine among healthy ones, the
//! usual way an agent comes to miss its heartbeats; with `:all` every node
//! is, all along. The harness, the observer and the rest of the machine are
//! never starved: the observer's timestamps stay true, and the other users
//! of a shared build machine keep their CPUs.
//!
//! Kernel threads (the loop devices' workers, the journal's) are not in the
//! cgroup: the lab starves the node's user space, not its kernel.
//!
//! The cgroup gets a small real-time budget (`cpu.rt_runtime_us`) as the
//! root cgroup has one: on a kernel built with real-time group scheduling a
//! new cgroup has none, and a task in it could not be given a real-time
//! policy at all — on a host without that option (most distributions) every
//! process may have one.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const CPU_ROOT: &str = "/sys/fs/cgroup/cpu";
const PERIOD_US: u64 = 100_000;
/// The real-time budget per second given to each node's cgroup (the lab's
/// own has one per node). Generous, as on a host without real-time group
/// scheduling, where the only limit is the kernel's global one (95 %): a
/// small one would throttle the lease guard itself.
const RT_RUNTIME_US: u64 = 100_000;

/// One node's cgroup, and the busy loops in it while it is starved.
struct NodeCgroup {
    dir: PathBuf,
    procs: CString,
    loops: Vec<Child>,
}

pub(crate) struct Starve {
    dir: PathBuf,
    nodes: Vec<NodeCgroup>,
    pub(crate) pct: u64,
    loops: usize,
    /// Every node starved all along, not only a round's victim.
    pub(crate) all: bool,
}

fn set(dir: &Path, file: &str, v: &str) {
    std::fs::write(dir.join(file), v)
        .unwrap_or_else(|e| panic!("{}/{file} = {v}: {e}", dir.display()))
}

impl Starve {
    /// From `CHAOS_STARVE` (`PCT:LOOPS[:all]`, e.g. `40:6`); `None` when
    /// unset.
    pub(crate) fn from_env(nodes: usize) -> Option<Starve> {
        let spec = std::env::var("CHAOS_STARVE").ok()?;
        let (pct, loops, all) = parse(&spec)
            .unwrap_or_else(|| panic!("CHAOS_STARVE={spec}: expected PCT:LOOPS[:all], e.g. 40:6"));
        Some(Starve::new(pct, loops, all, nodes))
    }

    fn new(pct: u64, loops: usize, all: bool, n: usize) -> Starve {
        remove_stale();
        let dir = PathBuf::from(CPU_ROOT).join(format!("asctl-chaos-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the lab's cpu cgroup (cgroup v1 `cpu`)");
        let rt = dir.join("cpu.rt_runtime_us").exists();
        if rt {
            set(
                &dir,
                "cpu.rt_runtime_us",
                &(RT_RUNTIME_US * n as u64).to_string(),
            );
        }
        let nodes = (1..=n)
            .map(|i| {
                let dir = dir.join(format!("node{i}"));
                std::fs::create_dir_all(&dir).expect("create a node's cpu cgroup");
                set(&dir, "cpu.cfs_period_us", &PERIOD_US.to_string());
                if rt {
                    set(&dir, "cpu.rt_runtime_us", &RT_RUNTIME_US.to_string());
                }
                let procs = CString::new(
                    dir.join("cgroup.procs")
                        .into_os_string()
                        .into_encoded_bytes(),
                )
                .expect("cgroup path");
                NodeCgroup {
                    dir,
                    procs,
                    loops: Vec::new(),
                }
            })
            .collect();
        let mut s = Starve {
            dir,
            nodes,
            pct,
            loops,
            all,
        };
        if all {
            (0..n).for_each(|i| s.starve(i));
        }
        eprintln!(
            "chaos: starved lab: {} at {pct} % of one CPU with {loops} busy loops ({})",
            if all {
                "every node"
            } else {
                "each round's victim during its fault"
            },
            s.dir.display()
        );
        s
    }

    /// Makes `cmd`'s process (and so all it starts) join node `i`'s cgroup
    /// before it runs.
    pub(crate) fn enter(&self, i: usize, cmd: &mut Command) {
        enter(&self.nodes[i].procs, cmd);
    }

    /// Caps node `i` at the quota and starts its busy loops.
    pub(crate) fn starve(&mut self, i: usize) {
        let pct = self.pct;
        let n = &mut self.nodes[i];
        if !n.loops.is_empty() {
            return;
        }
        set(
            &n.dir,
            "cpu.cfs_quota_us",
            &(PERIOD_US * pct / 100).to_string(),
        );
        for _ in 0..self.loops {
            let mut c = Command::new("sh");
            c.args(["-c", "while :; do :; done"])
                .stdin(Stdio::null())
                .stdout(Stdio::null());
            enter(&n.procs, &mut c);
            n.loops.push(c.spawn().expect("start a busy loop"));
        }
    }

    /// Stops node `i`'s busy loops and lifts its cap (not when every node
    /// is starved all along).
    pub(crate) fn relieve(&mut self, i: usize) {
        if self.all {
            return;
        }
        let n = &mut self.nodes[i];
        stop_loops(n);
        set(&n.dir, "cpu.cfs_quota_us", "-1");
    }

    /// How often node `i`'s cgroup was throttled and for how long in all.
    pub(crate) fn stat(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].dir.join("cpu.stat"))
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub(crate) fn nodes(&self) -> usize {
        self.nodes.len()
    }
}

/// The cgroups of earlier runs that ended without removing theirs (a
/// failed run exits before its lab is dropped): their real-time budget
/// would leave none for this one.
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(CPU_ROOT) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("asctl-chaos-") else {
            continue;
        };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        if let Ok(nodes) = std::fs::read_dir(e.path()) {
            for n in nodes.flatten().filter(|n| n.path().is_dir()) {
                let _ = std::fs::remove_dir(n.path());
            }
        }
        let _ = std::fs::remove_dir(e.path());
    }
}

fn stop_loops(n: &mut NodeCgroup) {
    for mut c in n.loops.drain(..) {
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn enter(procs: &CString, cmd: &mut Command) {
    let procs = procs.clone();
    // SAFETY: the closure makes only async-signal-safe calls (open, write,
    // close) on a path prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // "0" is the writing process itself.
            let n = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            if n != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn parse(spec: &str) -> Option<(u64, usize, bool)> {
    let mut parts = spec.split(':');
    let pct: u64 = parts.next()?.trim().parse().ok()?;
    let loops: usize = parts.next()?.trim().parse().ok()?;
    let all = match parts.next().map(str::trim) {
        None => false,
        Some("all") => true,
        Some(_) => return None,
    };
    (parts.next().is_none() && (1..=200).contains(&pct)).then_some((pct, loops, all))
}

impl Drop for Starve {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            stop_loops(n);
            // A cgroup goes once its last process has: the lab halts its
            // nodes before this runs.
            let _ = std::fs::remove_dir(&n.dir);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn starve_specs_parse() {
    assert_eq!(parse("40:6"), Some((40, 6, false)));
    assert_eq!(parse("40:6:all"), Some((40, 6, true)));
    assert_eq!(parse("40:6:some"), None);
    assert_eq!(parse("0:6"), None);
    assert_eq!(parse("40"), None);
    assert_eq!(parse("x:1"), None);
}
