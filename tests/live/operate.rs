//! Operating a live loopback domain: `plan --fail` against the live
//! placement, and the CLI's failover between members (a frozen or dead
//! member costs a fraction of a second, and the member that answered is
//! asked first next time).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{ASCTL, LiveDomain, Owned, alive, log_text, text};

const LONG: Duration = Duration::from_secs(90);
/// Longer than `up` may take to give up by itself (its `--timeout`, here
/// the default 60 s, to form and again to converge), so that a slow
/// bring-up ends in `up`'s own error rather than in the test's timeout.
const UP_WAIT: Duration = Duration::from_secs(150);

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
    let mut d = LiveDomain::applied();
    let cfg = d.config.to_string_lossy().into_owned();

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
    let agents = d.ports.agents;
    let endpoint = |node: &str| {
        let i: usize = node.trim_start_matches("node").parse().expect("nodeN");
        format!("127.0.0.1:{}", agents[i - 1])
    };
    // Whoever answers (the first endpoint, or under load a hedged other).
    let (first, _) = answered_by(&d);

    // That member's agent frozen: it accepts connections and never
    // answers. Another member answers within the hedge delay, not the 10 s
    // request timeout, and is remembered.
    signal(&d, &first, libc::SIGSTOP);
    let (by, took) = answered_by(&d);
    assert_ne!(by, first);
    assert!(took < Duration::from_secs(5), "status took {took:?}");
    let remembered = std::fs::read_to_string(&memory).expect("the answering member is remembered");
    assert_eq!(remembered, endpoint(&by));

    // The remembered member dies (connection refused): the others answer.
    signal(&d, &first, libc::SIGCONT);
    d.kill9(&by);
    let (other, took) = answered_by(&d);
    assert_ne!(other, by);
    assert!(took < Duration::from_secs(5), "status took {took:?}");
    let remembered = std::fs::read_to_string(&memory).expect("remembered");
    assert_eq!(remembered, endpoint(&other));
    d.stop();
}

fn up_logged(d: &LiveDomain, log: &std::path::Path) -> Owned {
    let out = std::fs::File::create(log).expect("log");
    Owned(Some(
        Command::new(ASCTL)
            .arg("up")
            .arg(&d.config)
            .arg("--state-dir")
            .arg(&d.state)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("asctl up"),
    ))
}

/// Waits until `up`'s output satisfies `said`. Fails at once when `up`
/// exits meanwhile, and on either failure shows `up`'s output and every
/// agent's log: a bring-up that failed says why there, not in a timeout.
fn until_up_says(
    d: &LiveDomain,
    up: &mut Owned,
    log: &std::path::Path,
    what: &str,
    said: impl Fn(&str) -> bool,
) {
    let outcome = crate::support::poll(UP_WAIT, || {
        if said(&log_text(log)) {
            return Some(Ok(()));
        }
        let exited = up.0.as_mut()?.try_wait().ok().flatten()?;
        Some(Err(format!("up exited ({exited}) before {what}")))
    });
    let failure = match outcome {
        Some(Ok(())) => return,
        Some(Err(e)) => e,
        None => format!("timed out after {UP_WAIT:?} waiting for {what}"),
    };
    panic!(
        "{failure}\n--- up's output\n{}\n{}",
        log_text(log),
        d.agent_logs()
    );
}

fn agent_pid(d: &LiveDomain, node: &str) -> i32 {
    let path = d.state.join("nodes").join(node).join("agent.pid");
    std::fs::read_to_string(path)
        .expect("agent.pid")
        .trim()
        .parse()
        .expect("a pid")
}

/// `up` supervises its domain: a second `up` on the same state directory
/// refuses without touching the running domain's files, and an agent
/// killed under `up` is reported with its signal and started again.
#[test]
fn up_refuses_a_second_up_and_restarts_a_killed_agent() {
    let d = LiveDomain::prepare();
    let log = d.dir.path().join("up.log");
    let mut up = up_logged(&d, &log);
    until_up_says(&d, &mut up, &log, "up to bring the domain up", |l| {
        l.contains("The domain runs")
    });
    let nodes = ["node1", "node2", "node3"];
    let pids: Vec<i32> = nodes.iter().map(|n| agent_pid(&d, n)).collect();
    let log_len = |n: &str| {
        std::fs::metadata(d.state.join("nodes").join(n).join("agent.log"))
            .expect("agent.log")
            .len()
    };
    let lens: Vec<u64> = nodes.iter().map(|n| log_len(n)).collect();

    let second = Command::new(ASCTL)
        .arg("up")
        .arg(&d.config)
        .arg("--state-dir")
        .arg(&d.state)
        .stdin(Stdio::null())
        .output()
        .expect("second up");
    let said = text(&second);
    assert_eq!(second.status.code(), Some(2), "{said}");
    assert!(said.contains("is already running"), "{said}");
    assert!(said.contains("asctl status --state-dir"), "{said}");
    assert!(!said.contains("Started the agent"), "{said}");
    assert_eq!(
        up.0.as_mut().unwrap().try_wait().unwrap(),
        None,
        "the first up runs on"
    );
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(
            agent_pid(&d, n),
            pids[i],
            "{n}'s agent.pid was not rewritten"
        );
        assert!(alive(pids[i]), "{n}'s agent runs on");
        assert!(log_len(n) >= lens[i], "{n}'s agent.log was not truncated");
    }
    let out = d.asctl(&["status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("generation 1"),
        "{}",
        text(&out)
    );

    // kill -9 node2's agent: reported with its signal, restarted by up.
    // SAFETY: a signal to an agent this test's `up` started.
    unsafe {
        libc::kill(pids[1], libc::SIGKILL);
    }
    until_up_says(&d, &mut up, &log, "up to report and restart node2", |l| {
        l.contains("the agent of node2 was killed by SIGKILL (signal 9)")
            && l.contains("Restarted the agent of node2")
    });
    let restarted = agent_pid(&d, "node2");
    assert_ne!(restarted, pids[1]);
    assert!(alive(restarted));
    d.wait_formed();

    up.signal(libc::SIGINT);
    let status = up.wait(LONG).expect("up exits on Ctrl-C");
    let l = log_text(&log);
    assert!(status.success(), "{l}");
    assert!(l.contains("node2 stopped"), "{l}");
    for pid in [pids[0], restarted, pids[2]] {
        assert!(!alive(pid), "agent {pid} left running\n{l}");
    }
}
