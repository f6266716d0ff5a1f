use std::net::IpAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Cidr, Name, SmallMap};

/// A network line between nodes: a subnet and each member node's address on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkLineSpec {
    /// `domain` lines carry heartbeats; a `verification` line is used to
    /// confirm a suspected failure before acting on it.
    pub role: LineRole,
    /// The line's subnet, e.g. `10.1.0.0/24`.
    pub subnet: Cidr,
    /// The nodes on this line and each one's address on it.
    pub members: SmallMap<Name, IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LineRole {
    /// Carries heartbeats between the nodes.
    Domain,
    /// Confirms a suspected node failure.
    Verification,
}
