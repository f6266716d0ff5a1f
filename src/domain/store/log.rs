//! The raft log and vote (`log.jsonl`, `vote.json`, `committed.json`,
//! `purged.json`), checked whole at every start.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File};
use std::io::Write;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, Vote};

use super::disk::{self, LOG_FILE};
use super::inflight::{InFlight, blocking, debug_stall};
use super::{StoreError, to_raft};
use crate::domain::{NodeId, TypeConfig};

pub(crate) type Ent = Entry<TypeConfig>;

const VOTE_FILE: &str = "vote.json";
const COMMITTED_FILE: &str = "committed.json";
const PURGED_FILE: &str = "purged.json";

pub(crate) struct LogInner {
    dir: PathBuf,
    log: BTreeMap<u64, Ent>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    purged: Option<LogId<NodeId>>,
    /// Shared so that an append writes and fsyncs without the lock: the
    /// log's readers (replication) must not wait for the disk.
    file: Arc<File>,
}

fn sealed_entries<'a>(entries: impl IntoIterator<Item = &'a Ent>) -> std::io::Result<Vec<u8>> {
    let mut text = Vec::new();
    for e in entries {
        let json = serde_json::to_vec(e).map_err(std::io::Error::other)?;
        text.extend_from_slice(&disk::seal(&json));
    }
    Ok(text)
}

impl LogInner {
    fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Appends `entries` to the file and fsyncs it, as
    /// [`RaftLogStorage::append`] does (which writes outside the lock). On
    /// an error (disk full, EIO) nothing of the batch is kept, in memory or
    /// on disk: openraft hears of the failure and stops its core (and the
    /// agent with it).
    #[cfg(test)]
    pub(crate) fn append(&mut self, entries: impl IntoIterator<Item = Ent>) -> std::io::Result<()> {
        let entries: Vec<Ent> = entries.into_iter().collect();
        append_durably(&self.file, &entries)?;
        self.insert(entries);
        Ok(())
    }

    fn insert(&mut self, entries: Vec<Ent>) {
        for e in entries {
            self.log.insert(e.log_id.index, e);
        }
    }

    /// Rewrites the log file from memory (after a truncate or purge).
    fn rewrite(&mut self) -> std::io::Result<()> {
        let text = sealed_entries(self.log.values())?;
        disk::write_atomic(&self.log_path(), &text)?;
        self.file = Arc::new(crate::private::open_append(&self.log_path())?);
        Ok(())
    }
}

/// Appends `entries` to `file` and fsyncs it. On an error, whatever part of
/// the batch reached the file goes too (cutting needs no space), so that
/// disk and memory agree; if even that fails, the next start cuts the torn
/// tail or keeps whole lines raft never counted, which a leader may
/// overwrite.
fn append_durably(mut file: &File, entries: &[Ent]) -> std::io::Result<()> {
    let text = sealed_entries(entries)?;
    let before = file.metadata()?.len();
    if let Err(e) = file.write_all(&text).and_then(|()| file.sync_data()) {
        let _ = file.set_len(before);
        return Err(e);
    }
    Ok(())
}

/// Reads `log.jsonl`. A crash in the middle of an append can leave a torn
/// last line (no newline: its fsync never returned). It was never
/// acknowledged as durable, so it is dropped — and cut from the file, or
/// the next append would be glued to it. Any other line that does not check
/// out (a checksum mismatch, an index out of sequence) cannot come from a
/// crash (appends only add at the end, rewrites are atomic): the log is
/// damaged and the member refuses to start rather than run on entries it
/// never acknowledged or forget entries it did.
fn read_log(path: &Path) -> Result<BTreeMap<u64, Ent>, StoreError> {
    let mut log = BTreeMap::new();
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(log),
        Err(e) => return Err(StoreError::io(path, "reading", e)),
    };
    let mut good = 0usize;
    let mut prev: Option<u64> = None;
    for (i, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
        let at = |index: Option<u64>| match index {
            Some(x) => format!("line {} (entry index {x})", i + 1),
            None => format!("line {}", i + 1),
        };
        if !line.ends_with(b"\n") {
            tracing::warn!(
                "{}: dropping a torn last line (a crash mid-append; it was never acknowledged)",
                path.display()
            );
            let f = fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| StoreError::io(path, "opening", e))?;
            f.set_len(good as u64)
                .and_then(|()| f.sync_all())
                .map_err(|e| StoreError::io(path, "cutting the torn last line of", e))?;
            break;
        }
        let entry = match disk::unseal(line) {
            Ok(json) => serde_json::from_slice::<Ent>(json).map_err(|e| {
                StoreError::damaged(path, Some(at(None)), format!("not an entry: {e}"))
            })?,
            Err(why) => {
                // Name the entry if its text still reads as one.
                let entry = |j: &[u8]| serde_json::from_slice::<Ent>(j).ok();
                let index = line
                    .get(9..)
                    .and_then(entry)
                    .or_else(|| entry(line))
                    .map(|e| e.log_id.index);
                return Err(StoreError::damaged(path, Some(at(index)), why.to_string()));
            }
        };
        let index = entry.log_id.index;
        if let Some(p) = prev.filter(|p| index != p + 1) {
            return Err(StoreError::damaged(
                path,
                Some(at(Some(index))),
                format!("follows entry index {p}: entries are missing or out of order"),
            ));
        }
        prev = Some(index);
        log.insert(index, entry);
        good += line.len();
    }
    Ok(log)
}

/// What the log, vote, committed index and purge point must agree on.
fn check_agree(dir: &Path, inner: &LogInner) -> Result<(), StoreError> {
    let log_path = dir.join(LOG_FILE);
    let first = inner.log.keys().next().copied();
    let last = inner.log.keys().next_back().copied();
    let expected_first = inner.purged.map(|p| p.index + 1).unwrap_or(0);
    if let Some(first) = first.filter(|f| *f > expected_first) {
        let why = match inner.purged {
            Some(p) => format!("{PURGED_FILE} puts the snapshot at index {}", p.index),
            None => "there is no snapshot point (purged.json)".into(),
        };
        return Err(StoreError::damaged(
            &log_path,
            None,
            format!(
                "the log starts at entry index {first} but {why}: entries \
                 {expected_first}..{} are missing",
                first - 1
            ),
        ));
    }
    let end = last.or(inner.purged.map(|p| p.index));
    if let Some(c) = inner.committed.filter(|c| end.is_none_or(|e| c.index > e)) {
        let ends = match end {
            Some(e) => format!("ends at entry index {e}"),
            None => "has no entries".into(),
        };
        return Err(StoreError::damaged(
            &log_path,
            None,
            format!(
                "the log {ends} but {COMMITTED_FILE} records index {} as committed: the \
                 log was emptied or shortened",
                c.index
            ),
        ));
    }
    // The founding entry (index 0, term 0) is written before any vote.
    let voted_for_entries = inner
        .log
        .values()
        .any(|e| e.log_id.leader_id.term > 0 || e.log_id.index > 0)
        || inner.purged.is_some();
    match inner.vote {
        None if voted_for_entries => Err(StoreError::damaged(
            &dir.join(VOTE_FILE),
            None,
            format!(
                "missing, but {LOG_FILE} holds entries up to index {}: a member that lost \
                 its vote could vote twice in one term",
                end.unwrap_or(0)
            ),
        )),
        Some(v) => match inner.log.values().next_back() {
            Some(e) if e.log_id.leader_id.term > v.leader_id.term => Err(StoreError::damaged(
                &dir.join(VOTE_FILE),
                None,
                format!(
                    "the vote is for term {} but {LOG_FILE} has entry index {} from term {}: \
                     the vote is older than the log",
                    v.leader_id.term, e.log_id.index, e.log_id.leader_id.term
                ),
            )),
            _ => Ok(()),
        },
        None => Ok(()),
    }
}

/// The raft log and vote, shared between the store and its readers.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
    calls: Arc<InFlight>,
}

impl LogStore {
    /// Opens (or creates) the log under `dir`, checking every record (see
    /// [`read_log`] and the module's documentation).
    pub fn open(dir: &Path) -> Result<LogStore, StoreError> {
        crate::private::create_dir(dir).map_err(|e| StoreError::io(dir, "creating", e))?;
        disk::upgrade_legacy(dir)?;
        let purged: Option<LogId<NodeId>> = disk::read_record(&dir.join(PURGED_FILE))?;
        let mut log = read_log(&dir.join(LOG_FILE))?;
        // A crash between saving the purge point and rewriting the log
        // leaves entries the snapshot already covers: they go.
        if let Some(p) = purged {
            log = log.split_off(&(p.index + 1));
        }
        let path = dir.join(LOG_FILE);
        let inner = LogInner {
            vote: disk::read_record(&dir.join(VOTE_FILE))?,
            committed: disk::read_record::<Option<LogId<NodeId>>>(&dir.join(COMMITTED_FILE))?
                .flatten(),
            purged,
            dir: dir.to_owned(),
            log,
            file: Arc::new(
                crate::private::open_append(&path)
                    .map_err(|e| StoreError::io(&path, "opening", e))?,
            ),
        };
        check_agree(dir, &inner)?;
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
            calls: InFlight::new(dir),
        })
    }

    // A panic while holding the lock cannot leave the log half-written on
    // disk (every write is append+fsync or rename), so the data stays usable.
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether nothing was ever written (a pristine member).
    pub fn is_pristine(&self) -> bool {
        let i = self.lock();
        i.log.is_empty() && i.vote.is_none() && i.purged.is_none()
    }

    /// The writing calls in progress (for the agent's stall check).
    pub fn calls(&self) -> Arc<InFlight> {
        self.calls.clone()
    }

    /// The committed log id saved before the last stop.
    pub fn saved_committed(&self) -> Option<LogId<NodeId>> {
        self.lock().committed
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
        let _call = self.calls.begin("writing vote.json");
        // Only the raft core writes (one call at a time): the file is
        // written outside the lock, which the log's readers need.
        let path = self.calls.dir().join(VOTE_FILE);
        blocking(|| disk::write_record(&path, vote)).map_err(to_raft)?;
        self.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        let _call = self.calls.begin("writing committed.json");
        let mut inner = self.lock();
        // Losing the committed index only costs a re-apply wait after a
        // restart, so no fsync of its own per commit: it rides on the next
        // durable write. It can only lag the log, never run ahead of it
        // (entries are fsync'ed before they count), which is what the
        // start-up check relies on.
        let path = inner.dir.join(COMMITTED_FILE);
        let json = serde_json::to_vec(&committed).map_err(|e| to_raft(e.into()))?;
        let written = blocking(|| disk::write_unsynced(&path, &disk::seal(&json)));
        written.map_err(|e| to_raft(StoreError::io(&path, "writing", e)))?;
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
        let _call = self
            .calls
            .begin("appending to log.jsonl (write, fdatasync)");
        let entries: Vec<Ent> = entries.into_iter().collect();
        // Written and fsync'ed outside the lock (only the raft core
        // writes, one call at a time), so that replication's reads of the
        // log never wait for the disk.
        let (file, path) = {
            let inner = self.lock();
            (inner.file.clone(), inner.log_path())
        };
        let result = blocking(|| {
            debug_stall();
            append_durably(&file, &entries)
        });
        if result.is_ok() {
            self.lock().insert(entries);
        }
        let failed = result.as_ref().err().map(|e| {
            StoreError::io(
                &path,
                "appending to",
                std::io::Error::new(e.kind(), e.to_string()),
            )
        });
        callback.log_io_completed(result);
        match failed {
            Some(e) => Err(to_raft(e)),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let _call = self.calls.begin("rewriting log.jsonl (truncate)");
        // Rare (a conflicting leader): the rewrite keeps the lock.
        blocking(|| {
            let mut inner = self.lock();
            inner.log.split_off(&log_id.index);
            let path = inner.log_path();
            inner
                .rewrite()
                .map_err(|e| StoreError::io(&path, "rewriting", e))
        })
        .map_err(to_raft)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let _call = self.calls.begin("rewriting log.jsonl (purge)");
        // Rare (after a snapshot): the rewrite keeps the lock.
        blocking(|| {
            let mut inner = self.lock();
            disk::write_record(&inner.dir.join(PURGED_FILE), &log_id)?;
            inner.purged = Some(log_id);
            let keep = inner.log.split_off(&(log_id.index + 1));
            inner.log = keep;
            let path = inner.log_path();
            inner
                .rewrite()
                .map_err(|e| StoreError::io(&path, "rewriting", e))
        })
        .map_err(to_raft)
    }
}
