//! A peer that comes back is no one-way link: two nodes without a witness,
//! a domain line and a verification line on loopback. node2 runs `db`;
//! node1 dies (kill -9, long enough for node2 to declare it failed) and
//! comes back, several times. The returning agent's first verification
//! requests reach node2 before it has answered any of node2's — for a
//! moment, exactly what a one-way cut looks like from node2 — and node2
//! must not take that for one: it never fences, never writes its fencing
//! journal, and `db`'s process on node2 is the same one throughout.

use std::path::Path;
use std::time::Duration;

use crate::support::{LiveDomain, Ports, alive, free_port, free_udp_port, recorded_pid};

const LONG: Duration = Duration::from_secs(60);
/// node1's crashes and returns: each one is a chance for the false alarm.
const RETURNS: usize = 3;

/// The domain: `db` on node2 only, the heartbeat timeout 2 s.
fn domain() -> LiveDomain {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir");
    let agents = [free_port(), free_port()];
    let demo = free_port();
    let heartbeat = free_udp_port();
    // Loopback subnets of this process and heartbeat port, apart from the
    // other live tests' (127.0.x: the quickstart; 127.10–209.x: membership).
    let domain_net = format!("127.{}.{}", 210 + std::process::id() % 20, heartbeat % 250);
    let verify_net = format!("127.{}.{}", 230 + std::process::id() % 20, heartbeat % 250);
    let mut yaml = format!(
        "apiVersion: asctl/v1\nkind: Domain\nmetadata:\n  name: returning\nspec:\n  \
         qualification: generic\n  heartbeat:\n    interval: 500ms\n    timeout: 2s\n    \
         port: {heartbeat}\n"
    );
    for (i, port) in agents.iter().enumerate() {
        yaml.push_str(&format!(
            "---\napiVersion: asctl/v1\nkind: Node\nmetadata:\n  name: node{}\nspec:\n  \
             physical: true\n  os: {{name: linux, bits: 64}}\n  platform: x64\n  \
             agent: {{address: \"127.0.0.1:{port}\"}}\n",
            i + 1
        ));
    }
    for (name, role, net) in [
        ("lo", "domain", &domain_net),
        ("lo-v", "verification", &verify_net),
    ] {
        yaml.push_str(&format!(
            "---\napiVersion: asctl/v1\nkind: NetworkLine\nmetadata:\n  name: {name}\nspec:\n  \
             role: {role}\n  subnet: {net}.0/24\n  members:\n    node1: {net}.1\n    \
             node2: {net}.2\n"
        ));
    }
    yaml.push_str(&format!(
        "---\napiVersion: asctl/v1\nkind: ResourceGroup\nmetadata:\n  name: db\nspec:\n  \
         preferredNodes: [node2]\n  processes:\n    - name: server\n      \
         command: [\"asctl\", \"demo-server\", \"--port\", \"{demo}\"]\n"
    ));
    std::fs::write(config.join("domain.yaml"), yaml).expect("write");
    let ports = Ports {
        agents: [agents[0], agents[1], agents[1]],
        demo: [demo, demo, demo],
    };
    LiveDomain::init(dir, config, ports, &["node1", "node2"])
}

/// How many lines of `node`'s agent log contain `what`.
fn count(d: &LiveDomain, node: &str, what: &str) -> usize {
    let log = d.state.join("nodes").join(node).join("agent.log");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(what))
        .count()
}

fn journal(d: &LiveDomain, node: &str) -> String {
    let path = d.state.join("nodes").join(node).join("data/fencing.jsonl");
    std::fs::read_to_string(Path::new(&path)).unwrap_or_default()
}

#[test]
fn a_returning_peer_does_not_make_the_survivor_of_two_fence_itself() {
    let mut d = domain();
    d.start();
    let out = d.apply();
    assert!(out.status.success(), "apply: {out:?}");
    let pid = d.eventually("db online on node2", LONG, || {
        recorded_pid(&d, "node2", "db", "server").filter(|p| alive(*p))
    });
    for round in 1..=RETURNS {
        let failed = count(&d, "node2", "peer failed");
        let answers = count(&d, "node2", "answers verification requests again");
        d.kill_node("node1");
        // node1 silent on every line, verification included: Failed.
        d.eventually(
            &format!("round {round}: node1 failed at node2"),
            LONG,
            || (count(&d, "node2", "peer failed") > failed).then_some(()),
        );
        d.start_agent("node1");
        // Its new run is heard, and it answers node2's requests again.
        d.eventually(&format!("round {round}: node1 answers node2"), LONG, || {
            (count(&d, "node2", "answers verification requests again") > answers).then_some(())
        });
        d.wait_formed();
        assert_eq!(
            count(&d, "node2", "does not answer this node's"),
            0,
            "round {round}: node2 took node1's return for a one-way cut\n{}",
            d.agent_logs()
        );
        assert_eq!(
            journal(&d, "node2"),
            "",
            "round {round}: node2 fenced itself\n{}",
            d.agent_logs()
        );
        assert_eq!(
            recorded_pid(&d, "node2", "db", "server"),
            Some(pid),
            "round {round}: db was restarted on node2\n{}",
            d.agent_logs()
        );
        assert!(alive(pid), "round {round}: db's server on node2 is gone");
    }
    d.stop();
}
