//! The fault kinds a round draws from ([`ARMS`]: names in `CHAOS_FAULTS`,
//! weights, and each kind's inject and heal, in `arms.rs`) and the seeded
//! draw.

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
    /// The agent's own writes to its data device throttled (blkio cgroup)
    /// so that each fsync of the raft log takes seconds: its raft core
    /// neither fails nor progresses. The agent must fail-stop on the stall
    /// (`storage.rs`).
    DiskSlow,
}

/// One fault kind: its name in `CHAOS_FAULTS`, how often `all` draws it,
/// where it applies, and how a round injects and heals it. Adding a kind
/// is one entry in [`ARMS`] (its place there is its place in `all`'s list,
/// which CI's seed draws from: see `ci_run_draws_every_fault_kind`).
pub(crate) struct Arm {
    pub(crate) fault: Fault,
    /// The name `CHAOS_FAULTS` accepts for this kind alone.
    pub(crate) name: &'static str,
    /// How many times it is in `all`'s list (in `safe`'s too, if `safe`).
    pub(crate) weight: usize,
    /// In `CHAOS_FAULTS=safe`: faults that rely on nothing but detection.
    pub(crate) safe: bool,
    /// Drawn on topology `two`.
    pub(crate) on_two: bool,
    /// Its victim is the node running db's writer, whatever the draw.
    pub(crate) on_writer: bool,
    /// Strikes, holds the fault as long as it lasts and checks or measures
    /// what the node must do meanwhile.
    pub(crate) inject: fn(&mut Round) -> Result<(), String>,
    /// Ends the fault: the node's links, filtering, agent or storage as
    /// before (a storage fault's repair is part of its injection: its
    /// verdict needs the restarted agent).
    pub(crate) heal: fn(&mut Round) -> Result<(), String>,
}

/// Every fault kind, in the order of `all`'s list.
pub(crate) const ARMS: [Arm; 11] = [
    Arm::new(Fault::CrashNode, "crash", crash, reboot)
        .weight(2)
        .safe(),
    Arm::new(Fault::LineDown, "line-down", line_down, line_up).safe(),
    Arm::new(Fault::Partition, "partition", partition, links_up).safe(),
    Arm::new(Fault::KillAgent, "kill-agent", agent_gone, agent_back),
    Arm::new(Fault::Freeze, "freeze", agent_gone, agent_back),
    Arm::new(Fault::CutFromPeers, "cut-from-peers", cut, uncut_node).not_on_two(),
    Arm::new(Fault::Mute, "mute", cut, uncut_node),
    Arm::new(Fault::DiskFull, "disk-full", disk_full, nothing),
    Arm::new(Fault::DiskRo, "disk-ro", disk_ro, nothing),
    Arm::new(Fault::StopWriter, "stop-writer", stop_writer, nothing).on_writer(),
    Arm::new(Fault::DiskSlow, "disk-slow", disk_slow, nothing),
];

impl Arm {
    const fn new(
        fault: Fault,
        name: &'static str,
        inject: fn(&mut Round) -> Result<(), String>,
        heal: fn(&mut Round) -> Result<(), String>,
    ) -> Arm {
        Arm {
            fault,
            name,
            weight: 1,
            safe: false,
            on_two: true,
            on_writer: false,
            inject,
            heal,
        }
    }
    const fn weight(mut self, w: usize) -> Arm {
        self.weight = w;
        self
    }
    const fn safe(mut self) -> Arm {
        self.safe = true;
        self
    }
    const fn not_on_two(mut self) -> Arm {
        self.on_two = false;
        self
    }
    const fn on_writer(mut self) -> Arm {
        self.on_writer = true;
        self
    }
}

impl Fault {
    /// Every kind, in the order of `all`'s list.
    pub(crate) fn kinds() -> impl Iterator<Item = Fault> {
        ARMS.iter().map(|a| a.fault)
    }

    /// This kind's entry in [`ARMS`].
    pub(crate) fn arm(self) -> &'static Arm {
        ARMS.iter()
            .find(|a| a.fault == self)
            .expect("every kind has an entry in ARMS")
    }

    /// The name `CHAOS_FAULTS` accepts for this kind alone.
    pub(crate) fn name(self) -> &'static str {
        self.arm().name
    }

    /// Whether the kind is drawn on `topology`.
    pub(crate) fn applies_to(self, topology: Topology) -> bool {
        topology != Topology::Two || self.arm().on_two
    }
}

/// The faults `CHAOS_FAULTS` names, as the list a round draws from (a kind
/// listed twice is drawn twice as often). `None` is unset.
pub(crate) fn parse_faults(spec: Option<&str>) -> Vec<Fault> {
    let weighted = |keep: fn(&Arm) -> bool| -> Vec<Fault> {
        ARMS.iter()
            .filter(|a| keep(a))
            .flat_map(|a| std::iter::repeat_n(a.fault, a.weight))
            .collect()
    };
    match spec {
        None | Some("all") => weighted(|_| true),
        Some("safe") => weighted(|a| a.safe),
        // The failover benchmarks: node crashes of the group's holder or
        // of the raft leader only.
        Some("crash-holder" | "crash-leader") => vec![Fault::CrashNode],
        Some(list) => list
            .split(',')
            .map(|name| {
                let name = name.trim();
                Fault::kinds()
                    .find(|f| f.name() == name)
                    .unwrap_or_else(|| {
                        panic!(
                            "CHAOS_FAULTS: `all`, `safe`, `crash-holder`, `crash-leader` or a \
                         comma list of {:?}, not `{name}`",
                            Fault::kinds().map(Fault::name).collect::<Vec<_>>()
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
