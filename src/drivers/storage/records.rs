//! Mount records: what the lease guard releases when the agent cannot.
//!
//! The `mountPoint` driver writes `<data_dir>/mounts/<group>/<stamp>-<name>`
//! *before* it mounts (`MAJOR:MINOR<TAB>PATH`) and deletes it only once the
//! file system is unmounted, so every mount a node may hold is on record
//! while it may be there — the same rule as the process driver's pid files
//! and the IP driver's address records. The stamp (nanoseconds since the
//! epoch, zero-padded) orders a group's mounts by start, so the reverse of
//! that order is the reverse dependency order that a stop follows.
//!
//! The record is written before the file system check, not only before the
//! mount: the check writes to the disk too (repairs, the journal replay).
//!
//! [`release_recorded`] is the guard's half: after the group processes are
//! killed, every recorded device, newest first, has the processes that hold
//! the block device itself open SIGKILLed (a check under way), and its
//! mount, if there is one, has its remaining users SIGKILLed and is
//! unmounted (what is mounted below it first), with the same code the
//! driver's stop uses.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::mount::{release_device, unmount};
use super::mountinfo;

/// How long the guard keeps killing a mount's users and retrying its
/// unmount before it reports the mount as not released.
pub const FENCE_UNMOUNT_LIMIT: Duration = Duration::from_secs(2);
/// The guard's retry step: a SIGKILLed holder is gone within milliseconds.
const FENCE_RETRY: Duration = Duration::from_millis(5);

/// One recorded mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRecord {
    pub file: PathBuf,
    pub dev: (u32, u32),
    pub path: PathBuf,
}

fn group_dir(data_dir: &Path, group: &str) -> PathBuf {
    data_dir.join("mounts").join(group)
}

/// Records that `name` of `group` may mount `dev` at `path`, replacing an
/// older record of the same mount point.
pub fn write(
    data_dir: &Path,
    group: &str,
    name: &str,
    dev: (u32, u32),
    path: &Path,
) -> std::io::Result<()> {
    let dir = group_dir(data_dir, group);
    crate::private::create_dir(&dir)?;
    remove(data_dir, group, name)?;
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let file = dir.join(format!("{stamp:020}-{name}"));
    let text = format!("{}:{}\t{}\n", dev.0, dev.1, path.display());
    // Written in full and synced before the mount: a crash in between leaves
    // a record of a mount that never happened, which the guard skips.
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        use std::io::Write;
        let mut f = crate::private::create_file(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &file)
}

/// Deletes the record of `name` of `group`, if any.
pub fn remove(data_dir: &Path, group: &str, name: &str) -> std::io::Result<()> {
    let suffix = format!("-{name}");
    let Ok(entries) = std::fs::read_dir(group_dir(data_dir, group)) else {
        return Ok(());
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().ends_with(&suffix) {
            match std::fs::remove_file(e.path()) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
                _ => {}
            }
        }
    }
    Ok(())
}

/// The groups with mount records (an agent starting up gives each a task,
/// which adopts or releases the mounts).
pub fn recorded_groups(data_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("mounts")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| std::fs::read_dir(e.path()).is_ok_and(|mut d| d.next().is_some()))
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect()
}

/// Parses a record's text; `None` for anything else (a half-written file).
pub fn parse(text: &str) -> Option<((u32, u32), PathBuf)> {
    let line = text.strip_suffix('\n')?;
    let (dev, path) = line.split_once('\t')?;
    let (major, minor) = dev.split_once(':')?;
    let path = PathBuf::from(path);
    path.is_absolute()
        .then_some(((major.parse().ok()?, minor.parse().ok()?), path))
}

/// The records of `group`, newest first.
pub fn recorded_of(data_dir: &Path, group: &str) -> Vec<MountRecord> {
    let dir = group_dir(data_dir, group);
    recorded(data_dir)
        .into_iter()
        .filter(|r| r.file.parent() == Some(dir.as_path()))
        .collect()
}

/// Every recorded mount of every group, newest first (the order to release
/// them in).
pub fn recorded(data_dir: &Path) -> Vec<MountRecord> {
    try_recorded(data_dir).unwrap_or_default()
}

/// [`recorded`], or an error when the records cannot be read (the data
/// directory's file system failed), as opposed to there being none: the
/// guard then keeps what it read last.
pub fn try_recorded(data_dir: &Path) -> std::io::Result<Vec<MountRecord>> {
    fn entries(dir: &Path) -> std::io::Result<Vec<std::fs::DirEntry>> {
        match std::fs::read_dir(dir) {
            Ok(d) => d.collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
    let mut out = Vec::new();
    for g in entries(&data_dir.join("mounts"))? {
        if !g.file_type()?.is_dir() {
            continue;
        }
        for f in entries(&g.path())? {
            if f.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let text = match std::fs::read_to_string(f.path()) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let Some((dev, path)) = parse(&text) else {
                continue;
            };
            out.push(MountRecord {
                file: f.path(),
                dev,
                path,
            });
        }
    }
    sort_newest_first(&mut out);
    Ok(out)
}

/// The stamp leads a record's file name: newest first across groups too.
pub fn sort_newest_first(records: &mut [MountRecord]) {
    records.sort_by(|a, b| b.file.file_name().cmp(&a.file.file_name()));
}

/// What [`release_recorded`] did with one recorded mount.
#[derive(Debug)]
pub enum Released {
    /// Unmounted now.
    Unmounted(PathBuf),
    /// Processes that had the recorded block device itself open (a file
    /// system check under way), SIGKILLed and gone.
    Killed(PathBuf, Vec<i32>),
    /// Not mounted (any more) from the recorded device.
    NotMounted(PathBuf),
    /// Still mounted: the node still holds the disk.
    Failed(PathBuf, String),
}

/// The guard's release: every recorded mount, newest first, is unmounted
/// after its users are SIGKILLed (a fence is not a stop: no SIGTERM
/// grace). A record goes once its mount is gone; a mount that stays keeps
/// its record, so the next agent run still knows about it.
pub async fn release_recorded(data_dir: &Path) -> Vec<Released> {
    release_fenced(recorded(data_dir)).await
}

/// [`release_recorded`] of `records` (newest first).
pub async fn release_fenced(records: Vec<MountRecord>) -> Vec<Released> {
    release(records, Duration::ZERO, FENCE_UNMOUNT_LIMIT, FENCE_RETRY).await
}

/// The agent's release of `records` (newest first) that an earlier run of
/// it left: users get SIGTERM for [`RESTART_TERM`], then SIGKILL for as
/// long again (at least [`FENCE_UNMOUNT_LIMIT`]). The agent's caller picks
/// the records (`agent::failover::guard_storage::release_group`, which
/// orders them with the group's OCF records).
pub async fn release_agent(records: Vec<MountRecord>) -> Vec<Released> {
    let limit = RESTART_TERM.max(FENCE_UNMOUNT_LIMIT) * 2;
    release(records, RESTART_TERM, limit, Duration::from_millis(200)).await
}

/// SIGTERM time for the users of a mount found on record at start-up.
const RESTART_TERM: Duration = Duration::from_secs(5);

async fn release(
    records: Vec<MountRecord>,
    term: Duration,
    limit: Duration,
    retry: Duration,
) -> Vec<Released> {
    let mut out = Vec::new();
    for rec in records {
        release_one(rec, term, limit, retry, &mut out).await;
    }
    out
}

/// Releases one recorded device: first every process that has the device
/// itself open (a check or `mkfs` a start was running: it writes without a
/// mount), then the mount, if it is there.
async fn release_one(
    rec: MountRecord,
    term: Duration,
    limit: Duration,
    retry: Duration,
    out: &mut Vec<Released>,
) {
    let now = Instant::now();
    let (half, deadline) = (now + term, now + limit);
    match release_device(rec.dev, deadline, retry).await {
        Ok(killed) if killed.is_empty() => {}
        Ok(killed) => out.push(Released::Killed(rec.path.clone(), killed)),
        Err(e) => return out.push(Released::Failed(rec.path, e.to_string())),
    }
    out.push(release_mount(rec, half, deadline, retry).await);
}

/// Unmounts a recorded mount, if it is there; the record goes once it is
/// not.
async fn release_mount(
    rec: MountRecord,
    half: Instant,
    deadline: Instant,
    retry: Duration,
) -> Released {
    let entries = match mountinfo::read() {
        Ok(e) => e,
        Err(e) => return Released::Failed(rec.path, format!("reading mountinfo: {e}")),
    };
    let ours = mountinfo::mounted_at(&entries, &rec.path)
        .iter()
        .any(|e| e.dev == rec.dev);
    if !ours {
        let _ = std::fs::remove_file(&rec.file);
        return Released::NotMounted(rec.path);
    }
    let mut result = Ok(());
    for sub in mountinfo::below(&entries, &rec.path) {
        result = unmount(&sub.mount_point, sub.dev, half, deadline, retry).await;
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = unmount(&rec.path, rec.dev, half, deadline, retry).await;
    }
    match result {
        Ok(()) => {
            let _ = std::fs::remove_file(&rec.file);
            Released::Unmounted(rec.path)
        }
        Err(e) => Released::Failed(rec.path, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_newest_first_and_replace_older_ones() {
        let data = tempfile::tempdir().unwrap();
        let d = data.path();
        write(d, "db", "db-data", (7, 3), Path::new("/srv/db")).unwrap();
        write(d, "db", "db-logs", (7, 4), Path::new("/srv/db/logs")).unwrap();
        write(d, "web", "web-data", (8, 1), Path::new("/srv/web")).unwrap();
        let r = recorded(d);
        let paths: Vec<_> = r.iter().map(|r| r.path.to_str().unwrap()).collect();
        assert_eq!(paths, ["/srv/web", "/srv/db/logs", "/srv/db"]);
        assert_eq!(r[1].dev, (7, 4));
        // A restart records db-data again: one record, now the newest.
        write(d, "db", "db-data", (7, 5), Path::new("/srv/db")).unwrap();
        let r = recorded(d);
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].path.to_str().unwrap(), r[0].dev), ("/srv/db", (7, 5)));
        remove(d, "db", "db-data").unwrap();
        remove(d, "db", "never-recorded").unwrap();
        assert_eq!(recorded(d).len(), 2);
    }

    #[test]
    fn records_are_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let data = tempfile::tempdir().unwrap();
        write(data.path(), "db", "db-data", (7, 3), Path::new("/srv/db")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for dir in [data.path().join("mounts"), group_dir(data.path(), "db")] {
            assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        }
        assert_eq!(mode(&recorded(data.path())[0].file), 0o600);
    }

    #[test]
    fn malformed_records_are_skipped() {
        assert_eq!(
            parse("7:3\t/srv/db\n"),
            Some(((7, 3), PathBuf::from("/srv/db")))
        );
        for bad in [
            "",
            "7:3\t/srv/db",
            "7:3 /srv/db\n",
            "x:3\t/a\n",
            "7:3\trel\n",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("mounts/db");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("00000000000000000001-half"), "7:").unwrap();
        std::fs::write(dir.join(".db-data.tmp"), "7:3\t/srv/db\n").unwrap();
        assert!(recorded(data.path()).is_empty());
    }
}
