//! Fail-stop supervision (src/agent/vital.rs), with real agents: when a
//! task the node cannot do without dies or stalls, the agent fences its
//! groups, exits non-zero with the cause, and the domain moves the groups.
//! Each failure is provoked in node1's real agent through the debug build's
//! `ASCTL_DEBUG_FAULT=TASK:KIND:FILE` hook, at the moment the test creates
//! FILE.

use std::time::{Duration, Instant};

use crate::support::{LiveDomain, alive};

const LONG: Duration = Duration::from_secs(60);

/// Starts the domain with the fault armed in node1, waits until web runs
/// there, pulls the trigger and checks the fail-stop: node1's agent exits
/// non-zero saying `cause`, web's process is gone by then, and web runs
/// elsewhere.
fn fail_stop(task: &str, kind: &str, cause: &str) {
    fail_stop_after(task, kind, cause, |_| {});
}

/// [`fail_stop`], with `then` run once the trigger is pulled (what makes
/// the faulty task act).
fn fail_stop_after(task: &str, kind: &str, cause: &str, then: impl FnOnce(&LiveDomain)) {
    let mut d = LiveDomain::prepare();
    let trigger = d.dir.path().join("fault-trigger");
    let spec = format!("{task}:{kind}:{}", trigger.display());
    d.start_agent_env("node1", &[("ASCTL_DEBUG_FAULT", &spec)]);
    d.start_agent("node2");
    d.start_agent("node3");
    d.wait_formed();
    d.apply();
    let pid = d.web_running_on_node1();

    std::fs::write(&trigger, b"").expect("trigger");
    let pulled = Instant::now();
    then(&d);
    let node1 = d.agents.get_mut("node1").expect("node1");
    let status = loop {
        if let Some(status) = node1.try_wait().expect("wait") {
            break status;
        }
        assert!(
            pulled.elapsed() < LONG,
            "node1's agent still runs after its {task} task's {kind}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Gone by the time the agent exited: the domain may start it elsewhere.
    let web_alive = alive(pid);
    let log = std::fs::read_to_string(d.state.join("nodes/node1/agent.log")).unwrap_or_default();
    assert!(!status.success(), "exits non-zero: {status:?}\n{log}");
    assert!(
        log.contains(cause),
        "the log names the cause {cause:?}:\n{log}"
    );
    assert!(!web_alive, "web's process outlived its agent:\n{log}");
    d.agents.remove("node1");
    d.web_moved_from_node1();
    d.stop();
}

#[test]
fn a_stalled_heartbeat_sender_fails_the_agent() {
    fail_stop(
        "heartbeat send",
        "stall",
        "the heartbeat send task made no progress",
    );
}

#[test]
fn a_panicking_detector_fails_the_agent() {
    fail_stop(
        "detector",
        "panic",
        "the detector task panicked: debug fault",
    );
}

#[test]
fn a_stalled_lease_renewal_fails_the_agent() {
    fail_stop(
        "lease renewal",
        "stall",
        "the lease renewal task made no progress",
    );
}

#[test]
fn a_stalled_failover_policy_fails_the_agent() {
    fail_stop(
        "failover policy",
        "stall",
        "the failover policy task made no progress",
    );
}

#[test]
fn a_panicking_reconciler_fails_the_agent() {
    fail_stop(
        "reconciler",
        "panic",
        "the reconciler task panicked: debug fault",
    );
}

#[test]
fn a_dead_api_server_fails_the_agent() {
    fail_stop(
        "API server",
        "panic",
        "the API server task panicked: debug fault",
    );
}

/// A raft core stuck in a log append (a disk whose fsync never returns)
/// neither quits nor progresses; the storage call's age must fail the
/// agent. The domain writes once (`asctl clear web`) so that node1 appends.
#[test]
fn a_raft_core_stuck_in_storage_fails_the_agent() {
    fail_stop_after(
        "raft storage",
        "stall",
        "the raft storage call appending to log.jsonl (write, fdatasync) in",
        |d| {
            d.asctl(&["clear", "web"]);
        },
    );
}
