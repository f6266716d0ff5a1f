//! The drivers against real processes, sockets and programs, by driver:
//! processes (`process.rs`), probes and the demo server (`probes.rs`),
//! systemd units and resources without a driver (`systemd.rs`), and starts
//! through the exec gate (`gate.rs`). The helpers here serve them all.

use std::collections::BTreeMap;
use std::io::{Read, Write};
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

/// A port nothing listens on (and no other test of this process uses).
fn closed_port() -> u16 {
    crate::support::free_port()
}

mod gate;
mod probes;
mod process;
mod systemd;
