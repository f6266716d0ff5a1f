use std::process::ExitCode;

use anyhow::Context;
use asctl::diag::{self, Severity};
use asctl::load::{self, Grouping, Input};
use asctl::rules;
use clap::{Args, ValueEnum};

use super::{EXIT_FINDINGS, EXIT_OK};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files or directories (read recursively for *.yaml / *.yml); `-` reads standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Treat warnings as errors (exit code 1 when there is any warning).
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub deny: Option<Deny>,
    /// Check every file alone, even under a domain's directory: syntax,
    /// schema, names and the rules local to each object, never findings
    /// that need the rest of the domain (for pre-commit hooks and editors).
    #[arg(long)]
    pub file_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// rustc-style text with source snippets.
    Human,
    /// The stable JSON report documented in the README.
    Json,
    /// SARIF 2.1.0, for code scanning.
    Sarif,
    /// GitHub Actions workflow annotations.
    Github,
    /// JUnit XML: one test case per file, a failure per error.
    Junit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Deny {
    /// Warnings count as errors.
    Warnings,
}

pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let inputs: Vec<Input> = args.paths.iter().map(|p| Input::from_arg(p)).collect();
    let grouping = if args.file_only {
        Grouping::FileOnly
    } else {
        Grouping::Domains
    };
    let loaded = load::load_with(&inputs, grouping).context("cannot read the configuration")?;
    // The OCF agents the configuration names, read where validate runs.
    let configs: Vec<&asctl::model::Config> = std::iter::once(&loaded.config)
        .chain(loaded.units.iter().filter_map(|u| u.config.as_ref()))
        .collect();
    let root = asctl::drivers::ocf::ocf_root();
    let ocf = asctl::drivers::ocf::gather_metadata(&configs, &root);
    let mut validation = rules::validate_with(loaded, Some(&ocf));
    if args.deny == Some(Deny::Warnings) {
        for f in &mut validation.findings {
            if f.severity == Severity::Warning {
                f.severity = Severity::Error;
            }
        }
    }
    let sources = &validation.loaded.sources;
    let documents = validation.loaded.docs.len();
    let text = match args.format {
        Format::Human => diag::render_human_styled(&validation.findings, sources, documents),
        Format::Json => diag::render_json(&validation.findings, sources, documents),
        Format::Sarif => diag::render_sarif(&validation.findings, sources),
        Format::Github => diag::render_github(&validation.findings, sources),
        Format::Junit => diag::render_junit(&validation.findings, sources),
    };
    // anstream drops the colours when they do not belong (--color, NO_COLOR,
    // not a terminal); the other formats carry none.
    {
        use std::io::Write;
        let mut out = anstream::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
    }
    let code = if validation.has_errors() {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    };
    // The process ends here: freeing every document and object one by one
    // would cost a twentieth of the run on a large tree, for nothing.
    std::mem::forget(validation);
    Ok(ExitCode::from(code))
}
