//! The CLI on a pseudo-terminal against real agents on loopback: `apply`
//! asks before it changes anything, and applies only on `yes`.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::up::BROKEN_GROUP;
use crate::support::{ASCTL, LiveDomain, Owned, demo_answer, eventually, text};

const LONG: Duration = Duration::from_secs(60);

/// Runs `asctl ARGS --state-dir STATE` on a pseudo-terminal (its standard
/// input, output and error), types `answer` once `prompt` shows, and
/// returns the exit status and what the terminal showed.
fn on_terminal(
    d: &LiveDomain,
    args: &[&str],
    prompt: &str,
    answer: &str,
) -> (std::process::ExitStatus, String) {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two new descriptors, which we then own.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    let (master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            OwnedFd::from_raw_fd(slave),
        )
    };
    let child = {
        // The Command holds the terminal's descriptors: dropped after the
        // spawn, so the terminal closes when the child exits.
        let mut cmd = Command::new(ASCTL);
        cmd.args(args)
            .arg("--state-dir")
            .arg(&d.state)
            .stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave));
        cmd.spawn().expect("spawn")
    };
    let mut child = Owned(Some(child));
    let shown = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let shown = shown.clone();
        let mut master = master.try_clone().expect("dup");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the child and every copy of the terminal are gone.
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shown.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        })
    };
    let text = |shown: &std::sync::Mutex<Vec<u8>>| {
        String::from_utf8_lossy(&shown.lock().expect("lock")).into_owned()
    };
    d.eventually(&format!("the prompt {prompt:?}"), LONG, || {
        text(&shown).contains(prompt).then_some(())
    });
    let mut input = master;
    input
        .write_all(format!("{answer}\n").as_bytes())
        .expect("type the answer");
    let status = child.wait(LONG).expect("the command ends");
    drop(input);
    let _ = reader.join();
    (status, text(&shown))
}

#[test]
fn apply_on_a_terminal_asks_and_applies_only_on_yes() {
    let d = LiveDomain::applied();
    let cfg = d.config.to_string_lossy().into_owned();
    assert_eq!(d.generation(), 1);

    let web = d.config.join("group-web.yaml");
    let original = std::fs::read_to_string(&web).expect("read");
    let port = d.ports.demo[0].to_string();
    let changed = original.replace(
        &format!("[\"asctl\", \"demo-server\", \"--port\", \"{port}\"]"),
        &format!("[\"asctl\", \"demo-server\", \"--port\", \"{port}\", \"--name\", \"asked\"]"),
    );
    assert_ne!(changed, original);
    std::fs::write(&web, &changed).expect("write");
    let prompt = "Only 'yes' will be accepted";
    let apply = ["apply", cfg.as_str(), "--timeout", "60s"];

    // Anything but `yes` cancels, and nothing changes.
    for answer in ["no", "y", ""] {
        let (status, shown) = on_terminal(&d, &apply, prompt, answer);
        assert_eq!(status.code(), Some(1), "answer {answer:?}:\n{shown}");
        assert!(
            shown.contains("restart on node1"),
            "the plan is shown first:\n{shown}"
        );
        assert!(shown.contains("Apply cancelled"), "{shown}");
        assert_eq!(d.generation(), 1, "answer {answer:?} changed nothing");
    }
    assert_ne!(demo_answer(d.ports.demo[0]).as_deref(), Some("asked"));

    let (status, shown) = on_terminal(&d, &apply, prompt, "yes");
    assert_eq!(status.code(), Some(0), "{shown}\n{}", d.agent_logs());
    assert!(shown.contains("Converged"), "{shown}");
    assert_eq!(d.generation(), 2);
    eventually("web to run the applied command", LONG, || {
        (demo_answer(d.ports.demo[0]).as_deref() == Some("asked")).then_some(())
    });

    // --timeout runs out on a group that cannot converge: the summary names
    // it and why, the others converged, and the exit code is 1.
    std::fs::write(d.config.join("group-broken.yaml"), BROKEN_GROUP).expect("write");
    let out = d.asctl(&["apply", &cfg, "--auto-approve", "--timeout", "5s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(d.generation(), 3, "committed, then followed");
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    let broken = summary
        .lines()
        .find(|l| l.contains("✗ broken: not converged: "))
        .unwrap_or_else(|| panic!("no line for broken: {}", text(&out)));
    assert!(
        broken.contains("starting on node2: process server: waiting for its probe"),
        "the reason: {broken}"
    );
    for group in ["web", "api", "batch"] {
        assert!(
            summary.contains(&format!("✓ {group}: online on ")),
            "{group}: {}",
            text(&out)
        );
    }
    assert!(
        summary.contains("Not converged within 5s"),
        "{}",
        text(&out)
    );
}
