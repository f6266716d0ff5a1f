//! The domain's history and the operator's overrides on a live loopback
//! domain (the move's lifetime leaves room for the checks made while it is
//! in force on a loaded machine): `events` shows an apply (with who), overrides and a failover
//! with its cause, `--follow` prints what happens while it runs; `move
//! --for` moves a group and expires by itself, a refused move changes
//! nothing, `standby`/`unstandby` empty a node and let failback happen,
//! `clear` removes overrides. Applies and overrides carry the name of the
//! credential that asked, whatever the CLI says about itself.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{ASCTL, LiveDomain, Owned, text};

const LONG: Duration = Duration::from_secs(60);

/// `asctl ARGS --state-dir STATE` saying it is `ops-test` (`ASCTL_BY`).
fn asctl_as(d: &LiveDomain, args: &[&str]) -> Output {
    asctl_with(d, args, "ops-test", None)
}

/// `asctl ARGS --state-dir STATE` with the note `by` (`ASCTL_BY`), and
/// `token` instead of the state directory's when given.
fn asctl_with(d: &LiveDomain, args: &[&str], by: &str, token: Option<&str>) -> Output {
    let mut cmd = Command::new(ASCTL);
    cmd.args(args).arg("--state-dir").arg(&d.state);
    if let Some(t) = token {
        cmd.arg("--token").arg(t);
    }
    cmd.env("ASCTL_BY", by)
        .stdin(Stdio::null())
        .output()
        .expect("asctl")
}

fn node_of(d: &LiveDomain, group: &str) -> Option<String> {
    let s = d.status_json()?;
    Some(s["placement"][group]["node"].as_str()?.to_owned())
}

fn wait_on(d: &LiveDomain, group: &str, node: &str) {
    d.eventually(&format!("{group} placed on {node}"), LONG, || {
        (node_of(d, group).as_deref() == Some(node)).then_some(())
    });
}

fn overrides(d: &LiveDomain) -> Value {
    d.status_json().expect("status")["overrides"].clone()
}

fn events(d: &LiveDomain, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["events", "--format", "json"];
    all.extend_from_slice(args);
    let out = d.asctl(&all);
    assert!(out.status.success(), "events: {}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("events json");
    assert_eq!(v["formatVersion"], 1);
    v["events"].as_array().expect("events").clone()
}

fn has(events: &[Value], kind: &str, detail: &str) -> bool {
    events
        .iter()
        .any(|e| e["kind"] == kind && e["detail"].as_str().is_some_and(|d| d.contains(detail)))
}

#[test]
fn events_and_overrides_on_a_live_domain() {
    let mut d = LiveDomain::prepare();
    d.start();
    let cfg = d.config.to_string_lossy().into_owned();
    let out = asctl_as(&d, &["apply", &cfg, "--auto-approve", "--timeout", "60s"]);
    assert!(
        out.status.success(),
        "apply: {}\n{}",
        text(&out),
        d.agent_logs()
    );
    wait_on(&d, "web", "node1");

    // Follow the history from now on, in the background.
    let follow_out = d.dir.path().join("follow.jsonl");
    let mut follow = Owned(Some(
        Command::new(ASCTL)
            .args(["events", "--follow", "--format", "json", "--group", "web"])
            .arg("--state-dir")
            .arg(&d.state)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&follow_out).expect("follow output"))
            .stderr(Stdio::null())
            .spawn()
            .expect("asctl events --follow"),
    ));
    std::thread::sleep(Duration::from_secs(1));

    // A move with a lifetime: there at once, back by itself.
    let out = asctl_as(&d, &["move", "web", "node3", "--for", "6s"]);
    assert!(out.status.success(), "move: {}", text(&out));
    assert!(
        text(&out).contains("Override in force: web to node3 (until "),
        "{}",
        text(&out)
    );
    wait_on(&d, "web", "node3");
    let status = d.asctl(&["status"]);
    assert!(
        text(&status).contains("move web to node3, until "),
        "status shows the override: {}",
        text(&status)
    );
    let plan = d.asctl(&["plan", &cfg]);
    assert!(
        text(&plan).contains("move web to node3"),
        "plan shows it: {}",
        text(&plan)
    );
    let plan = d.asctl(&["plan", &cfg, "--format", "json"]);
    let plan: Value = serde_json::from_slice(&plan.stdout).expect("plan json");
    assert_eq!(plan["overrides"]["moves"]["web"]["node"], "node3");
    assert_eq!(plan["placement"]["web"]["node"], "node3");
    wait_on(&d, "web", "node1");
    d.eventually("the expired move to be removed", LONG, || {
        overrides(&d).is_null().then_some(())
    });

    // A refused move changes nothing: batch runs on node3 or node1 only.
    let before = d.status_json().expect("status")["placement"].clone();
    let out = asctl_as(&d, &["move", "batch", "node2"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("node2 is not one of batch's preferred nodes"),
        "{}",
        text(&out)
    );
    let after = d.status_json().expect("status");
    assert_eq!(after["placement"], before);
    assert!(after["overrides"].is_null());

    // Standby empties node1; unstandby lets web (failback: auto) come home.
    let out = asctl_as(&d, &["standby", "node1"]);
    assert!(out.status.success(), "standby: {}", text(&out));
    wait_on(&d, "web", "node2");
    d.eventually("node1 emptied", LONG, || {
        let s = d.status_json()?;
        let p = s["placement"].as_object()?.clone();
        p.values().all(|g| g["node"] != "node1").then_some(())
    });
    let out = asctl_as(&d, &["unstandby", "node1"]);
    assert!(out.status.success(), "unstandby: {}", text(&out));
    wait_on(&d, "web", "node1");

    // `clear` ends a move without a lifetime, and `clear --overrides` all.
    let out = asctl_as(&d, &["move", "web", "node2"]);
    assert!(out.status.success(), "{}", text(&out));
    wait_on(&d, "web", "node2");
    let out = asctl_as(&d, &["standby", "node3", "--for", "1h"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = asctl_as(&d, &["clear", "web"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Ended the override: move web to node2"),
        "{}",
        text(&out)
    );
    wait_on(&d, "web", "node1");
    assert!(overrides(&d)["standby"]["node3"].is_object());
    let out = asctl_as(&d, &["clear", "--overrides"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(overrides(&d).is_null());

    // A node lost: api (on node2) fails over, with the cause.
    wait_on(&d, "api", "node2");
    d.kill_node("node2");
    wait_on(&d, "api", "node3");

    let all = events(&d, &[]);
    let apply = all
        .iter()
        .find(|e| e["kind"] == "apply")
        .expect("an apply event");
    assert_eq!(apply["detail"], "generation 1 applied");
    // Who: the credential's name (the state directory's bare token is
    // `admin`), with what the CLI said about itself as the note.
    assert_eq!(apply["by"], "admin");
    assert_eq!(apply["note"], "ops-test");
    assert!(apply["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(
        has(&all, "override", "move web to node3 for 6s"),
        "{all:#?}"
    );
    assert!(
        has(&all, "override", "move web to node3: expired"),
        "{all:#?}"
    );
    assert!(
        has(&all, "override", "standby node1 until cleared"),
        "{all:#?}"
    );
    assert!(
        has(&all, "override", "move web to node2: cleared"),
        "{all:#?}"
    );
    assert!(
        has(
            &all,
            "moved",
            "web moved from node1 to node3: moved by an operator"
        ),
        "{all:#?}"
    );
    assert!(has(&all, "nodeLost", "node2 lost: "), "{all:#?}");
    assert!(
        has(
            &all,
            "failover",
            "api failed over from node2 to node3: node2 was lost"
        ),
        "{all:#?}"
    );
    let by_override = all
        .iter()
        .find(|e| e["kind"] == "override")
        .expect("override");
    assert_eq!(by_override["by"], "admin");
    assert_eq!(by_override["note"], "ops-test");
    // Filters: --group and --node.
    let web = events(&d, &["--group", "web"]);
    assert!(
        !web.is_empty() && web.iter().all(|e| e["group"] == "web"),
        "{web:#?}"
    );
    let node2 = events(&d, &["--node", "node2"]);
    assert!(has(&node2, "nodeLost", "node2 lost"), "{node2:#?}");
    let human = d.asctl(&["events", "--since", "10m"]);
    assert!(
        text(&human).contains("(by admin: ops-test)"),
        "{}",
        text(&human)
    );

    // --follow printed what happened to web while it ran, and stops on
    // Ctrl-C with status 0.
    follow.signal(libc::SIGINT);
    let status = follow
        .wait(Duration::from_secs(10))
        .expect("follow stops on Ctrl-C");
    assert!(status.success(), "{status:?}");
    let followed = std::fs::read_to_string(&follow_out).expect("follow output");
    let lines: Vec<Value> = followed
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    assert!(
        has(&lines, "override", "move web to node3 for 6s"),
        "{followed}"
    );
    assert!(lines.iter().all(|e| e["group"] == "web"), "{followed}");
    d.stop();
}

/// A credentials file with a named credential beside the domain's own: what
/// alice applies and overrides is hers in the history, whatever she says
/// about herself (`ASCTL_BY` is only a note); a token no credential has is
/// refused.
#[test]
fn the_history_names_the_credential_that_asked() {
    let mut d = LiveDomain::prepare();
    let token_file = d.state.join("token");
    let mut creds = std::fs::read_to_string(&token_file).expect("token");
    creds.push_str("alice: alice-s3cret-token\n");
    std::fs::write(&token_file, creds).expect("token");
    d.start();
    let cfg = d.config.to_string_lossy().into_owned();
    let alice = Some("alice-s3cret-token");
    let out = asctl_with(
        &d,
        &["apply", &cfg, "--auto-approve", "--timeout", "60s"],
        "bob",
        alice,
    );
    assert!(
        out.status.success(),
        "apply: {}\n{}",
        text(&out),
        d.agent_logs()
    );
    let out = asctl_with(&d, &["move", "web", "node3", "--for", "1h"], "bob", alice);
    assert!(out.status.success(), "move: {}", text(&out));
    let out = asctl_as(&d, &["clear", "--overrides"]);
    assert!(out.status.success(), "clear: {}", text(&out));
    let out = asctl_with(&d, &["status"], "mallory", Some("not-a-credential"));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("401"), "{}", text(&out));

    // Any member answers, and one may not have applied the last commands
    // yet: wait until it has all three.
    let wanted = [
        ("apply", "generation 1 applied"),
        ("override", "move web to node3 for 1h"),
        ("override", "move web to node3: cleared"),
    ];
    let found = d.eventually("the three events", LONG, || {
        let all = events(&d, &[]);
        let find = |(kind, detail): (&str, &str)| {
            all.iter()
                .find(|e| {
                    e["kind"] == kind && e["detail"].as_str().is_some_and(|t| t.contains(detail))
                })
                .map(|e| (e["by"].clone(), e["note"].clone()))
        };
        wanted.into_iter().map(find).collect::<Option<Vec<_>>>()
    });
    let who = |by: &str, note: &str| (Value::from(by), Value::from(note));
    assert_eq!(
        found,
        vec![
            who("alice", "bob"),
            who("alice", "bob"),
            who("admin", "ops-test")
        ]
    );
    d.stop();
}
