//! A fence while a start is checking the file system: the check writes to
//! the disk without any mount, so it must die with the fence like the
//! mount's users do. A stand-in `fsck` (first on the agent's `PATH`, or the
//! reconciler's `fsck` program) holds the block device open and sleeps, as
//! a long `e2fsck -p` on a big dirty file system does.
//!
//! - The agent's own fence (the reconciler given no groups, as a node that
//!   finds itself isolated or in the minority does) cancels the start: the
//!   check is killed with its process group, the device is held by no
//!   process, and its record goes once that is so.
//! - A frozen agent's lease guard finds the device on record (written
//!   before the check) and kills whatever has the device open, before the
//!   others may take the disk over; the woken agent does not read the
//!   killed check as a file system in need of repair. Root only.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::storage_support::node::{
    GuardedNode, INTERVAL, assert_released_in_time, mounted_in, others_may_start, poll, walk_find,
};
use crate::storage_support::{Lun, Watch, db_group, mounted};
use asctl::agent::detection::detector::takeover_wait;
use asctl::agent::execution::reconciler::{self, Desired, Options};
use asctl::model::{Config, Name};
use asctl::wire::GroupState;
use tokio::sync::watch;

/// A stand-in `fsck` in `dir`: opens the device (its last argument) and
/// sleeps with it open; its pid, the leader of its process group, goes to
/// `dir/fsck.pid`.
fn slow_fsck(dir: &Path) -> PathBuf {
    let fsck = dir.join("fsck");
    std::fs::write(
        &fsck,
        format!(
            "#!/bin/sh\nfor a; do dev=$a; done\nexec 3<\"$dev\"\necho $$ >{}/fsck.pid\nsleep 1000\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fsck, std::fs::Permissions::from_mode(0o755)).unwrap();
    fsck
}

/// Kills the stand-in check's process group on drop, whatever the test did.
struct Check(PathBuf);

impl Check {
    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.0.join("fsck.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Check {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // SAFETY: a signal to the process group of a check this test ran.
            unsafe { libc::killpg(pid, libc::SIGKILL) };
        }
    }
}

/// The processes that have the block device `dev` open, except `skip`.
fn openers(dev: &Path, skip: &[u32]) -> Vec<u32> {
    let rdev = std::fs::metadata(dev).unwrap().rdev();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(e.path().join("fd")) else {
            continue;
        };
        let open = fds.flatten().any(|fd| {
            std::fs::metadata(fd.path())
                .is_ok_and(|m| m.file_type().is_block_device() && m.rdev() == rdev)
        });
        if open && !skip.contains(&pid) {
            out.push(pid);
        }
    }
    out
}

fn db_config(dev: &Path, mnt: &Path) -> Arc<Config> {
    let yaml = db_group(dev, mnt, 47531, Watch::Close);
    let loaded = asctl::load::load_texts([("test.yaml", yaml.as_bytes())]);
    assert!(loaded.findings.is_empty(), "{:#?}", loaded.findings);
    Arc::new(loaded.config)
}

// Multi-threaded: the test polls with blocking sleeps while the reconciler
// runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: run with --include-ignored"]
async fn the_agents_own_fence_cancels_a_file_system_check_under_way() {
    let lun = Lun::new("ext4");
    let lo = lun.attach();
    let mnt = lun.dir("srv/db");
    let data = tempfile::Builder::new()
        .prefix("sf-data")
        .tempdir()
        .unwrap();
    let bin = tempfile::Builder::new().prefix("sf-bin").tempdir().unwrap();
    let check = Check(bin.path().to_path_buf());
    let name = |s: &str| s.parse::<Name>().unwrap();
    let desired = |generation, here: bool| Desired {
        generation,
        config: db_config(&lo.dev, &mnt),
        groups_here: here.then(|| name("db")).into_iter().collect(),
    };
    let (tx, rx) = watch::channel(desired(1, true));
    let mut opts = Options::new(name("node1"), data.path().to_path_buf());
    opts.tick = Duration::from_millis(50);
    opts.asctl_exe = Some(PathBuf::from(env!("CARGO_BIN_EXE_asctl")));
    opts.fsck = slow_fsck(bin.path());
    let handle = reconciler::spawn(opts, rx);

    let me = std::process::id();
    let deadline = Instant::now() + Duration::from_secs(20);
    let fsck = poll(
        "the check to hold the device",
        Duration::from_secs(30),
        || {
            let report = handle.reports.borrow().groups.get("db").cloned();
            assert!(
                Instant::now() < deadline,
                "the check does not hold the device: {report:?}"
            );
            check.pid().filter(|_| !openers(&lo.dev, &[me]).is_empty())
        },
    );
    assert!(
        walk_find(&data.path().join("mounts"), "-db-data").is_some(),
        "the device is on record while the check runs"
    );

    // The agent's fence: the node gives its reconciler no groups.
    tx.send_replace(desired(2, false));
    let fenced = Instant::now();
    let gone = poll("the check to die", Duration::from_secs(30), || {
        openers(&lo.dev, &[me]).is_empty().then(|| fenced.elapsed())
    });
    eprintln!("the check was gone {} ms after the fence", gone.as_millis());
    let budget = takeover_wait(INTERVAL);
    assert!(
        gone < budget,
        "the check must be gone within the takeover wait ({budget:?}), not run on: {gone:?}"
    );
    assert!(
        !crate::storage_support::live(fsck as u32),
        "the check itself is dead"
    );
    poll("the group offline", Duration::from_secs(10), || {
        let r = handle.reports.borrow().clone();
        (r.groups.get("db").map(|g| g.state) == Some(GroupState::Offline)).then_some(())
    });
    assert!(!mounted(&mnt), "never mounted");
    assert!(
        walk_find(&data.path().join("mounts"), "-db-data").is_none(),
        "the record goes once nothing holds the device"
    );
    handle.shutdown(false).await;
}

#[test]
#[ignore = "needs root: run with --include-ignored"]
fn a_frozen_agents_guard_kills_the_file_system_check_it_was_running() {
    let bin = tempfile::Builder::new().prefix("sf-bin").tempdir().unwrap();
    slow_fsck(bin.path());
    let node = GuardedNode::start("sf-guard", Some(bin.path()));
    let check = Check(bin.path().to_path_buf());
    let (pid, dev) = (node.pid(), &node.lo.dev);
    // The group never comes online (its check hangs): apply only sends it.
    let _ = node.apply("1s");
    let fsck = poll(
        "the check to hold the device",
        Duration::from_secs(60),
        || check.pid().filter(|_| !openers(dev, &[pid]).is_empty()),
    );
    let guard = node.guard();
    // The guard learns of the record at its next renewal at the latest.
    std::thread::sleep(INTERVAL);

    let frozen = node.freeze();
    let released = poll("the check to die", others_may_start() * 3, || {
        openers(dev, &[pid]).is_empty().then(|| frozen.elapsed())
    });
    eprintln!(
        "the check was killed {} ms after the freeze (the others start the group no earlier \
         than {} ms)",
        released.as_millis(),
        others_may_start().as_millis()
    );
    assert_released_in_time("the check", released);
    assert!(
        !crate::storage_support::live(fsck as u32),
        "the check itself is dead"
    );
    assert!(!mounted_in(guard, &node.mnt), "and the disk is not mounted");
    poll("the guard to log the kill", Duration::from_secs(2), || {
        node.log()
            .contains(&format!("killed device holders [\"[{fsck}"))
            .then_some(())
    });
    node.wait_mount_record_gone();

    // Woken, the agent does not take the check its guard killed for a file
    // system that needs a human: its start was cancelled by the fence.
    node.thaw();
    std::thread::sleep(Duration::from_secs(1));
    let log = node.log();
    assert!(
        !log.contains("does not repair safely") && !log.contains("group failed on this node"),
        "the killed check is no verdict on the file system"
    );
}
