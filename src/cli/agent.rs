//! `asctl agent --config agent.yaml`: run one member of a domain.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use asctl::agent::daemon::{self, AgentConfig, RunOptions};
use clap::Args;

use super::EXIT_OK;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent's configuration (docs/runtime.md).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Run as the domain's witness: vote, run no groups.
    #[arg(long)]
    pub witness: bool,
    /// On SIGTERM, leave the groups running (the next agent adopts them).
    #[arg(long)]
    pub leave_running: bool,
}

pub fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    // One malloc arena instead of one per thread: the agent allocates
    // little, and every extra arena is memory an idle agent keeps for nothing.
    // SAFETY: mallopt only tunes the allocator, before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    let mut cfg = AgentConfig::read(&args.config)?;
    cfg.witness |= args.witness;
    // Two workers: the agent's work is small and mostly waiting; more
    // threads would only cost memory on the nodes.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = rt.block_on(daemon::run(
        cfg,
        RunOptions {
            leave_running: args.leave_running,
        },
    ));
    if result.is_err() {
        // A fail-stop may leave a thread in a storage call that does not
        // return (a hung disk): exit without waiting for it.
        rt.shutdown_timeout(std::time::Duration::from_millis(500));
    }
    result?;
    Ok(ExitCode::from(EXIT_OK))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ASCTL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
