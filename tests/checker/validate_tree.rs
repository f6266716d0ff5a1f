//! Validation where users keep their files: a tree of domain directories,
//! a file alone (a path, standard input, `--file-only`), and the commands
//! that act on one domain refusing a tree of several.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn asctl() -> Command {
    Command::cargo_bin("asctl").unwrap()
}

fn json(args: &[&str], stdin: Option<&str>) -> (i32, Value) {
    let mut cmd = asctl();
    cmd.args(["validate", "--format", "json"]).args(args);
    if let Some(text) = stdin {
        cmd.write_stdin(text);
    }
    let out = cmd.output().unwrap();
    let report = serde_json::from_slice(&out.stdout).expect("a JSON report");
    (out.status.code().unwrap(), report)
}

fn rules(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_examples_tree_is_five_domains_each_valid() {
    let (code, report) = json(&["examples/"], None);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["summary"]["errors"], 0);
    // The one warning (cluster in a box) says which domain it is in.
    let f = &report["findings"][0];
    assert_eq!(f["rule"], "AS0219");
    assert_eq!(f["domain"]["name"], "cluster-in-a-box");
    assert_eq!(f["domain"]["root"], "examples/cluster-in-a-box");
}

#[test]
fn findings_of_two_domains_are_under_a_header_each() {
    let dir = tempfile::tempdir().unwrap();
    for (name, line) in [
        ("a", "interval: 1s, timeout: 1s"),
        ("b", "interval: 2s, timeout: 1s"),
    ] {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            d.join("domain.yaml"),
            format!(
                "apiVersion: asctl/v1\nkind: Domain\nmetadata: {{name: {name}}}\nspec:\n  qualification: generic\n  heartbeat: {{{line}}}\n"
            ),
        )
        .unwrap();
        // The same node name in both domains is not a duplicate.
        std::fs::write(
            d.join("node.yaml"),
            "apiVersion: asctl/v1\nkind: Node\nmetadata: {name: n1}\nspec: {physical: true}\n",
        )
        .unwrap();
    }
    let out = asctl()
        .args(["validate"])
        .arg(dir.path())
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let a = text.find("== domain `a`").expect("header of a");
    let b = text.find("== domain `b`").expect("header of b");
    assert!(a < b, "{text}");
    assert_eq!(text.matches("error[AS0311]").count(), 2, "{text}");
    assert!(!text.contains("AS0012"), "{text}");
}

#[test]
fn a_file_alone_has_no_whole_domain_findings() {
    // A group that names nodes, data sources and a line defined elsewhere.
    let (code, report) = json(&["examples/standby-host/groups.yaml"], None);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(rules(&report), Vec::<String>::new());
    let text = std::fs::read_to_string("examples/standby-host/groups.yaml").unwrap();
    let (code, report) = json(&["-"], Some(&text));
    assert_eq!(code, 0, "{report:#}");
    assert!(report["findings"].as_array().unwrap().is_empty());
}

#[test]
fn a_file_alone_still_gets_its_own_errors() {
    let text = "apiVersion: asctl/v1\nkind: Node\nmetadata: {name: Node_1}\nspec: {physical: true, nics: three}\n";
    let (code, report) = json(&["-"], Some(text));
    assert_eq!(code, 1);
    assert_eq!(rules(&report), ["AS0011", "AS0010"]);
    assert!(report["findings"][0]["domain"].is_null());
    assert_eq!(report["findings"][0]["location"]["file"], "<stdin>");
}

#[test]
fn file_only_checks_each_file_of_a_domain_alone() {
    let (code, report) = json(&["--file-only", "examples/"], None);
    assert_eq!(code, 0, "{report:#}");
    // The cluster-in-a-box warning needs the group and its nodes together.
    assert!(rules(&report).is_empty(), "{report:#}");
    let (_, whole) = json(&["examples/"], None);
    assert_eq!(
        report["summary"]["documents"],
        whole["summary"]["documents"]
    );
}

#[test]
fn plan_refuses_a_tree_of_several_domains_and_a_file_without_domain() {
    asctl()
        .args(["plan", "examples/"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "error: 5 domains were read (`cluster-across-boxes` in examples/cluster-across-boxes",
        ))
        .stderr(predicate::str::contains(
            "give the directory of one of them",
        ));
    asctl()
        .args(["plan", "examples/quickstart/nodes.yaml"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("error: no Domain document"));
}

/// Several independent faults per file, every one reported in one run; and
/// nothing false from objects dropped for their own errors: `sql1` (a
/// duplicate key among its faults) and the line `private` (a bad address)
/// fail the schema, so the domain's node count (AS0310), each node's lines
/// (AS0220) and the hosts of group `app` (AS0219) cannot be judged.
#[test]
fn a_multi_fault_corpus_reports_every_fault_at_once() {
    let (code, report) = json(&["tests/fixtures/multi-fault"], None);
    assert_eq!(code, 1);
    let got: Vec<(String, String, i64, i64)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let file = f["location"]["file"].as_str().unwrap();
            (
                f["rule"].as_str().unwrap().to_owned(),
                file.rsplit('/').next().unwrap().to_owned(),
                f["location"]["line"].as_i64().unwrap(),
                f["location"]["column"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, String, i64, i64)> = [
        ("AS0201", "domain.yaml", 15, 39),
        // Group sql: sql4 is not declared anywhere (a dangling reference),
        // so its other nodes are judged as they are.
        ("AS0219", "groups.yaml", 6, 19),
        ("AS0014", "groups.yaml", 6, 32),
        // An unknown field does not hide the group from the rules.
        ("AS0009", "groups.yaml", 7, 3),
        ("AS0219", "groups.yaml", 14, 19),
        ("AS0014", "groups.yaml", 15, 17),
        ("AS0016", "lines.yaml", 17, 55),
        // A duplicate key does not hide the document's other errors.
        ("AS0010", "nodes.yaml", 9, 9),
        ("AS0016", "nodes.yaml", 10, 15),
        ("AS0002", "nodes.yaml", 11, 3),
        ("AS0016", "nodes.yaml", 12, 12),
    ]
    .iter()
    .map(|(r, f, l, c)| ((*r).to_owned(), (*f).to_owned(), *l, *c))
    .collect();
    assert_eq!(got, expected, "{report:#}");
    assert_eq!(
        report["summary"]["documents"], 12,
        "no document dropped from the count"
    );
    // `vmotion: yes` is a string in YAML 1.2, and the finding says so.
    let vmotion = &report["findings"][10];
    assert!(
        vmotion["help"]
            .as_str()
            .unwrap()
            .contains("YAML 1.2 reads `yes`"),
        "{vmotion:#}"
    );
}

#[path = "../../benches/support/generate.rs"]
mod generate;

/// A domain without findings is parsed once: no check asks for a location
/// (which parses the file again) before it knows it reports something.
/// The benchmarks' domain: every seed rule runs on it, none reports.
#[test]
fn a_clean_domain_is_parsed_once() {
    for per_file in [1, 10] {
        let files = generate::generate(100, per_file);
        let loaded = asctl::load::load_texts(files.iter().map(|(n, t)| (n.as_str(), t.as_bytes())));
        let validation = asctl::rules::validate(loaded);
        assert!(
            validation.findings.is_empty(),
            "the generated domain is clean"
        );
        assert_eq!(
            validation.loaded.files_parsed_again(),
            0,
            "{per_file} per file"
        );
    }
}

/// A shell or a service manager may give a process few descriptors: a
/// tree of more directories than that still validates whole, the walk
/// keeping open no more of them than a quarter of the limit.
#[test]
fn a_tree_of_many_directories_validates_under_a_low_descriptor_limit() {
    let tmp = tempfile::tempdir().unwrap();
    const DIRS: usize = 300;
    for i in 0..DIRS {
        let dir = tmp.path().join(format!("d{i:03}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join("host.yaml"),
            format!(
                "apiVersion: asctl/v1\nkind: Host\nmetadata:\n  name: h{i}\nspec:\n  hypervisor: {{product: esx, version: \"4.0\"}}\n"
            ),
        )
        .unwrap();
    }
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" validate --format json \"$1\"")
        .arg(assert_cmd::cargo::cargo_bin("asctl"))
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["files"], DIRS);
    assert_eq!(report["summary"]["errors"], 0);
}
