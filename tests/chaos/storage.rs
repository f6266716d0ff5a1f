//! Storage faults: every node's data directory on a tmpfs of its own, which
//! `DiskFull` fills while the domain keeps writing. The node's raft core
//! then fails at its next append, and the agent must fail-stop (its groups
//! fenced, exit non-zero) rather than keep running its groups while the
//! others start them; the harness frees the space and starts it again, as
//! an operator (or a service manager after the operator) would.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Lab, run};

/// Each node's data file system: large enough for many rounds' raft log.
const SIZE: &str = "64m";
/// How long the disk stays full: writes go on meanwhile.
const HOLD: Duration = Duration::from_secs(6);

/// A tmpfs mounted at a node's data directory, unmounted when dropped.
pub struct DataFs(PathBuf);

impl DataFs {
    pub fn mount(path: &Path) -> DataFs {
        std::fs::create_dir_all(path).expect("data dir");
        let o = run(Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={SIZE},mode=0700"),
                "chaos-data",
            ])
            .arg(path));
        assert!(o.status.success(), "mount tmpfs: {}", super::text(&o));
        DataFs(path.to_owned())
    }
}

impl Drop for DataFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros to `dir/filler` until the file system is full.
fn fill(dir: &Path) {
    let mut f = std::fs::File::create(dir.join("filler")).expect("filler");
    let block = vec![0u8; 1 << 16];
    while f.write_all(&block).is_ok() {}
    while f.write_all(&block[..64]).is_ok() {}
    let _ = f.sync_all();
}

/// `DiskFull` on node `victim`: fills its data file system, makes the
/// domain write (`asctl clear web`, one append on every member) until its
/// agent exits or [`HOLD`] passed, frees the space and, if the agent exited,
/// checks how and starts it again. An agent that kept running on a full
/// disk is a violation only if it also kept its raft core running is not
/// knowable from outside: its log must say the raft core stopped if it
/// exited, and the observer's invariants do the rest.
pub fn disk_full(lab: &mut Lab, victim: usize) -> Result<(), String> {
    let name = lab.nodes[victim].name.clone();
    let data = lab.path(&format!("nodes/{name}/data"));
    let other = lab
        .nodes
        .iter()
        .find(|n| n.name != name)
        .map(|n| n.host)
        .expect("another node");
    fill(&data);
    let t0 = Instant::now();
    let mut exited = None;
    while t0.elapsed() < HOLD {
        let agent = lab.nodes[victim].agent.as_mut();
        if let Some(status) = agent.and_then(|c| c.try_wait().ok().flatten()) {
            exited = Some(status);
            break;
        }
        let _ = lab.asctl(&["clear", "web"], other);
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = std::fs::remove_file(data.join("filler"));
    let Some(status) = exited else {
        eprintln!("chaos disk-full: {name}'s agent kept running ({HOLD:?} on a full disk)");
        return Ok(());
    };
    lab.nodes[victim].agent = None;
    let log =
        std::fs::read_to_string(lab.path(&format!("nodes/{name}/agent.log"))).unwrap_or_default();
    eprintln!(
        "chaos disk-full: {name}'s agent stopped after {:.2} s ({status}); started again",
        t0.elapsed().as_secs_f64()
    );
    lab.start_agent(Some(victim));
    if status.success() || !log.contains("No space left on device") {
        return Err(format!(
            "{name}'s agent exited on a full disk with {status}, its log not naming the cause"
        ));
    }
    Ok(())
}
