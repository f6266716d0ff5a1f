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

/// What an earlier run left: a data directory with its OCF records, and the
/// directory of the `Probe` resources' state files (a resource "runs" while
/// its state file exists) and of their call log `ocf.log`.
struct Earlier {
    data: tempfile::TempDir,
    ocf: tempfile::TempDir,
}

impl Earlier {
    fn new() -> Earlier {
        Earlier {
            data: tempfile::tempdir().unwrap(),
            ocf: tempfile::tempdir().unwrap(),
        }
    }

    /// A `Probe` resource `instance` with `extra` parameters.
    fn probe(&self, instance: &str, extra: &[(&str, &str)]) -> Agent {
        let dir = self.ocf.path();
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

    /// `agent` recorded for `group`, as the earlier run started it.
    fn recorded(&self, group: &str, agent: &Agent) {
        records::write(self.data.path(), group, agent, Duration::from_secs(8)).unwrap();
    }

    /// `instance` recorded for `group`, and still running.
    fn running(&self, group: &str, instance: &str) {
        self.recorded(group, &self.probe(instance, &[]));
        self.start_running(instance);
    }

    /// `instance`'s state file: it runs from now on.
    fn start_running(&self, instance: &str) {
        std::fs::write(self.ocf.path().join(instance), "").unwrap();
    }

    fn runs(&self, instance: &str) -> bool {
        self.ocf.path().join(instance).exists()
    }

    /// A running resource `stuck` recorded for `group` whose `stop` fails
    /// while the returned file exists.
    fn stuck(&self, group: &str) -> PathBuf {
        let failing = self.ocf.path().join("stop-fails");
        std::fs::write(&failing, "").unwrap();
        let fail_while = failing.display().to_string();
        let agent = self.probe(
            "stuck",
            &[("fail_on", "stop"), ("fail_while", fail_while.as_str())],
        );
        self.recorded(group, &agent);
        self.start_running("stuck");
        failing
    }

    /// A reconciler starting on this data directory, with `web` (one
    /// process) placed on the groups `here`.
    fn start(&self, here: &[&str]) -> Node {
        Node::start(self.data.path(), web(r#"["sleep", "1000"]"#, ""), here)
    }

    /// The instances still recorded for `group`.
    fn records(&self, group: &str) -> Vec<String> {
        records::recorded_of(self.data.path(), group)
            .into_iter()
            .map(|r| r.agent.instance)
            .collect()
    }

    /// The agent's calls, as (action, instance), from its log.
    fn calls(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.ocf.path().join("ocf.log"))
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
}

fn call(action: &str, instance: &str) -> (String, String) {
    (action.to_owned(), instance.to_owned())
}

#[tokio::test]
async fn a_starting_agent_stops_what_still_runs_and_forgets_what_does_not() {
    let earlier = Earlier::new();
    // `gone` no longer runs (no state file); `left` does, and was recorded
    // after it.
    earlier.recorded("store", &earlier.probe("gone", &[]));
    earlier.running("store", "left");

    let mut node = earlier.start(&[]);
    eventually("both records to go", || earlier.records("store").is_empty()).await;
    assert!(!earlier.runs("left"), "`left` was stopped");
    assert_eq!(
        earlier.calls(),
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
    let earlier = Earlier::new();
    let failing = earlier.stuck("store");

    let mut node = earlier.start(&[]);
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
    assert_eq!(earlier.records("store"), ["stuck"], "the record stays");

    // The stop works again: the retry (every 2 s) releases it.
    std::fs::remove_file(&failing).unwrap();
    eventually("the record to go", || earlier.records("store").is_empty()).await;
    assert!(!earlier.runs("stuck"), "stopped");
    node.wait("the node clean for store", |r| {
        r.groups.get("store").is_none_or(|g| g.unclean.is_none())
    })
    .await;
    node.shutdown(false).await;
}

#[tokio::test]
async fn a_group_placed_here_releases_what_its_spec_no_longer_names() {
    let earlier = Earlier::new();
    // Two OCF resources an earlier run started for `web`, which its spec
    // (one process) no longer has: both still run.
    earlier.running("web", "cache");
    earlier.running("web", "index");

    let mut node = earlier.start(&["web"]);
    node.wait_group("web", GroupState::Online).await;
    let left = earlier.records("web");
    assert!(left.is_empty(), "released before the start: {left:?}");
    assert!(!earlier.runs("cache"), "`cache` was stopped");
    assert!(!earlier.runs("index"), "`index` was stopped");
    assert_eq!(
        earlier.calls(),
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
    let earlier = Earlier::new();
    earlier.stuck("web");

    let mut node = earlier.start(&["web"]);
    let g = node.wait_group("web", GroupState::Failed).await;
    assert!(
        g.unclean.as_deref().unwrap_or_default().contains("stop"),
        "the node is unclean, and says why: {g:?}"
    );
    assert!(
        node.pid("web", "server").is_none(),
        "nothing started: {g:?}"
    );
    assert!(earlier.runs("stuck"), "still held");
    node.shutdown(false).await;
}

#[tokio::test]
async fn release_group_keeps_what_it_is_told_to() {
    use asctl::agent::failover::guard_storage::release_group;
    let earlier = Earlier::new();
    earlier.running("web", "kept");
    earlier.running("web", "gone");

    let keep = BTreeSet::from([name("kept")]);
    let out = release_group(earlier.data.path(), "web", &keep).await;
    assert!(out.failed.is_empty(), "{out:?}");
    assert_eq!(earlier.records("web"), ["kept"]);
    assert!(earlier.runs("kept"), "`kept` still runs");
    assert!(!earlier.runs("gone"), "`gone` was stopped");
    assert_eq!(
        earlier.calls(),
        [call("monitor", "gone"), call("stop", "gone")]
    );
}
