//! Exhaustive check of the seed's tables: for every cell of every table, a
//! minimal valid domain with that resource, backing and topology validates
//! to exactly the table's verdict — no error for `yes`, the matrix rule's
//! error (and no other error) for `no` and `NA`. Composites: every pair of
//! member types, with support the intersection of the members' cells.

use std::collections::BTreeSet;

use asctl::catalog as cat;
use asctl::diag::Severity;
use asctl::load::load_texts;
use asctl::model::{Backing, DataSourceType};
use asctl::rules::tables::{Cell, RowKey, SEED_2009, Subject, Topology, verdict};
use asctl::rules::validate;

fn doc(kind: &str, name: &str, spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!("apiVersion: asctl/v1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

/// The two preferred nodes of the group for a topology, and their documents.
fn nodes(topology: Topology) -> ([&'static str; 2], Vec<String>) {
    let vm = |name: &str, host: &str| {
        doc(
            "Node",
            name,
            &format!(
                "host: {host}\nos: {{name: windows-2008, bits: 64}}\nplatform: x64\nnics: 3\nscsiControllers: 2"
            ),
        )
    };
    let host = |name: &str| {
        doc(
            "Host",
            name,
            "hypervisor: {product: esx, version: \"4.0\"}\ndatacenter: dc1\nnics: 3",
        )
    };
    match topology {
        Topology::VmVmSameHost => (
            ["vm1", "vm2"],
            vec![host("esx1"), vm("vm1", "esx1"), vm("vm2", "esx1")],
        ),
        Topology::VmVmCrossHost => (
            ["vm1", "vm2"],
            vec![
                host("esx1"),
                host("esx2"),
                vm("vm1", "esx1"),
                vm("vm2", "esx2"),
            ],
        ),
        Topology::PhyVm => (
            ["phys1", "vm1"],
            vec![
                host("esx1"),
                doc(
                    "Node",
                    "phys1",
                    "physical: true\nos: {name: windows-2008, bits: 64}\nplatform: x64",
                ),
                vm("vm1", "esx1"),
            ],
        ),
    }
}

fn bus(topology: Topology) -> &'static str {
    match topology {
        Topology::VmVmSameHost => "virtual",
        _ => "physical",
    }
}

fn device(backing: Backing, topology: Topology) -> String {
    format!(
        "device: {{backing: {}, provisioning: thick, scsiBusSharing: {}}}",
        backing.as_str(),
        bus(topology)
    )
}

/// Data sources named `<prefix>` (and helpers `<prefix>-…`) of `kind` with
/// `backing`; returns the documents.
fn data_source(prefix: &str, kind: DataSourceType, backing: Backing, t: Topology) -> Vec<String> {
    use DataSourceType as T;
    let dev = device(backing, t);
    match kind {
        T::Mirroring | T::SharedDisk | T::RepliStor | T::Vxvm => {
            vec![doc("DataSource", prefix, &format!("type: {kind}\n{dev}"))]
        }
        T::MountPoint => vec![
            doc(
                "DataSource",
                &format!("{prefix}-disk"),
                &format!("type: sharedDisk\n{dev}"),
            ),
            doc(
                "DataSource",
                prefix,
                &format!("type: mountPoint\non: {prefix}-disk\npath: 'E:\\'"),
            ),
        ],
        T::MirrorView | T::Srdf => {
            let (paired, pdoc) = if backing.is_rdm() {
                (
                    format!("{prefix}-disk"),
                    doc(
                        "DataSource",
                        &format!("{prefix}-disk"),
                        &format!("type: sharedDisk\n{dev}"),
                    ),
                )
            } else {
                (
                    format!("{prefix}-vmfs"),
                    doc(
                        "DataSource",
                        &format!("{prefix}-vmfs"),
                        "type: vmfs\ndevice: {backing: vmfs}",
                    ),
                )
            };
            vec![
                pdoc,
                doc(
                    "DataSource",
                    prefix,
                    &format!(
                        "type: {kind}\nmode: sync\npairedWith: {paired}\ndevice: {{backing: {}}}",
                        backing.as_str()
                    ),
                ),
            ]
        }
        T::NetworkShare => vec![doc(
            "DataSource",
            prefix,
            "type: networkShare\nshare: '\\\\fs1\\data'",
        )],
        T::Vmfs | T::Composite => unreachable!("built by the callers"),
    }
}

/// The group's `dataSources` for data source `prefix` of `data_source`: a
/// MirrorView/SRDF data source with the one it is combined with (a group
/// uses both, AS0226), which is judged too — its cells (Table 3 for an RDM
/// shared disk; no table for the VMFS data source) are `yes` in every
/// column, so the verdict stays the replication table's.
fn uses(prefix: &str, kind: DataSourceType, backing: Backing) -> String {
    match kind {
        DataSourceType::MirrorView | DataSourceType::Srdf if backing.is_rdm() => {
            format!("dataSources: [{prefix}, {prefix}-disk]")
        }
        DataSourceType::MirrorView | DataSourceType::Srdf => {
            format!("dataSources: [{prefix}, {prefix}-vmfs]")
        }
        _ => format!("dataSources: [{prefix}]"),
    }
}

/// A whole domain: two nodes in `topology`, lines, and group `app`.
fn domain(t: Topology, extra_docs: Vec<String>, group_extra: &str) -> String {
    let (pair, node_docs) = nodes(t);
    let mut docs = vec![doc(
        "Domain",
        "matrix",
        "heartbeat: {multicast: 239.192.0.1}\nisolation: {addresses: [10.0.1.1]}",
    )];
    docs.extend(node_docs);
    for (name, role, net) in [
        ("domain-1", "domain", "10.0.1"),
        ("domain-2", "domain", "10.0.2"),
        ("verification", "verification", "10.0.3"),
    ] {
        docs.push(doc(
            "NetworkLine",
            name,
            &format!(
                "role: {role}\nsubnet: {net}.0/24\nmembers:\n  {}: {net}.11\n  {}: {net}.12",
                pair[0], pair[1]
            ),
        ));
    }
    docs.extend(extra_docs);
    docs.push(doc(
        "ResourceGroup",
        "app",
        &format!("preferredNodes: [{}, {}]\n{group_extra}", pair[0], pair[1]),
    ));
    docs.join("---\n")
}

/// The active errors of a domain, as rule IDs.
fn errors(text: &str) -> (BTreeSet<&'static str>, Vec<String>) {
    let v = validate(load_texts([("matrix.yaml", text.as_bytes())]));
    let active: Vec<_> = v.findings.iter().filter(|f| f.is_active()).collect();
    let ids = active
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.rule.id)
        .collect();
    let messages = active
        .iter()
        .map(|f| format!("{} {}: {}", f.rule.id, f.severity, f.message))
        .collect();
    (ids, messages)
}

fn expected(cell: Cell) -> BTreeSet<&'static str> {
    match cell {
        Cell::Yes => BTreeSet::new(),
        Cell::No => BTreeSet::from([cat::MATRIX_UNSUPPORTED.id]),
        Cell::Na => BTreeSet::from([cat::MATRIX_NOT_APPLICABLE.id]),
    }
}

/// Members whose own tables are all `yes`, so a composite's verdict is
/// Table 10's alone.
const NEUTRAL_MEMBERS: [DataSourceType; 2] = [DataSourceType::Mirroring, DataSourceType::RepliStor];

fn composite(t: Topology, backing: Backing, members: [DataSourceType; 2]) -> String {
    let mut docs = Vec::new();
    let mut names = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let name = format!("m{i}");
        docs.extend(data_source(&name, *m, backing, t));
        names.push(name);
    }
    docs.push(doc(
        "DataSource",
        "all",
        &format!("type: composite\nmembers: [{}]", names.join(", ")),
    ));
    domain(t, docs, "dataSources: [all]")
}

#[test]
fn every_cell_of_every_table_gives_its_verdict() {
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut rejected = 0;
    for table in &SEED_2009 {
        for &subject in table.subjects {
            for row in table.rows {
                let backing = match row.key {
                    RowKey::Backing(b) => Some(b),
                    RowKey::Subject(s) if s == subject => None,
                    RowKey::Subject(_) => continue,
                };
                for t in Topology::ALL {
                    let cell = row.cell(t);
                    // The lookup the rule uses agrees with the row.
                    let v = verdict(&SEED_2009, subject, backing, t).map(|v| v.cell);
                    assert_eq!(
                        v,
                        Some(cell),
                        "lookup of Table {} {}",
                        table.number,
                        row.label
                    );
                    let text = match (subject, backing) {
                        (Subject::ManagedIp, _) => domain(
                            t,
                            vec![],
                            "ipAddresses:\n  - {address: 10.0.1.100/24, line: domain-1}",
                        ),
                        (Subject::NodeAlias, _) => domain(t, vec![], "nodeAlias: APP"),
                        (Subject::DataSource(DataSourceType::NetworkShare), _) => domain(
                            t,
                            data_source("data", DataSourceType::NetworkShare, Backing::Vmfs, t),
                            "dataSources: [data]",
                        ),
                        (Subject::DataSource(DataSourceType::Composite), Some(b)) => {
                            composite(t, b, NEUTRAL_MEMBERS)
                        }
                        (Subject::DataSource(kind), Some(b)) => {
                            domain(t, data_source("data", kind, b, t), &uses("data", kind, b))
                        }
                        (Subject::DataSource(_), None) => unreachable!(),
                    };
                    let (got, messages) = errors(&text);
                    checked += 1;
                    if cell != Cell::Yes {
                        rejected += 1;
                    }
                    if got != expected(cell) {
                        failures.push(format!(
                            "Table {} {} / {} / {t}: expected {:?}, got {:?}\n  {}",
                            table.number,
                            subject.as_str(),
                            row.label,
                            expected(cell),
                            got,
                            messages.join("\n  ")
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // 2 rows of Table 1 + 1 of Table 7 + 8 tables of 3 backings, 3 columns each.
    assert_eq!(checked, (2 + 1 + 8 * 3) * 3);
    assert_eq!(rejected, 1 + 1 + 2 * 6 + 4);
}

#[test]
fn a_composite_is_supported_where_all_its_members_are() {
    let members = [
        DataSourceType::Mirroring,
        DataSourceType::SharedDisk,
        DataSourceType::RepliStor,
        DataSourceType::Vxvm,
    ];
    let mut failures = Vec::new();
    let mut pairs = 0;
    for (i, &a) in members.iter().enumerate() {
        for &b in &members[i..] {
            for backing in Backing::ALL {
                for t in Topology::ALL {
                    let cell = |k| {
                        verdict(&SEED_2009, Subject::DataSource(k), Some(backing), t)
                            .map(|v| v.cell)
                    };
                    let supported = [a, b, DataSourceType::Composite]
                        .iter()
                        .all(|&k| cell(k) == Some(Cell::Yes));
                    let want = if supported {
                        BTreeSet::new()
                    } else {
                        BTreeSet::from([cat::MATRIX_UNSUPPORTED.id])
                    };
                    let (got, messages) = errors(&composite(t, backing, [a, b]));
                    pairs += 1;
                    if got != want {
                        failures.push(format!(
                            "composite [{a}, {b}] / {backing} / {t}: expected {want:?}, got {got:?}\n  {}",
                            messages.join("\n  ")
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(pairs, 10 * 3 * 3);
}

#[test]
fn pairs_of_physical_machines_are_not_judged() {
    // vxvm on an RDM in virtual mode is `no` in every column of Table 9;
    // between two physical machines the tables do not apply.
    let phys = |n: &str| {
        doc(
            "Node",
            n,
            "physical: true\nos: {name: windows-2008, bits: 64}\nplatform: x64",
        )
    };
    let text = domain(Topology::PhyVm, vec![], "dataSources: [data]")
        .replace(
            &doc("Node", "vm1", "host: esx1\nos: {name: windows-2008, bits: 64}\nplatform: x64\nnics: 3\nscsiControllers: 2"),
            &phys("vm1"),
        )
        + "---\n"
        + &doc("DataSource", "data", "type: vxvm\ndevice: {backing: rdm-virtual}");
    let (got, messages) = errors(&text);
    assert!(got.is_empty(), "{got:?}\n{}", messages.join("\n"));
}

/// `asctl matrix` prints the tables from the same data; the snapshot is
/// checked against the seed's Tables 1–10 by eye, cell for cell.
#[test]
fn matrix_command_prints_the_seed_tables() {
    let out = assert_cmd::Command::cargo_bin("asctl")
        .expect("the asctl binary is built")
        .arg("matrix")
        .output()
        .expect("asctl runs");
    assert!(out.status.success());
    insta::assert_snapshot!("matrix", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn matrix_command_prints_one_table_as_json() {
    let out = assert_cmd::Command::cargo_bin("asctl")
        .expect("the asctl binary is built")
        .args(["matrix", "mirrorView", "--format", "json"])
        .output()
        .expect("asctl runs");
    assert!(out.status.success());
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("matrix --format json prints JSON");
    insta::assert_json_snapshot!("matrix-mirrorView", json);
}

#[test]
fn matrix_command_rejects_an_unknown_type() {
    let out = assert_cmd::Command::cargo_bin("asctl")
        .expect("the asctl binary is built")
        .args(["matrix", "floppy"])
        .output()
        .expect("asctl runs");
    assert_eq!(out.status.code(), Some(2));
}

/// The generic profile has no tables: the command says so (not "no table
/// for ``" with an empty list), and JSON is an empty list.
#[test]
fn matrix_command_explains_a_profile_without_tables() {
    for subject in [None, Some("5"), Some("sharedDisk")] {
        let mut cmd = assert_cmd::Command::cargo_bin("asctl").expect("the asctl binary is built");
        cmd.args(["matrix", "--qualification", "generic"]);
        cmd.args(subject);
        let out = cmd.output().expect("asctl runs");
        assert_eq!(out.status.code(), Some(0), "{subject:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("profile generic has no support tables")
                && stdout.contains("--qualification autostart-vmware-2009"),
            "{subject:?}: {stdout}"
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = assert_cmd::Command::cargo_bin("asctl")
        .expect("the asctl binary is built")
        .args(["matrix", "--qualification", "generic", "--format", "json"])
        .output()
        .expect("asctl runs");
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json, serde_json::json!([]));
}

/// The encoded tables equal the seed's, compared with a verbatim copy of
/// the seed's table text: captions, column headers, row labels and cells.
#[test]
fn encoded_tables_equal_the_seed_text() {
    let text = include_str!("../fixtures/seed-tables.txt");
    /// Number, caption, column headers, rows (label then cells).
    type SeedTable = (u8, String, Vec<String>, Vec<Vec<String>>);
    let mut seed: Vec<SeedTable> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(caption) = line.strip_prefix("**Table ") {
            let caption = caption.trim_end_matches("**");
            let (n, title) = caption.split_once(". ").expect("caption `N. title`");
            seed.push((
                n.parse().expect("table number"),
                title.into(),
                vec![],
                vec![],
            ));
        } else if let Some(header) = line.strip_prefix('\t') {
            let last = seed.last_mut().expect("a caption first");
            last.2 = header.split('\t').map(str::to_owned).collect();
        } else {
            let last = seed.last_mut().expect("a caption first");
            last.3.push(line.split('\t').map(str::to_owned).collect());
        }
    }
    assert_eq!(seed.len(), SEED_2009.len());
    let columns: Vec<&str> = Topology::ALL.iter().map(|t| t.seed_label()).collect();
    for (table, (n, title, header, rows)) in SEED_2009.iter().zip(&seed) {
        assert_eq!(table.number, *n);
        assert_eq!(table.title, title);
        assert_eq!(header, &columns, "Table {n} columns");
        let encoded: Vec<Vec<String>> = table
            .rows
            .iter()
            .map(|r| {
                std::iter::once(r.label.to_owned())
                    .chain(Topology::ALL.iter().map(|t| r.cell(*t).as_str().to_owned()))
                    .collect()
            })
            .collect();
        assert_eq!(&encoded, rows, "Table {n} rows");
    }
}
