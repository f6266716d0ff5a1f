//! Network namespaces for the root-only runtime tests: each test builds its
//! own namespaces, links and addresses with `ip`, runs agent code inside a
//! namespace on a thread of its own, and removes everything when the guards
//! drop (also when the test fails).
//!
//! Names carry the test's tag and the process id, so tests running in
//! parallel (and a leftover of a killed run) never collide.
#![allow(dead_code)]

pub mod agent;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Why these tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "`ip netns` fails: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("no `ip` command: {e}")),
    }
}

/// Fails the test when namespaces are unavailable. The tests that call it
/// are `#[ignore]`d, so a plain `cargo test` reports them as not run; run
/// with `--include-ignored` without root, they fail rather than pass having
/// checked nothing.
pub fn require_root() {
    if let Some(why) = unavailable() {
        panic!(
            "this test needs root and `ip netns` ({why}): run it as root, e.g. with scripts/test"
        );
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Runs `ip ARGS...`, panicking with its stderr on failure.
pub fn ip(args: &str) {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `ip ARGS...` and returns its stdout.
pub fn ip_out(args: &str) -> String {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("run ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("asctl-{tag}-{}-{n}", std::process::id());
        ip(&format!("netns add {name}"));
        let ns = Netns { name };
        ns.ip("link set lo up");
        ns
    }

    /// `ip -n <ns> ARGS...`
    pub fn ip(&self, args: &str) {
        ip(&format!("-n {} {args}", self.name))
    }

    pub fn ip_out(&self, args: &str) -> String {
        ip_out(&format!("-n {} {args}", self.name))
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, argv: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .output()
            .expect("run ip netns exec")
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        let out = self.exec(&["sysctl", "-qw", &format!("{key}={value}")]);
        assert!(
            out.status.success(),
            "sysctl {key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Enters the namespace on the calling thread (only that thread).
    pub fn enter(&self) {
        let f = File::open(format!("/run/netns/{}", self.name)).expect("open netns");
        // SAFETY: a valid namespace descriptor; affects this thread only.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }

    /// Runs `f` on a new thread inside the namespace, with a current-thread
    /// tokio runtime: every socket it opens belongs to the namespace.
    pub fn spawn<F, Fut, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = R>,
        R: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let f_ns = File::open(&path).expect("open netns");
            // SAFETY: as in `enter`.
            let rc = unsafe { libc::setns(f_ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(f())
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace removes its interfaces and veth peers.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A veth pair from `a` (named `a_if`) to `b` (named `b_if`), addresses set
/// and both ends up.
pub fn veth(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    a.ip(&format!(
        "link add {a_if} type veth peer name {b_if} netns {}",
        b.name
    ));
    a.ip(&format!("addr add {a_addr} dev {a_if}"));
    b.ip(&format!("addr add {b_addr} dev {b_if}"));
    a.ip(&format!("link set {a_if} up"));
    b.ip(&format!("link set {b_if} up"));
}

/// A port of a bridge in `sw` (named `<bridge>-<n>`) linked to `node`'s
/// interface `ifname` with `addr`.
pub fn bridge_port(sw: &Netns, bridge: &str, port: &str, node: &Netns, ifname: &str, addr: &str) {
    sw.ip(&format!(
        "link add {port} type veth peer name {ifname} netns {}",
        node.name
    ));
    sw.ip(&format!("link set {port} master {bridge}"));
    sw.ip(&format!("link set {port} up"));
    node.ip(&format!("addr add {addr} dev {ifname}"));
    node.ip(&format!("link set {ifname} up"));
}

/// Polls `cond` every 10 ms until it holds or `limit` passes; returns how
/// long it took, or panics with `what`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
