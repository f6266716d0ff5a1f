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
//! Each node's cgroup gets a real-time budget (`cpu.rt_runtime_us`) of
//! its own: on a kernel built with real-time group scheduling (this one
//! is) a new cgroup has none, and a task in it could not be given a
//! real-time policy at all. The budget must be a realistic one. A node's
//! lease guard runs at `SCHED_RR` and its fence makes the processes it
//! kills real-time too; once their real-time work in a period (1 s) passes
//! the cgroup's budget, the kernel throttles every real-time task of the
//! cgroup until the next period begins, whatever the CPUs are doing. With
//! 100 ms per node (the first budget given here) a starved node's fence hit
//! it and stalled for the rest of its second: unmounts of 30 ms or of
//! 0.6-1.3 s, nothing in between, and `db` on two nodes (measured by
//! sampling the kernel's `rt_rq` of the node's cgroup during the fence:
//! `rt_throttled` 1 at `rt_time` 100 ms, the guard runnable and not run
//! until the period's end). On a real machine the guard lives in the root
//! cgroup, whose budget is the kernel's global one (95 % of each second).
//! So each node gets as much as the root's budget allows when shared among
//! the nodes, at most [`NODE_RT_RUNTIME_US`] (the children's sum must fit
//! in the parent's, and the root's is the ceiling).

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const CPU_ROOT: &str = "/sys/fs/cgroup/cpu";
const PERIOD_US: u64 = 100_000;
/// The real-time budget per period (1 s) given to each node's cgroup when
/// the root's allows it: three nodes take 900 ms of the root's 950 ms,
/// far more than a fence's real-time work (the guard's and its killed
/// processes' exits: 100 to 200 ms of CPU when starved, measured).
const NODE_RT_RUNTIME_US: u64 = 300_000;

/// Each node's real-time budget: [`NODE_RT_RUNTIME_US`], or the root
/// cgroup's budget shared equally when that is less.
fn node_rt_runtime(nodes: usize) -> u64 {
    let root = std::fs::read_to_string(Path::new(CPU_ROOT).join("cpu.rt_runtime_us"))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(950_000);
    NODE_RT_RUNTIME_US.min(root / nodes.max(1) as u64)
}

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

/// Gives the lab's cgroup its real-time budget. A cgroup just removed
/// (the previous run's) still counts against the root's budget for a
/// moment — the kernel frees it after its last reference goes — and the
/// write fails with `EINVAL` until then.
fn set_budget(dir: &Path, us: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match std::fs::write(dir.join("cpu.rt_runtime_us"), us.to_string()) {
            Ok(()) => return,
            Err(e) if std::time::Instant::now() >= deadline => {
                panic!("{}/cpu.rt_runtime_us = {us}: {e}", dir.display())
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
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
        let rt_runtime = node_rt_runtime(n);
        if rt {
            set_budget(&dir, rt_runtime * n as u64);
        }
        let nodes = (1..=n)
            .map(|i| {
                let dir = dir.join(format!("node{i}"));
                std::fs::create_dir_all(&dir).expect("create a node's cpu cgroup");
                set(&dir, "cpu.cfs_period_us", &PERIOD_US.to_string());
                if rt {
                    set(&dir, "cpu.rt_runtime_us", &rt_runtime.to_string());
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
            "chaos: starved lab: {} at {pct} % of one CPU with {loops} busy loops, a \
             real-time budget of {} ms per second per node ({})",
            if all {
                "every node"
            } else {
                "each round's victim during its fault"
            },
            if rt { rt_runtime / 1000 } else { 0 },
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
/// failed run exits before its lab is dropped, and a lab's last processes
/// may still be exiting when the next run starts): their real-time budget
/// would leave none for this one. A cgroup goes only once its processes
/// have, so each is retried for a while.
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
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !remove_lab_cgroup(&e.path()) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// Removes a lab's cgroup and its nodes'; whether it is gone.
fn remove_lab_cgroup(dir: &Path) -> bool {
    if let Ok(nodes) = std::fs::read_dir(dir) {
        for n in nodes.flatten().filter(|n| n.path().is_dir()) {
            let _ = std::fs::remove_dir(n.path());
        }
    }
    std::fs::remove_dir(dir).is_ok() || !dir.exists()
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
