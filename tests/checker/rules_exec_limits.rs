//! `exec-too-large` (AS0319) against the limit of this machine: a process
//! whose strings together exceed `ARG_MAX` (each under 128 KiB) is reported
//! at its name, and one just under the limit is not.

use asctl::load::load_texts;
use asctl::model::exec_limits::{MAX_ARG_STRLEN, arg_max};
use asctl::rules::validate;

const PASS: &str = include_str!("../../src/rules/examples/AS0319/pass.yaml");

/// The passing example with `count` more variables of `len` bytes each.
fn with_env(count: usize, len: usize) -> String {
    let value = "v".repeat(len);
    let mut extra = String::new();
    for i in 0..count {
        extra.push_str(&format!("        BIG_{i:03}: \"{value}\"\n"));
    }
    format!("{PASS}{extra}")
}

fn exec_findings(text: &str) -> Vec<(u32, String)> {
    let v = validate(load_texts([("d.yaml", text.as_bytes())]));
    v.findings
        .iter()
        .filter(|f| f.rule.id == "AS0319")
        .map(|f| (f.location.expect("located").start.line, f.message.clone()))
        .collect()
}

#[test]
fn a_total_over_arg_max_is_reported_at_the_process() {
    let len = MAX_ARG_STRLEN / 2;
    let per = len + "BIG_000=".len() + 1 + std::mem::size_of::<usize>();
    let over = arg_max() / per + 1;
    let text = with_env(over, len);
    let name_line = text
        .lines()
        .position(|l| l.contains("- name: server"))
        .expect("process") as u32
        + 1;
    let found = exec_findings(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, name_line);
    assert!(found[0].1.contains("process `app/server`"), "{found:?}");
    assert!(
        found[0].1.contains(&format!("ARG_MAX of {}", arg_max())),
        "{found:?}"
    );

    // Well under the limit (a tenth of it spare): nothing.
    let under = (arg_max() * 9 / 10) / per;
    assert!(exec_findings(&with_env(under, len)).is_empty());
}
