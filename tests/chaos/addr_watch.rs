//! The event-driven half of the observer: one `ip -o monitor address link`
//! per node namespace, read as the kernel reports each change, so that the
//! service address on two nodes at once is caught however short the
//! overlap (the 100 ms poll missed overlaps of 25 ms). Each node's state —
//! which interfaces hold the address, which are up — starts from a
//! snapshot taken after its monitor started and follows the events; every
//! event is stamped with the wall clock when it was read.
//!
//! The monitors run in the nodes' namespaces but are not part of the nodes:
//! [`is_monitor`] lets a crash fault spare them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// The argument that marks the monitors' command lines.
const MARK: &str = "monitor";

/// Whether `/proc/PID/cmdline` is one of this watcher's monitors.
pub fn is_monitor(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
        args.first().is_some_and(|a| a.ends_with(b"ip"))
            && args.contains(&MARK.as_bytes())
            && args.contains(&b"address".as_slice())
    })
}

/// One node's interfaces, as far as the address is concerned.
#[derive(Debug, Default, Clone)]
struct NodeAddr {
    /// Interfaces holding the address.
    with: BTreeSet<String>,
    /// Interfaces administratively down.
    down: BTreeSet<String>,
}

impl NodeAddr {
    fn holds(&self) -> bool {
        self.with.iter().any(|i| !self.down.contains(i))
    }
}

/// What one line of `ip -o monitor address link` (or of `ip -o addr show`
/// and `ip -o link show`) says.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Address { ifname: String, added: bool },
    Link { ifname: String, up: bool },
}

/// Parses one line; `None` for lines about other addresses.
pub fn parse(line: &str, vip: &str) -> Option<Change> {
    let (deleted, rest) = match line.strip_prefix("Deleted ") {
        Some(r) => (true, r),
        None => (false, line),
    };
    let mut words = rest.split_whitespace();
    words.next()?.strip_suffix(':')?; // the interface index
    let ifname = words.next()?.trim_end_matches(':');
    let ifname = ifname.split('@').next()?.to_owned();
    let next = words.next()?;
    if next.starts_with('<') {
        let flags = next.trim_start_matches('<').trim_end_matches('>');
        let up = !deleted && flags.split(',').any(|f| f == "UP");
        return Some(Change::Link { ifname, up });
    }
    if next == "inet" && words.next()?.split('/').next()? == vip {
        return Some(Change::Address {
            ifname,
            added: !deleted,
        });
    }
    None
}

/// Whether something that must be on at most one node is on more: fed the
/// nodes holding it after every event, it reports an overlap as it starts
/// (a violation) and prints its length as it ends. Shared with the mount
/// watch ([`super::mount_watch`]).
pub struct Overlap {
    /// What is held, for the messages (`the address 10.210.1.100`).
    what: String,
    /// Where the events come from (`address events`).
    source: &'static str,
    /// Since when (wall clock) and on which nodes it is on more than one.
    since: Option<(SystemTime, Instant, Vec<String>)>,
    violations: Arc<Mutex<Vec<String>>>,
}

impl Overlap {
    pub fn new(what: String, source: &'static str, violations: Arc<Mutex<Vec<String>>>) -> Self {
        Overlap {
            what,
            source,
            since: None,
            violations,
        }
    }

    /// After an event: `holders` hold it now.
    pub fn update(&mut self, holders: Vec<String>) {
        match (&self.since, holders.len() > 1) {
            (None, true) => {
                let wall = SystemTime::now();
                // Counted at once, so a round's check sees it even while
                // the overlap lasts.
                self.violations.lock().expect("violations").push(format!(
                    "split brain at {} ({}): {} on {holders:?}",
                    humantime::format_rfc3339_millis(wall),
                    self.source,
                    self.what,
                ));
                self.since = Some((wall, Instant::now(), holders));
            }
            (Some(_), false) => self.close(),
            _ => {}
        }
    }

    /// Ends an overlap, saying how long it lasted.
    pub fn close(&mut self) {
        if let Some((wall, t, on)) = self.since.take() {
            eprintln!(
                "{} was on {on:?} from {} for {} ms",
                self.what,
                humantime::format_rfc3339_millis(wall),
                t.elapsed().as_millis()
            );
        }
    }

    pub fn violations(&self) -> &Arc<Mutex<Vec<String>>> {
        &self.violations
    }
}

struct Shared {
    vip: String,
    nodes: BTreeMap<String, NodeAddr>,
    overlap: Overlap,
}

impl Shared {
    fn apply(&mut self, node: &str, change: Change) {
        let n = self.nodes.entry(node.to_owned()).or_default();
        match change {
            Change::Address {
                ifname,
                added: true,
            } => n.with.insert(ifname),
            Change::Address { ifname, .. } => n.with.remove(&ifname),
            Change::Link { ifname, up: true } => n.down.remove(&ifname),
            Change::Link { ifname, .. } => n.down.insert(ifname),
        };
        self.check();
    }

    fn check(&mut self) {
        let holders: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.holds())
            .map(|(name, _)| name.clone())
            .collect();
        self.overlap.update(holders);
    }
}

/// The running monitors; dropping it stops them and reports an overlap
/// still open.
pub struct AddrWatch {
    shared: Arc<Mutex<Shared>>,
    /// Set when the watch ends: a monitor ending before is a violation (the
    /// address would go unwatched).
    stopping: Arc<AtomicBool>,
    children: Vec<Child>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl AddrWatch {
    /// Watches `nodes` (name, namespace) for `vip`, adding violations to
    /// `violations`.
    pub fn start(
        nodes: &[(String, String)],
        vip: &str,
        violations: Arc<Mutex<Vec<String>>>,
    ) -> AddrWatch {
        let shared = Arc::new(Mutex::new(Shared {
            vip: vip.to_owned(),
            nodes: BTreeMap::new(),
            overlap: Overlap::new(format!("the address {vip}"), "address events", violations),
        }));
        let stopping = Arc::new(AtomicBool::new(false));
        let mut children = Vec::new();
        let mut threads = Vec::new();
        for (name, ns) in nodes {
            let mut child = Command::new("ip")
                .args(["-n", ns, "-o", MARK, "address", "link"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("ip monitor");
            let out = child.stdout.take().expect("monitor's stdout");
            children.push(child);
            // The snapshot after the monitor started: a change in between
            // is in both, and applying it twice changes nothing.
            snapshot(&shared, name, ns);
            let (shared, name, stopping) = (shared.clone(), name.clone(), stopping.clone());
            threads.push(std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    let mut s = shared.lock().expect("addr watch");
                    if let Some(change) = parse(&line, &s.vip) {
                        s.apply(&name, change);
                    }
                }
                if !stopping.load(Ordering::SeqCst) {
                    let s = shared.lock().expect("addr watch");
                    s.overlap
                        .violations()
                        .lock()
                        .expect("violations")
                        .push(format!("the address monitor of {name} ended: not watched"));
                }
            }));
        }
        AddrWatch {
            shared,
            stopping,
            children,
            threads,
        }
    }
}

fn snapshot(shared: &Mutex<Shared>, node: &str, ns: &str) {
    let mut lines = String::new();
    for what in ["link", "addr"] {
        if let Ok(o) = Command::new("ip")
            .args(["-n", ns, "-o", what, "show"])
            .output()
        {
            lines.push_str(&String::from_utf8_lossy(&o.stdout));
        }
    }
    let mut s = shared.lock().expect("addr watch");
    s.nodes.entry(node.to_owned()).or_default();
    for line in lines.lines() {
        if let Some(change) = parse(line, &s.vip.clone()) {
            s.apply(node, change);
        }
    }
}

impl Drop for AddrWatch {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.shared.lock().expect("addr watch").overlap.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIP: &str = "10.210.1.100";

    #[test]
    fn monitor_lines() {
        assert_eq!(
            parse(
                "2: d1    inet 10.210.1.100/24 scope global secondary d1\\       valid_lft forever preferred_lft forever",
                VIP
            ),
            Some(Change::Address {
                ifname: "d1".into(),
                added: true
            })
        );
        assert_eq!(
            parse("Deleted 2: d1    inet 10.210.1.100/24 scope global d1", VIP),
            Some(Change::Address {
                ifname: "d1".into(),
                added: false
            })
        );
        assert_eq!(
            parse(
                "2: d1    inet 10.210.1.1/24 brd 10.210.1.255 scope global d1",
                VIP
            ),
            None
        );
        assert_eq!(
            parse(
                "3: d1@if7: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP",
                VIP
            ),
            Some(Change::Link {
                ifname: "d1".into(),
                up: true
            })
        );
        assert_eq!(
            parse(
                "3: d1@if7: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN",
                VIP
            ),
            Some(Change::Link {
                ifname: "d1".into(),
                up: false
            })
        );
    }

    #[test]
    fn an_overlap_is_reported_as_it_starts() {
        let violations = Arc::new(Mutex::new(Vec::new()));
        let mut s = Shared {
            vip: VIP.into(),
            nodes: BTreeMap::new(),
            overlap: Overlap::new(
                format!("the address {VIP}"),
                "address events",
                violations.clone(),
            ),
        };
        let add = |ifname: &str, added| Change::Address {
            ifname: ifname.into(),
            added,
        };
        s.apply("node1", add("d1", true));
        // On a down interface of node2: not held there.
        s.apply(
            "node2",
            Change::Link {
                ifname: "d1".into(),
                up: false,
            },
        );
        s.apply("node2", add("d1", true));
        assert!(violations.lock().expect("v").is_empty());
        s.apply(
            "node2",
            Change::Link {
                ifname: "d1".into(),
                up: true,
            },
        );
        let v = violations.lock().expect("v").clone();
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("[\"node1\", \"node2\"]"), "{v:?}");
        s.apply("node1", add("d1", false));
        s.apply("node1", add("d1", true));
        assert_eq!(violations.lock().expect("v").len(), 2, "a second overlap");
    }
}
