//! The agents `asctl up` runs: started, watched, restarted, stopped.
//!
//! `up` is the supervisor of its local domain. An agent that exits is
//! noticed within a tick ([`Agents::tick`]): `up` reaps it, says which node,
//! how it ended (exit status or signal) and the last lines of its log, and
//! starts it again after a delay that doubles with each exit in a row (1 s
//! up to 30 s; an agent that ran a minute is forgiven). An agent that exits
//! before the domain has formed fails the bring-up instead
//! ([`Agents::exited`]): that is a configuration or port problem, not a
//! crash to ride out.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// An agent that ran this long before exiting starts again after
/// [`FIRST_DELAY`]: its exits are not "in a row".
const FORGIVEN_AFTER: Duration = Duration::from_secs(60);

struct Agent {
    name: String,
    child: Option<Child>,
    started: Instant,
    delay: Duration,
    restart_at: Option<Instant>,
}

/// The agents `up` started, by node.
pub struct Agents {
    state: PathBuf,
    list: Vec<Agent>,
}

impl Agents {
    pub fn new(state: &Path) -> Agents {
        Agents {
            state: state.to_owned(),
            list: Vec::new(),
        }
    }

    fn dir(&self, node: &str) -> PathBuf {
        self.state.join("nodes").join(node)
    }

    /// Starts the agent of `node`. The first start of an `up` begins a new
    /// log; a restart appends to it, so the reason of the exit stays there.
    pub fn start(&mut self, node: &str, addr: &str) -> anyhow::Result<()> {
        let child = self.spawn(node, false)?;
        println!("Started the agent of {node} (pid {}) on {addr}", child.id());
        self.list.push(Agent {
            name: node.to_owned(),
            child: Some(child),
            started: Instant::now(),
            delay: FIRST_DELAY,
            restart_at: None,
        });
        Ok(())
    }

    fn spawn(&self, node: &str, append: bool) -> anyhow::Result<Child> {
        let dir = self.dir(node);
        let log_path = dir.join("agent.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let exe = std::env::current_exe().context("finding the asctl executable")?;
        let mut cmd = Command::new(exe);
        cmd.arg("agent")
            .arg("--config")
            .arg(dir.join("agent.yaml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting the agent of {node}"))?;
        std::fs::write(dir.join("agent.pid"), child.id().to_string())?;
        Ok(child)
    }

    /// The first agent that is no longer running, reaped and described
    /// (node, how it ended, the end of its log).
    pub fn exited(&mut self) -> Option<String> {
        let state = self.state.clone();
        self.list.iter_mut().find_map(|a| {
            let status = a.child.as_mut()?.try_wait().ok()??;
            a.child = None;
            Some(describe(&state, &a.name, status))
        })
    }

    /// Reaps agents that exited, reports them, and starts again those whose
    /// delay has passed.
    pub fn tick(&mut self) {
        let state = self.state.clone();
        let now = Instant::now();
        for a in &mut self.list {
            let Some(status) = a.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) else {
                continue;
            };
            a.child = None;
            if now.duration_since(a.started) >= FORGIVEN_AFTER {
                a.delay = FIRST_DELAY;
            }
            eprintln!(
                "\n{}\n`asctl up` starts it again in {}.",
                describe(&state, &a.name, status),
                humantime::format_duration(a.delay)
            );
            a.restart_at = Some(now + a.delay);
            a.delay = (a.delay * 2).min(MAX_DELAY);
        }
        let due: Vec<String> = self
            .list
            .iter()
            .filter(|a| a.child.is_none() && a.restart_at.is_some_and(|t| t <= now))
            .map(|a| a.name.clone())
            .collect();
        for node in due {
            let spawned = self.spawn(&node, true);
            let Some(a) = self.list.iter_mut().find(|a| a.name == node) else {
                continue;
            };
            match spawned {
                Ok(child) => {
                    eprintln!("Restarted the agent of {node} (pid {}).", child.id());
                    a.child = Some(child);
                    a.started = Instant::now();
                    a.restart_at = None;
                }
                Err(e) => {
                    eprintln!("error: cannot restart the agent of {node}: {e:#}");
                    a.restart_at = Some(Instant::now() + a.delay);
                }
            }
        }
    }

    /// SIGTERM to every agent (each takes its groups offline), then wait,
    /// saying who stopped; SIGKILL whoever is still there after the grace
    /// period (its groups may then outlive it: said on stderr).
    pub fn stop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let mut waiting: Vec<(String, Child)> = self
            .list
            .drain(..)
            .filter_map(|a| Some((a.name, a.child?)))
            .collect();
        for (name, c) in &waiting {
            println!("Stopping the agent of {name} (pid {})...", c.id());
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !waiting.is_empty() && Instant::now() < deadline {
            waiting.retain_mut(|(name, c)| match c.try_wait() {
                Ok(Some(_)) => {
                    println!("  {name} stopped");
                    false
                }
                _ => true,
            });
            std::thread::sleep(Duration::from_millis(100));
        }
        for (name, mut c) in waiting {
            eprintln!("the agent of {name} did not stop in time; killing it");
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        if self.list.iter().any(|a| a.child.is_some()) {
            self.stop();
        }
    }
}

/// "the agent of node2 was killed by SIGKILL (signal 9)", and the last
/// lines of its log, where an agent says why it stopped.
fn describe(state: &Path, node: &str, status: ExitStatus) -> String {
    let how = how_it_ended(status);
    let log = state.join("nodes").join(node).join("agent.log");
    let tail = last_lines(&log, 3);
    if tail.is_empty() {
        return format!("the agent of {node} {how}");
    }
    format!(
        "the agent of {node} {how}; the end of {}:\n{}",
        log.display(),
        tail.iter()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// How a process ended, in words: its exit status or the signal.
pub fn how_it_ended(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => {
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.as_str())
                .unwrap_or("an unknown signal");
            format!("was killed by {name} (signal {sig})")
        }
        (None, None) => format!("ended ({status})"),
    }
}

fn last_lines(path: &Path, n: usize) -> Vec<String> {
    let Ok(text) = std::fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| without_colours(l))
        .collect()
}

/// `line` without the ANSI colour sequences of the agents' log output: `up`
/// quotes it on a terminal that may not want them.
fn without_colours(line: &str) -> String {
    anstream::adapter::strip_str(line).to_string()
}

/// Agents die with `up` even if it is killed: the kernel sends them SIGTERM
/// when `up`'s thread that started them exits.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only this process.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_stripped_from_quoted_log_lines() {
        assert_eq!(
            without_colours("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m group online"),
            "2026  INFO group online"
        );
        assert_eq!(without_colours("plain"), "plain");
    }

    #[test]
    fn how_an_agent_ended_names_the_signal() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            how_it_ended(ExitStatus::from_raw(9)),
            "was killed by SIGKILL (signal 9)"
        );
        assert_eq!(
            how_it_ended(ExitStatus::from_raw(1 << 8)),
            "exited with status 1"
        );
    }
}
