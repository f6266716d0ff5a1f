//! The lease guard stops OCF resources without the agent: a group with two
//! OCF resources (asctl's test agent `Probe`, `lower` started before
//! `upper`) and a process runs on node1; node1's agent is frozen with
//! SIGSTOP. Its guard kills the process, then runs `upper`'s `stop`, then
//! `lower`'s (the reverse of the start order), from the records the OCF
//! driver wrote before each `start` — all before another node starts the
//! group: the agents' shared log shows both stops before the next `start`.

use std::time::{Duration, Instant};

use crate::support::{LiveDomain, alive, ocf_actions, recorded_pid};

const LONG: Duration = Duration::from_secs(60);

fn placed(d: &LiveDomain) -> Option<String> {
    d.status_json()?["placement"]["store"]["node"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn a_frozen_agents_guard_stops_its_ocf_resources_in_reverse_order_before_a_takeover() {
    let mut d = LiveDomain::prepare();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("ocf.log");
    let (lower, upper) = (dir.path().join("lower"), dir.path().join("upper"));
    std::fs::write(
        d.config.join("group-store.yaml"),
        format!(
            "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {{name: store}}\nspec:\n  \
             preferredNodes: [node1, node2, node3]\n  resources:\n    \
             - {{name: lower, ocf: asctl-test:Probe, params: {{state: {}, log: {log}}}}}\n    \
             - {{name: upper, ocf: asctl-test:Probe, params: {{state: {}, log: {log}}}}}\n  \
             processes:\n    - {{name: user, command: [sleep, \"1000\"]}}\n",
            lower.display(),
            upper.display(),
            log = log.display(),
        ),
    )
    .expect("group file");
    d.start_agents_with_test_ocf();
    d.apply();
    d.eventually("store on node1", LONG, || {
        (placed(&d).as_deref() == Some("node1") && lower.exists() && upper.exists()).then_some(())
    });
    let records = d.state.join("nodes/node1/data/ocf/store");
    assert_eq!(
        std::fs::read_dir(&records).expect("OCF records").count(),
        2,
        "one record per started resource"
    );
    let user = d.eventually("the process's pid", LONG, || {
        recorded_pid(&d, "node1", "store", "user")
    });

    let from = std::fs::metadata(&log).expect("log").len() as usize;
    let agent = d.agents.get("node1").expect("node1's agent").id() as i32;
    // SAFETY: a signal to a child of this test.
    unsafe { libc::kill(agent, libc::SIGSTOP) };
    let frozen = Instant::now();
    d.eventually("both resources stopped on node1", LONG, || {
        (!lower.exists() && !upper.exists()).then_some(())
    });
    let stopped = frozen.elapsed();
    assert!(!alive(user), "the process was killed before the stops");
    d.eventually("store started on another node", LONG, || {
        let elsewhere = placed(&d).is_some_and(|n| n != "node1");
        (elsewhere && lower.exists() && upper.exists()).then_some(())
    });
    let seen = ocf_actions(&log, from);
    assert_eq!(
        seen.get(..4),
        Some(&["stop upper", "stop lower", "start lower", "start upper"].map(String::from)[..]),
        "after the freeze: the guard's stops, newest first, then the takeover's starts\n{}",
        d.agent_logs()
    );
    assert_eq!(
        std::fs::read_dir(&records).map(|r| r.count()).unwrap_or(0),
        0,
        "the records go with the stops"
    );
    eprintln!(
        "node1's guard stopped both OCF resources {} ms after the freeze",
        stopped.as_millis()
    );
    // SAFETY: as above; the woken agent stays fenced until caught up.
    unsafe { libc::kill(agent, libc::SIGCONT) };
}
