//! The OCF executor against real agent processes: asctl's own test agent
//! (`tests/fixtures/ocf/resource.d/asctl-test/Probe`) for the contract and
//! the rare exit codes, and Debian's `resource-agents` (`heartbeat:Dummy`)
//! where installed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use asctl::drivers::ocf::OcfDriver;
use asctl::drivers::ocf::exec::Agent;
use asctl::drivers::{DriverError, ResourceHealth};
use asctl::model::OcfAgent;

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ocf")
}

fn agent(ocf: &str, params: serde_json::Value) -> OcfAgent {
    serde_json::from_value(serde_json::json!({"ocf": ocf, "params": params})).expect("valid agent")
}

fn probe(dir: &Path, extra: serde_json::Value) -> OcfDriver {
    let mut params = serde_json::json!({
        "state": dir.join("state"),
        "log": dir.join("log"),
    });
    params
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    OcfDriver::new(
        "resource db".into(),
        "db",
        agent("asctl-test:Probe", params),
        fixture_root(),
    )
}

fn log(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn start_monitor_stop_with_the_contracts_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = probe(dir.path(), serde_json::json!({}));
    d.start().await.expect("start");
    assert!(dir.path().join("state").exists());
    assert_eq!(d.check().await, ResourceHealth::Healthy);
    d.stop().await.expect("stop");
    assert!(!dir.path().join("state").exists());
    let log = log(dir.path());
    let root = fixture_root();
    assert_eq!(
        log[0],
        format!(
            "meta-data instance=db type=Probe provider=asctl-test ra=1.1 interval=0 timeout=10000 root={}",
            root.display()
        )
    );
    // The start timeout comes from the agent's meta-data (7s), the
    // monitor's interval and timeout too (1s, 3s).
    assert!(
        log[1].starts_with(
            "start instance=db type=Probe provider=asctl-test ra=1.1 interval=0 timeout=7000"
        ),
        "{}",
        log[1]
    );
    assert!(
        log[2].starts_with("monitor instance=db") && log[2].contains("interval=1000 timeout=3000"),
        "{}",
        log[2]
    );
    assert!(
        log[3].starts_with("stop ") && log[3].contains("timeout=8000"),
        "{}",
        log[3]
    );
}

#[tokio::test]
async fn monitor_not_running_is_unhealthy_once_it_was_ready() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = probe(dir.path(), serde_json::json!({}));
    d.start().await.expect("start");
    assert_eq!(d.check().await, ResourceHealth::Healthy);
    std::fs::remove_file(dir.path().join("state")).unwrap();
    // The next monitor is due after the meta-data's interval (1 s).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let h = d.check().await;
    assert!(
        matches!(&h, ResourceHealth::Unhealthy(w) if w.contains("not running (monitor returned 7)")),
        "{h:?}"
    );
}

/// A resource whose monitor says "not running" for a while after `start`
/// returned is starting, not failed, until its first monitor passes: then
/// ready. One that never passes within its start timeout is a failed start.
#[tokio::test]
async fn ready_only_once_the_first_monitor_passed() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = probe(dir.path(), serde_json::json!({"ready_after": 2}));
    d.start().await.expect("start");
    let started = Instant::now();
    let h = d.check().await;
    assert!(
        matches!(&h, ResourceHealth::Starting(w) if w.contains("waiting for its first monitor to pass")
            && w.contains("not running (monitor returned 7)")),
        "{h:?}"
    );
    let ready = loop {
        let h = d.check().await;
        if !matches!(h, ResourceHealth::Starting(_)) {
            break h;
        }
        assert!(started.elapsed() < Duration::from_secs(6), "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready, ResourceHealth::Healthy);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "ready too soon"
    );

    // ready_after beyond the start timeout (7 s): never ready in time.
    let dir = tempfile::tempdir().unwrap();
    let mut d = probe(dir.path(), serde_json::json!({"ready_after": 60}));
    d.start().await.expect("start");
    let verdict = loop {
        let h = d.check().await;
        if !matches!(h, ResourceHealth::Starting(_)) {
            break h;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no verdict");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        matches!(&verdict, ResourceHealth::Unhealthy(w) if w.starts_with("resource db: not ready within its start timeout (7s)")),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn hard_and_fatal_codes_are_permanent_soft_ones_are_not() {
    for (code, permanent, name) in [
        (1, false, "OCF_ERR_GENERIC"),
        (2, true, "OCF_ERR_ARGS"),
        (3, true, "OCF_ERR_UNIMPLEMENTED"),
        (4, true, "OCF_ERR_PERM"),
        (5, true, "OCF_ERR_INSTALLED"),
        (6, true, "OCF_ERR_CONFIGURED"),
        (9, false, "OCF_FAILED_PROMOTED"),
        (77, false, "unknown exit code"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut d = probe(
            dir.path(),
            serde_json::json!({"fail_on": "start", "fail_code": code}),
        );
        let err = d.start().await.expect_err("start fails");
        assert_eq!(err.is_permanent(), permanent, "code {code}: {err}");
        assert_eq!(
            err.is_fatal(),
            code == 6,
            "only 6 is invalid anywhere: {err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "`start` returned {code} ({name}): start failed on purpose"
            )),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_failing_stop_is_an_error_and_monitor_errors_are_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = probe(dir.path(), serde_json::json!({"fail_on": "stop"}));
    d.start().await.expect("start");
    let err = d.stop().await.expect_err("stop fails");
    assert!(matches!(err, DriverError::Failed(_)), "{err:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut d = probe(
        dir.path(),
        serde_json::json!({"fail_on": "monitor", "fail_code": 1}),
    );
    d.start().await.expect("start");
    let h = d.check().await;
    assert!(
        matches!(&h, ResourceHealth::Unhealthy(w) if w.contains("monitor failed on purpose")),
        "{h:?}"
    );
}

fn live(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| t.rsplit_once(')').map(|(_, r)| r.trim().to_string()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

#[tokio::test]
async fn an_agent_past_its_timeout_is_killed_with_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = agent(
        "asctl-test:Probe",
        serde_json::json!({"state": dir.path().join("state"), "hang_on": "start"}),
    );
    spec.timeouts = serde_json::from_value(serde_json::json!({"start": "500ms"})).unwrap();
    let mut d = OcfDriver::new("resource db".into(), "db", spec, fixture_root());
    let t = Instant::now();
    let err = d.start().await.expect_err("killed at the timeout");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(
        err.to_string()
            .contains("`start` did not finish within 500ms"),
        "{err}"
    );
    let child: i32 = std::fs::read_to_string(dir.path().join("state.child"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while live(child) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !live(child),
        "the agent's child {child} outlived the timeout"
    );
}

#[tokio::test]
async fn a_missing_agent_or_a_bad_name_is_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = OcfDriver::new(
        "data source x".into(),
        "x",
        agent("asctl-test:Nonexistent", serde_json::json!({})),
        fixture_root(),
    );
    let err = d.start().await.expect_err("not installed");
    assert!(
        err.is_permanent() && err.to_string().contains("is not installed on this node"),
        "{err}"
    );
    d.stop().await.expect("nothing to stop");
    let mut d = OcfDriver::new(
        "data source x".into(),
        "x",
        agent("../../bin/sh", serde_json::json!({})),
        dir.path().to_path_buf(),
    );
    let err = d.start().await.expect_err("bad name");
    assert!(
        err.is_permanent() && err.to_string().contains("PROVIDER:TYPE"),
        "{err}"
    );
}

#[tokio::test]
async fn exec_runs_any_action_and_reads_meta_data() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent {
        root: fixture_root(),
        provider: "asctl-test".into(),
        kind: "Probe".into(),
        instance: "db".into(),
        params: vec![("state".into(), dir.path().join("s").display().to_string())],
    };
    let out = a
        .run("validate-all", Duration::from_secs(5), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(out.code, 0);
    let out = a
        .run("promote", Duration::from_secs(5), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(out.code, 3, "unimplemented");
    let md = asctl::drivers::ocf::fetch_metadata(&a).await.unwrap();
    assert!(md.params["state"].required);
    assert_eq!(md.timeout("stop"), Some(Duration::from_secs(8)));
}

const DEBIAN_ROOT: &str = "/usr/lib/ocf";

#[tokio::test]
#[ignore = "needs root and resource-agents: run with --include-ignored"]
async fn the_real_dummy_agent() {
    assert!(
        Path::new(DEBIAN_ROOT)
            .join("resource.d/heartbeat/Dummy")
            .exists(),
        "install resource-agents"
    );
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("dummy.state");
    let mut d = OcfDriver::new(
        "resource dummy".into(),
        "h4-dummy",
        agent("heartbeat:Dummy", serde_json::json!({"state": state})),
        DEBIAN_ROOT.into(),
    );
    assert!(
        !d.check().await.is_healthy(),
        "a probe before start: not running"
    );
    d.start().await.expect("start");
    assert!(state.exists());
    // Each check within the interval answers from the last monitor; a new
    // driver monitors at once.
    let mut d2 = OcfDriver::new(
        "resource dummy".into(),
        "h4-dummy",
        agent("heartbeat:Dummy", serde_json::json!({"state": state})),
        DEBIAN_ROOT.into(),
    );
    assert_eq!(d2.check().await, ResourceHealth::Healthy);
    std::fs::remove_file(&state).unwrap();
    let mut d3 = OcfDriver::new(
        "resource dummy".into(),
        "h4-dummy",
        agent("heartbeat:Dummy", serde_json::json!({"state": state})),
        DEBIAN_ROOT.into(),
    );
    let h = d3.check().await;
    assert!(
        matches!(&h, ResourceHealth::Unhealthy(w) if w.contains("returned 7")),
        "{h:?}"
    );
    d.start().await.expect("start again");
    d.stop().await.expect("stop");
    assert!(!state.exists());
    d.stop().await.expect("stop is idempotent");
}

/// The real `heartbeat:Dummy` whose `start` fails: its state file's
/// directory does not exist, so its `touch` exits 1 — OCF_ERR_GENERIC, a
/// soft error (worth a restart or another node), said with the agent's
/// action and code.
#[tokio::test]
#[ignore = "needs root and resource-agents: run with --include-ignored"]
async fn the_real_dummy_agent_s_failed_start_is_a_soft_error() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("missing/dummy.state");
    let mut d = OcfDriver::new(
        "resource dummy".into(),
        "h4-dummy",
        agent("heartbeat:Dummy", serde_json::json!({"state": state})),
        DEBIAN_ROOT.into(),
    );
    let err = d
        .start()
        .await
        .expect_err("touch in a missing directory fails");
    assert!(!err.is_permanent(), "exit 1 is soft: {err}");
    assert!(
        err.to_string()
            .contains("`start` returned 1 (OCF_ERR_GENERIC)"),
        "{err}"
    );
}

/// The real `heartbeat:Dummy` given less time than it needs (a start
/// timeout of 1 ms: the agent is a shell script that sources the OCF shell
/// library first) is stopped at the timeout and its start is an error that
/// says so; without an override the agent's own meta-data gives 20 s.
#[tokio::test]
#[ignore = "needs root and resource-agents: run with --include-ignored"]
async fn the_real_dummy_agent_past_its_timeout_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("dummy.state");
    let mut spec = agent("heartbeat:Dummy", serde_json::json!({"state": state}));
    let dummy = Agent {
        root: DEBIAN_ROOT.into(),
        provider: "heartbeat".into(),
        kind: "Dummy".into(),
        instance: "h4-dummy".into(),
        params: vec![("state".into(), state.display().to_string())],
    };
    let md = asctl::drivers::ocf::fetch_metadata(&dummy).await.unwrap();
    assert_eq!(md.timeout("start"), Some(Duration::from_secs(20)));
    spec.timeouts = serde_json::from_value(serde_json::json!({"start": "1ms"})).unwrap();
    let mut d = OcfDriver::new(
        "resource dummy".into(),
        "h4-dummy",
        spec,
        DEBIAN_ROOT.into(),
    );
    let err = d.start().await.expect_err("killed at the timeout");
    assert!(
        err.to_string()
            .contains("`start` did not finish within 1ms"),
        "{err}"
    );
}

/// The real `heartbeat:Dummy` as a group's resource on a live domain: its
/// failing start (a missing state directory) is restarted once on the
/// group's node, then the group fails over node by node until every node
/// has failed it, each saying why; once the directory exists, `asctl
/// clear` brings it online on its first node.
#[test]
#[ignore = "needs root and resource-agents: run with --include-ignored"]
fn the_real_dummy_agent_s_failed_start_restarts_then_fails_over() {
    use crate::support::LiveDomain;

    let mut d = LiveDomain::prepare();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("later");
    let state = state_dir.join("dummy.state");
    let group = format!(
        "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {{name: marker}}\nspec:\n  \
         preferredNodes: [node1, node2, node3]\n  resources:\n    - name: dummy\n      \
         ocf: heartbeat:Dummy\n      params: {{state: {}}}\n  restart:\n    \
         limit: 1\n    window: 5m\n",
        state.display()
    );
    std::fs::write(d.config.join("group-marker.yaml"), group).unwrap();
    d.start();
    let cfg = d.config.to_string_lossy().into_owned();
    let out = d.asctl(&["apply", &cfg, "--auto-approve", "--timeout", "90s"]);
    assert!(
        !out.status.success(),
        "a group failed everywhere is not converged"
    );
    let failed = d.eventually(
        "marker failed on every node",
        Duration::from_secs(90),
        || {
            let s = d.status_json()?;
            let on = s.pointer("/placement/marker/failedOn")?.as_array()?.clone();
            (on.len() == 3).then_some(s)
        },
    );
    // Each node keeps why it failed there (after the group moved on too).
    for node in ["node1", "node2", "node3"] {
        let g = &failed["nodes"][node]["report"]["groups"]["marker"];
        let why = g["errors"].to_string();
        assert!(
            why.contains("`start` returned 1 (OCF_ERR_GENERIC)") && why.contains("cannot touch"),
            "{node}: {g}"
        );
    }
    // The first node started it twice (the start and one restart) before
    // it gave the group up.
    let log = crate::support::log_text(&d.state.join("nodes/node1/agent.log"));
    let starts = log
        .lines()
        .filter(|l| l.contains("cannot start resource dummy"))
        .count();
    assert_eq!(starts, 2, "{log}");
    assert!(log.contains("restart limit reached: 1 in 5m"), "{log}");
    std::fs::create_dir(&state_dir).unwrap();
    let out = d.asctl(&["clear", "marker"]);
    assert!(out.status.success(), "{}", crate::support::text(&out));
    d.eventually("marker online", Duration::from_secs(60), || {
        let s = d.status_json()?;
        (s.pointer("/nodes/node1/report/groups/marker/state")?
            .as_str()?
            == "online")
            .then_some(())
    });
    assert!(state.exists(), "Dummy's start created its state file");
    d.stop();
}
