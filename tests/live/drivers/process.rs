//! A process in its own group, its stop, cgroups, exits and start errors.

use super::*;

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
    // The shell writes the log lines and then execs `sleep`: /proc is read
    // once that exec is done (its environment read in the middle of an
    // exec came back partial, without GREETING, once in CI).
    eventually("the shell to exec sleep", Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    })
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

/// What the driver's check says once the process it runs has exited (within
/// 5 s, checked every 20 ms).
async fn until_unhealthy(driver: &mut ProcessDriver) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let ResourceHealth::Unhealthy(why) = driver.check().await {
            return why;
        }
        assert!(Instant::now() < deadline, "exit not noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
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
    let why = until_unhealthy(&mut driver).await;
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
    let listener = crate::support::listener();
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
    let why = until_unhealthy(&mut driver).await;
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
