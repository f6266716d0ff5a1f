//! Shell and CI conventions of the binary: completions, man pages (the
//! committed docs/man/ must match the binary), colour, JUnit, one version
//! key in every JSON output, and one error style.

use assert_cmd::Command;
use predicates::prelude::*;

fn asctl() -> Command {
    Command::cargo_bin("asctl").unwrap()
}

#[test]
fn completions_are_printed_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _asctl"),
        ("zsh", "#compdef asctl"),
        ("fish", "complete -c asctl"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        asctl()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains(marker))
            .stdout(predicate::str::contains("validate"));
    }
}

/// docs/man/ holds what `asctl man --out docs/man` writes; regenerate it
/// with that command when the command line changes.
#[test]
fn committed_man_pages_are_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    asctl()
        .args(["man", "--out"])
        .arg(dir.path())
        .assert()
        .success();
    let mut generated: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    generated.sort();
    assert!(generated.contains(&"asctl.1".to_owned()));
    assert!(generated.contains(&"asctl-validate.1".to_owned()));
    let mut stale = Vec::new();
    for name in &generated {
        let fresh = std::fs::read(dir.path().join(name)).unwrap();
        match std::fs::read(format!("docs/man/{name}")) {
            Ok(committed) if committed == fresh => {}
            _ => stale.push(name.clone()),
        }
    }
    let mut committed: Vec<String> = std::fs::read_dir("docs/man")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    committed.sort();
    assert!(
        stale.is_empty() && committed == generated,
        "docs/man is stale ({stale:?}): run `cargo run -- man --out docs/man`"
    );
}

#[test]
fn colour_follows_the_flag_and_no_color() {
    let args = ["validate", "tests/fixtures/broken/wrong-type.yaml"];
    let esc = predicate::str::contains("\u{1b}[");
    asctl()
        .args(["--color", "always"])
        .args(args)
        .assert()
        .code(1)
        .stdout(esc.clone());
    // Not a terminal (a pipe): no colour by default.
    asctl()
        .args(args)
        .assert()
        .code(1)
        .stdout(esc.clone().not());
    asctl()
        .args(["--color", "never"])
        .args(args)
        .assert()
        .code(1)
        .stdout(esc.clone().not());
    asctl()
        .env("NO_COLOR", "1")
        .args(args)
        .assert()
        .code(1)
        .stdout(esc.not());
}

#[test]
fn junit_has_a_test_case_per_file_and_a_failure_per_error() {
    let out = asctl()
        .args([
            "validate",
            "--format",
            "junit",
            "tests/fixtures/multi-fault",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let xml = String::from_utf8(out).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    assert!(
        xml.contains("<testsuite name=\"asctl validate\" tests=\"4\" failures=\"4\""),
        "{xml}"
    );
    assert_eq!(xml.matches("<testcase ").count(), 4);
    assert_eq!(xml.matches("<failure ").count(), 9, "{xml}");
    assert!(xml.contains("type=\"AS0009\" message=\"unknown field `failbak` in `spec`\""));
    assert!(xml.contains("<system-out>"), "warnings are listed");
    // Clean files pass.
    asctl()
        .args(["validate", "--format", "junit", "examples/quickstart"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("failures=\"0\""))
        .stdout(predicate::str::contains("<failure").not());
}

#[test]
fn short_and_long_help_describe_the_same_tool() {
    let short = asctl().arg("-h").output().unwrap().stdout;
    let long = asctl().arg("--help").output().unwrap().stdout;
    let first = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .next()
            .unwrap()
            .trim_end_matches('.')
            .to_owned()
    };
    assert_eq!(first(&short), first(&long));
    assert!(String::from_utf8_lossy(&long).contains("--color <WHEN>"));
}

fn yaml_root(path: &str) -> asctl::load::yaml::Node<'static> {
    let text = std::fs::read_to_string(path).unwrap();
    let parsed = asctl::load::yaml::parse(&text);
    assert!(parsed.problems.is_empty(), "{path} parses");
    parsed.documents[0].root.clone().unwrap().into_owned()
}

/// The per-file hook runs `--file-only`: a file of a domain, alone, passes.
#[test]
fn the_pre_commit_hook_checks_files_alone() {
    let hooks = yaml_root(".pre-commit-hooks.yaml").to_json();
    let hook = &hooks[0];
    assert_eq!(hook["id"], "asctl-validate");
    let entry: Vec<&str> = hook["entry"].as_str().unwrap().split(' ').collect();
    assert_eq!(entry[..2], ["asctl", "validate"]);
    asctl()
        .args(&entry[1..])
        .args([
            "examples/standby-host/groups.yaml",
            "examples/standby-host/nodes.yaml",
        ])
        .assert()
        .success();
}

/// The action validates to SARIF and uploads it, and fails on errors.
#[test]
fn the_github_action_uploads_sarif() {
    let action = yaml_root("action.yml").to_json();
    assert_eq!(action["runs"]["using"], "composite");
    let steps = action["runs"]["steps"].as_array().unwrap();
    let run = steps[1]["run"].as_str().unwrap();
    assert!(run.contains("asctl validate --format sarif"));
    assert!(steps.iter().any(|s| {
        s["uses"]
            .as_str()
            .is_some_and(|u| u.starts_with("github/codeql-action/upload-sarif"))
    }));
}

/// One error style: whatever refuses — clap, a missing path, a saved plan
/// this build cannot read, a domain that does not answer, a saved plan that
/// no longer matches the domain (its text: `error: ... nothing was
/// applied`, the same `eprintln!` style as the others; reaching it needs a
/// live domain, `tests/live/domain.rs`) — stderr starts with `error: `,
/// never Rust's default `Error: ` of a `main` returning `Result`.
#[test]
fn every_refusal_starts_with_lowercase_error() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("plan.json");
    std::fs::write(&saved, r#"{"formatVersion": 99, "baseGeneration": 1}"#).unwrap();
    let saved = saved.to_str().unwrap().to_owned();
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let cases: &[&[&str]] = &[
        &["validate", "--no-such-flag"],
        &["validate", "no/such/path.yaml"],
        &["apply", &saved, "--auto-approve"],
        &[
            "apply",
            "examples/quickstart",
            "--auto-approve",
            "--endpoint",
            &nowhere,
            "--state-dir",
            state,
        ],
    ];
    for args in cases {
        let out = asctl().args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("Error: "), "{args:?}: {stderr}");
    }
}

/// A report piped into a reader that has gone (`asctl rules | head -1`)
/// ends quietly by SIGPIPE, as Unix filters do, not with a panic about a
/// broken pipe.
#[test]
fn a_report_whose_reader_has_gone_ends_without_a_panic() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::ExitStatusExt;

    for args in [
        &["rules", "--format", "json"][..],
        &["schema"],
        &["validate", "examples/"],
    ] {
        let mut fds = [0; 2];
        // SAFETY: pipe(2) fills two descriptors that we then own.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both were just returned by pipe(2) and are owned here only.
        let (reader, writer) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // The reader is gone before the first byte is written.
        drop(reader);
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("asctl"))
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked"),
            "asctl {args:?} into a closed pipe: {stderr}"
        );
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "asctl {args:?} into a closed pipe should end by SIGPIPE: {:?}, {stderr}",
            out.status
        );
    }
}
