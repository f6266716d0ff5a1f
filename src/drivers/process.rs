//! Processes: real child processes, each the leader of its own process group,
//! with stdout and stderr appended to `<data_dir>/logs/<group>/<process>.log`.
//!
//! Stopping sends SIGTERM to the whole process group, waits `stopTimeout`,
//! then sends SIGKILL; the child is always waited for, so no zombie of ours
//! is left behind.
//!
//! **Surviving an agent restart.** Every started process is recorded in
//! `<data_dir>/run/<group>/<process>.pid` with its start time (field 22 of
//! `/proc/<pid>/stat`) and a fingerprint of everything it was started with.
//! `start` adopts a recorded process instead of starting a second one when the
//! pid still names the same process (same start time, so a reused pid is never
//! mistaken for ours) and the fingerprint matches the spec; a recorded
//! process started from another spec is stopped first. [`stop_stale`] stops
//! recorded processes that no spec wants any more. An adopted process is not
//! our child: it is watched through `/proc`, and init reaps it.
//!
//! **Recorded before it runs.** With a [`ExecGate`] (the agent always has
//! one) a process is started as `asctl exec-gate -- <command>`: a small
//! program that waits on its stdin. Only once the pid is recorded — so the
//! lease guard can fence it — and the gate's check (the node's lease) still
//! allows it does the driver write the go-ahead, and the gate `exec`s the
//! command in the same process. An agent killed in between closes the pipe
//! and the gate exits without running anything; an agent frozen in between
//! finds its lease lapsed on waking and kills the gate instead. So nothing
//! of a group ever runs unrecorded.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tracing::{info, warn};

use super::cgroup::{self, Cgroup};
use crate::model::{Name, Process};

use super::{DriverError, GroupContext, ResourceHealth, probe};

/// How long stale processes of a previous agent run get between SIGTERM and
/// SIGKILL: their spec (and so their `stopTimeout`) may be gone.
pub const STALE_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the kernel after SIGKILL before reporting failure.
const KILL_GRACE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(25);

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
fn runnable(program: &Path) -> bool {
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
const GO: u8 = b'g';

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

#[derive(Debug)]
pub struct ProcessDriver {
    ctx: GroupContext,
    spec: Process,
    running: Option<Running>,
    next_probe: Option<Instant>,
}

#[derive(Debug)]
enum Running {
    Child { child: Child, pid: i32 },
    Adopted { pid: i32, start_time: u64 },
}

impl Running {
    fn pid(&self) -> i32 {
        match self {
            Running::Child { pid, .. } | Running::Adopted { pid, .. } => *pid,
        }
    }
}

/// What a pid file records.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PidRecord {
    pid: i32,
    start_time: u64,
    fingerprint: String,
}

impl ProcessDriver {
    pub fn new(ctx: GroupContext, spec: Process) -> Self {
        ProcessDriver {
            ctx,
            spec,
            running: None,
            next_probe: None,
        }
    }

    pub fn label(&self) -> String {
        format!("process {}", self.spec.name)
    }

    /// The pid of the running process (the leader of its process group).
    pub fn pid(&self) -> Option<u32> {
        self.running
            .as_ref()
            .and_then(|r| u32::try_from(r.pid()).ok())
    }

    pub fn log_path(&self) -> PathBuf {
        log_dir(&self.ctx).join(format!("{}.log", self.spec.name))
    }

    pub fn pid_path(&self) -> PathBuf {
        pid_path(&self.ctx, &self.spec.name)
    }

    /// Starts the process, or adopts the one a previous agent run left
    /// running from the same spec.
    pub async fn start(&mut self) -> Result<(), DriverError> {
        if self.running.is_some() {
            if self.alive_reason().is_none() {
                return Ok(());
            }
            // Exited since: clean up its group and record before starting anew.
            self.stop().await?;
        }
        let fingerprint = self.fingerprint();
        if let Some(rec) = read_pid_record(&self.pid_path()) {
            if same_process(rec.pid, rec.start_time) {
                if rec.fingerprint == fingerprint {
                    info!(group = %self.ctx.group, process = %self.spec.name, pid = rec.pid,
                        "adopted a process left running by a previous agent run");
                    self.running = Some(Running::Adopted {
                        pid: rec.pid,
                        start_time: rec.start_time,
                    });
                    self.schedule_probe();
                    return Ok(());
                }
                info!(group = %self.ctx.group, process = %self.spec.name, pid = rec.pid,
                    "stopping a process started from an older spec");
                stop_recorded(rec.pid, rec.start_time, self.spec.stop_timeout.get()).await?;
            }
            remove_file(&self.pid_path())?;
        }
        self.spawn(fingerprint)
    }

    fn spawn(&mut self, fingerprint: String) -> Result<(), DriverError> {
        let what = || format!("process `{}/{}`", self.ctx.group, self.spec.name);
        let Some((program, args)) = self.spec.command.split_first() else {
            return Err(DriverError::Failed(format!(
                "{} has an empty command",
                what()
            )));
        };
        let program = match (&self.ctx.asctl_exe, program.as_str()) {
            (Some(exe), "asctl") => exe.clone(),
            _ => PathBuf::from(program),
        };
        let mut cmd = self.command(&program, args, &what)?;
        let mut child = cmd.spawn().map_err(|source| DriverError::Spawn {
            what: format!("{} (`{}`)", what(), program.display()),
            err: source,
        })?;
        let gate = child.stdin.take();
        let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
            return Err(DriverError::Failed(format!("{} exited at once", what())));
        };
        // Not yet waited for, so /proc/<pid> exists even if it already exited.
        let start_time = proc_stat(pid).map_or(0, |s| s.start_time);
        self.running = Some(Running::Child { child, pid });
        write_pid_record(
            &self.pid_path(),
            &PidRecord {
                pid,
                start_time,
                fingerprint,
            },
        )?;
        if let Some(stdin) = gate {
            self.go_ahead(pid, stdin)?;
        }
        info!(group = %self.ctx.group, process = %self.spec.name, pid, "process started");
        self.schedule_probe();
        Ok(())
    }

    /// The command that starts the process: through the exec gate when
    /// there is one, its output appended to its log, in its own process
    /// group and cgroup.
    fn command(
        &self,
        program: &Path,
        args: &[String],
        what: &dyn Fn() -> String,
    ) -> Result<Command, DriverError> {
        let log_path = self.log_path();
        let mut log = open_log(&log_path)?;
        // A marker between runs makes restarts visible in the log.
        let _ = writeln!(
            log,
            "--- asctl: starting {} on {} at {} ---",
            self.spec.name,
            self.ctx.node,
            humantime::format_rfc3339_seconds(SystemTime::now())
        );
        let stderr = log
            .try_clone()
            .map_err(|e| DriverError::io(format!("log file {}", log_path.display()), e))?;
        let mut cmd = match &self.ctx.exec_gate {
            Some(gate) => {
                // The gate would only find out after the go-ahead, in its
                // log: say it here, as a direct start would.
                if !runnable(program) {
                    return Err(DriverError::Spawn {
                        what: format!("{} (`{}`)", what(), program.display()),
                        err: std::io::Error::from(std::io::ErrorKind::NotFound),
                    });
                }
                let mut c = Command::new(&gate.exe);
                c.arg("exec-gate").arg("--").arg(program).args(args);
                c
            }
            None => {
                let mut c = Command::new(program);
                c.args(args);
                c
            }
        };
        cmd.envs(&self.spec.env)
            .env("ASCTL_NODE", self.ctx.node.as_str())
            .env("ASCTL_GROUP", self.ctx.group.as_str())
            .stdin(if self.ctx.exec_gate.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(log)
            .stderr(stderr)
            // Its own group, so that stop reaches every process it forks and
            // a signal to the agent's group does not reach it.
            .process_group(0)
            // Leaving processes running across an agent restart is a feature.
            .kill_on_drop(false);
        if let Some(dir) = &self.spec.working_dir {
            cmd.current_dir(dir);
        }
        if let Some(cg) = self.cgroup() {
            let procs = cg
                .prepare()
                .map_err(|e| DriverError::io(format!("cgroup {}", cg.path().display()), e))?;
            // SAFETY: join_in_child makes only async-signal-safe calls.
            unsafe {
                cmd.pre_exec(move || cgroup::join_in_child(&procs));
            }
        }
        Ok(cmd)
    }

    /// The gated process `pid` is recorded: let it run if the gate's check
    /// still allows it, or kill it.
    fn go_ahead(&mut self, pid: i32, stdin: tokio::process::ChildStdin) -> Result<(), DriverError> {
        let Some(gate) = &self.ctx.exec_gate else {
            return Ok(());
        };
        if !(gate.may_start)() {
            // Recorded, so the guard may already have fenced it; either
            // way it must not run now.
            signal_child(pid, Signal::SIGKILL);
            self.running = None;
            remove_file(&self.pid_path())?;
            return Err(DriverError::Failed(format!(
                "process `{}/{}`: the node's lease lapsed before it could run",
                self.ctx.group, self.spec.name
            )));
        }
        // A gate that died already shows up as an exited process.
        if let Ok(fd) = stdin.into_owned_fd() {
            let _ = std::fs::File::from(fd).write_all(&[GO]);
        }
        Ok(())
    }

    /// The process's cgroup, where cgroup v2 is usable.
    fn cgroup(&self) -> Option<Cgroup> {
        Cgroup::for_process(
            &self.ctx.data_dir,
            self.ctx.group.as_str(),
            self.spec.name.as_str(),
        )
    }

    /// SIGTERM to the process group (and its cgroup), SIGKILL after
    /// `stopTimeout`; then SIGKILL to whatever is left in its cgroup (a
    /// descendant that left the process group).
    pub async fn stop(&mut self) -> Result<(), DriverError> {
        self.next_probe = None;
        let timeout = self.spec.stop_timeout.get();
        let cgroup = self.cgroup();
        if let Some(cg) = &cgroup {
            cg.signal(Signal::SIGTERM);
        }
        self.stop_leader(timeout).await?;
        end_cgroup(cgroup).await?;
        remove_file(&self.pid_path())
    }

    async fn stop_leader(&mut self, timeout: Duration) -> Result<(), DriverError> {
        match self.running.take() {
            Some(Running::Child { mut child, pid }) => {
                let deadline = Instant::now() + timeout;
                signal_child(pid, Signal::SIGTERM);
                let status = match tokio::time::timeout_at(deadline, child.wait()).await {
                    Ok(s) => s,
                    Err(_) => {
                        warn!(group = %self.ctx.group, process = %self.spec.name, pid,
                            "process ignored SIGTERM for {}; sending SIGKILL",
                            humantime::format_duration(timeout));
                        signal_child(pid, Signal::SIGKILL);
                        child.wait().await
                    }
                };
                if let Err(e) = status {
                    return Err(DriverError::io(format!("waiting for process {pid}"), e));
                }
                // Processes it forked may outlive it; they share its group.
                stop_group_members(pid, deadline).await?;
            }
            Some(Running::Adopted { pid, start_time }) => {
                stop_recorded(pid, start_time, timeout).await?;
            }
            None => {}
        }
        Ok(())
    }

    /// Alive, and the probe (when one is due) answers.
    pub async fn check(&mut self) -> ResourceHealth {
        if let Some(reason) = self.alive_reason() {
            return ResourceHealth::Unhealthy(reason);
        }
        let Some(monitor) = &self.spec.monitor else {
            return ResourceHealth::Healthy;
        };
        let (Some(probe), Some(due)) = (&monitor.probe, self.next_probe) else {
            return ResourceHealth::Healthy;
        };
        if Instant::now() < due {
            return ResourceHealth::Healthy;
        }
        let health = probe::run(probe, monitor.timeout.get()).await;
        // The interval runs from the end of a probe, so slow probes never pile up.
        self.schedule_probe();
        match health {
            ResourceHealth::Healthy => ResourceHealth::Healthy,
            ResourceHealth::Unhealthy(why) => {
                ResourceHealth::Unhealthy(format!("process {}: {why}", self.spec.name))
            }
        }
    }

    /// `None` when the process runs, else why not.
    fn alive_reason(&mut self) -> Option<String> {
        let name = &self.spec.name;
        match &mut self.running {
            None => Some(format!("process {name} is not running")),
            Some(Running::Child { child, pid }) => match child.try_wait() {
                Ok(None) => None,
                Ok(Some(status)) => Some(format!("process {name} (pid {pid}) exited: {status}")),
                Err(e) => Some(format!("process {name} (pid {pid}): {e}")),
            },
            Some(Running::Adopted { pid, start_time }) => {
                if same_process(*pid, *start_time) {
                    None
                } else {
                    Some(format!("process {name} (pid {pid}) is gone"))
                }
            }
        }
    }

    fn schedule_probe(&mut self) {
        self.next_probe = self
            .spec
            .monitor
            .as_ref()
            .filter(|m| m.probe.is_some())
            .map(|m| Instant::now() + m.interval.get());
    }

    /// Identifies the spec a process was started from, so that a restarted
    /// agent adopts only processes that still match their spec. FNV-1a over
    /// the serialized spec: stable across builds, unlike `DefaultHasher`.
    fn fingerprint(&self) -> String {
        let text = serde_json::json!({
            "node": self.ctx.node,
            "group": self.ctx.group,
            "asctl": self.ctx.asctl_exe,
            "spec": self.spec,
        })
        .to_string();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

/// Stops the processes recorded under the group's run directory whose names
/// are not in `keep`: leftovers of a previous agent run that no spec wants.
/// Returns the errors of the ones that could not be stopped.
pub async fn stop_stale(ctx: &GroupContext, keep: &BTreeSet<Name>) -> Vec<DriverError> {
    let dir = run_dir(ctx);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".pid"))
        else {
            continue;
        };
        if keep.iter().any(|k| k.as_str() == name) {
            continue;
        }
        if let Some(rec) = read_pid_record(&path) {
            info!(group = %ctx.group, process = name, pid = rec.pid,
                "stopping a process no spec wants any more");
            if let Err(e) = stop_recorded(rec.pid, rec.start_time, STALE_STOP_TIMEOUT).await {
                errors.push(e);
                continue;
            }
        }
        let cgroup = Cgroup::for_process(&ctx.data_dir, ctx.group.as_str(), name);
        if let Err(e) = end_cgroup(cgroup).await {
            errors.push(e);
            continue;
        }
        if let Err(e) = remove_file(&path) {
            errors.push(e);
        }
    }
    let _ = fs::remove_dir(&dir);
    errors
}

/// Sends SIGKILL to the process group of every process recorded under
/// `<data_dir>/run/` and waits (briefly) for them to be gone: the lease
/// guard's fence, for an agent that was killed or frozen. Synchronous and
/// without a runtime, so the guard stays small. The pid files stay: the next
/// agent run finds the processes gone and acts from its placement. Returns
/// the process groups signalled.
pub fn kill_recorded(data_dir: &Path) -> Vec<i32> {
    let Ok(groups) = fs::read_dir(data_dir.join("run")) else {
        return Vec::new();
    };
    let mut killed = Vec::new();
    for group in groups.flatten() {
        let Ok(files) = fs::read_dir(group.path()) else {
            continue;
        };
        for f in files.flatten() {
            if f.path().extension().is_none_or(|e| e != "pid") {
                continue;
            }
            let Some(rec) = read_pid_record(&f.path()) else {
                continue;
            };
            // The recorded leader itself; or, with the leader gone, what is
            // left of its group: a pid cannot be reused while a process group
            // of that id lives, so a group `pid` without a process `pid` is
            // still ours. A reused pid (another start time) is left alone.
            if same_process(rec.pid, rec.start_time) || proc_stat(rec.pid).is_none() {
                signal_group(rec.pid, Signal::SIGKILL);
                killed.push(rec.pid);
            }
            // What left the process group is in the cgroup.
            let names = (
                group.file_name(),
                f.path().file_stem().map(|s| s.to_owned()),
            );
            if let (g, Some(p)) = names {
                let (g, p) = (g.to_string_lossy(), p.to_string_lossy());
                if let Some(cg) = Cgroup::for_process(data_dir, &g, &p) {
                    cg.kill_all(KILL_GRACE);
                }
            }
        }
    }
    let deadline = std::time::Instant::now() + KILL_GRACE;
    while killed.iter().any(|g| group_alive(*g)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    killed
}

/// The groups that have pid files under `<data_dir>/run/`.
pub fn recorded_groups(data_dir: &Path) -> Vec<Name> {
    let Ok(entries) = fs::read_dir(data_dir.join("run")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect()
}

fn log_dir(ctx: &GroupContext) -> PathBuf {
    ctx.data_dir.join("logs").join(ctx.group.as_str())
}

fn run_dir(ctx: &GroupContext) -> PathBuf {
    ctx.data_dir.join("run").join(ctx.group.as_str())
}

fn pid_path(ctx: &GroupContext, process: &Name) -> PathBuf {
    run_dir(ctx).join(format!("{process}.pid"))
}

/// Creates `dir` 0700 (and missing parents): process output and pid files
/// are the agent's business only.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Process output may print its environment: created 0600.
fn open_log(path: &Path) -> Result<fs::File, DriverError> {
    let what = || format!("log file {}", path.display());
    if let Some(dir) = path.parent() {
        create_private_dir(dir).map_err(|e| DriverError::io(what(), e))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| DriverError::io(what(), e))
}

fn read_pid_record(path: &Path) -> Option<PidRecord> {
    let text = fs::read_to_string(path).ok()?;
    match serde_json::from_str(&text) {
        Ok(rec) => Some(rec),
        Err(e) => {
            warn!(path = %path.display(), "ignoring an unreadable pid file: {e}");
            None
        }
    }
}

/// Written to a temporary file and renamed, so a crash never leaves half a record.
fn write_pid_record(path: &Path, rec: &PidRecord) -> Result<(), DriverError> {
    let what = || format!("pid file {}", path.display());
    if let Some(dir) = path.parent() {
        create_private_dir(dir).map_err(|e| DriverError::io(what(), e))?;
    }
    let tmp = path.with_extension("pid.tmp");
    let text = serde_json::to_string(rec).map_err(|e| DriverError::Failed(e.to_string()))?;
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| DriverError::io(what(), e))?;
    fs::rename(&tmp, path).map_err(|e| DriverError::io(what(), e))
}

fn remove_file(path: &Path) -> Result<(), DriverError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(DriverError::io(format!("removing {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

/// Sends `sig` to a process group; a group already gone is not an error.
fn signal_group(pgid: i32, sig: Signal) {
    match killpg(Pid::from_raw(pgid), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => warn!(pgid, "cannot send {sig} to process group: {e}"),
    }
}

/// Signals our child and its process group. The child itself too: right
/// after spawning it may not have made its own group yet, and being unreaped
/// its pid cannot have been reused.
fn signal_child(pid: i32, sig: Signal) {
    signal_group(pid, sig);
    match nix::sys::signal::kill(Pid::from_raw(pid), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => warn!(pid, "cannot send {sig}: {e}"),
    }
}

/// SIGKILL to whatever is left in `cgroup`, then removes it.
async fn end_cgroup(cgroup: Option<Cgroup>) -> Result<(), DriverError> {
    let Some(cg) = cgroup else { return Ok(()) };
    let path = cg.path().display().to_string();
    let empty = tokio::task::spawn_blocking(move || cg.kill_all(KILL_GRACE))
        .await
        .unwrap_or(false);
    if empty {
        Ok(())
    } else {
        Err(DriverError::Failed(format!(
            "processes in cgroup {path} survived SIGKILL for {}",
            humantime::format_duration(KILL_GRACE)
        )))
    }
}

/// Stops a process that is not our child (recorded by a previous agent run),
/// with the same SIGTERM → SIGKILL escalation, watching it through /proc.
async fn stop_recorded(pid: i32, start_time: u64, timeout: Duration) -> Result<(), DriverError> {
    if !same_process(pid, start_time) {
        return Ok(());
    }
    let deadline = Instant::now() + timeout;
    signal_group(pid, Signal::SIGTERM);
    while same_process(pid, start_time) && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    stop_group_members(pid, deadline).await
}

/// Waits until no live process is left in the group, sending SIGKILL at
/// `deadline`. Zombies do not count: reaping them is their parent's job.
async fn stop_group_members(pgid: i32, deadline: Instant) -> Result<(), DriverError> {
    while group_alive(pgid) && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    if !group_alive(pgid) {
        return Ok(());
    }
    signal_group(pgid, Signal::SIGKILL);
    let grace = Instant::now() + KILL_GRACE;
    while group_alive(pgid) {
        if Instant::now() >= grace {
            return Err(DriverError::Failed(format!(
                "process group {pgid} survived SIGKILL for {}",
                humantime::format_duration(KILL_GRACE)
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// The fields of `/proc/<pid>/stat` the driver relies on.
struct ProcStat {
    state: char,
    pgrp: i32,
    start_time: u64,
}

impl ProcStat {
    fn is_live(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// The command name (field 2) may contain spaces and parentheses, so fields
/// are counted from the last `)`.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// The pid still names the live process that was recorded (not a reused pid).
fn same_process(pid: i32, start_time: u64) -> bool {
    proc_stat(pid).is_some_and(|s| s.is_live() && s.start_time == start_time)
}

fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        e.file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
            .and_then(proc_stat)
            .is_some_and(|s| s.pgrp == pgid && s.is_live())
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn process_output_and_pid_files_are_private_from_their_creation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("logs/web/server.log");
        open_log(&log).expect("log");
        let pid = dir.path().join("run/web/server.pid");
        let rec = PidRecord {
            pid: 1,
            start_time: 0,
            fingerprint: String::new(),
        };
        write_pid_record(&pid, &rec).expect("pid");
        assert_eq!(mode(&log), 0o600);
        assert_eq!(mode(&pid), 0o600);
        for d in ["logs", "logs/web", "run", "run/web"] {
            assert_eq!(mode(&dir.path().join(d)), 0o700, "{d}");
        }
    }

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (we(ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let s = parse_stat(line).expect("parses");
        assert_eq!(s.state, 'S');
        assert_eq!(s.pgrp, 4242);
        assert_eq!(s.start_time, 987654);
    }

    #[test]
    fn a_truncated_stat_line_is_rejected() {
        assert!(parse_stat("12 (x) S 1").is_none());
    }
}
