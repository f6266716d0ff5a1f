//! Self-fencing in the domain's history: a node frozen (SIGSTOP) while it
//! runs a group is fenced by its lease guard while it cannot commit
//! anything; back in contact, it submits the fence from its journal, and
//! `asctl events --node` shows it once, at the time it happened, with its
//! cause — next to the leader's own "node lost".

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::{LiveDomain, text};

const LONG: Duration = Duration::from_secs(60);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

fn node_of(d: &LiveDomain, group: &str) -> Option<String> {
    let s = d.status_json()?;
    Some(s["placement"][group]["node"].as_str()?.to_owned())
}

fn node_events(d: &LiveDomain, node: &str) -> Vec<Value> {
    let out = d.asctl(&["events", "--node", node, "--format", "json"]);
    assert!(out.status.success(), "events: {}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("events json");
    v["events"].as_array().expect("events").clone()
}

fn self_fencings(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| {
            e["kind"] == "fencing"
                && e["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("fenced itself"))
        })
        .cloned()
        .collect()
}

fn signal(d: &LiveDomain, node: &str, sig: i32) {
    let pid = d.agents[node].id() as i32;
    // SAFETY: a signal to an agent this test started.
    unsafe {
        libc::kill(pid, sig);
    }
}

#[test]
fn a_frozen_node_s_fence_reaches_the_history_once_it_is_back() {
    let mut d = LiveDomain::applied();
    d.eventually("web on node1", LONG, || {
        (node_of(&d, "web").as_deref() == Some("node1")).then_some(())
    });
    assert!(self_fencings(&node_events(&d, "node1")).is_empty());

    let frozen_at = now_ms();
    signal(&d, "node1", libc::SIGSTOP);
    // The others declare node1 lost and move web; node1's guard has fenced
    // it by then (its lease is shorter than the others' wait).
    d.eventually("web to leave the frozen node1", LONG, || {
        node_of(&d, "web").filter(|n| n != "node1")
    });
    let woken_at = now_ms();
    signal(&d, "node1", libc::SIGCONT);

    let fence = d.eventually("node1's fence in the history", LONG, || {
        self_fencings(&node_events(&d, "node1")).pop()
    });
    let detail = fence["detail"].as_str().expect("detail");
    assert!(detail.contains("took web offline"), "{fence}");
    assert!(
        detail.contains("lease") || detail.contains("frozen"),
        "the cause is named: {fence}"
    );
    // At the time of the fence (while frozen), not when it was recorded.
    let at = fence["atMs"].as_u64().expect("atMs");
    assert!(
        (frozen_at..=woken_at + 1_000).contains(&at),
        "fenced at {at}, frozen {frozen_at}..{woken_at}: {fence}"
    );
    let events = node_events(&d, "node1");
    assert!(
        events.iter().any(|e| e["kind"] == "nodeLost"),
        "the leader's own record stays: {events:?}"
    );

    // Submitted once: a restarted agent (its journal still holds the entry)
    // adds nothing, and neither do the reports that follow.
    d.kill9("node1");
    d.start_agent("node1");
    d.wait_formed();
    std::thread::sleep(Duration::from_secs(3));
    let fences = self_fencings(&node_events(&d, "node1"));
    assert_eq!(fences.len(), 1, "{fences:?}\n{}", d.agent_logs());
    let human = d.asctl(&["events", "--node", "node1"]);
    let listing = String::from_utf8_lossy(&human.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.contains("fencing") && l.contains("node1 fenced itself")),
        "{listing}"
    );
    d.stop();
}
