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

    /// Appends `entries` to the file and fsyncs it (what
    /// [`RaftLogStorage::append`] reports durable).
    fn append(&mut self, entries: impl IntoIterator<Item = Ent>) -> std::io::Result<()> {
        let mut text = Vec::new();
        for e in entries {
            serde_json::to_writer(&mut text, &e).map_err(std::io::Error::other)?;
            text.push(b'\n');
            self.log.insert(e.log_id.index, e);
        }
        self.file.write_all(&text)?;
        self.file.sync_data()
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
    ///
    /// A crash in the middle of an append can leave a torn last line. It was
    /// never acknowledged as durable, so it is dropped — and cut from the
    /// file, or the next append would be glued to it and lost at the next
    /// start, with everything after it. An unreadable line anywhere else
    /// cannot come from a crash (appends only add at the end, rewrites are
    /// atomic): that log is damaged, and the member refuses to start rather
    /// than forget entries it acknowledged.
    pub fn open(dir: &Path) -> std::io::Result<LogStore> {
        fs::create_dir_all(dir)?;
        let path = dir.join("log.jsonl");
        let mut log = BTreeMap::new();
        if let Ok(f) = File::open(&path) {
            let mut reader = BufReader::new(f);
            let mut line = Vec::new();
            // The end of the last complete, readable line.
            let mut good = 0u64;
            let mut torn: Option<String> = None;
            loop {
                line.clear();
                let n = reader.read_until(b'\n', &mut line)?;
                if n == 0 {
                    break;
                }
                if let Some(why) = torn.take() {
                    return Err(std::io::Error::other(format!(
                        "{}: unreadable entry before the end of the log ({why}); the raft log \
                         is damaged",
                        path.display()
                    )));
                }
                let text = String::from_utf8_lossy(&line);
                if text.trim().is_empty() {
                    good += n as u64;
                    continue;
                }
                match serde_json::from_str::<Ent>(text.trim_end()) {
                    Ok(e) if line.ends_with(b"\n") => {
                        log.insert(e.log_id.index, e);
                        good += n as u64;
                    }
                    // A last line without its newline is torn even if it
                    // parses: its fsync never returned.
                    Ok(_) => torn = Some("no end of line".into()),
                    Err(e) => torn = Some(e.to_string()),
                }
            }
            if let Some(why) = torn {
                tracing::warn!("dropping a torn last raft log line (a crash mid-append): {why}");
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(good)?;
                f.sync_all()?;
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
        let result = self.lock().append(entries);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use openraft::testing::{StoreBuilder, Suite, log_id};
    use openraft::{Membership, RaftLogReader};

    use super::*;
    use crate::domain::Command;
    use crate::plan::{NodeState, Placement};

    /// A log store and state machine in a fresh directory, for openraft's
    /// storage suite.
    struct InTempDir;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for InTempDir {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
            let dir = tempfile::tempdir().map_err(io_err)?;
            let log = LogStore::open(dir.path()).map_err(io_err)?;
            let (sm, _) = StateMachine::open(dir.path()).map_err(io_err)?;
            Ok((dir, log, sm))
        }
    }

    /// openraft's own checks of a storage implementation: log state and
    /// reads, vote, purge, truncate, membership, apply, snapshot transfer.
    #[test]
    fn passes_the_openraft_storage_suite() {
        Suite::test_all(InTempDir).expect("the storage suite passes");
    }

    fn blank(index: u64) -> Ent {
        Entry {
            log_id: log_id(1, 0, index),
            payload: EntryPayload::Blank,
        }
    }

    fn append(store: &LogStore, range: std::ops::RangeInclusive<u64>) {
        store
            .lock()
            .append(range.map(blank))
            .expect("appended and fsync'ed");
    }

    async fn indexes(store: &LogStore) -> Vec<u64> {
        let mut reader = store.clone();
        reader
            .try_get_log_entries(..)
            .await
            .expect("read")
            .iter()
            .map(|e| e.log_id.index)
            .collect()
    }

    #[tokio::test]
    async fn a_torn_last_line_is_dropped_and_cut_so_later_appends_survive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LogStore::open(dir.path()).expect("open");
        append(&store, 1..=3);
        drop(store);
        // A crash in the middle of the next append: half a line, no newline.
        let path = dir.path().join("log.jsonl");
        let whole = {
            let mut text = serde_json::to_vec(&blank(4)).expect("json");
            text.push(b'\n');
            text
        };
        let mut f = OpenOptions::new().append(true).open(&path).expect("log");
        f.write_all(&whole[..whole.len() / 2]).expect("torn write");
        drop(f);

        let mut store = LogStore::open(dir.path()).expect("reopens after the crash");
        assert_eq!(indexes(&store).await, vec![1, 2, 3]);
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id, Some(log_id(1, 0, 3)));
        // Raft appends again where the log really ends; after the next
        // restart those entries must still be there.
        append(&store, 4..=5);
        drop(store);
        let store = LogStore::open(dir.path()).expect("reopens");
        assert_eq!(indexes(&store).await, vec![1, 2, 3, 4, 5]);
        // A whole last line whose newline did not make it is torn too.
        drop(store);
        let mut f = OpenOptions::new().append(true).open(&path).expect("log");
        let six = serde_json::to_vec(&blank(6)).expect("json");
        f.write_all(&six).expect("write without newline");
        drop(f);
        let store = LogStore::open(dir.path()).expect("reopens");
        assert_eq!(indexes(&store).await, vec![1, 2, 3, 4, 5]);
        append(&store, 6..=6);
        drop(store);
        let store = LogStore::open(dir.path()).expect("reopens");
        assert_eq!(indexes(&store).await, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_damaged_line_before_the_end_is_refused_not_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LogStore::open(dir.path()).expect("open");
        append(&store, 1..=2);
        drop(store);
        let path = dir.path().join("log.jsonl");
        let mut text = fs::read(&path).expect("read");
        let mut broken = b"{\"not\": an entry}\n".to_vec();
        broken.extend_from_slice(&text);
        text = broken;
        fs::write(&path, &text).expect("write");
        let err = LogStore::open(dir.path())
            .err()
            .expect("a damaged log is refused");
        assert!(err.to_string().contains("damaged"), "{err}");
    }

    #[tokio::test]
    async fn truncate_purge_vote_and_committed_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path()).expect("open");
        assert!(store.is_pristine());
        append(&store, 1..=10);
        // A conflicting leader: everything from 8 on goes.
        store.truncate(log_id(1, 0, 8)).await.expect("truncate");
        assert_eq!(indexes(&store).await, (1..=7).collect::<Vec<_>>());
        // A snapshot covers up to 3.
        store.purge(log_id(1, 0, 3)).await.expect("purge");
        assert_eq!(indexes(&store).await, vec![4, 5, 6, 7]);
        let vote = Vote::new(3, 7);
        store.save_vote(&vote).await.expect("vote");
        store
            .save_committed(Some(log_id(1, 0, 6)))
            .await
            .expect("committed");
        drop(store);

        let mut store = LogStore::open(dir.path()).expect("reopen");
        assert!(!store.is_pristine());
        assert_eq!(indexes(&store).await, vec![4, 5, 6, 7]);
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 0, 3)));
        assert_eq!(state.last_log_id, Some(log_id(1, 0, 7)));
        assert_eq!(store.read_vote().await.expect("vote"), Some(vote));
        assert_eq!(store.saved_committed(), Some(log_id(1, 0, 6)));

        // Appending after a truncate continues the rewritten file.
        store.truncate(log_id(1, 0, 6)).await.expect("truncate");
        append(&store, 6..=8);
        // Purging everything leaves the purged id as the last log id.
        store.purge(log_id(1, 0, 8)).await.expect("purge all");
        drop(store);
        let mut store = LogStore::open(dir.path()).expect("reopen");
        assert!(indexes(&store).await.is_empty());
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 0, 8)));
        assert_eq!(state.last_log_id, Some(log_id(1, 0, 8)));
    }

    fn quickstart_documents() -> Vec<String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart");
        let loaded = crate::load::load(&[crate::load::Input::Path(dir.into())]).expect("loads");
        crate::plan::documents::to_document_texts(&loaded.config)
    }

    #[tokio::test]
    async fn a_snapshot_built_on_one_member_installs_on_another_and_survives_restarts() {
        let leader_dir = tempfile::tempdir().expect("tempdir");
        let (mut leader, _) = StateMachine::open(leader_dir.path()).expect("open");
        let health = ["node1", "node2", "node3"]
            .iter()
            .map(|n| (n.parse().expect("name"), NodeState::Up))
            .collect();
        let voters: BTreeSet<NodeId> = [1, 2, 3].into_iter().collect();
        let entries = vec![
            Entry {
                log_id: log_id(1, 1, 1),
                payload: EntryPayload::Membership(Membership::new(vec![voters], None)),
            },
            Entry {
                log_id: log_id(1, 1, 2),
                payload: EntryPayload::Normal(Command::SetPlacement {
                    generation: 0,
                    placement: Placement::new(),
                    health,
                    base: None,
                }),
            },
            Entry {
                log_id: log_id(1, 1, 3),
                payload: EntryPayload::Normal(Command::ApplyConfig {
                    base_generation: 0,
                    documents: quickstart_documents(),
                }),
            },
        ];
        let out = leader.apply(entries).await.expect("applied");
        assert_eq!(out[2], Outcome::Applied { generation: 1 });
        let state = leader.lock().state.clone();
        assert_eq!(state.placement.len(), 3);

        let snapshot = leader
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("built");
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 1, 3)));
        assert_eq!(
            snapshot.meta.last_membership.log_id(),
            &Some(log_id(1, 1, 1))
        );

        let follower_dir = tempfile::tempdir().expect("tempdir");
        let (mut follower, published) = StateMachine::open(follower_dir.path()).expect("open");
        let mut data = follower.begin_receiving_snapshot().await.expect("begin");
        *data = *snapshot.snapshot;
        follower
            .install_snapshot(&snapshot.meta, data)
            .await
            .expect("installed");
        let check = |sm: &StateMachine, what: &str| {
            let inner = sm.lock();
            assert_eq!(inner.state, state, "{what}: the state");
            assert_eq!(
                inner.state.config(),
                state.config(),
                "{what}: the typed configuration is rebuilt"
            );
            assert_eq!(inner.last_applied, Some(log_id(1, 1, 3)), "{what}");
            assert_eq!(inner.membership, snapshot.meta.last_membership, "{what}");
        };
        check(&follower, "installed");
        assert_eq!(published.borrow().index, 3);
        assert_eq!(*published.borrow().state, state);

        // Both come back from their snapshot file after a restart.
        drop(follower);
        drop(leader);
        for (dir, what) in [(&follower_dir, "follower"), (&leader_dir, "leader")] {
            let (mut sm, rx) = StateMachine::open(dir.path()).expect("reopen");
            check(&sm, what);
            assert_eq!(rx.borrow().index, 3, "{what}");
            let current = sm
                .get_current_snapshot()
                .await
                .expect("read")
                .expect("a snapshot");
            assert_eq!(current.meta, snapshot.meta, "{what}");
            assert_eq!(
                sm.applied_state().await.expect("applied"),
                (Some(log_id(1, 1, 3)), snapshot.meta.last_membership.clone())
            );
        }
    }
}
