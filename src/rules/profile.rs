//! Qualification profiles: the data a qualification document contributes.
//!
//! The checks are written once and read their limits from the profile in
//! force (`Domain.spec.qualification`). A new qualification (say, a later
//! hypervisor generation) is a new [`Profile`] value — its tables, qualified
//! hypervisor versions, guest operating systems, module limits — plus rules
//! only for what is genuinely new; see docs/rules.md.

use crate::model::{Bits, Config, DataSourceType, ModuleType, OsName, Qualification};

use super::tables::{self, Table};

/// A qualified hypervisor version: `version` itself, or — with
/// `updates: true` — any maintenance release of it (`3.0` covers `3.0.2`
/// and `3.0u1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionPattern {
    /// How the seed writes it (`3.0.x`).
    pub label: &'static str,
    pub version: &'static str,
    pub updates: bool,
}

impl VersionPattern {
    pub fn matches(&self, version: &str) -> bool {
        let v = version.trim();
        if v == self.version {
            return true;
        }
        if !self.updates {
            return false;
        }
        let Some(rest) = v.strip_prefix(self.version) else {
            return false;
        };
        let rest = rest
            .strip_prefix('.')
            .or_else(|| rest.strip_prefix('u'))
            .unwrap_or("");
        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
    }
}

/// A module and the OS word sizes it runs on (`None`: any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleSupport {
    pub module: ModuleType,
    pub bits: Option<Bits>,
}

/// Everything a qualification profile says about configurations.
#[derive(Debug)]
pub struct Profile {
    pub qualification: Qualification,
    /// Whether `Scope::Qualification` rules are in force.
    pub qualifies_vmware: bool,
    /// The document the profile encodes.
    pub source: &'static str,
    /// The support tables; empty when there is no matrix.
    pub tables: &'static [Table],
    pub hypervisor_versions: &'static [VersionPattern],
    /// Guest operating systems of VMs.
    pub guest_os: &'static [OsName],
    pub modules: &'static [ModuleSupport],
    /// Types a composite data source may group.
    pub composite_members: &'static [DataSourceType],
    /// Recommended network lines per node.
    pub min_domain_lines: usize,
    pub min_verification_lines: usize,
    /// Recommended physical NICs per host.
    pub min_host_nics: u32,
    /// SCSI controllers a VM with disks should have before networking is set up.
    pub min_scsi_controllers: u32,
}

impl Profile {
    pub fn module_support(&self, module: ModuleType) -> Option<&ModuleSupport> {
        self.modules.iter().find(|m| m.module == module)
    }

    pub fn version_labels(&self) -> String {
        self.hypervisor_versions
            .iter()
            .map(|v| v.label)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The seed: EMC AutoStart on VMware ESX, June 2009.
pub static AUTOSTART_VMWARE_2009: Profile = Profile {
    qualification: Qualification::AutostartVmware2009,
    qualifies_vmware: true,
    source: "EMC AutoStart: High Availability in Virtual Environments (June 2009)",
    tables: &tables::SEED_2009,
    hypervisor_versions: &[
        VersionPattern {
            label: "3.0.x",
            version: "3.0",
            updates: true,
        },
        VersionPattern {
            label: "3.5",
            version: "3.5",
            updates: true,
        },
        VersionPattern {
            label: "4.0",
            version: "4.0",
            updates: true,
        },
        VersionPattern {
            label: "3i",
            version: "3i",
            updates: false,
        },
    ],
    guest_os: &[OsName::Windows2003, OsName::Windows2008],
    modules: &[
        ModuleSupport {
            module: ModuleType::SqlServer2005,
            bits: None,
        },
        ModuleSupport {
            module: ModuleType::SqlServer2008,
            bits: None,
        },
        ModuleSupport {
            module: ModuleType::Exchange2003,
            bits: Some(Bits::B32),
        },
        ModuleSupport {
            module: ModuleType::Exchange2007,
            bits: Some(Bits::B64),
        },
        ModuleSupport {
            module: ModuleType::Oracle,
            bits: None,
        },
        ModuleSupport {
            module: ModuleType::PrintServices,
            bits: None,
        },
    ],
    composite_members: &[
        DataSourceType::Mirroring,
        DataSourceType::SharedDisk,
        DataSourceType::RepliStor,
        DataSourceType::Vxvm,
    ],
    min_domain_lines: 2,
    min_verification_lines: 1,
    min_host_nics: 3,
    min_scsi_controllers: 2,
};

/// Structural rules only: no tables, no VMware limits.
pub static GENERIC: Profile = Profile {
    qualification: Qualification::Generic,
    qualifies_vmware: false,
    source: "asctl's structural rules",
    tables: &[],
    hypervisor_versions: &[],
    guest_os: &[],
    modules: &[],
    composite_members: &[
        DataSourceType::Mirroring,
        DataSourceType::SharedDisk,
        DataSourceType::RepliStor,
        DataSourceType::Vxvm,
    ],
    min_domain_lines: 0,
    min_verification_lines: 0,
    min_host_nics: 0,
    min_scsi_controllers: 0,
};

/// Every profile, the default first.
pub static ALL_PROFILES: [&Profile; 2] = [&AUTOSTART_VMWARE_2009, &GENERIC];

pub fn profile(q: Qualification) -> &'static Profile {
    match q {
        Qualification::AutostartVmware2009 => &AUTOSTART_VMWARE_2009,
        Qualification::Generic => &GENERIC,
    }
}

/// The profile a configuration is checked against.
pub fn of(config: &Config) -> &'static Profile {
    profile(config.qualification())
}
