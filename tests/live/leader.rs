//! A raft leader that stops answering (SIGSTOP: the kernel still accepts
//! its connections, nobody reads them — as a crashed machine, which answers
//! nothing, not even a reset). The survivors' reports that were on their way
//! to it are given up once raft names a new leader, and go to the new one:
//! none waits out the request timeout on the frozen leader, during which
//! the new leader would keep the survivor's last verdict (the frozen node
//! alive) and could not take the node down.

use std::time::{Duration, Instant};

use crate::support::LiveDomain;

/// The report sender's log of a delivery that failed (debug level).
const HELD: &str = "report not delivered";
/// The members' request timeout, which a held report would wait out.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn signal(d: &LiveDomain, node: &str, sig: i32) {
    let pid = d.agents[node].id() as i32;
    // SAFETY: a signal to an agent this test started.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn node_state(d: &LiveDomain, node: &str) -> Option<String> {
    let s = d.status_json()?;
    s.get("nodes")?
        .get(node)?
        .get("state")?
        .as_str()
        .map(str::to_owned)
}

fn log_of(d: &LiveDomain, node: &str) -> String {
    std::fs::read_to_string(d.state.join("nodes").join(node).join("agent.log")).unwrap_or_default()
}

#[test]
fn reports_held_by_a_frozen_leader_are_given_up_for_the_new_one() {
    let mut d = LiveDomain::prepare();
    for n in d.nodes.clone() {
        d.start_agent_env(
            &n,
            &[(
                "ASCTL_LOG",
                "info,openraft=warn,asctl::agent::daemon::feed=debug",
            )],
        );
    }
    d.wait_formed();
    d.apply();
    let leader_now = || d.status_json()?.get("leader")?.as_str().map(str::to_owned);
    // A leader that kept its place for 2 s (an election under load would
    // make the frozen node a follower, whose freeze holds no report). The
    // survivors report to it every second over kept-alive connections: the
    // first report after the freeze is held by it.
    let leader = d.eventually("a steady leader", Duration::from_secs(60), || {
        let before = leader_now()?;
        std::thread::sleep(Duration::from_secs(2));
        (leader_now()? == before).then_some(before)
    });
    let survivors: Vec<String> = d.nodes.iter().filter(|n| **n != leader).cloned().collect();
    let held_before: Vec<usize> = survivors
        .iter()
        .map(|n| log_of(&d, n).matches(HELD).count())
        .collect();
    let t0 = Instant::now();
    signal(&d, &leader, libc::SIGSTOP);
    let down = d.eventually(
        &format!("the domain to have the frozen leader {leader} down"),
        Duration::from_secs(40),
        || (node_state(&d, &leader).as_deref() == Some("down")).then(|| t0.elapsed()),
    );
    // Past the request timeout (plus a margin): a report held by the
    // frozen leader would have failed by now, and said so.
    std::thread::sleep((REQUEST_TIMEOUT + Duration::from_secs(2)).saturating_sub(t0.elapsed()));
    signal(&d, &leader, libc::SIGCONT);
    eprintln!("frozen leader {leader} down in the domain {down:?} after SIGSTOP");
    for (n, before) in survivors.iter().zip(held_before) {
        let log = log_of(&d, n);
        let timed_out: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(HELD))
            .skip(before)
            .filter(|l| l.contains("did not answer within 10s"))
            .collect();
        assert!(
            timed_out.is_empty(),
            "{n}'s report waited out the request timeout on the frozen leader \
             {leader}: {timed_out:?}\n{}",
            d.agent_logs()
        );
    }
}
