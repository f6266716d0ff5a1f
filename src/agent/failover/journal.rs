//! The fencing journal: a node's own record of the fences it put on itself.
//!
//! A node fences itself exactly when it cannot commit anything to the
//! domain: it is isolated, out of quorum, was frozen, its lease ran out, or
//! a task it cannot do without failed. So the fence is written here first,
//! in the node's data directory (`fencing.jsonl`, one JSON
//! [`SelfFencing`] a line, mode 0600, synced), and submitted to the
//! domain's history once the node is in contact again
//! ([`crate::domain::Command::SelfFenced`], from the report sender). The
//! history records each entry once, at the node's time: entries are
//! numbered, and the domain keeps the newest number it recorded per node.
//!
//! Two writers share the file: the agent and its lease guard (a separate
//! process, which fences when the agent is frozen or gone). Writes take an
//! exclusive `flock` on `fencing.lock` and replace the journal by rename, so
//! a reader never sees half a file. One fence often has several witnesses
//! (the guard fences a frozen agent, which then wakes to a stalled
//! detector; a fail-stop closes the guard's pipe): an entry whose cause
//! began within [`SAME_EPISODE`] of the previous entry is the same fence
//! and is not written again. The journal keeps the newest [`KEPT`] entries.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

use crate::model::Name;
use crate::wire::SelfFencing;

const JOURNAL: &str = "fencing.jsonl";
const LOCK: &str = "fencing.lock";
/// How many entries the journal keeps (the newest).
pub const KEPT: usize = 100;
/// Witnesses of one fence closer together than this are one entry.
pub const SAME_EPISODE: Duration = Duration::from_secs(5);

/// The journal of one node's data directory.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    pub fn new(data_dir: &Path) -> Journal {
        Journal {
            dir: data_dir.to_owned(),
        }
    }

    /// Records a fence at `at` whose cause began at `began` (`at` but for
    /// a freeze, which began before the node noticed it). Returns the
    /// entry written, or `None` when it is the same fence as the newest
    /// entry.
    pub fn record(
        &self,
        at: SystemTime,
        began: SystemTime,
        cause: &str,
        groups: Vec<Name>,
    ) -> std::io::Result<Option<SelfFencing>> {
        crate::private::create_dir(&self.dir)?;
        let _lock = self.lock()?;
        let mut entries = self.entries();
        let at_ms = ms(at);
        if let Some(last) = entries.last() {
            let window = SAME_EPISODE.as_millis() as u64;
            if last.at_ms.saturating_add(window) >= ms(began) {
                return Ok(None);
            }
        }
        let entry = SelfFencing {
            seq: entries.last().map_or(0, |e| e.seq) + 1,
            at_ms,
            cause: cause.to_owned(),
            groups,
        };
        entries.push(entry.clone());
        let skip = entries.len().saturating_sub(KEPT);
        self.replace(&entries[skip..])?;
        Ok(Some(entry))
    }

    /// The entries numbered after `seen`, oldest first.
    pub fn after(&self, seen: u64) -> Vec<SelfFencing> {
        let mut e = self.entries();
        e.retain(|f| f.seq > seen);
        e
    }

    /// Every entry that parses (a line cut short by a crash of an older
    /// writer is skipped, not fatal).
    fn entries(&self) -> Vec<SelfFencing> {
        let Ok(text) = std::fs::read_to_string(self.dir.join(JOURNAL)) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn lock(&self) -> std::io::Result<Flock<File>> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join(LOCK))?;
        Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| std::io::Error::from(e))
    }

    /// Writes `entries` to a new file, synced, and renames it over the
    /// journal: a crash leaves the old journal or the new one.
    fn replace(&self, entries: &[SelfFencing]) -> std::io::Result<()> {
        let tmp = self.dir.join(format!("{JOURNAL}.new"));
        let mut f = crate::private::create_file(&tmp)?;
        for e in entries {
            let line = serde_json::to_string(e).map_err(std::io::Error::other)?;
            writeln!(f, "{line}")?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(JOURNAL))?;
        File::open(&self.dir)?.sync_all()
    }
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_000_000 + s)
    }

    #[test]
    fn entries_are_numbered_kept_private_and_one_fence_is_one_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::new(dir.path());
        let web: Name = "web".parse().expect("name");
        let first = j
            .record(at(0), at(0), "isolated", vec![web.clone()])
            .expect("write")
            .expect("a new entry");
        assert_eq!(first.seq, 1);
        assert_eq!(first.groups, vec![web]);
        // The frozen agent's own notice, 8 s later, of a freeze that began
        // before the guard's entry: the same fence.
        assert_eq!(
            j.record(at(8), at(0), "stalled", vec![]).expect("write"),
            None
        );
        let second = j
            .record(at(20), at(20), "quorum lost", vec![])
            .expect("write")
            .expect("a new entry");
        assert_eq!(second.seq, 2);
        assert_eq!(second.at_ms, ms(at(20)));
        let mode = std::fs::metadata(dir.path().join(JOURNAL))
            .expect("journal")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let causes: Vec<String> = j.after(1).into_iter().map(|e| e.cause).collect();
        assert_eq!(causes, vec!["quorum lost".to_string()]);
        assert_eq!(j.after(0).len(), 2);
        assert!(j.after(2).is_empty());
    }

    #[test]
    fn the_journal_keeps_the_newest_entries_and_skips_a_torn_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::new(dir.path());
        for i in 0..(KEPT as u64 + 3) {
            j.record(at(i * 10), at(i * 10), "isolated", vec![])
                .expect("write");
        }
        let all = j.after(0);
        assert_eq!(all.len(), KEPT);
        assert_eq!(all[0].seq, 4, "the three oldest were dropped");
        let path = dir.path().join(JOURNAL);
        let mut text = std::fs::read_to_string(&path).expect("journal");
        text.push_str("{\"seq\": 999, \"atMs\"");
        std::fs::write(&path, text).expect("write");
        assert_eq!(j.after(0).len(), KEPT);
        let next = j
            .record(at(5_000), at(5_000), "isolated", vec![])
            .expect("write")
            .expect("a new entry");
        assert_eq!(next.seq, KEPT as u64 + 4, "numbering goes on");
    }
}
