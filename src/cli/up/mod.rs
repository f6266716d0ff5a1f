//! `asctl up [DIR]`: a whole local domain on this machine, supervised.
//!
//! Validates DIR (default: the embedded copy of examples/quickstart), locks
//! the state directory (a second `up` of a running domain is refused before
//! it writes anything there, `lock`), prepares it (token, a local CA and
//! certificates, one `agent.yaml` per node; `--fresh` forgets the previous
//! domain, otherwise `up` says it resumes it), starts one `asctl agent` child
//! per node on loopback, waits for the domain to form, applies the
//! configuration through the same path as `asctl apply`, prints the status,
//! and then supervises the agents until Ctrl-C: one that exits is reported
//! and started again (`supervise`). On Ctrl-C it stops every agent with
//! SIGTERM (which takes their groups offline) and waits for them, so nothing
//! is left running. When the bring-up fails (an agent exits, the domain does
//! not form, the apply is refused or does not converge within `--timeout`)
//! it says why, stops what it started the same way and exits 1.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use asctl::domain::WITNESS;
use asctl::model::Config;
use asctl::plan::{NodeState, Plan, render_human};
use clap::Args;

use super::apply::{Followed, commit_and_follow};
use super::credentials::{self, Member};
use super::plan::load_desired;
use super::remote::{Remote, RemoteArgs, runtime, state_root};
use super::{EXIT_FINDINGS, EXIT_OK};
use supervise::Agents;

mod lock;
mod supervise;

/// examples/quickstart, so that `asctl up` works from anywhere.
const QUICKSTART: &[(&str, &str)] = &[
    (
        "domain.yaml",
        include_str!("../../../examples/quickstart/domain.yaml"),
    ),
    (
        "nodes.yaml",
        include_str!("../../../examples/quickstart/nodes.yaml"),
    ),
    (
        "lines.yaml",
        include_str!("../../../examples/quickstart/lines.yaml"),
    ),
    (
        "group-web.yaml",
        include_str!("../../../examples/quickstart/group-web.yaml"),
    ),
    (
        "group-api.yaml",
        include_str!("../../../examples/quickstart/group-api.yaml"),
    ),
    (
        "group-batch.yaml",
        include_str!("../../../examples/quickstart/group-batch.yaml"),
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
    /// Start a new domain: forget the state directory's domain database
    /// (generation, placement, changes applied since) and, for the built-in
    /// quickstart, the edited copy of its configuration. Without it, `up`
    /// resumes the domain it finds there.
    #[arg(long)]
    pub fresh: bool,
    /// How long to wait for the domain to form, and then for the apply to
    /// converge; `up` stops everything and exits 1 when either runs out.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub timeout: Duration,
}

/// A state directory ready to run: locked, credentials and agent.yaml files
/// written.
struct Prepared {
    config: Config,
    config_path: PathBuf,
    state_dir: PathBuf,
    members: Vec<Member>,
    _lock: lock::UpLock,
}

pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let Some(p) = setup(&args)? else {
        return Ok(ExitCode::from(EXIT_FINDINGS));
    };
    println!("State directory: {}", p.state_dir.display());
    if args.init_only {
        return Ok(ExitCode::from(EXIT_OK));
    }
    let mut agents = Agents::new(&p.state_dir);
    for m in &p.members {
        agents.start(&m.name, &m.addr)?;
    }
    let rt = runtime()?;
    let remote = Remote::resolve(
        &RemoteArgs {
            endpoints: vec![],
            token: None,
            ca: None,
            state_dir: Some(p.state_dir.clone()),
        },
        Some(&p.config),
    )?;
    let result = rt.block_on(async {
        tokio::select! {
            r = bring_up(&remote, &p.config, &p.config_path, args.timeout, &mut agents) => r.map(Some),
            _ = shutdown_signal() => Ok(None),
        }
    });
    let code = match result {
        Ok(Some(())) => {
            println!(
                "\nThe domain runs. From another terminal:\n  asctl status\n  asctl plan {p}\n  \
                 asctl apply {p}\n`asctl up` restarts an agent that exits. Press Ctrl-C to stop \
                 every agent and group.",
                p = p.config_path.display()
            );
            rt.block_on(supervise(&mut agents));
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
                p.state_dir.display()
            );
            EXIT_FINDINGS
        }
    };
    println!("\nStopping the domain...");
    agents.stop();
    println!("Stopped.");
    Ok(ExitCode::from(code))
}

/// Watches the agents until Ctrl-C (or SIGTERM): an agent that exits is
/// reported at once and started again ([`Agents::tick`]).
async fn supervise(agents: &mut Agents) {
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => agents.tick(),
        }
    }
}

/// Validates the configuration, locks the state directory (refusing when
/// its domain runs), starts afresh with `--fresh` or says it resumes, and
/// writes the credentials and agent.yaml files. `None`: the configuration
/// has errors (printed).
fn setup(args: &UpArgs) -> anyhow::Result<Option<Prepared>> {
    // The embedded files are validated from a temporary copy first, so the
    // state directory (named after the domain) can be chosen afterwards.
    let embedded = args.dir.is_none();
    let source = match &args.dir {
        Some(d) => d.clone(),
        None => tempdir_for_embedded()?,
    };
    let loaded = load_desired(&source.to_string_lossy());
    let Some(config) = loaded? else {
        return Ok(None);
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
    let lock = lock::acquire(&state_dir)?;
    if args.fresh {
        start_afresh(&state_dir, embedded)?;
    } else if has_database(&state_dir) {
        println!(
            "Resuming the domain of {} (its database: generation, placement and what was \
             applied since); `asctl up --fresh` starts a new one.",
            state_dir.display()
        );
    }
    let config_path = if embedded {
        let dir = state_dir.join("config");
        copy_dir(&source, &dir)?;
        let _ = std::fs::remove_dir_all(&source);
        std::fs::write(dir.join(SCHEMA_FILE), asctl::model::schema::schema_text())
            .with_context(|| format!("writing the schema to {}", dir.display()))?;
        dir
    } else {
        source
            .canonicalize()
            .with_context(|| format!("resolving {}", source.display()))?
    };
    let members = local_members(&config)?;
    prepare(&state_dir, &config_path, &domain, &members)?;
    Ok(Some(Prepared {
        config,
        config_path,
        state_dir,
        members,
        _lock: lock,
    }))
}

/// Whether the state directory holds a domain database (some node's data).
fn has_database(state: &Path) -> bool {
    std::fs::read_dir(state.join("nodes"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|n| std::fs::read_dir(n.path().join("data")).is_ok_and(|mut d| d.next().is_some()))
}

/// Forgets the domain of `state` (its nodes' data and logs, the member the
/// CLI asked last, and for the built-in quickstart the copy of its
/// configuration); keeps the credentials and the lock.
fn start_afresh(state: &Path, embedded: bool) -> anyhow::Result<()> {
    let mut gone = vec![
        state.join("nodes"),
        state.join(super::remote::LAST_MEMBER_FILE),
    ];
    if embedded {
        gone.push(state.join("config"));
    }
    for p in gone {
        let removed = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", p.display())),
        }
    }
    println!("Starting a new domain in {} (--fresh).", state.display());
    Ok(())
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
    agents: &mut Agents,
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
        if let Some(exited) = agents.exited() {
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
        match commit_and_follow(remote, config, &plan, timeout).await? {
            Followed::Converged => {}
            Followed::NoNodeLeft => bail!(
                "the configuration was applied but some groups failed on every node they may \
                 run on (the lines above say where and why)"
            ),
            Followed::TimedOut => bail!(
                "the configuration was applied but did not converge within {} (the summary \
                 above says which groups and why)",
                humantime::format_duration(timeout)
            ),
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

/// The schema `up` writes beside its copy of the built-in configuration.
const SCHEMA_FILE: &str = "asctl.schema.json";
/// The modeline of the repository's examples: a path that exists only in
/// the repository.
const REPO_MODELINE: &str = "# yaml-language-server: $schema=../../schemas/asctl.schema.json";

/// `text` with the repository's modeline pointed at [`SCHEMA_FILE`] in the
/// same directory, so a copied configuration keeps its editor completion.
fn local_modeline(text: &str) -> String {
    match text.strip_prefix(REPO_MODELINE) {
        Some(rest) => format!("# yaml-language-server: $schema={SCHEMA_FILE}{rest}"),
        None => text.to_owned(),
    }
}

fn tempdir_for_embedded() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("asctl-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for (name, text) in QUICKSTART {
        std::fs::write(dir.join(name), local_modeline(text))?;
    }
    Ok(dir)
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        // Keep an edited copy from an earlier `up`: it is the user's now
        // (but an old copy's modeline is pointed at the schema beside it).
        if !dest.exists() {
            std::fs::copy(e.path(), dest)?;
        } else if let Ok(text) = std::fs::read_to_string(&dest)
            && text.starts_with(REPO_MODELINE)
        {
            std::fs::write(&dest, local_modeline(&text))?;
        }
    }
    Ok(())
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
