//! Three real agent processes on loopback, driven through the CLI: apply,
//! plan, saved plans, restarts, removals, refusals. One scenario per domain
//! (starting agents is the slow part), each step polling with a deadline.

mod live_support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use asctl::load::{Input, load};
use asctl::model::Name;
use asctl::plan::{Health, NodeState, Placement, place};
use live_support::{ASCTL, LiveDomain, demo_answer, eventually, text};

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
    let out = d.asctl(&["apply", &cfg, "--auto-approve", "--timeout", "60s"]);
    assert!(
        out.status.success(),
        "apply: {}\n{}",
        text(&out),
        d.agent_logs()
    );
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
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("generation"),
        "{}",
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
    // comes back (its process was adopted or restarted).
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
    let out = d.asctl(&["apply", &cfg, "--auto-approve", "--timeout", "60s"]);
    assert!(out.status.success(), "{}\n{}", text(&out), d.agent_logs());
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

#[test]
fn the_api_refuses_a_missing_or_wrong_token_and_invalid_documents() {
    let mut d = LiveDomain::prepare();
    d.start();
    let addr = format!("127.0.0.1:{}", d.ports.agents[1]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let tls = asctl::agent::tls::client_config(&d.state.join("tls/ca.crt")).expect("ca");

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
        assert!(matches!(err, asctl::domain::ClientError::Unauthorized { .. }), "{err}");
        let err = wrong
            .post::<_, serde_json::Value>(&addr, "/raft/vote", &serde_json::json!({}))
            .await
            .expect_err("raft routes too");
        assert!(matches!(err, asctl::domain::ClientError::Unauthorized { .. }), "{err}");

        // The right token, but documents with errors: the agent validates too.
        let token = std::fs::read_to_string(d.state.join("token")).expect("token");
        let good = asctl::domain::Client::new(tls, token.trim());
        let req = asctl::agent::api::ApplyRequest {
            base_generation: 0,
            documents: vec![
                r#"{"apiVersion":"asctl/v1","kind":"ResourceGroup","metadata":{"name":"x"},"spec":{"preferredNodes":["nowhere"]}}"#.into(),
            ],
        };
        let err = good
            .post::<_, serde_json::Value>(&addr, "/v1/apply", &req)
            .await
            .expect_err("invalid documents are refused");
        assert!(err.to_string().contains("422"), "{err}");
    });
    // The CLI with a wrong token says so and fails.
    let out = d.asctl(&["status", "--token", "wrong"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        text(&out)
    );
    assert_eq!(d.generation(), 0);
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
    let port = live_support::free_port();
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
