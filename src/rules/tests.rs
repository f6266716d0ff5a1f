//! Unit tests of single rules on small configurations: each builds a domain
//! that is clean under the default profile, changes one thing, and checks
//! the exact findings (rule, line, column) that change brings.

use super::validate;
use crate::diag::Finding;
use crate::load::load_texts;

/// A clean two-VM domain across two hosts (no finding at all), as separate
/// documents that the tests edit with `replace`.
const BASE: &str = "\
apiVersion: asctl/v1
kind: Domain
metadata:
  name: demo
spec:
  heartbeat: {multicast: 239.192.0.1}
  isolation: {addresses: [10.0.1.1]}
---
apiVersion: asctl/v1
kind: Host
metadata:
  name: esx1
spec:
  hypervisor: {product: esx, version: \"3.5\"}
  datacenter: dc1
  nics: 3
---
apiVersion: asctl/v1
kind: Host
metadata:
  name: esx2
spec:
  hypervisor: {product: esx, version: \"3.5\"}
  datacenter: dc1
  nics: 3
---
apiVersion: asctl/v1
kind: Node
metadata:
  name: vm1
spec:
  host: esx1
  os: {name: windows-2008, bits: 64}
  platform: x64
  nics: 3
  scsiControllers: 2
---
apiVersion: asctl/v1
kind: Node
metadata:
  name: vm2
spec:
  host: esx2
  os: {name: windows-2008, bits: 64}
  platform: x64
  nics: 3
  scsiControllers: 2
---
apiVersion: asctl/v1
kind: NetworkLine
metadata:
  name: domain-1
spec:
  role: domain
  subnet: 10.0.1.0/24
  members: {vm1: 10.0.1.11, vm2: 10.0.1.12}
---
apiVersion: asctl/v1
kind: NetworkLine
metadata:
  name: domain-2
spec:
  role: domain
  subnet: 10.0.2.0/24
  members: {vm1: 10.0.2.11, vm2: 10.0.2.12}
---
apiVersion: asctl/v1
kind: NetworkLine
metadata:
  name: verification
spec:
  role: verification
  subnet: 10.0.3.0/24
  members: {vm1: 10.0.3.11, vm2: 10.0.3.12}
---
apiVersion: asctl/v1
kind: DataSource
metadata:
  name: data
spec:
  type: sharedDisk
  device: {backing: rdm-physical, scsiBusSharing: physical}
---
apiVersion: asctl/v1
kind: ResourceGroup
metadata:
  name: app
spec:
  preferredNodes: [vm1, vm2]
  dataSources: [data]
";

/// Every finding (active or not) of `text`, in output order.
fn findings(text: &str) -> Vec<Finding> {
    validate(load_texts([("t.yaml", text.as_bytes())])).findings
}

/// The active findings as (rule, line, column).
fn active(text: &str) -> Vec<(&'static str, u32, u32)> {
    findings(text)
        .iter()
        .filter(|f| f.is_active())
        .map(|f| {
            let l = f
                .location
                .map_or((0, 0), |l| (l.start.line, l.start.column));
            (f.rule.id, l.0, l.1)
        })
        .collect()
}

/// `BASE` with one exact piece of text replaced (which must be there once).
fn edit(from: &str, to: &str) -> String {
    assert_eq!(BASE.matches(from).count(), 1, "`{from}` is in BASE once");
    BASE.replacen(from, to, 1)
}

/// The 1-based line of the first line of `text` that contains `needle`
/// after `after` (to tell documents apart).
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
fn the_base_domain_is_clean() {
    assert_eq!(active(BASE), []);
}

// --- SCSI controllers: one count for AS0224 and AS0225 ---

#[test]
fn an_unset_scsi_controller_count_is_one_for_the_pci_slots_too() {
    // 5 NICs and SCSI 0 (unset) need 6 slots of 5.
    let text = edit(
        "  host: esx1\n  os: {name: windows-2008, bits: 64}\n  platform: x64\n  nics: 3\n  scsiControllers: 2\n",
        "  host: esx1\n  os: {name: windows-2008, bits: 64}\n  platform: x64\n  nics: 5\n",
    );
    let all = findings(&text);
    let pci: Vec<&Finding> = all.iter().filter(|f| f.rule.id == "AS0224").collect();
    assert_eq!(pci.len(), 1, "{all:#?}");
    assert_eq!(
        pci[0].message,
        "VM `vm1` has 5 NICs and 1 SCSI controller (SCSI 0, `scsiControllers` not given), 6 devices for 5 PCI slots"
    );
    // The same count makes AS0225 say "1 SCSI controller".
    let scsi: Vec<&Finding> = all.iter().filter(|f| f.rule.id == "AS0225").collect();
    assert_eq!(scsi.len(), 1);
    assert!(
        scsi[0].message.contains("with 1 SCSI controller:"),
        "{}",
        scsi[0].message
    );
    // 4 NICs and SCSI 0 fit in 5 slots: only the second-controller warning.
    let text = edit(
        "  host: esx1\n  os: {name: windows-2008, bits: 64}\n  platform: x64\n  nics: 3\n  scsiControllers: 2\n",
        "  host: esx1\n  os: {name: windows-2008, bits: 64}\n  platform: x64\n  nics: 4\n",
    );
    let rules: Vec<&str> = active(&text).iter().map(|f| f.0).collect();
    assert_eq!(rules, ["AS0225"]);
}

// --- Heartbeat: a multicast group, and a timeout longer than the interval ---

#[test]
fn a_heartbeat_multicast_address_must_be_a_multicast_group() {
    for (value, ok) in [
        ("10.0.0.1", false),
        ("192.168.1.255", false),
        ("240.0.0.1", false),
        ("300.1.1.1", false),
        ("224.0.0.251", true),
        ("239.192.0.1", true),
    ] {
        let text = edit(
            "heartbeat: {multicast: 239.192.0.1}",
            &format!("heartbeat: {{multicast: {value}}}"),
        );
        let got = active(&text);
        if ok {
            assert_eq!(got, [], "{value}");
        } else {
            // One error at the value (line 6, column 26),
            // and no AS0221 "no multicast" either: the document is refused.
            assert_eq!(got, [("AS0016", 6, 26)], "{value}");
            let f = findings(&text);
            assert_eq!(
                f[0].message,
                format!(
                    "`{value}` is not a multicast group: `multicast` must be an address of 224.0.0.0 to 239.255.255.255"
                )
            );
        }
    }
}

#[test]
fn the_heartbeat_timeout_must_be_longer_than_the_interval() {
    let cases = [
        // (heartbeat, expected finding (rule, line, column) or none)
        (
            "heartbeat: {interval: 1s, timeout: 1s, multicast: 239.192.0.1}",
            Some(("AS0311", 6, 38)),
        ),
        (
            "heartbeat: {interval: 2s, timeout: 500ms, multicast: 239.192.0.1}",
            Some(("AS0311", 6, 38)),
        ),
        // Only the interval written, over the default timeout (1s): at the interval.
        (
            "heartbeat: {interval: 5s, multicast: 239.192.0.1}",
            Some(("AS0311", 6, 25)),
        ),
        (
            "heartbeat: {interval: 0ms, timeout: 1s, multicast: 239.192.0.1}",
            Some(("AS0311", 6, 25)),
        ),
        (
            "heartbeat: {interval: 250ms, timeout: 1s, multicast: 239.192.0.1}",
            None,
        ),
        ("heartbeat: {interval: 999ms, multicast: 239.192.0.1}", None),
    ];
    for (heartbeat, expected) in cases {
        let text = edit("heartbeat: {multicast: 239.192.0.1}", heartbeat);
        assert_eq!(
            active(&text),
            expected.into_iter().collect::<Vec<_>>(),
            "{heartbeat}"
        );
    }
    let text = edit(
        "heartbeat: {multicast: 239.192.0.1}",
        "heartbeat: {interval: 2s, timeout: 500ms, multicast: 239.192.0.1}",
    );
    let f = &findings(&text)[0];
    assert_eq!(
        f.message,
        "the heartbeat timeout (500ms) is not longer than the interval (2s): a healthy peer is silent for a whole timeout between two heartbeats and would be suspected at every beat"
    );
    assert_eq!(f.related.len(), 1, "the interval as related location");
}

// --- Accept: only the seed's findings and asctl's warnings ---

/// `BASE` with an `accept` list in the Domain (after `isolation:`).
fn with_accept(text: &str, entries: &str) -> String {
    let anchor = "  isolation: {addresses: [10.0.1.1]}\n";
    assert_eq!(text.matches(anchor).count(), 1);
    text.replacen(anchor, &format!("{anchor}  accept:\n{entries}"), 1)
}

#[test]
fn reading_schema_and_structure_errors_cannot_be_accepted() {
    // An unknown field in a Node (AS0009), a dangling reference (AS0014) and
    // a managed IP outside its line's subnet (AS0301), each accepted with
    // `acknowledgeUnsupported: true`.
    let broken = edit("  nics: 3\n  scsiControllers: 2\n---\napiVersion: asctl/v1\nkind: Node\nmetadata:\n  name: vm2",
        "  nics: 3\n  scsiControllers: 2\n  colour: blue\n---\napiVersion: asctl/v1\nkind: Node\nmetadata:\n  name: vm2")
        .replace(
            "  dataSources: [data]\n",
            "  dataSources: [data, nothing]\n  ipAddresses: [{address: 10.9.0.5/24, line: domain-1}]\n",
        );
    let before: Vec<&str> = active(&broken).iter().map(|f| f.0).collect();
    assert!(
        before.contains(&"AS0009") && before.contains(&"AS0014") && before.contains(&"AS0301"),
        "{before:?}"
    );
    let text = with_accept(
        &broken,
        "    - {rule: AS0009, reason: r, acknowledgeUnsupported: true}\n    - {rule: AS0014, reason: r, acknowledgeUnsupported: true}\n    - {rule: AS0301, reason: r, acknowledgeUnsupported: true}\n",
    );
    let v = validate(load_texts([("t.yaml", text.as_bytes())]));
    assert!(v.has_errors());
    // Nothing is suppressed: the same findings are active...
    assert!(
        v.findings.iter().all(|f| f.is_active()),
        "{:#?}",
        v.findings
    );
    let got: Vec<(&str, u32, u32)> = v
        .findings
        .iter()
        .map(|f| {
            let l = f.location.expect("located");
            (f.rule.id, l.start.line, l.start.column)
        })
        .collect();
    // ... and each entry is an error at its `rule`, lines 9-11 column 14.
    let entries: Vec<_> = got.iter().filter(|f| f.0 == "AS0019").copied().collect();
    assert_eq!(
        entries,
        [("AS0019", 9, 14), ("AS0019", 10, 14), ("AS0019", 11, 14)]
    );
    for rule in ["AS0009", "AS0014", "AS0301"] {
        assert!(got.iter().any(|f| f.0 == rule), "{rule} is still reported");
    }
    assert!(
        !got.iter().any(|f| f.0 == "AS0017" || f.0 == "AS0018"),
        "{got:?}"
    );
    let f = v.findings.iter().find(|f| f.rule.id == "AS0019").unwrap();
    assert_eq!(
        f.message,
        "AS0009 (unknown-field) cannot be accepted: it is an error of asctl's own (a field is not part of the format), not a finding of the qualification"
    );
}

#[test]
fn the_seeds_findings_and_asctls_warnings_can_be_accepted() {
    // A seed error (AS0101: a VMFS shared disk between a physical machine
    // and a VM, Table 3), acknowledged.
    let text = edit("  host: esx2\n", "  physical: true\n").replace(
        "device: {backing: rdm-physical, scsiBusSharing: physical}",
        "device: {backing: vmfs, scsiBusSharing: physical}",
    );
    let rules: Vec<&str> = active(&text).iter().map(|f| f.0).collect();
    assert_eq!(rules, ["AS0101"]);
    let accepted = with_accept(
        &text,
        "    - {rule: AS0101, reason: lab, acknowledgeUnsupported: true}\n",
    );
    let v = validate(load_texts([("t.yaml", accepted.as_bytes())]));
    assert!(!v.has_errors(), "{:#?}", v.findings);
    let got: Vec<(&str, Option<&str>)> = v
        .findings
        .iter()
        .map(|f| (f.rule.id, f.suppressed.as_deref()))
        .collect();
    assert_eq!(got, [("AS0101", Some("lab"))]);
    // asctl's own warning AS0310 (two nodes without witness, response none).
    let text = BASE.replace(
        "  isolation: {addresses: [10.0.1.1]}\n",
        "  isolation: {addresses: [10.0.1.1], response: none}\n",
    );
    let rules: Vec<&str> = active(&text).iter().map(|f| f.0).collect();
    assert_eq!(rules, ["AS0310"]);
    let accepted = text.replace(
        "response: none}\n",
        "response: none}\n  accept:\n    - {rule: AS0310, reason: lab}\n",
    );
    let v = validate(load_texts([("t.yaml", accepted.as_bytes())]));
    let got: Vec<(&str, Option<&str>)> = v
        .findings
        .iter()
        .map(|f| (f.rule.id, f.suppressed.as_deref()))
        .collect();
    assert_eq!(got, [("AS0310", Some("lab"))]);
}

#[test]
fn which_rules_are_acceptable() {
    use crate::catalog::{ALL, Origin};
    for r in ALL {
        let expected = match r.origin {
            Origin::Seed(_) => true,
            Origin::Asctl => r.severity != crate::diag::Severity::Error && r.id != "AS0018",
        };
        assert_eq!(r.acceptable(), expected, "{}", r.id);
    }
    for id in ["AS0101", "AS0102", "AS0206", "AS0219", "AS0004", "AS0310"] {
        assert!(super::find_rule(id).unwrap().acceptable(), "{id}");
    }
    for id in [
        "AS0001", "AS0009", "AS0014", "AS0017", "AS0018", "AS0019", "AS0301", "AS0311",
    ] {
        assert!(!super::find_rule(id).unwrap().acceptable(), "{id}");
    }
}

// --- Nodes without `os` ---

const VM2_OS: &str =
    "  name: vm2\nspec:\n  host: esx2\n  os: {name: windows-2008, bits: 64}\n  platform: x64\n";
const VM2_NO_OS: &str = "  name: vm2\nspec:\n  host: esx2\n";

#[test]
fn a_node_without_os_is_reported_under_a_vmware_profile() {
    let text = edit(VM2_OS, VM2_NO_OS);
    let vm2 = line_of(&text, "kind: Node\nmetadata:\n  name: vm2", "name: vm2");
    assert_eq!(active(&text), [("AS0312", vm2, 9)]);
    assert_eq!(
        findings(&text)[0].message,
        "VM `vm2` does not give its OS: the seed's guest OS, platform and module rules cannot be checked for it"
    );
    // Under `generic` the seed's OS rules do not exist: nothing to say.
    let generic = text.replace(
        "spec:\n  heartbeat:",
        "spec:\n  qualification: generic\n  heartbeat:",
    );
    assert_eq!(active(&generic), []);
}

#[test]
fn a_module_or_alias_on_a_node_without_os_does_not_pass_silently() {
    let text = edit(VM2_OS, VM2_NO_OS).replace(
        "  dataSources: [data]\n",
        "  dataSources: [data]\n  nodeAlias: APP\n  module: {type: exchange-2003}\n",
    );
    let vm2 = line_of(&text, "kind: Node\nmetadata:\n  name: vm2", "name: vm2");
    let alias = line_of(&text, "name: app", "nodeAlias");
    let got = active(&text);
    // vm1 is 64-bit (AS0204 for Exchange 2003); vm2 cannot be checked, for
    // the module and the alias alike.
    assert_eq!(
        got,
        [
            ("AS0312", vm2, 9),
            ("AS0312", alias, 14),
            ("AS0204", alias + 1, 18),
            ("AS0312", alias + 1, 18),
        ]
    );
    let all = findings(&text);
    let module = all
        .iter()
        .find(|f| f.rule.id == "AS0312" && f.message.starts_with("module"))
        .unwrap();
    assert_eq!(
        module.message,
        "module exchange-2003 of group `app` needs Windows, but preferred node `vm2` does not give its OS: whether it can run there cannot be checked"
    );
    assert_eq!(module.objects, ["ResourceGroup/app", "Node/vm2"]);
    // The resource part applies in every profile (windows-only-resource is
    // structural): under `generic` the module and alias are still reported.
    let generic = text.replace(
        "spec:\n  heartbeat:",
        "spec:\n  qualification: generic\n  heartbeat:",
    );
    let rules: Vec<&str> = active(&generic).iter().map(|f| f.0).collect();
    assert_eq!(rules, ["AS0312", "AS0312"]);
}

// --- MirrorView/SRDF and the data source they are combined with ---

const MIRRORVIEW: &str = "---
apiVersion: asctl/v1
kind: DataSource
metadata:
  name: mv
spec:
  type: mirrorView
  mode: sync
  pairedWith: data
  device: {backing: rdm-physical}
";

/// `BASE` with MirrorView `mv` (RDM mode, paired with `data`) and the
/// group's data sources `uses`.
fn with_mirrorview(uses: &str) -> String {
    edit(
        "  dataSources: [data]\n",
        &format!("  dataSources: {uses}\n"),
    ) + MIRRORVIEW
}

#[test]
fn mirrorview_with_its_shared_disk_in_the_group_is_clean() {
    assert_eq!(active(&with_mirrorview("[mv, data]")), []);
    // Through a composite counts as used.
    let text = with_mirrorview("[mv, both]")
        + "---\napiVersion: asctl/v1\nkind: DataSource\nmetadata:\n  name: both\nspec:\n  type: composite\n  members: [data, rs]\n---\napiVersion: asctl/v1\nkind: DataSource\nmetadata:\n  name: rs\nspec:\n  type: repliStor\n  device: {backing: rdm-physical}\n";
    assert_eq!(active(&text), []);
}

#[test]
fn rdm_mode_replication_needs_a_shared_disk_on_an_rdm() {
    let text = with_mirrorview("[mv, data]").replace(
        "device: {backing: rdm-physical, scsiBusSharing: physical}",
        "device: {backing: vmfs, scsiBusSharing: physical}",
    );
    let paired = line_of(&text, "name: mv", "pairedWith");
    assert_eq!(active(&text), [("AS0212", paired, 15)]);
    let f = findings(&text);
    assert_eq!(
        f[0].message,
        "mirrorView `mv` in RDM mode is paired with `data`, a sharedDisk on a VMFS virtual disk: in RDM mode it must be combined with a Shared Disk data source on the RDM device (`backing: rdm-physical` or `rdm-virtual`)"
    );
    assert_eq!(f[0].related[0].message, "its backing");
}

#[test]
fn a_group_with_mirrorview_must_use_its_partner_too() {
    let text = with_mirrorview("[mv]");
    let uses = line_of(&text, "name: app", "dataSources");
    assert_eq!(active(&text), [("AS0226", uses, 17)]);
    assert_eq!(
        findings(&text)[0].message,
        "group `app` uses mirrorView `mv` but not `data`, the sharedDisk data source it is combined with: the two work together in the group"
    );
    // Not a cascade of a wrong pairing: a partner of the wrong type is AS0212 only.
    let text = with_mirrorview("[mv]").replace("  pairedWith: data\n", "  pairedWith: rs\n")
        + "---\napiVersion: asctl/v1\nkind: DataSource\nmetadata:\n  name: rs\nspec:\n  type: repliStor\n  device: {backing: rdm-physical}\n";
    let rules: Vec<&str> = active(&text).iter().map(|f| f.0).collect();
    assert_eq!(rules, ["AS0212"]);
}

/// Once in the group, the partner is checked like any data source of it.
#[test]
fn the_partner_is_judged_with_the_groups_nodes() {
    // Shared across hosts with bus sharing `virtual`: AS0211 on the partner.
    let text = with_mirrorview("[mv, data]").replace(
        "device: {backing: rdm-physical, scsiBusSharing: physical}",
        "device: {backing: rdm-physical, scsiBusSharing: virtual}",
    );
    let rules: Vec<&str> = active(&text).iter().map(|f| f.0).collect();
    assert_eq!(rules, ["AS0211"]);
    // VMotion on a VM whose group uses the partner shared disk: AS0215.
    let text = with_mirrorview("[mv, data]").replace(
        "  host: esx1\n  os: {name: windows-2008, bits: 64}\n",
        "  host: esx1\n  vmotion: true\n  os: {name: windows-2008, bits: 64}\n",
    );
    let rules: Vec<&str> = active(&text).iter().map(|f| f.0).collect();
    assert_eq!(rules, ["AS0215"]);
}

// --- NICs per network line ---

const VM1_NICS: &str =
    "  host: esx1\n  os: {name: windows-2008, bits: 64}\n  platform: x64\n  nics: 3\n";

#[test]
fn a_node_on_more_lines_than_nics_is_reported() {
    let text = edit(VM1_NICS, &VM1_NICS.replace("nics: 3", "nics: 1"));
    let nics = line_of(&text, "name: vm1", "nics:");
    assert_eq!(active(&text), [("AS0313", nics, 9)]);
    let f = &findings(&text)[0];
    assert_eq!(
        f.message,
        "node `vm1` is on 3 network lines but has 1 NIC: lines that share an adapter fail together, so they are not redundant"
    );
    let related: Vec<&str> = f.related.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(
        related,
        [
            "on line `domain-1`",
            "on line `domain-2`",
            "on line `verification`"
        ]
    );
    // Two NICs for three lines: still one short.
    let text = edit(VM1_NICS, &VM1_NICS.replace("nics: 3", "nics: 2"));
    assert_eq!(active(&text), [("AS0313", nics, 9)]);
    // Without `nics` the node is not judged.
    let text = edit(VM1_NICS, &VM1_NICS.replace("  nics: 3\n", ""));
    assert_eq!(active(&text), []);
}

#[test]
fn nic_teaming_does_not_add_interfaces() {
    // In the hypervisor: the guest's adapters are what counts.
    let text = edit(
        VM1_NICS,
        &VM1_NICS.replace("nics: 3\n", "nics: 3\n  nicTeaming: hypervisor\n"),
    );
    assert_eq!(active(&text), []);
    let text = edit(
        VM1_NICS,
        &VM1_NICS.replace("nics: 3\n", "nics: 2\n  nicTeaming: hypervisor\n"),
    );
    let rules: Vec<&str> = active(&text).iter().map(|f| f.0).collect();
    assert_eq!(rules, ["AS0313"]);
    // In the guest (AS0217 under the seed): a team groups one or more NICs,
    // so there are at most `nics` interfaces.
    let text = edit(
        VM1_NICS,
        &VM1_NICS.replace("nics: 3\n", "nics: 3\n  nicTeaming: guest\n"),
    );
    let rules: Vec<&str> = active(&text).iter().map(|f| f.0).collect();
    assert_eq!(rules, ["AS0217"]);
    let text = edit(
        VM1_NICS,
        &VM1_NICS.replace("nics: 3\n", "nics: 2\n  nicTeaming: guest\n"),
    );
    let rules: Vec<&str> = active(&text).iter().map(|f| f.0).collect();
    assert_eq!(rules, ["AS0313", "AS0217"]);
    assert!(findings(&text).iter().any(|f| f.message
        == "node `vm1` is on 3 network lines but has 2 NICs (teamed in the guest: at most as many interfaces): lines that share an adapter fail together, so they are not redundant"));
}
