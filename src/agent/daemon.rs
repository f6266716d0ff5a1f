//! `asctl agent`: one member of a domain.
//!
//! Wires the pieces together: the domain database ([`crate::domain`]) with
//! its leader loop, the HTTPS API ([`super::api`]), and — except on the
//! witness — the node reconciler fed from the committed state, whose reports
//! go to the leader, and the heartbeats and failure detector
//! ([`super::ha`]): they give the leader its node health and fence this
//! node's groups when it is isolated; and the lease guard
//! ([`super::guard`]), a separate process that fences the node's groups if
//! this agent is killed or frozen. On SIGTERM or SIGINT the groups go offline (unless
//! `leave_running`), then the API and raft stop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

use super::api::{self, ApiState};
use super::auth::{Token, read_token};
use super::guard::{self, Guard};
use super::ha::{self, DetectorHealth, HaContext};
use super::metrics::Metrics;
use super::packet::DomainKey;
use super::reconciler::{self, Desired, Options};
use super::takeover::{self, Gate};
use super::tls;
use crate::domain::leader::{self, HealthSource, ReportFreshness, desired_members};
use crate::domain::network::{self, Inbound};
use crate::domain::{Client, Domain, DomainState, Member, WITNESS, node_id};
use crate::load::{Input, load};
use crate::model::{Config, Name};
use crate::wire::NodeReport;

/// `agent.yaml`. Relative paths are relative to the file's directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentConfig {
    /// This node's name, as in the configuration (ignored for a witness).
    #[serde(default)]
    pub node: Option<String>,
    /// Where the API listens (default `127.0.0.1:7401`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The address other members and the CLI use (default: `listen`).
    #[serde(default)]
    pub advertise: Option<String>,
    /// Raft log, snapshots, process logs and pid files.
    pub data_dir: PathBuf,
    /// A file whose first line is the domain's API token.
    pub token_file: PathBuf,
    pub tls: TlsFiles,
    /// The founding members, `name: host:port` (this node may be listed).
    #[serde(default)]
    pub peers: BTreeMap<String, String>,
    /// Or: the domain's configuration (file or directory); the founding
    /// members are its nodes (by `agent.address`) and its witness.
    #[serde(default)]
    pub bootstrap: Option<PathBuf>,
    /// Run as the witness: vote, run no groups.
    #[serde(default)]
    pub witness: bool,
    /// Listen on a non-loopback address. Off by default so that a test or
    /// demo agent is never reachable from the network by accident.
    #[serde(default)]
    pub allow_remote: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA that signs every member's certificate.
    pub ca: PathBuf,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7401))
}

#[derive(Debug, Error)]
pub enum AgentError {
    #[error("{path}: {message}")]
    Config { path: String, message: String },
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("{0}")]
    Domain(#[from] crate::domain::DomainError),
    /// The agent exits non-zero so that a service manager restarts it.
    #[error(
        "the raft core stopped: {0}; this node's groups were taken offline (fix the cause, then \
         restart the agent)"
    )]
    RaftStopped(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl AgentConfig {
    /// Reads `agent.yaml` with the project's YAML reader.
    pub fn read(path: &Path) -> Result<AgentConfig, AgentError> {
        let err = |message: String| AgentError::Config {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let parsed = crate::load::yaml::parse(&text);
        if let Some(p) = parsed.problems.first() {
            return Err(err(p.message.clone()));
        }
        let root = parsed
            .documents
            .first()
            .and_then(|d| d.root.as_ref())
            .ok_or_else(|| err("empty file".into()))?;
        let mut cfg: AgentConfig =
            serde_json::from_value(root.to_json()).map_err(|e| err(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut cfg.data_dir);
        abs(&mut cfg.token_file);
        abs(&mut cfg.tls.cert);
        abs(&mut cfg.tls.key);
        abs(&mut cfg.tls.ca);
        if let Some(b) = &mut cfg.bootstrap {
            abs(b);
        }
        if !cfg.allow_remote && !cfg.listen.ip().is_loopback() {
            return Err(err(format!(
                "listen: {} is not a loopback address; set `allowRemote: true` to serve the \
                 network",
                cfg.listen
            )));
        }
        if !cfg.witness && cfg.node.is_none() {
            return Err(err(
                "`node` is required (the node's name in the configuration)".into(),
            ));
        }
        Ok(cfg)
    }

    fn member_name(&self) -> String {
        if self.witness {
            WITNESS.into()
        } else {
            self.node.clone().unwrap_or_default()
        }
    }
}

/// How the agent stops.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// On SIGTERM, leave the groups running for the next agent to adopt.
    pub leave_running: bool,
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(cfg: AgentConfig, opts: RunOptions) -> Result<(), AgentError> {
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| AgentError::Io { what, source }
    };
    // First of all: a SIGTERM from here on is a request to stop cleanly,
    // not the default action that kills the process mid-start-up (with its
    // guard and data directory in whatever state they were).
    let shutdown = Shutdown::install().map_err(io("listening for SIGTERM and SIGINT"))?;
    tls::install_provider();
    let token = read_token(&cfg.token_file).map_err(io("reading the token file"))?;
    let client = Client::new(tls::client_config(&cfg.tls.ca)?, &token);
    let name = cfg.member_name();
    let me = Member {
        name: name.clone(),
        addr: cfg
            .advertise
            .clone()
            .unwrap_or_else(|| cfg.listen.to_string()),
    };
    // 0700: the raft log and process output hold environment values.
    crate::domain::store::create_private_dir(&cfg.data_dir)
        .map_err(io("creating the data directory"))?;
    let domain = Domain::open(&cfg.data_dir.join("raft"), me.clone(), client).await?;

    let freshness = Arc::new(ReportFreshness::default());
    let metrics = Arc::new(Metrics::new());
    let me_node: Option<Name> = if cfg.witness { None } else { name.parse().ok() };
    let detector_health = Arc::new(DetectorHealth::new(
        me_node,
        freshness.clone(),
        domain.clone(),
    ));
    let kick = Arc::new(Notify::new());
    let members = Inbound {
        domain: domain.clone(),
        freshness: freshness.clone(),
        kick: kick.clone(),
    };
    let state = ApiState {
        domain: domain.clone(),
        metrics: metrics.clone(),
    };
    let server_cfg = tls::server_config(&cfg.tls.cert, &cfg.tls.key)?;
    let handle = axum_server::Handle::<SocketAddr>::new();
    let app = api::router(state, members.clone(), Token::new(&token));
    let server = {
        let handle = handle.clone();
        let listen = cfg.listen;
        let rustls = axum_server::tls_rustls::RustlsConfig::from_config(server_cfg);
        tokio::spawn(async move {
            axum_server::bind_rustls(listen, rustls)
                .handle(handle)
                .serve(app.into_make_service())
                .await
        })
    };
    // Fail early and clearly when the port is taken.
    match tokio::time::timeout(Duration::from_secs(5), handle.listening()).await {
        Ok(Some(addr)) => info!("{name}: serving the control API on https://{addr}"),
        _ => {
            let detail = match server.await {
                Ok(Err(e)) => e.to_string(),
                _ => "the server did not start".into(),
            };
            return Err(AgentError::Io {
                what: format!("listening on {}", cfg.listen),
                source: std::io::Error::other(detail),
            });
        }
    }

    let founders = founding_members(&cfg, &me)?;
    if !founders.is_empty() {
        domain.bootstrap(founders).await?;
    }
    tokio::select! {
        caught_up = domain.caught_up(Duration::from_secs(10)) => if !caught_up {
            warn!("the state before the restart is not re-applied yet; starting anyway");
        },
        () = shutdown.requested() => {}
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let health: Arc<dyn HealthSource> = detector_health.clone();
    let leader_task = tokio::spawn(leader::run(
        domain.clone(),
        health,
        freshness.clone(),
        kick.clone(),
        stop_rx.clone(),
    ));

    let node = if cfg.witness {
        None
    } else {
        let node: Name = name.parse().map_err(|e: String| AgentError::Config {
            path: "agent.yaml".into(),
            message: format!("node: {e}"),
        })?;
        // The guard runs before anything is started, so nothing runs
        // unfenced; no guard, no groups.
        let exe = std::env::current_exe().map_err(io("finding the agent's executable"))?;
        let guard = Guard::start(exe.clone(), cfg.data_dir.clone())
            .await
            .map_err(io("starting the lease guard"))?;
        let lease = guard.lease.clone();
        // Renewed until the very end of a graceful stop, not just until the
        // stop begins: a slow graceful stop must not be cut short by a fence.
        let (guard_stop, guard_stop_rx) = watch::channel(false);
        let guard_task = tokio::spawn(guard.run(domain.clone(), guard_stop_rx));
        let (gate_tx, gate_rx) = watch::channel(Gate::default());
        let (lapse_tx, lapse_rx) = watch::channel(false);
        let lapse_task = tokio::spawn(guard::hold_after_lapse(
            lease.clone(),
            domain.clone(),
            lapse_tx,
            gate_rx.clone(),
            stop_rx.clone(),
        ));
        // Heartbeats and the failure detector run from the replayed state
        // at once, not after the catch-up below: a restarted agent that
        // stayed silent through it would be declared failed by its peers,
        // and its groups (left running for it to adopt) moved away.
        let (report_tx, report_rx) = reconciler::report_channel(&node);
        let ha_task = tokio::spawn(ha::run(
            HaContext {
                domain: domain.clone(),
                node: node.clone(),
                key: DomainKey::derive(token.as_bytes()),
                metrics: metrics.clone(),
                health: detector_health.clone(),
                gate: gate_tx,
                reports: report_rx,
            },
            stop_rx.clone(),
        ));
        // Groups start only from a current placement (see wait_caught_up).
        // The guard is already running: an agent frozen while it waits here
        // comes back with stale metrics that look caught up, and only the
        // lease notices the gap (the chaos harness caught a node frozen
        // during its start-up starting the group next to its holder).
        // A stop asked for during the wait (or before) starts nothing.
        let reconciling = if shutdown.is_requested() {
            None
        } else {
            tokio::select! {
                () = wait_to_reconcile(&domain, &gate_rx) => Some(()),
                () = shutdown.requested() => None,
            }
        };
        let reconciling = reconciling.map(|()| {
            let mut ropts = Options::new(node.clone(), cfg.data_dir.clone());
            ropts.asctl_exe = Some(exe);
            ropts.lease = Some(lease);
            let first = desired(
                &domain.state(),
                &node,
                &gate_rx.borrow(),
                *lapse_rx.borrow(),
                &report_tx.borrow(),
            );
            info!(groups = ?first.groups_here, "groups wanted here at start");
            let (desired_tx, desired_rx) = watch::channel(first);
            let rec = reconciler::spawn_reporting_to(ropts, desired_rx, report_tx);
            let feed = tokio::spawn(feed_reconciler(
                domain.clone(),
                node.clone(),
                desired_tx,
                Gates {
                    gate: gate_rx.clone(),
                    lapse: lapse_rx,
                    reports: rec.reports.clone(),
                },
                stop_rx.clone(),
            ));
            let reports = tokio::spawn(send_reports(
                members.clone(),
                metrics.clone(),
                rec.reports.clone(),
                gate_rx,
                stop_rx.clone(),
            ));
            (rec, feed, reports)
        });
        Some((reconciling, ha_task, (guard_stop, guard_task), lapse_task))
    };

    // Fail-stop: a raft core that quits on its own (a storage error: disk
    // full, EIO, a read-only file system) leaves this node unable to hear
    // the domain, which is about to start its groups elsewhere.
    let raft_died = tokio::select! {
        () = shutdown.requested() => None,
        cause = raft_stopped(&domain) => Some(cause),
    };
    match &raft_died {
        None => info!("{name}: stopping"),
        Some(cause) => error!(
            "{name}: the raft core stopped ({cause}); taking this node's groups offline and exiting"
        ),
    }
    let _ = stop_tx.send(true);
    if let Some((reconciling, ha_task, (guard_stop, guard_task), lapse_task)) = node {
        if raft_died.is_some() {
            // No more renewals: the guard fences within one lease (the
            // heartbeat timeout), as for a frozen agent, however long the
            // graceful stop below takes.
            let _ = guard_stop.send(true);
        }
        let rec = match reconciling {
            Some((rec, feed, reports)) => {
                let _ = feed.await;
                let _ = reports.await;
                Some(rec)
            }
            None => None,
        };
        let _ = ha_task.await;
        let _ = lapse_task.await;
        if let Some(rec) = rec {
            rec.shutdown(opts.leave_running && raft_died.is_none())
                .await;
        }
        // Only now, with the groups offline or deliberately left running for
        // the next agent, may the guard go without fencing. After a raft
        // failure it fences whatever is left (addresses included).
        let _ = guard_stop.send(true);
        if let Ok(guard) = guard_task.await {
            if raft_died.is_some() {
                guard.fence().await;
            } else {
                guard.detach().await;
            }
        }
    }
    let _ = leader_task.await;
    handle.graceful_shutdown(Some(Duration::from_secs(2)));
    let _ = server.await;
    if let Err(e) = domain.raft.shutdown().await {
        warn!("raft did not stop cleanly: {e}");
    }
    if let Some(cause) = raft_died {
        return Err(AgentError::RaftStopped(cause));
    }
    info!("{name}: stopped");
    Ok(())
}

/// Resolves, with the cause, when the raft core has quit on its own.
async fn raft_stopped(domain: &Domain) -> String {
    let mut metrics = domain.raft.metrics();
    loop {
        if let Err(fatal) = &metrics.borrow_and_update().running_state {
            return fatal.to_string();
        }
        if metrics.changed().await.is_err() {
            return "the raft core ended".into();
        }
    }
}

/// Who forms the domain with this member on its very first start.
fn founding_members(cfg: &AgentConfig, me: &Member) -> Result<BTreeMap<u64, Member>, AgentError> {
    let mut out = BTreeMap::new();
    if let Some(path) = &cfg.bootstrap {
        let config = load_bootstrap(path)?;
        out.extend(desired_members(&config));
    }
    for (name, addr) in &cfg.peers {
        out.insert(
            node_id(name),
            Member {
                name: name.clone(),
                addr: addr.clone(),
            },
        );
    }
    if !out.is_empty() {
        out.insert(node_id(&me.name), me.clone());
    }
    Ok(out)
}

fn load_bootstrap(path: &Path) -> Result<Config, AgentError> {
    let loaded = load(&[Input::Path(path.to_owned())]).map_err(|e| AgentError::Config {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(loaded.config)
}

/// Until the reconciler may start: caught up with the domain
/// ([`ha::wait_caught_up`]), and with two nodes, the peer heard since this
/// agent started or down ([`Gate::settled`]): what the peer runs by
/// takeover is known only from its packets, and the reconciler (which also
/// adopts what an earlier run left running) must not start from a stale
/// placement before it knows.
async fn wait_to_reconcile(domain: &Domain, gate: &watch::Receiver<Gate>) {
    // Two nodes with the peer down have no leader to catch up with: the
    // survivor of a crash that came while its own agent restarted takes
    // over at once instead of after the catch-up wait's give-up (10 s).
    let mut alone = gate.clone();
    tokio::select! {
        () = ha::wait_caught_up(domain) => {}
        Ok(_) = alone.wait_for(|g| g.alone) => {
            info!("the peer is down and this node is not isolated: not waiting for a leader");
        }
    }
    let mut settled = gate.clone();
    if tokio::time::timeout(ha::catch_up_grace(domain), settled.wait_for(|g| g.settled))
        .await
        .is_err()
    {
        warn!("the failure detector has not settled; starting the reconciler anyway");
    }
}

/// What the reconciler of `node` should run in `state`: its groups and
/// takeovers ([`takeover::groups_here`]), nothing while the node is fenced
/// (isolated, out of quorum, or just back from a freeze or a lapse).
fn desired(
    state: &DomainState,
    node: &Name,
    gate: &Gate,
    lapsed: bool,
    report: &NodeReport,
) -> Desired {
    let gate = Gate {
        fenced: gate.fenced || lapsed,
        ..gate.clone()
    };
    Desired {
        generation: state.generation,
        config: state.config().unwrap_or_default(),
        groups_here: takeover::groups_here(state, node, &gate, report),
    }
}

/// What, besides the committed state, decides what the reconciler runs.
struct Gates {
    gate: watch::Receiver<Gate>,
    lapse: watch::Receiver<bool>,
    /// Read, not waited on: what runs now, for the hold.
    reports: watch::Receiver<NodeReport>,
}

/// Hands every new committed state to the reconciler, when it changes what
/// this node should run.
async fn feed_reconciler(
    domain: Domain,
    node: Name,
    tx: watch::Sender<Desired>,
    mut gates: Gates,
    mut stop: watch::Receiver<bool>,
) {
    let mut applied = domain.applied.clone();
    loop {
        tokio::select! {
            r = applied.changed() => if r.is_err() { return },
            r = gates.gate.changed() => if r.is_err() { return },
            r = gates.lapse.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
        let (state, index) = {
            let a = applied.borrow_and_update();
            (a.state.clone(), a.index)
        };
        let gate = gates.gate.borrow_and_update().clone();
        let lapsed = *gates.lapse.borrow_and_update();
        let report = gates.reports.borrow().clone();
        let next = desired(&state, &node, &gate, lapsed, &report);
        tx.send_if_modified(|cur| {
            let same = cur.generation == next.generation && cur.groups_here == next.groups_here;
            if !same {
                // What this node runs and why, for the operator and for
                // reading a chaos run's logs side by side.
                info!(
                    groups = ?next.groups_here,
                    applied_index = index,
                    fenced = gate.fenced || lapsed,
                    taken = ?gate.taken.keys().collect::<Vec<_>>(),
                    "groups wanted here"
                );
                *cur = next;
            }
            !same
        });
    }
}

/// Sends this node's report to the leader on every change and at least
/// once per period, which is how the leader knows the node is alive.
async fn send_reports(
    members: Inbound,
    metrics: Arc<Metrics>,
    mut reports: watch::Receiver<NodeReport>,
    mut gate: watch::Receiver<Gate>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let period = members
            .domain
            .state()
            .config()
            .and_then(|c| c.domain.as_ref().map(|d| d.spec.heartbeat.timeout.get()))
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1));
        let mut report = reports.borrow_and_update().clone();
        report.taken_over = gate.borrow_and_update().taken.clone();
        report.failed_peers = metrics.failed_peers();
        report.alive_peers = metrics.alive_peers();
        // Not delivered (no leader yet, or the one this member knows just
        // died): try again soon, not a whole period later — a new leader
        // decides on this report's verdicts (`ha::disputed`), and waiting a
        // period cost a leader's crash 2 s of failover.
        let wait = match network::inbound::deliver_report(&members, report).await {
            Ok(()) => period,
            Err(e) => {
                tracing::debug!("report not delivered: {e}");
                Duration::from_millis(100)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            r = reports.changed() => if r.is_err() { return },
            r = gate.changed() => if r.is_err() { return },
            // A peer failed or came back: the verdict goes out now.
            () = metrics.peers_changed.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

/// SIGTERM or SIGINT, listened for from the agent's first instruction on
/// (tokio replaces the default action when the listener is created), so that
/// the start-up waits can end early and the stop is always the clean one.
struct Shutdown {
    requested: watch::Receiver<bool>,
}

impl Shutdown {
    fn install() -> std::io::Result<Shutdown> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM received"),
                _ = int.recv() => info!("SIGINT received"),
            }
            let _ = tx.send(true);
        });
        Ok(Shutdown { requested: rx })
    }

    fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Returns once a stop was requested (at once if it already was).
    async fn requested(&self) {
        let mut rx = self.requested.clone();
        // The sender lives as long as the listening task, i.e. until a
        // signal came: an error also means "requested".
        let _ = rx.wait_for(|r| *r).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(yaml: &str) -> Result<AgentConfig, AgentError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.yaml");
        std::fs::write(&path, yaml).expect("write");
        AgentConfig::read(&path)
    }

    const BASE: &str = "node: node1\ndataDir: data\ntokenFile: token\n\
                        tls: {cert: n.crt, key: n.key, ca: ca.crt}\n";

    #[test]
    fn the_api_listens_on_loopback_unless_remote_access_is_allowed() {
        // The default and explicit loopback addresses are fine.
        let cfg = read(BASE).expect("loopback by default");
        assert_eq!(cfg.listen, default_listen());
        assert!(cfg.listen.ip().is_loopback());
        for listen in ["127.0.0.1:7401", "127.0.5.9:7401", "\"[::1]:7401\""] {
            let cfg = read(&format!("{BASE}listen: {listen}\n"));
            assert!(cfg.is_ok(), "{listen}: {:?}", cfg.err());
        }
        // Any other address is refused, with what to do about it.
        for listen in ["0.0.0.0:7401", "10.0.0.1:7401", "\"[::]:7401\""] {
            let err = read(&format!("{BASE}listen: {listen}\n"))
                .err()
                .unwrap_or_else(|| panic!("{listen} accepted without allowRemote"));
            let message = err.to_string();
            assert!(message.contains("not a loopback address"), "{message}");
            assert!(message.contains("allowRemote: true"), "{message}");
            let cfg = read(&format!("{BASE}listen: {listen}\nallowRemote: true\n"));
            assert!(cfg.is_ok(), "{listen} with allowRemote: {:?}", cfg.err());
        }
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.yaml");
        std::fs::write(&path, BASE).expect("write");
        let cfg = AgentConfig::read(&path).expect("reads");
        assert_eq!(cfg.data_dir, dir.path().join("data"));
        assert_eq!(cfg.tls.ca, dir.path().join("ca.crt"));
    }
}
