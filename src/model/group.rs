use super::SmallMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Cidr, Duration, Endpoint, Name, OcfResource};

/// A resource group: an application with its data, addresses and processes,
/// kept online on one node at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceGroupSpec {
    /// The nodes the group may run on, in failover order; the first is home.
    #[schemars(length(min = 1))]
    pub preferred_nodes: Vec<Name>,
    /// `manual` (default): after a failover the group stays where it is.
    /// `auto`: it returns home as soon as the home node is healthy.
    #[serde(default)]
    pub failback: Failback,
    /// The data sources the group needs, brought online first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_sources: Vec<Name>,
    /// Managed IP addresses that move with the group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<ManagedIp>,
    /// A second network name that moves with the group (Windows node alias).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_alias: Option<String>,
    /// An AutoStart application module (Windows only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<Module>,
    /// Processes the group runs, started last and stopped first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<Process>,
    /// systemd units the group starts and stops.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// OCF resource agents run with the group (Linux), online after the
    /// services and before the processes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<OcfResource>,
    /// Local restarts allowed before the group fails over.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// `online` (default): the domain keeps the group running. `offline`: the
    /// operator takes it down (on every node) without removing it from the
    /// configuration.
    #[serde(default, skip_serializing_if = "DesiredState::is_online")]
    pub state: DesiredState,
}

/// Whether the operator wants a group running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DesiredState {
    /// Placed and kept running.
    #[default]
    Online,
    /// Placed nowhere: stopped on every node.
    Offline,
}

impl DesiredState {
    pub fn is_online(&self) -> bool {
        *self == DesiredState::Online
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Failback {
    /// Stay on the node the group failed over to.
    #[default]
    Manual,
    /// Return to the first healthy node of `preferredNodes`.
    Auto,
}

/// A managed IP address and the network line it lives on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagedIp {
    /// The address with its prefix length, e.g. `10.1.0.100/24`.
    pub address: Cidr,
    /// The NetworkLine the address is added on.
    pub line: Name,
}

/// An AutoStart application module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Module {
    /// The module type.
    #[serde(rename = "type")]
    pub kind: ModuleType,
    /// The application instance the module manages (e.g. SQL Server instance name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ModuleType {
    #[serde(rename = "sql-server-2005")]
    SqlServer2005,
    #[serde(rename = "sql-server-2008")]
    SqlServer2008,
    #[serde(rename = "exchange-2003")]
    Exchange2003,
    #[serde(rename = "exchange-2007")]
    Exchange2007,
    Oracle,
    PrintServices,
}

impl ModuleType {
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleType::SqlServer2005 => "sql-server-2005",
            ModuleType::SqlServer2008 => "sql-server-2008",
            ModuleType::Exchange2003 => "exchange-2003",
            ModuleType::Exchange2007 => "exchange-2007",
            ModuleType::Oracle => "oracle",
            ModuleType::PrintServices => "print-services",
        }
    }
}

/// A process the group runs and monitors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Process {
    /// The process name, unique within the group.
    pub name: Name,
    /// Program and arguments, e.g. `[asctl, demo-server, --port, "8080"]`.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// Environment variables. Values are treated as secrets: plans show them
    /// as `(sensitive)`.
    #[serde(default, skip_serializing_if = "SmallMap::is_empty")]
    pub env: SmallMap<String, String>,
    /// Working directory of the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// How the process is monitored beyond "is it alive".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<Monitor>,
    /// Time between SIGTERM and SIGKILL when stopping (default `10s`).
    #[serde(default = "Process::default_stop_timeout")]
    pub stop_timeout: Duration,
}

impl Process {
    fn default_stop_timeout() -> Duration {
        Duration::from_secs(10)
    }
}

/// A periodic health probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Monitor {
    /// Time between two probes (default `10s`).
    #[serde(default = "Monitor::default_interval")]
    pub interval: Duration,
    /// Time a probe may take before it counts as failed (default `5s`).
    #[serde(default = "Monitor::default_timeout")]
    pub timeout: Duration,
    /// The probe; without one only "is the process alive" is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<Probe>,
    /// Start-up grace (default `30s`): after a start, the probe's failures
    /// do not count until it has passed once, for at most this long. The
    /// process is ready (and its group online) only once the probe passed; a
    /// probe that has not passed within it is a failed start.
    #[serde(default = "Monitor::default_start_timeout")]
    pub start_timeout: Duration,
}

impl Monitor {
    fn default_interval() -> Duration {
        Duration::from_secs(10)
    }
    fn default_timeout() -> Duration {
        Duration::from_secs(5)
    }
    fn default_start_timeout() -> Duration {
        Duration::from_secs(30)
    }
}

/// One of: `exec` (a command that must exit 0), `tcp` (a `host:port` that
/// must accept a connection), `http` (a URL that must answer 2xx/3xx).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Probe {
    /// A command that must exit with status 0.
    Exec(Vec<String>),
    /// A `host:port` that must accept a TCP connection.
    Tcp(Endpoint),
    /// An `http://` URL that must answer with a 2xx or 3xx status.
    Http(String),
}

/// Local restarts before failover: at most `limit` restarts within `window`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestartPolicy {
    /// Restarts allowed on the same node within `window` (default 3).
    #[serde(default = "RestartPolicy::default_limit")]
    pub limit: u32,
    /// The sliding window the limit counts in (default `15m`).
    #[serde(default = "RestartPolicy::default_window")]
    pub window: Duration,
}

impl RestartPolicy {
    fn default_limit() -> u32 {
        3
    }
    fn default_window() -> Duration {
        Duration::from_secs(15 * 60)
    }
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            limit: Self::default_limit(),
            window: Self::default_window(),
        }
    }
}
