//! The node reconciler with real processes: groups placed here go online in
//! dependency order and stay there, everything else goes offline.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use asctl::agent::execution::reconciler::{self, Desired, Options, ReconcilerHandle};
use asctl::model::{Config, Name};
use asctl::wire::{GroupState, LocalGroupStatus, NodeReport};
use tokio::sync::watch;

const DEADLINE: Duration = Duration::from_secs(15);

fn name(s: &str) -> Name {
    s.parse().expect("valid name")
}

/// Resource groups from YAML documents, through the real loader.
fn config(yaml: &str) -> Arc<Config> {
    let loaded = asctl::load::load_texts([("test.yaml", yaml.as_bytes())]);
    assert!(loaded.findings.is_empty(), "{:#?}", loaded.findings);
    Arc::new(loaded.config)
}

/// One group `web` running `command` (a JSON array), plus `extra` spec lines.
fn web(command: &str, extra: &str) -> Arc<Config> {
    config(&format!(
        "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {{name: web}}\nspec:\n  \
         preferredNodes: [node1]\n  processes:\n    - name: server\n      command: {command}\n      \
         stopTimeout: 2s\n{extra}"
    ))
}

struct Node {
    dir: PathBuf,
    desired: watch::Sender<Desired>,
    handle: Option<ReconcilerHandle>,
    generation: u64,
}

impl Node {
    fn start(dir: &Path, config: Arc<Config>, here: &[&str]) -> Node {
        let (desired, rx) = watch::channel(Desired {
            generation: 1,
            config,
            groups_here: here.iter().map(|g| name(g)).collect(),
        });
        let mut opts = Options::new(name("node1"), dir.to_path_buf());
        opts.tick = Duration::from_millis(50);
        opts.asctl_exe = Some(PathBuf::from(env!("CARGO_BIN_EXE_asctl")));
        Node {
            dir: dir.to_path_buf(),
            desired,
            handle: Some(reconciler::spawn(opts, rx)),
            generation: 1,
        }
    }

    fn set(&mut self, config: Arc<Config>, here: &[&str]) {
        self.generation += 1;
        self.desired.send_replace(Desired {
            generation: self.generation,
            config,
            groups_here: here.iter().map(|g| name(g)).collect(),
        });
    }

    fn report(&self) -> NodeReport {
        self.handle().reports.borrow().clone()
    }

    fn handle(&self) -> &ReconcilerHandle {
        self.handle.as_ref().expect("running")
    }

    /// Waits until `cond` holds for the report, failing the test at the deadline.
    async fn wait(&self, what: &str, cond: impl Fn(&NodeReport) -> bool) -> NodeReport {
        let mut rx = self.handle().reports.clone();
        let res = tokio::time::timeout(DEADLINE, rx.wait_for(|r| cond(r))).await;
        match res {
            Ok(Ok(r)) => r.clone(),
            _ => panic!(
                "timed out waiting for {what}; last report: {:#?}",
                self.report()
            ),
        }
    }

    async fn wait_group(&self, group: &str, state: GroupState) -> LocalGroupStatus {
        let r = self
            .wait(&format!("{group} {state:?}"), |r| {
                r.groups.get(group).is_some_and(|g| g.state == state)
            })
            .await;
        r.groups[group].clone()
    }

    /// The pid recorded for a process (`<data_dir>/run/<group>/<process>.pid`).
    fn pid(&self, group: &str, process: &str) -> Option<u32> {
        let path = self.dir.join(format!("run/{group}/{process}.pid"));
        let text = std::fs::read_to_string(path).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["pid"].as_u64().and_then(|p| u32::try_from(p).ok())
    }

    async fn shutdown(&mut self, leave_running: bool) {
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(DEADLINE, h.shutdown(leave_running))
                .await
                .expect("shutdown in time");
        }
    }
}

/// Live (not a zombie) per /proc.
fn live(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s
            .rfind(')')
            .and_then(|i| s[i + 1..].trim_start().chars().next());
        !matches!(state, Some('Z' | 'X') | None)
    })
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The head and body of `GET /`, or `None` while nothing answers.
fn http_get(port: u16) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.to_ascii_lowercase(), body.to_owned()))
}

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
