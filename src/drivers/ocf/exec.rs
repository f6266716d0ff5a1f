//! Running one action of an OCF resource agent, as the OCF resource-agent
//! API and Pacemaker do it: the action is the only argument, parameters are
//! `OCF_RESKEY_<name>` variables, the agent runs in a process group of its
//! own and the whole group is killed at the timeout (agents never enforce
//! their timeouts themselves).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use std::sync::{Arc, Mutex};

use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::task::JoinHandle;

use crate::drivers::GroupKill;

/// The default `OCF_ROOT`.
pub const DEFAULT_OCF_ROOT: &str = "/usr/lib/ocf";

/// The prefix that marks an agent's exit reason on stderr (Pacemaker's).
const EXIT_REASON_PREFIX: &str = "ocf-exit-reason:";

/// One agent, configured for one resource instance.
#[derive(Debug, Clone)]
pub struct Agent {
    pub root: PathBuf,
    pub provider: String,
    pub kind: String,
    /// `OCF_RESOURCE_INSTANCE`.
    pub instance: String,
    pub params: Vec<(String, String)>,
}

/// What one action returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    /// The last `ocf-exit-reason:` line of stderr, else its last line.
    pub reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot run {path}: {err}")]
    Spawn { path: String, err: std::io::Error },
    #[error("`{action}` did not finish within {timeout:?}: the agent was killed")]
    Timeout { action: String, timeout: Duration },
    #[error("`{action}` was killed by signal {signal}")]
    Signal { action: String, signal: i32 },
}

impl Agent {
    /// `$OCF_ROOT/resource.d/PROVIDER/TYPE`.
    pub fn path(&self) -> PathBuf {
        self.root
            .join("resource.d")
            .join(&self.provider)
            .join(&self.kind)
    }

    pub fn name(&self) -> String {
        format!("ocf:{}:{}", self.provider, self.kind)
    }

    /// Runs `action` with `interval` (`OCF_RESKEY_CRM_meta_interval`: 0 for
    /// one-off actions and probes), killing the agent's process group at
    /// `timeout`.
    pub async fn run(
        &self,
        action: &str,
        timeout: Duration,
        interval: Duration,
    ) -> Result<Outcome, RunError> {
        let path = self.path();
        let mut cmd = Command::new(&path);
        cmd.arg(action)
            .env("OCF_ROOT", &self.root)
            .env("OCF_RA_VERSION_MAJOR", "1")
            .env("OCF_RA_VERSION_MINOR", "1")
            .env("OCF_RESOURCE_INSTANCE", &self.instance)
            .env("OCF_RESOURCE_TYPE", &self.kind)
            .env("OCF_RESOURCE_PROVIDER", &self.provider)
            .env("OCF_EXIT_REASON_PREFIX", EXIT_REASON_PREFIX)
            .env(
                "OCF_RESKEY_CRM_meta_timeout",
                timeout.as_millis().to_string(),
            )
            .env(
                "OCF_RESKEY_CRM_meta_interval",
                interval.as_millis().to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for (k, v) in &self.params {
            cmd.env(format!("OCF_RESKEY_{k}"), v);
        }
        let mut child = cmd.spawn().map_err(|source| RunError::Spawn {
            path: path.display().to_string(),
            err: source,
        })?;
        // The agent leads its own group: killing the group reaches whatever
        // it started too. Armed until the agent has exited, so that a
        // caller dropping this future (a newer want) kills it as well.
        let group = GroupKill::of(&child);
        let out = collect(child.stdout.take());
        let err = collect(child.stderr.take());
        let status = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                drop(group); // kills the group
                let _ = child.wait().await;
                return Err(RunError::Timeout {
                    action: action.into(),
                    timeout,
                });
            }
        };
        // A daemon the agent started may keep the pipes open: take what the
        // agent wrote, without waiting for the daemon to close them.
        let (out, err) = (out.finish().await, err.finish().await);
        group.disarm();
        let status = status.map_err(|source| RunError::Spawn {
            path: path.display().to_string(),
            err: source,
        })?;
        let code = match status.code() {
            Some(c) => c,
            None => {
                use std::os::unix::process::ExitStatusExt;
                return Err(RunError::Signal {
                    action: action.into(),
                    signal: status.signal().unwrap_or(0),
                });
            }
        };
        Ok(Outcome {
            code,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            reason: exit_reason(&String::from_utf8_lossy(&err)),
        })
    }
}

/// Output of a pipe, gathered as it comes.
struct Collected(Option<JoinHandle<()>>, Arc<Mutex<Vec<u8>>>);

fn collect<R: tokio::io::AsyncRead + Unpin + Send + 'static>(pipe: Option<R>) -> Collected {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let handle = pipe.map(|mut pipe| {
        let buf = Arc::clone(&buf);
        tokio::spawn(async move {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
                buf.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&chunk[..n]);
            }
        })
    });
    Collected(handle, buf)
}

impl Collected {
    /// What was written, waiting briefly for the rest after the writer exited.
    async fn finish(self) -> Vec<u8> {
        if let Some(h) = self.0 {
            let abort = h.abort_handle();
            if tokio::time::timeout(Duration::from_millis(200), h)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        std::mem::take(&mut *self.1.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The agent's reason for a failure, from its stderr.
pub fn exit_reason(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix(EXIT_REASON_PREFIX))
        .or(lines.last().copied())
        .map(|s| s.trim().to_string())
}

/// How an exit code counts, after the OCF API and Pacemaker's reading of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 0, and 190/191 (degraded: running, counted as success).
    Success,
    /// 7: cleanly not running (`monitor`).
    NotRunning,
    /// 8: running in the promoted role (asctl runs no promotable resources).
    Promoted,
    /// A failure worth a restart on this node: 1 (generic), 9, and any
    /// code outside the API (read as 1).
    Soft,
    /// A failure that no retry on this node can fix: 2 (invalid parameter
    /// here), 3 (unimplemented), 4 (insufficient privileges), 5 (not
    /// installed).
    Hard,
    /// 6: the configuration is invalid anywhere.
    Fatal,
}

pub fn verdict(code: i32) -> Verdict {
    match code {
        0 | 190 | 191 => Verdict::Success,
        7 => Verdict::NotRunning,
        8 => Verdict::Promoted,
        2..=5 => Verdict::Hard,
        6 => Verdict::Fatal,
        _ => Verdict::Soft,
    }
}

/// The API's name for an exit code, for messages.
pub fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OCF_SUCCESS",
        1 => "OCF_ERR_GENERIC",
        2 => "OCF_ERR_ARGS",
        3 => "OCF_ERR_UNIMPLEMENTED",
        4 => "OCF_ERR_PERM",
        5 => "OCF_ERR_INSTALLED",
        6 => "OCF_ERR_CONFIGURED",
        7 => "OCF_NOT_RUNNING",
        8 => "OCF_RUNNING_PROMOTED",
        9 => "OCF_FAILED_PROMOTED",
        190 => "OCF_DEGRADED",
        191 => "OCF_DEGRADED_PROMOTED",
        _ => "unknown exit code",
    }
}

/// Whether an agent is installed at `path` (a file we may execute).
pub fn installed(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_as_pacemaker_reads_them() {
        assert_eq!(verdict(0), Verdict::Success);
        assert_eq!(verdict(190), Verdict::Success);
        assert_eq!(verdict(7), Verdict::NotRunning);
        assert_eq!(verdict(1), Verdict::Soft);
        assert_eq!(verdict(9), Verdict::Soft);
        assert_eq!(verdict(42), Verdict::Soft, "unknown codes read as generic");
        for c in 2..=5 {
            assert_eq!(verdict(c), Verdict::Hard, "code {c}");
        }
        assert_eq!(verdict(6), Verdict::Fatal);
        assert_eq!(code_name(5), "OCF_ERR_INSTALLED");
    }

    #[test]
    fn the_exit_reason_is_the_last_marked_line() {
        let err = "noise\nocf-exit-reason:first\nmore noise\nocf-exit-reason: Couldn't mount /srv\ntrailing\n";
        assert_eq!(exit_reason(err).as_deref(), Some("Couldn't mount /srv"));
        assert_eq!(exit_reason("just this\n\n").as_deref(), Some("just this"));
        assert_eq!(exit_reason(""), None);
    }
}
