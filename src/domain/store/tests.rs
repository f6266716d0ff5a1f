//! The store's tests: openraft's storage suite, crash recovery, damage.

use std::collections::BTreeSet;

use openraft::testing::{StoreBuilder, Suite, log_id};
use openraft::{Membership, RaftLogReader};

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{Entry, EntryPayload, RaftSnapshotBuilder, StorageError, Vote};

use super::log::Ent;
use super::*;
use crate::domain::{Command, Outcome, TypeConfig};
use crate::plan::{NodeState, Placement};

/// A log store and state machine in a fresh directory, for openraft's
/// storage suite.
struct InTempDir;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for InTempDir {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir =
            tempfile::tempdir().map_err(|e| to_raft(StoreError::io(Path::new("."), "", e)))?;
        let log = LogStore::open(dir.path()).map_err(to_raft)?;
        let (sm, _) = StateMachine::open(dir.path()).map_err(to_raft)?;
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

/// A store in `dir` that voted in term 1 and holds entries 0..=`last`.
async fn store_with(dir: &Path, last: u64) -> LogStore {
    let mut store = LogStore::open(dir).expect("open");
    store.save_vote(&Vote::new(1, 0)).await.expect("vote");
    append(&store, 0..=last);
    store
}

#[tokio::test]
async fn a_torn_last_line_is_dropped_and_cut_so_later_appends_survive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with(dir.path(), 3).await;
    drop(store);
    // A crash in the middle of the next append: half a line, no newline.
    let path = dir.path().join("log.jsonl");
    let whole = disk::seal(&serde_json::to_vec(&blank(4)).expect("json"));
    let mut f = OpenOptions::new().append(true).open(&path).expect("log");
    f.write_all(&whole[..whole.len() / 2]).expect("torn write");
    drop(f);

    let mut store = LogStore::open(dir.path()).expect("reopens after the crash");
    assert_eq!(indexes(&store).await, vec![0, 1, 2, 3]);
    let state = store.get_log_state().await.expect("state");
    assert_eq!(state.last_log_id, Some(log_id(1, 0, 3)));
    // Raft appends again where the log really ends; after the next
    // restart those entries must still be there.
    append(&store, 4..=5);
    drop(store);
    let store = LogStore::open(dir.path()).expect("reopens");
    assert_eq!(indexes(&store).await, vec![0, 1, 2, 3, 4, 5]);
    // A whole last line whose newline did not make it is torn too.
    drop(store);
    let mut f = OpenOptions::new().append(true).open(&path).expect("log");
    let six = disk::seal(&serde_json::to_vec(&blank(6)).expect("json"));
    f.write_all(&six[..six.len() - 1])
        .expect("write without newline");
    drop(f);
    let store = LogStore::open(dir.path()).expect("reopens");
    assert_eq!(indexes(&store).await, vec![0, 1, 2, 3, 4, 5]);
    append(&store, 6..=6);
    drop(store);
    let store = LogStore::open(dir.path()).expect("reopens");
    assert_eq!(indexes(&store).await, vec![0, 1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn the_data_directory_is_created_0700_and_every_file_0600() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    let top = tempfile::tempdir().expect("tempdir");
    let dir = top.path().join("data/raft");
    let mut store = store_with(&dir, 3).await;
    store
        .save_committed(Some(log_id(1, 0, 2)))
        .await
        .expect("committed");
    store.purge(log_id(1, 0, 1)).await.expect("purge");
    let (mut sm, _) = StateMachine::open(&dir).expect("sm");
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("snapshot");
    assert_eq!(mode(&top.path().join("data")), 0o700);
    assert_eq!(mode(&dir), 0o700);
    let mut names = Vec::new();
    for f in fs::read_dir(&dir).expect("ls") {
        let f = f.expect("entry");
        names.push(f.file_name().to_string_lossy().into_owned());
        assert_eq!(mode(&f.path()), 0o600, "{}", f.path().display());
    }
    names.sort();
    assert_eq!(
        names,
        [
            "committed.json",
            "format",
            "log.jsonl",
            "purged.json",
            "snapshot.json",
            "vote.json"
        ]
    );
}

/// The refusal of the store in `dir`, as text.
fn refusal(dir: &Path) -> String {
    match LogStore::open(dir) {
        Ok(_) => panic!("a damaged store opened"),
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains(REJOIN), "says how to rejoin: {text}");
            text
        }
    }
}

/// Rewrites the log file of `dir` line by line.
fn edit_log(dir: &Path, edit: impl FnOnce(&mut Vec<String>)) {
    let path = dir.join("log.jsonl");
    let text = fs::read_to_string(&path).expect("read");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    edit(&mut lines);
    let mut out = lines.join("\n");
    if !lines.is_empty() {
        out.push('\n');
    }
    fs::write(&path, out).expect("write");
}

#[tokio::test]
async fn an_entry_edited_on_disk_is_refused_naming_file_line_and_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(store_with(dir.path(), 3).await);
    // Still valid JSON, still a valid entry: only the checksum tells.
    edit_log(dir.path(), |lines| {
        lines[2] = lines[2].replace("\"term\":1", "\"term\":2");
    });
    let err = refusal(dir.path());
    assert!(err.contains("log.jsonl line 3 (entry index 2)"), "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");

    // The last line too, when its newline made it: that was no crash.
    let dir = tempfile::tempdir().expect("tempdir");
    drop(store_with(dir.path(), 3).await);
    edit_log(dir.path(), |lines| {
        lines[3] = lines[3].replace("Blank", "blank");
    });
    let err = refusal(dir.path());
    assert!(err.contains("line 4"), "{err}");
}

#[tokio::test]
async fn an_unsealed_or_missing_line_is_refused_not_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(store_with(dir.path(), 2).await);
    edit_log(dir.path(), |lines| {
        lines.insert(0, "{\"not\": an entry}".into())
    });
    let err = refusal(dir.path());
    assert!(err.contains("line 1: no checksum"), "{err}");

    let dir = tempfile::tempdir().expect("tempdir");
    drop(store_with(dir.path(), 4).await);
    edit_log(dir.path(), |lines| {
        lines.remove(2);
    });
    let err = refusal(dir.path());
    assert!(
        err.contains("line 3 (entry index 3): follows entry index 1"),
        "{err}"
    );
}

#[tokio::test]
async fn an_emptied_or_shortened_log_is_refused_naming_the_indexes() {
    for (keep, says) in [
        (
            0,
            "the log has no entries but committed.json records index 5",
        ),
        (
            3,
            "the log ends at entry index 2 but committed.json records index 5",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = store_with(dir.path(), 6).await;
        store
            .save_committed(Some(log_id(1, 0, 5)))
            .await
            .expect("committed");
        drop(store);
        edit_log(dir.path(), |lines| lines.truncate(keep));
        let err = refusal(dir.path());
        assert!(err.contains("log.jsonl"), "{err}");
        assert!(err.contains(says), "{err}");
    }
}

#[tokio::test]
async fn a_missing_or_edited_vote_is_damage_not_a_fresh_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(store_with(dir.path(), 3).await);
    fs::remove_file(dir.path().join("vote.json")).expect("rm");
    let err = refusal(dir.path());
    assert!(
        err.contains("vote.json: missing, but log.jsonl holds entries up to index 3"),
        "{err}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    drop(store_with(dir.path(), 3).await);
    let path = dir.path().join("vote.json");
    let text = fs::read_to_string(&path).expect("read");
    fs::write(&path, text.replace("\"term\":1", "\"term\":7")).expect("write");
    let err = refusal(dir.path());
    assert!(err.contains("vote.json: checksum mismatch"), "{err}");

    // A vote older than the log (an old vote.json put back).
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with(dir.path(), 1).await;
    store
        .lock()
        .append([Entry {
            log_id: log_id(3, 0, 2),
            payload: EntryPayload::Blank,
        }])
        .expect("append");
    drop(store);
    let err = refusal(dir.path());
    assert!(err.contains("the vote is for term 1"), "{err}");
}

#[tokio::test]
async fn a_data_dir_without_checksums_is_sealed_once_then_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let legacy: String = (0..=3)
        .map(|i| serde_json::to_string(&blank(i)).expect("json") + "\n")
        .collect();
    fs::write(dir.path().join("log.jsonl"), legacy).expect("log");
    fs::write(
        dir.path().join("vote.json"),
        serde_json::to_vec(&Vote::new(1, 0)).expect("json"),
    )
    .expect("vote");
    fs::write(
        dir.path().join("committed.json"),
        serde_json::to_vec(&Some(log_id(1, 0, 3))).expect("json"),
    )
    .expect("committed");
    let mut store = LogStore::open(dir.path()).expect("a legacy directory opens");
    assert_eq!(indexes(&store).await, vec![0, 1, 2, 3]);
    assert_eq!(
        store.read_vote().await.expect("vote"),
        Some(Vote::new(1, 0))
    );
    assert_eq!(store.saved_committed(), Some(log_id(1, 0, 3)));
    drop(store);
    for name in ["log.jsonl", "vote.json", "committed.json"] {
        let bytes = fs::read(dir.path().join(name)).expect("read");
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            assert!(disk::unseal(line).is_ok(), "{name} is sealed");
        }
    }
    // From now on an unsealed line is damage, not legacy.
    edit_log(dir.path(), |lines| {
        lines[1] = serde_json::to_string(&blank(1)).expect("json");
    });
    let err = refusal(dir.path());
    assert!(err.contains("line 2 (entry index 1): no checksum"), "{err}");
}

/// A legacy log's last line that has its newline but is not JSON was not
/// torn by a crash (an append writes the newline last): it is damage, and
/// the directory is not taken for a fresh member's.
#[tokio::test]
async fn a_legacy_log_whose_whole_last_line_is_garbage_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut legacy: String = (0..=1)
        .map(|i| serde_json::to_string(&blank(i)).expect("json") + "\n")
        .collect();
    legacy.push_str("garbage\n");
    fs::write(dir.path().join("log.jsonl"), &legacy).expect("log");
    fs::write(
        dir.path().join("vote.json"),
        serde_json::to_vec(&Vote::new(1, 0)).expect("json"),
    )
    .expect("vote");
    let err = refusal(dir.path());
    assert!(
        err.contains("line 3") && err.contains("neither sealed nor plain JSON"),
        "{err}"
    );
    // A log of that one line alone is refused too.
    fs::write(dir.path().join("log.jsonl"), "garbage\n").expect("log");
    let err = refusal(dir.path());
    assert!(err.contains("line 1"), "{err}");
    // Without its newline the last line is torn, dropped as at any start.
    legacy.truncate(legacy.len() - 1);
    fs::write(dir.path().join("log.jsonl"), &legacy).expect("log");
    let store = LogStore::open(dir.path()).expect("a torn legacy line is dropped");
    assert_eq!(indexes(&store).await, vec![0, 1]);
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

/// A full disk is an error from every write, never a panic or a silent
/// loss: what was acknowledged is on disk, what failed is not in memory,
/// and the store opens again once there is room. Needs root (a tmpfs).
#[tokio::test]
#[ignore = "needs root: run with --include-ignored"]
async fn a_full_disk_fails_the_write_and_keeps_what_was_acknowledged() {
    // SAFETY: geteuid has no preconditions.
    assert!(
        unsafe { libc::geteuid() } == 0,
        "this test needs root to mount a tmpfs"
    );
    let mnt = PathBuf::from(format!("/tmp/h5-store-{}", std::process::id()));
    fs::create_dir_all(&mnt).expect("mount point");
    let mount = |opts: &str| {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "h5-tmpfs"])
            .arg(&mnt)
            .status()
            .expect("mount");
        assert!(ok.success(), "mount {opts}");
    };
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
            let _ = fs::remove_dir(self.0);
        }
    }
    mount("size=64k");
    let _unmount = Unmount(&mnt);
    let dir = mnt.join("raft");
    let mut store = store_with(&dir, 0).await;
    let mut last = 0;
    let err = loop {
        // Batches of entries as openraft appends them.
        match store.lock().append((last + 1..=last + 20).map(blank)) {
            Ok(()) => last += 20,
            Err(e) => break e,
        }
        assert!(last < 100_000, "the tmpfs never filled");
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert_eq!(indexes(&store).await, (0..=last).collect::<Vec<_>>());
    let vote = store.save_vote(&Vote::new(2, 0)).await;
    assert!(vote.is_err(), "saving a vote on a full disk fails");
    assert_eq!(
        store.read_vote().await.expect("vote"),
        Some(Vote::new(1, 0))
    );
    drop(store);
    std::process::Command::new("mount")
        .args(["-o", "remount,size=1m"])
        .arg(&mnt)
        .status()
        .expect("remount");
    let store = LogStore::open(&dir).expect("opens again with room");
    assert_eq!(indexes(&store).await, (0..=last).collect::<Vec<_>>());
}
