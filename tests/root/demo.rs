//! The README's walk-through of a domain in network namespaces, run as a
//! user would: `scripts/netns-domain.sh up`, crash the node running `web`,
//! watch the group and its address move, boot the node, watch it fail
//! back; write records to `db`, crash the node running it, find every
//! record on the survivor; `down`. Root only: ignored unless run with `--include-ignored`.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

const VIP: &str = "10.220.1.100";

struct Demo {
    dir: tempfile::TempDir,
}

impl Demo {
    /// The walk-through's state on a tmpfs of its own. The agents fail-stop
    /// by design when a raft log write does not return within 3 s, and a
    /// host disk shared with the storage tests' loop devices stalls that
    /// long: the walk-through is no test of the host's disk.
    fn new() -> Demo {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_str().expect("utf-8 path");
        crate::storage_support::sh("mount", &["-t", "tmpfs", "-o", "size=256m", "tmpfs", path]);
        Demo { dir }
    }

    fn script(&self, args: &[&str]) -> Output {
        Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/netns-domain.sh"
        ))
        .args(args)
        .env("ASCTL", env!("CARGO_BIN_EXE_asctl"))
        .env("ASCTL_NETNS_DIR", self.dir.path().join("state"))
        .output()
        .expect("run scripts/netns-domain.sh")
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for n in ["node1", "node2", "node3"] {
            let p = self.dir.path().join(format!("state/nodes/{n}/agent.log"));
            let t = std::fs::read_to_string(p).unwrap_or_default();
            let tail: Vec<&str> = t.lines().rev().take(30).collect();
            out += &format!("--- {n}\n");
            for l in tail.into_iter().rev() {
                out += l;
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.script(&["down"]);
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The nodes whose namespace holds the service address.
fn holders() -> Vec<String> {
    ["node1", "node2", "node3"]
        .into_iter()
        .filter(|n| {
            let out = crate::support::ip_out(&format!("-n asd-{n} -o addr show"));
            out.contains(&format!(" {VIP}/"))
        })
        .map(str::to_owned)
        .collect()
}

/// What the service answers from this namespace (the script puts it on d1).
fn answer() -> Option<String> {
    use std::io::{Read, Write};
    let addr = format!("{VIP}:8080").parse().expect("address");
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut t = String::new();
    s.read_to_string(&mut t).ok()?;
    Some(t.split("\r\n\r\n").nth(1)?.trim().to_owned())
}

fn until<T>(what: &str, demo: &Demo, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            demo.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs root: run with --include-ignored"]
fn a_crashed_node_s_groups_move_with_their_address_and_data() {
    crate::support::require_root();
    let demo = Demo::new();
    let up = demo.script(&["up"]);
    assert!(up.status.success(), "{}\n{}", text(&up), demo.logs());
    assert!(text(&up).contains("web: online on node1"), "{}", text(&up));
    until("web to answer from node1", &demo, || {
        (answer().as_deref() == Some("node1")).then_some(())
    });
    assert_eq!(holders(), ["node1"]);

    let crash = demo.script(&["crash", "node1"]);
    assert!(crash.status.success(), "{}", text(&crash));
    until("web to answer from node2", &demo, || {
        (answer().as_deref() == Some("node2")).then_some(())
    });
    assert_eq!(holders(), ["node2"], "the address moved with the group");
    let status = demo.script(&["status"]);
    let st = text(&status);
    assert!(status.status.success(), "{st}");
    assert!(
        st.lines()
            .any(|l| l.starts_with("node1") && l.contains("down")),
        "{st}"
    );
    assert!(
        st.lines()
            .any(|l| l.starts_with("web") && l.contains("node2") && l.contains("online")),
        "{st}"
    );

    let boot = demo.script(&["boot", "node1"]);
    assert!(boot.status.success(), "{}", text(&boot));
    until("web to fail back to node1", &demo, || {
        (answer().as_deref() == Some("node1") && holders() == ["node1"]).then_some(())
    });

    // db takes its data along: records acknowledged on node2 are on node3
    // after node2's crash, its file system mounted on one node only.
    for (record, ack) in [("one", "ack 1"), ("two", "ack 2")] {
        let w = demo.script(&["write", record]);
        assert!(
            text(&w).contains(&format!("db answered: {ack}")),
            "{}\n{}",
            text(&w),
            demo.logs()
        );
    }
    let crash = demo.script(&["crash", "node2"]);
    assert!(crash.status.success(), "{}", text(&crash));
    until("db to serve from node3", &demo, || {
        let w = demo.script(&["write", "three"]);
        text(&w).contains("db answered: ack 3").then_some(())
    });
    let where_ = text(&demo.script(&["where"]));
    let mounted: Vec<&str> = where_
        .lines()
        .filter(|l| l.starts_with("db's file system is mounted on node"))
        .collect();
    assert_eq!(mounted.len(), 1, "{where_}");
    assert!(
        mounted[0].starts_with("db's file system is mounted on node3: 3 records"),
        "{where_}"
    );

    let down = demo.script(&["down"]);
    assert!(down.status.success(), "{}", text(&down));
    let left = crate::support::ip_out("netns list");
    assert!(!left.contains("asd-"), "namespaces left behind: {left}");
}
