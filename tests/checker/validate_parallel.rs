//! `validate` reads and parses files on every core: its report must not
//! depend on how many threads did the work, nor on which file a thread
//! finished first.

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

const NODES: usize = 120;

/// Two domains of `NODES` node files each, and a file alone: valid files,
/// multi-document files, unknown fields (named after their file, so that a
/// finding shown in the wrong file is seen), syntax errors, wrong types,
/// and names defined in two files ("first defined here" depends on order).
fn write_tree(root: &Path) {
    for domain in ["alpha", "beta"] {
        let dir = root.join(domain).join("nodes");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            root.join(domain).join("domain.yaml"),
            format!(
                "apiVersion: asctl/v1\nkind: Domain\nmetadata: {{name: {domain}}}\nspec:\n  qualification: generic\n  heartbeat: {{interval: 1s, timeout: 1s}}\n"
            ),
        )
        .unwrap();
        for i in 0..NODES {
            let node = |name: usize, spec: &str| {
                format!(
                    "apiVersion: asctl/v1\nkind: Node\nmetadata: {{name: n{name}}}\nspec: {spec}\n"
                )
            };
            let text = match i % 6 {
                0 => format!(
                    "{}---\n{}",
                    node(i, "{physical: true}"),
                    node(i + 1, "{physical: true}")
                ),
                1 => node(i, &format!("{{physical: true, bogus{i}: 1}}")),
                2 => "apiVersion: asctl/v1\nkind: Node\nspec: {physical: true\n".to_owned(),
                3 => node(i, "{physical: maybe}"),
                _ => node(i, "{physical: true}"),
            };
            std::fs::write(dir.join(format!("n{i:03}.yaml")), text).unwrap();
        }
    }
    std::fs::write(
        root.join("stray.yaml"),
        "apiVersion: asctl/v1\nkind: Node\nmetadata: {name: stray}\nspec: {physical: true, bogusStray: 1}\n",
    )
    .unwrap();
}

fn validate(threads: usize, format: &str, args: &[&Path]) -> Vec<u8> {
    let out = Command::cargo_bin("asctl")
        .unwrap()
        .env("RAYON_NUM_THREADS", threads.to_string())
        .args(["validate", "--format", format])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn the_report_is_the_same_on_one_thread_and_on_several() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path());
    // A file named before its directory is read where it first appears:
    // the files after its second appearance move up by one.
    let first = dir.path().join("beta/nodes/n007.yaml");
    let args = [first.as_path(), dir.path()];
    for format in ["json", "human", "sarif"] {
        let sequential = validate(1, format, &args);
        assert!(!sequential.is_empty());
        for threads in [2, 3, 8] {
            let parallel = validate(threads, format, &args);
            assert!(
                sequential == parallel,
                "{format} on {threads} threads differs from one thread:\n{}\n---\n{}",
                String::from_utf8_lossy(&sequential),
                String::from_utf8_lossy(&parallel)
            );
        }
    }
}

#[test]
fn a_file_named_twice_leaves_every_finding_in_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path());
    let first = dir.path().join("alpha/nodes/n001.yaml");
    let report: Value =
        serde_json::from_slice(&validate(2, "json", &[first.as_path(), dir.path()])).unwrap();
    assert_eq!(report["summary"]["files"], 2 * (NODES + 1) + 1);
    let mut unknown = 0;
    for f in report["findings"].as_array().unwrap() {
        if f["rule"] != "AS0009" {
            continue;
        }
        let loc = &f["location"];
        let text = std::fs::read_to_string(loc["file"].as_str().unwrap()).unwrap();
        let line = text
            .lines()
            .nth(loc["line"].as_u64().unwrap() as usize - 1)
            .unwrap();
        let (start, end) = (
            loc["column"].as_u64().unwrap(),
            loc["endColumn"].as_u64().unwrap(),
        );
        let key = &line[start as usize - 1..end as usize - 1];
        let message = f["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("`{key}`")),
            "{message} shown at `{key}` in {loc}"
        );
        unknown += 1;
    }
    // bogus1, 7, 13, … in both domains, and the stray file's.
    assert_eq!(unknown, 2 * (0..NODES).filter(|i| i % 6 == 1).count() + 1);
}
