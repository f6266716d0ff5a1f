//! The lease guard's release of a node's storage, after it has killed the
//! group processes and removed the addresses: every recorded mount
//! (`storage::records`) and every recorded OCF resource (`ocf::records`),
//! newest first across both and across groups. Both kinds of record carry
//! the same stamp, taken before the start, so newest first is the reverse
//! of the start order — the reverse dependency order a stop follows (an OCF
//! resource started after a mount, e.g. a database agent on it, stops
//! before the unmount; a DRBD or LVM agent started before it, after).

use std::ffi::OsString;
use std::path::Path;

use crate::drivers::ocf::records::{self as ocf_records, OcfRecord};
use crate::drivers::storage::records::{self, MountRecord, Released};

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
    /// OCF resources whose `stop` worked (`ocf:PROVIDER:TYPE instance`).
    pub stopped: Vec<String>,
    /// What could not be released, and why: the node still holds it.
    pub failed: Vec<String>,
}

/// Releases `mounts` (the guard's records, kept from its last renewal in
/// case the data file system has failed since) and every OCF resource
/// recorded under `data_dir`, newest first: mounts as the guard does
/// (users SIGKILLed, unmount retried), OCF resources by their agent's
/// `stop` with its recorded timeout. One failure does not stop the others.
pub async fn release(data_dir: &Path, mounts: Vec<MountRecord>) -> StorageReleased {
    let mut held: Vec<(OsString, Held)> = mounts
        .into_iter()
        .map(|m| (stamp_key(&m.file), Held::Mount(m)))
        .chain(
            ocf_records::recorded(data_dir)
                .into_iter()
                .map(|o| (stamp_key(&o.file), Held::Ocf(o))),
        )
        .collect();
    held.sort_by(|a, b| b.0.cmp(&a.0));
    let mut out = StorageReleased::default();
    for (_, h) in held {
        match h {
            Held::Mount(m) => {
                for r in records::release_fenced(vec![m]).await {
                    match r {
                        Released::Unmounted(p) => out.unmounted.push(p.display().to_string()),
                        Released::NotMounted(_) => {}
                        Released::Failed(p, e) => {
                            out.failed.push(format!("mount {}: {e}", p.display()));
                        }
                    }
                }
            }
            Held::Ocf(o) => {
                let what = format!("{} {}", o.agent.name(), o.agent.instance);
                match ocf_records::stop(&o).await {
                    Ok(()) => out.stopped.push(what),
                    Err(e) => out.failed.push(e),
                }
            }
        }
    }
    out
}

/// A record's file name, which starts with its stamp.
fn stamp_key(file: &Path) -> OsString {
    file.file_name().map(OsString::from).unwrap_or_default()
}
