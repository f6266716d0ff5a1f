//! Releasing the storage a node may hold without knowing what its agent
//! did: every recorded mount (`storage::records`) and every recorded OCF
//! resource (`ocf::records`), newest first across both and across groups.
//! Both kinds of record carry the same stamp, taken before the start, so
//! newest first is the reverse of the start order — the reverse dependency
//! order a stop follows (an OCF resource started after a mount, e.g. a
//! database agent on it, stops before the unmount; a DRBD or LVM agent
//! started before it, after).
//!
//! Two callers, one order: the lease guard's fence ([`release`]: no SIGTERM
//! grace, every OCF `stop` run), and an agent that finds what an earlier
//! run of it recorded for a group — all of it when the group is not wanted
//! here, what the group's current spec no longer names when it starts
//! ([`release_group`]: SIGTERM first for a mount's users, an OCF resource
//! stopped only if its `monitor` says it runs).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;

use crate::drivers::ocf::records::{self as ocf_records, OcfRecord};
use crate::drivers::storage::records::{self, MountRecord, Released};
use crate::model::Name;

/// One piece of storage the node may hold.
enum Held {
    Mount(MountRecord),
    Ocf(OcfRecord),
}

/// What the release did, for the guard's log line.
#[derive(Debug, Default)]
pub struct StorageReleased {
    /// Mount points unmounted now.
    pub unmounted: Vec<String>,
    /// Processes that had a recorded device itself open (a file system
    /// check a start was running), killed: `[PID…] (MOUNT POINT)`.
    pub killed: Vec<String>,
    /// OCF resources whose `stop` worked (`ocf:PROVIDER:TYPE instance`).
    pub stopped: Vec<String>,
    /// What could not be released, and why: the node still holds it.
    pub failed: Vec<String>,
}

impl StorageReleased {
    /// Whether anything was taken down (for the fencing journal).
    pub fn took_something(&self) -> bool {
        !(self.unmounted.is_empty() && self.killed.is_empty() && self.stopped.is_empty())
    }
}

impl std::fmt::Display for StorageReleased {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "killed device holders {:?}, unmounted {:?}, stopped OCF resources {:?}",
            self.killed, self.unmounted, self.stopped
        )
    }
}

/// Who releases: the lease guard's fence, or the agent for one group.
#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    Guard,
    Agent,
}

/// Releases `mounts` (the guard's records, kept from its last renewal in
/// case the data file system has failed since) and every OCF resource
/// recorded under `data_dir`, newest first: mounts as the guard does
/// (holders of the device and users of the mount SIGKILLed, unmount
/// retried), OCF resources by their agent's `stop` with its recorded
/// timeout. One failure does not stop the others.
pub async fn release(data_dir: &Path, mounts: Vec<MountRecord>) -> StorageReleased {
    let held = newest_first(mounts, ocf_records::recorded(data_dir));
    release_held(held, By::Guard).await
}

/// The agent's release of what an earlier run of it recorded for `group`
/// and did not release (a `stop` that failed, or the guard's), except the
/// records of the data sources and OCF resources `keep` names (which a
/// start adopts): mounts with their users SIGTERMed first
/// (`records::release_agent`'s timing), OCF resources by `monitor`, then
/// `stop` if they still run. Nothing in `failed`: what was to be released
/// is released on this node.
pub async fn release_group(data_dir: &Path, group: &str, keep: &BTreeSet<Name>) -> StorageReleased {
    let mounts = records::recorded_of(data_dir, group)
        .into_iter()
        .filter(|m| !record_name(&m.file).is_some_and(|n| keep.contains(n)))
        .collect();
    let ocf = ocf_records::recorded_of(data_dir, group)
        .into_iter()
        .filter(|o| !keep.contains(o.agent.instance.as_str()))
        .collect();
    release_held(newest_first(mounts, ocf), By::Agent).await
}

fn newest_first(mounts: Vec<MountRecord>, ocf: Vec<OcfRecord>) -> Vec<Held> {
    let mut held: Vec<(OsString, Held)> = mounts
        .into_iter()
        .map(|m| (stamp_key(&m.file), Held::Mount(m)))
        .chain(ocf.into_iter().map(|o| (stamp_key(&o.file), Held::Ocf(o))))
        .collect();
    held.sort_by(|a, b| b.0.cmp(&a.0));
    held.into_iter().map(|(_, h)| h).collect()
}

async fn release_held(held: Vec<Held>, by: By) -> StorageReleased {
    let mut out = StorageReleased::default();
    for h in held {
        match h {
            Held::Mount(m) => {
                let done = match by {
                    By::Guard => records::release_fenced(vec![m]).await,
                    By::Agent => records::release_agent(vec![m]).await,
                };
                for r in done {
                    match r {
                        Released::Unmounted(p) => out.unmounted.push(p.display().to_string()),
                        Released::Killed(p, pids) => {
                            out.killed.push(format!("{pids:?} ({})", p.display()));
                        }
                        Released::NotMounted(_) => {}
                        Released::Failed(p, e) => {
                            out.failed.push(format!("mount {}: {e}", p.display()));
                        }
                    }
                }
            }
            Held::Ocf(o) => {
                let what = format!("{} {}", o.agent.name(), o.agent.instance);
                let stopped = match by {
                    By::Guard => ocf_records::stop(&o).await.map(|()| true),
                    By::Agent => ocf_records::release_left(&o).await,
                };
                match stopped {
                    Ok(true) => out.stopped.push(what),
                    Ok(false) => {}
                    Err(e) => out.failed.push(e),
                }
            }
        }
    }
    out
}

/// The data source or resource a record is for: its file name
/// (`STAMP-NAME`) after the stamp.
fn record_name(file: &Path) -> Option<&str> {
    file.file_name()?.to_str()?.split_once('-').map(|(_, n)| n)
}

/// A record's file name, which starts with its stamp.
fn stamp_key(file: &Path) -> OsString {
    file.file_name().map(OsString::from).unwrap_or_default()
}
