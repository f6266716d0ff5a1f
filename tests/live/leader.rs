//! A raft leader that stops answering (SIGSTOP: the kernel still accepts
//! its connections, nobody reads them — as a crashed machine, which answers
//! nothing, not even a reset). The new leader takes it down on its own
//! detector's verdict and the survivor's, without waiting for the survivor's
//! report that was on its way to the frozen leader when it froze.

use std::time::{Duration, Instant};

use crate::support::LiveDomain;

/// The heartbeat timeout of [`LiveDomain::prepare`].
const T: Duration = Duration::from_secs(4);
/// Detection (`T`), the takeover wait (about 0.5 s) and a margin for a
/// loaded machine: well below what a report held by the frozen leader costs
/// (the 10 s request timeout, or the new leader's `2T` of report freshness
/// counted from its election).
const BOUND: Duration = Duration::from_secs(8);

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

#[test]
fn a_frozen_leader_is_taken_down_without_the_reports_it_holds() {
    let d = LiveDomain::applied();
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
    let t0 = Instant::now();
    signal(&d, &leader, libc::SIGSTOP);
    let down = d.eventually(
        &format!("the domain to have the frozen leader {leader} down"),
        Duration::from_secs(40),
        || (node_state(&d, &leader).as_deref() == Some("down")).then(|| t0.elapsed()),
    );
    signal(&d, &leader, libc::SIGCONT);
    eprintln!("frozen leader {leader} down in the domain {down:?} after SIGSTOP");
    assert!(
        down >= T,
        "{leader} down {down:?} after the freeze, before the heartbeat timeout"
    );
    assert!(
        down < BOUND,
        "{leader} down only {down:?} after the freeze: the new leader waited for a \
         report held by the frozen one\n{}",
        d.agent_logs()
    );
}
