//! `asctl simulate`: the what-if placement and the N+1 check, run through the
//! real binary on the examples and on fixtures that are not N+1.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn asctl() -> Command {
    Command::cargo_bin("asctl").unwrap()
}

fn json(args: &[&str]) -> (i32, Value) {
    let out = asctl()
        .arg("simulate")
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap(), v)
}

/// The seed's standby host: every physical machine fails over to its own VM.
#[test]
fn the_standby_host_example_is_n_plus_one() {
    asctl()
        .args(["simulate", "examples/standby-host", "--each-node"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "phys1    lost  print: phys1 → standby1",
        ))
        .stdout(predicate::str::contains("standby1 lost  nothing moves"))
        .stdout(predicate::str::contains(
            "N+1: losing any single node leaves every group a supported node.",
        ));
    let (code, v) = json(&["examples/standby-host", "--each-node"]);
    assert_eq!(code, 0);
    assert_eq!(v["nPlusOne"], true);
    assert_eq!(v["eachNode"].as_array().unwrap().len(), 6);
    assert_eq!(v["placement"]["sql"]["node"], "phys3");
}

/// A group with one preferred node has nowhere to go when it is lost.
#[test]
fn a_group_with_one_node_is_not_n_plus_one() {
    let path = "tests/fixtures/simulate/single-node-group.yaml";
    asctl()
        .args(["simulate", path, "--each-node"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "node3 lost  report: node3 → (no node)",
        ))
        .stdout(predicate::str::contains(
            "error: not N+1: losing node3 leaves report without a supported node",
        ))
        .stdout(predicate::str::contains("losing node1").not());
    let (code, v) = json(&[path, "--each-node"]);
    assert_eq!(code, 1);
    assert_eq!(v["nPlusOne"], false);
    let node3 = &v["eachNode"][2];
    assert_eq!(node3["node"], "node3");
    assert_eq!(node3["moves"][0]["group"], "report");
    assert_eq!(node3["moves"][0]["to"], Value::Null);
}

/// A failover the compatibility tables do not support counts as no node,
/// even when the Domain accepted the error to validate.
#[test]
fn an_unsupported_failover_is_not_n_plus_one() {
    let path = "tests/fixtures/simulate/unsupported-failover.yaml";
    asctl().args(["validate", path]).assert().code(0);
    asctl()
        .args(["simulate", path, "--each-node"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "sql1 lost  sql: sql1 → sql2  UNSUPPORTED: sharedDisk `sql-disk` (vmfs) (phy-vm): \
             Table 3, row \"VMFS\", column \"PHY<=>VM\" says no",
        ));
    let (_, v) = json(&[path, "--each-node"]);
    let moved = &v["eachNode"][0]["moves"][0];
    assert_eq!(moved["to"], "sql2");
    assert!(moved["unsupported"].as_str().unwrap().contains("Table 3"));
}

/// `--fail` places from the all-up placement, as the leader would after the
/// failures; a group left without a node exits 1.
#[test]
fn failed_nodes_move_their_groups() {
    asctl()
        .args(["simulate", "examples/quickstart", "--fail", "node1"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("With node1 failed:"))
        .stdout(predicate::str::contains("web    node2  (from node1)"));
    let (code, v) = json(&[
        "tests/fixtures/simulate/single-node-group.yaml",
        "--fail",
        "node3",
    ]);
    assert_eq!(code, 1);
    assert_eq!(v["homeless"], serde_json::json!(["report"]));
    assert_eq!(v["failed"], serde_json::json!(["node3"]));
}

#[test]
fn an_unknown_node_is_a_usage_error() {
    asctl()
        .args(["simulate", "examples/quickstart", "--fail", "node9"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the configuration has no node `node9`",
        ));
}

/// A node on standby takes nothing, and a group declared offline is not a
/// lack of capacity.
#[test]
fn declared_overrides_count_in_the_simulation() {
    let path = "tests/fixtures/simulate/overrides.yaml";
    asctl()
        .args(["simulate", path, "--each-node"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "report  (offline: state: offline)",
        ))
        .stdout(predicate::str::contains("node1 lost  web: node1 → node3"))
        .stdout(predicate::str::contains("N+1: losing any single node"));
    let (code, v) = json(&[path, "--fail", "node1"]);
    assert_eq!(code, 0);
    assert_eq!(v["placement"]["web"]["node"], "node3");
    assert_eq!(v["placement"]["report"]["node"], Value::Null);
    assert_eq!(v["homeless"], serde_json::json!([]));
    assert_eq!(v["declaredOffline"], serde_json::json!(["report"]));
}
