//! Fail-stop on storage faults, with real agents: a node whose data
//! directory fills up must take its groups offline and exit, not keep them
//! running while the domain starts them elsewhere. Needs root (a tmpfs):
//! ignored unless run with `--include-ignored`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{LiveDomain, alive};

const LONG: Duration = Duration::from_secs(60);

/// A small tmpfs under /tmp/h5-*, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(tag: &str, size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let path = PathBuf::from(format!("/tmp/h5-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "h5-tmpfs"])
            .arg(&path)
            .output()
            .expect("mount");
        if !out.status.success() {
            eprintln!("mount: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Some(Tmpfs(path))
    }

    /// Writes zeros until the file system is full.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.0.join("filler")).expect("filler");
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&block[..64]).is_ok() {}
        let _ = f.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
#[ignore = "needs root: run with --include-ignored"]
fn a_full_disk_stops_the_agent_and_its_groups_before_they_run_elsewhere() {
    let fs = Tmpfs::mount("fs", "4m").expect("this test needs root to mount a tmpfs");
    let mut d = LiveDomain::prepare();
    let data = d.state.join("nodes/node1/data");
    std::os::unix::fs::symlink(&fs.0, &data).expect("node1's data dir on the tmpfs");
    d.start();
    d.apply();
    let pid = d.web_running_on_node1();
    assert!(alive(pid));

    fs.fill();
    // Writes to the domain (each one an append on node1) until node1's
    // raft core fails on the full disk.
    let started = Instant::now();
    let status = loop {
        let node1 = d.agents.get_mut("node1").expect("node1");
        if let Some(status) = node1.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < LONG,
            "node1's agent still runs on a full disk:\n{}",
            node1_log(&d.state)
        );
        let _ = d.asctl(&["clear", "web"]);
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = node1_log(&d.state);
    assert!(!status.success(), "exits non-zero: {status:?}\n{log}");
    assert!(log.contains("the raft core stopped"), "{log}");
    assert!(log.contains("No space left on device"), "{log}");
    // Gone by the time the agent exited: the domain may start it elsewhere.
    assert!(!alive(pid), "web's process outlived its agent");
    d.web_moved_from_node1();
    d.stop();
    drop(d);
}

fn node1_log(state: &Path) -> String {
    std::fs::read_to_string(state.join("nodes/node1/agent.log")).unwrap_or_default()
}
