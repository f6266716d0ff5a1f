//! Fail-stop on storage faults, with real agents: a node whose data
//! directory fills up must take its groups offline and exit, not keep them
//! running while the domain starts them elsewhere — also when the disk fails
//! while the agent is still starting. Needs root (a tmpfs): ignored unless
//! run with `--include-ignored`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{LiveDomain, alive, guard_pid_in, log_text, poll};

const LONG: Duration = Duration::from_secs(60);

/// A small tmpfs under /tmp/h5-*, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(tag: &str, size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let path = PathBuf::from(format!("/tmp/h5-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "h5-tmpfs"])
            .arg(&path)
            .output()
            .expect("mount");
        if !out.status.success() {
            eprintln!("mount: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Some(Tmpfs(path))
    }

    /// Writes zeros until the file system is full.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.0.join("filler")).expect("filler");
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&block[..64]).is_ok() {}
        let _ = f.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
#[ignore = "needs root: run with --include-ignored"]
fn a_full_disk_stops_the_agent_and_its_groups_before_they_run_elsewhere() {
    let fs = Tmpfs::mount("fs", "4m").expect("this test needs root to mount a tmpfs");
    let mut d = LiveDomain::prepare();
    let data = d.state.join("nodes/node1/data");
    std::os::unix::fs::symlink(&fs.0, &data).expect("node1's data dir on the tmpfs");
    d.start();
    d.apply();
    let pid = d.web_running_on_node1();
    assert!(alive(pid));

    fs.fill();
    // Writes to the domain (each one an append on node1) until node1's
    // raft core fails on the full disk.
    let started = Instant::now();
    let status = loop {
        let node1 = d.agents.get_mut("node1").expect("node1");
        if let Some(status) = node1.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < LONG,
            "node1's agent still runs on a full disk:\n{}",
            node_log(&d.state, "node1")
        );
        let _ = d.asctl(&["clear", "web"]);
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = node_log(&d.state, "node1");
    assert!(!status.success(), "exits non-zero: {status:?}\n{log}");
    assert!(log.contains("the raft core stopped"), "{log}");
    assert!(log.contains("No space left on device"), "{log}");
    // Gone by the time the agent exited: the domain may start it elsewhere.
    assert!(!alive(pid), "web's process outlived its agent");
    d.web_moved_from_node1();
    d.stop();
    drop(d);
}

/// A raft core that quits while the agent starts its node's tasks fails the
/// agent from within that start, with the cause. The start waits until this
/// member has caught up with the leader; with the two other nodes frozen no
/// leader answers, and before the fix the start went on waiting with a dead
/// raft core until the catch-up gave up (the chaos campaign's disk-ro right
/// after a restart, seed 976329960, left such an agent running).
#[test]
#[ignore = "needs root: run with --include-ignored"]
fn a_raft_core_that_quits_while_the_agent_starts_fails_the_start() {
    // Unmounted after the domain stopped (dropped after it).
    let mut disks = std::collections::BTreeMap::new();
    let mut d = LiveDomain::prepare();
    // Every node's data directory on its own tmpfs: the victim is picked
    // once the leader is known.
    for node in d.nodes.clone() {
        let fs = Tmpfs::mount(&format!("start-{node}"), "4m")
            .expect("this test needs root to mount a tmpfs");
        let data = d.state.join("nodes").join(&node).join("data");
        std::os::unix::fs::symlink(&fs.0, &data).expect("the data dir on the tmpfs");
        disks.insert(node, fs);
    }
    d.start();
    d.apply();
    // A follower: a leader restarted alone takes up its own committed vote
    // again (openraft) and writes nothing while no write is asked of it,
    // whereas a follower's raft core, hearing no leader, starts an election
    // and saves its vote.
    let leader = d
        .status_json()
        .and_then(|s| s.get("leader")?.as_str().map(str::to_owned))
        .expect("a leader");
    let victim = d
        .nodes
        .iter()
        .find(|n| **n != leader)
        .cloned()
        .expect("a follower");
    let others: Vec<&str> = d
        .nodes
        .iter()
        .filter(|n| **n != victim)
        .map(String::as_str)
        .collect();

    let mut agent = d.agents.remove(&victim).expect("the victim's agent");
    // SAFETY: a signal to an agent this test started.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    poll(LONG, || agent.try_wait().ok().flatten()).expect("the agent stops on SIGTERM");
    let frozen = Frozen::stop(&d, &others);
    // Only the restarted agent's lines: the log is appended to.
    let before = node_log(&d.state, &victim).len();
    d.start_agent(&victim);
    let restarted = || {
        node_log(&d.state, &victim)
            .get(before..)
            .unwrap_or_default()
            .to_owned()
    };
    // The lease guard runs before the catch-up wait of `NodeTasks::start`,
    // and the reconciler only after it: the agent is inside the start.
    let guard_pid = d.eventually("the lease guard", LONG, || guard_pid_in(&restarted()));
    let log = restarted();
    assert!(
        !log.contains(STARTED),
        "{victim}'s start is not waiting:\n{log}"
    );

    // The raft core's next write (its vote, at the next election) fails.
    disks[&victim].fill();
    let status = poll(LONG, || {
        d.agents
            .get_mut(&victim)
            .and_then(|c| c.try_wait().ok().flatten())
    });
    drop(frozen);
    let log = restarted();
    let status =
        status.unwrap_or_else(|| panic!("{victim}'s agent still runs on a full disk:\n{log}"));
    d.agents.remove(&victim);
    // Failed by the start's own watch. Without it the start waits on until
    // the catch-up gives up, then starts the reconciler from the dead
    // core's stale state (web wanted here again) before the running
    // agent's watch sees the raft core gone.
    assert!(!log.contains(STARTED), "the start ran to its end:\n{log}");
    assert!(!status.success(), "exits non-zero: {status:?}\n{log}");
    assert!(log.contains("the raft core stopped"), "{log}");
    assert!(log.contains("No space left on device"), "{log}");
    d.eventually("the guard to go with its agent", LONG, || {
        (!alive(guard_pid)).then_some(())
    });
    d.stop();
    drop(d);
}

/// What an agent logs when its start is over and its reconciler runs.
const STARTED: &str = "groups wanted here at start";

/// Agents stopped with SIGSTOP, continued when dropped (a failing test
/// leaves none frozen).
struct Frozen(Vec<i32>);

impl Frozen {
    fn stop(d: &LiveDomain, nodes: &[&str]) -> Frozen {
        let pids: Vec<i32> = nodes.iter().map(|n| d.agents[*n].id() as i32).collect();
        for &pid in &pids {
            // SAFETY: a signal to an agent this test started.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
        }
        Frozen(pids)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: a signal to an agent this test started.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
    }
}

fn node_log(state: &Path, node: &str) -> String {
    log_text(&state.join("nodes").join(node).join("agent.log"))
}
