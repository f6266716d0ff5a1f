//! `asctl explain` and `asctl rules`: the rule catalog for people and tools.

use std::process::ExitCode;

use asctl::catalog::{self, ALL, Origin, Rule};
use clap::{Args, ValueEnum};
use serde_json::json;

use super::{EXIT_OK, EXIT_USAGE};

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A rule ID (e.g. AS0101) or name (e.g. duplicate-key).
    #[arg(value_name = "RULE")]
    pub rule: String,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Human)]
    pub format: ListFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Human,
    Json,
}

pub fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let Some(rule) = catalog::find_rule(&args.rule) else {
        eprintln!(
            "error: no rule `{}`; `asctl rules` lists them all",
            args.rule
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    };
    print!("{}", explain_text(rule));
    Ok(ExitCode::from(EXIT_OK))
}

fn explain_text(rule: &Rule) -> String {
    let origin = match rule.origin {
        Origin::Seed(r) => format!("seed: {r}"),
        Origin::Asctl => "asctl's own rule (not from the seed)".to_owned(),
    };
    let scope = match rule.scope {
        catalog::Scope::Structural => "every qualification profile",
        catalog::Scope::Qualification => "VMware qualification profiles (not `generic`)",
    };
    format!(
        "{id} {name} ({sev})\n{title}\n\n{expl}\n\nFix: {fix}\nSource: {origin}\nApplies to: {scope}\n\n\
         Failing example:\n{fail}\nPassing example:\n{pass}",
        id = rule.id,
        name = rule.name,
        sev = rule.severity,
        title = rule.title,
        expl = rule.explanation,
        fix = rule.fix,
        fail = indent(rule.fail_example),
        pass = indent(rule.pass_example),
    )
}

fn indent(example: &[u8]) -> String {
    String::from_utf8_lossy(example)
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect()
}

/// Version of `rules --format json`; 1 is the first versioned form (an
/// object with `formatVersion`, `tool` and `rules`).
pub const RULES_FORMAT_VERSION: u32 = 1;

pub fn rules(args: RulesArgs) -> anyhow::Result<ExitCode> {
    match args.format {
        ListFormat::Human => {
            for r in ALL {
                let origin = r.seed_reference().unwrap_or("asctl");
                println!(
                    "{}  {:<8} {:<34} {}  [{}]",
                    r.id,
                    r.severity.as_str(),
                    r.name,
                    r.title,
                    origin
                );
            }
        }
        ListFormat::Json => {
            let list: Vec<_> = ALL
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id,
                        "name": r.name,
                        "severity": r.severity,
                        "title": r.title,
                        "explanation": r.explanation,
                        "fix": r.fix,
                        "seedReference": r.seed_reference(),
                        "scope": match r.scope { catalog::Scope::Structural => "structural", catalog::Scope::Qualification => "qualification" },
                    })
                })
                .collect();
            let report = json!({
                "formatVersion": RULES_FORMAT_VERSION,
                "tool": { "name": "asctl", "version": env!("CARGO_PKG_VERSION") },
                "rules": list,
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}
