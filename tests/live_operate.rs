//! Operating a live loopback domain: `plan --fail` against the live
//! placement, and the CLI's failover between members (a frozen or dead
//! member costs a fraction of a second, and the member that answered is
//! asked first next time).

mod live_support;

use std::time::{Duration, Instant};

use live_support::{LiveDomain, text};

fn answered_by(d: &LiveDomain) -> (String, Duration) {
    let started = Instant::now();
    let out = d.asctl(&["status", "--format", "json"]);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    (
        v["answeredBy"].as_str().expect("answeredBy").to_owned(),
        took,
    )
}

fn signal(d: &LiveDomain, node: &str, sig: i32) {
    let pid = d.agents[node].id() as i32;
    // SAFETY: a signal to an agent this test started.
    unsafe {
        libc::kill(pid, sig);
    }
}

#[test]
fn plan_fail_and_client_failover_between_members() {
    let mut d = LiveDomain::prepare();
    d.start();
    let cfg = d.config.to_string_lossy().into_owned();
    let out = d.asctl(&["apply", &cfg, "--auto-approve", "--timeout", "60s"]);
    assert!(
        out.status.success(),
        "apply: {}\n{}",
        text(&out),
        d.agent_logs()
    );

    // What-if against the live placement: web (on node1) would move.
    let out = d.asctl(&["plan", &cfg, "--fail", "node1"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("What-if: as if node1 had failed."), "{plan}");
    assert!(
        plan.contains("group web: move node1 → node2 (node1 is down)"),
        "{plan}"
    );
    let out = d.asctl(&["plan", &cfg, "--fail", "node1", "-o", "x.json"]);
    assert_eq!(out.status.code(), Some(2), "a what-if plan is not saved");

    let memory = d.state.join("last-member");
    let (first, _) = answered_by(&d);
    assert_eq!(first, "node1", "the first endpoint answers while it is up");

    // node1's agent frozen: it accepts connections and never answers. The
    // next member answers within the hedge delay, not the 10 s timeout.
    signal(&d, "node1", libc::SIGSTOP);
    let (by, took) = answered_by(&d);
    assert_ne!(by, "node1");
    assert!(took < Duration::from_secs(5), "status took {took:?}");
    let remembered = std::fs::read_to_string(&memory).expect("the answering member is remembered");
    assert_eq!(remembered, format!("127.0.0.1:{}", d.ports.agents[1]));
    // Asked first from now on.
    let (again, _) = answered_by(&d);
    assert_eq!(again, by);

    // The remembered member dies (connection refused): the others answer.
    signal(&d, "node1", libc::SIGCONT);
    d.kill9("node2");
    let (by, took) = answered_by(&d);
    assert!(by == "node1" || by == "node3", "{by}");
    assert!(took < Duration::from_secs(5), "status took {took:?}");
    let remembered = std::fs::read_to_string(&memory).expect("remembered");
    assert_ne!(remembered, format!("127.0.0.1:{}", d.ports.agents[1]));
    d.stop();
}
