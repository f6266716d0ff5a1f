//! Raft storage in the agent's data directory: the log, the vote and the
//! snapshot, as plain files (`disk` writes and checks them).
//!
//! - `raft/log.jsonl`: one sealed entry per line (a CRC-32C over the JSON,
//!   see `disk`), appended and fsync'ed before openraft is told the entries
//!   are durable. Truncation and purging (rare: a conflicting leader, a
//!   snapshot) rewrite the file to a temporary name and rename it over, so a
//!   crash leaves either the old or the new file.
//! - `raft/vote.json`, `raft/committed.json`, `raft/purged.json`: small
//!   sealed records, written the same way.
//! - `raft/snapshot.json`: the last snapshot (state + metadata), sealed.
//! - `raft/format`: the marker of a directory whose files are all sealed.
//!
//! Every start checks all of it — each checksum, the log's indexes in
//! sequence from the purge point, the committed index inside the log, a
//! vote for any log that needed one — and refuses damaged data with the
//! file, the line or index and how to rejoin (docs/runtime.md, "Damaged
//! raft data"), rather than run on what this member never acknowledged.
//!
//! The state machine itself is in memory: on start-up it is the snapshot,
//! and openraft re-applies the log up to the saved committed index. The
//! domain's state is small (a configuration and a placement), so whole-file
//! rewrites and an in-memory log stay cheap.

mod disk;
mod inflight;
mod log;
mod machine;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

use openraft::{StorageError, StorageIOError};
use thiserror::Error;

use super::NodeId;
use super::state::DomainState;

pub(crate) use disk::write_atomic as write_private;
pub use inflight::InFlight;
pub use log::LogStore;
pub use machine::StateMachine;

/// What the store tells a member that points to the cure.
pub const REJOIN: &str = "this member's raft data is damaged and it will not start on it; to \
     rejoin, stop the agent, move its dataDir/raft aside (keep it for a post-mortem) and start \
     the agent again: it joins with an empty log and copies the domain from the other members, \
     which must have a majority running (docs/runtime.md, \"Damaged raft data\")";

/// Why the store cannot open or write its files.
#[derive(Debug, Error)]
pub enum StoreError {
    /// An I/O error on one file: disk full, EIO, a read-only file system,
    /// permissions.
    #[error("{path}: {what}: {err}")]
    Io {
        path: String,
        what: &'static str,
        err: std::io::Error,
    },
    /// Raft data that does not encode or decode (a snapshot received).
    #[error("raft data: {0}")]
    Json(serde_json::Error),
    /// A record that does not check out (see the module documentation).
    #[error("{path}{}: {why}; {REJOIN}", at.as_ref().map(|a| format!(" {a}")).unwrap_or_default())]
    Damaged {
        path: String,
        at: Option<String>,
        why: String,
    },
}

impl StoreError {
    pub(crate) fn io(path: &Path, what: &'static str, err: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.display().to_string(),
            what,
            err,
        }
    }

    pub(crate) fn damaged(path: &Path, at: Option<String>, why: String) -> StoreError {
        StoreError::Damaged {
            path: path.display().to_string(),
            at,
            why,
        }
    }
}

// Not `#[from]`: that would make the JSON error a `source` too, and a
// printed chain would say its text twice.
impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> StoreError {
        StoreError::Json(e)
    }
}

/// A store error as openraft's: its text, with the I/O error's kind kept
/// (openraft stops its core on any storage error).
fn to_raft(e: StoreError) -> StorageError<NodeId> {
    let kind = match &e {
        StoreError::Io { err, .. } => err.kind(),
        StoreError::Damaged { .. } | StoreError::Json(_) => std::io::ErrorKind::InvalidData,
    };
    StorageIOError::<NodeId>::write(&std::io::Error::new(kind, e.to_string())).into()
}

/// What every member publishes after applying entries.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub state: Arc<DomainState>,
    /// Index of the last applied entry.
    pub index: u64,
}
