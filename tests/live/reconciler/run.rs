//! Groups placed here go online (services before processes, `starting` until the probe passes) and offline again; the report's form.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_placed_here_runs_and_answers_with_the_node_name_then_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = web(
        &format!(r#"["asctl", "demo-server", "--port", "{port}"]"#),
        "",
    );
    let mut node = Node::start(dir.path(), cfg.clone(), &["web"]);

    let status = node.wait_group("web", GroupState::Online).await;
    assert_eq!(status.restarts, 0);
    let pid = node.pid("web", "server").expect("pid file");
    assert!(live(pid));

    let mut body = None;
    eventually("the demo server answers", || {
        body = http_get(port);
        body.is_some()
    })
    .await;
    let (head, body) = body.expect("an answer");
    assert_eq!(body, "node1\n");
    assert!(head.contains("x-asctl-group: web"), "{head}");
    assert!(cmdline(pid).contains("demo-server"), "{}", cmdline(pid));
    assert!(dir.path().join("logs/web/server.log").exists());
    assert_eq!(node.report().generation_seen, 1);

    // Placed elsewhere: offline, process gone and reaped, pid file removed.
    node.set(cfg, &[]);
    node.wait("offline at generation 2", |r| {
        r.generation_seen == 2
            && r.groups
                .get("web")
                .is_some_and(|g| g.state == GroupState::Offline)
    })
    .await;
    eventually("the process is gone", || !live(pid)).await;
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "our child was reaped: no zombie"
    );
    assert!(node.pid("web", "server").is_none());
    assert!(http_get(port).is_none());
    node.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_starting_until_its_probe_passes_then_online() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = web(
        r#"["sleep", "60"]"#,
        &format!(
            "      monitor: {{interval: 1h, timeout: 1s, startTimeout: 1h, \
             probe: {{tcp: \"127.0.0.1:{port}\"}}}}\n"
        ),
    );
    let node = Node::start(dir.path(), cfg, &["web"]);
    node.wait_group("web", GroupState::Starting).await;
    // The process runs, its probe fails: starting (with the probe's
    // answer), for as long as nothing listens.
    let r = node
        .wait("the probe's answer in the message", |r| {
            r.groups["web"]
                .message
                .as_deref()
                .is_some_and(|m| m.contains("waiting for its probe") && m.contains("tcp probe"))
        })
        .await;
    assert!(node.pid("web", "server").is_some(), "{r:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(node.report().groups["web"].state, GroupState::Starting);
    // Something answers: online at a start-up probe (every 250 ms), not
    // at the hour-long interval, which would time the wait out.
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    let online = node.wait_group("web", GroupState::Online).await;
    assert!(online.message.is_none(), "{online:?}");
    assert!(online.errors.is_empty(), "{online:?}");
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_start_before_processes_and_stop_after_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let calls = dir.path().join("calls");
    let systemctl = dir.path().join("systemctl");
    std::fs::write(
        &systemctl,
        format!(
            "#!/bin/sh\ncase \"$1\" in start|stop) echo \"$1 $2\" >> '{}';; esac\nexit 0\n",
            calls.display()
        ),
    )
    .expect("script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let log = calls.display();
    let cfg = web(
        &format!(
            r#"["sh", "-c", "trap 'echo process-stop >> {log}; exit 0' TERM; echo process-start >> {log}; while :; do sleep 0.05; done"]"#
        ),
        "  services: [db.service]\n",
    );
    let (desired, rx) = watch::channel(Desired {
        generation: 1,
        config: cfg.clone(),
        groups_here: BTreeSet::from([name("web")]),
    });
    let mut opts = Options::new(name("node1"), dir.path().to_path_buf());
    opts.tick = Duration::from_millis(50);
    opts.systemctl = systemctl;
    let handle = reconciler::spawn(opts, rx);
    let mut reports = handle.reports.clone();
    tokio::time::timeout(
        DEADLINE,
        reports.wait_for(|r| {
            r.groups
                .get("web")
                .is_some_and(|g| g.state == GroupState::Online)
        }),
    )
    .await
    .expect("online")
    .expect("reports");
    let read = || std::fs::read_to_string(&calls).unwrap_or_default();
    eventually("the process started", || read().contains("process-start")).await;

    desired.send_replace(Desired {
        generation: 2,
        config: cfg,
        groups_here: BTreeSet::new(),
    });
    tokio::time::timeout(
        DEADLINE,
        reports.wait_for(|r| {
            r.groups
                .get("web")
                .is_some_and(|g| g.state == GroupState::Offline)
        }),
    )
    .await
    .expect("offline")
    .expect("reports");
    assert_eq!(
        read().lines().collect::<Vec<_>>(),
        [
            "start db.service",
            "process-start",
            "process-stop",
            "stop db.service"
        ]
    );
    handle.shutdown(false).await;
}

#[test]
fn the_report_serializes_with_rfc3339_times() {
    let json = serde_json::json!({
        "node": "node1",
        "generationSeen": 7,
        "groups": {"web": {"state": "online", "since": "2026-01-02T03:04:05.678Z", "restarts": 1}}
    });
    let report: NodeReport = serde_json::from_value(json.clone()).expect("parses");
    assert_eq!(report.groups["web"].state, GroupState::Online);
    assert_eq!(serde_json::to_value(&report).expect("serializes"), json);
}
