//! The seed's support tables (Tables 1–10) as data.
//!
//! This is the one place the tables live: the matrix rule (`topology`),
//! `asctl matrix` and the tests all read these values, so a change here is
//! a change everywhere. Each table lists, for the objects it is about, one
//! row per device backing (or a single row for objects without a device,
//! such as a managed IP or a network share) and one cell per topology.

use serde::Serialize;

use crate::model::{Backing, DataSourceType};

/// How two preferred nodes of a group relate (seed: "VM clustering
/// configurations"). The seed's tables have one column per topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topology {
    /// Two VMs on the same host (Cluster in a Box).
    VmVmSameHost,
    /// Two VMs on different hosts (Cluster Across Boxes).
    VmVmCrossHost,
    /// A physical machine and a VM (Standby Host).
    PhyVm,
}

impl Topology {
    /// The columns of every table, in the seed's order.
    pub const ALL: [Topology; 3] = [
        Topology::VmVmSameHost,
        Topology::VmVmCrossHost,
        Topology::PhyVm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Topology::VmVmSameHost => "vm-vm-same-host",
            Topology::VmVmCrossHost => "vm-vm-cross-host",
            Topology::PhyVm => "phy-vm",
        }
    }

    /// The column header as the seed prints it.
    pub fn seed_label(self) -> &'static str {
        match self {
            Topology::VmVmSameHost => "VM <=> VM",
            Topology::VmVmCrossHost => "VM<=>VM (Another ESX server)",
            Topology::PhyVm => "PHY<=>VM",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One cell of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Cell {
    /// Supported.
    #[serde(rename = "yes")]
    Yes,
    /// Not supported.
    #[serde(rename = "no")]
    No,
    /// Not applicable: the configuration cannot exist (e.g. array replication
    /// between two VMs of one host, which share the same array).
    #[serde(rename = "NA")]
    Na,
}

impl Cell {
    /// As the seed prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Cell::Yes => "yes",
            Cell::No => "no",
            Cell::Na => "NA",
        }
    }
}

/// What a table (or a row of it) is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Subject {
    /// A managed IP address of a group.
    ManagedIp,
    /// A Windows node alias of a group.
    NodeAlias,
    /// A data source of the given type.
    DataSource(DataSourceType),
}

impl Subject {
    /// The name `asctl matrix` accepts: a data source type, `managedIp` or
    /// `nodeAlias`.
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::ManagedIp => "managedIp",
            Subject::NodeAlias => "nodeAlias",
            Subject::DataSource(t) => t.as_str(),
        }
    }

    pub fn parse(s: &str) -> Option<Subject> {
        match s {
            "managedIp" => Some(Subject::ManagedIp),
            "nodeAlias" => Some(Subject::NodeAlias),
            _ => DataSourceType::parse(s).map(Subject::DataSource),
        }
    }
}

/// What selects a row: the device backing, or the subject itself for
/// objects without a device (Table 1's two rows, Table 7's one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RowKey {
    Backing(Backing),
    Subject(Subject),
}

/// One row: its key, the seed's label, and a cell per [`Topology`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Row {
    pub key: RowKey,
    pub label: &'static str,
    pub cells: [Cell; 3],
}

impl Row {
    pub fn cell(&self, topology: Topology) -> Cell {
        self.cells[topology.index()]
    }
}

/// One table of the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Table {
    /// The seed's table number.
    pub number: u8,
    /// The seed's caption.
    pub title: &'static str,
    /// The section of the seed the table is in.
    pub section: &'static str,
    /// What the table judges.
    pub subjects: &'static [Subject],
    pub rows: &'static [Row],
}

impl Table {
    /// Whether rows are selected by device backing.
    pub fn by_backing(&self) -> bool {
        self.rows
            .iter()
            .any(|r| matches!(r.key, RowKey::Backing(_)))
    }

    /// The row judging `subject` with a device of `backing` (ignored by
    /// tables without backing rows). `None` when the table has no such row,
    /// e.g. a backing-row table asked about a subject without a device.
    pub fn row(&self, subject: Subject, backing: Option<Backing>) -> Option<&'static Row> {
        let rows: &'static [Row] = self.rows;
        if self.by_backing() {
            let b = backing?;
            rows.iter().find(|r| r.key == RowKey::Backing(b))
        } else {
            rows.iter().find(|r| r.key == RowKey::Subject(subject))
        }
    }

    /// "Table 3" — how findings cite the table.
    pub fn reference(&self) -> String {
        format!("Table {}", self.number)
    }
}

/// A verdict: the table and row that judged, and the cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub table: &'static Table,
    pub row: &'static Row,
    pub cell: Cell,
}

/// Looks up the verdict for `subject` with `backing` under `topology` in a
/// profile's tables. `None` when no table covers the subject (e.g. the VMFS
/// data source, which the seed gives no table), or when a device is needed
/// and `backing` is unknown.
pub fn verdict(
    tables: &'static [Table],
    subject: Subject,
    backing: Option<Backing>,
    topology: Topology,
) -> Option<Verdict> {
    let table = table_for(tables, subject)?;
    let row = table.row(subject, backing)?;
    Some(Verdict {
        table,
        row,
        cell: row.cell(topology),
    })
}

/// The table that judges `subject`.
pub fn table_for(tables: &'static [Table], subject: Subject) -> Option<&'static Table> {
    tables.iter().find(|t| t.subjects.contains(&subject))
}

use Cell::{Na, No, Yes};

const fn backing_rows(vmfs: [Cell; 3], rdm_p: [Cell; 3], rdm_v: [Cell; 3]) -> [Row; 3] {
    [
        Row {
            key: RowKey::Backing(Backing::Vmfs),
            label: "VMFS",
            cells: vmfs,
        },
        Row {
            key: RowKey::Backing(Backing::RdmPhysical),
            label: "RDM – physical mode",
            cells: rdm_p,
        },
        Row {
            key: RowKey::Backing(Backing::RdmVirtual),
            label: "RDM – virtual mode",
            cells: rdm_v,
        },
    ]
}

const ALL_YES: [Cell; 3] = [Yes, Yes, Yes];

static T2_ROWS: [Row; 3] = backing_rows(ALL_YES, ALL_YES, ALL_YES);
static T3_ROWS: [Row; 3] = backing_rows([Yes, Yes, No], ALL_YES, ALL_YES);
static T4_ROWS: [Row; 3] = backing_rows([Yes, Yes, No], ALL_YES, ALL_YES);
static T5_ROWS: [Row; 3] = backing_rows([Na, Yes, No], [Na, Yes, Yes], [Na, No, No]);
static T6_ROWS: [Row; 3] = backing_rows([Na, Yes, No], [Na, Yes, Yes], [Na, No, No]);
static T8_ROWS: [Row; 3] = backing_rows(ALL_YES, ALL_YES, ALL_YES);
static T9_ROWS: [Row; 3] = backing_rows([Yes, Yes, No], ALL_YES, [No, No, No]);
static T10_ROWS: [Row; 3] = backing_rows(ALL_YES, ALL_YES, ALL_YES);

/// Tables 1–10 of "EMC AutoStart: High Availability in Virtual
/// Environments" (June 2009), cell for cell.
pub static SEED_2009: [Table; 10] = [
    Table {
        number: 1,
        title: "Failover scenarios",
        section: "Network redundancy",
        subjects: &[Subject::ManagedIp, Subject::NodeAlias],
        rows: &[
            Row {
                key: RowKey::Subject(Subject::ManagedIp),
                label: "Managed IP address",
                cells: ALL_YES,
            },
            Row {
                key: RowKey::Subject(Subject::NodeAlias),
                label: "Windows node alias",
                cells: ALL_YES,
            },
        ],
    },
    Table {
        number: 2,
        title: "VMware configurations supporting mirroring",
        section: "EMC Mirroring",
        subjects: &[Subject::DataSource(DataSourceType::Mirroring)],
        rows: &T2_ROWS,
    },
    Table {
        number: 3,
        title: "VMware configurations supporting shared disk",
        section: "Shared Disk",
        subjects: &[Subject::DataSource(DataSourceType::SharedDisk)],
        rows: &T3_ROWS,
    },
    Table {
        number: 4,
        title: "VMware configurations supporting a mount point",
        section: "Mount Point",
        subjects: &[Subject::DataSource(DataSourceType::MountPoint)],
        rows: &T4_ROWS,
    },
    Table {
        number: 5,
        title: "VMware configurations supporting MirrorView",
        section: "MirrorView",
        subjects: &[Subject::DataSource(DataSourceType::MirrorView)],
        rows: &T5_ROWS,
    },
    Table {
        number: 6,
        title: "VMware configurations supporting SRDF",
        section: "SRDF",
        subjects: &[Subject::DataSource(DataSourceType::Srdf)],
        rows: &T6_ROWS,
    },
    Table {
        number: 7,
        title: "VMware configurations supporting Windows Network Share",
        section: "Windows Network Share",
        subjects: &[Subject::DataSource(DataSourceType::NetworkShare)],
        rows: &[Row {
            key: RowKey::Subject(Subject::DataSource(DataSourceType::NetworkShare)),
            label: "Windows Network Share",
            cells: ALL_YES,
        }],
    },
    Table {
        number: 8,
        title: "VMware configurations supporting RepliStor",
        section: "RepliStor",
        subjects: &[Subject::DataSource(DataSourceType::RepliStor)],
        rows: &T8_ROWS,
    },
    Table {
        number: 9,
        title: "VMware configurations supporting Veritas Volume Manager",
        section: "Veritas Volume Manager",
        subjects: &[Subject::DataSource(DataSourceType::Vxvm)],
        rows: &T9_ROWS,
    },
    Table {
        number: 10,
        title: "VMware configurations supporting the Composite data source",
        section: "Composite",
        subjects: &[Subject::DataSource(DataSourceType::Composite)],
        rows: &T10_ROWS,
    },
];
