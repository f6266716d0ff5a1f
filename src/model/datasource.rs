use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Duration, Name, OcfAgent};

/// A data source: how a resource group reaches its data (a disk, a mirror,
/// a replicated LUN, a network share...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataSourceSpec {
    /// The data source type.
    #[serde(rename = "type")]
    pub kind: DataSourceType,
    /// The device behind the data source, as the VMs see it. Required for
    /// every type except `networkShare`, `composite` and `mountPoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    /// Replication mode: `sync` or `async` (MirrorView, SRDF; mirroring is
    /// always synchronous).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ReplicationMode>,
    /// MirrorView/SRDF: the data source it is combined with — a `sharedDisk`
    /// in RDM mode, a `vmfs` data source in VMFS mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired_with: Option<Name>,
    /// mountPoint: the shared disk data source it mounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<Name>,
    /// mountPoint: the directory the disk is mounted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// composite: the data sources grouped into this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Name>,
    /// networkShare: the UNC name of the share, e.g. `\\fs1\data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
    /// mountPoint: the file system type (e.g. `ext4`, `ntfs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
    /// mountPoint: mount options, comma-separated as for `mount -o`
    /// (e.g. `noatime,nodev`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
    /// How often, and within how long, a Linux node checks the data source
    /// (sharedDisk: a read of the device; mountPoint: a write, fsync and
    /// read of a hidden file). Defaults: every `10s`, within `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<IoMonitor>,
    /// mountPoint: how long stopping may take — the processes still using
    /// the mount get SIGTERM for the first half, SIGKILL for the second —
    /// before the unmount counts as failed (default `20s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<Duration>,
    /// How a Linux node drives this data source when no built-in driver
    /// does: an OCF resource agent. The `type` still says what the data
    /// source is; `agent` only says how to run it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<OcfAgent>,
}

/// When a data source is checked on a Linux node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IoMonitor {
    /// Time between two checks (default `10s`).
    #[serde(default = "IoMonitor::default_interval")]
    pub interval: Duration,
    /// Time a check may take before the data source counts as failed
    /// (default `5s`); hung storage is a failure.
    #[serde(default = "IoMonitor::default_timeout")]
    pub timeout: Duration,
}

impl IoMonitor {
    fn default_interval() -> Duration {
        Duration::from_secs(10)
    }
    fn default_timeout() -> Duration {
        Duration::from_secs(5)
    }
}

impl Default for IoMonitor {
    fn default() -> Self {
        IoMonitor {
            interval: Self::default_interval(),
            timeout: Self::default_timeout(),
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum DataSourceType {
    /// EMC Mirroring: synchronous volume mirroring between two nodes.
    Mirroring,
    /// A disk connected to two or more nodes; AutoStart arbitrates access.
    SharedDisk,
    /// A mount point on a shared disk.
    MountPoint,
    /// EMC MirrorView/S or MirrorView/A on a CLARiiON array.
    MirrorView,
    /// EMC SRDF/S or SRDF/A on a Symmetrix array.
    Srdf,
    /// VMFS data source: adds/removes virtual disks through VirtualCenter.
    Vmfs,
    /// Windows network share.
    NetworkShare,
    /// EMC RepliStor asynchronous replication.
    RepliStor,
    /// Veritas Volume Manager disk group.
    Vxvm,
    /// Two or more data sources grouped as one.
    Composite,
}

impl DataSourceType {
    pub const ALL: [DataSourceType; 10] = [
        DataSourceType::Mirroring,
        DataSourceType::SharedDisk,
        DataSourceType::MountPoint,
        DataSourceType::MirrorView,
        DataSourceType::Srdf,
        DataSourceType::Vmfs,
        DataSourceType::NetworkShare,
        DataSourceType::RepliStor,
        DataSourceType::Vxvm,
        DataSourceType::Composite,
    ];

    /// The name used in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            DataSourceType::Mirroring => "mirroring",
            DataSourceType::SharedDisk => "sharedDisk",
            DataSourceType::MountPoint => "mountPoint",
            DataSourceType::MirrorView => "mirrorView",
            DataSourceType::Srdf => "srdf",
            DataSourceType::Vmfs => "vmfs",
            DataSourceType::NetworkShare => "networkShare",
            DataSourceType::RepliStor => "repliStor",
            DataSourceType::Vxvm => "vxvm",
            DataSourceType::Composite => "composite",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether the type names a device of its own.
    pub fn needs_device(self) -> bool {
        !matches!(
            self,
            DataSourceType::NetworkShare | DataSourceType::Composite | DataSourceType::MountPoint
        )
    }
}

impl std::fmt::Display for DataSourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The device of a data source as presented to the virtual machines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Device {
    /// How the disk reaches the VM: `vmfs` (virtual disk on a VMFS volume),
    /// `rdm-physical` or `rdm-virtual` (raw device mapping).
    pub backing: Backing,
    /// Virtual disk provisioning: `thick` or `thin`. Shared VMFS disks must be thick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning: Option<Provisioning>,
    /// SCSI bus sharing of the controller the disk is on: `none`, `virtual`
    /// (sharing within one host) or `physical` (sharing across hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scsi_bus_sharing: Option<BusSharing>,
    /// The block device or file as the node sees it, e.g. `/dev/sdb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Backing {
    /// A virtual disk file on a VMFS volume.
    Vmfs,
    /// Raw device mapping, physical compatibility mode.
    RdmPhysical,
    /// Raw device mapping, virtual compatibility mode.
    RdmVirtual,
}

impl Backing {
    pub const ALL: [Backing; 3] = [Backing::Vmfs, Backing::RdmPhysical, Backing::RdmVirtual];

    pub fn as_str(self) -> &'static str {
        match self {
            Backing::Vmfs => "vmfs",
            Backing::RdmPhysical => "rdm-physical",
            Backing::RdmVirtual => "rdm-virtual",
        }
    }

    pub fn is_rdm(self) -> bool {
        !matches!(self, Backing::Vmfs)
    }
}

impl std::fmt::Display for Backing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Provisioning {
    Thick,
    Thin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BusSharing {
    /// No bus sharing (required for VMotion).
    None,
    /// Virtual: disks shared between VMs on the same host.
    Virtual,
    /// Physical: disks shared between VMs on different hosts, or with a physical machine.
    Physical,
}

impl BusSharing {
    pub fn as_str(self) -> &'static str {
        match self {
            BusSharing::None => "none",
            BusSharing::Virtual => "virtual",
            BusSharing::Physical => "physical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicationMode {
    Sync,
    Async,
}
