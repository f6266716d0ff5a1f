//! A real local domain for tests: the quickstart rewritten to free ports,
//! prepared by `asctl up --init-only`, with one `asctl agent` process per
//! node that the test can kill and restart.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const ASCTL: &str = env!("CARGO_BIN_EXE_asctl");

/// The ports this test process has handed out, TCP and UDP. The kernel
/// gives a port to whoever binds port 0 next once it is closed, and the
/// tests of this binary run at once: a domain's ports are only bound
/// seconds after they were picked (when its agents, or its groups after
/// the apply, start), so without this record another test could be handed
/// the same port in between, and one of the two agents would fail to bind.
static HANDED: std::sync::Mutex<(BTreeSet<u16>, BTreeSet<u16>)> =
    std::sync::Mutex::new((BTreeSet::new(), BTreeSet::new()));

/// Whether `port` (of TCP, or of UDP) was not handed out before; records it.
fn first_time(udp: bool, port: u16) -> bool {
    let mut handed = HANDED.lock().unwrap_or_else(|e| e.into_inner());
    let set = if udp { &mut handed.1 } else { &mut handed.0 };
    set.insert(port)
}

/// A listener on 127.0.0.1, on a port no other test of this process was
/// given ([`HANDED`]).
pub fn listener() -> TcpListener {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
        if first_time(false, l.local_addr().expect("its address").port()) {
            return l;
        }
    }
}

/// A TCP port free now on 127.0.0.1 and given to no other test of this
/// process: for a listener something else starts later.
pub fn free_port() -> u16 {
    listener().local_addr().expect("its address").port()
}

/// A UDP port free on every address now, given to no other test of this
/// process: the heartbeat port of one test domain, so that domains of tests
/// running at once never share one (a second agent on an address cannot
/// bind the port).
pub fn free_udp_port() -> u16 {
    loop {
        let port = UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("a free UDP port");
        if first_time(true, port) {
            return port;
        }
    }
}

/// Polls `f` until it returns `Some`, or panics with `what` at the deadline.
pub fn eventually<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    poll(timeout, f).unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `f` until it returns `Some`, or `None` at the deadline.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `GET /` of a demo server: the node name it answers, or `None` when
/// nothing listens.
pub fn demo_answer(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let body = text.split("\r\n\r\n").nth(1)?;
    Some(body.trim().to_owned())
}

/// The pid a node's process driver recorded for `group`'s `process`.
pub fn recorded_pid(d: &LiveDomain, node: &str, group: &str, process: &str) -> Option<i32> {
    let path = d
        .state
        .join(format!("nodes/{node}/data/run/{group}/{process}.pid"));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v.get("pid")?.as_i64().map(|p| p as i32)
}

/// The process runs (a zombie waiting for its frozen parent does not).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s[s.rfind(')').map_or(0, |i| i + 1)..]
            .split_whitespace()
            .next();
        !matches!(state, Some("Z" | "X" | "x") | None)
    })
}

pub struct Ports {
    pub agents: [u16; 3],
    pub demo: [u16; 3],
}

/// A local three-node domain.
pub struct LiveDomain {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub state: PathBuf,
    pub ports: Ports,
    pub agents: BTreeMap<String, Child>,
    /// The nodes [`Self::wait_formed`] waits for (node1..node3 by default).
    pub nodes: Vec<String>,
    /// Every member with a state directory, for [`Self::agent_logs`].
    pub members: Vec<String>,
}

impl LiveDomain {
    /// Copies examples/quickstart with free ports and a heartbeat timeout
    /// long enough that restarting an agent does not fail its groups over.
    pub fn prepare() -> LiveDomain {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config");
        std::fs::create_dir_all(&config).expect("config dir");
        let ports = Ports {
            agents: [free_port(), free_port(), free_port()],
            demo: [free_port(), free_port(), free_port()],
        };
        let heartbeat = free_udp_port();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
        for e in std::fs::read_dir(&src).expect("quickstart") {
            let e = e.expect("entry");
            let mut text = std::fs::read_to_string(e.path()).expect("read");
            // The demo ports first, and only where a port is written (quoted
            // or after a colon): a bare "8083" also matches inside a free
            // agent port such as 38083 put in before.
            for (i, p) in ports.demo.iter().enumerate() {
                let old = 8081 + i;
                text = text
                    .replace(&format!("\"{old}\""), &format!("\"{p}\""))
                    .replace(&format!(":{old}"), &format!(":{p}"));
            }
            for (i, p) in ports.agents.iter().enumerate() {
                text = text.replace(
                    &format!("127.0.0.1:{}", 7401 + i),
                    &format!("127.0.0.1:{p}"),
                );
            }
            for old in [7401, 7402, 7403, 8081, 8082, 8083] {
                assert!(
                    !text.contains(&format!(":{old}")) && !text.contains(&format!("\"{old}\"")),
                    "{:?} still names the fixed port {old}",
                    e.file_name()
                );
            }
            text = text.replace("timeout: 1s\n", "timeout: 4s\n");
            if e.file_name() == "domain.yaml" {
                text = text.replace(
                    "heartbeat:\n",
                    &format!("heartbeat:\n    port: {heartbeat}\n"),
                );
            }
            std::fs::write(config.join(e.file_name()), text).expect("write");
        }
        LiveDomain::init(dir, config, ports, &["node1", "node2", "node3"])
    }

    /// A domain whose configuration the caller wrote to `config`: prepares
    /// its state directory with `asctl up --init-only` (token, certificates,
    /// one agent.yaml per node and witness). `nodes` are the nodes to wait
    /// for.
    pub fn init(dir: tempfile::TempDir, config: PathBuf, ports: Ports, nodes: &[&str]) -> Self {
        let state = dir.path().join("state");
        let out = Command::new(ASCTL)
            .arg("up")
            .arg(&config)
            .arg("--state-dir")
            .arg(&state)
            .arg("--init-only")
            .output()
            .expect("asctl up --init-only");
        assert!(
            out.status.success(),
            "init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let members = std::fs::read_dir(state.join("nodes"))
            .expect("nodes")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        LiveDomain {
            dir,
            config,
            state,
            ports,
            agents: BTreeMap::new(),
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            members,
        }
    }

    pub fn start_agent(&mut self, node: &str) {
        self.start_agent_env(node, &[]);
    }

    /// [`Self::start`] with `OCF_ROOT` at the test agents of
    /// `tests/fixtures/ocf` (asctl-test:Probe and the others): every node's
    /// agent, then the wait for the domain to form.
    pub fn start_agents_with_test_ocf(&mut self) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ocf");
        let root = root.to_string_lossy().into_owned();
        for node in self.nodes.clone() {
            self.start_agent_env(&node, &[("OCF_ROOT", &root)]);
        }
        self.wait_formed();
    }

    /// [`Self::start_agent`] with extra environment variables.
    pub fn start_agent_env(&mut self, node: &str, env: &[(&str, &str)]) {
        self.start_agent_with(node, &[], env);
    }

    /// [`Self::start_agent`] with extra arguments and environment variables.
    pub fn start_agent_with(&mut self, node: &str, args: &[&str], env: &[(&str, &str)]) {
        let nd = self.state.join("nodes").join(node);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(nd.join("agent.log"))
            .expect("log");
        let child = Command::new(ASCTL)
            .arg("agent")
            .arg("--config")
            .arg(nd.join("agent.yaml"))
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("agent");
        self.agents.insert(node.to_owned(), child);
    }

    /// The quickstart copy ([`Self::prepare`]), started and with its
    /// configuration applied ([`Self::apply`]): the set-up most live tests
    /// begin from.
    pub fn applied() -> LiveDomain {
        let mut d = LiveDomain::prepare();
        d.start();
        d.apply();
        d
    }

    /// `asctl apply` of this domain's configuration directory
    /// ([`Self::apply_path`]).
    pub fn apply(&self) -> Output {
        self.apply_path(&self.config)
    }

    /// `asctl apply CONFIG --auto-approve --timeout 60s`; fails the test,
    /// with the agents' logs, unless it succeeds (converged).
    pub fn apply_path(&self, config: &Path) -> Output {
        let cfg = config.to_string_lossy();
        let out = self.asctl(&["apply", &cfg, "--auto-approve", "--timeout", "60s"]);
        assert!(
            out.status.success(),
            "apply {cfg}: {}\n{}",
            text(&out),
            self.agent_logs()
        );
        out
    }

    pub fn start(&mut self) {
        for n in self.nodes.clone() {
            self.start_agent(&n);
        }
        self.wait_formed();
    }

    /// Waits until there is a leader and every node is Up.
    pub fn wait_formed(&self) {
        eventually("the domain to form", Duration::from_secs(60), || {
            let s = self.status_json()?;
            let leader = s.get("leader")?.as_str()?.to_owned();
            let nodes = s.get("nodes")?.as_object()?;
            let up = self.nodes.iter().all(|n| {
                nodes
                    .get(n)
                    .and_then(|v| v.get("state"))
                    .and_then(|v| v.as_str())
                    == Some("up")
            });
            up.then_some(leader)
        });
        // A member restarted within the heartbeat timeout still shows "up"
        // before its own API listens: wait for every running agent's port.
        for node in self.agents.keys() {
            let Some(addr) = self.listen_address(node) else {
                continue;
            };
            eventually(
                &format!("{node}'s API to listen"),
                Duration::from_secs(60),
                || TcpStream::connect(addr).ok(),
            );
        }
    }

    /// The `listen:` address of a member's agent.yaml.
    pub fn listen_address(&self, node: &str) -> Option<std::net::SocketAddr> {
        let text =
            std::fs::read_to_string(self.state.join("nodes").join(node).join("agent.yaml")).ok()?;
        text.lines()
            .find_map(|l| l.trim().strip_prefix("listen:"))
            .and_then(|a| a.trim().trim_matches('"').parse().ok())
    }

    /// `asctl ARGS --state-dir STATE`.
    pub fn asctl(&self, args: &[&str]) -> Output {
        Command::new(ASCTL)
            .args(args)
            .arg("--state-dir")
            .arg(&self.state)
            .stdin(Stdio::null())
            .output()
            .expect("asctl")
    }

    pub fn status_json(&self) -> Option<serde_json::Value> {
        let out = self.asctl(&["status", "--format", "json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The node `group` is placed on, per the domain's status.
    pub fn placed_on(&self, group: &str) -> Option<String> {
        placed_on(&self.status_json()?, group)
    }

    /// Waits until `web` runs on node1 (placed there, answering on node1's
    /// demo port) and returns the pid node1 recorded for its server.
    pub fn web_running_on_node1(&self) -> i32 {
        let port = self.ports.demo[0];
        self.eventually("web to run on node1", Duration::from_secs(60), || {
            demo_answer(port)?;
            (self.placed_on("web")? == "node1")
                .then(|| recorded_pid(self, "node1", "web", "server"))
                .flatten()
        })
    }

    /// Waits until `web` is placed on another node than node1 and answers
    /// again on node1's demo port (the quickstart's web answers on the
    /// same port wherever it runs); returns that node.
    pub fn web_moved_from_node1(&self) -> String {
        let long = Duration::from_secs(60);
        let to = self.eventually("web to move to another node", long, || {
            self.placed_on("web").filter(|n| n != "node1")
        });
        self.eventually("web to answer again", long, || {
            demo_answer(self.ports.demo[0])
        });
        to
    }

    pub fn generation(&self) -> u64 {
        self.status_json()
            .and_then(|s| s.get("generation")?.as_u64())
            .expect("status with a generation")
    }

    pub fn kill9(&mut self, node: &str) {
        let mut c = self.agents.remove(node).expect("running agent");
        c.kill().expect("kill -9");
        c.wait().expect("reaped");
    }

    /// The whole node dies: kill -9 its agent, then every process the agent
    /// had started (recorded under `data/run/`), as if the machine stopped.
    /// On loopback, the processes would otherwise keep the node's ports.
    pub fn kill_node(&mut self, node: &str) {
        self.kill9(node);
        let run = self.state.join("nodes").join(node).join("data/run");
        for group in std::fs::read_dir(&run).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(group.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let Ok(text) = std::fs::read_to_string(f.path()) else {
                    continue;
                };
                let rec: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if let Some(pid) = rec["pid"].as_i64() {
                    // Each process leads its own process group.
                    unsafe {
                        libc::kill(-(pid as i32), libc::SIGKILL);
                    }
                }
            }
        }
    }

    /// SIGTERM to every agent and wait: each takes its groups offline.
    pub fn stop(&mut self) {
        for c in self.agents.values() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for (_, mut c) in std::mem::take(&mut self.agents) {
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// [`eventually`], with every agent's log in the panic message.
    pub fn eventually<T>(&self, what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
        poll(timeout, f).unwrap_or_else(|| {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                self.agent_logs()
            )
        })
    }

    pub fn agent_logs(&self) -> String {
        let mut out = String::new();
        for n in &self.members {
            let p = self.state.join("nodes").join(n).join("agent.log");
            out.push_str(&format!(
                "--- {n}\n{}\n",
                std::fs::read_to_string(p).unwrap_or_default()
            ));
        }
        out
    }
}

impl Drop for LiveDomain {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The pid of the process listening on TCP `port` of 127.0.0.1 (from
/// /proc/net/tcp and the processes' open sockets), to tell which process
/// really answers on a port.
pub fn listener_pid(port: u16) -> Option<i32> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let inode = table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let local = f.get(1)?;
        let (_, p) = local.split_once(':')?;
        // State 0A is LISTEN.
        (u16::from_str_radix(p, 16).ok()? == port && f.get(3) == Some(&"0A"))
            .then(|| f.get(9).map(|s| s.to_string()))
            .flatten()
    })?;
    let socket = format!("socket:[{inode}]");
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = proc_entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy() == socket) {
                return Some(pid);
            }
        }
    }
    None
}

/// Processes whose command line mentions `needle` (e.g. a state directory),
/// with their command lines: what a test left running.
pub fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me || !alive(pid) {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if cmdline.contains(needle) {
            out.push((pid, cmdline));
        }
    }
    out
}

/// The `start` and `stop` lines that asctl's test OCF agents append to
/// their shared log after `from` bytes, as `ACTION INSTANCE`.
pub fn ocf_actions(log: &Path, from: usize) -> Vec<String> {
    let t = std::fs::read_to_string(log).unwrap_or_default();
    t.get(from..)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let action = w.next()?;
            let instance = w.next()?.strip_prefix("instance=")?;
            matches!(action, "start" | "stop").then(|| format!("{action} {instance}"))
        })
        .collect()
}

/// The pid in an agent log's `lease guard running` line (what follows
/// `pid=` up to its first digit may be a colour code).
pub fn guard_pid_in(log: &str) -> Option<i32> {
    let line = log.lines().find(|l| l.contains("lease guard running"))?;
    let digits: String = line
        .split("pid=")
        .nth(1)?
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// A log file without the ANSI colours of the agents' tracing output.
pub fn log_text(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    anstream::adapter::strip_str(&text).to_string()
}

/// A child process the test owns: SIGTERM and a wait when the test ends,
/// passed or not, so a failing test leaves nothing running.
pub struct Owned(pub Option<Child>);

impl Owned {
    pub fn id(&self) -> i32 {
        self.0.as_ref().map_or(0, |c| c.id() as i32)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: a signal to a child of this test.
        unsafe {
            libc::kill(self.id(), sig);
        }
    }

    /// Waits for the exit, up to `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let c = self.0.as_mut()?;
        let status = poll(timeout, || c.try_wait().ok().flatten());
        if status.is_some() {
            self.0 = None;
        }
        status
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            if poll(Duration::from_secs(30), || c.try_wait().ok().flatten()).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// The node `group` is placed on in a status (`asctl status --format json`).
pub fn placed_on(status: &serde_json::Value, group: &str) -> Option<String> {
    status["placement"][group]["node"]
        .as_str()
        .map(str::to_owned)
}

/// The kernel hands out a closed port again (500 picks of port 0 repeat one
/// almost surely: about 14,000 ports to pick from); the record does not.
#[test]
fn no_port_is_handed_out_twice() {
    let tcp: Vec<u16> = (0..500).map(|_| free_port()).collect();
    let udp: Vec<u16> = (0..500).map(|_| free_udp_port()).collect();
    for ports in [tcp, udp] {
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "a port handed out twice");
    }
}
