//! The node reconciler with real processes: groups placed here go online in
//! dependency order and stay there, everything else goes offline. The
//! helpers here (a reconciler of one node, `Node`, and /proc and HTTP
//! probes) serve `run.rs`, `failures.rs` and `changes.rs`.

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

use crate::support::free_port;

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

mod changes;
mod failures;
mod leftovers;
mod run;
