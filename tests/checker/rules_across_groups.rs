//! The seed's sentences about one device apply across groups: a shared disk
//! or a mirror is one device whichever groups use it, so its users are the
//! union of the preferred nodes of every group that uses it (directly,
//! through a mount point, or as a composite member). Each test splits the
//! same nodes across groups in a way that no single group shows the fault,
//! and checks that the fault is reported all the same — and that the same
//! split over two separate devices is clean. Also: isolation addresses that
//! belong to the domain itself (AS0227).

use asctl::diag::Finding;
use asctl::load::{Grouping, load_texts, load_texts_with};
use asctl::rules::validate;

/// Three VMs, `vm1` and `vm2` on `esx1`, `vm3` on `esx2`, on three lines:
/// clean with any groups that share nothing.
const NODES: &str = "\
apiVersion: asctl/v1
kind: Domain
metadata: {name: demo}
spec:
  heartbeat: {multicast: 239.192.0.1}
  isolation: {addresses: [10.0.1.1]}
---
apiVersion: asctl/v1
kind: Host
metadata: {name: esx1}
spec: {hypervisor: {product: esx, version: \"3.5\"}, datacenter: dc1, nics: 3}
---
apiVersion: asctl/v1
kind: Host
metadata: {name: esx2}
spec: {hypervisor: {product: esx, version: \"3.5\"}, datacenter: dc1, nics: 3}
---
apiVersion: asctl/v1
kind: Node
metadata: {name: vm1}
spec: {host: esx1, os: {name: windows-2008, bits: 64}, platform: x64, nics: 3, scsiControllers: 2}
---
apiVersion: asctl/v1
kind: Node
metadata: {name: vm2}
spec: {host: esx1, os: {name: windows-2008, bits: 64}, platform: x64, nics: 3, scsiControllers: 2}
---
apiVersion: asctl/v1
kind: Node
metadata: {name: vm3}
spec: {host: esx2, os: {name: windows-2008, bits: 64}, platform: x64, nics: 3, scsiControllers: 2}
---
apiVersion: asctl/v1
kind: NetworkLine
metadata: {name: domain-1}
spec:
  role: domain
  subnet: 10.0.1.0/24
  members: {vm1: 10.0.1.11, vm2: 10.0.1.12, vm3: 10.0.1.13}
---
apiVersion: asctl/v1
kind: NetworkLine
metadata: {name: domain-2}
spec:
  role: domain
  subnet: 10.0.2.0/24
  members: {vm1: 10.0.2.11, vm2: 10.0.2.12, vm3: 10.0.2.13}
---
apiVersion: asctl/v1
kind: NetworkLine
metadata: {name: verification}
spec:
  role: verification
  subnet: 10.0.3.0/24
  members: {vm1: 10.0.3.11, vm2: 10.0.3.12, vm3: 10.0.3.13}
";

fn data_source(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: asctl/v1\nkind: DataSource\nmetadata: {{name: {name}}}\nspec: {spec}\n"
    )
}

fn group(name: &str, nodes: &str, data_sources: &str) -> String {
    format!(
        "---\napiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {{name: {name}}}\nspec:\n  preferredNodes: [{nodes}]\n  dataSources: [{data_sources}]\n"
    )
}

const DISK_PHYSICAL: &str =
    "{type: sharedDisk, device: {backing: rdm-physical, scsiBusSharing: physical}}";
const MIRROR: &str = "{type: mirroring, device: {backing: rdm-virtual, scsiBusSharing: none}}";
const REPLISTOR: &str = "{type: repliStor, device: {backing: rdm-physical}}";

fn findings(text: &str) -> Vec<Finding> {
    validate(load_texts([("t.yaml", text.as_bytes())])).findings
}

/// The active findings as (rule, line, column), in output order.
fn active(text: &str) -> Vec<(&'static str, u32, u32)> {
    findings(text)
        .iter()
        .filter(|f| f.is_active())
        .map(|f| {
            let l = f.location.expect("these findings have a location");
            (f.rule.id, l.start.line, l.start.column)
        })
        .collect()
}

/// The 1-based line of the first line containing `needle` after `after`.
fn line_of(text: &str, after: &str, needle: &str) -> u32 {
    let start = text.find(after).expect("anchor");
    let before = text[..start].matches('\n').count();
    let offset = text[start..]
        .lines()
        .position(|l| l.contains(needle))
        .expect("needle after anchor");
    (before + offset + 1) as u32
}

#[test]
fn the_base_is_clean() {
    let text =
        NODES.to_owned() + &data_source("data", DISK_PHYSICAL) + &group("app", "vm1, vm3", "data");
    assert_eq!(active(&text), []);
}

/// `app` shares the disk across hosts (vm1–vm3), `report` too (vm2–vm3):
/// neither group shares it within a host, but vm1 and vm2 of esx1 both use
/// it. The second group's reference is where the second kind appears.
#[test]
fn a_disk_shared_across_hosts_by_two_groups_is_also_shared_within_a_host() {
    let text = NODES.to_owned()
        + &data_source("data", DISK_PHYSICAL)
        + &group("app", "vm1, vm3", "data")
        + &group("report", "vm2, vm3", "data");
    let at = line_of(&text, "name: report", "dataSources");
    assert_eq!(active(&text), [("AS0209", at, 17)]);
    let f = &findings(&text)[0];
    assert_eq!(
        f.message,
        "shared disk `data` is shared between VMs of one host (`vm1` in group `app`, `vm2` in group `report`) and across hosts (`vm1`, `vm3` in group `app`) at the same time"
    );
    let related: Vec<&str> = f.related.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(
        related,
        [
            "the shared disk",
            "group `app` uses it too",
            "`vm2` is a VM on host `esx1`",
            "`vm3` is a VM on host `esx2`"
        ]
    );
    // The same split over two disks shares each across hosts only.
    let text = NODES.to_owned()
        + &data_source("data", DISK_PHYSICAL)
        + &data_source("other", DISK_PHYSICAL)
        + &group("app", "vm1, vm3", "data")
        + &group("report", "vm2, vm3", "other");
    assert_eq!(active(&text), []);
}

/// One group reaches the disk through a mount point, the other through a
/// composite: both are the disk.
#[test]
fn a_mount_point_and_a_composite_member_are_the_disk_they_stand_on() {
    let text = NODES.to_owned()
        + &data_source("data", DISK_PHYSICAL)
        + &data_source("logs", "{type: mountPoint, on: data, path: /logs}")
        + &data_source("rs", REPLISTOR)
        + &data_source("both", "{type: composite, members: [data, rs]}")
        + &group("app", "vm1, vm3", "logs")
        + &group("report", "vm2, vm3", "both");
    let at = line_of(&text, "name: report", "dataSources");
    assert_eq!(active(&text), [("AS0209", at, 17)]);
}

/// Two one-node groups on the VMs of one host: no group has a pair of
/// nodes, but the disk is attached to both VMs, so it needs bus sharing
/// `virtual`.
#[test]
fn two_single_node_groups_share_a_disk_between_their_nodes() {
    let disk = "{type: sharedDisk, device: {backing: rdm-virtual, scsiBusSharing: none}}";
    let text = NODES.to_owned()
        + &data_source("data", disk)
        + &group("app", "vm1", "data")
        + &group("report", "vm2", "data");
    let bus = findings(&text)
        .into_iter()
        .filter(|f| f.rule.id == "AS0211")
        .collect::<Vec<_>>();
    assert_eq!(bus.len(), 1, "{bus:#?}");
    assert_eq!(
        bus[0].message,
        "shared disk `data` is shared between VMs of one host (`vm1` in group `app`, `vm2` in group `report`) but its SCSI bus sharing is `none`: it must be `virtual`"
    );
    // Two disks: nothing is shared, whatever else one-node groups bring.
    let text = NODES.to_owned()
        + &data_source("data", disk)
        + &data_source("other", disk)
        + &group("app", "vm1", "data")
        + &group("report", "vm2", "other");
    assert!(findings(&text).iter().all(|f| f.rule.id != "AS0211"));
}

/// Two groups of two nodes that share one node put a mirror on three.
#[test]
fn a_mirror_used_by_two_groups_is_on_the_union_of_their_nodes() {
    let text = NODES.to_owned()
        + &data_source("mirror", MIRROR)
        + &data_source("rs", REPLISTOR)
        + &data_source("both", "{type: composite, members: [mirror, rs]}")
        + &group("app", "vm1, vm3", "mirror")
        + &group("report", "vm3, vm2", "both");
    let at = line_of(&text, "name: report", "dataSources");
    assert_eq!(active(&text), [("AS0207", at, 17)]);
    assert_eq!(
        findings(&text)[0].message,
        "mirroring `mirror` is used by groups `app`, `report` on 3 nodes (`vm1`, `vm3`, `vm2`): mirroring works between exactly two nodes"
    );
    // The same two nodes in both groups: one mirror between two nodes.
    let text = NODES.to_owned()
        + &data_source("mirror", MIRROR)
        + &group("app", "vm1, vm3", "mirror")
        + &group("report", "vm3, vm1", "mirror");
    assert_eq!(active(&text), []);
}

/// One group with three nodes is still reported, at its reference.
#[test]
fn a_mirror_in_one_group_of_three_nodes_is_reported() {
    let text = NODES.to_owned()
        + &data_source("mirror", MIRROR)
        + &group("app", "vm1, vm2, vm3", "mirror");
    let at = line_of(&text, "name: app", "dataSources");
    assert_eq!(active(&text), [("AS0207", at, 17)]);
    assert_eq!(
        findings(&text)[0].message,
        "mirroring `mirror` is used by group `app` on 3 nodes (`vm1`, `vm2`, `vm3`): mirroring works between exactly two nodes"
    );
}

/// A file checked alone does not hold the nodes of its groups: the union is
/// unknown, and the mirror is not judged (rather than "0 nodes").
#[test]
fn a_mirror_whose_nodes_are_elsewhere_is_not_judged() {
    let text = data_source("mirror", MIRROR) + &group("app", "vm1, vm2, vm3", "mirror");
    let v = validate(load_texts_with(
        [("t.yaml", text.as_bytes())],
        Grouping::FileOnly,
    ));
    let rules: Vec<&str> = v.findings.iter().map(|f| f.rule.id).collect();
    assert!(!rules.contains(&"AS0207"), "{rules:?}");
}

const GROUP_WITH_IP: &str = "---
apiVersion: asctl/v1
kind: ResourceGroup
metadata: {name: app}
spec:
  preferredNodes: [vm1, vm3]
  ipAddresses:
    - {address: 10.0.1.100/24, line: domain-1}
";

#[test]
fn an_isolation_address_of_the_domain_itself_is_a_warning() {
    let text = NODES.replace(
        "isolation: {addresses: [10.0.1.1]}",
        "isolation: {addresses: [10.0.1.1, 10.0.3.12, 10.0.1.100]}",
    ) + GROUP_WITH_IP;
    let at = line_of(&text, "kind: Domain", "isolation");
    assert_eq!(active(&text), [("AS0227", at, 37), ("AS0227", at, 48)]);
    let f = findings(&text);
    assert_eq!(
        f[0].message,
        "isolation address 10.0.3.12 is node `vm2`'s own address on line `verification`: isolation addresses should be external to the domain"
    );
    let member = f[0].related[0].location.start.line;
    assert_eq!(member, line_of(&text, "name: verification", "members"));
    assert_eq!(
        f[1].message,
        "isolation address 10.0.1.100 is a managed address of group `app`: isolation addresses should be external to the domain"
    );
    assert_eq!(
        f[1].related[0].location.start.line,
        line_of(&text, "name: app", "10.0.1.100")
    );
}

/// A rule of the seed's VMware qualification: the generic profile (a domain
/// outside VMware, no virtual switch) does not apply it.
#[test]
fn the_isolation_warning_is_the_seeds_and_not_generic() {
    let text = NODES.replace(
        "isolation: {addresses: [10.0.1.1]}",
        "qualification: generic\n  isolation: {addresses: [10.0.1.11]}",
    ) + GROUP_WITH_IP;
    assert!(findings(&text).iter().all(|f| f.rule.id != "AS0227"));
}
