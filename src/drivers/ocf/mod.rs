//! OCF resource agents: the Linux ecosystem's standard scripts for starting,
//! stopping and monitoring a resource (Debian's `resource-agents`:
//! Filesystem, IPaddr2, LVM-activate, DRBD...; storage vendors' agents).
//!
//! [`OcfDriver`] drives one agent instance — a data source's `agent` or a
//! group's `resources` entry — through `start`, `stop` and `monitor`, with
//! the timeouts of the agent's `meta-data` unless the configuration
//! overrides them. Exit codes are read as Pacemaker reads them
//! ([`exec::verdict`]): a hard or fatal error fails the group over at once,
//! a soft one counts against the restart limit.

pub mod exec;
pub mod records;
/// The agent's meta-data (a pure parser, in the model so that `rules` can
/// name it too).
pub use crate::model::ocf_metadata as metadata;

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use crate::model::OcfAgent;

use super::{DriverError, ResourceHealth};
use exec::{Agent, RunError, Verdict};
use metadata::Metadata;

/// Pacemaker's default operation timeout, used when neither the
/// configuration nor the agent's meta-data gives one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// The monitor interval when neither the configuration nor the meta-data
/// gives one.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// How long `meta-data` may take.
pub const META_DATA_TIMEOUT: Duration = Duration::from_secs(10);

/// `OCF_ROOT`: the `OCF_ROOT` environment variable of the agent process if
/// set, else `/usr/lib/ocf`.
pub fn ocf_root() -> PathBuf {
    std::env::var_os("OCF_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(exec::DEFAULT_OCF_ROOT))
}

/// Builds the runner of `spec` for instance `instance`; `None` when `ocf`
/// is not a `PROVIDER:TYPE` name.
pub fn agent_for(spec: &OcfAgent, instance: &str, root: PathBuf) -> Option<Agent> {
    let (provider, kind) = spec.provider_and_type()?;
    Some(Agent {
        root,
        provider: provider.into(),
        kind: kind.into(),
        instance: instance.into(),
        params: spec
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
    })
}

/// Runs the agent's `meta-data` and parses it.
pub async fn fetch_metadata(agent: &Agent) -> Result<Metadata, DriverError> {
    let out = agent
        .run("meta-data", META_DATA_TIMEOUT, Duration::ZERO)
        .await
        .map_err(|e| DriverError::Failed(format!("{}: {e}", agent.name())))?;
    if out.code != 0 {
        return Err(DriverError::Failed(format!(
            "{} meta-data exited {}",
            agent.name(),
            out.code
        )));
    }
    Metadata::parse(&out.stdout).map_err(|e| DriverError::Failed(format!("{}: {e}", agent.name())))
}

#[derive(Debug)]
pub struct OcfDriver {
    label: String,
    spec: OcfAgent,
    agent: Option<Agent>,
    /// The meta-data, read at the first start.
    metadata: Option<Metadata>,
    /// Where the resource is recorded while it may be held (the agent's
    /// data directory and the group), so that the lease guard can stop it
    /// without the agent ([`records`]); `None` records nothing.
    record_in: Option<(PathBuf, String)>,
    next_check: Instant,
    last: ResourceHealth,
    /// Since the last start, until its first monitor passed: `None` once
    /// ready (or never started here).
    starting_since: Option<Instant>,
}

/// How soon the monitor runs again while a started resource is not ready.
const STARTING_RECHECK: Duration = Duration::from_millis(500);

/// A monitor's answer to a resource that has not passed one since its
/// start, `elapsed` after the start, with `grace` (its start timeout) to
/// become ready: success is ready; "not running" (7) is "not yet" within
/// the grace and a failed start after it; any error (a monitor that fails
/// or cannot run) is a failure at once, as it would be later.
pub fn first_monitor(
    verdict: Option<Verdict>,
    why: String,
    elapsed: Duration,
    grace: Duration,
) -> ResourceHealth {
    match verdict {
        Some(Verdict::Success | Verdict::Promoted) => ResourceHealth::Healthy,
        Some(Verdict::NotRunning) if elapsed < grace => ResourceHealth::Starting(format!(
            "waiting for its first monitor to pass (within its start timeout, {}): {why}",
            humantime::format_duration(grace)
        )),
        Some(Verdict::NotRunning) => ResourceHealth::Unhealthy(format!(
            "not ready within its start timeout ({}): {why}",
            humantime::format_duration(grace)
        )),
        _ => ResourceHealth::Unhealthy(why),
    }
}

impl OcfDriver {
    pub fn new(label: String, instance: &str, spec: OcfAgent, root: PathBuf) -> Self {
        let agent = agent_for(&spec, instance, root);
        OcfDriver {
            label,
            spec,
            agent,
            metadata: None,
            record_in: None,
            next_check: Instant::now(),
            last: ResourceHealth::Healthy,
            starting_since: None,
        }
    }

    /// Records the resource under `data_dir` for `group` from before its
    /// `start` until a `stop` worked ([`records`]).
    pub fn recorded_in(mut self, data_dir: PathBuf, group: &str) -> Self {
        self.record_in = Some((data_dir, group.to_owned()));
        self
    }

    /// Deletes the record after a stop that worked; a record left behind
    /// costs only an idempotent `stop` by the guard.
    fn forget(&self, agent: &Agent) {
        if let Some((dir, group)) = &self.record_in
            && let Err(e) = records::remove(dir, group, &agent.instance)
        {
            tracing::warn!(group, "cannot delete the record of {}: {e}", self.label);
        }
    }

    pub fn label(&self) -> String {
        self.label.clone()
    }

    fn agent(&self) -> Result<&Agent, DriverError> {
        self.agent.as_ref().ok_or_else(|| {
            DriverError::Unavailable(format!(
                "`{}` is not an OCF agent name: write it as PROVIDER:TYPE, e.g. heartbeat:Filesystem",
                self.spec.ocf
            ))
        })
    }

    fn timeout(&self, action: &str) -> Duration {
        let configured = match action {
            "start" => self.spec.timeouts.and_then(|t| t.start),
            "stop" => self.spec.timeouts.and_then(|t| t.stop),
            "monitor" => self.spec.monitor.and_then(|m| m.timeout),
            _ => None,
        };
        configured
            .map(|d| d.get())
            .or_else(|| self.metadata.as_ref().and_then(|m| m.timeout(action)))
            .unwrap_or(DEFAULT_TIMEOUT)
    }

    fn interval(&self) -> Duration {
        self.spec
            .monitor
            .and_then(|m| m.interval)
            .map(|d| d.get())
            .or_else(|| self.metadata.as_ref().and_then(|m| m.interval("monitor")))
            .unwrap_or(DEFAULT_INTERVAL)
    }

    pub async fn start(&mut self) -> Result<(), DriverError> {
        let agent = self.agent()?.clone();
        if !exec::installed(&agent.path()) {
            return Err(DriverError::Unavailable(format!(
                "{} is not installed on this node ({} missing)",
                agent.name(),
                agent.path().display()
            )));
        }
        if self.metadata.is_none() {
            // Without meta-data the defaults apply; the agent itself will
            // say at `start` what is wrong with it.
            self.metadata = fetch_metadata(&agent).await.ok();
        }
        if let Some((dir, group)) = &self.record_in {
            records::write(dir, group, &agent, self.timeout("stop"))
                .map_err(|e| DriverError::io(format!("recording {}", self.label), e))?;
        }
        let out = agent
            .run("start", self.timeout("start"), Duration::ZERO)
            .await
            .map_err(|e| run_error(&agent, e))?;
        self.next_check = Instant::now();
        match exec::verdict(out.code) {
            Verdict::Success => {
                // Ready only once a monitor passed ([`first_monitor`]).
                self.starting_since = Some(Instant::now());
                self.last = ResourceHealth::Starting(format!(
                    "{}: waiting for its first monitor",
                    self.label
                ));
                Ok(())
            }
            v => Err(failure(&agent, "start", &out, v)),
        }
    }

    /// `stop` succeeds with 0; "not running" (7, outside the API for stop
    /// but what a stopped resource truthfully is) counts as stopped too.
    pub async fn stop(&mut self) -> Result<(), DriverError> {
        let agent = self.agent()?.clone();
        if !exec::installed(&agent.path()) {
            // Never started here (start checks the same): nothing to stop.
            self.forget(&agent);
            return Ok(());
        }
        let out = agent
            .run("stop", self.timeout("stop"), Duration::ZERO)
            .await
            .map_err(|e| run_error(&agent, e))?;
        match exec::verdict(out.code) {
            Verdict::Success | Verdict::NotRunning => {
                self.forget(&agent);
                Ok(())
            }
            v => Err(failure(&agent, "stop", &out, v)),
        }
    }

    /// Runs `monitor` when due. Until a monitor has passed since the
    /// last start the resource is starting ([`first_monitor`]), asked
    /// again every [`STARTING_RECHECK`]; then every interval.
    pub async fn check(&mut self) -> ResourceHealth {
        if Instant::now() < self.next_check {
            return self.last.clone();
        }
        let interval = self.interval();
        let (verdict, why) = self.monitor(interval).await;
        let health = match self.starting_since {
            Some(since) => first_monitor(verdict, why, since.elapsed(), self.timeout("start")),
            None => match verdict {
                Some(Verdict::Success | Verdict::Promoted) => ResourceHealth::Healthy,
                _ => ResourceHealth::Unhealthy(why),
            },
        };
        let health = match health {
            ResourceHealth::Healthy => ResourceHealth::Healthy,
            ResourceHealth::Starting(w) => ResourceHealth::Starting(format!("{}: {w}", self.label)),
            ResourceHealth::Unhealthy(w) => {
                ResourceHealth::Unhealthy(format!("{}: {w}", self.label))
            }
        };
        self.next_check = Instant::now()
            + match health {
                ResourceHealth::Starting(_) => STARTING_RECHECK.min(interval),
                _ => interval,
            };
        if health.is_healthy() {
            self.starting_since = None;
        }
        self.last = health.clone();
        health
    }

    /// Runs `monitor`: its verdict (`None`: it could not run or timed out)
    /// and the words for a failure.
    async fn monitor(&self, interval: Duration) -> (Option<Verdict>, String) {
        let agent = match self.agent() {
            Err(e) => return (Some(Verdict::Hard), e.to_string()),
            Ok(agent) => agent.clone(),
        };
        match agent
            .run("monitor", self.timeout("monitor"), interval)
            .await
        {
            Err(e) => (None, e.to_string()),
            Ok(out) => {
                let v = exec::verdict(out.code);
                let why = match v {
                    Verdict::NotRunning => "not running (monitor returned 7)".to_string(),
                    v => failure(&agent, "monitor", &out, v).to_string(),
                };
                (Some(v), why)
            }
        }
    }
}

fn run_error(agent: &Agent, e: RunError) -> DriverError {
    DriverError::Failed(format!("{}: {e}", agent.name()))
}

/// The error for a failed action: hard and fatal codes are permanent on this
/// node (the group fails over at once), the rest may be retried.
fn failure(agent: &Agent, action: &str, out: &exec::Outcome, v: Verdict) -> DriverError {
    let reason = out
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    let text = format!(
        "{} `{action}` returned {} ({}){reason}",
        agent.name(),
        out.code,
        exec::code_name(out.code)
    );
    match v {
        Verdict::Hard => DriverError::Unavailable(text),
        Verdict::Fatal => DriverError::Misconfigured(text),
        _ => DriverError::Failed(text),
    }
}

/// The meta-data of every OCF agent `config` names, for `asctl validate`
/// (checked by the rules on data sources): each agent's `meta-data` action run
/// once, under `root`. An agent that is not installed there, or whose
/// meta-data cannot be read, maps to `None`.
pub fn gather_metadata(
    configs: &[&crate::model::Config],
    root: &std::path::Path,
) -> crate::model::ocf_metadata::OcfCatalog {
    let names = configs.iter().flat_map(|config| {
        let sources = config
            .data_sources
            .iter()
            .filter_map(|d| d.spec.agent.as_ref().map(|a| a.ocf.clone()));
        let resources = config
            .groups
            .iter()
            .flat_map(|g| g.spec.resources.iter().map(|r| r.ocf.clone()));
        sources.chain(resources)
    });
    let mut out = crate::model::ocf_metadata::OcfCatalog::new();
    for name in names {
        if out.contains_key(&name) {
            continue;
        }
        let Some((provider, kind)) = crate::model::split_ocf(&name) else {
            continue;
        };
        let path = root.join("resource.d").join(provider).join(kind);
        let md = exec::installed(&path)
            .then(|| metadata_blocking(&path, root))
            .flatten();
        out.insert(name, md);
    }
    out
}

/// Runs `meta-data` without an async runtime (validate is synchronous),
/// killed at [`META_DATA_TIMEOUT`].
fn metadata_blocking(path: &std::path::Path, root: &std::path::Path) -> Option<Metadata> {
    use std::io::Read;
    let mut child = std::process::Command::new(path)
        .arg("meta-data")
        .env("OCF_ROOT", root)
        .env("OCF_RA_VERSION_MAJOR", "1")
        .env("OCF_RA_VERSION_MINOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = std::time::Instant::now() + META_DATA_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    Metadata::parse(&reader.join().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_monitor_waits_for_not_running_only_within_the_start_timeout() {
        let grace = Duration::from_secs(20);
        let first =
            |v, elapsed: u64| first_monitor(v, "why".into(), Duration::from_secs(elapsed), grace);
        assert_eq!(first(Some(Verdict::Success), 0), ResourceHealth::Healthy);
        assert!(
            matches!(first(Some(Verdict::NotRunning), 19), ResourceHealth::Starting(w)
            if w == "waiting for its first monitor to pass (within its start timeout, 20s): why")
        );
        assert_eq!(
            first(Some(Verdict::NotRunning), 20),
            ResourceHealth::Unhealthy("not ready within its start timeout (20s): why".into())
        );
        for v in [
            Some(Verdict::Soft),
            Some(Verdict::Hard),
            Some(Verdict::Fatal),
            None,
        ] {
            assert_eq!(
                first(v, 0),
                ResourceHealth::Unhealthy("why".into()),
                "{v:?}"
            );
        }
    }
}
