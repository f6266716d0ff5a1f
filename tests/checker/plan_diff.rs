//! The plan: object and field diffs, runtime actions from `place()`, secret
//! masking, renderings (insta snapshots). Built on `examples/quickstart`,
//! the domain of the README; its helpers serve `plan_saved.rs` too.

use std::collections::BTreeMap;
use std::path::Path;

use asctl::load::load_texts;
use asctl::model::{Config, Name};
use asctl::plan::{
    Action, GroupPlacement, Health, LiveState, NodeState, Op, Plan, SENSITIVE, SavedPlan, place,
    render_human, render_json,
};
use asctl::rules::validate;

pub(crate) type Files = BTreeMap<String, String>;

pub(crate) fn quickstart() -> Files {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let mut files = Files::new();
    for entry in std::fs::read_dir(&dir).expect("examples/quickstart") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            files.insert(name, std::fs::read_to_string(&path).expect("readable"));
        }
    }
    files
}

/// Loads and validates: the plan is only ever computed for valid configs.
pub(crate) fn config(files: &Files) -> Config {
    let loaded = load_texts(files.iter().map(|(n, t)| (n.as_str(), t.as_bytes())));
    let v = validate(loaded);
    assert!(
        !v.has_errors(),
        "invalid test configuration: {:#?}",
        v.findings
    );
    v.loaded.config
}

pub(crate) fn edit(files: &mut Files, file: &str, from: &str, to: &str) {
    let text = files.get_mut(file).expect("file exists");
    assert!(text.contains(from), "{file} does not contain {from:?}");
    *text = text.replacen(from, to, 1);
}

pub(crate) fn name(s: &str) -> Name {
    s.parse().expect("valid name")
}

pub(crate) fn health(states: &[(&str, NodeState)]) -> Health {
    states.iter().map(|(n, s)| (name(n), *s)).collect()
}

pub(crate) fn all_up() -> Health {
    health(&[
        ("node1", NodeState::Up),
        ("node2", NodeState::Up),
        ("node3", NodeState::Up),
    ])
}

/// The quickstart applied at generation 3 and converged.
pub(crate) fn live() -> LiveState {
    let cfg = config(&quickstart());
    let health = all_up();
    let placement = place(&cfg, &health, &BTreeMap::new());
    LiveState {
        generation: 3,
        config: Some(cfg),
        placement,
        health,
        ..LiveState::default()
    }
}

fn action_lines(plan: &Plan) -> Vec<String> {
    plan.actions.iter().map(ToString::to_string).collect()
}

#[test]
fn same_config_is_an_empty_plan() {
    let live = live();
    let plan = Plan::compute(&config(&quickstart()), &live);
    assert!(plan.is_empty());
    assert!(
        plan.actions.iter().all(|a| !a.is_change()),
        "{:?}",
        plan.actions
    );
    assert_eq!(plan.placement, live.placement);
    assert_eq!(
        render_human(&plan),
        "No changes. The domain matches the configuration.\n"
    );
}

#[test]
fn reformatting_the_yaml_is_not_a_change() {
    let mut files = quickstart();
    // Flow style, defaults written out, a comment: same configuration.
    edit(
        &mut files,
        "group-batch.yaml",
        "preferredNodes: [node3, node1]",
        "preferredNodes:\n    - node3 # home\n    - node1\n  failback: manual",
    );
    let plan = Plan::compute(&config(&files), &live());
    assert!(plan.is_empty(), "{}", render_human(&plan));
}

#[test]
fn command_change_is_one_field_and_a_restart() {
    let mut files = quickstart();
    edit(
        &mut files,
        "group-web.yaml",
        "\"--port\", \"8081\"]",
        "\"--port\", \"9081\"]",
    );
    let plan = Plan::compute(&config(&files), &live());

    assert_eq!(plan.changes.len(), 1);
    let change = &plan.changes[0];
    assert_eq!(change.address(), "ResourceGroup/web");
    assert_eq!(change.op, Op::Update);
    let paths: Vec<&str> = change.fields.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["spec.processes[0].command"]);

    let actions = action_lines(&plan);
    assert!(
        actions.contains(&"group web: restart on node1 (process command changed: server)".into()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"group api: stays on node2".into()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"group batch: stays on node3".into()),
        "{actions:?}"
    );
    assert_eq!(plan.summary().change, 1);

    insta::assert_snapshot!("command_change_human", render_human(&plan));
    insta::assert_snapshot!("command_change_json", render_json(&plan));
}

#[test]
fn env_values_are_masked_everywhere() {
    let mut files = quickstart();
    edit(
        &mut files,
        "group-api.yaml",
        "GREETING: hello",
        "GREETING: s3cr3t-value\n        TOKEN: t0ken-value",
    );
    let desired = config(&files);

    let update = Plan::compute(&desired, &live());
    let first_apply = Plan::compute(
        &desired,
        &LiveState {
            health: all_up(),
            ..LiveState::default()
        },
    );
    for plan in [&update, &first_apply] {
        let saved = SavedPlan::new(plan.clone(), &desired, &live());
        let saved_plan_part = serde_json::to_string(&saved.plan).expect("serialisable");
        for text in [render_human(plan), render_json(plan), saved_plan_part] {
            for secret in ["hello", "s3cr3t", "t0ken"] {
                assert!(!text.contains(secret), "{secret} leaked in:\n{text}");
            }
            assert!(text.contains(SENSITIVE), "no mask in:\n{text}");
        }
    }
    let fields: Vec<(&str, bool)> = update.changes[0]
        .fields
        .iter()
        .map(|f| (f.path.as_str(), f.sensitive))
        .collect();
    assert_eq!(
        fields,
        [
            ("spec.processes[0].env.GREETING", true),
            ("spec.processes[0].env.TOKEN", true)
        ]
    );
    // The variable names are not secret, and the restart says why.
    assert!(
        action_lines(&update)
            .contains(&"group api: restart on node2 (process environment changed: server)".into())
    );
    insta::assert_snapshot!("env_change_human", render_human(&update));
}

#[test]
fn first_apply_creates_everything_and_starts_every_group_at_home() {
    let empty = LiveState {
        health: all_up(),
        ..LiveState::default()
    };
    let plan = Plan::compute(&config(&quickstart()), &empty);
    assert!(plan.changes.iter().all(|c| c.op == Op::Create));
    assert_eq!(plan.summary().add, plan.changes.len());
    assert_eq!(
        action_lines(&plan),
        [
            "group api: start on node2 (new group)",
            "group batch: start on node3 (new group)",
            "group web: start on node1 (new group)",
        ]
    );
    // Not a snapshot: the create listing of every kind follows the model,
    // which grows; the format of created objects is pinned by the failover
    // snapshot below.
    let human = render_human(&plan);
    assert!(human.contains("\n  + ResourceGroup/web\n"), "{human}");
    assert!(
        human.contains("\n      + spec.processes[0].env.GREETING = (sensitive)\n"),
        "{human}"
    );
    assert!(!human.contains("forces replacement"), "{human}");
    assert!(
        human.ends_with("\nPlan: 10 to add, 0 to change, 0 to destroy.\n"),
        "{human}"
    );
}

/// Values too long for one line are shown as a line diff (the `similar`
/// crate), so the one argument that changed stands out.
#[test]
fn long_values_render_as_a_line_diff() {
    let mut files = quickstart();
    edit(
        &mut files,
        "group-batch.yaml",
        "command: [\"asctl\", \"demo-server\", \"--port\", \"8083\"]",
        "command: [\"asctl\", \"demo-server\", \"--port\", \"8083\", \"--name\", \"a-rather-long-worker-name\", \"--verbose\"]",
    );
    let live = live();
    let base = render_human(&Plan::compute(&config(&files), &live));
    assert!(base.contains("spec.processes[0].command:\n"), "{base}");
    insta::assert_snapshot!("long_value_human", base);
}

/// Only placement fields change: no restart, and with `failback: auto` the
/// group moves because of the new order.
#[test]
fn placement_fields_do_not_restart() {
    let mut files = quickstart();
    edit(&mut files, "group-batch.yaml", "limit: 2", "limit: 5");
    edit(
        &mut files,
        "group-api.yaml",
        "preferredNodes: [node2, node3, node1]",
        "preferredNodes: [node3, node2, node1]",
    );
    edit(
        &mut files,
        "group-web.yaml",
        "preferredNodes: [node1, node2, node3]\n  failback: auto",
        "preferredNodes: [node2, node1, node3]\n  failback: auto",
    );
    let plan = Plan::compute(&config(&files), &live());
    assert_eq!(plan.summary().change, 3);
    assert_eq!(
        action_lines(&plan),
        [
            // failback manual: the reorder does not move api.
            "group api: stays on node2",
            "group batch: stays on node3",
            "group web: move node1 → node2 (failback auto)",
        ]
    );
}

/// A richer change against a domain where node1 is down: a group follows
/// its IP address to the next node, a group is removed, one is added, and a
/// node changes from physical to a VM (replaced).
#[test]
fn failover_removal_addition_and_replacement() {
    let base = {
        let mut f = quickstart();
        edit(
            &mut f,
            "group-web.yaml",
            "  failback: auto\n",
            "  failback: auto\n  ipAddresses:\n    - {address: 127.0.1.100/24, line: lo-a}\n",
        );
        f
    };
    let base_cfg = config(&base);
    let mut live = LiveState {
        generation: 7,
        placement: place(&base_cfg, &all_up(), &BTreeMap::new()),
        config: Some(base_cfg),
        health: health(&[
            ("node1", NodeState::Down),
            ("node2", NodeState::Up),
            ("node3", NodeState::Up),
        ]),
        ..LiveState::default()
    };
    // batch failed on node3 earlier and runs on node1, which is now down.
    live.placement.insert(
        name("batch"),
        GroupPlacement {
            node: Some(name("node1")),
            failed_on: [name("node3")].into(),
        },
    );

    let mut files = base.clone();
    files.remove("group-api.yaml");
    files.insert(
        "group-report.yaml".into(),
        "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {name: report}\n\
         spec:\n  preferredNodes: [node3]\n  processes:\n    - name: gen\n      \
         command: [\"asctl\", \"demo-server\", \"--port\", \"8084\"]\n      env: {KEY: secret-report}\n"
            .into(),
    );
    files.insert(
        "host.yaml".into(),
        "apiVersion: asctl/v1\nkind: Host\nmetadata: {name: esx1}\n\
         spec: {hypervisor: {product: esx, version: \"3.5\"}, datacenter: dc1, site: s1, nics: 4}\n"
            .into(),
    );
    edit(
        &mut files,
        "nodes.yaml",
        "physical: true\n  os: {name: linux, bits: 64}\n  platform: x64\n  agent: {address: \"127.0.0.1:7403\"}",
        "host: esx1\n  os: {name: linux, bits: 64}\n  platform: x64\n  agent: {address: \"127.0.0.1:7403\"}",
    );
    let desired = {
        let loaded = load_texts(files.iter().map(|(n, t)| (n.as_str(), t.as_bytes())));
        assert!(loaded.findings.is_empty(), "{:#?}", loaded.findings);
        loaded.config
    };
    let plan = Plan::compute(&desired, &live);

    let ops: Vec<(String, Op)> = plan.changes.iter().map(|c| (c.address(), c.op)).collect();
    assert_eq!(
        ops,
        [
            ("Host/esx1".to_string(), Op::Create),
            ("Node/node3".to_string(), Op::Replace),
            ("ResourceGroup/api".to_string(), Op::Delete),
            ("ResourceGroup/report".to_string(), Op::Create),
        ]
    );
    assert_eq!(
        action_lines(&plan),
        [
            "group api: stop on node2 (group removed)",
            "group batch: stop on node1 (no eligible node: failed on node3, node1 down)",
            "group report: start on node3 (new group)",
            "group web: move node1 → node2 (node1 is down)",
            "ip 127.0.1.100/24 moves to node2 (from node1)",
        ]
    );
    let s = plan.summary();
    assert_eq!((s.add, s.change, s.destroy), (3, 0, 2));
    insta::assert_snapshot!(
        "failover_removal_addition_replacement_human",
        render_human(&plan)
    );
}

/// A spec change clears failedOn (the operator changed something), so the
/// plan predicts the group's return to the node it had failed on.
#[test]
fn spec_change_clears_failed_on() {
    let mut live = live();
    live.placement.insert(
        name("batch"),
        GroupPlacement {
            node: Some(name("node1")),
            failed_on: [name("node3")].into(),
        },
    );
    let unchanged = Plan::compute(&config(&quickstart()), &live);
    assert_eq!(
        unchanged.placement[&name("batch")].node,
        Some(name("node1"))
    );

    let mut files = quickstart();
    edit(&mut files, "group-batch.yaml", "\"8083\"]", "\"8093\"]");
    let plan = Plan::compute(&config(&files), &live);
    let batch = &plan.placement[&name("batch")];
    assert_eq!(batch.node, Some(name("node1")), "manual failback: stays");
    assert!(batch.failed_on.is_empty());
    assert!(
        plan.actions.contains(&Action::Restart {
            group: name("batch"),
            node: name("node1"),
            reasons: vec!["process command changed: worker".into()],
        }),
        "{:?}",
        plan.actions
    );
}

#[test]
fn paths_and_replacement_fields() {
    use asctl::model::Kind;
    use asctl::plan::{diff_configs, forces_replacement};

    assert!(forces_replacement(Kind::Node, "spec.host"));
    assert!(forces_replacement(Kind::DataSource, "spec.type"));
    assert!(!forces_replacement(Kind::Node, "spec.hostname"));
    assert!(!forces_replacement(Kind::Node, "spec.os.name"));
    assert!(!forces_replacement(
        Kind::ResourceGroup,
        "spec.processes[0].command"
    ));

    // Keys that are not plain words are quoted, so the path stays unambiguous.
    let mut files = quickstart();
    edit(
        &mut files,
        "group-web.yaml",
        "  name: web\n",
        "  name: web\n  labels: {\"app.kubernetes.io/name\": web}\n",
    );
    let changes = diff_configs(live().config.as_ref(), &config(&files));
    let paths: Vec<&str> = changes[0].fields.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, [r#"metadata.labels["app.kubernetes.io/name"]"#]);
    // Labels are not runtime: no restart.
    let plan = Plan::compute(&config(&files), &live());
    assert!(
        plan.actions.iter().all(|a| !a.is_change()),
        "{:?}",
        plan.actions
    );
}

/// The declared overrides: `state: offline` stops a group without a
/// restart reason, `standby: true` moves the groups off a node, and the plan
/// says why; taking the group online again starts it where it was placed.
#[test]
fn declared_overrides_stop_and_drain_with_their_reason() {
    let mut files = quickstart();
    edit(
        &mut files,
        "group-batch.yaml",
        "preferredNodes:",
        "state: offline\n  preferredNodes:",
    );
    edit(
        &mut files,
        "nodes.yaml",
        "  physical: true\n",
        "  physical: true\n  standby: true\n",
    );
    let plan = Plan::compute(&config(&files), &live());
    assert_eq!(plan.summary().change, 2);
    assert_eq!(
        action_lines(&plan),
        [
            "group api: stays on node2",
            "group batch: stop on node3 (state: offline)",
            "group web: move node1 → node2 (node1 is on standby)",
        ]
    );
    let human = render_human(&plan);
    assert!(human.contains("+ spec.state = \"offline\""), "{human}");
    assert!(human.contains("+ spec.standby = true"), "{human}");

    // Back online: batch starts again at home; no restart elsewhere.
    let offline = config(&files);
    let live = LiveState {
        generation: 4,
        placement: place(&offline, &all_up(), &live().placement),
        config: Some(offline),
        health: all_up(),
        ..LiveState::default()
    };
    assert_eq!(live.placement[&name("batch")].node, None);
    let plan = Plan::compute(&config(&quickstart()), &live);
    assert!(
        action_lines(&plan).contains(&"group batch: start on node3 (was offline)".to_owned()),
        "{:?}",
        action_lines(&plan)
    );
}
