//! The observer outside the nodes: what it sees of the service, its
//! polls for a fence or a failover, and the figures a campaign measures.

use super::*;

/// What the observer sees from outside the nodes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Seen {
    /// Nodes with the service address on an interface that is up.
    pub(crate) ip_on: Vec<String>,
    /// Nodes running the application.
    pub(crate) app_on: Vec<String>,
    /// Nodes with db's address on an interface that is up.
    pub(crate) db_ip_on: Vec<String>,
    /// Nodes running db's writer.
    pub(crate) writer_on: Vec<String>,
}

impl Seen {
    /// What is on more than one node at once.
    pub(crate) fn doubles(&self) -> Option<String> {
        let all = [
            ("address", &self.ip_on),
            ("application", &self.app_on),
            ("db's address", &self.db_ip_on),
            ("db's writer", &self.writer_on),
        ];
        let twice: Vec<String> = all
            .iter()
            .filter(|(_, on)| on.len() > 1)
            .map(|(what, on)| format!("{what} on {on:?}"))
            .collect();
        (!twice.is_empty()).then(|| twice.join(", "))
    }
}

pub(crate) fn observe(nodes: &[(String, String)]) -> Seen {
    let mut seen = Seen::default();
    for (name, ns) in nodes {
        let o = run(Command::new("ip").args(["-n", ns, "-o", "addr", "show", "up"]));
        let addrs = String::from_utf8_lossy(&o.stdout);
        if addrs.contains(&format!(" {VIP}/")) {
            seen.ip_on.push(name.clone());
        }
        if addrs.contains(&format!(" {}/", db::DB_VIP)) {
            seen.db_ip_on.push(name.clone());
        }
        let pids = db::pids_of(ns);
        let app = pids.iter().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("demo-server"))
                .unwrap_or(false)
        });
        if app {
            seen.app_on.push(name.clone());
        }
        if pids.iter().any(|p| db::is_writer(*p)) {
            seen.writer_on.push(name.clone());
        }
    }
    seen
}

/// [`observe`], and when that sees the address or the application on two
/// nodes, again in the reverse order, keeping only what both passes saw.
/// One pass reads the nodes one after the other over tens of milliseconds
/// on a loaded machine, so a move that breaks before it makes (the old node
/// lets go, the new one takes over a few milliseconds later) can be read as
/// the old node still holding and the new one already holding. A node seen
/// holding in both passes, read A B then B A, held at A's first read and at
/// its last with B's two reads in between: both held at once unless the
/// resource moved back and forth within the passes. Overlaps shorter than
/// the passes are the event-driven watch's ([`addr_watch`]).
pub(crate) fn observe_twice(nodes: &[(String, String)]) -> Seen {
    let first = observe(nodes);
    if first.doubles().is_none() {
        return first;
    }
    let reversed: Vec<(String, String)> = nodes.iter().rev().cloned().collect();
    let second = observe(&reversed);
    let both = |a: Vec<String>, b: &[String]| a.into_iter().filter(|n| b.contains(n)).collect();
    Seen {
        ip_on: both(first.ip_on, &second.ip_on),
        app_on: both(first.app_on, &second.app_on),
        db_ip_on: both(first.db_ip_on, &second.db_ip_on),
        writer_on: both(first.writer_on, &second.writer_on),
    }
}

pub(crate) const LEASE: Duration = Duration::from_secs(1);
/// The guard's fence and this observer's polling, on a loaded machine.
pub(crate) const FENCE_MARGIN: Duration = Duration::from_secs(1);

/// Polls, from outside, until `node` holds neither the service address nor
/// the application; the time since `t0`, or `None` after `limit`.
pub(crate) fn fenced_after(
    node: &(String, String),
    t0: Instant,
    limit: Duration,
) -> Option<Duration> {
    while t0.elapsed() < limit {
        let seen = observe(std::slice::from_ref(node));
        if seen.ip_on.is_empty() && seen.app_on.is_empty() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// One GET of the service from the client namespace (runs on a thread that
/// entered it).
pub(crate) fn get_service() -> Option<String> {
    let addr: SocketAddr = format!("{VIP}:{APP_PORT}").parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    if !buf.starts_with("HTTP/1.1 200") && !buf.starts_with("HTTP/1.0 200") {
        return None;
    }
    buf.split("\r\n\r\n").nth(1).map(|b| b.trim().to_owned())
}

/// Background watchers: the client polls the service every 50 ms; the
/// observer checks the address, the application and the writer every
/// 100 ms, and the addresses and `db`'s mount on every change the kernel
/// reports ([`addr_watch`], [`mount_watch`]).
/// Each poll of the service: when, and which node answered.
pub(crate) type Answers = Arc<Mutex<Vec<(Instant, Option<String>)>>>;

pub(crate) struct Watch {
    /// Dropped last (after the pollers stopped).
    pub(crate) _addresses: addr_watch::AddrWatch,
    pub(crate) _db_addresses: addr_watch::AddrWatch,
    /// `db`'s file system, when the lab has its LUN.
    pub(crate) _db_mounts: Option<mount_watch::MountWatch>,
    /// Group db's client: its acknowledged writes.
    pub(crate) db: db::Client,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) answers: Answers,
    pub(crate) violations: Arc<Mutex<Vec<String>>>,
    pub(crate) threads: Vec<std::thread::JoinHandle<()>>,
}

impl Watch {
    pub(crate) fn start(lab: &Lab) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        let client = lab.client.name.clone();
        {
            let (stop, answers) = (stop.clone(), answers.clone());
            threads.push(std::thread::spawn(move || {
                let ns = Netns { name: client };
                ns.enter();
                std::mem::forget(ns);
                while !stop.load(Ordering::Relaxed) {
                    let a = get_service();
                    answers.lock().expect("answers").push((Instant::now(), a));
                    std::thread::sleep(Duration::from_millis(50));
                }
            }));
        }
        let nodes: Vec<(String, String)> = lab
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.ns.name.clone()))
            .collect();
        let addresses = addr_watch::AddrWatch::start(&nodes, VIP, violations.clone());
        let db_addresses = addr_watch::AddrWatch::start(&nodes, db::DB_VIP, violations.clone());
        let devnums = lab.lun.devnums.clone();
        let db_mounts = (!devnums.is_empty())
            .then(|| mount_watch::MountWatch::start(&nodes, devnums, violations.clone()));
        {
            let (stop, violations) = (stop.clone(), violations.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // The mounts are the mount watch's, on every change.
                    let s = observe_twice(&nodes);
                    if let Some(doubles) = s.doubles() {
                        // The wall clock, to line up with the agents' logs.
                        violations.lock().expect("violations").push(format!(
                            "split brain at {}: {doubles}",
                            humantime::format_rfc3339_millis(std::time::SystemTime::now()),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }));
        }
        Watch {
            _addresses: addresses,
            _db_addresses: db_addresses,
            _db_mounts: db_mounts,
            db: db::Client::start(&lab.client.name),
            stop,
            answers,
            violations,
            threads,
        }
    }

    /// The first answer after `t` that came from a node other than `not`
    /// (or from any node when `not` is None).
    pub(crate) fn answered_after(&self, t: Instant, not: Option<&str>) -> Option<Instant> {
        self.answers
            .lock()
            .expect("answers")
            .iter()
            .find(|(at, a)| *at > t && a.as_deref().is_some_and(|n| Some(n) != not))
            .map(|(at, _)| *at)
    }

    pub(crate) fn violations(&self) -> Vec<String> {
        self.violations.lock().expect("violations").clone()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

pub(crate) fn wait_until<T>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("chaos: gave up waiting for {what} after {limit:?}");
    None
}

pub(crate) fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// What a campaign measured, in seconds.
#[derive(Default)]
pub(crate) struct Figures {
    /// Node crash → the domain's status shows the node down.
    pub(crate) detection: Vec<f64>,
    /// Crash of the holder → the service answers from another node.
    pub(crate) service: Vec<f64>,
    /// The same, for crashes of a holder that was also the raft leader.
    pub(crate) service_leader: Vec<f64>,
    /// Crash of the raft leader → a survivor names a new leader.
    pub(crate) election: Vec<f64>,
    /// Crash of the raft leader → the domain's status shows it down.
    pub(crate) leader_down: Vec<f64>,
    /// Agent `kill -9` or SIGSTOP on the holder → its address and
    /// application gone (the lease guard's fence).
    pub(crate) fence: Vec<f64>,
    /// Holder cut from its peers → its address and application gone, seen
    /// from outside (only when that happened within the cut).
    pub(crate) cut_fence: Vec<f64>,
    /// Holder cut from its peers → the service answers from another node
    /// (only when that happened within the cut).
    pub(crate) cut_service: Vec<f64>,
    /// Holder muted (its traffic out dropped) → its address and application
    /// gone (only when that happened within the mute).
    pub(crate) mute_fence: Vec<f64>,
    /// Holder muted → the service answers from another node (likewise).
    pub(crate) mute_service: Vec<f64>,
    /// Topology `two`: agent `kill -9` or SIGSTOP on the holder → the
    /// service answers from the survivor (local takeover).
    pub(crate) service_agent: Vec<f64>,
    /// Rounds after which the operator cleared web's `failedOn`.
    pub(crate) cleared: usize,
    /// The harness's own acknowledged commits, each checked after the
    /// rounds that followed it ([`commit_probe`]).
    pub(crate) commits: usize,
    /// Crash of db's node → its writer acknowledging again on a survivor.
    pub(crate) db_service: Vec<f64>,
    /// db's writer SIGSTOPped → acknowledging again (on a new mount).
    pub(crate) db_stop: Vec<f64>,
    /// `asctl move db` → the writer acknowledging on the new node.
    pub(crate) db_switchover: Vec<f64>,
    /// db's acknowledged writes, every one found in the log at the end.
    pub(crate) db_acked: usize,
}
