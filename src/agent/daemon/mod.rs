//! `asctl agent`: one member of a domain, wired together.
//!
//! Every member runs the domain database ([`crate::domain`]) with its
//! leader loop and the HTTPS server ([`crate::agent::server`]), the set
//! [`MemberTasks`] with one stop. A node (not the witness) also runs
//! [`NodeTasks`] (`node.rs`): the lease guard
//! ([`crate::agent::failover::guard`]), a separate process that fences the
//! node's groups if this agent is killed or frozen; the failover policy
//! ([`crate::agent::failover::policy`]) with the heartbeats and failure
//! detector, which give the leader its node health and fence this node's
//! groups; and the node reconciler fed from the committed state ([`feed`]),
//! whose reports go to the leader. On SIGTERM or SIGINT the groups go
//! offline (unless `leave_running`), then the API and raft stop.

mod config;
mod feed;
mod node;
mod removed;

use node::{NodeStart, NodeTasks};

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::agent::detection::packet::DomainKey;
use crate::agent::failover::guard;
use crate::agent::failover::policy::DetectorHealth;
use crate::agent::metrics::Metrics;
use crate::agent::server::api::{self, ApiState};
use crate::agent::server::auth::Credentials;
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
    let creds = Credentials::read(&cfg.token_file).map_err(io_error("reading the token file"))?;
    let token = creds.domain_secret().to_owned();
    let client = Client::new(tls::client_config(&cfg.tls.ca)?, &token);
    let name = cfg.member_name();
    let me = cfg.member();
    // 0700: the raft log and process output hold environment values.
    crate::private::create_dir(&cfg.data_dir).map_err(io_error("creating the data directory"))?;
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
    let app = api::router(state, members.clone(), Arc::new(creds));
    let server = Server::start(&cfg, &name, app).await?;
    if let Some(generation) = crate::domain::removal::marked(&cfg.data_dir.join("raft")) {
        // Removed in an earlier run: no raft core, no groups, only `status`.
        domain.removed.get_or_init(|| generation);
        removed::stop_raft(&domain).await;
        return removed::stay(&name, server, &shutdown).await;
    }

    join_domain(&cfg, &me, &domain, &shutdown).await?;

    let inbound = members.clone();
    let (stop, stop_rx) = watch::channel(false);
    let leader = spawn_leader(&domain, detector_health.clone(), &members, stop_rx.clone());
    let node = match node_name(&cfg, &name)? {
        None => None,
        Some(node) => {
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
            // The start waits until this member has caught up with the
            // leader; a raft core that quits meanwhile (its disk failed)
            // never lets it, and the node would wait on, unable to keep
            // any promise, instead of failing.
            tokio::select! {
                started = NodeTasks::start(start, &shutdown) => Some(started?),
                cause = raft_stopped(&domain) => return Err(AgentError::RaftStopped(cause)),
            }
        }
    };
    let tasks = MemberTasks {
        stop,
        leader,
        node,
        server,
        domain: domain.clone(),
    };

    let fatal = match until_stop_or_failure(&domain, &shutdown).await {
        Ending::Removed(generation) => {
            let server = tasks.leave(generation, &cfg.data_dir, &inbound).await;
            return removed::stay(&name, server, &shutdown).await;
        }
        Ending::Stop => None,
        Ending::Failed(e) => Some(e),
    };
    match &fatal {
        None => info!("{name}: stopping"),
        Some(cause) => error!("{name}: {cause}: fencing this node's groups and exiting"),
    }
    tasks.stop(opts.leave_running, fatal.as_ref()).await;
    match fatal {
        Some(e) => Err(e),
        None => {
            info!("{name}: stopped");
            Ok(())
        }
    }
}

/// Forms the domain on a first start (with the founding members), then
/// waits — at most 10 s, or until a stop is asked for — for the state
/// before a restart to be applied again.
async fn join_domain(
    cfg: &AgentConfig,
    me: &Member,
    domain: &Replica,
    shutdown: &Shutdown,
) -> Result<(), AgentError> {
    let founders = founding_members(cfg, me)?;
    if !founders.is_empty() {
        domain.bootstrap(founders).await?;
    }
    tokio::select! {
        caught_up = domain.caught_up(Duration::from_secs(10)) => if !caught_up {
            warn!("the state before the restart is not re-applied yet; starting anyway");
        },
        () = shutdown.requested() => {}
    }
    Ok(())
}

/// The leader loop, run on every member (it acts while this one leads).
fn spawn_leader(
    domain: &Replica,
    health: Arc<DetectorHealth>,
    members: &Inbound,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let health: Arc<dyn HealthSource> = health;
    vital::spawn(
        "leader",
        leader::run(
            domain.clone(),
            health,
            members.freshness.clone(),
            members.kick.clone(),
            stop,
        ),
    )
}

/// This member's node name, or `None` for the witness (which runs no
/// groups).
fn node_name(cfg: &AgentConfig, name: &str) -> Result<Option<Name>, AgentError> {
    if cfg.witness {
        return Ok(None);
    }
    let node: Name = name.parse().map_err(|e: String| AgentError::Config {
        path: "agent.yaml".into(),
        message: format!("node: {e}"),
    })?;
    Ok(Some(node))
}

/// Why the agent's member tasks end.
enum Ending {
    /// Asked to (SIGTERM or SIGINT).
    Stop,
    /// Fail-stop: the fatal failure.
    Failed(AgentError),
    /// This member was removed from the domain by the configuration of
    /// this generation ([`crate::domain::removal`]).
    Removed(u64),
}

/// Returns when the agent is to stop or leave ([`Ending`]). Fail-stop: a raft core that quits on
/// its own (a storage error: disk full, EIO, a read-only file system)
/// leaves this node unable to hear the domain, which is about to start its
/// groups elsewhere; so does a vital task that died or stalls (the
/// heartbeats, the detector, the lease renewal, ...: `agent::vital`).
async fn until_stop_or_failure(domain: &Replica, shutdown: &Shutdown) -> Ending {
    // A raft core stuck in a storage call (a disk whose fsync takes
    // seconds) neither quits nor progresses: its calls' age shows it.
    for calls in domain.storage_calls() {
        vital::global().watch_storage(calls.clone());
    }
    let stalls = {
        let domain = domain.clone();
        tokio::spawn(vital::global().watch_stalls(move || {
            let hb = domain.state().heartbeat().unwrap_or_default();
            guard::lease_time(hb.timeout.get())
        }))
    };
    let ending = tokio::select! {
        () = shutdown.requested() => Ending::Stop,
        cause = raft_stopped(domain) => Ending::Failed(AgentError::RaftStopped(cause)),
        cause = vital::global().failed() => Ending::Failed(first_cause(cause, raft_stopped(domain)).await),
        generation = crate::domain::removal::wait_removed(domain) => Ending::Removed(generation),
    };
    // From here on tasks end by design.
    vital::global().stopping();
    stalls.abort();
    ending
}

/// What a member runs once its database is open: the HTTPS server, the
/// leader loop and, on a node (not the witness), the [`NodeTasks`].
struct MemberTasks {
    /// Set when the agent stops: every task below ends on it.
    stop: watch::Sender<bool>,
    leader: JoinHandle<()>,
    node: Option<NodeTasks>,
    server: Server,
    domain: Replica,
}

impl MemberTasks {
    /// Stops everything: the node's tasks first (its groups offline, or
    /// fenced after a `fatal` failure, which the fencing journal records),
    /// then the leader loop, the server and raft.
    async fn stop(self, leave_running: bool, fatal: Option<&AgentError>) {
        let _ = self.stop.send(true);
        let failed = fatal.is_some();
        if let Some(node) = self.node {
            node.stop(leave_running, fatal).await;
        }
        let _ = settle(self.leader, failed).await;
        self.server.stop(failed).await;
        // A raft core stuck in a storage call answers the shutdown only
        // once the call returns: after a fatal failure, do not wait for it.
        match settle(
            tokio::spawn(async move { self.domain.raft.shutdown().await }),
            failed,
        )
        .await
        {
            Some(Err(e)) => warn!("raft did not stop cleanly: {e}"),
            Some(Ok(())) => {}
            None => warn!("raft did not stop within {FAILED_TASK_WAIT:?}; leaving it"),
        }
    }
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

/// How long a vital task that ended waits for the raft core to show that
/// it quit: its own report lags the tasks it takes down (milliseconds).
const RAFT_CAUSE_GRACE: Duration = Duration::from_millis(100);

/// The error to report for a vital task's failure. A raft core that quits
/// (its disk full) drops the state machine, whose channels the failover
/// policy and the reconciler read: they end at once, often before the
/// core's metrics say why, and "the failover policy task ended" would hide
/// the full disk. So a task that *ended* waits up to [`RAFT_CAUSE_GRACE`]
/// for the raft core's cause. A panic or a stall is reported at once: the
/// fence must not wait (a stall is found within its budget of the lease).
async fn first_cause(failure: vital::Failure, raft: impl Future<Output = String>) -> AgentError {
    if failure.ended
        && let Ok(raft) = tokio::time::timeout(RAFT_CAUSE_GRACE, raft).await
    {
        return AgentError::RaftStopped(raft);
    }
    AgentError::TaskFailed(failure.cause)
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
                let served = server.handle(handle).serve(app.into_make_service()).await;
                // Said here, before the supervisor's "the API server task
                // ended", so that the log names the cause (a port taken)
                // first.
                if let Err(e) = &served {
                    error!("the API server stopped: {e}");
                }
                served
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

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(cause: &str, ended: bool) -> vital::Failure {
        vital::Failure {
            cause: cause.into(),
            ended,
        }
    }

    /// The raft core's report, `after` the task's failure.
    async fn raft_quits(after: Duration) -> String {
        tokio::time::sleep(after).await;
        "No space left on device".to_string()
    }

    #[tokio::test]
    async fn a_task_that_ends_as_the_raft_core_quits_reports_the_raft_cause() {
        let ended = failure("the failover policy task ended", true);
        let cause = first_cause(ended, raft_quits(Duration::from_millis(20))).await;
        assert!(
            matches!(&cause, AgentError::RaftStopped(c) if c == "No space left on device"),
            "{cause}"
        );
    }

    #[tokio::test]
    async fn a_task_that_ends_with_raft_running_reports_the_task() {
        let ended = failure("the feed task ended", true);
        let cause = first_cause(ended, std::future::pending()).await;
        assert!(
            matches!(&cause, AgentError::TaskFailed(c) if c == "the feed task ended"),
            "{cause}"
        );
    }

    /// A stall or a panic fences at once: the raft core is not waited
    /// for, even one that has quit already.
    #[tokio::test]
    async fn a_stall_or_a_panic_is_reported_as_itself() {
        for cause in [
            "the detector task stalled",
            "the detector task panicked: boom",
        ] {
            let raft = std::future::ready("No space left on device".to_string());
            let error = first_cause(failure(cause, false), raft).await;
            assert!(
                matches!(&error, AgentError::TaskFailed(c) if c == cause),
                "{error}"
            );
        }
    }
}
