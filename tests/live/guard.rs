//! The lease guard with real agents on loopback (the quickstart domain,
//! heartbeat timeout 4 s, so the lease L is 4 s): an agent frozen with
//! SIGSTOP or killed with `kill -9` has its demo server killed by its guard
//! within L and a margin; a woken agent does not bring back a group that
//! moved away (failback manual); a graceful stop with `--leave-running`
//! leaves the processes to the next agent, which adopts them.

use std::time::{Duration, Instant};

use crate::support::{LiveDomain, alive, demo_answer, recorded_pid};

/// The lease: the heartbeat timeout of [`LiveDomain::prepare`].
const LEASE: Duration = Duration::from_secs(4);
/// The guard's own work, scheduling on a loaded 2-core machine, and polling.
const MARGIN: Duration = Duration::from_millis(1500);
const LONG: Duration = Duration::from_secs(60);

fn agent_pid(d: &LiveDomain, node: &str) -> i32 {
    d.agents.get(node).expect("running agent").id() as i32
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: a signal to a child of this test.
    unsafe { libc::kill(pid, sig) };
}

/// Waits until `pid` is gone; the time since `t0`.
fn gone_within(pid: i32, t0: Instant, limit: Duration) -> Option<Duration> {
    while t0.elapsed() < limit {
        if !alive(pid) {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn converged() -> LiveDomain {
    let d = LiveDomain::applied();
    d.eventually("web on node1 and api on node2", LONG, || {
        (demo_answer(d.ports.demo[0]).as_deref() == Some("node1")
            && demo_answer(d.ports.demo[1]).as_deref() == Some("node2"))
        .then_some(())
    });
    d
}

#[test]
fn frozen_or_killed_agents_are_fenced_and_a_woken_agent_stays_fenced() {
    let mut d = converged();

    // SIGSTOP node2's agent: its guard kills api's server within L.
    let api_pid = recorded_pid(&d, "node2", "api", "server").expect("api's pid on node2");
    let agent2 = agent_pid(&d, "node2");
    let t0 = Instant::now();
    signal(agent2, libc::SIGSTOP);
    let took = gone_within(api_pid, t0, LEASE + MARGIN).unwrap_or_else(|| {
        signal(agent2, libc::SIGCONT);
        panic!(
            "api's server still runs {:?} after node2's agent froze\n{}",
            LEASE + MARGIN,
            d.agent_logs()
        )
    });
    eprintln!(
        "frozen agent: its process killed {} ms after SIGSTOP",
        took.as_millis()
    );
    // The domain moves api (failback manual: it stays where it goes).
    d.eventually("api to answer from node3", LONG, || {
        (demo_answer(d.ports.demo[1]).as_deref() == Some("node3")).then_some(())
    });
    signal(agent2, libc::SIGCONT);
    // Woken, node2 must not start api again: placement says node3.
    let watch_until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < watch_until {
        if let Some(pid) = recorded_pid(&d, "node2", "api", "server") {
            assert!(
                pid == api_pid || !alive(pid),
                "node2 restarted api (pid {pid}) after waking\n{}",
                d.agent_logs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(d.placed_on("api").as_deref(), Some("node3"));
    assert_eq!(demo_answer(d.ports.demo[1]).as_deref(), Some("node3"));
    let log2 = std::fs::read_to_string(d.state.join("nodes/node2/agent.log")).expect("log");
    assert!(log2.contains("lease lapsed"), "{log2}");
    d.wait_formed();

    // kill -9 node1's agent: its guard sees the pipe close and kills web's
    // server at once (well within L).
    let web_pid = recorded_pid(&d, "node1", "web", "server").expect("web's pid on node1");
    let t0 = Instant::now();
    d.kill9("node1");
    let took = gone_within(web_pid, t0, LEASE + MARGIN).unwrap_or_else(|| {
        panic!(
            "web's server still runs after node1's agent was killed\n{}",
            d.agent_logs()
        )
    });
    eprintln!(
        "killed agent: its process killed {} ms after kill -9",
        took.as_millis()
    );
    d.eventually("web to answer from another node", LONG, || {
        demo_answer(d.ports.demo[0])
            .filter(|n| n != "node1")
            .map(|_| ())
    });
    // Back, node1 gets web again because placement says so (failback auto).
    d.start_agent("node1");
    d.eventually("web back on node1 (failback)", LONG, || {
        (demo_answer(d.ports.demo[0]).as_deref() == Some("node1")).then_some(())
    });
}

#[test]
fn leave_running_detaches_the_guard_and_the_next_agent_adopts() {
    let mut d = converged();
    // node1 runs with --leave-running from now on.
    d.kill9("node1");
    d.start_agent_with("node1", &["--leave-running"], &[]);
    d.wait_formed();
    let pid = d.eventually("web running on node1", LONG, || {
        recorded_pid(&d, "node1", "web", "server").filter(|p| alive(*p))
    });
    d.eventually("web to answer from node1", LONG, || {
        (demo_answer(d.ports.demo[0]).as_deref() == Some("node1")).then_some(())
    });

    let mut agent = d.agents.remove("node1").expect("agent");
    signal(agent.id() as i32, libc::SIGTERM);
    agent.wait().expect("agent exits");
    // The guard detached: nothing is fenced, now or after the lease.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        alive(pid),
        "web's server survives a graceful --leave-running stop"
    );
    let log1 = std::fs::read_to_string(d.state.join("nodes/node1/agent.log")).expect("log");
    assert!(log1.contains("the agent detached"), "{log1}");

    d.start_agent("node1");
    d.wait_formed();
    d.eventually("the new agent to adopt web's server", LONG, || {
        let log = std::fs::read_to_string(d.state.join("nodes/node1/agent.log")).ok()?;
        log.contains("adopted a process left running").then_some(())
    });
    assert!(alive(pid), "the same process runs on");
    assert_eq!(recorded_pid(&d, "node1", "web", "server"), Some(pid));
    assert_eq!(demo_answer(d.ports.demo[0]).as_deref(), Some("node1"));
}
