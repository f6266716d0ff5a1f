//! `asctl up [DIR]`: a whole local domain on this machine.
//!
//! Validates DIR (default: the embedded copy of examples/quickstart),
//! prepares a state directory (token, a local CA and certificates, one
//! `agent.yaml` per node), starts one `asctl agent` child per node on
//! loopback, waits for the domain to form, applies the configuration through
//! the same path as `asctl apply`, prints the status, and stays until Ctrl-C.
//! Then it stops every agent with SIGTERM (which takes their groups offline)
//! and waits for them, so nothing is left running. When the bring-up fails
//! (an agent exits, the domain does not form, the apply is refused or does
//! not converge within `--timeout`) it says why, stops what it started the
//! same way and exits 1.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use asctl::domain::WITNESS;
use asctl::model::Config;
use asctl::plan::{NodeState, Plan, render_human};
use clap::Args;

use super::apply::commit_and_follow;
use super::credentials::{self, Member};
use super::plan::load_desired;
use super::remote::{Remote, RemoteArgs, runtime, state_root};
use super::{EXIT_FINDINGS, EXIT_OK};

/// examples/quickstart, so that `asctl up` works from anywhere.
const QUICKSTART: &[(&str, &str)] = &[
    (
        "domain.yaml",
        include_str!("../../examples/quickstart/domain.yaml"),
    ),
    (
        "nodes.yaml",
        include_str!("../../examples/quickstart/nodes.yaml"),
    ),
    (
        "lines.yaml",
        include_str!("../../examples/quickstart/lines.yaml"),
    ),
    (
        "group-web.yaml",
        include_str!("../../examples/quickstart/group-web.yaml"),
    ),
    (
        "group-api.yaml",
        include_str!("../../examples/quickstart/group-api.yaml"),
    ),
    (
        "group-batch.yaml",
        include_str!("../../examples/quickstart/group-batch.yaml"),
    ),
];

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The domain's configuration [default: the built-in quickstart].
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Where the token, certificates, agent data and logs go [default:
    /// $XDG_STATE_HOME/asctl/<domain>].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Prepare the state directory (token, certificates, agent.yaml files)
    /// and exit without starting anything.
    #[arg(long)]
    pub init_only: bool,
    /// How long to wait for the domain to form, and then for the apply to
    /// converge; `up` stops everything and exits 1 when either runs out.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub timeout: Duration,
}

pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let (config_path, embedded) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (PathBuf::new(), true),
    };
    // The embedded files are validated from a temporary copy first, so the
    // state directory (named after the domain) can be chosen afterwards.
    let staging;
    let config_path = if embedded {
        staging = tempdir_for_embedded()?;
        staging.clone()
    } else {
        config_path
    };
    let Some(config) = load_desired(&config_path.to_string_lossy())? else {
        return Ok(ExitCode::from(EXIT_FINDINGS));
    };
    let domain = config
        .domain
        .as_ref()
        .map(|d| d.name().to_string())
        .context("the configuration has no Domain")?;
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| state_root().join(&domain));
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let state_dir = state_dir
        .canonicalize()
        .with_context(|| format!("resolving {}", state_dir.display()))?;
    let config_path = if embedded {
        let dir = state_dir.join("config");
        copy_dir(&config_path, &dir)?;
        let _ = std::fs::remove_dir_all(&config_path);
        dir
    } else {
        config_path
            .canonicalize()
            .with_context(|| format!("resolving {}", config_path.display()))?
    };
    let members = local_members(&config)?;
    prepare(&state_dir, &config_path, &domain, &members)?;
    println!("State directory: {}", state_dir.display());
    if args.init_only {
        return Ok(ExitCode::from(EXIT_OK));
    }

    let mut children = Children::default();
    for m in &members {
        let dir = state_dir.join("nodes").join(&m.name);
        let log = std::fs::File::create(dir.join("agent.log"))
            .with_context(|| format!("creating {}", dir.join("agent.log").display()))?;
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
            .with_context(|| format!("starting the agent of {}", m.name))?;
        println!(
            "Started the agent of {} (pid {}) on {}",
            m.name,
            child.id(),
            m.addr
        );
        std::fs::write(dir.join("agent.pid"), child.id().to_string())?;
        children.0.push((m.name.clone(), child));
    }

    let rt = runtime()?;
    let remote = Remote::resolve(
        &RemoteArgs {
            endpoints: vec![],
            token: None,
            ca: None,
            state_dir: Some(state_dir.clone()),
        },
        Some(&config),
    )?;
    let result = rt.block_on(async {
        tokio::select! {
            r = bring_up(&remote, &config, &config_path, args.timeout, &mut children) => r.map(Some),
            _ = shutdown_signal() => Ok(None),
        }
    });
    let code = match result {
        Ok(Some(())) => {
            println!(
                "\nThe domain runs. From another terminal:\n  asctl status\n  asctl plan {p}\n  \
                 asctl apply {p}\nPress Ctrl-C to stop every agent and group.",
                p = config_path.display()
            );
            rt.block_on(shutdown_signal());
            EXIT_OK
        }
        // Ctrl-C during the bring-up: the user asked for the stop.
        Ok(None) => EXIT_OK,
        // Whatever failed, nothing started here is left running, and the
        // exit code says it failed (scripts and CI run `up` too).
        Err(e) => {
            eprintln!(
                "error: {e:#}\nerror: the domain did not come up; stopping what `asctl up` \
                 started (the agents' logs: {}/nodes/<node>/agent.log)",
                state_dir.display()
            );
            EXIT_FINDINGS
        }
    };
    println!("\nStopping the domain...");
    children.stop();
    println!("Stopped.");
    Ok(ExitCode::from(code))
}

/// Waits for the domain, applies the configuration, follows it until it
/// converged, prints the status. `Err` when any of it failed: an agent
/// exited, the domain did not form, the apply was refused or did not
/// converge within `timeout`.
async fn bring_up(
    remote: &Remote,
    config: &Config,
    path: &Path,
    timeout: Duration,
    children: &mut Children,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let nodes: Vec<String> = config.nodes.iter().map(|n| n.name().to_string()).collect();
    print!("Waiting for the domain to form");
    loop {
        if let Ok(s) = remote.status().await {
            let up = nodes.iter().all(|n| {
                s.nodes
                    .iter()
                    .any(|(name, v)| name.as_str() == n && v.state == NodeState::Up)
            });
            if s.leader.is_some() && up {
                println!(" — leader {}", s.leader.unwrap_or_default());
                break;
            }
        }
        if let Some(exited) = children.exited() {
            println!();
            bail!("{exited} before the domain formed");
        }
        if tokio::time::Instant::now() >= deadline {
            println!();
            bail!(
                "the domain did not form within {}: not every node came up with a leader",
                humantime::format_duration(timeout)
            );
        }
        print!(".");
        use std::io::Write;
        std::io::stdout().flush().ok();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let live = remote.live().await?;
    let plan = Plan::compute(config, &live);
    println!("\nApplying {}:\n", path.display());
    print!("{}", render_human(&plan));
    if !plan.is_empty() {
        let converged = commit_and_follow(remote, config, &plan, timeout).await?;
        if !converged {
            bail!(
                "the configuration was applied but did not converge within {} (the summary \
                 above says which groups and why)",
                humantime::format_duration(timeout)
            );
        }
    }
    let status = remote.status().await?;
    println!(
        "\n{}",
        super::status::render(&status, std::time::SystemTime::now())
    );
    Ok(())
}

/// The configuration's members (nodes and witness), all of which must be on
/// loopback: `up` never starts something reachable from the network.
fn local_members(config: &Config) -> anyhow::Result<Vec<Member>> {
    let members = credentials::members(config)?;
    for m in &members {
        check_loopback(&m.host, &m.name)?;
    }
    Ok(members)
}

fn check_loopback(host: &str, who: &str) -> anyhow::Result<()> {
    let ok = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !ok {
        bail!(
            "{who}: agent address {host} is not on loopback; `asctl up` runs local domains only \
             (run `asctl agent` on each machine of a real domain)"
        );
    }
    Ok(())
}

/// Token, certificates, `domain.json` ([`credentials::write`]) and an
/// `agent.yaml` per member. Existing credentials are kept, so `up` again
/// resumes the same domain.
fn prepare(
    state: &Path,
    config_path: &Path,
    domain: &str,
    members: &[Member],
) -> anyhow::Result<()> {
    credentials::write(state, domain, members, false)?;
    for m in members {
        let dir = state.join("nodes").join(&m.name);
        std::fs::create_dir_all(&dir)?;
        let yaml = format!(
            "# Written by `asctl up`; see docs/runtime.md.\n\
             node: {name}\nlisten: \"{addr}\"\ndataDir: data\ntokenFile: ../../token\n\
             tls:\n  cert: ../../tls/{name}.crt\n  key: ../../tls/{name}.key\n  ca: ../../tls/ca.crt\n\
             bootstrap: {config}\nwitness: {witness}\n",
            name = m.name,
            addr = m.addr,
            config = serde_json::to_string(&config_path.to_string_lossy())?,
            witness = m.name == WITNESS,
        );
        std::fs::write(dir.join("agent.yaml"), yaml)?;
    }
    Ok(())
}

fn tempdir_for_embedded() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("asctl-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for (name, text) in QUICKSTART {
        // The schema comment points at a path that only exists in the repo.
        std::fs::write(dir.join(name), text)?;
    }
    Ok(dir)
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        // Keep an edited copy from an earlier `up`: it is the user's now.
        if !dest.exists() {
            std::fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
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

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The agents `up` started.
#[derive(Default)]
struct Children(Vec<(String, Child)>);

impl Children {
    /// An agent that is no longer running, said as such.
    fn exited(&mut self) -> Option<String> {
        self.0.iter_mut().find_map(|(name, c)| match c.try_wait() {
            Ok(Some(status)) => Some(format!("the agent of {name} exited ({status})")),
            _ => None,
        })
    }

    /// SIGTERM to all, then wait; SIGKILL whoever is still there after the
    /// grace period (its groups may then outlive it: said on stderr).
    fn stop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        for (_, c) in &self.0 {
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut waiting: BTreeMap<String, Child> = self.0.drain(..).collect();
        while !waiting.is_empty() && Instant::now() < deadline {
            waiting.retain(|_, c| !matches!(c.try_wait(), Ok(Some(_))));
            std::thread::sleep(Duration::from_millis(100));
        }
        for (name, mut c) in waiting {
            eprintln!("the agent of {name} did not stop in time; killing it");
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            self.stop();
        }
    }
}
