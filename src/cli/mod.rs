//! Command definitions (clap derive) and dispatch.

mod agent;
mod apply;
mod catalog;
mod clear;
mod confirm_down;
mod credentials;
mod demo_server;
mod demo_writer;
mod events;
mod exec_gate;
mod guard;
mod matrix;
mod overrides;
mod plan;
mod remote;
mod simulate;
mod status;
mod up;
mod validate;
mod watch;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

/// Exit code: no errors (warnings allowed).
pub const EXIT_OK: u8 = 0;
/// Exit code: the configuration has errors.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code: usage error or I/O failure.
pub const EXIT_USAGE: u8 = 2;

/// The one-line description: `-h` shows it, `--help` starts with it.
const ABOUT: &str = "High-availability cluster manager driven by configuration files";

#[derive(Debug, Parser)]
#[command(
    name = "asctl",
    version,
    about = ABOUT,
    long_about = "High-availability cluster manager driven by configuration files.\n\n\
asctl checks HA domain definitions (nodes, hosts, network lines, data sources, resource \
groups) written in YAML against the compatibility rules of EMC AutoStart on VMware and \
reports every finding with its file, line and column; it plans and applies a configuration \
to a running domain, and runs the node agents that keep the groups online.\n\n\
Exit codes: 0 no errors (warnings allowed), 1 errors found, 2 usage or I/O failure.",
    after_help = "Examples:\n  asctl validate examples/\n  asctl validate --format sarif cluster/ > asctl.sarif\n  asctl explain AS0101\n  asctl up\n  asctl plan my-domain/"
)]
pub struct Cli {
    /// When to colour the output: `auto` on a terminal unless NO_COLOR is
    /// set, `always`, or `never`.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

impl ColorWhen {
    /// Sets the choice for every `anstream` stream of the process.
    fn apply(self) {
        let choice = match self {
            ColorWhen::Auto => anstream::ColorChoice::Auto,
            ColorWhen::Always => anstream::ColorChoice::Always,
            ColorWhen::Never => anstream::ColorChoice::Never,
        };
        choice.write_global();
    }
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
    /// Append each line a client sends to DIR/records.log with a sequence
    /// number, answering `ack SEQ` only after fsync: a demo database for
    /// data failover.
    DemoWriter(demo_writer::DemoWriterArgs),
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
    /// Clear a group's failures and end operator overrides.
    #[command(long_about = clear::LONG_ABOUT)]
    Clear(clear::ClearArgs),
    /// Move a resource group to a node, for a while or until cleared.
    #[command(long_about = overrides::MOVE_ABOUT)]
    Move(overrides::MoveArgs),
    /// Put a node on standby (it takes no group), for a while or until unstandby.
    #[command(long_about = overrides::STANDBY_ABOUT)]
    Standby(overrides::StandbyArgs),
    /// End a node's standby override.
    Unstandby(overrides::UnstandbyArgs),
    /// List the domain's history: failures, failovers, applies, overrides.
    #[command(long_about = events::LONG_ABOUT)]
    Events(events::EventsArgs),
    /// Confirm that a node is really off, so that groups it is unclean for may start elsewhere.
    #[command(long_about = confirm_down::LONG_ABOUT)]
    ConfirmDown(confirm_down::ConfirmDownArgs),
    /// Where every group would run with some nodes failed, and the N+1 check (no domain needed).
    #[command(long_about = simulate::LONG_ABOUT)]
    Simulate(simulate::SimulateArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(CompletionsArgs),
    /// Write the man pages (asctl.1 and one per command).
    Man(ManArgs),
}

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell, e.g. `asctl completions bash > /etc/bash_completion.d/asctl`.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Directory to write asctl.1 and asctl-COMMAND.1 into; without it,
    /// asctl.1 is printed.
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
}

/// The clap definition of the command line (for completions and man pages).
pub fn command() -> clap::Command {
    Cli::command()
}

fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    // Into memory first: the generator panics on a write error (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command(), "asctl", &mut script);
    std::io::stdout().write_all(&script)?;
    Ok(ExitCode::from(EXIT_OK))
}

/// Every page: the tool's and one per visible command, as (file name, roff).
pub fn man_pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let cmd = command();
    let mut pages = Vec::new();
    let mut page = |name: String, man: clap_mangen::Man| -> anyhow::Result<()> {
        let mut roff = Vec::new();
        man.render(&mut roff)?;
        pages.push((name, roff));
        Ok(())
    };
    page("asctl.1".into(), clap_mangen::Man::new(cmd.clone()))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("asctl-{}", sub.get_name());
        let man = clap_mangen::Man::new(sub.clone()).title(name.to_uppercase());
        page(format!("{name}.1"), man)?;
    }
    Ok(pages)
}

fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let pages = man_pages()?;
    match args.out {
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&pages[0].1)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, roff) in pages {
                let path = dir.join(name);
                std::fs::write(&path, roff)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}

impl Command {
    /// Whether the command runs for others (an agent, its guard, `up`'s
    /// supervisor, the demo servers, the agent's `exec-gate`) or writes
    /// files (`credentials`): those must see a closed pipe or socket
    /// as an error to handle, not die of it. Every other command is a
    /// client that prints: what it changes in the domain is one commit,
    /// applied whole or not at all, so its reader going away is like Ctrl-C.
    fn serves_or_writes(&self) -> bool {
        matches!(
            self,
            Command::DemoServer(_)
                | Command::DemoWriter(_)
                | Command::Up(_)
                | Command::Agent(_)
                | Command::Credentials(_)
                | Command::Guard(_)
                | Command::ExecGate(_)
        )
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    cli.color.apply();
    if !cli.command.serves_or_writes() {
        // Rust ignores SIGPIPE so that a server sees EPIPE on a closed
        // socket; then `asctl rules | head` panics in `println!` once head
        // exits. A client has nothing to serve or undo: end quietly, as
        // every Unix filter does, when the reader has gone.
        // SAFETY: signal(2) with SIG_DFL before any thread is started.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
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
        Command::DemoWriter(args) => demo_writer::run(args),
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
        Command::Move(args) => overrides::run_move(args),
        Command::Standby(args) => overrides::run_standby(args),
        Command::Unstandby(args) => overrides::run_unstandby(args),
        Command::Events(args) => events::run(args),
        Command::ConfirmDown(args) => confirm_down::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Completions(args) => completions(args),
        Command::Man(args) => man(args),
    }
}
