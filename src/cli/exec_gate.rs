//! `asctl exec-gate` (hidden): how the agent starts a group's process
//! (`asctl::drivers::process`). Not meant to be run by hand.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct ExecGateArgs {
    /// The program and its arguments, run once the agent says go.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

pub fn run(args: ExecGateArgs) -> anyhow::Result<ExitCode> {
    // Returns only when the program is not to run, or could not be run.
    let err = asctl::drivers::process::exec_gate(&args.command);
    eprintln!("asctl exec-gate: {err}");
    Ok(ExitCode::from(asctl::drivers::process::EXEC_GATE_REFUSED))
}
