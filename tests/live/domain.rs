//! Three real agent processes on loopback, driven through the CLI: apply,
//! plan, saved plans, restarts, removals, refusals, `clear`. One
//! scenario per domain (starting agents is the slow part), each step polling
//! with a deadline. `asctl up` and an agent's own start and stop are in
//! `up.rs`; the apply prompt on a terminal in `terminal.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{
    ASCTL, LiveDomain, alive, demo_answer, eventually, listener_pid, recorded_pid, text,
};
use asctl::load::{Input, load};
use asctl::model::Name;
use asctl::plan::{Health, NodeState, Placement, place};

const LONG: Duration = Duration::from_secs(60);

/// Where `place()` puts each group of the configuration with every node Up.
pub(super) fn expected_placement(config: &std::path::Path) -> BTreeMap<String, String> {
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

pub(super) fn port_of(d: &LiveDomain, group: &str) -> u16 {
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
