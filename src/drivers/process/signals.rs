//! Signals to a process and its process group, and what `/proc` says of
//! them: a pid is ours only while its start time matches the recorded one.

use std::fs;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::time::Instant;
use tracing::warn;

use super::cgroup::Cgroup;
use super::{DriverError, KILL_GRACE, POLL};

/// Sends `sig` to a process group; a group already gone is not an error.
pub(super) fn signal_group(pgid: i32, sig: Signal) {
    match killpg(Pid::from_raw(pgid), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => warn!(pgid, "cannot send {sig} to process group: {e}"),
    }
}

/// Signals our child and its process group. The child itself too: right
/// after spawning it may not have made its own group yet, and being unreaped
/// its pid cannot have been reused.
pub(super) fn signal_child(pid: i32, sig: Signal) {
    signal_group(pid, sig);
    match nix::sys::signal::kill(Pid::from_raw(pid), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => warn!(pid, "cannot send {sig}: {e}"),
    }
}

/// SIGKILL to whatever is left in `cgroup`, then removes it.
pub(super) async fn end_cgroup(cgroup: Option<Cgroup>) -> Result<(), DriverError> {
    let Some(cg) = cgroup else { return Ok(()) };
    let path = cg.path().display().to_string();
    let empty = tokio::task::spawn_blocking(move || cg.kill_all(KILL_GRACE))
        .await
        .unwrap_or(false);
    if empty {
        Ok(())
    } else {
        Err(DriverError::Failed(format!(
            "processes in cgroup {path} survived SIGKILL for {}",
            humantime::format_duration(KILL_GRACE)
        )))
    }
}

/// Stops a process that is not our child (recorded by a previous agent run),
/// with the same SIGTERM → SIGKILL escalation, watching it through /proc.
pub(super) async fn stop_recorded(
    pid: i32,
    start_time: u64,
    timeout: Duration,
) -> Result<(), DriverError> {
    if !same_process(pid, start_time) {
        return Ok(());
    }
    let deadline = Instant::now() + timeout;
    signal_group(pid, Signal::SIGTERM);
    while same_process(pid, start_time) && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    stop_group_members(pid, deadline).await
}

/// Waits until no live process is left in the group, sending SIGKILL at
/// `deadline`. Zombies do not count: reaping them is their parent's job.
pub(super) async fn stop_group_members(pgid: i32, deadline: Instant) -> Result<(), DriverError> {
    while group_alive(pgid) && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    if !group_alive(pgid) {
        return Ok(());
    }
    signal_group(pgid, Signal::SIGKILL);
    let grace = Instant::now() + KILL_GRACE;
    while group_alive(pgid) {
        if Instant::now() >= grace {
            return Err(DriverError::Failed(format!(
                "process group {pgid} survived SIGKILL for {}",
                humantime::format_duration(KILL_GRACE)
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// The fields of `/proc/<pid>/stat` the driver relies on.
pub(super) struct ProcStat {
    pub(super) state: char,
    pub(super) pgrp: i32,
    pub(super) start_time: u64,
}

impl ProcStat {
    pub(super) fn is_live(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

pub(super) fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// The command name (field 2) may contain spaces and parentheses, so fields
/// are counted from the last `)`.
pub(super) fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// The pid still names the live process that was recorded (not a reused pid).
pub(super) fn same_process(pid: i32, start_time: u64) -> bool {
    proc_stat(pid).is_some_and(|s| s.is_live() && s.start_time == start_time)
}

/// Gives every live process of the process groups `pgids`, already sent
/// SIGKILL, a real-time priority to exit with ([`hasten_exit`]); returns
/// their pids.
pub(super) fn hasten_group_exit(pgids: &[i32]) -> Vec<i32> {
    if pgids.is_empty() {
        return Vec::new();
    }
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|&pid| {
            proc_stat(pid).is_some_and(|s| pgids.contains(&s.pgrp) && (s.is_live() || alive(pid)))
        })
        .collect();
    hasten_exit(&pids);
    pids
}

/// Gives the processes `pids`, already sent SIGKILL (none of them returns
/// to user space again), the lowest real-time priority, so that each exits
/// at once rather than when a starved CPU gets round to it: until it has
/// exited it still holds its files and mounts, and a fence waits for them.
/// Every thread of each: a scheduling policy belongs to one thread, and a
/// process holds its files until its *last* thread has exited — a killed
/// multithreaded process whose leader alone was hastened shows as a zombie
/// while its other threads wait, at normal priority, for a starved CPU.
/// Best effort: a process that is gone, or a refusal (no privilege, a
/// cgroup without real-time time), leaves it to exit when scheduled.
pub fn hasten_exit(pids: &[i32]) {
    let param = libc::sched_param { sched_priority: 1 };
    for &pid in pids {
        let mut tids = threads(pid);
        if tids.is_empty() {
            tids.push(pid);
        }
        for tid in tids {
            // SAFETY: a system call on a thread id with a valid
            // sched_param; ESRCH (gone meanwhile) is harmless.
            unsafe { libc::sched_setscheduler(tid, libc::SCHED_RR, &param) };
        }
    }
}

/// The thread ids of process `pid`, its leader included (empty when it is
/// gone).
pub fn threads(pid: i32) -> Vec<i32> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Whether process `pid` has a thread that has not exited. `/proc/PID/stat`
/// alone says "zombie" as soon as the leader thread has exited, while the
/// other threads of a killed process may still be on their way out, holding
/// the process's files (and so its mounts) until the last one is gone.
pub fn alive(pid: i32) -> bool {
    threads(pid).into_iter().any(|tid| {
        fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat"))
            .ok()
            .and_then(|t| parse_stat(&t))
            .is_some_and(|s| s.is_live())
    })
}

pub(super) fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        e.file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
            .and_then(|pid| Some((pid, proc_stat(pid)?)))
            .is_some_and(|(pid, s)| s.pgrp == pgid && (s.is_live() || alive(pid)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_alive_while_a_thread_is_and_a_reaped_child_is_not() {
        let me = std::process::id() as i32;
        // The test harness runs this on a thread of its own: two at least.
        let tids = threads(me);
        assert!(tids.contains(&me) && tids.len() >= 2, "{tids:?}");
        assert!(alive(me));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        assert!(!alive(pid));
        assert!(threads(pid).is_empty());
    }

    #[test]
    fn an_unreaped_zombie_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let t = std::time::Instant::now();
        while proc_stat(pid).is_some_and(|s| s.is_live()) {
            assert!(t.elapsed() < Duration::from_secs(10), "`true` did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(threads(pid), [pid], "a zombie keeps its entry until reaped");
        assert!(!alive(pid));
        child.wait().unwrap();
    }
}
