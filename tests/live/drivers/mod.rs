//! The drivers against real processes, sockets and programs.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use asctl::drivers::process::ProcessDriver;
use asctl::drivers::systemd::ServiceDriver;
use asctl::drivers::{DriverError, GroupContext, Resource, ResourceHealth, probe};
use asctl::model::{Endpoint, Probe, Process, ResourceGroupSpec};

fn name(s: &str) -> asctl::model::Name {
    s.parse().expect("valid name")
}

fn ctx(dir: &Path) -> GroupContext {
    GroupContext::new(name("node1"), name("web"), dir.to_path_buf())
}

fn process(yaml: &str) -> Process {
    serde_json::from_value(json(yaml)).expect("valid process spec")
}

/// Specs are written as JSON and read with the model's own serde.
fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("valid JSON")
}

/// `/proc/<pid>/stat`: (state, process group), or `None` when the pid is gone.
fn stat(pid: u32) -> Option<(char, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f[0].chars().next()?, f[2].parse().ok()?))
}

fn live(pid: u32) -> bool {
    stat(pid).is_some_and(|(s, _)| s != 'Z' && s != 'X')
}

fn live_members_of_group(pgid: i32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|(s, g)| g == pgid && s != 'Z' && s != 'X'))
        .collect()
}

fn environ(pid: u32) -> BTreeMap<String, String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    raw.split(|&b| b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

async fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_process_runs_in_its_own_group_with_its_env_dir_and_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).expect("mkdir");
    let spec = process(&format!(
        r#"{{"name": "server", "command": ["sh", "-c", "echo out-line; echo err-line >&2; exec sleep 60"],
            "env": {{"GREETING": "hello"}}, "workingDir": "{}"}}"#,
        work.display()
    ));
    let mut driver = ProcessDriver::new(ctx(dir.path()), spec);
    driver.start().await.expect("starts");
    let pid = driver.pid().expect("a pid");

    assert!(live(pid));
    // The log lines are written after exec: from then on /proc shows the
    // program, not the forked copy of the test.
    let log = dir.path().join("logs/web/server.log");
    assert_eq!(driver.log_path(), log);
    eventually(
        "stdout and stderr in the log",
        Duration::from_secs(5),
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("out-line") && text.contains("err-line")
        },
    )
    .await;
    assert_eq!(
        stat(pid).map(|s| s.1),
        Some(pid as i32),
        "leads its own process group"
    );
    let env = environ(pid);
    assert_eq!(env.get("ASCTL_NODE").map(String::as_str), Some("node1"));
    assert_eq!(env.get("ASCTL_GROUP").map(String::as_str), Some("web"));
    assert_eq!(env.get("GREETING").map(String::as_str), Some("hello"));
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd");
    assert_eq!(cwd, work.canonicalize().expect("canonical"));

    assert!(driver.check().await.is_healthy());

    // Starting again is a no-op, not a second process.
    driver.start().await.expect("idempotent start");
    assert_eq!(driver.pid(), Some(pid));

    let started = Instant::now();
    driver.stop().await.expect("stops");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "SIGTERM was enough"
    );
    assert!(stat(pid).is_none(), "gone, and reaped (no zombie)");
    assert!(live_members_of_group(pid as i32).is_empty());
    assert!(!driver.pid_path().exists(), "pid file removed");
    // Stopping what is stopped succeeds.
    driver.stop().await.expect("idempotent stop");
}

#[tokio::test]
async fn stop_escalates_to_sigkill_when_sigterm_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = process(
        r#"{"name": "stubborn", "command": ["sh", "-c", "trap '' TERM; sleep 60"],
            "stopTimeout": "400ms"}"#,
    );
    let mut driver = ProcessDriver::new(ctx(dir.path()), spec);
    driver.start().await.expect("starts");
    let pid = driver.pid().expect("a pid");
    // Let the shell install its trap and fork `sleep`, or SIGTERM could land first.
    eventually("the shell forked sleep", Duration::from_secs(5), || {
        live_members_of_group(pid as i32).len() >= 2
    })
    .await;

    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), driver.stop())
        .await
        .expect("stop must not wait forever")
        .expect("stops");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400),
        "waited stopTimeout first ({took:?})"
    );
    assert!(took < Duration::from_secs(5), "then SIGKILL ({took:?})");
    assert!(stat(pid).is_none(), "leader gone and reaped");
    assert!(
        live_members_of_group(pid as i32).is_empty(),
        "the forked sleep was killed with its group"
    );
}

/// Where cgroup v2 is usable (root here), a descendant that left the
/// process group with `setsid` is stopped with the process; the agent's
/// guard reaches it too ([`asctl::drivers::process::kill_recorded`]).
#[tokio::test]
#[ignore = "needs root: run with --include-ignored"]
async fn stop_kills_a_grandchild_that_called_setsid() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(
        asctl::drivers::cgroup::Cgroup::for_process(dir.path(), "web", "server").is_some(),
        "this test needs a writable cgroup v2 hierarchy (root or delegation)"
    );
    let pidfile = dir.path().join("grandchild.pid");
    let spawn_escapee = |pidfile: &Path| {
        format!(
            r#"{{"name": "server", "command": ["sh", "-c",
                "setsid sh -c 'echo $$ > {}; exec sleep 300' & exec sleep 300"]}}"#,
            pidfile.display()
        )
    };
    for fence in [false, true] {
        let _ = std::fs::remove_file(&pidfile);
        let mut driver = ProcessDriver::new(ctx(dir.path()), process(&spawn_escapee(&pidfile)));
        driver.start().await.expect("starts");
        let pid = driver.pid().expect("a pid");
        eventually(
            "the grandchild to write its pid",
            Duration::from_secs(5),
            || std::fs::read_to_string(&pidfile).is_ok_and(|t| t.trim().parse::<u32>().is_ok()),
        )
        .await;
        let grandchild: u32 = std::fs::read_to_string(&pidfile)
            .expect("pid")
            .trim()
            .parse()
            .expect("pid");
        let (_, pgrp) = stat(grandchild).expect("the grandchild runs");
        assert_ne!(pgrp, pid as i32, "it left the process group");
        if fence {
            // The lease guard's fence, from the pid files alone.
            asctl::drivers::process::kill_recorded(dir.path());
        } else {
            tokio::time::timeout(Duration::from_secs(10), driver.stop())
                .await
                .expect("stop must not wait forever")
                .expect("stops");
        }
        eventually(
            "the setsid grandchild to be gone",
            Duration::from_secs(5),
            || !live(grandchild),
        )
        .await;
        if fence {
            driver.stop().await.expect("stop after the fence");
        }
    }
}

/// A stopped process leaves no cgroup behind (nor its group's or the
/// agent's level once empty); empty cgroups a killed run left are swept at
/// the next start, and a cgroup with a live process is kept.
#[tokio::test]
#[ignore = "needs root: run with --include-ignored"]
async fn empty_cgroups_are_removed_on_stop_and_swept_at_start() {
    use asctl::drivers::cgroup::{Cgroup, sweep_empty};
    let dir = tempfile::tempdir().expect("tempdir");
    let cg = Cgroup::for_process(dir.path(), "web", "server")
        .expect("this test needs a writable cgroup v2 hierarchy (root or delegation)");
    let group_level = cg.path().parent().expect("group level").to_owned();
    let agent_level = group_level.parent().expect("agent level").to_owned();

    let mut driver = ProcessDriver::new(
        ctx(dir.path()),
        process(r#"{"name": "server", "command": ["sleep", "300"]}"#),
    );
    driver.start().await.expect("starts");
    assert!(cg.path().is_dir(), "the process runs in its cgroup");
    driver.stop().await.expect("stops");
    assert!(!cg.path().exists(), "its cgroup is removed on stop");
    assert!(!agent_level.exists(), "and the empty levels above it");

    // What a run killed before it could clean up leaves: empty cgroups of
    // processes and groups no longer running, next to one still running.
    let stale = Cgroup::for_process(dir.path(), "old", "gone").expect("cgroup");
    std::fs::create_dir_all(stale.path()).expect("stale cgroup");
    std::fs::create_dir_all(group_level.join("gone")).expect("stale cgroup");
    driver.start().await.expect("starts");
    let pid = driver.pid().expect("a pid");
    assert_eq!(sweep_empty(dir.path()), 3, "old/gone, old, web/gone");
    assert!(!stale.path().parent().expect("old").exists());
    assert!(!group_level.join("gone").exists());
    assert_eq!(cg.pids(), [pid as i32], "the live cgroup is kept");
    driver.stop().await.expect("stops");
    assert!(!agent_level.exists());
    assert_eq!(sweep_empty(dir.path()), 0);
}

/// The kernel refuses an exec too large (E2BIG): the start error names
/// the process, the string or the limit, and says what to do.
#[tokio::test]
async fn a_start_refused_as_too_large_names_the_process_and_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = "x".repeat(asctl::model::exec_limits::MAX_ARG_STRLEN);
    let many = "y".repeat(asctl::model::exec_limits::MAX_ARG_STRLEN / 2);
    let count = asctl::model::exec_limits::arg_max() / many.len() + 1;
    let all: BTreeMap<String, String> = (0..count)
        .map(|i| (format!("BIG_{i}"), many.clone()))
        .collect();
    let cases = [
        (
            [("ONE".to_owned(), one)].into_iter().collect(),
            "env `ONE` is 131077 bytes",
        ),
        (all, "over this node's ARG_MAX"),
    ];
    for (env, expected) in cases {
        let spec = serde_json::json!({"name": "server", "command": ["true"], "env": env});
        let spec: Process = serde_json::from_value(spec).expect("valid process spec");
        let mut driver = ProcessDriver::new(ctx(dir.path()), spec);
        let err = driver
            .start()
            .await
            .expect_err("too large to start")
            .to_string();
        assert!(err.contains("process `web/server`"), "{err}");
        assert!(err.contains("E2BIG"), "{err}");
        assert!(err.contains(expected), "{err}");
        assert!(driver.pid().is_none());
    }
}

#[tokio::test]
async fn a_process_that_exits_is_unhealthy_and_reaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut driver = ProcessDriver::new(
        ctx(dir.path()),
        process(r#"{"name": "short", "command": ["sh", "-c", "exit 3"]}"#),
    );
    driver.start().await.expect("starts");
    let pid = driver.pid().expect("a pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    let why = loop {
        if let ResourceHealth::Unhealthy(why) = driver.check().await {
            break why;
        }
        assert!(Instant::now() < deadline, "exit not noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(why.contains("exited"), "{why}");
    assert!(stat(pid).is_none(), "reaped by the check");
    driver.stop().await.expect("stop after exit");
}

#[tokio::test]
async fn a_missing_program_is_a_spawn_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut driver = ProcessDriver::new(
        ctx(dir.path()),
        process(r#"{"name": "ghost", "command": ["/nonexistent/asctl-test-program"]}"#),
    );
    let err = driver.start().await.expect_err("cannot start");
    assert!(matches!(err, DriverError::Spawn { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/asctl-test-program"),
        "{err}"
    );
    assert!(!err.is_permanent());
}

#[tokio::test]
async fn a_probe_runs_at_its_interval_and_reports_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut driver = ProcessDriver::new(
        ctx(dir.path()),
        process(&format!(
            r#"{{"name": "p", "command": ["sleep", "60"],
                "monitor": {{"interval": "200ms", "timeout": "1s", "probe": {{"tcp": "127.0.0.1:{port}"}}}}}}"#
        )),
    );
    driver.start().await.expect("starts");
    // The first probe runs at once and passes: ready.
    assert!(driver.check().await.is_healthy());
    drop(listener);
    // Before the interval the probe is not due: alive is enough.
    assert!(driver.check().await.is_healthy());
    tokio::time::sleep(Duration::from_millis(250)).await;
    match driver.check().await {
        ResourceHealth::Unhealthy(why) => assert!(why.contains("tcp probe"), "{why}"),
        other => panic!("the probe of a closed port passed: {other:?}"),
    }
    assert!(
        driver
            .failure_details()
            .probe
            .is_some_and(|p| p.contains("tcp probe")),
        "{:?}",
        driver.failure_details()
    );
    driver.stop().await.expect("stops");
}

#[tokio::test]
async fn a_probe_that_never_passes_within_start_timeout_is_a_failed_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = closed_port();
    let mut driver = ProcessDriver::new(
        ctx(dir.path()),
        process(&format!(
            r#"{{"name": "p", "command": ["sleep", "60"],
                "monitor": {{"interval": "10s", "timeout": "1s", "startTimeout": "600ms",
                             "probe": {{"tcp": "127.0.0.1:{port}"}}}}}}"#
        )),
    );
    driver.start().await.expect("starts");
    // Within the grace a failed probe is "starting", with its answer.
    match driver.check().await {
        ResourceHealth::Starting(what) => assert!(
            what.contains("waiting for its probe") && what.contains("tcp probe"),
            "{what}"
        ),
        other => panic!("not starting: {other:?}"),
    }
    // Retried often during the grace (not at the 10 s interval), then it
    // is a failure naming the start timeout.
    let deadline = Instant::now() + Duration::from_secs(5);
    let why = loop {
        match driver.check().await {
            ResourceHealth::Unhealthy(why) => break why,
            ResourceHealth::Starting(_) => {}
            ResourceHealth::Healthy => panic!("a closed port passed"),
        }
        assert!(Instant::now() < deadline, "the start timeout never ran out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        why.contains("not ready within its startTimeout of 600ms"),
        "{why}"
    );
    driver.stop().await.expect("stops");
}

#[tokio::test]
async fn a_dead_process_reports_its_exit_status_and_log_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut driver = ProcessDriver::new(
        ctx(dir.path()),
        process(
            r#"{"name": "p", "command": ["sh", "-c", "for i in 1 2 3 4 5 6 7; do echo line $i; done; echo bye >&2; exit 3"]}"#,
        ),
    );
    driver.start().await.expect("starts");
    let deadline = Instant::now() + Duration::from_secs(5);
    let why = loop {
        if let ResourceHealth::Unhealthy(why) = driver.check().await {
            break why;
        }
        assert!(Instant::now() < deadline, "exit not noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(why.contains("exit status: 3"), "{why}");
    let details = driver.failure_details();
    assert_eq!(details.exit.as_deref(), Some("exit status: 3"));
    assert_eq!(
        details.log_tail,
        ["line 4", "line 5", "line 6", "line 7", "bye"]
    );
    driver.stop().await.expect("stop after exit");
}

// --- probes -------------------------------------------------------------

fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}

/// A one-shot HTTP responder on a thread: answers every connection with
/// `response`, or never answers when `None`.
fn responder(response: Option<&'static str>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut conn in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            match response {
                Some(r) => {
                    let _ = conn.write_all(r.as_bytes());
                }
                None => held.push(conn),
            }
        }
    });
    port
}

fn unhealthy(h: ResourceHealth) -> String {
    match h {
        ResourceHealth::Unhealthy(why) => why,
        other => panic!("expected unhealthy: {other:?}"),
    }
}

const T: Duration = Duration::from_secs(2);

#[tokio::test]
async fn exec_probe_passes_on_exit_zero_and_fails_otherwise() {
    let ok = Probe::Exec(vec!["true".into()]);
    assert_eq!(probe::run(&ok, T).await, ResourceHealth::Healthy);

    let bad = Probe::Exec(vec!["sh".into(), "-c".into(), "exit 4".into()]);
    assert!(unhealthy(probe::run(&bad, T).await).contains("exit status: 4"));

    let missing = Probe::Exec(vec!["/nonexistent/probe".into()]);
    assert!(unhealthy(probe::run(&missing, T).await).contains("cannot start"));
}

#[tokio::test]
async fn exec_probe_times_out() {
    let slow = Probe::Exec(vec!["sleep".into(), "5".into()]);
    let started = Instant::now();
    let why = unhealthy(probe::run(&slow, Duration::from_millis(200)).await);
    assert!(why.contains("within 200ms"), "{why}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn tcp_probe_passes_on_a_listener_and_fails_on_a_closed_port() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let open = Probe::Tcp(Endpoint {
        host: "127.0.0.1".into(),
        port,
    });
    assert_eq!(probe::run(&open, T).await, ResourceHealth::Healthy);

    let closed = Probe::Tcp(Endpoint {
        host: "127.0.0.1".into(),
        port: closed_port(),
    });
    assert!(unhealthy(probe::run(&closed, T).await).contains("tcp probe"));
}

#[tokio::test]
async fn tcp_probe_times_out_on_an_unanswered_connect() {
    // A TEST-NET-1 address (RFC 5737) is never routed to a host; depending on
    // the network the connect hangs (our timeout) or fails at once. Both must
    // be unhealthy, and quickly.
    let nowhere = Probe::Tcp(Endpoint {
        host: "192.0.2.1".into(),
        port: 9,
    });
    let started = Instant::now();
    unhealthy(probe::run(&nowhere, Duration::from_millis(300)).await);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn http_probe_accepts_2xx_and_3xx_only() {
    for (response, healthy) in [
        ("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", true),
        ("HTTP/1.1 204 No Content\r\n\r\n", true),
        (
            "HTTP/1.1 302 Found\r\nlocation: /x\r\ncontent-length: 0\r\n\r\n",
            true,
        ),
        ("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n", false),
        (
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
            false,
        ),
    ] {
        let port = responder(Some(response));
        let p = Probe::Http(format!("http://127.0.0.1:{port}/health"));
        let h = probe::run(&p, T).await;
        assert_eq!(h.is_healthy(), healthy, "{response:?} gave {h:?}");
    }
}

#[tokio::test]
async fn http_probe_fails_on_silence_refusal_and_bad_urls() {
    let silent = responder(None);
    let started = Instant::now();
    let why = unhealthy(
        probe::run(
            &Probe::Http(format!("http://127.0.0.1:{silent}/")),
            Duration::from_millis(300),
        )
        .await,
    );
    assert!(why.contains("within 300ms"), "{why}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let refused = Probe::Http(format!("http://127.0.0.1:{}/", closed_port()));
    assert!(unhealthy(probe::run(&refused, T).await).contains("http probe"));

    let https = Probe::Http("https://127.0.0.1/".into());
    assert!(unhealthy(probe::run(&https, T).await).contains("only http://"));
}

#[tokio::test]
async fn http_probe_against_the_demo_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = closed_port();
    let mut driver = ProcessDriver::new(
        ctx(dir.path()),
        process(&format!(
            r#"{{"name": "demo", "command": ["{}", "demo-server", "--port", "{port}"]}}"#,
            env!("CARGO_BIN_EXE_asctl")
        )),
    );
    driver.start().await.expect("starts");
    let health = Probe::Http(format!("http://127.0.0.1:{port}/health"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !probe::run(&health, T).await.is_healthy() {
        assert!(
            Instant::now() < deadline,
            "demo server never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let missing = Probe::Http(format!("http://127.0.0.1:{port}/missing"));
    assert!(unhealthy(probe::run(&missing, T).await).contains("404"));
    driver.stop().await.expect("stops");
}

#[test]
fn the_demo_server_needs_a_node_name() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_asctl"))
        .args(["demo-server", "--port", "1"])
        .env_remove("ASCTL_NODE")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pass --name or set ASCTL_NODE"), "{stderr}");
}

// --- systemd ------------------------------------------------------------

/// A stand-in `systemctl` that logs its arguments and fails for units named
/// `broken*`, so the driver's calls can be checked without systemd.
fn fake_systemctl(dir: &Path) -> (PathBuf, PathBuf) {
    let calls = dir.join("calls");
    let script = dir.join("systemctl");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\ncase \"$*\" in *broken*) echo 'unit is broken' >&2; exit 1;; esac\nexit 0\n",
            calls.display()
        ),
    )
    .expect("write script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (script, calls)
}

#[tokio::test]
async fn systemd_units_go_through_systemctl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (systemctl, calls) = fake_systemctl(dir.path());
    let mut unit = ServiceDriver::new("web.service".into(), systemctl.clone());
    unit.start().await.expect("starts");
    assert!(unit.is_active().await.is_healthy());
    unit.stop().await.expect("stops");
    let log = std::fs::read_to_string(&calls).expect("calls");
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "start web.service",
            "is-active --quiet web.service",
            "stop web.service"
        ]
    );

    let mut broken = ServiceDriver::new("broken.service".into(), systemctl);
    let err = broken.start().await.expect_err("fails");
    assert!(err.to_string().contains("unit is broken"), "{err}");
    assert!(!broken.is_active().await.is_healthy());
}

#[tokio::test]
async fn without_systemctl_services_are_unavailable() {
    let mut unit = ServiceDriver::new("web.service".into(), "/nonexistent/systemctl".into());
    let err = unit.start().await.expect_err("no systemctl");
    assert!(err.is_permanent(), "{err:?}");
    assert!(
        err.to_string()
            .contains("systemd services are not available on this node"),
        "{err}"
    );
}

// --- resources without a driver on this platform ---------------------------------------

#[tokio::test]
async fn unimplemented_resources_fail_clearly_and_never_pretend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec: ResourceGroupSpec = serde_json::from_value(json(
        r#"{"preferredNodes": ["node1"], "dataSources": ["disk1"],
            "ipAddresses": [{"address": "10.1.0.100/24", "line": "lan"}],
            "nodeAlias": "sqlalias", "module": {"type": "sql-server-2005"}}"#,
    ))
    .expect("valid group spec");
    // A type without a built-in driver and without an OCF `agent`.
    let mut sources = asctl::drivers::datasource::DataSources::new();
    sources.insert(
        name("disk1"),
        serde_json::from_value(json(
            r#"{"type": "mirroring", "device": {"backing": "rdm-physical", "path": "/dev/sdz"}}"#,
        ))
        .expect("valid data source"),
    );
    let mut resources = Resource::for_group(&ctx(dir.path()), &spec, &sources);
    let labels: Vec<String> = resources.iter().map(Resource::label).collect();
    assert_eq!(
        labels,
        [
            "data source disk1",
            "ip 10.1.0.100/24",
            "node alias sqlalias",
            "module sql-server-2005"
        ]
    );
    let mut messages = Vec::new();
    for r in &mut resources {
        let err = r.start().await.expect_err("must not pretend");
        assert!(err.is_permanent(), "{err:?}");
        assert!(!r.check().await.is_healthy());
        r.stop().await.expect("nothing to stop");
        messages.push(err.to_string());
    }
    assert!(
        messages[0]
            .contains("no driver for `mirroring` on linux: give data source `disk1` an `agent`"),
        "{}",
        messages[0]
    );
    // The IP driver is real: on a node without the line's subnet it says so.
    assert!(messages[1].contains("no interface on this node has an address in 10.1.0.0/24"));
    assert!(messages[2].contains(
        "node alias `sqlalias` (a Windows NetBIOS name) is unsupported on this platform"
    ));
    assert!(messages[3].contains("unsupported on this platform"));
}

fn gated(dir: &Path, allow: bool) -> GroupContext {
    let mut c = ctx(dir);
    c.exec_gate = Some(asctl::drivers::process::ExecGate {
        exe: env!("CARGO_BIN_EXE_asctl").into(),
        may_start: std::sync::Arc::new(move || allow),
    });
    c
}

#[tokio::test]
async fn a_gated_process_runs_its_command_in_the_recorded_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("ran");
    let spec = process(&format!(
        r#"{{"name": "server", "command": ["sh", "-c", "touch {}; exec sleep 60"]}}"#,
        marker.display()
    ));
    let mut driver = ProcessDriver::new(gated(dir.path(), true), spec);
    driver.start().await.expect("starts");
    let pid = driver.pid().expect("a pid");
    eventually("the command ran", Duration::from_secs(5), || {
        marker.exists()
    })
    .await;
    // The gate exec'd the command: the recorded pid is the command now.
    let record = std::fs::read_to_string(dir.path().join("run/web/server.pid")).expect("record");
    assert!(record.contains(&format!("\"pid\":{pid}")), "{record}");
    eventually(
        "the recorded pid runs sleep",
        Duration::from_secs(5),
        || {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with("sleep\0"))
        },
    )
    .await;
    driver.stop().await.expect("stops");
    assert!(!live(pid));
}

#[tokio::test]
async fn a_gated_process_never_runs_when_the_lease_lapsed_meanwhile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("ran");
    let spec = process(&format!(
        r#"{{"name": "server", "command": ["touch", "{}"]}}"#,
        marker.display()
    ));
    let mut driver = ProcessDriver::new(gated(dir.path(), false), spec);
    let err = driver.start().await.expect_err("refused");
    assert!(err.to_string().contains("lease lapsed"), "{err}");
    assert!(!dir.path().join("run/web/server.pid").exists());
    std::thread::sleep(Duration::from_millis(300));
    assert!(!marker.exists(), "the command ran");
}

#[test]
fn the_gate_runs_nothing_without_the_go_ahead() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("ran");
    // The agent died before saying go: the pipe closed, nothing to read.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_asctl"))
        .args(["exec-gate", "--", "touch"])
        .arg(&marker)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(!marker.exists());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no go-ahead"));
}

#[tokio::test]
async fn a_gated_start_of_a_missing_program_is_a_spawn_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut driver = ProcessDriver::new(
        gated(dir.path(), true),
        process(r#"{"name": "ghost", "command": ["asctl-test-no-such-program"]}"#),
    );
    let err = driver.start().await.expect_err("cannot start");
    assert!(matches!(err, DriverError::Spawn { .. }), "{err:?}");
    assert!(
        err.to_string().contains("asctl-test-no-such-program"),
        "{err}"
    );
}
