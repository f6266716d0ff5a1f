//! A group with its data through the node reconciler: shared disk → mount
//! point → writer process online in that order, offline in reverse, with the
//! acknowledged records on the disk. Root only (loop devices, mounts).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::storage_support::{Lun, Watch, ack, db_group, live, mounted};
use asctl::agent::execution::reconciler::{self, Desired, Options};
use asctl::model::{Config, Name};
use asctl::wire::{GroupState, NodeReport};
use tokio::sync::watch;

fn name(s: &str) -> Name {
    s.parse().expect("valid name")
}

/// Group `db` on `dev` and `mnt`, its writer on `port`, closely watched.
fn db_config(dev: &Path, mnt: &Path, port: u16) -> Arc<Config> {
    let yaml = db_group(dev, mnt, port, Watch::Close);
    let loaded = asctl::load::load_texts([("test.yaml", yaml.as_bytes())]);
    assert!(loaded.findings.is_empty(), "{:#?}", loaded.findings);
    Arc::new(loaded.config)
}

async fn wait_state(rx: &watch::Receiver<NodeReport>, want: GroupState) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = rx.borrow().clone();
        if let Some(g) = r.groups.get("db") {
            if g.state == want {
                return g.message.clone().unwrap_or_default();
            }
            assert!(
                !(g.state == GroupState::Failed && want != GroupState::Failed),
                "group failed: {:?}",
                g.message
            );
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {want:?}: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each record's acknowledgement by the writer.
fn write(port: u16, records: &[&str]) -> Vec<String> {
    // Online means started: the writer may still be binding its port (its
    // probe connects the same way).
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(e) = TcpStream::connect(("127.0.0.1", port)) {
        assert!(Instant::now() < deadline, "writer does not answer: {e}");
        std::thread::sleep(Duration::from_millis(50));
    }
    records
        .iter()
        .map(|r| ack(port, r).expect("the writer acknowledges"))
        .collect()
}

#[tokio::test]
#[ignore = "needs root: run with --include-ignored"]
async fn a_group_with_its_data_goes_online_in_order_and_offline_in_reverse() {
    let lun = Lun::new("ext4");
    let lo = lun.attach();
    let mnt = lun.dir("srv/db");
    let data = tempfile::tempdir().unwrap();
    let port = 47514;
    // `db` wanted here, or not, at `generation`.
    let desired = |generation, here: bool| Desired {
        generation,
        config: db_config(&lo.dev, &mnt, port),
        groups_here: here.then(|| name("db")).into_iter().collect(),
    };
    let (tx, rx) = watch::channel(desired(1, true));
    let mut opts = Options::new(name("node1"), data.path().to_path_buf());
    opts.tick = Duration::from_millis(50);
    opts.asctl_exe = Some(PathBuf::from(env!("CARGO_BIN_EXE_asctl")));
    let handle = reconciler::spawn(opts, rx);
    wait_state(&handle.reports, GroupState::Online).await;
    assert!(mounted(&mnt));
    assert_eq!(write(port, &["alpha", "beta"]), ["ack 1", "ack 2"]);

    // A stray process of this node using the mount: stop must kill it.
    let mut stray = Command::new("sh")
        .arg("-c")
        .arg(format!("cd {} && exec sleep 1000", mnt.display()))
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    tx.send_replace(desired(2, false));
    wait_state(&handle.reports, GroupState::Offline).await;
    assert!(!mounted(&mnt), "unmounted after the writer stopped");
    let _ = stray.wait();
    assert!(!live(stray.id()));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "writer stopped"
    );

    // Online again (as on another node after a failover): the records are
    // there and the sequence continues.
    tx.send_replace(desired(3, true));
    wait_state(&handle.reports, GroupState::Online).await;
    assert_eq!(write(port, &["gamma"]), ["ack 3"]);
    assert_eq!(
        std::fs::read_to_string(mnt.join("records.log")).unwrap(),
        "1 alpha\n2 beta\n3 gamma\n"
    );

    // Hung storage in the lab's terms: the file system vanishes from under
    // the group (lazily unmounted); the monitor fails the group.
    Command::new("umount").arg("-l").arg(&mnt).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = handle.reports.borrow().clone();
        let g = &r.groups["db"];
        if g.restarts > 0 || g.state == GroupState::Failed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the monitor did not notice: {g:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.shutdown(false).await;
    assert!(!mounted(&mnt));
}
