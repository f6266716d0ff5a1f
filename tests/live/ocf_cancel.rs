//! A start of storage is cancelled from inside when the group leaves the
//! node: an OCF resource (asctl's test agent `Probe`) whose `start` would
//! take 997 s is starting on node1 when an operator moves the group to
//! node2. node1 kills the `start` with its process group and runs the
//! `stop`, and node2 starts the group — without the cancellation, node1's
//! start would hold the group (break before make waits for node1's report)
//! until its timeout.

use std::path::Path;
use std::time::Duration;

use crate::support::{LiveDomain, text};

const LONG: Duration = Duration::from_secs(60);

fn placed(d: &LiveDomain) -> Option<String> {
    d.status_json()?["placement"]["store"]["node"]
        .as_str()
        .map(str::to_owned)
}

/// The `start` and `stop` calls in the agents' shared log, in order.
fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|a| matches!(*a, "start" | "stop"))
        .map(str::to_owned)
        .collect()
}

/// Kills, on drop, every process whose environment names `dir` (the slow
/// starts' `sleep`, whatever the test did).
struct Sleepers<'a>(&'a Path);

impl Drop for Sleepers<'_> {
    fn drop(&mut self) {
        let needle = self.0.to_string_lossy().into_owned();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
            if String::from_utf8_lossy(&env).contains(&needle) {
                // SAFETY: a signal to a process started for this test.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

#[test]
fn a_slow_ocf_start_is_cancelled_when_the_group_moves_away() {
    let mut d = LiveDomain::prepare();
    let dir = tempfile::tempdir().expect("tempdir");
    let _sleepers = Sleepers(dir.path());
    let (state, log) = (dir.path().join("state"), dir.path().join("ocf.log"));
    std::fs::write(
        d.config.join("group-store.yaml"),
        format!(
            "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {{name: store}}\nspec:\n  \
             preferredNodes: [node1, node2, node3]\n  resources:\n    - name: slow\n      \
             ocf: asctl-test:Probe\n      params: {{state: {}, log: {}, start_delay: \"997\"}}\n      \
             timeouts: {{start: 1000s}}\n",
            state.display(),
            log.display()
        ),
    )
    .expect("group file");
    d.start_agents_with_test_ocf();
    // The group never converges (its start hangs): apply only sends it.
    let cfg = d.config.display().to_string();
    let _ = d.asctl(&["apply", &cfg, "--auto-approve", "--timeout", "2s"]);
    d.eventually("node1 starting store", LONG, || {
        (placed(&d).as_deref() == Some("node1") && calls(&log) == ["start"]).then_some(())
    });

    let out = d.asctl(&["move", "store", "node2"]);
    assert!(out.status.success(), "{}", text(&out));
    d.eventually("node1's stop, then node2's start", LONG, || {
        (calls(&log) == ["start", "stop", "start"]).then_some(())
    });
    assert!(!state.exists(), "node1's start never finished");
}
