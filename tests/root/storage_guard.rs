//! The lease guard releases storage without the agent: a real one-node
//! domain whose agent runs in a mount namespace of its own (`unshare -m`,
//! private propagation: the node's mounts are its own) holds `db` — shared
//! disk on a loop device, mount point, writer. The agent is frozen with
//! SIGSTOP: its guard kills the writer and unmounts the file system, and
//! the mount is gone from the node's mount namespace before the others of a
//! domain with these timings could start the group (`T − I + W` after the
//! freeze, docs/ha.md). Root only.

use std::time::Duration;

use crate::storage_support::node::{
    GuardedNode, TIMEOUT, assert_released_in_time, mounted_in, others_may_start, poll, walk_find,
};
use crate::storage_support::{ack, live};

#[test]
#[ignore = "needs root: run with --include-ignored"]
fn a_frozen_agents_guard_unmounts_before_the_others_may_take_the_disk() {
    let node = GuardedNode::start("d9-guard", None);
    let (pid, mnt) = (node.pid(), &node.mnt);
    let out = node.apply("60s");
    assert!(out.status.success(), "apply: {out:?}");
    assert_eq!(
        poll("the writer to answer", Duration::from_secs(60), || ack(
            node.port, "alpha"
        )),
        "ack 1"
    );
    assert!(mounted_in(pid, mnt), "mounted in the node's namespace");
    assert!(
        !crate::storage_support::mounted(mnt),
        "and only there: the namespace is private"
    );
    let guard = node.guard();
    let writer = poll("the writer's pid", Duration::from_secs(5), || {
        let pidfile = walk_find(&node.state.join("nodes/node1"), "writer.pid")?;
        let text = std::fs::read_to_string(pidfile).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v.get("pid")?.as_u64().map(|p| p as u32)
    });

    let frozen = node.freeze();
    let released = poll("the mount to go", others_may_start() * 3, || {
        (!mounted_in(guard, mnt)).then(|| frozen.elapsed())
    });
    eprintln!(
        "unmounted {} ms after the freeze (lease {} ms; the others start the group no earlier \
         than {} ms)",
        released.as_millis(),
        TIMEOUT.as_millis(),
        others_may_start().as_millis()
    );
    assert_released_in_time("the mount", released);
    assert!(!live(writer), "the writer was killed first");
    assert!(
        mounted_in(pid, mnt) == mounted_in(guard, mnt),
        "the guard shares the agent's mount namespace"
    );
    // The record goes right after the unmount.
    node.wait_mount_record_gone();
    // The acknowledged record is on the disk, read through this test's own
    // mount of its own view (a fresh mount in the test's namespace).
    let check = node.lun.dir("check");
    std::fs::create_dir_all(&check).unwrap();
    crate::storage_support::sh(
        "mount",
        &[node.lo.dev.to_str().unwrap(), check.to_str().unwrap()],
    );
    let records = std::fs::read_to_string(check.join("records.log")).unwrap_or_default();
    crate::storage_support::sh("umount", &[check.to_str().unwrap()]);
    assert_eq!(records, "1 alpha\n");
}
