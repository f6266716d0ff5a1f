use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Endpoint, Name};

/// An AutoStart node: a virtual machine on a host, or a physical machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// The Host this virtual machine runs on. Give either `host` or `physical: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Name>,
    /// `true` for a physical machine. Give either `host` or `physical: true`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub physical: bool,
    /// The guest (or physical) operating system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<Os>,
    /// The CPU platform the operating system runs on: `x86` or `x64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Number of network adapters of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nics: Option<u32>,
    /// Number of SCSI controllers of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scsi_controllers: Option<u32>,
    /// PCI slots of the virtual machine (VMware default: 5). Network adapters
    /// and SCSI controllers each take one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_slots: Option<u32>,
    /// NIC teaming: `none` (default), `hypervisor` (teaming in ESX, invisible
    /// to the guest; fine) or `guest` (teaming in the guest OS; unsupported).
    #[serde(default)]
    pub nic_teaming: NicTeaming,
    /// VMotion: `false` (default), `true`, or the list of Hosts the VM may
    /// migrate to.
    #[serde(default)]
    pub vmotion: Vmotion,
    /// How asctl reaches the node's agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentEndpoint>,
    /// `true` drains the node: no group is placed on it (the groups it runs
    /// move to their next preferred node), and it stays a member of the
    /// domain (heartbeats, votes). Default `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub standby: bool,
}

impl NodeSpec {
    /// PCI slots a VMware virtual machine has unless configured otherwise.
    pub const DEFAULT_PCI_SLOTS: u32 = 5;

    pub fn is_vm(&self) -> bool {
        self.host.is_some()
    }

    /// The SCSI controllers the node has: `scsiControllers`, or 1 when it is
    /// not given — SCSI controller 0 always exists, it holds the boot disk
    /// (seed, "Network connection loss"). Every rule that counts controllers
    /// (PCI slots, the second controller) reads this.
    pub fn effective_scsi_controllers(&self) -> u32 {
        self.scsi_controllers.unwrap_or(1)
    }
}

/// Operating system name and word size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Os {
    /// e.g. `windows-2003`, `windows-2008`, `linux`.
    pub name: OsName,
    /// `32` or `64`.
    pub bits: Bits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OsName {
    #[serde(rename = "windows-2000")]
    Windows2000,
    #[serde(rename = "windows-2003")]
    Windows2003,
    #[serde(rename = "windows-2008")]
    Windows2008,
    #[serde(rename = "windows-2008-r2")]
    Windows2008R2,
    #[serde(rename = "windows-2012")]
    Windows2012,
    Linux,
    Solaris,
    Other,
}

impl OsName {
    pub fn is_windows(self) -> bool {
        matches!(
            self,
            OsName::Windows2000
                | OsName::Windows2003
                | OsName::Windows2008
                | OsName::Windows2008R2
                | OsName::Windows2012
        )
    }
}

/// Word size of the operating system: 32 or 64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bits {
    B32,
    B64,
}

impl Bits {
    pub fn get(self) -> u32 {
        match self {
            Bits::B32 => 32,
            Bits::B64 => 64,
        }
    }
}

impl Serialize for Bits {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.get())
    }
}

impl<'de> Deserialize<'de> for Bits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u64::deserialize(d)? {
            32 => Ok(Bits::B32),
            64 => Ok(Bits::B64),
            n => Err(serde::de::Error::custom(format!(
                "{n} is not a word size; use 32 or 64"
            ))),
        }
    }
}

impl JsonSchema for Bits {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Bits".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "enum": [32, 64], "description": "Word size: 32 or 64." })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Platform {
    /// 32-bit x86 CPU.
    X86,
    /// 64-bit x86-64 CPU.
    X64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NicTeaming {
    /// No NIC teaming.
    #[default]
    None,
    /// Teaming in the hypervisor, transparent to the guest (supported).
    Hypervisor,
    /// Teaming in the guest operating system (unsupported by AutoStart).
    Guest,
}

/// VMotion setting of a VM: `false`, `true`, or the Hosts it may migrate to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Vmotion {
    /// `true` lets the VM migrate to any host; `false` forbids VMotion.
    Enabled(bool),
    /// The Hosts the VM may migrate to.
    Targets(Vec<Name>),
}

impl Default for Vmotion {
    fn default() -> Self {
        Vmotion::Enabled(false)
    }
}

impl Vmotion {
    pub fn is_enabled(&self) -> bool {
        match self {
            Vmotion::Enabled(on) => *on,
            Vmotion::Targets(hosts) => !hosts.is_empty(),
        }
    }
}

/// Where the node's agent listens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentEndpoint {
    /// `host:port` of the agent's control API, e.g. `127.0.0.1:7401`.
    pub address: Endpoint,
}
