//! The state machine: the domain's state in memory, its last snapshot in
//! `snapshot.json` (sealed like every record, see `disk`).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::inflight::{InFlight, blocking};
use super::log::Ent;
use super::{Applied, StoreError, disk, to_raft};
use crate::domain::state::{DomainState, Outcome};
use crate::domain::{Member, NodeId, TypeConfig};

const SNAPSHOT_FILE: &str = "snapshot.json";

/// The snapshot file: the state and where it stands in the log.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<NodeId, Member>,
    state: DomainState,
}

pub(super) struct SmInner {
    dir: PathBuf,
    pub(super) state: DomainState,
    pub(super) last_applied: Option<LogId<NodeId>>,
    pub(super) membership: StoredMembership<NodeId, Member>,
    snapshot: Option<SnapshotFile>,
    snapshot_seq: u64,
}

/// The state machine: [`DomainState`] plus what raft needs around it.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<SmInner>>,
    publish: Arc<watch::Sender<Applied>>,
    calls: Arc<InFlight>,
}

impl StateMachine {
    /// Opens the state machine under `dir`, from its snapshot if there is one.
    pub fn open(dir: &Path) -> Result<(StateMachine, watch::Receiver<Applied>), StoreError> {
        crate::private::create_dir(dir).map_err(|e| StoreError::io(dir, "creating", e))?;
        disk::upgrade_legacy(dir)?;
        let snapshot: Option<SnapshotFile> = disk::read_record(&dir.join(SNAPSHOT_FILE))?;
        let (state, last_applied, membership) = match &snapshot {
            Some(s) => {
                let mut state = s.state.clone();
                state.restore();
                (state, s.meta.last_log_id, s.meta.last_membership.clone())
            }
            None => (DomainState::default(), None, StoredMembership::default()),
        };
        let (tx, rx) = watch::channel(Applied {
            state: Arc::new(state.clone()),
            index: last_applied.map(|l| l.index).unwrap_or(0),
        });
        let sm = StateMachine {
            inner: Arc::new(Mutex::new(SmInner {
                dir: dir.to_owned(),
                state,
                last_applied,
                membership,
                snapshot,
                snapshot_seq: 0,
            })),
            publish: Arc::new(tx),
            calls: InFlight::new(dir),
        };
        Ok((sm, rx))
    }

    /// The writing calls in progress (for the agent's stall check).
    pub fn calls(&self) -> Arc<InFlight> {
        self.calls.clone()
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, SmInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, inner: &SmInner) {
        self.publish.send_replace(Applied {
            state: Arc::new(inner.state.clone()),
            index: inner.last_applied.map(|l| l.index).unwrap_or(0),
        });
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let _call = self.calls.begin("writing snapshot.json (build)");
        // Under the lock, as installs are: one snapshot file at a time, and
        // never an older one over a newer. Rare, so applying entries may
        // wait for it.
        let (meta, data) = blocking(|| {
            let mut inner = self.lock();
            inner.snapshot_seq += 1;
            let snapshot_id = match inner.last_applied {
                Some(l) => format!("{}-{}-{}", l.leader_id, l.index, inner.snapshot_seq),
                None => format!("none-{}", inner.snapshot_seq),
            };
            let file = SnapshotFile {
                meta: SnapshotMeta {
                    last_log_id: inner.last_applied,
                    last_membership: inner.membership.clone(),
                    snapshot_id,
                },
                state: inner.state.clone(),
            };
            let data = serde_json::to_vec(&file.state)?;
            disk::write_record(&inner.dir.join(SNAPSHOT_FILE), &file)?;
            let meta = file.meta.clone();
            inner.snapshot = Some(file);
            Ok::<_, StoreError>((meta, data))
        })
        .map_err(to_raft)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Member>), StorageError<NodeId>>
    {
        let inner = self.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Ent> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.lock();
        let mut out = Vec::new();
        for e in entries {
            inner.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => out.push(Outcome::Done),
                EntryPayload::Normal(cmd) => out.push(inner.state.apply(cmd)),
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(e.log_id), m);
                    out.push(Outcome::Done);
                }
            }
        }
        self.publish(&inner);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Member>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let mut state: DomainState =
            serde_json::from_slice(snapshot.get_ref()).map_err(|e| to_raft(e.into()))?;
        state.restore();
        let file = SnapshotFile {
            meta: meta.clone(),
            state: state.clone(),
        };
        let _call = self.calls.begin("writing snapshot.json (install)");
        let mut inner = blocking(|| {
            let inner = self.lock();
            disk::write_record(&inner.dir.join(SNAPSHOT_FILE), &file).map(|()| inner)
        })
        .map_err(to_raft)?;
        inner.state = state;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.snapshot = Some(file);
        self.publish(&inner);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let inner = self.lock();
        match &inner.snapshot {
            None => Ok(None),
            Some(f) => Ok(Some(Snapshot {
                meta: f.meta.clone(),
                snapshot: Box::new(Cursor::new(
                    serde_json::to_vec(&f.state).map_err(|e| to_raft(e.into()))?,
                )),
            })),
        }
    }
}
