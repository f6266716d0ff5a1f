//! The real binary: exit codes and every output format (SARIF, checked
//! against the SARIF 2.1.0 schema, in `cli_sarif.rs`).

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

pub(crate) fn asctl() -> Command {
    Command::cargo_bin("asctl").unwrap()
}

/// Runs `cmd`, asserts its exit code, and reads its standard output as
/// JSON (the reports of `--format json` and `--format sarif`).
pub(crate) fn json_of(cmd: &mut Command, code: i32) -> Value {
    let out = cmd.assert().code(code).get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn a_valid_example_exits_0() {
    asctl()
        .args(["validate", "examples/quickstart"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("ok: 6 files"));
}

/// A file given twice, or a file and its directory, is read once: no
/// "defined twice" errors, the same report as the directory alone.
#[test]
fn a_file_named_twice_is_read_once() {
    let dir = "examples/cluster-in-a-box";
    let alone = asctl()
        .args(["validate", "--format", "json", dir])
        .output()
        .unwrap();
    for args in [
        vec![dir, "examples/cluster-in-a-box/domain.yaml"],
        vec!["examples/cluster-in-a-box/domain.yaml", dir],
        vec![dir, "examples/cluster-in-a-box/"],
        vec![dir, "./examples/cluster-in-a-box/nodes.yaml", dir],
    ] {
        let out = asctl()
            .args(["validate", "--format", "json"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["summary"]["files"], 6, "{args:?}");
        assert_eq!(report["summary"]["documents"], 10, "{args:?}");
        let rules: Vec<&str> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rule"].as_str().unwrap())
            .collect();
        assert_eq!(rules, ["AS0219"], "{args:?}");
        if args[0] == dir {
            assert_eq!(out.stdout, alone.stdout, "{args:?}");
        }
    }
    let domain = "examples/cluster-in-a-box/domain.yaml";
    asctl()
        .args(["validate", domain, domain])
        .assert()
        .stdout(predicate::str::contains("1 file, 1 document"))
        .stdout(predicate::str::contains("defined twice").not());
}

#[test]
fn errors_exit_1_with_a_rustc_style_snippet() {
    asctl()
        .args(["validate", "tests/fixtures/broken/wrong-type.yaml"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "error[AS0010]: `nics` must be an integer, found a string\n  --> tests/fixtures/broken/wrong-type.yaml:16:9",
        ))
        .stdout(predicate::str::contains("16 |   nics: three\n   |         ^^^^^"));
}

#[test]
fn usage_and_io_failures_exit_2() {
    asctl()
        .args(["validate", "does/not/exist.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "does/not/exist.yaml: no such file or directory",
        ));
    asctl().args(["validate"]).assert().code(2);
    asctl()
        .args(["validate", "--format", "xml", "examples"])
        .assert()
        .code(2);
    asctl().args(["explain", "AS9999"]).assert().code(2);
}

#[test]
fn deny_warnings_turns_warnings_into_errors() {
    let fixture = "tests/fixtures/broken/empty-document.yaml";
    asctl().args(["validate", fixture]).assert().code(0);
    asctl()
        .args(["validate", "--deny", "warnings", fixture])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("error[AS0004]"));
}

/// An accept entry cannot silence a reading or schema error: the unknown
/// field stays an error, the entry is one too, and the run exits 1.
#[test]
fn accepting_an_unknown_field_fails_the_run() {
    let text = "\
apiVersion: asctl/v1
kind: Domain
metadata: {name: demo}
spec:
  qualification: generic
  accept:
    - {rule: AS0009, reason: we like colours, acknowledgeUnsupported: true}
---
apiVersion: asctl/v1
kind: Node
metadata: {name: node1}
spec: {physical: true, colour: blue}
";
    let report = json_of(
        asctl()
            .args(["validate", "--format", "json", "-"])
            .write_stdin(text),
        1,
    );
    assert_eq!(report["summary"]["errors"], 2);
    assert_eq!(report["summary"]["suppressed"], 0);
    let rules: Vec<(&str, i64, bool)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap(),
                f["location"]["line"].as_i64().unwrap(),
                f["suppressed"].is_null(),
            )
        })
        .collect();
    assert_eq!(rules, [("AS0019", 7, true), ("AS0009", 12, true)]);
}

#[test]
fn stdin_is_read_with_a_dash() {
    let text = std::fs::read("tests/fixtures/broken/unknown-field.yaml").unwrap();
    asctl()
        .args(["validate", "-"])
        .write_stdin(text)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("--> <stdin>:14:3"));
}

#[test]
fn json_output_is_the_documented_report() {
    let report = json_of(
        asctl().args([
            "validate",
            "--format",
            "json",
            "tests/fixtures/broken/unknown-field.yaml",
        ]),
        1,
    );
    assert_eq!(report["formatVersion"], 2);
    assert!(report.get("version").is_none(), "one version key");
    assert_eq!(report["summary"]["errors"], 1);
    let f = &report["findings"][0];
    assert_eq!(f["rule"], "AS0009");
    assert_eq!(f["severity"], "error");
    assert_eq!(
        f["location"]["file"],
        "tests/fixtures/broken/unknown-field.yaml"
    );
    assert_eq!(f["location"]["line"], 14);
    assert_eq!(f["location"]["column"], 3);
    assert_eq!(f["location"]["endColumn"], 11);
    assert_eq!(f["help"], "did you mean `failback`?");
}

#[test]
fn github_output_is_workflow_annotations() {
    asctl()
        .args(["validate", "--format", "github", "tests/fixtures/broken/wrong-type.yaml"])
        .assert()
        .code(1)
        .stdout(predicate::str::starts_with(
            "::error file=tests/fixtures/broken/wrong-type.yaml,line=15,col=14,endLine=15,endColumn=17,title=AS0010 a value has the wrong type::`version` must be a string, found a number%0Ahelp: quote the value to make it a string: \"3.5\"\n",
        ));
}

/// examples/cluster-in-a-box copied to a temporary directory, with the
/// Domain accepting its Cluster in a Box warning and, acknowledged, a seed
/// error added for the purpose (a thin shared VMFS disk, AS0210).
pub(crate) fn accepted_example() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir("examples/cluster-in-a-box").unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name == "domain.yaml" {
            text.push_str(
                "  accept:\n    - rule: AS0219\n      reason: test domain on one host\n    - rule: AS0210\n      reason: lab disk, thin on purpose\n      acknowledgeUnsupported: true\n",
            );
        }
        if name == "storage.yaml" {
            assert!(
                text.contains("provisioning: thick"),
                "the example has a thick disk"
            );
            text = text.replacen("provisioning: thick", "provisioning: thin", 1);
        }
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn json_output_shows_suppressed_findings_with_their_reason() {
    let dir = accepted_example();
    let report = json_of(
        asctl()
            .args(["validate", "--format", "json"])
            .arg(dir.path()),
        0,
    );
    assert_eq!(report["summary"]["errors"], 0);
    assert_eq!(report["summary"]["warnings"], 0);
    assert_eq!(report["summary"]["suppressed"], 2);
    let mut got: Vec<(&str, &str, &Value)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap(),
                f["severity"].as_str().unwrap(),
                &f["suppressed"],
            )
        })
        .collect();
    got.sort_by_key(|f| f.0);
    assert_eq!(
        got,
        [
            (
                "AS0210",
                "error",
                &serde_json::json!({ "reason": "lab disk, thin on purpose" })
            ),
            (
                "AS0219",
                "warning",
                &serde_json::json!({ "reason": "test domain on one host" })
            ),
        ]
    );
    // The human summary counts them and shows none.
    asctl()
        .arg("validate")
        .arg(dir.path())
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "0 errors, 0 warnings (2 accepted in the Domain)",
        ))
        .stdout(predicate::str::contains("AS0210").not());
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let committed = std::fs::read_to_string("schemas/asctl.schema.json").unwrap();
    asctl()
        .arg("schema")
        .assert()
        .code(0)
        .stdout(predicate::function(move |out: &str| {
            out.trim_end() == committed.trim_end()
        }));
}

#[test]
fn explain_prints_text_reference_and_both_examples() {
    let rule = asctl::rules::find_rule("AS0002").unwrap();
    asctl()
        .args(["explain", "as0002"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(rule.explanation))
        .stdout(predicate::str::contains("Failing example:"))
        .stdout(predicate::str::contains("Passing example:"))
        .stdout(predicate::str::contains("asctl's own rule"));
}

#[test]
fn rules_lists_the_catalog_as_json() {
    let report = json_of(asctl().args(["rules", "--format", "json"]), 0);
    assert_eq!(report["formatVersion"], 1);
    let ids: Vec<&str> = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), asctl::catalog::ALL.len());
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "IDs are sorted and unique"
    );
}

#[test]
fn format_help_points_to_the_document_of_each_format() {
    let plan = asctl().args(["plan", "--help"]).assert().success();
    let plan = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    assert!(
        plan.contains("JSON form of the plan (docs/plan.md)"),
        "{plan}"
    );
    let status = asctl().args(["status", "--help"]).assert().success();
    let status = String::from_utf8_lossy(&status.get_output().stdout).into_owned();
    assert!(status.contains("JSON form of the status"), "{status}");
    assert!(status.contains("docs/runtime.md"), "{status}");
    assert!(!status.contains("of the plan"), "{status}");
}

/// A state directory with credentials (`asctl up --init-only`) and nothing
/// running: the domain's agents cannot be reached.
fn unreachable_domain() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    asctl()
        .args(["up", "examples/quickstart", "--init-only", "--state-dir"])
        .arg(&state)
        .assert()
        .success();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    (dir, format!("127.0.0.1:{port}"))
}

#[test]
fn plan_with_detailed_exitcode_exits_1_on_errors_never_2() {
    let (dir, nowhere) = unreachable_domain();
    let state = dir.path().join("state");
    // The domain cannot be reached: an error, not "changes".
    let out = asctl()
        .args([
            "plan",
            "examples/quickstart",
            "--detailed-exitcode",
            "--endpoint",
            &nowhere,
        ])
        .arg("--state-dir")
        .arg(&state)
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("no member of the domain answered"),
        "{stderr}"
    );
    // Without the flag, the same failure is exit 2 (I/O).
    asctl()
        .args(["plan", "examples/quickstart", "--endpoint", &nowhere])
        .arg("--state-dir")
        .arg(&state)
        .assert()
        .code(2);
    // A configuration with errors: 1, before the domain is even asked.
    asctl()
        .args([
            "plan",
            "tests/fixtures/broken/wrong-type.yaml",
            "--detailed-exitcode",
            "--endpoint",
            &nowhere,
        ])
        .arg("--state-dir")
        .arg(&state)
        .assert()
        .code(1);
}

/// A FIFO named like a configuration file, in a directory or given
/// directly, is never opened (opening it would wait for a writer forever):
/// it is a finding with its rule ID at the FIFO's path, and the regular
/// files beside it are still read.
#[test]
fn a_fifo_named_yaml_is_a_finding_not_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        "examples/quickstart/domain.yaml",
        dir.path().join("domain.yaml"),
    )
    .unwrap();
    let fifo = dir.path().join("pipe.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let at = format!("{}:1:1", fifo.display());
    for target in [dir.path(), fifo.as_path()] {
        let out = asctl()
            .arg("validate")
            .arg(target)
            .timeout(std::time::Duration::from_secs(20))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(stdout.contains("AS0020"), "{stdout}");
        assert!(stdout.contains(&at), "{stdout}");
        assert!(stdout.contains("not a regular file (a FIFO)"), "{stdout}");
    }
    // The files beside it are still read: a broken one is reported too.
    std::fs::write(dir.path().join("broken.yaml"), "a: [\n").unwrap();
    let out = asctl()
        .arg("validate")
        .arg(dir.path())
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("AS0020") && stdout.contains("AS0001"),
        "{stdout}"
    );
    asctl()
        .arg("plan")
        .arg(dir.path())
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .failure()
        .stderr(predicate::str::contains("AS0020"))
        .stderr(predicate::str::contains("nothing is planned"));
}

/// An I/O error says its cause once, not once per level of the chain.
#[test]
fn an_io_error_names_its_cause_once() {
    let out = asctl()
        .args(["validate", "examples/quickstart/domain.yaml/x.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(
        stderr.matches("Not a directory").count(),
        1,
        "one cause: {stderr}"
    );
}
