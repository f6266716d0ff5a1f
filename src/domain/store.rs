//! Raft storage in the agent's data directory: the log, the vote and the
//! snapshot, as plain files.
//!
//! - `raft/log.jsonl`: one JSON entry per line, appended and fsync'ed before
//!   openraft is told the entries are durable. Truncation and purging (rare:
//!   a conflicting leader, a snapshot) rewrite the file to a temporary name
//!   and rename it over, so a crash leaves either the old or the new file.
//! - `raft/vote.json`, `raft/committed.json`, `raft/purged.json`: small
//!   records, written the same way.
//! - `raft/snapshot.json`: the last snapshot (state + metadata).
//!
//! The state machine itself is in memory: on start-up it is the snapshot,
//! and openraft re-applies the log up to the saved committed index. The
//! domain's state is small (a configuration and a placement), so whole-file
//! rewrites and an in-memory log stay cheap.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Cursor, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::state::{DomainState, Outcome};
use super::{Member, NodeId, TypeConfig};

fn io_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::<NodeId>::write(&std::io::Error::other(e.to_string())).into()
}

/// Writes `bytes` to `path` durably: a temporary file, fsync, rename, fsync
/// of the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn read_json<T: DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    write_atomic(path, &bytes)
}

type Ent = Entry<TypeConfig>;

struct LogInner {
    dir: PathBuf,
    log: BTreeMap<u64, Ent>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    purged: Option<LogId<NodeId>>,
    file: File,
}

impl LogInner {
    fn log_path(&self) -> PathBuf {
        self.dir.join("log.jsonl")
    }

    /// Rewrites the log file from memory (after a truncate or purge).
    fn rewrite(&mut self) -> std::io::Result<()> {
        let mut text = Vec::new();
        for e in self.log.values() {
            serde_json::to_writer(&mut text, e).map_err(std::io::Error::other)?;
            text.push(b'\n');
        }
        write_atomic(&self.log_path(), &text)?;
        self.file = OpenOptions::new().append(true).open(self.log_path())?;
        Ok(())
    }
}

/// The raft log and vote, shared between the store and its readers.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

impl LogStore {
    /// Opens (or creates) the log under `dir`.
    pub fn open(dir: &Path) -> std::io::Result<LogStore> {
        fs::create_dir_all(dir)?;
        let path = dir.join("log.jsonl");
        let mut log = BTreeMap::new();
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).lines() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                // A crash mid-append can leave a torn last line; it was never
                // acknowledged as durable, so dropping it is correct.
                match serde_json::from_str::<Ent>(&line) {
                    Ok(e) => {
                        log.insert(e.log_id.index, e);
                    }
                    Err(e) => {
                        tracing::warn!("dropping an unreadable raft log line: {e}");
                        break;
                    }
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let inner = LogInner {
            vote: read_json(&dir.join("vote.json"))?,
            committed: read_json(&dir.join("committed.json"))?,
            purged: read_json(&dir.join("purged.json"))?,
            dir: dir.to_owned(),
            log,
            file,
        };
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    // A panic while holding the lock cannot leave the log half-written on
    // disk (every write is append+fsync or rename), so the data stays usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether nothing was ever written (a pristine member).
    pub fn is_pristine(&self) -> bool {
        self.inner
            .lock()
            .map(|i| i.log.is_empty() && i.vote.is_none() && i.purged.is_none())
            .unwrap_or(false)
    }

    /// The committed log id saved before the last stop.
    pub fn saved_committed(&self) -> Option<LogId<NodeId>> {
        self.inner.lock().ok().and_then(|i| i.committed)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Ent>, StorageError<NodeId>> {
        let inner = self.lock();
        Ok(inner.log.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.lock();
        let last = inner
            .log
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.purged);
        Ok(LogState {
            last_purged_log_id: inner.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.lock();
        write_json(&inner.dir.join("vote.json"), vote).map_err(io_err)?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.lock();
        // Losing the committed index only costs a re-apply wait after a
        // restart, so no fsync of its own per commit: it rides on the next
        // durable write.
        let bytes = serde_json::to_vec(&committed).map_err(io_err)?;
        let path = inner.dir.join("committed.json");
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, bytes)
            .and_then(|_| fs::rename(&tmp, &path))
            .map_err(io_err)?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Ent> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.lock();
        let mut text = Vec::new();
        for e in entries {
            serde_json::to_writer(&mut text, &e).map_err(io_err)?;
            text.push(b'\n');
            inner.log.insert(e.log_id.index, e);
        }
        let result = inner
            .file
            .write_all(&text)
            .and_then(|_| inner.file.sync_data());
        let failed = result.as_ref().err().map(|e| e.to_string());
        callback.log_io_completed(result);
        match failed {
            Some(e) => Err(io_err(e)),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.lock();
        inner.log.split_off(&log_id.index);
        inner.rewrite().map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.lock();
        write_json(&inner.dir.join("purged.json"), &log_id).map_err(io_err)?;
        inner.purged = Some(log_id);
        let keep = inner.log.split_off(&(log_id.index + 1));
        inner.log = keep;
        inner.rewrite().map_err(io_err)
    }
}

/// The snapshot file: the state and where it stands in the log.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<NodeId, Member>,
    state: DomainState,
}

/// What every member publishes after applying entries.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub state: Arc<DomainState>,
    /// Index of the last applied entry.
    pub index: u64,
}

struct SmInner {
    dir: PathBuf,
    state: DomainState,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Member>,
    snapshot: Option<SnapshotFile>,
    snapshot_seq: u64,
}

/// The state machine: [`DomainState`] plus what raft needs around it.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<SmInner>>,
    publish: Arc<watch::Sender<Applied>>,
}

impl StateMachine {
    /// Opens the state machine under `dir`, from its snapshot if there is one.
    pub fn open(dir: &Path) -> std::io::Result<(StateMachine, watch::Receiver<Applied>)> {
        fs::create_dir_all(dir)?;
        let snapshot: Option<SnapshotFile> = read_json(&dir.join("snapshot.json"))?;
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
        };
        Ok((sm, rx))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SmInner> {
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
        let data = serde_json::to_vec(&file.state).map_err(io_err)?;
        write_json(&inner.dir.join("snapshot.json"), &file).map_err(io_err)?;
        let meta = file.meta.clone();
        inner.snapshot = Some(file);
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
        let mut state: DomainState = serde_json::from_slice(snapshot.get_ref()).map_err(io_err)?;
        state.restore();
        let file = SnapshotFile {
            meta: meta.clone(),
            state: state.clone(),
        };
        let mut inner = self.lock();
        write_json(&inner.dir.join("snapshot.json"), &file).map_err(io_err)?;
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
                snapshot: Box::new(Cursor::new(serde_json::to_vec(&f.state).map_err(io_err)?)),
            })),
        }
    }
}
