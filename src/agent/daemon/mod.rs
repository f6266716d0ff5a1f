//! `asctl agent`: one member of a domain, wired together.
//!
//! Every member runs the domain database ([`crate::domain`]) with its
//! leader loop and the HTTPS server ([`crate::agent::server`]). A node (not
//! the witness) also runs [`NodeTasks`]: the lease guard
//! ([`crate::agent::failover::guard`]), a separate process that fences the
//! node's groups if this agent is killed or frozen; the failover policy
//! ([`crate::agent::failover::policy`]) with the heartbeats and failure
//! detector, which give the leader its node health and fence this node's
//! groups; and the node reconciler fed from the committed state ([`feed`]),
//! whose reports go to the leader. On SIGTERM or SIGINT the groups go
//! offline (unless `leave_running`), then the API and raft stop.

mod config;
mod feed;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::agent::detection::packet::DomainKey;
use crate::agent::execution::reconciler::{self, Options, ReconcilerHandle};
use crate::agent::failover::guard::{self, Guard};
use crate::agent::failover::journal::Journal;
use crate::agent::failover::policy::{self, DetectorHealth, PolicyContext};
use crate::agent::failover::takeover::Clearance;
use crate::agent::metrics::Metrics;
use crate::agent::server::api::{self, ApiState};
use crate::agent::server::auth::{Token, read_token};
use crate::agent::server::hygiene::Hygiene;
use crate::agent::server::tls;
use crate::agent::vital;
use crate::domain::leader::{self, HealthSource, ReportFreshness, desired_members};
use crate::domain::network::Inbound;
use crate::domain::{Client, Member, Replica, node_id};
use crate::load::{Input, load};
use crate::model::{Config, Name};

pub use config::{AgentConfig, AgentError, TlsFiles};

fn io_error(what: &str) -> impl FnOnce(std::io::Error) -> AgentError {
    let what = what.to_owned();
    move |source| AgentError::Io { what, err: source }
}

/// How the agent stops.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// On SIGTERM, leave the groups running for the next agent to adopt.
    pub leave_running: bool,
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(cfg: AgentConfig, opts: RunOptions) -> Result<(), AgentError> {
    // First of all: a SIGTERM from here on is a request to stop cleanly,
    // not the default action that kills the process mid-start-up (with its
    // guard and data directory in whatever state they were).
    let shutdown = Shutdown::install().map_err(io_error("listening for SIGTERM and SIGINT"))?;
    tls::install_provider();
    let token = read_token(&cfg.token_file).map_err(io_error("reading the token file"))?;
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
        .map_err(io_error("creating the data directory"))?;
    // Before any process starts: what a killed previous run left behind.
    crate::drivers::cgroup::sweep_empty(&cfg.data_dir);
    let domain = Replica::open(&cfg.data_dir.join("raft"), me.clone(), client).await?;

    let metrics = Arc::new(Metrics::new());
    let members = Inbound {
        domain: domain.clone(),
        freshness: Arc::new(ReportFreshness::default()),
        kick: Arc::new(Notify::new()),
    };
    let me_node: Option<Name> = if cfg.witness { None } else { name.parse().ok() };
    let detector_health = Arc::new(
        DetectorHealth::new(me_node, members.freshness.clone(), domain.clone())
            .with_lines(metrics.clone()),
    );
    let state = ApiState {
        domain: domain.clone(),
        metrics: metrics.clone(),
    };
    let app = api::router(state, members.clone(), Token::new(&token));
    let server = Server::start(&cfg, &name, app).await?;

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

    let (stop, stop_rx) = watch::channel(false);
    let health: Arc<dyn HealthSource> = detector_health.clone();
    let leader_task = vital::spawn(
        "leader",
        leader::run(
            domain.clone(),
            health,
            members.freshness.clone(),
            members.kick.clone(),
            stop_rx.clone(),
        ),
    );
    let node = if cfg.witness {
        None
    } else {
        let node: Name = name.parse().map_err(|e: String| AgentError::Config {
            path: "agent.yaml".into(),
            message: format!("node: {e}"),
        })?;
        let start = NodeStart {
            node,
            data_dir: cfg.data_dir.clone(),
            domain: domain.clone(),
            key: DomainKey::derive(token.as_bytes()),
            metrics,
            health: detector_health,
            members,
            stop: stop_rx,
        };
        Some(NodeTasks::start(start, &shutdown).await?)
    };

    // Fail-stop: a raft core that quits on its own (a storage error: disk
    // full, EIO, a read-only file system) leaves this node unable to hear
    // the domain, which is about to start its groups elsewhere; so does a
    // vital task that died or stalls (the heartbeats, the detector, the
    // lease renewal, ...: `agent::vital`).
    let stalls = {
        let domain = domain.clone();
        tokio::spawn(vital::global().watch_stalls(move || {
            let hb = domain.state().heartbeat().unwrap_or_default();
            guard::lease_time(hb.timeout.get())
        }))
    };
    let fatal = tokio::select! {
        () = shutdown.requested() => None,
        cause = raft_stopped(&domain) => Some(AgentError::RaftStopped(cause)),
        cause = vital::global().failed() => Some(AgentError::TaskFailed(cause)),
    };
    // From here on tasks end by design.
    vital::global().stopping();
    stalls.abort();
    match &fatal {
        None => info!("{name}: stopping"),
        Some(cause) => error!("{name}: {cause}: fencing this node's groups and exiting"),
    }
    if let (Some(cause), Some(node)) = (&fatal, &node) {
        node.journal_fail_stop(cause);
    }
    let _ = stop.send(true);
    let failed = fatal.is_some();
    if let Some(node) = node {
        node.stop(opts.leave_running, failed).await;
    }
    let _ = settle(leader_task, failed).await;
    server.stop(failed).await;
    if let Err(e) = domain.raft.shutdown().await {
        warn!("raft did not stop cleanly: {e}");
    }
    if let Some(e) = fatal {
        return Err(e);
    }
    info!("{name}: stopped");
    Ok(())
}

/// How long a fail-stop waits for each task: one that stalled never ends.
const FAILED_TASK_WAIT: Duration = Duration::from_secs(2);

/// Waits for a task to end; after a fatal failure, for at most
/// [`FAILED_TASK_WAIT`] (the stalled task is left behind: the process exits
/// soon).
async fn settle<T>(task: JoinHandle<T>, failed: bool) -> Option<T> {
    if !failed {
        return task.await.ok();
    }
    match tokio::time::timeout(FAILED_TASK_WAIT, task).await {
        Ok(out) => out.ok(),
        Err(_) => {
            warn!("a task did not end within {FAILED_TASK_WAIT:?} of the fail-stop; leaving it");
            None
        }
    }
}

/// Resolves, with the cause, when the raft core has quit on its own.
async fn raft_stopped(domain: &Replica) -> String {
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

/// The HTTPS server (control API and the domain's member routes).
struct Server {
    handle: axum_server::Handle<SocketAddr>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Serves `app` on `cfg.listen`; fails early and clearly when the port
    /// is taken.
    async fn start(cfg: &AgentConfig, name: &str, app: axum::Router) -> Result<Server, AgentError> {
        let server_cfg = tls::server_config(&cfg.tls.cert, &cfg.tls.key)?;
        let handle = axum_server::Handle::<SocketAddr>::new();
        let task = {
            let handle = handle.clone();
            let listen = cfg.listen;
            let rustls = axum_server::tls_rustls::RustlsConfig::from_config(server_cfg);
            let limits = cfg.connections;
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(rustls)
                .handshake_timeout(limits.handshake_timeout.get())
                .acceptor(Hygiene::new(limits));
            let mut server = axum_server::bind(listen).acceptor(acceptor);
            server
                .http_builder()
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout.get());
            vital::spawn("API server", async move {
                server.handle(handle).serve(app.into_make_service()).await
            })
        };
        match tokio::time::timeout(Duration::from_secs(5), handle.listening()).await {
            Ok(Some(addr)) => {
                info!("{name}: serving the control API on https://{addr}");
                Ok(Server { handle, task })
            }
            _ => {
                let detail = match task.await {
                    Ok(Err(e)) => e.to_string(),
                    _ => "the server did not start".into(),
                };
                Err(AgentError::Io {
                    what: format!("listening on {}", cfg.listen),
                    err: std::io::Error::other(detail),
                })
            }
        }
    }

    async fn stop(self, failed: bool) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(2)));
        let _ = settle(self.task, failed).await;
    }
}

/// What a node's tasks start from.
struct NodeStart {
    node: Name,
    data_dir: PathBuf,
    domain: Replica,
    key: DomainKey,
    metrics: Arc<Metrics>,
    health: Arc<DetectorHealth>,
    members: Inbound,
    /// Set when the agent stops: every task below ends on it.
    stop: watch::Receiver<bool>,
}

/// The tasks a node runs besides the domain member, started in this order
/// and stopped, by [`NodeTasks::stop`], in an order that never leaves a
/// group running unfenced.
struct NodeTasks {
    /// Where a fail-stop is recorded, with what ran here then.
    journal: Journal,
    reports: watch::Receiver<crate::wire::NodeReport>,
    /// The lease guard's renewal; told to stop last.
    guard_stop: watch::Sender<bool>,
    guard: JoinHandle<Guard>,
    /// Holds the node fenced after its lease lapsed, until caught up.
    lapse: JoinHandle<()>,
    /// The failover policy with the heartbeats and failure detector.
    policy: JoinHandle<()>,
    /// `None` when a stop came before the reconciler could start.
    reconciling: Option<Reconciling>,
}

/// The node reconciler with the task that feeds it and the one that
/// sends its reports.
struct Reconciling {
    reconciler: ReconcilerHandle,
    feed: JoinHandle<()>,
    reports: JoinHandle<()>,
}

impl NodeTasks {
    async fn start(s: NodeStart, shutdown: &Shutdown) -> Result<NodeTasks, AgentError> {
        // The guard runs before anything is started, so nothing runs
        // unfenced; no guard, no groups.
        let exe = std::env::current_exe().map_err(io_error("finding the agent's executable"))?;
        let guard = Guard::start(exe.clone(), s.data_dir.clone())
            .await
            .map_err(io_error("starting the lease guard"))?;
        let lease = guard.lease.clone();
        // Renewed until the very end of a graceful stop, not just until the
        // stop begins: a slow graceful stop must not be cut short by a fence.
        let (guard_stop, guard_stop_rx) = watch::channel(false);
        let guard = vital::spawn("lease renewal", guard.run(s.domain.clone(), guard_stop_rx));
        let (clearance_tx, clearance_rx) = watch::channel(Clearance::default());
        let (lapse_tx, lapse_rx) = watch::channel(false);
        let lapse = vital::spawn(
            "lease lapse",
            guard::hold_after_lapse(
                lease.clone(),
                s.domain.clone(),
                lapse_tx,
                clearance_rx.clone(),
                s.stop.clone(),
            ),
        );
        // Heartbeats and the failure detector run from the replayed state
        // at once, not after the catch-up below: a restarted agent that
        // stayed silent through it would be declared failed by its peers,
        // and its groups (left running for it to adopt) moved away.
        let (report_tx, report_rx) = reconciler::report_channel(&s.node);
        let policy = vital::spawn(
            "failover policy",
            policy::run(
                PolicyContext {
                    domain: s.domain.clone(),
                    node: s.node.clone(),
                    key: s.key.clone(),
                    metrics: s.metrics.clone(),
                    health: s.health.clone(),
                    clearance: clearance_tx,
                    reports: report_rx.clone(),
                    journal: Journal::new(&s.data_dir),
                },
                s.stop.clone(),
            ),
        );
        // Groups start only from a current placement
        // ([`policy::wait_caught_up`]). The guard is already running: an
        // agent frozen while it waits here comes back with stale metrics
        // that look caught up, and only the lease notices the gap. A stop
        // asked for during the wait (or before) starts nothing.
        let journal = Journal::new(&s.data_dir);
        let may_start = !shutdown.is_requested()
            && tokio::select! {
                () = feed::wait_to_reconcile(&s.domain, &clearance_rx) => true,
                () = shutdown.requested() => false,
            };
        let reconciling = may_start.then(|| {
            let mut ropts = Options::new(s.node.clone(), s.data_dir.clone());
            ropts.asctl_exe = Some(exe);
            ropts.lease = Some(lease);
            Reconciling::start(s, ropts, report_tx, clearance_rx, lapse_rx)
        });
        Ok(NodeTasks {
            journal,
            reports: report_rx,
            guard_stop,
            guard,
            lapse,
            policy,
            reconciling,
        })
    }

    /// A fail-stop fences this node (the guard, below) while the agent
    /// is about to exit: recorded for the domain's history, which the next
    /// agent of this node submits.
    fn journal_fail_stop(&self, cause: &AgentError) {
        let groups = policy::held_groups(&self.reports.borrow());
        if groups.is_empty() {
            return;
        }
        let now = std::time::SystemTime::now();
        let cause = format!("fail-stop: {cause}");
        if let Err(e) = self.journal.record(now, now, &cause, groups) {
            warn!("cannot write the fencing journal: {e}");
        }
    }

    /// Once the agent's stop signal went out: the reconciler's feeders end,
    /// the groups go offline (or are left running for the next agent), and
    /// only then may the guard go without fencing.
    ///
    /// After a fatal failure (`failed`) the guard fences first — it kills
    /// the node's processes and removes its addresses now, from its own
    /// process, whichever task is stuck — and the rest is waited for only
    /// [`FAILED_TASK_WAIT`] each. If the lease renewal itself is the stuck
    /// task, no renewal follows and the guard fences when the lease runs
    /// out, as for a frozen agent.
    async fn stop(self, leave_running: bool, failed: bool) {
        let mut guard = Some(self.guard);
        if failed {
            let _ = self.guard_stop.send(true);
            if let Some(Some(g)) = settle_opt(guard.take(), failed).await {
                g.fence().await;
                info!("the lease guard fenced this node's groups");
            }
        }
        let reconciler = match self.reconciling {
            Some(r) => {
                let _ = settle(r.feed, failed).await;
                let _ = settle(r.reports, failed).await;
                Some(r.reconciler)
            }
            None => None,
        };
        let _ = settle(self.policy, failed).await;
        let _ = settle(self.lapse, failed).await;
        if let Some(rec) = reconciler {
            let offline = rec.shutdown(leave_running && !failed);
            if failed {
                let _ = tokio::time::timeout(FAILED_TASK_WAIT, offline).await;
            } else {
                offline.await;
            }
        }
        let _ = self.guard_stop.send(true);
        if let Some(Some(g)) = settle_opt(guard, failed).await {
            g.detach().await;
        }
    }
}

async fn settle_opt<T>(task: Option<JoinHandle<T>>, failed: bool) -> Option<Option<T>> {
    match task {
        Some(t) => Some(settle(t, failed).await),
        None => None,
    }
}

impl Reconciling {
    fn start(
        s: NodeStart,
        ropts: Options,
        report_tx: watch::Sender<crate::wire::NodeReport>,
        clearance: watch::Receiver<Clearance>,
        lapse: watch::Receiver<bool>,
    ) -> Reconciling {
        let first = feed::desired(
            &s.domain.state(),
            &s.node,
            &clearance.borrow(),
            *lapse.borrow(),
            &report_tx.borrow(),
        );
        info!(groups = ?first.groups_here, "groups wanted here at start");
        let (desired_tx, desired_rx) = watch::channel(first);
        let reconciler = reconciler::spawn_reporting_to(ropts, desired_rx, report_tx);
        let feed = vital::spawn(
            "reconciler feed",
            feed::feed_reconciler(
                s.domain.clone(),
                s.node.clone(),
                desired_tx,
                feed::FeedInputs {
                    clearance: clearance.clone(),
                    lapse,
                    reports: reconciler.reports.clone(),
                },
                s.stop.clone(),
            ),
        );
        let reports = vital::spawn(
            "report sender",
            feed::send_reports(
                s.members,
                s.metrics,
                Journal::new(&s.data_dir),
                reconciler.reports.clone(),
                clearance,
                s.stop,
            ),
        );
        Reconciling {
            reconciler,
            feed,
            reports,
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
            // Tasks end by design from here on, even before the main loop
            // sees the request: a start-up wait cut short drops channels
            // whose readers then return, which is not a vital task's death.
            vital::global().stopping();
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
