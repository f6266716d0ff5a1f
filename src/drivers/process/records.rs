//! What the process driver keeps under the data directory — pid files
//! (`run/<group>/<process>.pid`) and logs (`logs/<group>/<process>.log`) —
//! and what acts on the records without a driver: stopping processes no
//! spec wants, the lease guard's fence, the groups a previous run left.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::cgroup::Cgroup;
use super::signals::*;
use super::{DriverError, GroupContext, KILL_GRACE, STALE_STOP_TIMEOUT};
use crate::model::Name;
use crate::private;

/// What a pid file records.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PidRecord {
    pub(super) pid: i32,
    pub(super) start_time: u64,
    pub(super) fingerprint: String,
}

/// Stops the processes recorded under the group's run directory whose names
/// are not in `keep`: leftovers of a previous agent run that no spec wants.
/// Returns the errors of the ones that could not be stopped.
pub async fn stop_stale(ctx: &GroupContext, keep: &BTreeSet<Name>) -> Vec<DriverError> {
    let dir = run_dir(ctx);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".pid"))
        else {
            continue;
        };
        if keep.iter().any(|k| k.as_str() == name) {
            continue;
        }
        if let Some(rec) = read_pid_record(&path) {
            info!(group = %ctx.group, process = name, pid = rec.pid,
                "stopping a process no spec wants any more");
            if let Err(e) = stop_recorded(rec.pid, rec.start_time, STALE_STOP_TIMEOUT).await {
                errors.push(e);
                continue;
            }
        }
        let cgroup = Cgroup::for_process(&ctx.data_dir, ctx.group.as_str(), name);
        if let Err(e) = end_cgroup(cgroup).await {
            errors.push(e);
            continue;
        }
        if let Err(e) = remove_file(&path) {
            errors.push(e);
        }
    }
    let _ = fs::remove_dir(&dir);
    errors
}

/// A process on record under `<data_dir>/run/`: what the lease guard's
/// fence kills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub group: String,
    pub process: String,
    pub pid: i32,
    pub start_time: u64,
}

/// The entries of `dir`; none when it does not exist, an error when it
/// cannot be read.
fn entries(dir: &Path) -> std::io::Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(d) => d.collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Every process on record. An error when the records cannot be read (the
/// data directory's file system failed), as opposed to there being none:
/// the guard then keeps what it read last.
pub fn recorded(data_dir: &Path) -> std::io::Result<Vec<Recorded>> {
    let mut out = Vec::new();
    for group in entries(&data_dir.join("run"))? {
        if !group.file_type()?.is_dir() {
            continue;
        }
        for f in entries(&group.path())? {
            let path = f.path();
            let (Some(stem), Some("pid")) = (
                path.file_stem().and_then(|s| s.to_str()),
                path.extension().and_then(|e| e.to_str()),
            ) else {
                continue;
            };
            let text = match fs::read_to_string(&path) {
                Ok(t) => t,
                // Removed since the listing: the process was stopped.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let Ok(rec) = serde_json::from_str::<PidRecord>(&text) else {
                warn!(path = %path.display(), "ignoring an unreadable pid file");
                continue;
            };
            out.push(Recorded {
                group: group.file_name().to_string_lossy().into_owned(),
                process: stem.to_owned(),
                pid: rec.pid,
                start_time: rec.start_time,
            });
        }
    }
    Ok(out)
}

/// Sends SIGKILL to the process group of every process in `records` (and
/// to what is left in its cgroup), gives the killed process groups a
/// real-time priority to exit with (`hasten_group_exit`: a starved CPU would
/// otherwise keep them, and the files and mounts they hold, for hundreds of
/// milliseconds), and waits (briefly) for them to be gone: the lease
/// guard's fence, for an agent that was killed or frozen.
/// Synchronous and without a runtime, so the guard stays small. The pid
/// files stay: the next agent run finds the processes gone and acts from
/// its placement. Returns the process groups signalled.
pub fn kill(data_dir: &Path, records: &[Recorded]) -> Vec<i32> {
    let mut killed = Vec::new();
    for rec in records {
        // The recorded leader itself; or, with the leader gone, what is
        // left of its group: a pid cannot be reused while a process group
        // of that id lives, so a group `pid` without a process `pid` is
        // still ours. A reused pid (another start time) is left alone.
        let ours = same_process(rec.pid, rec.start_time) || proc_stat(rec.pid).is_none();
        if ours && group_alive(rec.pid) {
            signal_group(rec.pid, Signal::SIGKILL);
            killed.push(rec.pid);
        }
    }
    let members = hasten_group_exit(&killed);
    for rec in records {
        // What left the process group is in the cgroup.
        if let Some(cg) = Cgroup::for_process(data_dir, &rec.group, &rec.process) {
            cg.kill_all(KILL_GRACE);
        }
    }
    let deadline = std::time::Instant::now() + KILL_GRACE;
    // The members found once are watched (a few small reads a step) until
    // every thread of each has exited: a search of all of /proc at every
    // step would run at the guard's real-time priority and take CPU that a
    // starved node's killed threads need to exit. Then a search for
    // anything of the groups left, which is nearly always none.
    while members.iter().any(|&pid| alive(pid)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    while killed.iter().any(|g| group_alive(*g)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
    }
    killed
}

/// [`kill`] of every process on record now.
pub fn kill_recorded(data_dir: &Path) -> Vec<i32> {
    kill(data_dir, &recorded(data_dir).unwrap_or_default())
}

/// The groups that have pid files under `<data_dir>/run/`.
pub fn recorded_groups(data_dir: &Path) -> Vec<Name> {
    let Ok(entries) = fs::read_dir(data_dir.join("run")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect()
}

pub(super) fn log_dir(ctx: &GroupContext) -> PathBuf {
    ctx.data_dir.join("logs").join(ctx.group.as_str())
}

pub(super) fn run_dir(ctx: &GroupContext) -> PathBuf {
    ctx.data_dir.join("run").join(ctx.group.as_str())
}

pub(super) fn pid_path(ctx: &GroupContext, process: &Name) -> PathBuf {
    run_dir(ctx).join(format!("{process}.pid"))
}

/// Process output may print its environment: created 0600.
pub(super) fn open_log(path: &Path) -> Result<fs::File, DriverError> {
    let what = || format!("log file {}", path.display());
    if let Some(dir) = path.parent() {
        private::create_dir(dir).map_err(|e| DriverError::io(what(), e))?;
    }
    private::open_append(path).map_err(|e| DriverError::io(what(), e))
}

pub(super) fn read_pid_record(path: &Path) -> Option<PidRecord> {
    let text = fs::read_to_string(path).ok()?;
    match serde_json::from_str(&text) {
        Ok(rec) => Some(rec),
        Err(e) => {
            warn!(path = %path.display(), "ignoring an unreadable pid file: {e}");
            None
        }
    }
}

/// Written to a temporary file and renamed, so a crash never leaves half a record.
pub(super) fn write_pid_record(path: &Path, rec: &PidRecord) -> Result<(), DriverError> {
    let what = || format!("pid file {}", path.display());
    if let Some(dir) = path.parent() {
        private::create_dir(dir).map_err(|e| DriverError::io(what(), e))?;
    }
    let tmp = path.with_extension("pid.tmp");
    let text = serde_json::to_string(rec).map_err(|e| DriverError::Failed(e.to_string()))?;
    private::create_file(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| DriverError::io(what(), e))?;
    fs::rename(&tmp, path).map_err(|e| DriverError::io(what(), e))
}

pub(super) fn remove_file(path: &Path) -> Result<(), DriverError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(DriverError::io(format!("removing {}", path.display()), e))
        }
        _ => Ok(()),
    }
}
