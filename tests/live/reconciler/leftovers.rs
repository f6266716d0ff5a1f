//! What an earlier agent run left on record for a group not placed here,
//! found by a reconciler that starts: OCF resources (asctl's test agent
//! `Probe`) are adopted or cleaned as mounts are — the agent's `monitor`
//! says whether each still runs; one that does is stopped, one that does
//! not just loses its record; a `stop` that fails makes the node unclean
//! for the group until a retried stop works. A group that is placed here
//! keeps what its spec still names (its start adopts it) and loses the rest,
//! as processes are (`process::stop_stale`).

use super::*;
use asctl::drivers::ocf::exec::Agent;
use asctl::drivers::ocf::records;

/// A `Probe` resource `instance` whose state file is in `dir` (and log
/// `dir/ocf.log`), with `extra` parameters.
fn probe(dir: &Path, instance: &str, extra: &[(&str, &str)]) -> Agent {
    let mut params = vec![
        ("state".to_owned(), dir.join(instance).display().to_string()),
        ("log".to_owned(), dir.join("ocf.log").display().to_string()),
    ];
    params.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Agent {
        root: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ocf"),
        provider: "asctl-test".into(),
        kind: "Probe".into(),
        instance: instance.into(),
        params,
    }
}

/// The agent's calls, as (action, instance), from its log.
fn calls(dir: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(dir.join("ocf.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let action = w.next()?.to_owned();
            let instance = w.next()?.strip_prefix("instance=")?.to_owned();
            Some((action, instance))
        })
        .collect()
}

fn call(action: &str, instance: &str) -> (String, String) {
    (action.to_owned(), instance.to_owned())
}

fn records_of(data: &Path) -> Vec<String> {
    records::recorded_of(data, "store")
        .into_iter()
        .map(|r| r.agent.instance)
        .collect()
}

#[tokio::test]
async fn a_starting_agent_stops_what_still_runs_and_forgets_what_does_not() {
    let data = tempfile::tempdir().unwrap();
    let ocf = tempfile::tempdir().unwrap();
    let stop = Duration::from_secs(8);
    // `gone` no longer runs (no state file); `left` does, and was recorded
    // after it.
    records::write(data.path(), "store", &probe(ocf.path(), "gone", &[]), stop).unwrap();
    records::write(data.path(), "store", &probe(ocf.path(), "left", &[]), stop).unwrap();
    std::fs::write(ocf.path().join("left"), "").unwrap();

    let mut node = Node::start(data.path(), web(r#"["sleep", "1000"]"#, ""), &[]);
    eventually("both records to go", || records_of(data.path()).is_empty()).await;
    assert!(!ocf.path().join("left").exists(), "`left` was stopped");
    assert_eq!(
        calls(ocf.path()),
        [
            call("monitor", "left"),
            call("stop", "left"),
            call("monitor", "gone"),
        ],
        "newest first; `gone` only asked, not stopped"
    );
    eventually("the group out of the report", || {
        !node.report().groups.contains_key("store")
    })
    .await;
    node.shutdown(false).await;
}

#[tokio::test]
async fn a_leftover_whose_stop_fails_makes_the_node_unclean_until_it_works() {
    let data = tempfile::tempdir().unwrap();
    let ocf = tempfile::tempdir().unwrap();
    let failing = ocf.path().join("stop-fails");
    std::fs::write(&failing, "").unwrap();
    let agent = probe(
        ocf.path(),
        "stuck",
        &[
            ("fail_on", "stop"),
            ("fail_while", failing.to_str().unwrap()),
        ],
    );
    records::write(data.path(), "store", &agent, Duration::from_secs(8)).unwrap();
    std::fs::write(ocf.path().join("stuck"), "").unwrap();

    let mut node = Node::start(data.path(), web(r#"["sleep", "1000"]"#, ""), &[]);
    let report = node
        .wait("the node unclean for store", |r| {
            r.groups.get("store").is_some_and(|g| g.unclean.is_some())
        })
        .await;
    let g = &report.groups["store"];
    assert_eq!(g.state, GroupState::Failed, "{g:?}");
    assert!(
        g.unclean.as_deref().unwrap_or_default().contains("stop"),
        "the cause names the failed stop: {g:?}"
    );
    assert_eq!(records_of(data.path()), ["stuck"], "the record stays");

    // The stop works again: the retry (every 2 s) releases it.
    std::fs::remove_file(&failing).unwrap();
    eventually("the record to go", || records_of(data.path()).is_empty()).await;
    assert!(!ocf.path().join("stuck").exists(), "stopped");
    node.wait("the node clean for store", |r| {
        r.groups.get("store").is_none_or(|g| g.unclean.is_none())
    })
    .await;
    node.shutdown(false).await;
}

#[tokio::test]
async fn a_group_placed_here_releases_what_its_spec_no_longer_names() {
    let data = tempfile::tempdir().unwrap();
    let ocf = tempfile::tempdir().unwrap();
    let stop = Duration::from_secs(8);
    // Two OCF resources an earlier run started for `web`, which its spec
    // (one process) no longer has: both still run.
    for instance in ["cache", "index"] {
        records::write(data.path(), "web", &probe(ocf.path(), instance, &[]), stop).unwrap();
        std::fs::write(ocf.path().join(instance), "").unwrap();
    }

    let mut node = Node::start(data.path(), web(r#"["sleep", "1000"]"#, ""), &["web"]);
    node.wait_group("web", GroupState::Online).await;
    let left: Vec<String> = records::recorded_of(data.path(), "web")
        .into_iter()
        .map(|r| r.agent.instance)
        .collect();
    assert!(left.is_empty(), "released before the start: {left:?}");
    assert!(!ocf.path().join("cache").exists(), "`cache` was stopped");
    assert!(!ocf.path().join("index").exists(), "`index` was stopped");
    assert_eq!(
        calls(ocf.path()),
        [
            call("monitor", "index"),
            call("stop", "index"),
            call("monitor", "cache"),
            call("stop", "cache"),
        ],
        "newest first"
    );
    node.shutdown(false).await;
}

#[tokio::test]
async fn a_stale_resource_whose_stop_fails_keeps_the_group_from_starting_here() {
    let data = tempfile::tempdir().unwrap();
    let ocf = tempfile::tempdir().unwrap();
    let failing = ocf.path().join("stop-fails");
    std::fs::write(&failing, "").unwrap();
    let agent = probe(
        ocf.path(),
        "stuck",
        &[
            ("fail_on", "stop"),
            ("fail_while", failing.to_str().unwrap()),
        ],
    );
    records::write(data.path(), "web", &agent, Duration::from_secs(8)).unwrap();
    std::fs::write(ocf.path().join("stuck"), "").unwrap();

    let mut node = Node::start(data.path(), web(r#"["sleep", "1000"]"#, ""), &["web"]);
    let g = node.wait_group("web", GroupState::Failed).await;
    assert!(
        g.unclean.as_deref().unwrap_or_default().contains("stop"),
        "the node is unclean, and says why: {g:?}"
    );
    assert!(
        node.pid("web", "server").is_none(),
        "nothing started: {g:?}"
    );
    assert!(ocf.path().join("stuck").exists(), "still held");
    node.shutdown(false).await;
}

#[tokio::test]
async fn release_group_keeps_what_it_is_told_to() {
    use asctl::agent::failover::guard_storage::release_group;
    let data = tempfile::tempdir().unwrap();
    let ocf = tempfile::tempdir().unwrap();
    let stop = Duration::from_secs(8);
    for instance in ["kept", "gone"] {
        records::write(data.path(), "web", &probe(ocf.path(), instance, &[]), stop).unwrap();
        std::fs::write(ocf.path().join(instance), "").unwrap();
    }
    let keep = BTreeSet::from([name("kept")]);
    let out = release_group(data.path(), "web", &keep).await;
    assert!(out.failed.is_empty(), "{out:?}");
    let left: Vec<String> = records::recorded_of(data.path(), "web")
        .into_iter()
        .map(|r| r.agent.instance)
        .collect();
    assert_eq!(left, ["kept"]);
    assert!(ocf.path().join("kept").exists(), "`kept` still runs");
    assert!(!ocf.path().join("gone").exists(), "`gone` was stopped");
    assert_eq!(
        calls(ocf.path()),
        [call("monitor", "gone"), call("stop", "gone")]
    );
}
