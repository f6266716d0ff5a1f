//! Command definitions (clap derive) and dispatch.

mod agent;
mod apply;
mod catalog;
mod clear;
mod credentials;
mod demo_server;
mod exec_gate;
mod guard;
mod matrix;
mod plan;
mod remote;
mod simulate;
mod status;
mod up;
mod validate;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code: no errors (warnings allowed).
pub const EXIT_OK: u8 = 0;
/// Exit code: the configuration has errors.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code: usage error or I/O failure.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "asctl",
    version,
    about = "High-availability cluster manager driven by configuration files",
    long_about = "asctl validates HA domain definitions (nodes, hosts, network lines, data sources, \
resource groups) written in YAML against the compatibility rules of EMC AutoStart on VMware, \
and reports every finding with its file, line and column.\n\n\
Exit codes: 0 no errors (warnings allowed), 1 errors found, 2 usage or I/O failure.",
    after_help = "Examples:\n  asctl validate examples/\n  asctl validate --format sarif cluster/ > asctl.sarif\n  asctl explain AS0101\n  asctl matrix sharedDisk"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check configuration files and report every finding.
    Validate(validate::ValidateArgs),
    /// Print the JSON Schema of configuration documents (draft-07).
    Schema,
    /// Explain a rule: why it exists, the seed reference, a failing and a passing example.
    Explain(catalog::ExplainArgs),
    /// List every rule of the catalog.
    Rules(catalog::RulesArgs),
    /// Print the seed's support tables (Tables 1–10) from the data the rules use.
    Matrix(matrix::MatrixArgs),
    /// Serve HTTP answering the node's name: the quickstart's demo application.
    DemoServer(demo_server::DemoServerArgs),
    /// Start a local domain (agents on loopback) and apply its configuration.
    Up(up::UpArgs),
    /// Run the agent of one node (or the witness) of a domain.
    Agent(agent::AgentArgs),
    /// Write a domain's API token, CA and member certificates, and the CLI's domain.json.
    Credentials(credentials::CredentialsArgs),
    /// The lease guard the agent starts on its node (internal).
    #[command(hide = true)]
    Guard(guard::GuardArgs),
    /// Starts a group's process once the agent has recorded it (internal).
    #[command(hide = true)]
    ExecGate(exec_gate::ExecGateArgs),
    /// Show what applying a configuration would change in the running domain.
    Plan(plan::PlanArgs),
    /// Apply a configuration or a saved plan and follow the convergence.
    Apply(apply::ApplyArgs),
    /// Show the domain's nodes, groups and where they run.
    Status(status::StatusArgs),
    /// Re-plan on every change of the files; apply with --apply.
    Watch(watch::WatchArgs),
    /// Clear a group's failures so that it may be placed on those nodes again.
    #[command(long_about = clear::LONG_ABOUT)]
    Clear(clear::ClearArgs),
    /// Where every group would run with some nodes failed, and the N+1 check (no domain needed).
    #[command(long_about = simulate::LONG_ABOUT)]
    Simulate(simulate::SimulateArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Schema => {
            println!("{}", asctl::model::schema::schema_text());
            Ok(ExitCode::from(EXIT_OK))
        }
        Command::Explain(args) => catalog::explain(args),
        Command::Rules(args) => catalog::rules(args),
        Command::Matrix(args) => matrix::run(args),
        Command::DemoServer(args) => demo_server::run(args),
        Command::Up(args) => up::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Credentials(args) => credentials::run(args),
        Command::Guard(args) => guard::run(args),
        Command::ExecGate(args) => exec_gate::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Status(args) => status::run(args),
        Command::Watch(args) => watch::run(args),
        Command::Clear(args) => clear::run(args),
        Command::Simulate(args) => simulate::run(args),
    }
}
