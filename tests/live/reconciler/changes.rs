//! Changes of the configuration and restarts of the agent: what restarts a group, what does not, adoption of what still runs.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_command_restarts_the_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = Node::start(dir.path(), web(r#"["sleep", "61"]"#, ""), &["web"]);
    node.wait_group("web", GroupState::Online).await;
    let old = node.pid("web", "server").expect("pid");

    node.set(web(r#"["sleep", "62"]"#, ""), &["web"]);
    eventually("the new command runs", || {
        node.pid("web", "server")
            .is_some_and(|p| p != old && cmdline(p).contains("sleep 62"))
    })
    .await;
    let status = node.wait_group("web", GroupState::Online).await;
    assert_eq!(status.restarts, 0, "a spec change is not a failure");
    eventually("the old process is gone", || !live(old)).await;
    node.shutdown(false).await;
    eventually("shutdown stopped it", || {
        node.pid("web", "server").is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placement_only_change_does_not_restart_the_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = Node::start(dir.path(), web(r#"["sleep", "63"]"#, ""), &["web"]);
    node.wait_group("web", GroupState::Online).await;
    let pid = node.pid("web", "server").expect("pid");

    // failback and restart policy change: `plan` says "stays on node1".
    node.set(
        web(
            r#"["sleep", "63"]"#,
            "  failback: auto\n  restart: {limit: 5, window: 1m}\n",
        ),
        &["web"],
    );
    node.wait("the new generation is seen", |r| {
        r.generation_seen == node.generation
    })
    .await;
    // Give a wrongful restart the time to happen, then check it did not.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        node.pid("web", "server"),
        Some(pid),
        "the process was restarted"
    );
    assert!(live(pid));
    node.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_removed_from_the_configuration_goes_offline_and_out_of_the_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = Node::start(dir.path(), web(r#"["sleep", "60"]"#, ""), &["web"]);
    node.wait_group("web", GroupState::Online).await;
    let pid = node.pid("web", "server").expect("pid");

    node.set(Arc::new(Config::default()), &["web"]);
    node.wait("web leaves the report", |r| !r.groups.contains_key("web"))
        .await;
    eventually("the process is gone", || !live(pid)).await;
    node.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_adopts_what_still_runs_and_stops_what_is_not_wanted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let two = config(
        "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {name: web}\nspec:\n  \
         preferredNodes: [node1]\n  processes: [{name: server, command: [sleep, \"60\"]}]\n---\n\
         apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {name: batch}\nspec:\n  \
         preferredNodes: [node1]\n  processes: [{name: worker, command: [sleep, \"60\"]}]\n",
    );
    let mut node = Node::start(dir.path(), two.clone(), &["web", "batch"]);
    node.wait("both online", |r| {
        r.groups.len() == 2 && r.groups.values().all(|g| g.state == GroupState::Online)
    })
    .await;
    let web_pid = node.pid("web", "server").expect("pid");
    let batch_pid = node.pid("batch", "worker").expect("pid");

    // The agent stops but leaves its groups running.
    node.shutdown(true).await;
    assert!(live(web_pid) && live(batch_pid), "left running");

    // The next run keeps web here and no longer wants batch on this node.
    let node = Node::start(dir.path(), two, &["web"]);
    let status = node.wait_group("web", GroupState::Online).await;
    assert_eq!(
        node.pid("web", "server"),
        Some(web_pid),
        "adopted, not restarted"
    );
    assert_eq!(status.restarts, 0);
    node.wait_group("batch", GroupState::Offline).await;
    eventually("batch's stale process is stopped", || !live(batch_pid)).await;
    assert!(node.pid("batch", "worker").is_none());
    assert!(live(web_pid));

    // An adopted process is watched too: killing it is a failure and a restart.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(web_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    node.wait("restart of the adopted process", |r| {
        r.groups
            .get("web")
            .is_some_and(|g| g.state == GroupState::Online && g.restarts == 1)
    })
    .await;
    let mut node = node;
    let new_pid = node.pid("web", "server").expect("pid");
    node.shutdown(false).await;
    eventually("stopped at shutdown", || !live(new_pid)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_replaces_a_process_started_from_an_older_spec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = Node::start(dir.path(), web(r#"["sleep", "63"]"#, ""), &["web"]);
    node.wait_group("web", GroupState::Online).await;
    let old = node.pid("web", "server").expect("pid");
    node.shutdown(true).await;

    let mut node = Node::start(dir.path(), web(r#"["sleep", "64"]"#, ""), &["web"]);
    node.wait_group("web", GroupState::Online).await;
    let new = node.pid("web", "server").expect("pid");
    assert_ne!(new, old);
    eventually("the new command runs", || cmdline(new).contains("sleep 64")).await;
    eventually("the old one was stopped", || !live(old)).await;
    node.shutdown(false).await;
}
