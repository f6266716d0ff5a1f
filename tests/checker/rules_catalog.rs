//! Every rule of the catalog, run on its own examples (the ones `asctl
//! explain` prints): the failing example triggers the rule and nothing else;
//! the passing example does not trigger it and has no error.

use std::collections::BTreeSet;

use asctl::catalog::{ALL, Rule};
use asctl::diag::Severity;
use asctl::load::load_texts;
use asctl::rules::validate_with;

/// Examples run as `asctl validate` runs them, with the meta-data of the
/// OCF agents they name gathered — here from asctl's test agents.
fn active(example: &[u8]) -> Vec<(&'static str, Severity, String)> {
    let loaded = load_texts([("example.yaml", example)]);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ocf");
    let ocf = asctl::drivers::ocf::gather_metadata(&[&loaded.config], &root);
    let v = validate_with(loaded, Some(&ocf));
    v.findings
        .iter()
        .filter(|f| f.is_active())
        .map(|f| (f.rule.id, f.severity, f.message.clone()))
        .collect()
}

/// The failing example of `not-regular-file`, as it is meant: the example
/// file in a directory next to a real FIFO named `pipe.yaml`, read from the
/// disk (a YAML text cannot be a FIFO).
fn active_beside_a_fifo(example: &[u8]) -> Vec<(&'static str, Severity, String)> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("domain.yaml"), example).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(dir.path().join("pipe.yaml"))
        .status()
        .unwrap();
    assert!(made.success());
    let input = asctl::load::Input::Path(dir.path().to_owned());
    let loaded = asctl::load::load(&[input]).unwrap();
    let v = validate_with(loaded, None);
    v.findings
        .iter()
        .filter(|f| f.is_active())
        .map(|f| (f.rule.id, f.severity, f.message.clone()))
        .collect()
}

fn problems(rule: &Rule) -> Vec<String> {
    let mut out = Vec::new();
    let fail = if std::ptr::eq(rule, &asctl::catalog::NOT_REGULAR_FILE) {
        active_beside_a_fifo(rule.fail_example)
    } else {
        active(rule.fail_example)
    };
    if !fail.iter().any(|(id, _, _)| *id == rule.id) {
        out.push(format!(
            "{}: the failing example does not trigger it",
            rule.id
        ));
    }
    for (id, sev, msg) in &fail {
        if *id != rule.id {
            out.push(format!(
                "{}: the failing example also triggers {id} ({sev}): {msg}",
                rule.id
            ));
        }
    }
    for (id, sev, msg) in active(rule.pass_example) {
        if id == rule.id {
            out.push(format!(
                "{}: the passing example triggers it: {msg}",
                rule.id
            ));
        } else if sev == Severity::Error {
            out.push(format!(
                "{}: the passing example has an error {id}: {msg}",
                rule.id
            ));
        }
    }
    out
}

#[test]
fn every_rule_is_triggered_by_its_failing_example_only() {
    let all: Vec<String> = ALL.iter().flat_map(|r| problems(r)).collect();
    assert!(all.is_empty(), "\n{}", all.join("\n"));
}

#[test]
fn ids_are_unique_ordered_and_well_formed() {
    let mut seen = BTreeSet::new();
    let mut prev = "";
    for r in ALL {
        assert!(
            r.id.len() == 6
                && r.id.starts_with("AS")
                && r.id[2..].bytes().all(|b| b.is_ascii_digit()),
            "{} is not AS + four digits",
            r.id
        );
        assert!(r.id > prev, "{} is out of order (after {prev})", r.id);
        assert!(seen.insert(r.name), "name {} is used twice", r.name);
        assert!(
            !r.fail_example.is_empty() && !r.pass_example.is_empty(),
            "{} lacks an example",
            r.id
        );
        prev = r.id;
    }
}
