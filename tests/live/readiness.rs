//! Readiness and reasons on a live loopback domain: `apply` returns only
//! once a slow starter answers; a start that fails everywhere (a missing
//! program, a start-up grace too short) ends `apply` early with the
//! driver's reason, and `status` (human and JSON) keeps saying why.

use std::time::{Duration, Instant};

use crate::support::{ASCTL, LiveDomain, demo_answer, text};

/// The quickstart's `web` group replaced by one whose server runs `script`
/// (with `exec` of the demo server at its end, or not), probed over HTTP
/// with the given start-up grace, never restarted locally.
fn write_web(d: &LiveDomain, script: &str, start_timeout: &str) {
    let port = d.ports.demo[0];
    let command = serde_json::json!(["sh", "-c", script.replace("PORT", &port.to_string())]);
    let group = format!(
        "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata:\n  name: web\nspec:\n  \
         preferredNodes: [node1, node2, node3]\n  processes:\n    - name: server\n      \
         command: {command}\n      monitor:\n        interval: 2s\n        timeout: 1s\n        \
         startTimeout: {start_timeout}\n        probe:\n          \
         http: \"http://127.0.0.1:{port}/health\"\n  restart:\n    limit: 0\n    window: 5m\n"
    );
    std::fs::write(d.config.join("group-web.yaml"), group).expect("write web");
}

fn slow_server() -> String {
    format!("echo warming up; sleep 6; exec {ASCTL} demo-server --port PORT")
}

fn apply(d: &LiveDomain, timeout: &str) -> (std::process::Output, Duration) {
    let cfg = d.config.to_string_lossy().into_owned();
    let started = Instant::now();
    let out = d.asctl(&["apply", &cfg, "--auto-approve", "--timeout", timeout]);
    (out, started.elapsed())
}

/// `asctl apply` (5 min timeout) that must fail (exit 1): its output and
/// how long it took.
fn failed_apply(d: &LiveDomain) -> (String, Duration) {
    let (out, took) = apply(d, "5m");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        text(&out),
        d.agent_logs()
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), took)
}

/// The status (JSON) and the error `node` reported for `group`'s process
/// `server`.
fn process_error(
    d: &LiveDomain,
    node: &str,
    group: &str,
) -> (serde_json::Value, serde_json::Value) {
    let json = d.status_json().expect("status json");
    let error = json["nodes"][node]["report"]["groups"][group]["errors"]["process server"].clone();
    (json, error)
}

#[test]
fn a_slow_starter_converges_within_its_start_timeout_and_answers_when_apply_returns() {
    let mut d = LiveDomain::prepare();
    write_web(&d, &slow_server(), "30s");
    d.start();
    let (out, _) = apply(&d, "90s");
    // Checked before anything else: apply said converged, so it answers now.
    let answer = demo_answer(d.ports.demo[0]);
    assert!(out.status.success(), "{}\n{}", text(&out), d.agent_logs());
    assert_eq!(answer.as_deref(), Some("node1"), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("✓ web: online on node1"), "{stdout}");
    assert!(!stdout.contains("failed on"), "{stdout}");

    // A changed command restarts the running group: apply waits for the
    // new process to answer, not the old one still reported online.
    write_web(
        &d,
        &format!("sleep 4; exec {ASCTL} demo-server --port PORT --name second"),
        "30s",
    );
    let (out, _) = apply(&d, "90s");
    let answer = demo_answer(d.ports.demo[0]);
    assert!(out.status.success(), "{}\n{}", text(&out), d.agent_logs());
    assert_eq!(answer.as_deref(), Some("second"), "{}", text(&out));
}

#[test]
fn a_start_that_fails_everywhere_ends_apply_early_with_the_reason() {
    let mut d = LiveDomain::prepare();
    // api's program does not exist.
    let api = d.config.join("group-api.yaml");
    let text_api = std::fs::read_to_string(&api).expect("api");
    let broken = text_api.replace(
        "command: [\"asctl\", \"demo-server\"",
        "command: [\"no-such-binary-xyz\", \"demo-server\"",
    );
    assert_ne!(broken, text_api, "the quickstart's api command changed");
    std::fs::write(&api, broken).expect("write api");
    d.start();

    let (stdout, took) = failed_apply(&d);
    // Early: the domain has no node left long before the timeout.
    assert!(took < Duration::from_secs(60), "took {took:?}: {stdout}");
    // Said as it happened, per node, with the driver's error.
    for node in ["node1", "node2", "node3"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("  ✗ api failed on {node}: ")))
            .unwrap_or_else(|| panic!("no failure line for {node}: {stdout}"));
        assert!(line.contains("no-such-binary-xyz"), "{line}");
    }
    assert!(
        stdout.contains("✗ api: failed on node1, node2, node3; no node is left to try"),
        "{stdout}"
    );
    assert!(stdout.contains("✓ batch: online on node3"), "{stdout}");

    // status keeps the reason under the group, for every node.
    let out = d.asctl(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let status = String::from_utf8_lossy(&out.stdout).into_owned();
    for node in ["node1", "node2", "node3"] {
        let line = status
            .lines()
            .find(|l| l.starts_with(&format!("  ↳ {node}, ")))
            .unwrap_or_else(|| panic!("no reason for {node}: {status}"));
        assert!(
            line.contains(
                "process server: cannot start process `api/server` (`no-such-binary-xyz`)"
            ),
            "{line}"
        );
    }
    // And the JSON carries it in the node's report.
    let (json, error) = process_error(&d, "node2", "api");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("no-such-binary-xyz")),
        "{error}"
    );
    assert_eq!(json["formatVersion"], 1);

    // A slow starter whose grace is too short: never ready, a failed start
    // on each node, with the probe's answer and the log's last lines.
    write_web(&d, &slow_server(), "2s");
    let (stdout, took) = failed_apply(&d);
    assert!(took < Duration::from_secs(90), "took {took:?}: {stdout}");
    assert!(
        stdout.contains("✗ web failed on node1: process server: not ready within its startTimeout of 2s: http probe"),
        "{stdout}"
    );
    assert!(stdout.contains("| warming up"), "{stdout}");
    assert!(
        stdout.contains("✗ web: failed on node1, node2, node3; no node is left to try"),
        "{stdout}"
    );
    let (_, error) = process_error(&d, "node1", "web");
    assert!(
        error["probe"]
            .as_str()
            .is_some_and(|p| p.contains("http probe")),
        "{error}"
    );
    assert_eq!(
        error["logTail"],
        serde_json::json!(["warming up"]),
        "{error}"
    );
}

/// An OCF resource is ready only once its first monitor passed, not when
/// `start` returned: asctl's test agent says "not running" (7) for 4 s
/// after its start, and `apply` returns (converged, nothing failed or
/// restarted) only once it answers running.
#[test]
fn an_ocf_resource_is_online_only_once_its_first_monitor_passed() {
    let mut d = LiveDomain::prepare();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let group = format!(
        "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {{name: store}}\nspec:\n  \
         preferredNodes: [node1, node2, node3]\n  resources:\n    - name: disk\n      \
         ocf: asctl-test:Probe\n      params: {{state: {}, ready_after: 4}}\n  restart:\n    \
         limit: 0\n    window: 5m\n",
        state.display()
    );
    std::fs::write(d.config.join("group-store.yaml"), group).expect("write store");
    d.start_agents_with_test_ocf();
    let (out, _) = apply(&d, "90s");
    let returned = std::time::SystemTime::now();
    assert!(out.status.success(), "{}\n{}", text(&out), d.agent_logs());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("✓ store: online on node1"), "{stdout}");
    assert!(!stdout.contains("failed on"), "{stdout}");
    // The start was at least 4 s (the agent's whole seconds) before apply
    // returned: apply waited for the monitor, not for `start`.
    let started: u64 = std::fs::read_to_string(dir.path().join("state.started"))
        .expect("started")
        .trim()
        .parse()
        .expect("seconds");
    let now = returned
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    assert!(
        now >= started + 4,
        "apply returned {}s after the start",
        now - started
    );
    let s = d.status_json().expect("status");
    let group = &s["nodes"]["node1"]["report"]["groups"]["store"];
    assert_eq!(group["state"], "online", "{group}");
    assert_eq!(group["restarts"], 0, "{group}");
    d.stop();
}

/// A start outlasts the want that began it: the group is taken offline in
/// git while its first resource (an OCF agent whose `start` takes 4 s) is
/// still starting. The resources after it must never start (they would be
/// a second copy had the group moved), and the started one is stopped.
#[test]
fn a_start_stops_between_resources_once_the_group_is_no_longer_wanted() {
    let mut d = LiveDomain::prepare();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let log = dir.path().join("ocf.log");
    let marker = dir.path().join("marker");
    let group = |state_line: &str| {
        format!(
            "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {{name: store}}\nspec:\n  \
             {state_line}preferredNodes: [node1, node2, node3]\n  resources:\n    - name: disk\n      \
             ocf: asctl-test:Probe\n      params: {{state: {}, log: {}, start_delay: 4}}\n  \
             processes:\n    - name: app\n      command: [sh, -c, \"touch {}; exec sleep 1000\"]\n",
            state.display(),
            log.display(),
            marker.display()
        )
    };
    std::fs::write(d.config.join("group-store.yaml"), group("")).expect("write store");
    d.start_agents_with_test_ocf();
    // Commits the group and returns long before the 4 s start is over.
    let _ = apply(&d, "1s");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("start ")
    {
        assert!(Instant::now() < deadline, "no start\n{}", d.agent_logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(
        d.config.join("group-store.yaml"),
        group("state: offline\n  "),
    )
    .expect("write store offline");
    let _ = apply(&d, "1s");
    // The OCF resource's start ends, then its stop must follow.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("stop ")
    {
        assert!(Instant::now() < deadline, "no stop\n{}", d.agent_logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !marker.exists(),
        "the process after the slow resource started although the group was no longer \
         wanted\n{}",
        d.agent_logs()
    );
    assert!(!state.exists(), "the OCF resource was left running");
    d.stop();
}
