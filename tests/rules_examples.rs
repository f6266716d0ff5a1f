//! The example domains of `examples/` validate with no error, and the seed's
//! three configurations produce exactly the warnings the seed predicts:
//! a Cluster in a Box gives no protection against hardware failure (seed,
//! "Cluster in a Box"); Cluster Across Boxes and Standby Host follow every
//! recommendation, so they warn about nothing.

use asctl::load::{Input, load};
use asctl::rules::{catalog as cat, validate};

/// (directory, the rules of the active findings it must produce, in order)
const EXPECTED: &[(&str, &[&str])] = &[
    ("cluster-in-a-box", &[cat::CLUSTER_IN_A_BOX.id]),
    ("cluster-across-boxes", &[]),
    ("standby-host", &[]),
    ("quickstart", &[]),
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
