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
/// SIGKILL, a real-time priority to exit with ([`hasten_exit`]).
pub(super) fn hasten_group_exit(pgids: &[i32]) {
    if pgids.is_empty() {
        return;
    }
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    let pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| proc_stat(*pid).is_some_and(|s| pgids.contains(&s.pgrp) && s.is_live()))
        .collect();
    hasten_exit(&pids);
}

/// Gives the processes `pids`, already sent SIGKILL (none of them returns
/// to user space again), the lowest real-time priority, so that each exits
/// at once rather than when a starved CPU gets round to it: until it has
/// exited it still holds its files and mounts, and a fence waits for them.
/// Best effort: a process that is gone, or a refusal (no privilege, a
/// cgroup without real-time time), leaves it to exit when scheduled.
pub fn hasten_exit(pids: &[i32]) {
    let param = libc::sched_param { sched_priority: 1 };
    for &pid in pids {
        // SAFETY: a system call on a pid with a valid sched_param; ESRCH
        // (gone meanwhile) is harmless.
        unsafe { libc::sched_setscheduler(pid, libc::SCHED_RR, &param) };
    }
}

pub(super) fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        e.file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
            .and_then(proc_stat)
            .is_some_and(|s| s.pgrp == pgid && s.is_live())
    })
}
