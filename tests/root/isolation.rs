//! Isolation in network namespaces: a switch namespace `sw` holds the
//! bridge of domain line `d1` and the router address the nodes probe; `a`
//! and `b` also share a direct verification line `v`. Root only.

use crate::support::agent::{Agent, LIMIT, holds_for};
use crate::support::{Netns, bridge_port, veth, wait_for};
use asctl::agent::isolation::Method;
use asctl::model::Config;
use asctl::wire::PeerState;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_millis(500);

fn config(subnet: u8) -> Config {
    let yaml = format!(
        "apiVersion: asctl/v1\nkind: Domain\nmetadata: {{name: isotest}}\nspec:\n  qualification: generic\n  \
         heartbeat: {{interval: 100ms, timeout: 500ms, port: 7601}}\n  \
         isolation: {{addresses: [10.{subnet}.1.254], response: offline}}\n\
         ---\napiVersion: asctl/v1\nkind: Node\nmetadata: {{name: a}}\nspec: {{physical: true}}\n\
         ---\napiVersion: asctl/v1\nkind: Node\nmetadata: {{name: b}}\nspec: {{physical: true}}\n\
         ---\napiVersion: asctl/v1\nkind: NetworkLine\nmetadata: {{name: d1}}\nspec:\n  role: domain\n  \
         subnet: 10.{subnet}.1.0/24\n  members: {{a: 10.{subnet}.1.1, b: 10.{subnet}.1.2}}\n\
         ---\napiVersion: asctl/v1\nkind: NetworkLine\nmetadata: {{name: v}}\nspec:\n  role: verification\n  \
         subnet: 10.{subnet}.3.0/24\n  members: {{a: 10.{subnet}.3.1, b: 10.{subnet}.3.2}}\n"
    );
    let loaded = asctl::load::load_texts([("domain.yaml", yaml.as_bytes())]);
    assert!(loaded.config.domain.is_some(), "{:#?}", loaded.findings);
    loaded.config
}

struct Lab {
    sw: Option<Netns>,
    a: Netns,
    b: Netns,
}

fn lab(tag: &str, subnet: u8) -> Lab {
    let sw = Netns::new(&format!("{tag}sw"));
    let a = Netns::new(&format!("{tag}a"));
    let b = Netns::new(&format!("{tag}b"));
    sw.ip("link add sw0 type bridge");
    sw.ip(&format!("addr add 10.{subnet}.1.254/24 dev sw0"));
    sw.ip("link set sw0 up");
    bridge_port(&sw, "sw0", "pa", &a, "d1", &format!("10.{subnet}.1.1/24"));
    bridge_port(&sw, "sw0", "pb", &b, "d1", &format!("10.{subnet}.1.2/24"));
    veth(
        &a,
        "v",
        &format!("10.{subnet}.3.1/24"),
        &b,
        "v",
        &format!("10.{subnet}.3.2/24"),
    );
    // `a` pings through an unprivileged datagram ICMP socket, `b` (root,
    // default ping_group_range "1 0") through a raw one: both methods run.
    a.sysctl("net.ipv4.ping_group_range", "0 2147483647");
    Lab { sw: Some(sw), a, b }
}

#[test]
#[ignore = "needs root: run with --include-ignored"]
fn a_node_cut_from_everything_is_isolated_and_its_peer_is_not() {
    crate::support::require_root();
    let subnet = 205;
    let l = lab("iso", subnet);
    let cfg = config(subnet);
    let a = Agent::start(&l.a, &cfg, "a");
    let b = Agent::start(&l.b, &cfg, "b");
    a.wait_lines_up("b", &["d1", "v"]);
    b.wait_lines_up("a", &["d1", "v"]);
    assert_eq!(*a.method.lock().expect("m"), Some(Method::IcmpDatagram));
    assert_eq!(*b.method.lock().expect("m"), Some(Method::IcmpRaw));
    holds_for("nobody isolated while all is well", 3 * TIMEOUT, || {
        !a.isolated() && !b.isolated()
    });

    // Pull both of a's cables.
    l.a.ip("link set d1 down");
    l.a.ip("link set v down");
    let t = wait_for("a isolated", LIMIT, || a.isolated());
    eprintln!("a isolated after {t:?}");
    assert_eq!(a.peer("b"), Some(PeerState::Failed));
    wait_for("b sees a failed", LIMIT, || {
        b.peer("a") == Some(PeerState::Failed)
    });
    holds_for("b reaches the router: not isolated", 3 * TIMEOUT, || {
        !b.isolated()
    });
    assert!(
        b.metrics.render_prometheus().contains("asctl_isolated 0"),
        "b's metrics"
    );
    assert!(a.metrics.render_prometheus().contains("asctl_isolated 1"));

    // Cables back: no longer isolated.
    l.a.ip("link set d1 up");
    l.a.ip("link set v up");
    wait_for("a rejoins", LIMIT, || {
        !a.isolated() && a.peer("b") == Some(PeerState::Up)
    });
}

#[test]
#[ignore = "needs root: run with --include-ignored"]
fn with_the_router_gone_the_verification_line_holds_off_isolation_until_it_goes_too() {
    crate::support::require_root();
    let subnet = 206;
    let mut l = lab("isr", subnet);
    let cfg = config(subnet);
    let a = Agent::start(&l.a, &cfg, "a");
    let b = Agent::start(&l.b, &cfg, "b");
    a.wait_lines_up("b", &["d1", "v"]);
    b.wait_lines_up("a", &["d1", "v"]);

    // The switch and router namespace disappears: d1 and the isolation
    // address are gone for both nodes, but they still hear each other on v.
    drop(l.sw.take());
    wait_for("b suspected at a", LIMIT, || {
        a.peer("b") == Some(PeerState::Suspected)
    });
    holds_for("peers alive on v: nobody isolated", 3 * TIMEOUT, || {
        !a.isolated() && !b.isolated()
    });

    // Then the verification line: each node has lost everything.
    l.a.ip("link set v down");
    let t = wait_for("both isolated", LIMIT, || a.isolated() && b.isolated());
    eprintln!("both isolated {t:?} after the last line went down");
    assert_eq!(a.peer("b"), Some(PeerState::Failed));
    assert_eq!(b.peer("a"), Some(PeerState::Failed));
}
