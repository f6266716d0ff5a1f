//! OCF records: the agents the lease guard stops when the asctl agent
//! cannot.
//!
//! The OCF driver writes `<data_dir>/ocf/<group>/<stamp>-<instance>` (the
//! agent, its parameters and its stop timeout, as JSON) *before* it runs the
//! agent's `start`, and deletes it only after a `stop` that worked, so every
//! OCF resource a node may hold is on record while it may be held — the
//! rule of the mount records (`storage::records`), pid files and address
//! records. The stamp is the mount records' (nanoseconds since the epoch,
//! zero-padded), so mounts and OCF resources of every group sort on one
//! clock: newest first is the reverse of the start order, which is the
//! reverse dependency order a stop follows.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::exec::{self, Agent, Verdict};

/// What a record holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Saved {
    root: PathBuf,
    provider: String,
    kind: String,
    instance: String,
    params: Vec<(String, String)>,
    stop_timeout_ms: u64,
}

/// One recorded OCF resource.
#[derive(Debug, Clone)]
pub struct OcfRecord {
    pub file: PathBuf,
    pub agent: Agent,
    pub stop_timeout: Duration,
}

fn group_dir(data_dir: &Path, group: &str) -> PathBuf {
    data_dir.join("ocf").join(group)
}

/// The instance a record's file name is for (`<stamp>-<instance>`).
fn instance_of(file_name: &str) -> Option<&str> {
    let (stamp, instance) = file_name.split_once('-')?;
    (stamp.len() == 20 && stamp.bytes().all(|b| b.is_ascii_digit())).then_some(instance)
}

/// Records that `group` may hold `agent`'s resource, to be stopped within
/// `stop_timeout`; replaces an older record of the same instance.
pub fn write(
    data_dir: &Path,
    group: &str,
    agent: &Agent,
    stop_timeout: Duration,
) -> std::io::Result<()> {
    let dir = group_dir(data_dir, group);
    crate::private::create_dir(&dir)?;
    remove(data_dir, group, &agent.instance)?;
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let saved = Saved {
        root: agent.root.clone(),
        provider: agent.provider.clone(),
        kind: agent.kind.clone(),
        instance: agent.instance.clone(),
        params: agent.params.clone(),
        stop_timeout_ms: u64::try_from(stop_timeout.as_millis()).unwrap_or(u64::MAX),
    };
    let text = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
    // Written in full and synced before the start: a crash in between
    // leaves a record of a resource never started, whose `stop` is a no-op
    // (stops are idempotent).
    let tmp = dir.join(format!(".{}.tmp", agent.instance));
    {
        use std::io::Write;
        let mut f = crate::private::create_file(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(format!("{stamp:020}-{}", agent.instance)))
}

/// Deletes the record of `instance` of `group`, if any.
pub fn remove(data_dir: &Path, group: &str, instance: &str) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(group_dir(data_dir, group)) else {
        return Ok(());
    };
    for e in entries.flatten() {
        if instance_of(&e.file_name().to_string_lossy()) == Some(instance) {
            match std::fs::remove_file(e.path()) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
                _ => {}
            }
        }
    }
    Ok(())
}

/// The records of `group`, newest first.
pub fn recorded_of(data_dir: &Path, group: &str) -> Vec<OcfRecord> {
    let dir = group_dir(data_dir, group);
    recorded(data_dir)
        .into_iter()
        .filter(|r| r.file.parent() == Some(dir.as_path()))
        .collect()
}

/// Every recorded OCF resource of every group, newest first.
pub fn recorded(data_dir: &Path) -> Vec<OcfRecord> {
    let mut out = Vec::new();
    let Ok(groups) = std::fs::read_dir(data_dir.join("ocf")) else {
        return out;
    };
    for g in groups.flatten() {
        let Ok(files) = std::fs::read_dir(g.path()) else {
            continue;
        };
        for f in files.flatten() {
            if instance_of(&f.file_name().to_string_lossy()).is_none() {
                continue;
            }
            let Some(saved) = std::fs::read(f.path())
                .ok()
                .and_then(|t| serde_json::from_slice::<Saved>(&t).ok())
            else {
                continue;
            };
            out.push(OcfRecord {
                file: f.path(),
                stop_timeout: Duration::from_millis(saved.stop_timeout_ms),
                agent: Agent {
                    root: saved.root,
                    provider: saved.provider,
                    kind: saved.kind,
                    instance: saved.instance,
                    params: saved.params,
                },
            });
        }
    }
    out.sort_by(|a, b| b.file.file_name().cmp(&a.file.file_name()));
    out
}

/// Runs the recorded resource's `stop` with its timeout; the record goes
/// once it worked (0, or 7: not running). `Err` says why not, and the
/// record stays.
pub async fn stop(rec: &OcfRecord) -> Result<(), String> {
    let agent = &rec.agent;
    let out = agent
        .run("stop", rec.stop_timeout, Duration::ZERO)
        .await
        .map_err(|e| format!("{}: {e}", agent.name()))?;
    match exec::verdict(out.code) {
        Verdict::Success | Verdict::NotRunning => {
            let _ = std::fs::remove_file(&rec.file);
            Ok(())
        }
        _ => Err(format!(
            "{} `stop` returned {} ({}){}",
            agent.name(),
            out.code,
            exec::code_name(out.code),
            out.reason.map(|r| format!(": {r}")).unwrap_or_default()
        )),
    }
}

/// The groups with OCF records (an agent starting up gives each a task,
/// which adopts or releases what they hold, as for mount records).
pub fn recorded_groups(data_dir: &Path) -> Vec<String> {
    let mut groups: Vec<String> = recorded(data_dir)
        .iter()
        .filter_map(|r| r.file.parent()?.file_name()?.to_str().map(str::to_owned))
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

/// What an earlier agent run left on record, released by a new one: the
/// agent's `monitor` says whether the resource still runs here; if it does
/// (or the monitor fails: the state is unknown), its `stop`; if not (7),
/// the record just goes. `Ok(true)` when a `stop` ran and worked.
pub async fn release_left(rec: &OcfRecord) -> Result<bool, String> {
    let running = match rec
        .agent
        .run("monitor", rec.stop_timeout, Duration::ZERO)
        .await
    {
        Ok(out) => exec::verdict(out.code) != Verdict::NotRunning,
        Err(_) => true,
    };
    if !running {
        let _ = std::fs::remove_file(&rec.file);
        return Ok(false);
    }
    stop(rec).await.map(|()| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(instance: &str) -> Agent {
        Agent {
            root: PathBuf::from("/usr/lib/ocf"),
            provider: "heartbeat".into(),
            kind: "Dummy".into(),
            instance: instance.into(),
            params: vec![("state".into(), "/run/x.state".into())],
        }
    }

    #[test]
    fn records_round_trip_newest_first_and_go_by_exact_instance() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "db", &agent("disk"), Duration::from_secs(8)).unwrap();
        write(d, "db", &agent("my-disk"), Duration::from_secs(3)).unwrap();
        write(d, "web", &agent("cache"), Duration::from_secs(1)).unwrap();
        let all = recorded(d);
        let names: Vec<&str> = all.iter().map(|r| r.agent.instance.as_str()).collect();
        assert_eq!(names, ["cache", "my-disk", "disk"]);
        assert_eq!(all[1].stop_timeout, Duration::from_secs(3));
        assert_eq!(all[2].agent.params, agent("disk").params);
        // `disk` is a suffix of `my-disk`'s file name: only `disk` goes.
        remove(d, "db", "disk").unwrap();
        let names: Vec<String> = recorded(d).into_iter().map(|r| r.agent.instance).collect();
        assert_eq!(names, ["cache", "my-disk"]);
        // A second start replaces the record rather than adding one.
        write(d, "web", &agent("cache"), Duration::from_secs(1)).unwrap();
        assert_eq!(recorded(d).len(), 2);
    }

    #[test]
    fn half_written_and_foreign_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path().join("ocf/db");
        std::fs::create_dir_all(&g).unwrap();
        std::fs::write(g.join(".disk.tmp"), b"{").unwrap();
        std::fs::write(g.join("00000000000000000001-disk"), b"{\"root\":").unwrap();
        std::fs::write(g.join("notes"), b"hello").unwrap();
        assert!(recorded(dir.path()).is_empty());
    }
}
