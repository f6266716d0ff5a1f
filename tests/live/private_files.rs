//! What an agent writes under its data directory is its own: every
//! directory it creates there 0700 and every file 0600, from the creation
//! (docs/runtime.md, "Secrets at rest"). The data directory here exists
//! beforehand with mode 0755, as one made by a package or an operator
//! would, so nothing below it is private by inheritance: the raft files,
//! the process's log and pid file, the OCF record (which holds the agent's
//! parameters in clear) and the saved raft timing each have to be created
//! so.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::support::LiveDomain;

const LONG: Duration = Duration::from_secs(60);

/// Every directory and file below `dir` (not `dir` itself), with its mode.
fn modes(dir: &Path, out: &mut Vec<(String, bool, u32)>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let meta = e.metadata().expect("metadata");
        let mode = meta.permissions().mode() & 0o777;
        out.push((e.path().display().to_string(), meta.is_dir(), mode));
        if meta.is_dir() {
            modes(&e.path(), out);
        }
    }
}

#[test]
fn every_directory_and_file_an_agent_creates_in_its_data_directory_is_private() {
    // The usual umask, whatever the test runner's: a wider mode is what a
    // file created without an explicit one gets.
    // SAFETY: umask has no preconditions; 022 is the default anyway.
    unsafe { libc::umask(0o022) };
    let mut d = LiveDomain::prepare();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("cache.state");
    std::fs::write(
        d.config.join("group-store.yaml"),
        format!(
            "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {{name: store}}\nspec:\n  \
             preferredNodes: [node1]\n  resources:\n    \
             - {{name: cache, ocf: asctl-test:Probe, params: {{state: {}}}}}\n  \
             processes:\n    - {{name: user, command: [sleep, \"1000\"]}}\n",
            state.display(),
        ),
    )
    .expect("group file");
    let data = d.state.join("nodes/node1/data");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d.start_agents_with_test_ocf();
    d.apply();
    d.eventually("store online on node1 with its records", LONG, || {
        let online =
            d.status_json()?["nodes"]["node1"]["report"]["groups"]["store"]["state"] == "online";
        let recorded = data.join("ocf/store").read_dir().ok()?.next().is_some();
        let timing = data.join("raft/timing.json").exists();
        (online && recorded && timing).then_some(())
    });

    let mut found = Vec::new();
    modes(&data, &mut found);
    for want in [
        "raft/log.jsonl",
        "raft/timing.json",
        "logs/store/user.log",
        "ocf/store",
    ] {
        assert!(
            found.iter().any(|(p, _, _)| p.ends_with(want)),
            "{want} is among the files checked: {found:#?}"
        );
    }
    let open: Vec<_> = found
        .iter()
        .filter(|(_, is_dir, mode)| *mode != if *is_dir { 0o700 } else { 0o600 })
        .map(|(p, _, mode)| format!("{mode:o} {p}"))
        .collect();
    assert!(
        open.is_empty(),
        "created with a mode other than 0700 (directories) or 0600 (files):\n{}",
        open.join("\n")
    );
}
