//! The `asctl` command line. Thin: it parses arguments and dispatches to the
//! library; each command lives in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

// `validate` builds and drops millions of small values (parsed trees,
// strings) on every core at once, where the system allocator spends a
// fifth of the run; the agent is the same binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cli::EXIT_USAGE)
        }
    }
}
