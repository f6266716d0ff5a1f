//! Processes started through the exec gate of the lease guard.

use super::*;

fn gated(dir: &Path, allow: bool) -> GroupContext {
    let mut c = ctx(dir);
    c.exec_gate = Some(asctl::drivers::process::ExecGate {
        exe: env!("CARGO_BIN_EXE_asctl").into(),
        may_start: std::sync::Arc::new(move || allow),
    });
    c
}

#[tokio::test]
async fn a_gated_process_runs_its_command_in_the_recorded_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("ran");
    let spec = process(&format!(
        r#"{{"name": "server", "command": ["sh", "-c", "touch {}; exec sleep 60"]}}"#,
        marker.display()
    ));
    let mut driver = ProcessDriver::new(gated(dir.path(), true), spec);
    driver.start().await.expect("starts");
    let pid = driver.pid().expect("a pid");
    eventually("the command ran", Duration::from_secs(5), || {
        marker.exists()
    })
    .await;
    // The gate exec'd the command: the recorded pid is the command now.
    let record = std::fs::read_to_string(dir.path().join("run/web/server.pid")).expect("record");
    assert!(record.contains(&format!("\"pid\":{pid}")), "{record}");
    eventually(
        "the recorded pid runs sleep",
        Duration::from_secs(5),
        || {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with("sleep\0"))
        },
    )
    .await;
    driver.stop().await.expect("stops");
    assert!(!live(pid));
}

#[tokio::test]
async fn a_gated_process_never_runs_when_the_lease_lapsed_meanwhile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("ran");
    let spec = process(&format!(
        r#"{{"name": "server", "command": ["touch", "{}"]}}"#,
        marker.display()
    ));
    let mut driver = ProcessDriver::new(gated(dir.path(), false), spec);
    let err = driver.start().await.expect_err("refused");
    assert!(err.to_string().contains("lease lapsed"), "{err}");
    assert!(!dir.path().join("run/web/server.pid").exists());
    std::thread::sleep(Duration::from_millis(300));
    assert!(!marker.exists(), "the command ran");
}

#[test]
fn the_gate_runs_nothing_without_the_go_ahead() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("ran");
    // The agent died before saying go: the pipe closed, nothing to read.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_asctl"))
        .args(["exec-gate", "--", "touch"])
        .arg(&marker)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(!marker.exists());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no go-ahead"));
}

#[tokio::test]
async fn a_gated_start_of_a_missing_program_is_a_spawn_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut driver = ProcessDriver::new(
        gated(dir.path(), true),
        process(r#"{"name": "ghost", "command": ["asctl-test-no-such-program"]}"#),
    );
    let err = driver.start().await.expect_err("cannot start");
    assert!(matches!(err, DriverError::Spawn { .. }), "{err:?}");
    assert!(
        err.to_string().contains("asctl-test-no-such-program"),
        "{err}"
    );
}
