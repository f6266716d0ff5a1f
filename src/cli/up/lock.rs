//! One `asctl up` per state directory.
//!
//! A second `up` on a directory whose domain runs would start agents that
//! cannot bind, truncate the running agents' logs, overwrite their pid files
//! and re-apply its configuration over changes made since. So `up` takes an
//! exclusive `flock` on `<state>/up.lock` before it writes anything there,
//! and holds it until it exits (the kernel drops it if `up` is killed). The
//! lock alone misses agents that outlived their `up` or were started by
//! hand from the same `agent.yaml`, so their recorded pids are checked too.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::{Context, bail};
use nix::fcntl::{Flock, FlockArg};

pub const LOCK_FILE: &str = "up.lock";

/// The lock, held while the value lives.
pub struct UpLock(#[allow(dead_code)] Flock<File>);

/// Takes the state directory's lock, or says why not and how to reach or
/// stop what runs there. Touches nothing else in the directory.
pub fn acquire(state: &Path) -> anyhow::Result<UpLock> {
    let path = state.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((mut file, _)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            bail!(
                "the domain of {dir} is already running: `asctl up` (pid {pid}) holds {lock}.\n\
                 Reach it with `asctl status --state-dir {dir}`; stop it with Ctrl-C in its \
                 terminal or `kill {pid}` (its agents take their groups offline and stop).",
                dir = state.display(),
                pid = pid.trim(),
                lock = path.display()
            );
        }
    };
    check_agents(state)?;
    let f: &mut File = &mut lock;
    f.set_len(0)?;
    f.rewind()?;
    write!(f, "{}", std::process::id())?;
    Ok(UpLock(lock))
}

/// Refuses when an agent recorded in `nodes/<node>/agent.pid` still runs
/// from this state directory.
fn check_agents(state: &Path) -> anyhow::Result<()> {
    let Ok(nodes) = std::fs::read_dir(state.join("nodes")) else {
        return Ok(());
    };
    for node in nodes.flatten() {
        let dir = node.path();
        let Some(pid) = std::fs::read_to_string(dir.join("agent.pid"))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        else {
            continue;
        };
        let agent_yaml = dir.join("agent.yaml");
        if runs_agent(pid, &agent_yaml) {
            bail!(
                "the agent of {node} (pid {pid}) is running from {dir}, started outside this \
                 `asctl up`: stop it first (`kill {pid}`), or reach its domain with \
                 `asctl status --state-dir {state}`",
                node = node.file_name().to_string_lossy(),
                dir = dir.display(),
                state = state.display()
            );
        }
    }
    Ok(())
}

/// Whether process `pid` is an `asctl agent` of `agent_yaml` (not a
/// recycled pid of something else).
fn runs_agent(pid: u32, agent_yaml: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let yaml = agent_yaml.as_os_str().as_encoded_bytes();
    args.contains(&b"agent".as_slice()) && args.contains(&yaml)
}
