//! Unclean nodes with real agents on loopback: a group whose storage stop
//! fails on its node (an OCF resource — asctl's test agent `Probe` — whose
//! `stop` fails while a file exists) is started nowhere else while that node
//! may still hold it: not when the node reports it failed, not when the
//! node dies. It moves once the node's retried stop works (the node is
//! clean again), or once an operator runs `asctl confirm-down` for a dead
//! node. And an OCF agent that answers 6 (`OCF_ERR_CONFIGURED`: invalid
//! anywhere) fails its group on every node at once.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{LiveDomain, text};

const LONG: Duration = Duration::from_secs(60);
/// How long "nowhere" must hold: past the heartbeat timeout (4 s) and the
/// takeover wait, so that a node's death would have moved the group.
const HOLD: Duration = Duration::from_secs(8);

fn placed(d: &LiveDomain) -> Option<Option<String>> {
    let s = d.status_json()?;
    let node = s.get("placement")?.get("store")?.get("node")?;
    Some(node.as_str().map(str::to_owned))
}

fn unclean_cause(d: &LiveDomain, node: &str) -> Option<String> {
    let s = d.status_json()?;
    s["nodes"][node]["report"]["groups"]["store"]["unclean"]
        .as_str()
        .map(str::to_owned)
}

/// Makes `node`'s stop of the running resource fail: the failure file is
/// created, then the state file removed, so its monitor says "not running"
/// and the stop that follows fails. Returns once the domain has reacted:
/// the node's report and the leader's new placement are two commits, and
/// the leader's status shows the first before it makes the second.
fn fail_stop_on(d: &LiveDomain, dir: &Path, node: &str) {
    std::fs::write(dir.join("stop-fails"), b"").expect("fail file");
    std::fs::remove_file(dir.join("state")).expect("the resource ran");
    let what = format!("{node} unclean and store placed nowhere");
    let cause = d.eventually(&what, LONG, || {
        let cause = unclean_cause(d, node)?;
        placed(d)?.is_none().then_some(cause)
    });
    assert!(cause.contains("stop failed on purpose"), "{cause}");
}

/// Nobody starts the resource (the state file stays absent) and the group
/// stays placed nowhere, for [`HOLD`].
fn nowhere_for(d: &LiveDomain, dir: &Path) {
    let t0 = Instant::now();
    while t0.elapsed() < HOLD {
        assert!(
            !dir.join("state").exists(),
            "started elsewhere while a node may hold the storage\n{}",
            d.agent_logs()
        );
        if let Some(p) = placed(d) {
            assert_eq!(p, None, "placed while unclean");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_group_whose_stop_failed_starts_nowhere_until_released_or_confirmed_down() {
    let mut d = LiveDomain::prepare();
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, fails) = (dir.path().join("state"), dir.path().join("stop-fails"));
    std::fs::write(
        d.config.join("group-store.yaml"),
        format!(
            "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {{name: store}}\nspec:\n  \
             preferredNodes: [node1, node2, node3]\n  resources:\n    - name: disk\n      \
             ocf: asctl-test:Probe\n      params: {{state: {}, fail_on: stop, fail_while: {}}}\n",
            state.display(),
            fails.display()
        ),
    )
    .expect("group file");
    d.start_agents_with_test_ocf();
    d.apply();
    d.eventually("store on node1", LONG, || {
        (placed(&d) == Some(Some("node1".into())) && state.exists()).then_some(())
    });

    // node1's stop fails: the group is placed nowhere, node2 and node3 do
    // not start it, and `status` says why.
    fail_stop_on(&d, dir.path(), "node1");
    nowhere_for(&d, dir.path());
    let out = d.asctl(&["status"]);
    let shown = text(&out);
    assert!(
        shown.contains("UNCLEAN on node1") && shown.contains("asctl confirm-down node1"),
        "{shown}"
    );

    // The release works on node1's next retry: clean again, the group moves.
    std::fs::remove_file(&fails).expect("fail file");
    d.eventually("node1 clean and store on node2", LONG, || {
        (unclean_cause(&d, "node1").is_none()
            && placed(&d) == Some(Some("node2".into()))
            && state.exists())
        .then_some(())
    });

    // node2's stop fails, then node2 dies: still nowhere, although node2
    // is down — it may have died with the disk mounted.
    fail_stop_on(&d, dir.path(), "node2");
    d.kill_node("node2");
    d.eventually("node2 down", LONG, || {
        let s = d.status_json()?;
        (s["nodes"]["node2"]["state"].as_str()? == "down").then_some(())
    });
    nowhere_for(&d, dir.path());

    // The operator confirms node2 is off: store starts on node3 (node1
    // and node2 are in its failed_on).
    let out = d.asctl(&["confirm-down", "node2"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("store"), "{}", text(&out));
    d.eventually("store on node3", LONG, || {
        (placed(&d) == Some(Some("node3".into())) && state.exists()).then_some(())
    });
}

#[test]
fn a_resource_configured_wrong_everywhere_fails_on_every_node_at_once() {
    let mut d = LiveDomain::prepare();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log");
    std::fs::write(
        d.config.join("group-store.yaml"),
        format!(
            "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {{name: store}}\nspec:\n  \
             preferredNodes: [node1, node2, node3]\n  resources:\n    - name: disk\n      \
             ocf: asctl-test:Probe\n      params: {{state: {}, log: {}, fail_on: start, \
             fail_code: 6}}\n",
            dir.path().join("state").display(),
            log.display()
        ),
    )
    .expect("group file");
    d.start_agents_with_test_ocf();
    let cfg = d.config.display().to_string();
    // The apply's convergence wait reports the failure; what matters is
    // what the domain does next.
    let _ = d.asctl(&["apply", &cfg, "--auto-approve", "--timeout", "20s"]);
    let failed_on = |d: &LiveDomain| -> Option<Vec<String>> {
        let s = d.status_json()?;
        let f = s["placement"]["store"]["failedOn"].as_array()?;
        Some(
            f.iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect(),
        )
    };
    d.eventually("store failed on every node", LONG, || {
        (failed_on(&d)? == ["node1", "node2", "node3"]).then_some(())
    });
    let t0 = Instant::now();
    while t0.elapsed() < HOLD {
        assert_eq!(placed(&d), Some(None), "placed nowhere");
        std::thread::sleep(Duration::from_millis(250));
    }
    let starts = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("start "))
        .count();
    assert_eq!(
        starts, 1,
        "one node tried, the others were not tried in turn"
    );
}
