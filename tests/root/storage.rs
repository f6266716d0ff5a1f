//! sharedDisk and mountPoint against real block devices: loop devices over a
//! backing file formatted ext4 or xfs (see `storage_support`). Root only:
//! ignored unless run with `--include-ignored`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::storage_support::{Lun, live, mounted, sh};
use asctl::drivers::storage::mount::{MountPoint, MountSpec};
use asctl::drivers::storage::shared_disk::SharedDisk;
use asctl::drivers::{DriverError, ResourceHealth};

fn name(s: &str) -> asctl::model::Name {
    s.parse().expect("valid name")
}

const FAST: Duration = Duration::from_millis(50);
/// Generous: these tests check what the monitor finds, not how fast the
/// storage answers on a loaded machine.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn disk(dev: &Path, own: &[PathBuf]) -> SharedDisk {
    SharedDisk::new(
        name("disk"),
        dev.to_path_buf(),
        own.to_vec(),
        FAST,
        IO_TIMEOUT,
    )
}

fn mount_point(dev: &Path, path: &Path, fs_type: &str, stop_timeout: Duration) -> MountPoint {
    MountPoint::new(
        MountSpec {
            name: name("data"),
            device: dev.to_path_buf(),
            path: path.to_path_buf(),
            fs_type: fs_type.into(),
            options: Some("noatime".into()),
            fsck: "fsck".into(),
            stop_timeout,
            node: name("node1"),
            record_in: None,
        },
        FAST,
        IO_TIMEOUT,
    )
}

fn spawn_sh(script: &str) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .spawn()
        .expect("sh")
}

#[tokio::test]
#[ignore = "needs root: run with --include-ignored"]
async fn a_shared_disk_is_claimed_only_when_nothing_else_here_holds_it() {
    let lun = Lun::new("ext4");
    let lo = lun.attach();
    let own = lun.dir("own");
    let mut d = disk(&lo.dev, std::slice::from_ref(&own));
    d.start().await.expect("free disk");
    assert_eq!(d.check().await, ResourceHealth::Healthy);
    d.stop().await.expect("nothing to release");

    // Mounted by hand somewhere else on this node: not ours to take.
    let other = lun.dir("other");
    std::fs::create_dir(&other).unwrap();
    sh(
        "mount",
        &[lo.dev.to_str().unwrap(), other.to_str().unwrap()],
    );
    let err = d.start().await.expect_err("held");
    assert!(
        err.to_string().contains("already mounted on this node at"),
        "{err}"
    );
    let err = d.stop().await.expect_err("this node still holds the disk");
    assert!(
        err.to_string().contains("still mounted on this node"),
        "{err}"
    );
    // Mounted at the group's own mount point: that is the group's hold.
    sh("umount", &[other.to_str().unwrap()]);
    std::fs::create_dir(&own).unwrap();
    sh("mount", &[lo.dev.to_str().unwrap(), own.to_str().unwrap()]);
    d.start().await.expect("the group's own mount");
    sh("umount", &[own.to_str().unwrap()]);

    // Not a block device at all.
    let mut f = disk(&lun.file, &[]);
    let err = f.start().await.expect_err("a file");
    assert!(
        err.is_permanent() && err.to_string().contains("not a block device"),
        "{err}"
    );
    // The device vanishing is a monitor failure.
    let mut gone = disk(Path::new("/dev/h4-no-such-disk"), &[]);
    assert!(matches!(gone.check().await, ResourceHealth::Unhealthy(w) if w.contains("gone")));
}

/// Start, monitor, and a stop that must kill the mount's users: one with
/// its working directory there, one with a file open that ignores SIGTERM.
async fn mount_lifecycle(fs_type: &str) {
    let lun = Lun::new(fs_type);
    let lo = lun.attach();
    let path = lun.dir("srv/db");
    // Room for the unmount's own write-back once the holders are gone: on a
    // loaded host disk (the loop device writes through to it) that alone
    // took more than the second half of a 2 s stop.
    let stop_timeout = Duration::from_secs(6);
    let mut m = mount_point(&lo.dev, &path, fs_type, stop_timeout);
    m.start().await.expect("mount");
    assert!(mounted(&path));
    let opts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        opts.lines()
            .any(|l| l.contains(path.to_str().unwrap()) && l.contains("noatime")),
        "options applied"
    );
    m.start()
        .await
        .expect("starting a mounted mount point is a no-op");
    assert_eq!(m.check().await, ResourceHealth::Healthy);
    assert!(path.join(".asctl-monitor-node1").exists());

    let p = path.display();
    let cwd = spawn_sh(&format!("cd {p} && exec sleep 1000"));
    let stubborn = spawn_sh(&format!(
        "trap '' TERM; exec 3>{p}/table; while :; do sleep 0.1; done"
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let stopped = m.stop().await;
    let took = t.elapsed();
    eprintln!(
        "{fs_type}: holders killed and unmounted in {took:?} (stop timeout {stop_timeout:?})"
    );
    stopped.expect("holders killed, unmounted");
    assert!(!mounted(&path));
    assert!(
        took >= stop_timeout / 2 - Duration::from_millis(100),
        "SIGKILL waits for the second half"
    );
    for mut c in [cwd, stubborn] {
        let _ = c.wait();
        assert!(!live(c.id()));
    }
    m.stop()
        .await
        .expect("stopping an unmounted mount point is a no-op");
    let h = m.check().await;
    assert!(
        matches!(&h, ResourceHealth::Unhealthy(w) if w.contains("no longer mounted")),
        "{h:?}"
    );
}

#[tokio::test]
#[ignore = "needs root: run with --include-ignored"]
async fn an_ext4_mount_point_mounts_monitors_and_kills_its_users_to_unmount() {
    mount_lifecycle("ext4").await;
}

#[tokio::test]
#[ignore = "needs root and xfsprogs: run with --include-ignored"]
async fn an_xfs_mount_point_mounts_monitors_and_kills_its_users_to_unmount() {
    mount_lifecycle("xfs").await;
}

#[tokio::test]
#[ignore = "needs root: run with --include-ignored"]
async fn an_unmount_that_still_fails_is_a_stop_failure() {
    let lun = Lun::new("ext4");
    let lo = lun.attach();
    let path = lun.dir("db");
    let mut m = mount_point(&lo.dev, &path, "ext4", Duration::from_millis(600));
    m.start().await.expect("mount");
    // The agent itself holds a file there: it never kills itself, so the
    // unmount stays busy to the end.
    let held = std::fs::File::create(path.join("held")).unwrap();
    let err = m.stop().await.expect_err("busy");
    assert!(matches!(err, DriverError::Failed(_)), "{err:?}");
    assert!(
        err.to_string().contains("still busy at the stop timeout"),
        "{err}"
    );
    assert!(mounted(&path), "still mounted, and said so");
    drop(held);
    m.stop().await.expect("released");
    assert!(!mounted(&path));
}

#[tokio::test]
#[ignore = "needs root: run with --include-ignored"]
async fn a_file_system_fsck_cannot_repair_is_refused() {
    let lun = Lun::new("ext4");
    // Wipe the primary superblock (at 1 KiB): `fsck -p` will not guess.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&lun.file)
            .unwrap();
        f.write_all_at(&[0u8; 1024], 1024).unwrap();
    }
    let lo = lun.attach();
    let path = lun.dir("db");
    let mut m = mount_point(&lo.dev, &path, "ext4", Duration::from_secs(1));
    let err = m.start().await.expect_err("refused");
    assert!(err.is_permanent(), "{err:?}");
    assert!(
        err.to_string().contains("`fsck -p` does not repair safely"),
        "{err}"
    );
    assert!(!mounted(&path));
}

/// Two nodes, each with its own loop device over the LUN. Node 1 lives in a
/// mount namespace of its own, writes and fsyncs a record and dies without
/// unmounting; node 2 (this process) then mounts the LUN through the driver
/// and finds the record.
#[tokio::test]
#[ignore = "needs root: run with --include-ignored"]
async fn what_one_node_fsynced_is_there_when_another_mounts_after_it_died() {
    let lun = Lun::new("ext4");
    let (lo1, lo2) = (lun.attach(), lun.attach());
    let path = lun.dir("db");
    std::fs::create_dir(&path).unwrap();
    let p = path.display();
    let script = format!(
        "mount {} {p} && echo 'seq 1' >> {p}/log && sync {p}/log && kill -9 $$",
        lo1.dev.display()
    );
    let status = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .status()
        .unwrap();
    assert!(!status.success(), "node 1 died by SIGKILL");
    assert!(!mounted(&path), "node 1's mount stayed in its namespace");
    let mut m = mount_point(&lo2.dev, &path, "ext4", Duration::from_secs(1));
    m.start().await.expect("node 2 mounts");
    assert_eq!(
        std::fs::read_to_string(path.join("log")).unwrap(),
        "seq 1\n"
    );
    assert_eq!(m.check().await, ResourceHealth::Healthy);
    m.stop().await.expect("unmount");
    let out = Command::new("fsck")
        .args(["-n", lo2.dev.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The real `ocf:heartbeat:Filesystem` agent from Debian's resource-agents
/// as a data source's `agent`, on a loop device.
#[tokio::test]
#[ignore = "needs root and resource-agents: run with --include-ignored"]
async fn the_real_filesystem_agent_mounts_monitors_and_unmounts() {
    use asctl::drivers::ocf::OcfDriver;
    let lun = Lun::new("ext4");
    let lo = lun.attach();
    let path = lun.dir("fs");
    let spec: asctl::model::OcfAgent = serde_json::from_value(serde_json::json!({
        "ocf": "heartbeat:Filesystem",
        "params": {"device": lo.dev, "directory": path, "fstype": "ext4", "options": "noatime"},
        "monitor": {"interval": "100ms"},
    }))
    .unwrap();
    let mut d = OcfDriver::new(
        "data source fs".into(),
        "h4-fs",
        spec,
        "/usr/lib/ocf".into(),
    );
    d.start().await.expect("Filesystem start");
    assert!(mounted(&path));
    assert_eq!(d.check().await, ResourceHealth::Healthy);
    let mut holder = spawn_sh(&format!("cd {} && exec sleep 1000", path.display()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    d.stop()
        .await
        .expect("Filesystem stop kills the holder and unmounts");
    assert!(!mounted(&path));
    let _ = holder.wait();
    assert!(!live(holder.id()));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let h = d.check().await;
    assert!(
        matches!(&h, ResourceHealth::Unhealthy(w) if w.contains("returned 7")),
        "{h:?}"
    );
}
