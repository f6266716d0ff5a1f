//! `asctl up` (start, apply, stop; the built-in quickstart; the ways it
//! gives up and stops everything) and an agent's own start and stop, with
//! real agent processes on loopback.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::domain::{expected_placement, port_of};
use crate::support::{
    ASCTL, LiveDomain, Owned, alive, demo_answer, eventually, guard_pid_in, processes_mentioning,
    text,
};

const LONG: Duration = Duration::from_secs(60);

/// A group that never becomes ready: its process runs, its probe never
/// passes (nothing listens on port 1), and its start-up grace outlasts any
/// test. (One whose start fails everywhere ends `apply` early instead:
/// tests/live/readiness.rs.)
pub(super) const BROKEN_GROUP: &str = "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata:\n  name: broken\n\
spec:\n  preferredNodes: [node2, node3]\n  processes:\n    - name: server\n      \
command: [\"sleep\", \"600\"]\n      monitor:\n        startTimeout: 1h\n        \
probe: {tcp: \"127.0.0.1:1\"}\n  restart:\n    limit: 0\n    window: 5m\n";

#[test]
fn up_starts_applies_and_stops_everything() {
    let d = LiveDomain::prepare();
    let cfg = d.config.to_string_lossy().into_owned();
    let mut up = Command::new(ASCTL)
        .arg("up")
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&d.state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("asctl up");
    let expected = expected_placement(&d.config);
    for (group, node) in &expected {
        let port = port_of(&d, group);
        let answer = eventually(&format!("{group} under up"), LONG, || demo_answer(port));
        assert_eq!(&answer, node);
    }
    // A second terminal finds the credentials in the state directory.
    let out = d.asctl(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("generation 1"),
        "{}",
        text(&out)
    );

    unsafe {
        libc::kill(up.id() as i32, libc::SIGINT);
    }
    let status = eventually("up to exit", LONG, || up.try_wait().ok().flatten());
    let output = up.wait_with_output().expect("output");
    assert!(status.success(), "{}", text(&output));
    for p in d.ports.demo {
        eventually("no stray demo server", LONG, || {
            demo_answer(p).is_none().then_some(())
        });
    }
    for p in d.ports.agents {
        eventually("no stray agent", LONG, || {
            std::net::TcpStream::connect(("127.0.0.1", p))
                .is_err()
                .then_some(())
        });
    }
}

/// The log of `node`'s agent in `d`'s state directory, without colours.
fn agent_log(d: &LiveDomain, node: &str) -> String {
    crate::support::log_text(&d.state.join("nodes").join(node).join("agent.log"))
}

fn spawn_logged(cmd: &mut Command, log: &std::path::Path) -> Owned {
    let out = std::fs::File::create(log).expect("log");
    Owned(Some(
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("spawn"),
    ))
}

#[test]
fn sigterm_during_the_start_up_wait_stops_the_agent_cleanly() {
    let d = LiveDomain::prepare();
    // node1 alone: without a majority there is no leader, so the agent
    // stays in its start-up catch-up wait (12 s here) after starting its
    // lease guard, before it ever waits for a signal.
    let nd = d.state.join("nodes/node1");
    let mut agent = spawn_logged(
        Command::new(ASCTL)
            .arg("agent")
            .arg("--config")
            .arg(nd.join("agent.yaml")),
        &nd.join("agent.log"),
    );
    let guard_pid: i32 = eventually("the lease guard to start", LONG, || {
        guard_pid_in(&agent_log(&d, "node1"))
    });
    assert!(
        !agent_log(&d, "node1").contains("starting the reconciler"),
        "still in the start-up wait"
    );
    agent.signal(libc::SIGTERM);
    let status = agent.wait(LONG).expect("the agent exits");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        (status.code(), status.signal()),
        (Some(0), None),
        "a clean exit, not killed by the signal\n{}",
        agent_log(&d, "node1")
    );
    let log = agent_log(&d, "node1");
    assert!(log.contains("node1: stopped"), "{log}");
    eventually("the guard to go with the agent", LONG, || {
        (!alive(guard_pid)).then_some(())
    });
    let left = processes_mentioning(&d.state.to_string_lossy());
    assert!(left.is_empty(), "left running: {left:?}");
}

/// The built-in quickstart's fixed ports (docs/runtime.md).
const QUICKSTART_PORTS: [u16; 6] = [7401, 7402, 7403, 8081, 8082, 8083];

fn closed(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

/// `asctl` with HOME pointed at `home` and nothing else telling it where a
/// domain is: the state directory is found the way a new user's is.
fn as_new_user(home: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(ASCTL);
    c.args(args)
        .env("HOME", home)
        .env_remove("XDG_STATE_HOME")
        .env_remove("ASCTL_STATE_DIR")
        .env_remove("ASCTL_TOKEN")
        .current_dir(home);
    c
}

#[test]
fn up_without_a_directory_runs_the_built_in_quickstart_from_the_default_state_dir() {
    for p in QUICKSTART_PORTS {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", p)).is_ok(),
            "port {p} is taken: this test runs the built-in quickstart, whose ports are fixed \
             (is an `asctl up` running on this machine?)"
        );
    }
    let home = tempfile::tempdir().expect("home");
    let log = home.path().join("up.log");
    let mut up = spawn_logged(&mut as_new_user(home.path(), &["up"]), &log);
    let answer = eventually("the quickstart's web group to answer", LONG, || {
        demo_answer(8081)
    });
    assert_eq!(answer, "node1");
    let state = home.path().join(".local/state/asctl/quickstart");
    assert!(state.join("domain.json").is_file(), "{}", state.display());
    assert!(
        state.join("config/group-web.yaml").is_file(),
        "the applied configuration is copied for editing"
    );
    // The copy's modeline names a schema that exists beside it.
    let web = std::fs::read_to_string(state.join("config/group-web.yaml")).expect("copy");
    assert!(
        web.starts_with("# yaml-language-server: $schema=asctl.schema.json\n"),
        "{web}"
    );
    let schema = std::fs::read_to_string(state.join("config/asctl.schema.json")).expect("schema");
    assert_eq!(
        schema.trim_end(),
        asctl::model::schema::schema_text().trim_end()
    );

    // A second terminal: no --state-dir, no token, no endpoint.
    let out = as_new_user(home.path(), &["status"])
        .stdin(Stdio::null())
        .output()
        .expect("asctl status");
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("generation 1"), "{}", text(&out));
    assert!(shown.contains("node3"), "{}", text(&out));
    let cfg = state.join("config");
    let out = as_new_user(
        home.path(),
        &["plan", &cfg.to_string_lossy(), "--detailed-exitcode"],
    )
    .stdin(Stdio::null())
    .output()
    .expect("asctl plan");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    up.signal(libc::SIGTERM);
    let status = up.wait(LONG).expect("up exits");
    assert!(status.success(), "{}", crate::support::log_text(&log));
    for p in QUICKSTART_PORTS {
        assert!(closed(p), "port {p} still served after up stopped");
    }
    let left = processes_mentioning(&home.path().to_string_lossy());
    assert!(left.is_empty(), "left running: {left:?}");

    // `up` again says it resumes that domain; `--fresh` forgets it.
    let again = as_new_user(home.path(), &["up", "--init-only"])
        .stdin(Stdio::null())
        .output()
        .expect("up --init-only");
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("Resuming the domain of"),
        "{}",
        text(&again)
    );
    assert!(state.join("nodes/node1/data").is_dir());
    let fresh = as_new_user(home.path(), &["up", "--init-only", "--fresh"])
        .stdin(Stdio::null())
        .output()
        .expect("up --init-only --fresh");
    let said = String::from_utf8_lossy(&fresh.stdout);
    assert!(fresh.status.success(), "{}", text(&fresh));
    assert!(said.contains("Starting a new domain"), "{said}");
    assert!(!said.contains("Resuming"), "{said}");
    assert!(!state.join("nodes/node1/data").exists());
    assert!(state.join("config/group-web.yaml").is_file());
}

/// Runs `asctl up CONFIG --state-dir STATE ARGS` to its end, returning its
/// exit status and output.
fn up_until_exit(d: &LiveDomain, args: &[&str]) -> (std::process::ExitStatus, String) {
    let log = d.dir.path().join("up.log");
    let mut up = spawn_logged(
        Command::new(ASCTL)
            .arg("up")
            .arg(&d.config)
            .arg("--state-dir")
            .arg(&d.state)
            .args(args),
        &log,
    );
    let Some(status) = up.wait(Duration::from_secs(180)) else {
        panic!(
            "up did not give up by itself:\n{}\n{}",
            crate::support::log_text(&log),
            d.agent_logs()
        );
    };
    (status, crate::support::log_text(&log))
}

fn nothing_left(d: &LiveDomain) {
    for p in d.ports.agents.iter().chain(&d.ports.demo) {
        assert!(closed(*p), "port {p} still served\n{}", d.agent_logs());
    }
    let left = processes_mentioning(&d.state.to_string_lossy());
    assert!(left.is_empty(), "left running: {left:?}");
}

#[test]
fn up_of_an_invalid_configuration_exits_1_and_starts_nothing() {
    let d = LiveDomain::prepare();
    std::fs::write(
        d.config.join("group-bad.yaml"),
        "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata:\n  name: bad\nspec:\n  preferredNodes: [node9]\n",
    )
    .expect("write");
    let (status, out) = up_until_exit(&d, &[]);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("node9"), "{out}");
    assert!(!out.contains("Started the agent"), "{out}");
    nothing_left(&d);
}

#[test]
fn up_exits_1_and_stops_everything_when_an_agent_cannot_start() {
    let d = LiveDomain::prepare();
    // node3's API port is taken: its agent exits at once.
    let taken = std::net::TcpListener::bind(("127.0.0.1", d.ports.agents[2])).expect("bind");
    let (status, out) = up_until_exit(&d, &["--timeout", "60s"]);
    drop(taken);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("the agent of node3 exited"), "{out}");
    // Its log names the cause before the supervisor's verdict.
    let cause = out.find("the API server stopped: ");
    let verdict = out.find("fail-stop: the API server task ended");
    assert!(
        cause.is_some() && (verdict.is_none() || cause < verdict),
        "{out}"
    );
    assert!(out.contains("the domain did not come up"), "{out}");
    assert!(out.contains("Stopped."), "{out}");
    nothing_left(&d);
}

#[test]
fn up_exits_1_and_stops_everything_when_the_apply_does_not_converge() {
    let d = LiveDomain::prepare();
    std::fs::write(d.config.join("group-broken.yaml"), BROKEN_GROUP).expect("write");
    let (status, out) = up_until_exit(&d, &["--timeout", "20s"]);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("✗ broken: not converged"), "{out}");
    assert!(out.contains("✓ web"), "the other groups converged: {out}");
    assert!(out.contains("did not converge within 20s"), "{out}");
    nothing_left(&d);
}

/// An agent whose raft data is damaged refuses to start, exit non-zero,
/// with the store's refusal — the file, the line and how to rejoin — said
/// once: each layer the error crossed (the store, the domain database, the
/// agent) used to print it again as the cause of its own.
#[test]
fn a_damaged_raft_log_refuses_the_start_and_says_why_once() {
    let d = LiveDomain::prepare();
    let node = d.state.join("nodes").join("node1");
    let raft = node.join("data").join("raft");
    std::fs::create_dir_all(&raft).expect("raft dir");
    // Line 1 is no record at all; line 2 keeps it from passing for a last
    // line torn by a crash.
    std::fs::write(raft.join("log.jsonl"), "not a record\n{}\n").expect("log");
    let log = node.join("start.log");
    let mut agent = spawn_logged(
        Command::new(ASCTL)
            .arg("agent")
            .arg("--config")
            .arg(node.join("agent.yaml")),
        &log,
    );
    let status = agent.wait(LONG).expect("the agent exits");
    let said = crate::support::log_text(&log);
    assert!(!status.success(), "{said}");
    let refusal = "log.jsonl line 1: neither sealed nor plain JSON";
    assert_eq!(said.matches(refusal).count(), 1, "said once:\n{said}");
    assert_eq!(said.matches("to rejoin").count(), 1, "said once:\n{said}");
}
