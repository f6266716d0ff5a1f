//! The domain database's membership with real agent processes on loopback:
//! it follows the configuration's nodes (a node added by an apply becomes a
//! voter and runs groups; a node removed leaves, its groups move, and the
//! domain keeps committing), a witness keeps a two-node domain's quorum,
//! and `asctl watch --apply` converges on an editor's rename-write and
//! leaves the domain alone on a broken file. Every step polls with a
//! deadline.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{
    ASCTL, LiveDomain, Ports, alive, demo_answer, eventually, free_port, free_udp_port, placed_on,
    recorded_pid, text,
};

const LONG: Duration = Duration::from_secs(60);

/// The agent and demo ports of the nodes of one test domain, and the
/// loopback addresses of its domain line (127.A.B.n, A.B from the process
/// and heartbeat port so that concurrent domains do not share them).
struct Layout {
    agents: Vec<u16>,
    demo: Vec<u16>,
    heartbeat: u16,
    witness: Option<u16>,
    line_prefix: String,
}

impl Layout {
    fn new(nodes: usize, witness: bool) -> Layout {
        let heartbeat = free_udp_port();
        Layout {
            agents: (0..nodes).map(|_| free_port()).collect(),
            demo: (0..nodes).map(|_| free_port()).collect(),
            heartbeat,
            witness: witness.then(free_port),
            line_prefix: format!(
                "127.{}.{}",
                10 + (std::process::id() % 200),
                heartbeat % 250
            ),
        }
    }

    /// `Ports` for the live_support helpers (the first three nodes).
    fn ports(&self) -> Ports {
        Ports {
            agents: [
                self.agents[0],
                self.agents[1],
                self.agents[2 % self.agents.len()],
            ],
            demo: [self.demo[0], self.demo[1], self.demo[2 % self.demo.len()]],
        }
    }

    fn domain_yaml(&self) -> String {
        let witness = self
            .witness
            .map(|p| format!("  witness: \"127.0.0.1:{p}\"\n"))
            .unwrap_or_default();
        format!(
            "apiVersion: asctl/v1\nkind: Domain\nmetadata:\n  name: members\nspec:\n  \
             qualification: generic\n  heartbeat:\n    interval: 250ms\n    timeout: 2s\n    \
             port: {}\n{witness}",
            self.heartbeat
        )
    }

    /// Nodes `nodes` (1-based indexes) and one domain line between them.
    fn nodes_yaml(&self, nodes: &[usize]) -> String {
        let mut out = String::new();
        for &i in nodes {
            out.push_str(&format!(
                "---\napiVersion: asctl/v1\nkind: Node\nmetadata:\n  name: node{i}\nspec:\n  \
                 physical: true\n  os: {{name: linux, bits: 64}}\n  platform: x64\n  \
                 agent: {{address: \"127.0.0.1:{}\"}}\n",
                self.agents[i - 1]
            ));
        }
        out.push_str(&format!(
            "---\napiVersion: asctl/v1\nkind: NetworkLine\nmetadata:\n  name: lo\nspec:\n  \
             role: domain\n  subnet: {}.0/24\n  members:\n",
            self.line_prefix
        ));
        for &i in nodes {
            out.push_str(&format!("    node{i}: {}.{i}\n", self.line_prefix));
        }
        out
    }

    /// A group running one demo server on port `demo`, preferring `nodes`.
    fn group_yaml(name: &str, nodes: &[usize], demo: u16, extra: &str) -> String {
        let preferred: Vec<String> = nodes.iter().map(|i| format!("node{i}")).collect();
        format!(
            "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata:\n  name: {name}\nspec:\n  \
             preferredNodes: [{}]\n{extra}  processes:\n    - name: server\n      \
             command: [\"asctl\", \"demo-server\", \"--port\", \"{demo}\"]\n",
            preferred.join(", ")
        )
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

/// An editor's save: write a temporary file next to `path`, rename it over.
fn rename_write(path: &Path, text: &str) {
    let tmp = path.with_extension("yaml.swp~");
    std::fs::write(&tmp, text).expect("write temp");
    std::fs::rename(&tmp, path).expect("rename");
}

/// `role` of `member` in the domain's membership as `asctl status` shows it.
fn role(status: &serde_json::Value, member: &str) -> Option<String> {
    status["members"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == member)
        .and_then(|m| m["role"].as_str())
        .map(str::to_owned)
}

#[test]
fn membership_follows_the_configurations_nodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = Layout::new(4, false);
    // config4: the four nodes, used to prepare credentials for all of them;
    // config: what is applied, three nodes first.
    let config = dir.path().join("config");
    let config4 = dir.path().join("config4");
    for c in [&config, &config4] {
        std::fs::create_dir_all(c).expect("mkdir");
        write(c, "domain.yaml", &l.domain_yaml());
        write(
            c,
            "group-web.yaml",
            &Layout::group_yaml("web", &[1, 2, 3], l.demo[0], ""),
        );
        write(
            c,
            "group-api.yaml",
            &Layout::group_yaml("api", &[2, 3, 1], l.demo[1], ""),
        );
        write(
            c,
            "group-batch.yaml",
            &Layout::group_yaml("batch", &[3, 1], l.demo[2], ""),
        );
    }
    write(&config, "nodes.yaml", &l.nodes_yaml(&[1, 2, 3]));
    write(&config4, "nodes.yaml", &l.nodes_yaml(&[1, 2, 3, 4]));
    let mut d = LiveDomain::init(
        dir,
        config4.clone(),
        l.ports(),
        &["node1", "node2", "node3"],
    );
    // The founders are the three nodes of the configuration applied first;
    // node4 has no founders: it waits to be added.
    for n in ["node1", "node2", "node3", "node4"] {
        let p = d.state.join("nodes").join(n).join("agent.yaml");
        let yaml = std::fs::read_to_string(&p).expect("agent.yaml");
        let mut lines: Vec<String> = yaml
            .lines()
            .filter(|l| !l.starts_with("bootstrap:"))
            .map(str::to_owned)
            .collect();
        if n != "node4" {
            lines.push(format!(
                "bootstrap: {}",
                serde_json::to_string(&config.to_string_lossy()).expect("json")
            ));
        }
        std::fs::write(&p, lines.join("\n") + "\n").expect("agent.yaml");
    }
    d.config = config.clone();
    let cfg = config.to_string_lossy().into_owned();
    d.start();
    d.start_agent("node4");
    d.apply_path(Path::new(&cfg));
    assert_eq!(d.generation(), 1);
    let status = d.status_json().expect("status");
    assert_eq!(role(&status, "node4"), None, "{status:#}");
    for (i, node) in ["node1", "node2", "node3"].iter().enumerate() {
        assert_eq!(role(&status, node).as_deref(), Some("voter"), "{status:#}");
        let answer = eventually(&format!("group {i} online"), LONG, || {
            demo_answer(l.demo[i])
        });
        assert_eq!(&answer, node);
    }

    // Add node4: it joins as a learner, then becomes a voter, and the
    // domain sees it Up.
    write(&config, "nodes.yaml", &l.nodes_yaml(&[1, 2, 3, 4]));
    d.apply_path(Path::new(&cfg));
    assert_eq!(d.generation(), 2);
    d.nodes.push("node4".into());
    eventually("node4 to become a voter", LONG, || {
        let s = d.status_json()?;
        (role(&s, "node4").as_deref() == Some("voter")).then_some(())
    });
    d.wait_formed();
    // A group at home on node4 is placed and runs there.
    write(
        &config,
        "group-extra.yaml",
        &Layout::group_yaml("extra", &[4, 1], l.demo[3], ""),
    );
    d.apply_path(Path::new(&cfg));
    assert_eq!(d.generation(), 3);
    let answer = d.eventually("extra online", LONG, || demo_answer(l.demo[3]));
    assert_eq!(
        answer,
        "node4",
        "{:#}\n{}",
        d.status_json().unwrap_or_default(),
        d.agent_logs()
    );
    // node4's own agent answers with the committed state: it is a member.
    let out = d.asctl(&[
        "status",
        "--format",
        "json",
        "--endpoint",
        &format!("127.0.0.1:{}", l.agents[3]),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let s4: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(s4["generation"], 3, "{s4:#}");
    assert_eq!(s4["answeredBy"], "node4");

    // Remove node3: it leaves the membership, batch moves to node1, and the
    // domain keeps committing.
    write(&config, "nodes.yaml", &l.nodes_yaml(&[1, 2, 4]));
    write(
        &config,
        "group-web.yaml",
        &Layout::group_yaml("web", &[1, 2], l.demo[0], ""),
    );
    write(
        &config,
        "group-api.yaml",
        &Layout::group_yaml("api", &[2, 1], l.demo[1], ""),
    );
    write(
        &config,
        "group-batch.yaml",
        &Layout::group_yaml("batch", &[1], l.demo[2], ""),
    );
    d.apply_path(Path::new(&cfg));
    assert_eq!(d.generation(), 4);
    d.nodes.retain(|n| n != "node3");
    eventually("node3 to leave the membership", LONG, || {
        let s = d.status_json()?;
        let members: Vec<&str> = s["members"]
            .as_array()?
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        (members.len() == 3 && !members.contains(&"node3")).then_some(())
    });
    eventually("batch to run on node1", LONG, || {
        (demo_answer(l.demo[2]).as_deref() == Some("node1")).then_some(())
    });
    let s = d.status_json().expect("status");
    assert_eq!(placed_on(&s, "batch").as_deref(), Some("node1"), "{s:#}");
    assert!(s["nodes"].get("node3").is_none(), "{s:#}");
    for m in s["members"].as_array().expect("members") {
        assert_eq!(m["role"], "voter", "{s:#}");
    }

    // node3's agent still answers, with the copy of the domain it had when
    // it left (nothing is replicated to it any more). The CLI remembering it
    // as the member to ask first must not make every later read that copy:
    // the next apply would wait for reports node3 never sees.
    std::fs::write(
        d.state.join("last-member"),
        format!("127.0.0.1:{}", l.agents[2]),
    )
    .expect("last-member");

    // A further apply commits and converges without node3.
    write(
        &config,
        "group-web.yaml",
        &Layout::group_yaml("web", &[1, 2], l.demo[0], "").replace(
            &format!("\"{}\"]", l.demo[0]),
            &format!("\"{}\", \"--name\", \"web-v2\"]", l.demo[0]),
        ),
    );
    d.apply_path(Path::new(&cfg));
    assert_eq!(d.generation(), 5);
    eventually("web to restart with its new command", LONG, || {
        (demo_answer(l.demo[0]).as_deref() == Some("web-v2")).then_some(())
    });
    let s = d.status_json().expect("status");
    assert_eq!(s["generation"], 5, "{s:#}");
    assert_ne!(s["answeredBy"], "node3", "{s:#}");
    // Asked by name, node3 shows its own copy: it left at generation 4.
    let out = d.asctl(&[
        "status",
        "--format",
        "json",
        "--endpoint",
        &format!("127.0.0.1:{}", l.agents[2]),
    ]);
    let s3: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(s3["answeredBy"], "node3", "{s3:#}");
    assert_eq!(s3["generation"], 4, "{s3:#}");

    // node4's agent moves to another port: the configuration says so, the
    // agent restarts there, and the raft member follows (its record gets
    // the new address, so the leader replicates to it there again).
    let moved = free_port();
    let yaml4 = d.state.join("nodes/node4/agent.yaml");
    let text4 = std::fs::read_to_string(&yaml4).expect("agent.yaml");
    let old_listen = format!("listen: \"127.0.0.1:{}\"", l.agents[3]);
    assert!(text4.contains(&old_listen), "{text4}");
    let mut a4 = d.agents.remove("node4").expect("node4 runs");
    unsafe {
        libc::kill(a4.id() as i32, libc::SIGTERM);
    }
    eventually("node4's agent to stop", LONG, || {
        a4.try_wait().ok().flatten()
    });
    std::fs::write(
        &yaml4,
        text4.replace(&old_listen, &format!("listen: \"127.0.0.1:{moved}\"")),
    )
    .expect("agent.yaml");
    let mut l = l;
    l.agents[3] = moved;
    write(&config, "nodes.yaml", &l.nodes_yaml(&[1, 2, 4]));
    let out = d.asctl(&["apply", &cfg, "--auto-approve", "--timeout", "5s"]);
    assert_eq!(d.generation(), 6, "{}\n{}", text(&out), d.agent_logs());
    d.start_agent("node4");
    let member_addr = |s: &serde_json::Value, name: &str| {
        s["members"].as_array().and_then(|ms| {
            ms.iter()
                .find(|m| m["name"] == name)
                .and_then(|m| m["address"].as_str().map(str::to_owned))
        })
    };
    d.eventually(
        "node4's member record to move to its new address",
        LONG,
        || {
            let s = d.status_json()?;
            (member_addr(&s, "node4")? == format!("127.0.0.1:{moved}")).then_some(())
        },
    );
    // Reached there: node4 catches up with the domain and is Up again.
    d.eventually("node4 to catch up at its new address", LONG, || {
        let out = d.asctl(&[
            "status",
            "--format",
            "json",
            "--endpoint",
            &format!("127.0.0.1:{moved}"),
        ]);
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (s["generation"] == 6 && s["answeredBy"] == "node4").then_some(())
    });
    d.wait_formed();
    d.stop();
}

/// A domain of two nodes (with a witness or not), not started: web prefers
/// node1 (its spec gets `web_extra`), api node2.
fn two_nodes(witness: bool, web_extra: &str) -> (LiveDomain, Layout) {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = Layout::new(2, witness);
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir");
    write(&config, "domain.yaml", &l.domain_yaml());
    write(&config, "nodes.yaml", &l.nodes_yaml(&[1, 2]));
    let web = Layout::group_yaml("web", &[1, 2], l.demo[0], web_extra);
    write(&config, "group-web.yaml", &web);
    let api = Layout::group_yaml("api", &[2, 1], l.demo[1], "");
    write(&config, "group-api.yaml", &api);
    let d = LiveDomain::init(dir, config, l.ports(), &["node1", "node2"]);
    (d, l)
}

#[test]
fn a_witness_keeps_a_two_node_domain_committing_when_a_node_dies() {
    let (mut d, l) = two_nodes(true, "");
    let (config, cfg) = (d.config.clone(), d.config.to_string_lossy().into_owned());
    assert!(d.members.contains(&"witness".to_owned()), "{:?}", d.members);
    let witness_yaml = std::fs::read_to_string(d.state.join("nodes/witness/agent.yaml"))
        .expect("the witness's agent.yaml");
    assert!(witness_yaml.contains("witness: true"), "{witness_yaml}");
    d.start_agent("witness");
    d.start();
    let s = d.status_json().expect("status");
    assert_eq!(role(&s, "witness").as_deref(), Some("voter"), "{s:#}");
    assert_eq!(s["members"].as_array().map(Vec::len), Some(3), "{s:#}");

    d.apply_path(Path::new(&cfg));
    assert_eq!(
        eventually("web online", LONG, || demo_answer(l.demo[0])),
        "node1"
    );
    assert_eq!(
        eventually("api online", LONG, || demo_answer(l.demo[1])),
        "node2"
    );
    let s = d.status_json().expect("status");
    for (g, p) in s["placement"].as_object().expect("placement") {
        assert_ne!(p["node"], "witness", "{g} placed on the witness: {s:#}");
    }
    assert!(s["nodes"].get("witness").is_none(), "{s:#}");

    // node1 dies: node2 and the witness are a majority. web moves to node2.
    d.kill_node("node1");
    let moved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        eventually("web to move to node2", LONG, || {
            (demo_answer(l.demo[0]).as_deref() == Some("node2")).then_some(())
        })
    }));
    assert!(
        moved.is_ok(),
        "web did not move: {:#}\n{}",
        d.status_json().unwrap_or_default(),
        d.agent_logs()
    );
    let s = eventually("the domain to see node1 down", LONG, || {
        let s = d.status_json()?;
        (s["nodes"]["node1"]["state"] == "down" && s["leader"].is_string()).then_some(s)
    });
    assert_eq!(placed_on(&s, "web").as_deref(), Some("node2"), "{s:#}");
    assert_ne!(s["leader"], "node1", "{s:#}");

    // A new configuration still commits, and converges on the survivor.
    let api = config.join("group-api.yaml");
    let text_before = std::fs::read_to_string(&api).expect("read");
    std::fs::write(
        &api,
        text_before.replace(
            &format!("\"{}\"]", l.demo[1]),
            &format!("\"{}\", \"--name\", \"api-v2\"]", l.demo[1]),
        ),
    )
    .expect("write");
    d.apply_path(Path::new(&cfg));
    assert_eq!(d.generation(), 2);
    eventually("api to restart with its new command", LONG, || {
        (demo_answer(l.demo[1]).as_deref() == Some("api-v2")).then_some(())
    });
    d.stop();
}

#[test]
fn watch_applies_an_editors_save_and_leaves_the_domain_alone_on_a_broken_file() {
    let mut d = LiveDomain::prepare();
    d.start();
    let cfg = d.config.to_string_lossy().into_owned();
    d.apply_path(Path::new(&cfg));
    assert_eq!(d.generation(), 1);
    eventually("web online", LONG, || demo_answer(d.ports.demo[0]));

    let out_path = d.dir.path().join("watch.out");
    let err_path = d.dir.path().join("watch.err");
    let mut watch = WatchChild(
        Command::new(ASCTL)
            .args(["watch", &cfg, "--apply", "--timeout", "60s", "--state-dir"])
            .arg(&d.state)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).expect("out"))
            .stderr(std::fs::File::create(&err_path).expect("err"))
            .spawn()
            .expect("asctl watch"),
    );
    let output = || {
        format!(
            "--- watch stdout\n{}\n--- watch stderr\n{}",
            std::fs::read_to_string(&out_path).unwrap_or_default(),
            std::fs::read_to_string(&err_path).unwrap_or_default()
        )
    };
    // The first round plans against the domain: nothing to change.
    eventually("watch's first round", LONG, || {
        assert!(watch.0.try_wait().ok().flatten().is_none(), "{}", output());
        output().contains("No changes").then_some(())
    });

    // An editor's save (temporary file renamed over the original).
    let web = d.config.join("group-web.yaml");
    let original = std::fs::read_to_string(&web).expect("read");
    let port = d.ports.demo[0];
    let changed = original.replace(
        &format!("\"--port\", \"{port}\"]"),
        &format!("\"--port\", \"{port}\", \"--name\", \"watched\"]"),
    );
    assert_ne!(changed, original);
    rename_write(&web, &changed);
    eventually("web to run the saved command", LONG, || {
        (demo_answer(port).as_deref() == Some("watched")).then_some(())
    });
    assert_eq!(d.generation(), 2, "{}", output());
    eventually("watch to report the convergence", LONG, || {
        output().contains("Converged").then_some(())
    });

    // A broken file: watch says why, and the domain is left alone.
    rename_write(
        &web,
        "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: [name: web\n",
    );
    eventually("watch to report the broken file", LONG, || {
        output().contains("the domain is left alone").then_some(())
    });
    let out = output();
    assert!(
        out.contains("group-web.yaml"),
        "the finding names the file: {out}"
    );
    assert_eq!(d.generation(), 2, "{out}");
    assert_eq!(demo_answer(port).as_deref(), Some("watched"));
    assert!(
        watch.0.try_wait().ok().flatten().is_none(),
        "watch goes on after a broken file: {out}"
    );
    drop(watch);
    d.stop();
}

/// `asctl watch` as a child, killed when the test ends (pass or fail).
struct WatchChild(Child);

impl Drop for WatchChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Both nodes run `group`'s server at this instant (a second copy).
fn running_on_both(d: &LiveDomain, group: &str) -> bool {
    ["node1", "node2"]
        .iter()
        .all(|n| recorded_pid(d, n, group, "server").is_some_and(alive))
}

#[test]
fn two_nodes_without_a_witness_fail_over_by_local_takeover() {
    let (mut d, l) = two_nodes(false, "  failback: auto\n");
    d.start();
    d.apply();
    assert_eq!(
        d.eventually("web online", LONG, || demo_answer(l.demo[0])),
        "node1"
    );
    assert_eq!(
        d.eventually("api online", LONG, || demo_answer(l.demo[1])),
        "node2"
    );

    // node1 dies. Two voters cannot commit without it: node2 takes web over
    // on its own, after the timeout and the takeover wait.
    d.kill_node("node1");
    d.eventually("web to answer from node2", LONG, || {
        (demo_answer(l.demo[0]).as_deref() == Some("node2")).then_some(())
    });
    let s = d.status_json().expect("status from node2");
    assert_eq!(
        placed_on(&s, "web").as_deref(),
        Some("node1"),
        "nothing could be committed: {s:#}"
    );

    // node1 comes back with its stale placement (web on node1). It must not
    // start a second copy: it holds while node2 announces the takeover, the
    // leader adopts node2's copy, and only then does web fail back (auto),
    // stopped on node2 before it starts on node1.
    d.start_agent("node1");
    let deadline = std::time::Instant::now() + LONG;
    loop {
        assert!(
            !running_on_both(&d, "web"),
            "web runs on both nodes\n{}",
            d.agent_logs()
        );
        let s = d.status_json();
        let home = s.as_ref().is_some_and(|s| {
            placed_on(s, "web").as_deref() == Some("node1")
                && s["nodes"]["node1"]["state"] == "up"
                && s["nodes"]["node2"]["state"] == "up"
        });
        if home && demo_answer(l.demo[0]).as_deref() == Some("node1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "web did not fail back: {:#}\n{}",
            s.unwrap_or_default(),
            d.agent_logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log2 = std::fs::read_to_string(d.state.join("nodes/node2/agent.log")).expect("log");
    assert!(log2.contains("local takeover"), "{log2}");
    // api never moved.
    assert_eq!(demo_answer(l.demo[1]).as_deref(), Some("node2"));
    // Break before make, from the agents' own clocks (one machine): node1
    // started web again only after node2 had taken it offline.
    let node2_off = last_event(&d, "node2", "group offline", "group=web");
    let node1_on = last_event(&d, "node1", "process started", "group=web");
    assert!(
        node2_off.is_some() && node1_on > node2_off,
        "node1 started web at {node1_on:?}, node2 took it offline at {node2_off:?}\n{}",
        d.agent_logs()
    );
    d.stop();
}

/// The timestamp of the last line of `node`'s agent log with both `what`
/// and `field` (RFC 3339 UTC, so that strings compare in time order).
fn last_event(d: &LiveDomain, node: &str, what: &str, field: &str) -> Option<String> {
    let log = std::fs::read_to_string(d.state.join("nodes").join(node).join("agent.log")).ok()?;
    log.lines()
        .rev()
        .map(|l| anstream::adapter::strip_str(l).to_string())
        .find(|l| l.contains(what) && l.contains(field))
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
}
