//! Failures: restarts counted in their window, a failed group staying failed, failing probes, an address that cannot be added.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_is_restarted_and_counted_then_the_group_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = web(r#"["sleep", "60"]"#, "  restart: {limit: 2, window: 1m}\n");
    let node = Node::start(dir.path(), cfg, &["web"]);
    node.wait_group("web", GroupState::Online).await;

    let mut last = node.pid("web", "server").expect("pid");
    for round in 1..=2u32 {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(last as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill");
        let r = node
            .wait(&format!("restart {round}"), |r| {
                r.groups
                    .get("web")
                    .is_some_and(|g| g.state == GroupState::Online && g.restarts == round)
            })
            .await;
        let pid = node.pid("web", "server").expect("new pid");
        assert_ne!(pid, last, "a new process");
        assert!(live(pid));
        eventually("the killed one is reaped", || {
            !Path::new(&format!("/proc/{last}")).exists()
        })
        .await;
        assert_eq!(r.groups["web"].restarts, round);
        last = pid;
    }

    // A third failure within the window is one too many.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(last as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let failed = node.wait_group("web", GroupState::Failed).await;
    assert_eq!(failed.restarts, 2);
    let message = failed.message.unwrap_or_default();
    assert!(message.contains("restart limit reached"), "{message}");
    assert!(
        node.pid("web", "server").is_none(),
        "nothing runs once Failed"
    );
}

/// `restart.window` slides: a restart older than the window no longer counts
/// against the limit. Limit 1 in a 2 s window: a kill, a wait longer than the
/// window, a second kill restarts again (without the expiry it would fail);
/// a third kill at once, inside the window of the second restart, fails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_older_than_the_window_no_longer_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let window = Duration::from_secs(2);
    let cfg = web(r#"["sleep", "60"]"#, "  restart: {limit: 1, window: 2s}\n");
    let node = Node::start(dir.path(), cfg, &["web"]);
    node.wait_group("web", GroupState::Online).await;
    let kill = |pid: u32| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill");
    };
    let online_after = |n: u32| {
        move |r: &NodeReport| {
            r.groups
                .get("web")
                .is_some_and(|g| g.state == GroupState::Online && g.restarts == n)
        }
    };

    kill(node.pid("web", "server").expect("pid"));
    node.wait("restart 1", online_after(1)).await;
    // The first restart was recorded before its Online was reported, so
    // after this it is out of the window whatever the scheduling.
    tokio::time::sleep(window + Duration::from_millis(500)).await;

    let pid = node.pid("web", "server").expect("pid");
    kill(pid);
    let r = node.wait("restart 2", online_after(2)).await;
    assert_eq!(
        r.groups["web"].restarts, 2,
        "restarted beyond the limit of 1"
    );
    let second = node.pid("web", "server").expect("pid");
    assert_ne!(second, pid);

    // At once: the second restart is inside the window, one is the limit.
    kill(second);
    let failed = node.wait_group("web", GroupState::Failed).await;
    assert_eq!(failed.restarts, 2);
    let message = failed.message.unwrap_or_default();
    assert!(
        message.contains("restart limit reached: 1 in 2s"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_group_stays_failed_until_its_spec_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let crashing = web(
        r#"["sh", "-c", "exit 1"]"#,
        "  restart: {limit: 1, window: 1m}\n",
    );
    let mut node = Node::start(dir.path(), crashing.clone(), &["web"]);
    let failed = node.wait_group("web", GroupState::Failed).await;
    assert_eq!(failed.restarts, 1);

    // Same spec again (a new generation): no new attempt.
    node.set(crashing, &["web"]);
    node.wait("generation 2 seen", |r| r.generation_seen == 2)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = node.report().groups["web"].clone();
    assert_eq!((still.state, still.restarts), (GroupState::Failed, 1));

    // A fixed spec is tried afresh.
    node.set(web(r#"["sleep", "60"]"#, ""), &["web"]);
    node.wait_group("web", GroupState::Online).await;
    node.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_probe_counts_as_a_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = free_port();
    let cfg = web(
        r#"["sleep", "60"]"#,
        &format!(
            "      monitor: {{interval: 100ms, timeout: 1s, startTimeout: 500ms, \
             probe: {{tcp: \"127.0.0.1:{closed}\"}}}}\n  \
             restart: {{limit: 0, window: 1m}}\n"
        ),
    );
    let node = Node::start(dir.path(), cfg, &["web"]);
    let failed = node.wait_group("web", GroupState::Failed).await;
    let message = failed.message.unwrap_or_default();
    assert!(message.contains("tcp probe"), "{message}");
    assert!(
        message.contains("not ready within its startTimeout of 500ms"),
        "{message}"
    );
    // The report keeps the probe's last answer with the resource's error.
    let error = &failed.errors["process server"];
    assert!(
        error
            .probe
            .as_deref()
            .is_some_and(|p| p.contains("tcp probe")),
        "{error:?}"
    );
    assert!(node.pid("web", "server").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_ip_it_cannot_add_fails_the_group_before_any_process_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("started");
    let cfg = web(
        &format!(
            r#"["sh", "-c", "touch {}; exec sleep 60"]"#,
            marker.display()
        ),
        "  ipAddresses: [{address: 10.1.0.100/24, line: lan}]\n",
    );
    let node = Node::start(dir.path(), cfg, &["web"]);
    let failed = node.wait_group("web", GroupState::Failed).await;
    let message = failed.message.unwrap_or_default();
    assert!(
        message.contains("no interface on this node has an address in 10.1.0.0/24"),
        "{message}"
    );
    assert_eq!(
        failed.restarts, 0,
        "no local restart can fix a missing driver"
    );
    assert!(
        !marker.exists(),
        "the process must not start without its address"
    );
    assert!(node.pid("web", "server").is_none());
}
