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

//!
//! Files: this one is the driver; `gate.rs` the exec gate; `records.rs` the
//! pid files and logs under the data directory, and what acts on them
//! without a driver (stale processes, the guard's fence); `signals.rs`
//! signals to processes and their groups, and what `/proc` says of them.

mod gate;
mod readiness;
mod records;
mod signals;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tracing::{info, warn};

use super::cgroup::{self, Cgroup};
use crate::model::Process;
use crate::model::exec_limits::{ExecString, MAX_ARG_STRLEN, arg_max};

use super::{DriverError, GroupContext, ResourceHealth, probe};

/// How long stale processes of a previous agent run get between SIGTERM and
/// SIGKILL: their spec (and so their `stopTimeout`) may be gone.
pub const STALE_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the kernel after SIGKILL before reporting failure.
const KILL_GRACE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(25);

pub use gate::{EXEC_GATE_REFUSED, ExecGate, exec_gate};
use gate::{GO, runnable};
pub use readiness::{FailureDetails, LOG_TAIL_LINES};
use readiness::{RUN_MARKER, Readiness, read_log_tail, start_up_verdict, waiting};
use records::*;
pub use records::{Recorded, kill, kill_recorded, recorded, recorded_groups, stop_stale};
use signals::*;
pub use signals::{alive, hasten_exit, threads};

/// How often a probe that has not passed yet is retried during the
/// start-up grace (or at its `interval`, when that is shorter): often enough
/// that a group is online a fraction of a second after it answers.
const START_UP_PROBE_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub struct ProcessDriver {
    ctx: GroupContext,
    spec: Process,
    running: Option<Running>,
    next_probe: Option<Instant>,
    /// Since when the current run is up, and whether its probe has passed
    /// once since (always, without a probe).
    started_at: Option<Instant>,
    ready: bool,
    /// The probe's last answer, and how the last run ended, for a failure
    /// report.
    last_probe: Option<String>,
    last_exit: Option<String>,
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

impl ProcessDriver {
    pub fn new(ctx: GroupContext, spec: Process) -> Self {
        ProcessDriver {
            ctx,
            spec,
            running: None,
            next_probe: None,
            started_at: None,
            ready: false,
            last_probe: None,
            last_exit: None,
        }
    }

    /// The probe's last answer, how the process ended and the last lines of
    /// its last run's log.
    pub fn failure_details(&self) -> FailureDetails {
        FailureDetails {
            probe: self.last_probe.clone(),
            exit: self.last_exit.clone(),
            log_tail: read_log_tail(&self.log_path(), LOG_TAIL_LINES),
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
                    // Adopted processes prove themselves like new ones: the
                    // probe passes once before the group counts as online.
                    self.begin_run();
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
        let mut child = cmd.spawn().map_err(|source| {
            if source.raw_os_error() == Some(libc::E2BIG) {
                return self.too_large(&what());
            }
            DriverError::Spawn {
                what: format!("{} (`{}`)", what(), program.display()),
                err: source,
            }
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
        self.begin_run();
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
            "{RUN_MARKER}{} on {} at {} ---",
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

    /// The start error of a process the kernel refused to exec for the size
    /// of its command, arguments and environment (`E2BIG`): which limit,
    /// and by how much, so that the spec can be fixed (retrying cannot help).
    fn too_large(&self, what: &str) -> DriverError {
        let size = self
            .spec
            .exec_size(self.ctx.node.as_str(), self.ctx.group.as_str());
        let inherited: usize = std::env::vars_os()
            .map(|(k, v)| k.len() + v.len() + 2 + std::mem::size_of::<usize>())
            .sum();
        let why = match size.too_long.first() {
            Some((string, bytes)) => {
                let name = match string {
                    ExecString::Command(i) => format!("command[{i}]"),
                    ExecString::Env(key) => format!("env `{key}`"),
                };
                format!(
                    "{name} is {bytes} bytes, over the limit of {MAX_ARG_STRLEN} for one string"
                )
            }
            None => format!(
                "its command, arguments and environment take {} bytes (and {inherited} more \
                 inherited from the agent's environment), over this node's ARG_MAX of {} bytes",
                size.total,
                arg_max()
            ),
        };
        DriverError::Failed(format!(
            "cannot start {what}: the kernel refused it as too large (E2BIG): {why}; pass large \
             values in a file instead"
        ))
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

    /// A new run: not ready until its probe passes (at once, without one).
    fn begin_run(&mut self) {
        self.started_at = Some(Instant::now());
        self.last_probe = None;
        self.last_exit = None;
        let probed = self
            .spec
            .monitor
            .as_ref()
            .is_some_and(|m| m.probe.is_some());
        self.ready = !probed;
        // The first start-up probe runs at the first check.
        self.next_probe = probed.then(Instant::now);
    }

    /// Alive, and the probe (when one is due) answers. Before the probe has
    /// passed once, within `startTimeout`, a failed probe is
    /// [`ResourceHealth::Starting`], not a failure.
    pub async fn check(&mut self) -> ResourceHealth {
        if let Some(reason) = self.alive_reason() {
            return ResourceHealth::Unhealthy(reason);
        }
        let Some(monitor) = &self.spec.monitor else {
            self.ready = true;
            return ResourceHealth::Healthy;
        };
        let (Some(probe), Some(due)) = (&monitor.probe, self.next_probe) else {
            self.ready = true;
            return ResourceHealth::Healthy;
        };
        let name = self.spec.name.clone();
        let name = &name;
        if Instant::now() < due {
            return match (&self.ready, &self.last_probe) {
                (true, _) => ResourceHealth::Healthy,
                (false, last) => {
                    ResourceHealth::Starting(waiting(name, monitor.start_timeout, last))
                }
            };
        }
        let health = probe::run(probe, monitor.timeout.get()).await;
        self.last_probe = Some(match &health {
            ResourceHealth::Healthy => "passed".to_owned(),
            ResourceHealth::Unhealthy(why) | ResourceHealth::Starting(why) => why.clone(),
        });
        let grace = monitor.start_timeout;
        let every = monitor.interval.get().min(START_UP_PROBE_EVERY);
        let started = self.started_at.unwrap_or_else(Instant::now);
        match start_up_verdict(self.ready, health, started.elapsed(), grace.get()) {
            Readiness::Ready => {
                self.ready = true;
                // The interval runs from the end of a probe, so slow probes never pile up.
                self.schedule_probe();
                ResourceHealth::Healthy
            }
            Readiness::Waiting => {
                self.next_probe = Some(Instant::now() + every);
                ResourceHealth::Starting(waiting(name, grace, &self.last_probe))
            }
            Readiness::NotReadyInTime(why) => ResourceHealth::Unhealthy(format!(
                "process {name}: not ready within its startTimeout of {grace}: {why}"
            )),
            Readiness::Failed(why) => {
                self.schedule_probe();
                ResourceHealth::Unhealthy(format!("process {name}: {why}"))
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
                Ok(Some(status)) => {
                    self.last_exit = Some(status.to_string());
                    Some(format!("process {name} (pid {pid}) exited: {status}"))
                }
                Err(e) => Some(format!("process {name} (pid {pid}): {e}")),
            },
            Some(Running::Adopted { pid, start_time }) => {
                if same_process(*pid, *start_time) {
                    None
                } else {
                    // Not our child: init reaped it, and its status with it.
                    self.last_exit = Some("gone (adopted: exit status unknown)".to_owned());
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
