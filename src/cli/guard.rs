//! `asctl guard` (hidden): the lease guard the agent starts on every node
//! (`asctl::agent::failover::guard`). Not meant to be run by hand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::EXIT_OK;

#[derive(Debug, Args)]
pub struct GuardArgs {
    /// The agent's data directory (pid files under run/, addresses under ips/,
    /// mounts under mounts/).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
}

pub fn run(args: GuardArgs) -> anyhow::Result<ExitCode> {
    asctl::agent::failover::guard::serve(&args.data_dir);
    Ok(ExitCode::from(EXIT_OK))
}
