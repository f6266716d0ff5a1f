//! Three real agent processes on loopback, driven through the CLI: apply,
//! plan, saved plans, restarts, removals, refusals. One scenario per domain
//! (starting agents is the slow part), each step polling with a deadline.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{
    ASCTL, LiveDomain, Owned, alive, demo_answer, eventually, listener_pid, processes_mentioning,
    recorded_pid, text,
};
use asctl::load::{Input, load};
use asctl::model::Name;
use asctl::plan::{Health, NodeState, Placement, place};

const LONG: Duration = Duration::from_secs(60);

/// Where `place()` puts each group of the configuration with every node Up.
fn expected_placement(config: &std::path::Path) -> BTreeMap<String, String> {
    let loaded = load(&[Input::Path(config.to_owned())]).expect("loads");
    let health: Health = ["node1", "node2", "node3"]
        .iter()
        .map(|n| (n.parse::<Name>().expect("name"), NodeState::Up))
        .collect();
    place(&loaded.config, &health, &Placement::new())
        .into_iter()
        .filter_map(|(g, p)| Some((g.to_string(), p.node?.to_string())))
        .collect()
}

fn port_of(d: &LiveDomain, group: &str) -> u16 {
    match group {
        "web" => d.ports.demo[0],
        "api" => d.ports.demo[1],
        "batch" => d.ports.demo[2],
        other => panic!("no port for {other}"),
    }
}

#[test]
fn a_three_node_domain_converges_and_keeps_its_state() {
    let mut d = LiveDomain::prepare();
    d.start();
    let cfg = d.config.to_string_lossy().into_owned();

    // First apply: a diff against the empty domain.
    let out = d.apply();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Converged"));
    let expected = expected_placement(&d.config);
    assert_eq!(expected.len(), 3);
    for (group, node) in &expected {
        let port = port_of(&d, group);
        let answer = eventually(&format!("{group} to answer"), LONG, || demo_answer(port));
        assert_eq!(&answer, node, "group {group} runs where place() says");
    }
    assert_eq!(d.generation(), 1);

    // Applying the same configuration again changes nothing.
    let out = d.asctl(&["plan", &cfg, "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("No changes"));
    let out = d.asctl(&["apply", &cfg, "--auto-approve"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(d.generation(), 1, "a second apply commits nothing");

    // Change web's command: exactly that field, and a restart on node1.
    let web = d.config.join("group-web.yaml");
    let original = std::fs::read_to_string(&web).expect("read");
    let port = d.ports.demo[0].to_string();
    let changed = original.replace(
        &format!("[\"asctl\", \"demo-server\", \"--port\", \"{port}\"]"),
        &format!("[\"asctl\", \"demo-server\", \"--port\", \"{port}\", \"--name\", \"node1-v2\"]"),
    );
    assert_ne!(changed, original, "the command was rewritten");
    std::fs::write(&web, &changed).expect("write");
    let out = d.asctl(&["plan", &cfg, "--detailed-exitcode", "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan json");
    let changes = plan["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{plan:#}");
    assert_eq!(changes[0]["kind"], "ResourceGroup");
    assert_eq!(changes[0]["name"], "web");
    let fields = changes[0]["fields"].as_array().expect("fields");
    assert_eq!(fields.len(), 1, "{plan:#}");
    assert_eq!(fields[0]["path"], "spec.processes[0].command");
    let human = d.asctl(&["plan", &cfg]);
    let human = String::from_utf8_lossy(&human.stdout).into_owned();
    assert!(human.contains("restart on node1"), "{human}");

    // Save the plan, apply it, and see the new process answer.
    let saved = d.dir.path().join("plan.json");
    let saved_s = saved.to_string_lossy().into_owned();
    let out = d.asctl(&["plan", &cfg, "-o", &saved_s]);
    assert!(out.status.success(), "{}", text(&out));
    let out = d.asctl(&["apply", &saved_s, "--auto-approve", "--timeout", "60s"]);
    assert!(
        out.status.success(),
        "apply saved: {}\n{}",
        text(&out),
        d.agent_logs()
    );
    eventually("web to restart with the new command", LONG, || {
        (demo_answer(d.ports.demo[0]).as_deref() == Some("node1-v2")).then_some(())
    });
    assert_eq!(d.generation(), 2);

    // The saved plan is now stale: refused, and nothing changes.
    let out = d.asctl(&["apply", &saved_s, "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("generation"),
        "the refusal in the one error style: {}",
        text(&out)
    );
    assert_eq!(d.generation(), 2);
    let out = d.asctl(&["plan", &cfg, "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Without a terminal and without --auto-approve, apply refuses.
    std::fs::write(&web, &original).expect("write");
    let out = d.asctl(&["apply", &cfg]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--auto-approve"),
        "{}",
        text(&out)
    );
    assert_eq!(d.generation(), 2);
    std::fs::write(&web, &changed).expect("write");

    // kill -9 an agent and start it again: the state is intact and the group
    // comes back (its process was adopted or restarted), from node1's own
    // process; the other nodes' groups keep their processes.
    let others = |d: &LiveDomain| {
        [("node2", "api", "server"), ("node3", "batch", "worker")]
            .map(|(n, g, p)| recorded_pid(d, n, g, p).unwrap_or_else(|| panic!("{g} runs on {n}")))
    };
    let others_before = others(&d);
    d.kill9("node1");
    d.start_agent("node1");
    d.wait_formed();
    assert_eq!(d.generation(), 2, "the generation survived the restart");
    let out = d.asctl(&[
        "plan",
        &cfg,
        "--detailed-exitcode",
        "--endpoint",
        &format!("127.0.0.1:{}", d.ports.agents[0]),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the restarted member has the config: {}",
        text(&out)
    );
    eventually("web to answer after the restart", LONG, || {
        (demo_answer(d.ports.demo[0]).as_deref() == Some("node1-v2")).then_some(())
    });
    // The answer could come from any process started with that name: it is
    // node1's, the one its driver recorded, that listens on web's port.
    let web_pid = recorded_pid(&d, "node1", "web", "server").expect("node1 records web");
    assert!(alive(web_pid));
    assert_eq!(
        listener_pid(d.ports.demo[0]),
        Some(web_pid),
        "web's port is served by node1's recorded process"
    );
    for n in ["node2", "node3"] {
        assert_eq!(
            recorded_pid(&d, n, "web", "server"),
            None,
            "web is not on {n}"
        );
    }
    let others_after = others(&d);
    assert_eq!(
        others_after, others_before,
        "api and batch kept their processes through node1's restart"
    );
    assert!(others_after.iter().all(|p| alive(*p)));

    // A configuration with errors is refused and nothing changes.
    let bad = d.config.join("group-bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata:\n  name: bad\nspec:\n  preferredNodes: [node9]\n",
    )
    .expect("write");
    let out = d.asctl(&["apply", &cfg, "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(d.generation(), 2);
    std::fs::remove_file(&bad).expect("rm");

    // Removing a group takes it offline.
    std::fs::remove_file(d.config.join("group-batch.yaml")).expect("rm");
    d.apply();
    eventually("batch to stop", LONG, || {
        demo_answer(d.ports.demo[2]).is_none().then_some(())
    });
    assert_eq!(d.generation(), 3);
    let status = d.status_json().expect("status");
    assert!(status["placement"].get("batch").is_none(), "{status:#}");

    // SIGTERM to the agents takes every group offline: nothing stray.
    d.stop();
    for p in d.ports.demo {
        eventually("demo servers to be gone", LONG, || {
            demo_answer(p).is_none().then_some(())
        });
    }
}

/// The leader's and a follower's API address, from the domain's status.
fn leader_and_follower(d: &LiveDomain) -> (String, String) {
    let s = d.status_json().expect("status");
    let leader = s["leader"].as_str().expect("a leader").to_owned();
    let addr = |pick: &dyn Fn(&str) -> bool| {
        s["members"]
            .as_array()
            .expect("members")
            .iter()
            .filter(|m| m["name"] != "witness")
            .find(|m| pick(m["name"].as_str().unwrap_or_default()))
            .and_then(|m| m["address"].as_str().map(str::to_owned))
            .expect("a member")
    };
    (addr(&|n| n == leader), addr(&|n| n != leader))
}

#[test]
fn the_api_refuses_bad_clients_and_invalid_documents_and_followers_forward_writes() {
    let mut d = LiveDomain::prepare();
    d.start();
    let addr = format!("127.0.0.1:{}", d.ports.agents[1]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // A whole domain with a dangling reference, and a group alone (no
    // Domain: not a configuration the domain can run).
    let lone_group =
        r#"{"apiVersion":"asctl/v1","kind":"ResourceGroup","metadata":{"name":"x"},"spec":{"preferredNodes":["nowhere"]}}"#.to_owned();
    let invalid = vec![
        r#"{"apiVersion":"asctl/v1","kind":"Domain","metadata":{"name":"x"},"spec":{"qualification":"generic"}}"#.to_owned(),
        lone_group.clone(),
    ];
    let token = std::fs::read_to_string(d.state.join("token")).expect("token");
    let tls = asctl::agent::server::tls::client_config(&d.state.join("tls/ca.crt")).expect("ca");
    let good = asctl::domain::Client::new(tls.clone(), token.trim());
    rt.block_on(async {
        // No Authorization header at all.
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_only()
            .enable_http1()
            .build();
        let raw: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        let resp = raw
            .get(format!("https://{addr}/v1/status").parse().expect("uri"))
            .await
            .expect("answer");
        assert_eq!(resp.status().as_u16(), 401);

        // A wrong token.
        let wrong = asctl::domain::Client::new(tls.clone(), "not-the-token");
        let err = wrong
            .get::<serde_json::Value>(&addr, "/v1/status")
            .await
            .expect_err("refused");
        assert!(
            matches!(err, asctl::domain::ClientError::Unauthorized { .. }),
            "{err}"
        );
        let err = wrong
            .post::<_, serde_json::Value>(&addr, "/raft/vote", &serde_json::json!({}))
            .await
            .expect_err("raft routes too");
        assert!(
            matches!(err, asctl::domain::ClientError::Unauthorized { .. }),
            "{err}"
        );

        // The right token over a connection that does not trust the
        // domain's CA: the TLS handshake fails, the token is never sent.
        let other_ca = tempfile::tempdir().expect("tempdir");
        asctl::agent::server::tls::generate_local_ca(other_ca.path(), &["node1".into()], &[])
            .expect("another CA");
        let untrusting = asctl::domain::Client::new(
            asctl::agent::server::tls::client_config(&other_ca.path().join("ca.crt")).expect("ca"),
            token.trim(),
        );
        let err = untrusting
            .get::<serde_json::Value>(&addr, "/v1/status")
            .await
            .expect_err("a server certificate from another CA is refused");
        match &err {
            asctl::domain::ClientError::Connect { message, .. } => {
                assert!(message.to_lowercase().contains("certificate"), "{err}")
            }
            other => panic!("expected a TLS failure, got {other}"),
        }

        // The right token, but documents with errors: the agent validates too.
        let req = asctl::wire::ApplyRequest {
            base_generation: 0,
            documents: invalid.clone(),
        };
        let err = good
            .post::<_, serde_json::Value>(&addr, "/v1/apply", &req)
            .await
            .expect_err("invalid documents are refused");
        assert!(err.to_string().contains("422"), "{err}");
    });

    // Plain HTTP gets no HTTP answer: the port speaks TLS only.
    {
        use std::io::{Read, Write};
        let mut plain = std::net::TcpStream::connect(&addr).expect("connect");
        plain
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        plain
            .write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut answer = Vec::new();
        let _ = plain.read_to_end(&mut answer);
        assert!(
            !answer.starts_with(b"HTTP/"),
            "plain HTTP was answered: {}",
            String::from_utf8_lossy(&answer)
        );
    }

    // A raw ApplyConfig through /v1/write, on the leader where it would be
    // committed: validated like /v1/apply, refused, nothing changes.
    let (leader, follower) = leader_and_follower(&d);
    rt.block_on(async {
        for (documents, why) in [
            (invalid.clone(), "nowhere"),
            (vec![lone_group.clone()], "no Domain document"),
        ] {
            let cmd = asctl::domain::Command::ApplyConfig {
                base_generation: 0,
                documents,
            };
            let answer = good
                .post::<_, asctl::domain::WriteAnswer>(&leader, "/v1/write", &cmd)
                .await
                .expect("an answer");
            match answer {
                asctl::domain::WriteAnswer::Refused { message } => {
                    assert!(message.contains(why), "{message}")
                }
                other => panic!("an invalid configuration was not refused: {other:?}"),
            }
        }
    });
    assert_eq!(d.generation(), 0, "nothing was committed");

    // A follower commits nothing itself (its /v1/write says so) but
    // forwards an apply to the leader, which commits it.
    let valid = asctl::plan::documents::to_document_texts(
        &load(&[Input::Path(d.config.clone())])
            .expect("loads")
            .config,
    );
    rt.block_on(async {
        let cmd = asctl::domain::Command::ApplyConfig {
            base_generation: 0,
            documents: valid.clone(),
        };
        let answer = good
            .post::<_, asctl::domain::WriteAnswer>(&follower, "/v1/write", &cmd)
            .await
            .expect("an answer");
        assert!(
            matches!(answer, asctl::domain::WriteAnswer::NotLeader),
            "{answer:?}"
        );
        let req = asctl::wire::ApplyRequest {
            base_generation: 0,
            documents: valid,
        };
        let applied: asctl::wire::ApplyResponse = good
            .post(&follower, "/v1/apply", &req)
            .await
            .expect("the follower forwards the apply");
        assert_eq!(applied.generation, 1);
    });
    let s = d.status_json().expect("status");
    assert_eq!(s["generation"], 1, "{s:#}");

    // The CLI with a wrong token says so and fails.
    let out = d.asctl(&["status", "--token", "wrong"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        text(&out)
    );
}

#[test]
fn up_starts_applies_and_stops_everything() {
    let d = LiveDomain::prepare();
    let cfg = d.config.to_string_lossy().into_owned();
    let mut up = Command::new(ASCTL)
        .arg("up")
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&d.state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("asctl up");
    let expected = expected_placement(&d.config);
    for (group, node) in &expected {
        let port = port_of(&d, group);
        let answer = eventually(&format!("{group} under up"), LONG, || demo_answer(port));
        assert_eq!(&answer, node);
    }
    // A second terminal finds the credentials in the state directory.
    let out = d.asctl(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("generation 1"),
        "{}",
        text(&out)
    );

    unsafe {
        libc::kill(up.id() as i32, libc::SIGINT);
    }
    let status = eventually("up to exit", LONG, || up.try_wait().ok().flatten());
    let output = up.wait_with_output().expect("output");
    assert!(status.success(), "{}", text(&output));
    for p in d.ports.demo {
        eventually("no stray demo server", LONG, || {
            demo_answer(p).is_none().then_some(())
        });
    }
    for p in d.ports.agents {
        eventually("no stray agent", LONG, || {
            std::net::TcpStream::connect(("127.0.0.1", p))
                .is_err()
                .then_some(())
        });
    }
}

#[test]
fn clear_lets_a_group_that_failed_everywhere_run_again() {
    let mut d = LiveDomain::prepare();
    // A group whose process exits at once until a marker file exists: with
    // no local restart allowed, it fails on node2, then on node3, and is
    // placed nowhere.
    let marker = d.dir.path().join("fixed");
    let port = crate::support::free_port();
    let script = format!(
        "test -e {} || exit 3; exec {ASCTL} demo-server --port {port} --name flaky",
        marker.display()
    );
    let group = format!(
        "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata:\n  name: flaky\nspec:\n  \
         preferredNodes: [node2, node3]\n  processes:\n    - name: server\n      \
         command: {}\n  restart:\n    limit: 0\n    window: 5m\n",
        serde_json::json!(["sh", "-c", script])
    );
    std::fs::write(d.config.join("group-flaky.yaml"), group).expect("write");
    d.start();
    let cfg = d.config.to_string_lossy().into_owned();
    // The apply converges everything but flaky, which fails: its exit code
    // says so; what counts is that generation 1 was committed.
    let out = d.asctl(&["apply", &cfg, "--auto-approve", "--timeout", "5s"]);
    assert_eq!(d.generation(), 1, "{}\n{}", text(&out), d.agent_logs());

    let flaky = |d: &LiveDomain| -> Option<(Option<String>, Vec<String>)> {
        let s = d.status_json()?;
        let p = s["placement"].get("flaky")?;
        let failed = p
            .get("failedOn")
            .and_then(|f| f.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Some((p["node"].as_str().map(str::to_owned), failed))
    };
    let both = vec!["node2".to_owned(), "node3".to_owned()];
    d.eventually("flaky to fail on node2 and node3", LONG, || {
        flaky(&d).filter(|(node, failed)| node.is_none() && *failed == both)
    });

    // Unknown names are refused (exit 1) and change nothing.
    let out = d.asctl(&["clear", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no group nope"),
        "{}",
        text(&out)
    );
    let out = d.asctl(&["clear", "flaky", "--node", "node9"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no node node9"),
        "{}",
        text(&out)
    );
    assert_eq!(flaky(&d), Some((None, both.clone())));
    assert_eq!(d.generation(), 1, "clearing is not a configuration change");

    // The operator fixes the cause and clears node3 only: flaky runs there,
    // node2 is still excluded.
    std::fs::write(&marker, "").expect("marker");
    let out = d.asctl(&["clear", "flaky", "--node", "node3"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("flaky on node3"),
        "{}",
        text(&out)
    );
    d.eventually("flaky to be placed on node3 again", LONG, || {
        flaky(&d).filter(|(node, failed)| {
            node.as_deref() == Some("node3") && *failed == ["node2".to_owned()]
        })
    });
    let answer = d.eventually("flaky to answer", LONG, || demo_answer(port));
    assert_eq!(answer, "flaky");

    // Clearing the rest empties failedOn; the group stays where it runs
    // (failback manual), and a second clear has nothing left to do.
    let out = d.asctl(&["clear", "flaky"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("flaky on node2"),
        "{}",
        text(&out)
    );
    d.eventually("flaky's failedOn to be empty", LONG, || {
        flaky(&d).filter(|(node, failed)| node.as_deref() == Some("node3") && failed.is_empty())
    });
    let out = d.asctl(&["clear", "flaky"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to clear"),
        "{}",
        text(&out)
    );
    assert_eq!(demo_answer(port).as_deref(), Some("flaky"));
    assert_eq!(d.generation(), 1);
}

/// The log of `node`'s agent in `d`'s state directory, without colours.
fn agent_log(d: &LiveDomain, node: &str) -> String {
    crate::support::log_text(&d.state.join("nodes").join(node).join("agent.log"))
}

fn spawn_logged(cmd: &mut Command, log: &std::path::Path) -> Owned {
    let out = std::fs::File::create(log).expect("log");
    Owned(Some(
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("spawn"),
    ))
}

#[test]
fn sigterm_during_the_start_up_wait_stops_the_agent_cleanly() {
    let d = LiveDomain::prepare();
    // node1 alone: without a majority there is no leader, so the agent
    // stays in its start-up catch-up wait (12 s here) after starting its
    // lease guard, before it ever waits for a signal.
    let nd = d.state.join("nodes/node1");
    let mut agent = spawn_logged(
        Command::new(ASCTL)
            .arg("agent")
            .arg("--config")
            .arg(nd.join("agent.yaml")),
        &nd.join("agent.log"),
    );
    let guard_pid: i32 = eventually("the lease guard to start", LONG, || {
        let log = agent_log(&d, "node1");
        let line = log.lines().find(|l| l.contains("lease guard running"))?;
        let digits: String = line
            .split("pid=")
            .nth(1)?
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    });
    assert!(
        !agent_log(&d, "node1").contains("starting the reconciler"),
        "still in the start-up wait"
    );
    agent.signal(libc::SIGTERM);
    let status = agent.wait(LONG).expect("the agent exits");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        (status.code(), status.signal()),
        (Some(0), None),
        "a clean exit, not killed by the signal\n{}",
        agent_log(&d, "node1")
    );
    let log = agent_log(&d, "node1");
    assert!(log.contains("node1: stopped"), "{log}");
    eventually("the guard to go with the agent", LONG, || {
        (!alive(guard_pid)).then_some(())
    });
    let left = processes_mentioning(&d.state.to_string_lossy());
    assert!(left.is_empty(), "left running: {left:?}");
}

/// The built-in quickstart's fixed ports (docs/runtime.md).
const QUICKSTART_PORTS: [u16; 6] = [7401, 7402, 7403, 8081, 8082, 8083];

fn closed(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

/// `asctl` with HOME pointed at `home` and nothing else telling it where a
/// domain is: the state directory is found the way a new user's is.
fn as_new_user(home: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(ASCTL);
    c.args(args)
        .env("HOME", home)
        .env_remove("XDG_STATE_HOME")
        .env_remove("ASCTL_STATE_DIR")
        .env_remove("ASCTL_TOKEN")
        .current_dir(home);
    c
}

#[test]
fn up_without_a_directory_runs_the_built_in_quickstart_from_the_default_state_dir() {
    for p in QUICKSTART_PORTS {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", p)).is_ok(),
            "port {p} is taken: this test runs the built-in quickstart, whose ports are fixed \
             (is an `asctl up` running on this machine?)"
        );
    }
    let home = tempfile::tempdir().expect("home");
    let log = home.path().join("up.log");
    let mut up = spawn_logged(&mut as_new_user(home.path(), &["up"]), &log);
    let answer = eventually("the quickstart's web group to answer", LONG, || {
        demo_answer(8081)
    });
    assert_eq!(answer, "node1");
    let state = home.path().join(".local/state/asctl/quickstart");
    assert!(state.join("domain.json").is_file(), "{}", state.display());
    assert!(
        state.join("config/group-web.yaml").is_file(),
        "the applied configuration is copied for editing"
    );
    // The copy's modeline names a schema that exists beside it.
    let web = std::fs::read_to_string(state.join("config/group-web.yaml")).expect("copy");
    assert!(
        web.starts_with("# yaml-language-server: $schema=asctl.schema.json\n"),
        "{web}"
    );
    let schema = std::fs::read_to_string(state.join("config/asctl.schema.json")).expect("schema");
    assert_eq!(
        schema.trim_end(),
        asctl::model::schema::schema_text().trim_end()
    );

    // A second terminal: no --state-dir, no token, no endpoint.
    let out = as_new_user(home.path(), &["status"])
        .stdin(Stdio::null())
        .output()
        .expect("asctl status");
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("generation 1"), "{}", text(&out));
    assert!(shown.contains("node3"), "{}", text(&out));
    let cfg = state.join("config");
    let out = as_new_user(
        home.path(),
        &["plan", &cfg.to_string_lossy(), "--detailed-exitcode"],
    )
    .stdin(Stdio::null())
    .output()
    .expect("asctl plan");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    up.signal(libc::SIGTERM);
    let status = up.wait(LONG).expect("up exits");
    assert!(status.success(), "{}", crate::support::log_text(&log));
    for p in QUICKSTART_PORTS {
        assert!(closed(p), "port {p} still served after up stopped");
    }
    let left = processes_mentioning(&home.path().to_string_lossy());
    assert!(left.is_empty(), "left running: {left:?}");

    // `up` again says it resumes that domain; `--fresh` forgets it.
    let again = as_new_user(home.path(), &["up", "--init-only"])
        .stdin(Stdio::null())
        .output()
        .expect("up --init-only");
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("Resuming the domain of"),
        "{}",
        text(&again)
    );
    assert!(state.join("nodes/node1/data").is_dir());
    let fresh = as_new_user(home.path(), &["up", "--init-only", "--fresh"])
        .stdin(Stdio::null())
        .output()
        .expect("up --init-only --fresh");
    let said = String::from_utf8_lossy(&fresh.stdout);
    assert!(fresh.status.success(), "{}", text(&fresh));
    assert!(said.contains("Starting a new domain"), "{said}");
    assert!(!said.contains("Resuming"), "{said}");
    assert!(!state.join("nodes/node1/data").exists());
    assert!(state.join("config/group-web.yaml").is_file());
}

/// A group that cannot converge: its command exists on no node, so it fails
/// to start on node2, then on node3, and is placed nowhere. (A command that
/// exits at once would do in the end, but its group is reported online
/// until the reconciler's next check, which a follow can catch.)
/// A group that never becomes ready: its process runs, its probe never
/// passes (nothing listens on port 1), and its start-up grace outlasts any
/// test. (One whose start fails everywhere ends `apply` early instead:
/// tests/live/readiness.rs.)
const BROKEN_GROUP: &str = "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata:\n  name: broken\n\
spec:\n  preferredNodes: [node2, node3]\n  processes:\n    - name: server\n      \
command: [\"sleep\", \"600\"]\n      monitor:\n        startTimeout: 1h\n        \
probe: {tcp: \"127.0.0.1:1\"}\n  restart:\n    limit: 0\n    window: 5m\n";

/// Runs `asctl up CONFIG --state-dir STATE ARGS` to its end, returning its
/// exit status and output.
fn up_until_exit(d: &LiveDomain, args: &[&str]) -> (std::process::ExitStatus, String) {
    let log = d.dir.path().join("up.log");
    let mut up = spawn_logged(
        Command::new(ASCTL)
            .arg("up")
            .arg(&d.config)
            .arg("--state-dir")
            .arg(&d.state)
            .args(args),
        &log,
    );
    let Some(status) = up.wait(Duration::from_secs(180)) else {
        panic!(
            "up did not give up by itself:\n{}\n{}",
            crate::support::log_text(&log),
            d.agent_logs()
        );
    };
    (status, crate::support::log_text(&log))
}

fn nothing_left(d: &LiveDomain) {
    for p in d.ports.agents.iter().chain(&d.ports.demo) {
        assert!(closed(*p), "port {p} still served\n{}", d.agent_logs());
    }
    let left = processes_mentioning(&d.state.to_string_lossy());
    assert!(left.is_empty(), "left running: {left:?}");
}

#[test]
fn up_of_an_invalid_configuration_exits_1_and_starts_nothing() {
    let d = LiveDomain::prepare();
    std::fs::write(
        d.config.join("group-bad.yaml"),
        "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata:\n  name: bad\nspec:\n  preferredNodes: [node9]\n",
    )
    .expect("write");
    let (status, out) = up_until_exit(&d, &[]);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("node9"), "{out}");
    assert!(!out.contains("Started the agent"), "{out}");
    nothing_left(&d);
}

#[test]
fn up_exits_1_and_stops_everything_when_an_agent_cannot_start() {
    let d = LiveDomain::prepare();
    // node3's API port is taken: its agent exits at once.
    let taken = std::net::TcpListener::bind(("127.0.0.1", d.ports.agents[2])).expect("bind");
    let (status, out) = up_until_exit(&d, &["--timeout", "60s"]);
    drop(taken);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("the agent of node3 exited"), "{out}");
    assert!(out.contains("the domain did not come up"), "{out}");
    assert!(out.contains("Stopped."), "{out}");
    nothing_left(&d);
}

#[test]
fn up_exits_1_and_stops_everything_when_the_apply_does_not_converge() {
    let d = LiveDomain::prepare();
    std::fs::write(d.config.join("group-broken.yaml"), BROKEN_GROUP).expect("write");
    let (status, out) = up_until_exit(&d, &["--timeout", "20s"]);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("✗ broken: not converged"), "{out}");
    assert!(out.contains("✓ web"), "the other groups converged: {out}");
    assert!(out.contains("did not converge within 20s"), "{out}");
    nothing_left(&d);
}

/// Runs `asctl ARGS --state-dir STATE` on a pseudo-terminal (its standard
/// input, output and error), types `answer` once `prompt` shows, and
/// returns the exit status and what the terminal showed.
fn on_terminal(
    d: &LiveDomain,
    args: &[&str],
    prompt: &str,
    answer: &str,
) -> (std::process::ExitStatus, String) {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two new descriptors, which we then own.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    let (master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            OwnedFd::from_raw_fd(slave),
        )
    };
    let child = {
        // The Command holds the terminal's descriptors: dropped after the
        // spawn, so the terminal closes when the child exits.
        let mut cmd = Command::new(ASCTL);
        cmd.args(args)
            .arg("--state-dir")
            .arg(&d.state)
            .stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave));
        cmd.spawn().expect("spawn")
    };
    let mut child = Owned(Some(child));
    let shown = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let shown = shown.clone();
        let mut master = master.try_clone().expect("dup");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the child and every copy of the terminal are gone.
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shown.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        })
    };
    let text = |shown: &std::sync::Mutex<Vec<u8>>| {
        String::from_utf8_lossy(&shown.lock().expect("lock")).into_owned()
    };
    d.eventually(&format!("the prompt {prompt:?}"), LONG, || {
        text(&shown).contains(prompt).then_some(())
    });
    let mut input = master;
    input
        .write_all(format!("{answer}\n").as_bytes())
        .expect("type the answer");
    let status = child.wait(LONG).expect("the command ends");
    drop(input);
    let _ = reader.join();
    (status, text(&shown))
}

#[test]
fn apply_on_a_terminal_asks_and_applies_only_on_yes() {
    let d = LiveDomain::applied();
    let cfg = d.config.to_string_lossy().into_owned();
    assert_eq!(d.generation(), 1);

    let web = d.config.join("group-web.yaml");
    let original = std::fs::read_to_string(&web).expect("read");
    let port = d.ports.demo[0].to_string();
    let changed = original.replace(
        &format!("[\"asctl\", \"demo-server\", \"--port\", \"{port}\"]"),
        &format!("[\"asctl\", \"demo-server\", \"--port\", \"{port}\", \"--name\", \"asked\"]"),
    );
    assert_ne!(changed, original);
    std::fs::write(&web, &changed).expect("write");
    let prompt = "Only 'yes' will be accepted";
    let apply = ["apply", cfg.as_str(), "--timeout", "60s"];

    // Anything but `yes` cancels, and nothing changes.
    for answer in ["no", "y", ""] {
        let (status, shown) = on_terminal(&d, &apply, prompt, answer);
        assert_eq!(status.code(), Some(1), "answer {answer:?}:\n{shown}");
        assert!(
            shown.contains("restart on node1"),
            "the plan is shown first:\n{shown}"
        );
        assert!(shown.contains("Apply cancelled"), "{shown}");
        assert_eq!(d.generation(), 1, "answer {answer:?} changed nothing");
    }
    assert_ne!(demo_answer(d.ports.demo[0]).as_deref(), Some("asked"));

    let (status, shown) = on_terminal(&d, &apply, prompt, "yes");
    assert_eq!(status.code(), Some(0), "{shown}\n{}", d.agent_logs());
    assert!(shown.contains("Converged"), "{shown}");
    assert_eq!(d.generation(), 2);
    eventually("web to run the applied command", LONG, || {
        (demo_answer(d.ports.demo[0]).as_deref() == Some("asked")).then_some(())
    });

    // --timeout runs out on a group that cannot converge: the summary names
    // it and why, the others converged, and the exit code is 1.
    std::fs::write(d.config.join("group-broken.yaml"), BROKEN_GROUP).expect("write");
    let out = d.asctl(&["apply", &cfg, "--auto-approve", "--timeout", "5s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(d.generation(), 3, "committed, then followed");
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    let broken = summary
        .lines()
        .find(|l| l.contains("✗ broken: not converged: "))
        .unwrap_or_else(|| panic!("no line for broken: {}", text(&out)));
    assert!(
        broken.contains("starting on node2: process server: waiting for its probe"),
        "the reason: {broken}"
    );
    for group in ["web", "api", "batch"] {
        assert!(
            summary.contains(&format!("✓ {group}: online on ")),
            "{group}: {}",
            text(&out)
        );
    }
    assert!(
        summary.contains("Not converged within 5s"),
        "{}",
        text(&out)
    );
}
