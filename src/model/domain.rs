use std::net::IpAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Duration, Endpoint, MulticastGroup};

/// The domain: the set of nodes that keep a set of resource groups available.
/// Exactly one per configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DomainSpec {
    /// The rule profile the configuration is checked against.
    /// `autostart-vmware-2009` (default) applies every rule of the 2009
    /// AutoStart-on-VMware qualification; `generic` applies only the
    /// structural rules, for domains outside VMware (e.g. local Linux machines).
    #[serde(default)]
    pub qualification: Qualification,
    /// How nodes exchange heartbeats on the domain lines.
    #[serde(default)]
    pub heartbeat: Heartbeat,
    /// Addresses outside the domain that tell a node whether it is isolated,
    /// and what an isolated node does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
    /// `host:port` of a witness member: it votes in the domain database but
    /// runs no groups, so that a two-node domain keeps quorum when one node dies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness: Option<Endpoint>,
    /// Findings accepted on purpose, each with the reason it is acceptable.
    /// Accepted findings are still reported (as suppressed) in JSON and SARIF.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept: Vec<Acceptance>,
}

/// A rule profile: which qualification the configuration must satisfy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Qualification {
    /// EMC AutoStart on VMware ESX, June 2009: the seed document of asctl.
    #[default]
    #[serde(rename = "autostart-vmware-2009")]
    AutostartVmware2009,
    /// Structural rules only; for domains that are not on VMware.
    Generic,
}

impl Qualification {
    pub fn as_str(self) -> &'static str {
        match self {
            Qualification::AutostartVmware2009 => "autostart-vmware-2009",
            Qualification::Generic => "generic",
        }
    }
}

/// Heartbeat timing. A node silent on every domain line for `timeout` is
/// suspected and checked over the verification line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Heartbeat {
    /// Time between two heartbeats on each domain line (default `250ms`).
    #[serde(default = "Heartbeat::default_interval")]
    pub interval: Duration,
    /// Silence after which a peer is suspected (default `1s`).
    #[serde(default = "Heartbeat::default_timeout")]
    pub timeout: Duration,
    /// IPv4 multicast group for heartbeats (224.0.0.0 to 239.255.255.255),
    /// e.g. `239.192.0.1`. The seed advises multicast heartbeats; without it
    /// heartbeats are unicast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multicast: Option<MulticastGroup>,
    /// UDP port of heartbeats and verification probes, the same on every
    /// node and line (default `7500`).
    #[serde(default = "Heartbeat::default_port")]
    pub port: u16,
}

impl Heartbeat {
    fn default_interval() -> Duration {
        Duration::from_millis(250)
    }
    fn default_timeout() -> Duration {
        Duration::from_secs(1)
    }
    pub const DEFAULT_PORT: u16 = 7500;
    fn default_port() -> u16 {
        Heartbeat::DEFAULT_PORT
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            interval: Heartbeat::default_interval(),
            timeout: Heartbeat::default_timeout(),
            multicast: None,
            port: Heartbeat::default_port(),
        }
    }
}

/// Isolation detection: a node that hears no peer and reaches none of these
/// addresses considers itself isolated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Isolation {
    /// External addresses (e.g. the default gateway) probed by every node.
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
    /// What an isolated node does: `offline` (default) takes its groups
    /// offline at once; `none` leaves them running.
    #[serde(default)]
    pub response: IsolationResponse,
    /// A TCP port to connect to on each isolation address when the agent may
    /// not send ICMP echo (neither `net.ipv4.ping_group_range` nor root allows
    /// it). Any answer (accepted or refused) counts as reachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_port: Option<u16>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IsolationResponse {
    /// Take every group offline on the isolated node.
    #[default]
    Offline,
    /// Keep groups running; only report the isolation.
    None,
}

/// A finding accepted on purpose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Acceptance {
    /// The rule ID, e.g. `AS0219`: a rule of the seed (AS01xx, AS02xx) or
    /// one of asctl's warnings. asctl's own errors cannot be accepted.
    #[schemars(regex(pattern = r"^AS[0-9]{4}$"))]
    pub rule: String,
    /// Why the finding is acceptable here; recorded in every report.
    #[schemars(length(min = 1))]
    pub reason: String,
    /// Restrict the acceptance to findings about these objects, written
    /// `Kind/name` (e.g. `Node/sql1`). Empty: every finding of the rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<String>,
    /// Must be `true` to accept an error of the seed's rules: it states that
    /// you run a configuration the qualification does not support.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub acknowledge_unsupported: bool,
}
