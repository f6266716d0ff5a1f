//! The lease guard (`asctl guard`) in a network namespace: a node's managed
//! address (added by the IP driver, which records it) and a recorded process
//! group are fenced when the lease runs out or the pipe closes without
//! `detach`, and left alone after `detach`. Root only.

use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::agent::n;
use crate::support::{Netns, veth};
use asctl::drivers::ip::IpDriver;
use asctl::model::ManagedIp;

const ASCTL: &str = env!("CARGO_BIN_EXE_asctl");
const LEASE_MS: u64 = 500;
/// What the guard may take beyond the lease: its kill and netlink work and
/// this test's polling.
const MARGIN: Duration = Duration::from_millis(700);

/// A node: a namespace with the line `lan`, the managed address on it
/// (recorded under `data/ips/` by the driver), and a `sleep` in its own
/// process group recorded under `data/run/` as the process driver does.
struct Node {
    ns: Netns,
    _peer: Netns,
    data: tempfile::TempDir,
    app: Child,
    vip: &'static str,
}

fn node(tag: &str, subnet: u8) -> Node {
    let ns = Netns::new(tag);
    let peer = Netns::new(&format!("{tag}p"));
    veth(
        &ns,
        "lan",
        &format!("10.211.{subnet}.1/24"),
        &peer,
        "lan",
        &format!("10.211.{subnet}.2/24"),
    );
    let data = tempfile::tempdir().expect("tempdir");
    let vip: &'static str = Box::leak(format!("10.211.{subnet}.100/24").into_boxed_str());
    let dir = data.path().to_owned();
    ns.spawn(move || async move {
        let ip = ManagedIp {
            address: vip.parse().expect("cidr"),
            line: n("lan"),
        };
        IpDriver::new(ip)
            .recorded_in(dir)
            .start()
            .await
            .expect("add the managed address");
    })
    .join()
    .expect("ip thread");
    let app = {
        use std::os::unix::process::CommandExt;
        Command::new("sleep")
            .arg("600")
            .process_group(0)
            .spawn()
            .expect("sleep")
    };
    record(data.path(), app.id() as i32);
    Node {
        ns,
        _peer: peer,
        data,
        app,
        vip,
    }
}

/// The pid file the process driver writes (`run/<group>/<process>.pid`).
fn record(data: &Path, pid: i32) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = &stat[stat.rfind(')').expect(")") + 1..];
    let start: u64 = rest
        .split_whitespace()
        .nth(19)
        .expect("field 22")
        .parse()
        .expect("u64");
    let dir = data.join("run/web");
    std::fs::create_dir_all(&dir).expect("run dir");
    std::fs::write(
        dir.join("server.pid"),
        format!(r#"{{"pid":{pid},"startTime":{start},"fingerprint":"test"}}"#),
    )
    .expect("pid file");
}

impl Node {
    fn guard(&self) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.ns.name, ASCTL, "guard", "--data-dir"])
            .arg(self.data.path())
            .stdin(Stdio::piped())
            .spawn()
            .expect("asctl guard")
    }

    fn address_present(&self) -> bool {
        self.ns
            .ip_out("-o addr show dev lan")
            .split_whitespace()
            .any(|w| w == self.vip)
    }

    /// The app has exited (reaped here, as its parent).
    fn app_gone(&mut self) -> bool {
        matches!(self.app.try_wait(), Ok(Some(_)))
    }

    /// Polls until both the address and the app are gone; the time from
    /// `t0`.
    fn fenced_within(&mut self, t0: Instant, limit: Duration) -> Option<Duration> {
        while t0.elapsed() < limit {
            if self.app_gone() && !self.address_present() {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.app.kill();
        let _ = self.app.wait();
    }
}

/// Renews the guard's lease every quarter lease from a thread of its own,
/// as the agent's renewal task does, until [`Renewer::stop`]: whatever the
/// test does meanwhile (spawning `ip` takes hundreds of milliseconds on a
/// loaded machine) happens under a lease that is kept, not in a gap after
/// the last renewal.
struct Renewer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Renewals>,
}

/// What a [`Renewer`] did: when it last renewed (before the write: the
/// guard got it no earlier) and the longest time between two renewals.
struct Renewals {
    pipe: ChildStdin,
    last: Instant,
    longest_gap: Duration,
}

impl Renewer {
    fn start(mut pipe: ChildStdin) -> Renewer {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            // One write a renewal: the guard sees whole lines at once.
            let line = format!("renew {LEASE_MS}\n");
            let mut last = Instant::now();
            let mut longest_gap = Duration::ZERO;
            loop {
                longest_gap = longest_gap.max(last.elapsed());
                last = Instant::now();
                pipe.write_all(line.as_bytes()).expect("renew");
                std::thread::sleep(Duration::from_millis(LEASE_MS / 4));
                if stopped.load(Ordering::SeqCst) {
                    return Renewals {
                        pipe,
                        last,
                        longest_gap,
                    };
                }
            }
        });
        Renewer { stop, thread }
    }

    /// Stops renewing (after the renewal in progress, if any).
    fn stop(self) -> Renewals {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("renewer thread")
    }
}

#[test]
#[ignore = "needs root: run with --include-ignored"]
fn a_lease_that_runs_out_fences_the_node() {
    crate::support::require_root();
    let mut node = node("gla", 1);
    let mut guard = node.guard();
    let renewer = Renewer::start(guard.stdin.take().expect("stdin"));
    // Renewals keep everything up past several lease lengths, and while
    // this test looks.
    std::thread::sleep(Duration::from_millis(LEASE_MS * 5 / 2));
    let kept = node.address_present() && !node.app_gone();
    let Renewals {
        pipe,
        last,
        longest_gap,
    } = renewer.stop();
    // A gap of a whole lease between the renewals (a starved renewer
    // thread) makes a fence right, not a fault: the message says so.
    assert!(
        kept,
        "fenced while renewed every {} ms (longest gap between renewals here: {} ms, \
         lease {LEASE_MS} ms)",
        LEASE_MS / 4,
        longest_gap.as_millis()
    );
    // The agent freezes: the pipe stays open, renewals stop.
    let took = node
        .fenced_within(last, Duration::from_millis(LEASE_MS) + MARGIN)
        .expect("address and process gone within the lease and a margin");
    eprintln!(
        "fenced {} ms after the last renewal (lease {LEASE_MS} ms)",
        took.as_millis()
    );
    assert!(
        took >= Duration::from_millis(LEASE_MS - 50),
        "not before the lease"
    );
    // The driver deletes the record right after the address (the address
    // may be seen gone a moment before its record).
    let record = node.data.path().join("ips/10.211.1.100_24");
    let t = Instant::now();
    while record.exists() && t.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!record.exists(), "the record goes with the address");
    drop(pipe);
    let _ = guard.wait();
}

#[test]
#[ignore = "needs root: run with --include-ignored"]
fn an_agent_gone_without_detaching_is_fenced_at_once() {
    crate::support::require_root();
    let mut node = node("glb", 2);
    let mut guard = node.guard();
    let mut pipe = guard.stdin.take().expect("stdin");
    writeln!(pipe, "renew 60000").expect("renew");
    std::thread::sleep(Duration::from_millis(200));
    // kill -9 of the agent closes its end of the pipe.
    drop(pipe);
    let took = node
        .fenced_within(Instant::now(), MARGIN)
        .expect("fenced at the end of input, long before the lease");
    eprintln!("fenced {} ms after the pipe closed", took.as_millis());
    let status = guard.wait().expect("guard exits");
    assert!(status.success());
}

#[test]
#[ignore = "needs root: run with --include-ignored"]
fn detach_leaves_the_groups_running() {
    crate::support::require_root();
    let mut node = node("glc", 3);
    let mut guard = node.guard();
    let mut pipe = guard.stdin.take().expect("stdin");
    writeln!(pipe, "renew {LEASE_MS}").expect("renew");
    writeln!(pipe, "detach").expect("detach");
    drop(pipe);
    let status = guard.wait().expect("guard exits");
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(LEASE_MS) + MARGIN);
    assert!(
        node.address_present(),
        "the address stays for the next agent"
    );
    assert!(!node.app_gone(), "the process stays for the next agent");
}
