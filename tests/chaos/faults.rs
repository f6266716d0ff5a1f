//! The fault kinds a round draws from, their names in `CHAOS_FAULTS`,
//! the seeded draw, and the packet filtering that cuts or mutes a node.

use super::*;

/// xorshift64*: small, seedable, the same on every machine.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topology {
    Three,
    TwoWitness,
    Two,
}

impl Topology {
    pub(crate) fn parse(s: &str) -> Topology {
        match s.trim() {
            "three" => Topology::Three,
            "two-witness" => Topology::TwoWitness,
            "two" => Topology::Two,
            other => panic!("unknown topology `{other}`: three, two-witness or two"),
        }
    }
    pub(crate) fn nodes(self) -> usize {
        if self == Topology::Three { 3 } else { 2 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Every process of the node killed, its links down, its managed
    /// address gone: the machine crashed. Revived by a "reboot".
    CrashNode,
    /// One domain line down on one node: must not move anything.
    LineDown,
    /// Every line of one node down, its processes alive: a partition.
    Partition,
    /// `kill -9` of the agent alone: its lease guard fences the node.
    KillAgent,
    /// SIGSTOP of the agent for 3 s, then SIGCONT: its lease guard fences
    /// the node after the lease, and the woken agent stays fenced until it
    /// has caught up.
    Freeze,
    /// For 4 s, packet filtering inside the node's namespace drops all
    /// traffic to and from the other nodes and the witness (every line:
    /// heartbeats, verification, API and raft), while the isolation router
    /// on d1 still answers. The node is not isolated, only in the minority:
    /// it must take its groups offline before the majority starts them
    /// (quorum-loss fencing). Not drawn for topology `two`: two nodes that
    /// reach the same on-line router and hear nothing of each other are a
    /// filtering misconfiguration asctl cannot see (docs/ha.md).
    CutFromPeers,
    /// For 4 s, packet filtering inside the node's namespace drops what the
    /// node *sends* to the other nodes and the witness; what they send
    /// still arrives. The node hears everyone, nobody hears it: it must
    /// notice that its traffic out is cut (its peers stop answering its
    /// verification requests, its leader stops hearing its replies) and
    /// take its groups offline before the others start them.
    Mute,
    /// The node's data directory (a tmpfs of its own) filled while the
    /// domain writes: its agent must fail-stop; the space is freed after
    /// 6 s and the agent started again (`storage.rs`).
    DiskFull,
    /// The node's data file system (ext4 on a loop device) shut down under
    /// the agent (`EXT4_IOC_SHUTDOWN`): every write fails with EIO. Its
    /// agent must fail-stop; the file system is checked and mounted again
    /// after 6 s and the agent started (`storage.rs`).
    DiskRo,
    /// SIGSTOP of group `db`'s writer (on the node running it): a hung
    /// application holding the mount. Its probe fails, the stop must kill
    /// it and unmount, and db comes back on a new mount (`db.rs`).
    StopWriter,
}

impl Fault {
    /// Every kind, in the order of `all`'s list.
    pub(crate) const KINDS: [Fault; 10] = [
        Fault::CrashNode,
        Fault::LineDown,
        Fault::Partition,
        Fault::KillAgent,
        Fault::Freeze,
        Fault::CutFromPeers,
        Fault::Mute,
        Fault::DiskFull,
        Fault::DiskRo,
        Fault::StopWriter,
    ];

    /// The name `CHAOS_FAULTS` accepts for this kind alone.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Fault::CrashNode => "crash",
            Fault::LineDown => "line-down",
            Fault::Partition => "partition",
            Fault::KillAgent => "kill-agent",
            Fault::Freeze => "freeze",
            Fault::CutFromPeers => "cut-from-peers",
            Fault::Mute => "mute",
            Fault::DiskFull => "disk-full",
            Fault::DiskRo => "disk-ro",
            Fault::StopWriter => "stop-writer",
        }
    }

    /// Whether the kind is drawn on `topology`.
    pub(crate) fn applies_to(self, topology: Topology) -> bool {
        !(self == Fault::CutFromPeers && topology == Topology::Two)
    }
}

/// The faults `CHAOS_FAULTS` names, as the list a round draws from (a kind
/// listed twice is drawn twice as often). `None` is unset.
pub(crate) fn parse_faults(spec: Option<&str>) -> Vec<Fault> {
    let safe = [
        Fault::CrashNode,
        Fault::CrashNode,
        Fault::LineDown,
        Fault::Partition,
    ];
    match spec {
        None | Some("all") => {
            let mut f = safe.to_vec();
            f.extend([
                Fault::KillAgent,
                Fault::Freeze,
                Fault::CutFromPeers,
                Fault::Mute,
                Fault::DiskFull,
                Fault::DiskRo,
                Fault::StopWriter,
            ]);
            f
        }
        Some("safe") => safe.to_vec(),
        // The failover benchmarks: node crashes of the group's holder or
        // of the raft leader only.
        Some("crash-holder" | "crash-leader") => vec![Fault::CrashNode],
        Some(list) => list
            .split(',')
            .map(|name| {
                let name = name.trim();
                Fault::KINDS
                    .into_iter()
                    .find(|f| f.name() == name)
                    .unwrap_or_else(|| {
                        panic!(
                            "CHAOS_FAULTS: `all`, `safe`, `crash-holder`, `crash-leader` or a \
                             comma list of {:?}, not `{name}`",
                            Fault::KINDS.map(Fault::name)
                        )
                    })
            })
            .collect(),
    }
}

/// How long the observer keeps watching after the last round.
pub(crate) const SETTLE: Duration = Duration::from_secs(4);
/// How long `CutFromPeers` keeps a node cut from its peers.
pub(crate) const CUT: Duration = Duration::from_secs(4);
/// The table `CutFromPeers` adds inside the cut node's namespace.
pub(crate) const CUT_TABLE: &str = "chaos_cut";

/// Whether `cmd` is on the PATH.
pub(crate) fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", "command -v \"$1\"", "sh", cmd])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Drops, inside namespace `ns`, every packet to or from `peers` (nftables
/// when `nft` is there, else iptables); other traffic (the isolation
/// router, the client) passes. Panics if neither tool works: the fault
/// must not silently do nothing.
pub(crate) fn cut_from(ns: &str, peers: &[String]) {
    filter_peers(ns, peers, true);
}

/// `Mute`: only what the node sends to `peers` is dropped.
pub(crate) fn mute(ns: &str, peers: &[String]) {
    filter_peers(ns, peers, false);
}

/// Drops, in namespace `ns`, what goes to `peers` and, with `inbound`,
/// what comes from them.
pub(crate) fn filter_peers(ns: &str, peers: &[String], inbound: bool) {
    let set = peers.join(", ");
    let out = if have("nft") {
        let input = if inbound {
            "\tchain input { type filter hook input priority 0; policy accept; ip saddr @peers drop; }\n"
        } else {
            ""
        };
        let script = format!(
            "table inet {CUT_TABLE} {{\n\
             \tset peers {{ type ipv4_addr; elements = {{ {set} }}; }}\n\
             {input}\
             \tchain output {{ type filter hook output priority 0; policy accept; ip daddr @peers drop; }}\n\
             }}\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run nft");
        child
            .stdin
            .take()
            .expect("nft stdin")
            .write_all(script.as_bytes())
            .expect("write nft script");
        child.wait_with_output().expect("nft")
    } else if have("iptables") {
        let mut out = None;
        let chains: &[(&str, &str)] = if inbound {
            &[("INPUT", "-s"), ("OUTPUT", "-d")]
        } else {
            &[("OUTPUT", "-d")]
        };
        for p in peers {
            for &(chain, dir) in chains {
                let o = run(Command::new("ip").args([
                    "netns", "exec", ns, "iptables", "-A", chain, dir, p, "-j", "DROP",
                ]));
                assert!(o.status.success(), "cutting {ns} from {p}: {}", text(&o));
                out = Some(o);
            }
        }
        out.expect("at least one peer")
    } else {
        panic!(
            "CutFromPeers needs `nft` (package nftables) or `iptables` in the PATH; \
             .ci/run installs nftables"
        )
    };
    assert!(
        out.status.success(),
        "cutting {ns} from {peers:?}: {}",
        text(&out)
    );
}

/// Removes what `cut_from` added in `ns`.
pub(crate) fn uncut(ns: &str) {
    let out = if have("nft") {
        run(Command::new("ip").args([
            "netns", "exec", ns, "nft", "delete", "table", "inet", CUT_TABLE,
        ]))
    } else {
        let o = run(Command::new("ip").args(["netns", "exec", ns, "iptables", "-F", "INPUT"]));
        if o.status.success() {
            run(Command::new("ip").args(["netns", "exec", ns, "iptables", "-F", "OUTPUT"]))
        } else {
            o
        }
    };
    assert!(out.status.success(), "uncutting {ns}: {}", text(&out));
}

/// One round's draw: the fault, its victim (a node index) and, for a line
/// cut, the line.
#[derive(Debug)]
pub(crate) struct Draw {
    pub(crate) fault: Fault,
    pub(crate) victim: usize,
    pub(crate) line: &'static str,
}

/// Draws a round from `rng`: half the time the holder is the victim (every
/// time with `holder_only`), `leader` (when given) always. Pure, so that the
/// draws of CI's fixed seed are checked without root (`ci_run_draws_every_fault_kind`).
pub(crate) fn draw(
    rng: &mut Rng,
    faults: &[Fault],
    nodes: usize,
    holder: Option<usize>,
    leader: Option<usize>,
    holder_only: bool,
) -> Draw {
    let fault = faults[rng.below(faults.len())];
    let victim = match (holder, holder_only || rng.below(2) == 0) {
        _ if leader.is_some() => leader.unwrap_or(0),
        (Some(h), true) => h,
        _ => rng.below(nodes),
    };
    let line = if fault == Fault::LineDown {
        ["d1", "d2"][rng.below(2)]
    } else {
        "d1"
    };
    Draw {
        fault,
        victim,
        line,
    }
}
