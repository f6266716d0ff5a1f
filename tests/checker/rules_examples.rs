//! The example domains of `examples/` validate with no error, and the seed's
//! three configurations produce exactly the warnings the seed predicts:
//! a Cluster in a Box gives no protection against hardware failure (seed,
//! "Cluster in a Box"); Cluster Across Boxes and Standby Host follow every
//! recommendation, so they warn about nothing.

use asctl::catalog as cat;
use asctl::load::{Input, load};
use asctl::rules::validate;

/// (directory, the rules of the active findings it must produce, in order)
const EXPECTED: &[(&str, &[&str])] = &[
    ("cluster-in-a-box", &[cat::CLUSTER_IN_A_BOX.id]),
    ("cluster-across-boxes", &[]),
    ("standby-host", &[]),
    ("quickstart", &[]),
    ("linux-database", &[]),
];

#[test]
fn examples_produce_exactly_the_predicted_findings() {
    let mut failures = Vec::new();
    for (dir, expected) in EXPECTED {
        let path = format!("{}/examples/{dir}", env!("CARGO_MANIFEST_DIR"));
        let v = validate(load(&[Input::Path(path.into())]).expect("the example is readable"));
        let got: Vec<&str> = v
            .findings
            .iter()
            .filter(|f| f.is_active())
            .map(|f| f.rule.id)
            .collect();
        if got != *expected {
            let messages: Vec<String> = v
                .findings
                .iter()
                .map(|f| format!("  {} {}: {}", f.rule.id, f.severity, f.message))
                .collect();
            failures.push(format!(
                "{dir}: expected {expected:?}, got {got:?}\n{}",
                messages.join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_example_directory_is_covered() {
    let dir = format!("{}/examples", env!("CARGO_MANIFEST_DIR"));
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .expect("examples/ exists")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut listed: Vec<String> = EXPECTED.iter().map(|(d, _)| d.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed, "add new example directories to EXPECTED");
}

/// The documented way to accept the Cluster in a Box warning (docs/rules.md)
/// works: the finding stays, suppressed with the reason.
#[test]
fn the_cluster_in_a_box_warning_can_be_accepted() {
    let dir = format!("{}/examples/cluster-in-a-box", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("the example exists")
        .filter_map(Result::ok)
        .map(|e| {
            let path = e.path();
            let text = std::fs::read(&path).expect("readable");
            (path.display().to_string(), text)
        })
        .collect();
    files.sort();
    for (name, text) in &mut files {
        if name.ends_with("domain.yaml") {
            text.extend_from_slice(
                b"  accept:\n    - rule: AS0219\n      reason: test domain on one host\n      objects: [ResourceGroup/sql]\n",
            );
        }
    }
    let v = validate(asctl::load::load_texts(
        files.iter().map(|(n, t)| (n.as_str(), t.as_slice())),
    ));
    let findings: Vec<_> = v
        .findings
        .iter()
        .map(|f| (f.rule.id, f.suppressed.clone()))
        .collect();
    assert_eq!(
        findings,
        vec![(
            cat::CLUSTER_IN_A_BOX.id,
            Some("test domain on one host".to_owned())
        )]
    );
}

/// The Standby Host example is the seed's N+1 figure with N = 3: three
/// physical machines, each backed by its own VM, all VMs on one standby ESX
/// host; every group fails over from one physical machine to its VM.
#[test]
fn the_standby_host_example_is_n_plus_1_with_three_machines() {
    let path = format!("{}/examples/standby-host", env!("CARGO_MANIFEST_DIR"));
    let v = validate(load(&[Input::Path(path.into())]).expect("the example is readable"));
    let cfg = &v.loaded.config;
    let physical: Vec<&str> = cfg
        .nodes
        .iter()
        .filter(|n| n.spec.physical)
        .map(|n| n.name().as_str())
        .collect();
    let hosts: Vec<&str> = cfg
        .nodes
        .iter()
        .filter_map(|n| n.spec.host.as_ref().map(|h| h.as_str()))
        .collect();
    assert_eq!(physical.len(), 3, "{physical:?}");
    assert_eq!(hosts.len(), 3, "one VM per physical machine");
    assert_eq!(cfg.hosts.len(), 1, "one standby host");
    assert!(
        hosts
            .iter()
            .all(|h| *h == cfg.hosts.iter().next().unwrap().name().as_str())
    );
    let mut backed: Vec<(&str, &str)> = Vec::new();
    for g in &cfg.groups {
        let [a, b] = g.spec.preferred_nodes.as_slice() else {
            panic!("group {} fails over between two nodes", g.name());
        };
        let node = |n: &asctl::model::Name| cfg.nodes.get(n.as_str()).expect("defined");
        assert!(
            node(a).spec.physical && node(b).spec.host.is_some(),
            "group {}",
            g.name()
        );
        if !backed.contains(&(a.as_str(), b.as_str())) {
            backed.push((a.as_str(), b.as_str()));
        }
    }
    backed.sort();
    // Each physical machine is backed by one VM of its own.
    let mut machines: Vec<&str> = backed.iter().map(|p| p.0).collect();
    let mut vms: Vec<&str> = backed.iter().map(|p| p.1).collect();
    machines.dedup();
    vms.sort();
    vms.dedup();
    assert_eq!(
        (machines.len(), vms.len(), backed.len()),
        (3, 3, 3),
        "{backed:?}"
    );
}
