//! Drivers: how one resource of a resource group is brought online, taken
//! offline and checked on this node.
//!
//! One module per resource kind; [`Resource`] puts them behind one small
//! interface (`start`, `stop`, `check`) so the node reconciler
//! (`crate::agent::execution::reconciler`) never needs to know which kind it holds.
//! Drivers are I/O at the edge: they act on the machine and report, they do
//! not decide. Deciding (what should run, when to give up) is the
//! reconciler's job.
//!
//! Data source types without a driver on this platform (and without an OCF
//! `agent`) fail with [`DriverError::Unavailable`]; Windows-only kinds
//! (modules, node alias) fail with [`DriverError::Unsupported`]. Neither
//! ever pretends to succeed, so a group that needs one never reports Online.

pub mod alias;
pub mod cgroup;
pub mod datasource;
pub mod ip;
pub mod module;
pub mod ocf;
pub mod probe;
pub mod process;
pub mod storage;
pub mod systemd;

use std::path::PathBuf;

use crate::model::{Name, ResourceGroupSpec};

/// Why a driver could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The resource kind cannot be managed on this node (yet): retrying will
    /// not help, the group has to run elsewhere or the node be equipped.
    #[error("{0}")]
    Unavailable(String),
    /// The resource only exists on another platform (Windows modules).
    #[error("{what} is unsupported on this platform ({platform})")]
    Unsupported {
        what: String,
        platform: &'static str,
    },
    /// A program could not be started at all.
    #[error("cannot start {what}: {err}")]
    Spawn { what: String, err: std::io::Error },
    /// A file or system call around the resource failed.
    #[error("{what}: {err}")]
    Io { what: String, err: std::io::Error },
    /// The resource was started or stopped but did not do what it should.
    #[error("{0}")]
    Failed(String),
    /// The resource's configuration is invalid anywhere (OCF exit code 6,
    /// `OCF_ERR_CONFIGURED`): it can run on no node, so the group fails on
    /// every node at once rather than node after node.
    #[error("{0}")]
    Misconfigured(String),
}

impl DriverError {
    /// True when retrying on this node cannot succeed, so local restarts
    /// would only delay the failover.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            DriverError::Unavailable(_)
                | DriverError::Unsupported { .. }
                | DriverError::Misconfigured(_)
        )
    }

    /// True when no node can run the resource as configured.
    pub fn is_fatal(&self) -> bool {
        matches!(self, DriverError::Misconfigured(_))
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        DriverError::Io {
            what: what.into(),
            err: source,
        }
    }
}

/// The result of a resource's check or probe (not node health: that is
/// [`crate::plan::Health`], the state of every node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceHealth {
    Healthy,
    /// Why the resource is not healthy, for the group's status message.
    Unhealthy(String),
    /// Started, not ready yet, still within its start-up grace: what it
    /// waits for (a process whose probe has not passed once).
    Starting(String),
}

impl ResourceHealth {
    pub fn is_healthy(&self) -> bool {
        matches!(self, ResourceHealth::Healthy)
    }

    pub fn is_unhealthy(&self) -> bool {
        matches!(self, ResourceHealth::Unhealthy(_))
    }
}

/// Kills a child's process group when dropped, unless disarmed once the
/// child has exited: a caller that drops the future waiting for the child
/// (a newer want, a fence, a timeout) takes down whatever the child
/// started too. The child must lead its own group (`process_group(0)`).
pub(crate) struct GroupKill(Option<nix::unistd::Pid>);

impl GroupKill {
    pub(crate) fn of(child: &tokio::process::Child) -> Self {
        GroupKill(child.id().map(|id| nix::unistd::Pid::from_raw(id as i32)))
    }

    /// The child has exited (and so has the group's work): nothing to kill.
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // Already gone is fine.
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// What every driver of one group on one node shares.
#[derive(Debug, Clone)]
pub struct GroupContext {
    /// This node's name, given to processes as `ASCTL_NODE`.
    pub node: Name,
    /// The group's name, given to processes as `ASCTL_GROUP`.
    pub group: Name,
    /// The agent's data directory: logs under `logs/`, pid files under `run/`.
    pub data_dir: PathBuf,
    /// The program that a process command `asctl` runs. The agent passes its
    /// own executable so that the quickstart's `asctl demo-server` runs the
    /// same build without `asctl` on `PATH`; `None` leaves `asctl` to `PATH`.
    pub asctl_exe: Option<PathBuf>,
    /// The `systemctl` program (a path, or a name looked up in `PATH`).
    pub systemctl: PathBuf,
    /// The `fsck` program a mount point runs before mounting (likewise).
    pub fsck: PathBuf,
    /// Processes start through `asctl exec-gate` and run only once recorded
    /// and allowed (`process::ExecGate`); `None` starts them directly.
    pub exec_gate: Option<process::ExecGate>,
}

impl GroupContext {
    pub fn new(node: Name, group: Name, data_dir: PathBuf) -> Self {
        GroupContext {
            node,
            group,
            data_dir,
            asctl_exe: None,
            systemctl: PathBuf::from("systemctl"),
            fsck: PathBuf::from("fsck"),
            exec_gate: None,
        }
    }
}

/// One resource of a group, of any kind.
#[derive(Debug)]
pub enum Resource {
    DataSource(datasource::DataSourceDriver),
    IpAddress(ip::IpDriver),
    NodeAlias(alias::AliasDriver),
    Module(module::ModuleDriver),
    Service(systemd::ServiceDriver),
    Ocf(Box<ocf::OcfDriver>),
    Process(Box<process::ProcessDriver>),
}

impl Resource {
    /// The resources of a group in online order: data sources → IP addresses
    /// → node alias → module → services → OCF resources → processes. Offline
    /// is the reverse. `sources` are the data sources the group uses
    /// ([`datasource::resolve`]).
    pub fn for_group(
        ctx: &GroupContext,
        spec: &ResourceGroupSpec,
        sources: &datasource::DataSources,
    ) -> Vec<Resource> {
        let mut out = Vec::new();
        out.extend(
            spec.data_sources
                .iter()
                .map(|d| Resource::DataSource(datasource::DataSourceDriver::new(ctx, d, sources))),
        );
        out.extend(spec.ip_addresses.iter().map(|ip| {
            Resource::IpAddress(ip::IpDriver::new(ip.clone()).recorded_in(ctx.data_dir.clone()))
        }));
        if let Some(alias) = &spec.node_alias {
            out.push(Resource::NodeAlias(alias::AliasDriver::new(alias.clone())));
        }
        if let Some(m) = &spec.module {
            out.push(Resource::Module(module::ModuleDriver::new(m.clone())));
        }
        out.extend(spec.services.iter().map(|unit| {
            Resource::Service(systemd::ServiceDriver::new(
                unit.clone(),
                ctx.systemctl.clone(),
            ))
        }));
        out.extend(spec.resources.iter().map(|r| {
            Resource::Ocf(Box::new(
                ocf::OcfDriver::new(
                    format!("resource {} ({})", r.name, r.ocf),
                    r.name.as_str(),
                    r.agent(),
                    ocf::ocf_root(),
                )
                .recorded_in(ctx.data_dir.clone(), ctx.group.as_str()),
            ))
        }));
        out.extend(spec.processes.iter().map(|p| {
            Resource::Process(Box::new(process::ProcessDriver::new(
                ctx.clone(),
                p.clone(),
            )))
        }));
        out
    }

    /// A short name for messages, e.g. `process server`, `ip 10.0.0.5/24`.
    pub fn label(&self) -> String {
        match self {
            Resource::DataSource(d) => d.label(),
            Resource::IpAddress(d) => d.label(),
            Resource::NodeAlias(d) => d.label(),
            Resource::Module(d) => d.label(),
            Resource::Service(d) => d.label(),
            Resource::Ocf(d) => d.label(),
            Resource::Process(d) => d.label(),
        }
    }

    /// Brings the resource online. Idempotent: starting what already runs
    /// (or what a previous agent left running, for processes) is not an error.
    pub async fn start(&mut self) -> Result<(), DriverError> {
        match self {
            Resource::DataSource(d) => d.start().await,
            Resource::IpAddress(d) => d.start().await,
            Resource::NodeAlias(d) => d.start().await,
            Resource::Module(d) => d.start().await,
            Resource::Service(d) => d.start().await,
            Resource::Ocf(d) => d.start().await,
            Resource::Process(d) => d.start().await,
        }
    }

    /// Whether a start in progress may be abandoned half way (its future
    /// dropped) and then undone by [`Resource::stop`]: storage — a mount
    /// point's check, an OCF agent's `start` — whose commands die with their
    /// process group when dropped, and whose record, written before they
    /// ran, lets the stop find what they left. Not processes: one dropped
    /// between its spawn and its pid file would be stopped by nobody; the
    /// other kinds start in milliseconds.
    pub fn start_may_be_cancelled(&self) -> bool {
        matches!(self, Resource::DataSource(_) | Resource::Ocf(_))
    }

    /// Takes the resource offline. Idempotent: stopping what is not running
    /// succeeds.
    pub async fn stop(&mut self) -> Result<(), DriverError> {
        match self {
            Resource::DataSource(d) => d.stop().await,
            Resource::IpAddress(d) => d.stop().await,
            Resource::NodeAlias(d) => d.stop().await,
            Resource::Module(d) => d.stop().await,
            Resource::Service(d) => d.stop().await,
            Resource::Ocf(d) => d.stop().await,
            Resource::Process(d) => d.stop().await,
        }
    }

    /// What the driver can add to a failure's message (a process's probe
    /// answer, exit status and log tail); nothing for the other kinds.
    pub fn failure_details(&self) -> process::FailureDetails {
        match self {
            Resource::Process(d) => d.failure_details(),
            _ => process::FailureDetails::default(),
        }
    }

    /// Checks an online resource. Cheap to call often: each driver decides
    /// when real work (a probe, a `systemctl` call) is due and otherwise
    /// answers from what it last saw.
    pub async fn check(&mut self) -> ResourceHealth {
        match self {
            Resource::DataSource(d) => d.check().await,
            Resource::IpAddress(d) => d.check().await,
            Resource::NodeAlias(d) => d.check(),
            Resource::Module(d) => d.check(),
            Resource::Service(d) => d.check().await,
            Resource::Ocf(d) => d.check().await,
            Resource::Process(d) => d.check().await,
        }
    }
}
