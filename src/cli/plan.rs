//! `asctl plan PATH`: what applying PATH would change in the running domain.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use asctl::diag;
use asctl::load::{self, Input, Loaded};
use asctl::model::{Config, Name};
use asctl::plan::{NodeState, Plan, SavedPlan, render_human, render_json};
use asctl::rules;
use clap::{Args, ValueEnum};

use super::remote::{Remote, RemoteArgs, runtime};
use super::{EXIT_FINDINGS, EXIT_OK};

/// Exit code of `--detailed-exitcode` when the plan has changes.
pub const EXIT_CHANGES: u8 = 2;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The desired configuration: a file or a directory.
    #[arg(value_name = "PATH")]
    pub path: String,
    /// Exit 0 when there is nothing to change, 2 when there is, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[arg(long, value_enum, default_value_t = PlanFormat::Human)]
    pub format: PlanFormat,
    /// Save the plan, bound to the domain (its name, generation and live
    /// configuration), for `asctl apply FILE`.
    #[arg(
        short = 'o',
        long = "out",
        value_name = "FILE",
        conflicts_with = "fail"
    )]
    pub out: Option<PathBuf>,
    /// What-if: plan as if this node had failed (repeat for several); the
    /// live placement is the starting point. Such a plan cannot be saved.
    #[arg(long = "fail", value_name = "NODE")]
    pub fail: Vec<Name>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Human,
    /// The versioned JSON form of the plan (docs/plan.md).
    Json,
}

/// Validates what was loaded; prints the findings to stderr. `None` when
/// there are errors (nothing may be planned or applied from it).
pub fn validated(loaded: Loaded) -> Option<Config> {
    // Checked first: a tree of several domains is a usage mistake, and its
    // findings would be about the wrong question.
    if let Err(e) = loaded.single_domain() {
        eprintln!("error: {e}");
        return None;
    }
    let v = rules::validate(loaded);
    if v.findings.iter().any(|f| f.is_active()) {
        eprint!(
            "{}",
            diag::render_human(&v.findings, &v.loaded.sources, v.loaded.docs.len())
        );
    }
    if v.has_errors() {
        eprintln!("error: the configuration has errors; nothing is planned or applied");
        return None;
    }
    Some(v.loaded.config)
}

/// Reads and validates PATH.
pub fn load_desired(path: &str) -> anyhow::Result<Option<Config>> {
    let loaded = load::load(&[Input::from_arg(path)]).context("cannot read the configuration")?;
    Ok(validated(loaded))
}

pub fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let detailed = args.detailed_exitcode;
    match plan(args) {
        Ok(code) => Ok(code),
        // With --detailed-exitcode, 2 means "changes": an error must not look
        // like one.
        Err(e) if detailed => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(EXIT_FINDINGS))
        }
        Err(e) => Err(e),
    }
}

fn plan(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let Some(desired) = load_desired(&args.path)? else {
        return Ok(ExitCode::from(EXIT_FINDINGS));
    };
    let remote = Remote::resolve(&args.remote, Some(&desired))?;
    let mut live = runtime()?.block_on(remote.live())?;
    for node in &args.fail {
        if desired.nodes.get(node.as_str()).is_none() {
            anyhow::bail!("--fail {node}: the configuration has no node `{node}`");
        }
        live.health.insert(node.clone(), NodeState::Down);
    }
    if !args.fail.is_empty() && args.format == PlanFormat::Human {
        let names: Vec<&str> = args.fail.iter().map(|n| n.as_str()).collect();
        println!("What-if: as if {} had failed.\n", names.join(", "));
    }
    let plan = Plan::compute(&desired, &live);
    match args.format {
        PlanFormat::Human => {
            print!("{}", render_human(&plan));
            print!("{}", super::overrides::render(&live.overrides, live.now_ms));
        }
        PlanFormat::Json => print!("{}", render_json(&plan)),
    }
    if let Some(out) = &args.out {
        let saved = SavedPlan::new(plan.clone(), &desired, &live);
        write_private(out, saved.to_json().as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
        if args.format == PlanFormat::Human {
            println!(
                "\nSaved the plan to {}; `asctl apply {}` applies exactly this plan while the \
                 domain stays at generation {}.",
                out.display(),
                out.display(),
                plan.base_generation
            );
        }
    }
    Ok(ExitCode::from(
        match (args.detailed_exitcode, plan.is_empty()) {
            (true, false) => EXIT_CHANGES,
            _ => EXIT_OK,
        },
    ))
}

/// A saved plan holds the whole configuration, secrets included.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    asctl::private::create_file(path)?.write_all(bytes)
}
