use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A physical machine that runs a hypervisor; the virtual-machine nodes of
/// the domain run on hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostSpec {
    /// The hypervisor product and version.
    pub hypervisor: Hypervisor,
    /// The data center the host is in. VMotion cannot cross data centers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    /// The site the host is at (e.g. `operational`, `dr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Number of physical network cards. The seed recommends at least three.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nics: Option<u32>,
    /// Whether VMware HA is enabled on this host. AutoStart is not qualified
    /// with VMware HA.
    #[serde(default, rename = "vmwareHA")]
    pub vmware_ha: bool,
}

/// Hypervisor product and version, e.g. `{product: esx, version: "3.5"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hypervisor {
    /// `esx` or `esxi`.
    pub product: HypervisorProduct,
    /// The version as a string (quote it): `"3.0.2"`, `"3.5"`, `"4.0"`, `"3i"`.
    pub version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HypervisorProduct {
    /// VMware ESX Server.
    Esx,
    /// VMware ESXi (ESX 3i).
    Esxi,
}
