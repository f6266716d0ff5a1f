//! The exec gate: every process of an agent starts as
//! `asctl exec-gate -- <command>`, and runs only on the go-ahead the driver
//! writes once the pid is recorded and the lease still allows it.

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

/// The `asctl exec-gate` wrapper every process of an agent starts through
/// (`exe exec-gate -- <command>`): the go-ahead is given only if
/// `may_start` still says yes once the pid is recorded.
#[derive(Clone)]
pub struct ExecGate {
    pub exe: PathBuf,
    pub may_start: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl std::fmt::Debug for ExecGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecGate").field("exe", &self.exe).finish()
    }
}

/// `program` names an executable file, directly or through `PATH`.
pub(super) fn runnable(program: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 {
        return executable(program);
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| executable(&d.join(program))))
}

/// The exit code of `asctl exec-gate` when it ran nothing.
pub const EXEC_GATE_REFUSED: u8 = 125;
/// The go-ahead byte on the gate's stdin.
pub(super) const GO: u8 = b'g';

/// `asctl exec-gate`: waits for the go-ahead on stdin, then replaces itself
/// with `command` (stdin becomes /dev/null). Returns only when told nothing
/// (the pipe closed) or when the command could not be run.
pub fn exec_gate(command: &[OsString]) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let mut byte = [0u8; 1];
    match std::io::stdin().read(&mut byte) {
        Ok(1) if byte[0] == GO => {}
        Ok(_) => return std::io::Error::other("no go-ahead from the agent: not started"),
        Err(e) => return e,
    }
    let Some((program, args)) = command.split_first() else {
        return std::io::Error::other("no command");
    };
    // exec keeps the pid (the recorded one) and everything else the agent
    // set up: process group, environment, working directory, log files.
    std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .exec()
}
