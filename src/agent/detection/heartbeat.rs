//! Heartbeats: the UDP packets that tell each node its peers are alive, and
//! the verification probes that confirm it over the verification line.
//!
//! - **Domain lines**, unicast (no `heartbeat.multicast`): one socket per line
//!   bound to this node's address on the line, sending a heartbeat to every
//!   peer on the line every `heartbeat.interval`.
//! - **Domain lines**, multicast: one heartbeat per line and interval to the
//!   group, sent from this node's line address with `IP_MULTICAST_IF` on it
//!   and TTL 1 (heartbeats never leave the segment). Reception is a second
//!   socket bound to `group:port`, joined on the line's interface, with
//!   `IP_MULTICAST_ALL` off so that each line's socket receives only what
//!   arrived on that line's interface. IPv6 lines stay unicast.
//! - **The verification line**: a request to every peer on the line each
//!   interval; the peer's agent answers each valid request. The probe runs
//!   all the time rather than only on suspicion, so the failure detector has
//!   the line's evidence at hand when the domain lines fall silent (see
//!   `crate::agent::detection::detector`).
//!
//! All packets use the same port (`heartbeat.port`, default 7500) and the
//! format of `crate::agent::detection::packet`. A received packet is accepted only if it
//! parses, names our domain, carries a valid HMAC, names this socket's line,
//! comes from the sender's own address on that line, and is newer than what
//! was accepted from that sender on that line. Anything else is dropped and
//! counted per line and reason in [`Metrics`]. Accepted packets become
//! [`Observation`]s for the detector.
//!
//! Sockets are bound with `IP_FREEBIND` so the agent can start before its
//! line addresses are configured (e.g. while an interface is still coming up).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, trace, warn};

use crate::model::{Config, LineRole, MulticastGroup, Name};

use crate::agent::detection::packet::{
    DomainKey, DropReason, Kind, MAX_PACKET, Packet, ReplayGuard,
};
use crate::agent::metrics::Metrics;
use crate::agent::vital;

#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error("the configuration has no Domain")]
    NoDomain,
    #[error("node `{0}` is on no domain line: it cannot heartbeat")]
    NoDomainLine(Name),
    #[error("cannot open the {what} socket of line `{line}` on {addr}: {err}")]
    Socket {
        what: &'static str,
        line: Name,
        addr: SocketAddr,
        err: std::io::Error,
    },
}

/// One line as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineConfig {
    pub name: Name,
    pub role: LineRole,
    /// This node's address on the line.
    pub local: IpAddr,
    /// Every other member of the line and its address.
    pub peers: BTreeMap<Name, IpAddr>,
}

#[derive(Debug, Clone)]
pub struct HeartbeatConfig {
    pub domain: Name,
    pub node: Name,
    pub key: DomainKey,
    /// This agent run; see `crate::agent::detection::packet`. [`incarnation_now`] gives
    /// one from the clock.
    pub incarnation: u64,
    pub interval: Duration,
    pub port: u16,
    pub multicast: Option<Ipv4Addr>,
    /// Lines this node is a member of, domain and verification.
    pub lines: Vec<LineConfig>,
}

impl HeartbeatConfig {
    /// The heartbeat setup of `node` from the applied configuration.
    pub fn from_config(
        config: &Config,
        node: &Name,
        key: DomainKey,
        incarnation: u64,
    ) -> Result<Self, HeartbeatError> {
        let domain = config.domain.as_ref().ok_or(HeartbeatError::NoDomain)?;
        let hb = &domain.spec.heartbeat;
        let lines: Vec<LineConfig> = config
            .lines
            .iter()
            .filter_map(|l| {
                let local = *l.spec.members.get(node.as_str())?;
                let peers = l
                    .spec
                    .members
                    .iter()
                    .filter(|(n, _)| *n != node)
                    .map(|(n, a)| (n.clone(), *a))
                    .collect();
                Some(LineConfig {
                    name: l.name().clone(),
                    role: l.spec.role,
                    local,
                    peers,
                })
            })
            .collect();
        if !lines.iter().any(|l| l.role == LineRole::Domain) {
            return Err(HeartbeatError::NoDomainLine(node.clone()));
        }
        Ok(HeartbeatConfig {
            domain: domain.name().clone(),
            node: node.clone(),
            key,
            incarnation,
            interval: hb.interval.get(),
            port: hb.port,
            multicast: hb.multicast.map(MulticastGroup::addr),
            lines,
        })
    }
}

/// An incarnation from the wall clock: microseconds since the Unix epoch.
/// Newer than any earlier run's as long as the clock does not step back
/// across a restart; an agent that persists a counter can pass that instead.
pub fn incarnation_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
}

/// A valid packet from a peer: evidence that it was alive when it sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub at: Instant,
    pub peer: Name,
    pub line: Name,
    /// The packet's flags (`packet::FLAG_TAKEOVER`).
    pub flags: u8,
    /// The sender's agent run (`packet`): a newer one means it restarted.
    pub incarnation: u64,
    /// A verification reply: the peer heard this node's request, so the
    /// link works both ways (a heartbeat or a request proves one way only).
    pub reply: bool,
}

/// The running heartbeat tasks; dropping it stops them.
#[derive(Debug)]
pub struct Heartbeats {
    tasks: Vec<JoinHandle<()>>,
    flags: Arc<AtomicU8>,
}

impl Heartbeats {
    /// The flags every packet sent from now on carries.
    pub fn set_flags(&self, flags: u8) {
        self.flags.store(flags, Ordering::Relaxed);
    }

    /// Stops every task and waits until they are gone, so that their
    /// sockets are closed and the same addresses can be bound again at
    /// once (dropping only aborts: the sockets close whenever the runtime
    /// gets to it).
    pub async fn stop(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for Heartbeats {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What every task of one node shares.
struct Shared {
    cfg: HeartbeatConfig,
    metrics: Arc<Metrics>,
    sequence: AtomicU64,
    /// The packet flags this node announces (`packet::FLAG_TAKEOVER`).
    flags: Arc<AtomicU8>,
    observations: mpsc::Sender<Observation>,
}

impl Shared {
    fn packet(&self, kind: Kind, line: &Name, echo: u64) -> Vec<u8> {
        let timestamp_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Packet {
            kind,
            flags: self.flags.load(Ordering::Relaxed),
            incarnation: self.cfg.incarnation,
            sequence: self.sequence.fetch_add(1, Ordering::Relaxed),
            timestamp_ms,
            echo,
            domain: self.cfg.domain.clone(),
            sender: self.cfg.node.clone(),
            line: line.clone(),
        }
        .encode(&self.cfg.key)
    }
}

/// Opens every socket and starts sending and receiving. Accepted packets go
/// to `observations`; if that channel is full the observation is dropped
/// (the detector only needs the newest evidence, and the next heartbeat
/// brings it).
pub fn start(
    cfg: HeartbeatConfig,
    metrics: Arc<Metrics>,
    observations: mpsc::Sender<Observation>,
) -> Result<Heartbeats, HeartbeatError> {
    let flags = Arc::new(AtomicU8::new(0));
    let shared = Arc::new(Shared {
        cfg,
        metrics,
        sequence: AtomicU64::new(1),
        flags: flags.clone(),
        observations,
    });
    let mut tasks = Vec::new();
    for (index, line) in shared.cfg.lines.iter().enumerate() {
        let local = SocketAddr::new(line.local, shared.cfg.port);
        let unicast = Arc::new(open(line, local, None)?);
        let guard = Arc::new(Mutex::new(ReplayGuard::default()));
        let group = match (line.role, shared.cfg.multicast, line.local) {
            (LineRole::Domain, Some(g), IpAddr::V4(ifaddr)) => Some((g, ifaddr)),
            _ => None,
        };
        let targets: Vec<SocketAddr> = match group {
            Some((g, ifaddr)) => {
                let s = socket2::SockRef::from(unicast.as_ref());
                let err = |source| HeartbeatError::Socket {
                    what: "multicast send",
                    line: line.name.clone(),
                    addr: local,
                    err: source,
                };
                s.set_multicast_if_v4(&ifaddr).map_err(err)?;
                s.set_multicast_ttl_v4(1).map_err(err)?;
                s.set_multicast_loop_v4(false).map_err(err)?;
                let addr = SocketAddr::new(IpAddr::V4(g), shared.cfg.port);
                let rx = open(line, addr, Some((g, ifaddr)))?;
                tasks.push(vital::spawn_may_end(
                    "heartbeat receive",
                    receive(shared.clone(), index, Arc::new(rx), guard.clone()),
                ));
                vec![addr]
            }
            None => line
                .peers
                .values()
                .map(|ip| SocketAddr::new(*ip, shared.cfg.port))
                .collect(),
        };
        let kind = match line.role {
            LineRole::Domain => Kind::Heartbeat,
            LineRole::Verification => Kind::VerifyRequest,
        };
        tasks.push(vital::spawn(
            "heartbeat send",
            send(shared.clone(), index, unicast.clone(), kind, targets),
        ));
        // Ends when the detector it feeds is gone (a monitor restarted).
        tasks.push(vital::spawn_may_end(
            "heartbeat receive",
            receive(shared.clone(), index, unicast, guard),
        ));
    }
    Ok(Heartbeats { tasks, flags })
}

/// A UDP socket bound to `addr`; with `join`, a multicast receiver joined on
/// the interface that holds the given address.
fn open(
    line: &LineConfig,
    addr: SocketAddr,
    join: Option<(Ipv4Addr, Ipv4Addr)>,
) -> Result<UdpSocket, HeartbeatError> {
    let what = if join.is_some() {
        "multicast receive"
    } else {
        "heartbeat"
    };
    let err = |source| HeartbeatError::Socket {
        what,
        line: line.name.clone(),
        addr,
        err: source,
    };
    let s =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    // Several lines' multicast receivers share group:port. Unicast sockets
    // do not: a second agent on the same address must fail to bind rather
    // than steal half of the first one's heartbeats.
    if join.is_some() {
        s.set_reuse_address(true).map_err(err)?;
    }
    match addr {
        SocketAddr::V4(_) => s.set_freebind_v4(true).map_err(err)?,
        SocketAddr::V6(_) => s.set_freebind_v6(true).map_err(err)?,
    }
    if let Some((group, ifaddr)) = join {
        s.set_multicast_all_v4(false).map_err(err)?;
        s.join_multicast_v4(&group, &ifaddr).map_err(err)?;
    }
    s.set_nonblocking(true).map_err(err)?;
    s.bind(&addr.into()).map_err(err)?;
    UdpSocket::from_std(s.into()).map_err(err)
}

async fn send(
    shared: Arc<Shared>,
    index: usize,
    socket: Arc<UdpSocket>,
    kind: Kind,
    targets: Vec<SocketAddr>,
) {
    let line = &shared.cfg.lines[index].name;
    let mut tick = tokio::time::interval(shared.cfg.interval);
    // After a stall (a frozen agent, a saturated CPU) send one heartbeat now,
    // not a burst of stale ones.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let pulse = vital::pulse("heartbeat send", shared.cfg.interval);
    loop {
        tick.tick().await;
        pulse.beat();
        for target in &targets {
            let bytes = shared.packet(kind, line, 0);
            match socket.send_to(&bytes, target).await {
                Ok(_) => shared.metrics.sent(line),
                Err(e) => {
                    shared.metrics.send_error(line);
                    // Expected while a line is down; the counter tells how often.
                    debug!(%line, %target, "heartbeat not sent: {e}");
                }
            }
        }
    }
}

async fn receive(
    shared: Arc<Shared>,
    index: usize,
    socket: Arc<UdpSocket>,
    guard: Arc<Mutex<ReplayGuard>>,
) {
    let line = &shared.cfg.lines[index];
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors of earlier sends surface here (ECONNREFUSED
                // from a peer whose agent is down); they are not fatal.
                trace!(line = %line.name, "heartbeat receive: {e}");
                continue;
            }
        };
        let at = Instant::now();
        match accept(&shared, line, &guard, &buf[..len], from) {
            Ok(None) => {}
            Ok(Some(p)) => {
                shared.metrics.received(&line.name, &p.sender, at);
                if p.kind == Kind::VerifyRequest {
                    let reply = shared.packet(Kind::VerifyReply, &line.name, p.sequence);
                    match socket.send_to(&reply, from).await {
                        Ok(_) => shared.metrics.sent(&line.name),
                        Err(e) => {
                            shared.metrics.send_error(&line.name);
                            debug!(line = %line.name, %from, "verification reply not sent: {e}");
                        }
                    }
                }
                // A request proves the peer alive as much as a reply does.
                let obs = Observation {
                    at,
                    flags: p.flags,
                    incarnation: p.incarnation,
                    reply: p.kind == Kind::VerifyReply,
                    peer: p.sender,
                    line: line.name.clone(),
                };
                if let Err(mpsc::error::TrySendError::Closed(_)) = shared.observations.try_send(obs)
                {
                    return;
                }
            }
            Err(reason) => {
                shared.metrics.dropped(&line.name, reason);
                if reason == DropReason::Malformed || reason == DropReason::ForeignDomain {
                    debug!(line = %line.name, %from, reason = reason.as_str(), "packet dropped");
                } else if let Some(unlogged) = shared.metrics.drop_warning(&line.name, at) {
                    // Rate-limited: the counters (`/metrics`) count every one.
                    warn!(
                        line = %line.name,
                        %from,
                        reason = reason.as_str(),
                        unlogged_since_last = unlogged,
                        "heartbeat rejected"
                    );
                }
            }
        }
    }
}

/// Checks one datagram. `Ok(None)`: our own multicast echo, ignored.
fn accept(
    shared: &Shared,
    line: &LineConfig,
    guard: &Mutex<ReplayGuard>,
    bytes: &[u8],
    from: SocketAddr,
) -> Result<Option<Packet>, DropReason> {
    let p = Packet::decode(bytes, shared.cfg.domain.as_str(), &shared.cfg.key)?;
    if p.sender == shared.cfg.node {
        return Ok(None);
    }
    let expected = match p.kind {
        Kind::Heartbeat => line.role == LineRole::Domain,
        Kind::VerifyRequest | Kind::VerifyReply => line.role == LineRole::Verification,
    };
    if !expected || p.line != line.name || line.peers.get(p.sender.as_str()) != Some(&from.ip()) {
        return Err(DropReason::UnknownSender);
    }
    guard.lock().unwrap_or_else(|e| e.into_inner()).accept(&p)?;
    Ok(Some(p))
}
