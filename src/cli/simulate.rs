//! `asctl simulate PATH [--fail NODE]... [--each-node]`: where every group
//! would run, offline, with no domain — like Pacemaker's `crm_simulate` or
//! VCS's `hasim` — and the N+1 check.
//!
//! The placement is `plan::place()`'s own (through `plan::whatif`), so the
//! answer is what a domain leader would decide. Whether a failover is
//! supported is the rules' judgement: the compatibility tables for the pair
//! of nodes (`rules::topology::pair_unsupported`, the matrix rule's own
//! lookup) and any error the Domain accepted about the group on that node.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use asctl::diag::{self, Severity};
use asctl::load::{self, Input};
use asctl::model::{Config, DesiredState, Name};
use asctl::plan::whatif::{self, Loss, Move};
use asctl::plan::{FORMAT_VERSION, Placement};
use asctl::rules::{self, Ctx, Validation, topology};
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::{EXIT_FINDINGS, EXIT_OK};

pub const LONG_ABOUT: &str = "Show where every resource group would run, without any domain: \
with every node up, or with the nodes given by --fail down (the same placement function the \
domain leader uses, with stickiness and failback). With --each-node, check N+1: for every single \
node lost (on top of --fail), every group must still have a node the rules support it on — the \
compatibility tables for the pair of nodes it fails over between, and no error the Domain \
accepted about the group on that node.\n\n\
Exit codes: 0 every group has a supported node in every case shown, 1 some group is left without \
one (or the configuration has errors), 2 usage or I/O failure (e.g. --fail names no node of the \
configuration).";

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  asctl simulate examples/standby-host --each-node\n  \
asctl simulate my-domain --fail node1 --fail node2\n  \
asctl simulate --format json --each-node my-domain"
)]
pub struct SimulateArgs {
    /// The configuration: a file or a directory.
    #[arg(value_name = "PATH")]
    pub path: String,
    /// A node to consider failed (repeat for several).
    #[arg(long = "fail", value_name = "NODE")]
    pub fail: Vec<Name>,
    /// Check N+1: lose every node in turn.
    #[arg(long)]
    pub each_node: bool,
    #[arg(long, value_enum, default_value_t = SimulateFormat::Human)]
    pub format: SimulateFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimulateFormat {
    Human,
    /// A versioned JSON object (`formatVersion` 1, docs/plan.md).
    Json,
}

/// The JSON form of the answer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    format_version: u32,
    domain: Option<String>,
    failed: BTreeSet<Name>,
    /// Every group's node with `failed` down.
    placement: Placement,
    /// What moved from the all-up placement because of `failed`.
    moves: Vec<Move>,
    /// Groups without a node in `placement` that are not declared offline.
    homeless: Vec<Name>,
    /// Groups declared `state: offline`: no node on purpose.
    declared_offline: BTreeSet<Name>,
    /// `--each-node`: one entry per node lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    each_node: Option<Vec<Loss>>,
    /// `--each-node`: no loss leaves a group without a supported node.
    #[serde(skip_serializing_if = "Option::is_none")]
    n_plus_one: Option<bool>,
}

impl Report {
    fn ok(&self) -> bool {
        self.homeless.is_empty()
            && self.moves.iter().all(|m| !m.is_homeless())
            && self.n_plus_one != Some(false)
    }
}

pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let loaded =
        load::load(&[Input::from_arg(&args.path)]).context("cannot read the configuration")?;
    // One domain: a tree of several (or a file alone) has no placement.
    loaded.single_domain()?;
    let v = rules::validate(loaded);
    if v.has_errors() {
        eprint!(
            "{}",
            diag::render_human(&v.findings, &v.loaded.sources, v.loaded.docs.len())
        );
        eprintln!("error: the configuration has errors; nothing is simulated");
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    let config = &v.loaded.config;
    for n in &args.fail {
        if config.nodes.get(n.as_str()).is_none() {
            bail!("--fail {n}: the configuration has no node `{n}`");
        }
    }
    let report = simulate(&v, &args);
    match args.format {
        SimulateFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        SimulateFormat::Human => print!("{}", render(config, &report)),
    }
    Ok(ExitCode::from(if report.ok() {
        EXIT_OK
    } else {
        EXIT_FINDINGS
    }))
}

fn simulate(v: &Validation, args: &SimulateArgs) -> Report {
    let unit = &v.loaded.units[0];
    let config = v.loaded.config_of(unit);
    let index = asctl::rules::Index::new(config, unit);
    let ctx = Ctx::new(&v.loaded, unit, &index);
    let judge = |group: &Name, from: &Name, to: &Name| unsupported(v, &ctx, group, from, to);
    let failed: BTreeSet<Name> = args.fail.iter().cloned().collect();
    let offline = declared_offline(config);
    let home = whatif::home(config);
    let placement = whatif::with_failed(config, &failed, &home);
    let moves = whatif::moves(&home, &placement, &offline, &judge);
    let homeless = placement
        .iter()
        .filter(|(g, p)| p.node.is_none() && !offline.contains(*g))
        .map(|(g, _)| g.clone())
        .collect();
    let each_node = args
        .each_node
        .then(|| whatif::each_node(config, &failed, &placement, &offline, &judge));
    let n_plus_one = each_node
        .as_ref()
        .map(|losses| losses.iter().all(|l| l.homeless().next().is_none()));
    Report {
        format_version: FORMAT_VERSION,
        domain: config.domain.as_ref().map(|d| d.name().to_string()),
        failed,
        placement,
        moves,
        homeless,
        declared_offline: offline,
        each_node,
        n_plus_one,
    }
}

/// Groups the configuration takes offline on purpose: having no node is
/// what their operator asked for, not a lack of capacity.
fn declared_offline(config: &Config) -> BTreeSet<Name> {
    config
        .groups
        .iter()
        .filter(|g| g.spec.state == DesiredState::Offline)
        .map(|g| g.name().clone())
        .collect()
}

/// Why the rules do not support `group` moving from `from` to `to`.
fn unsupported(v: &Validation, ctx: &Ctx, group: &Name, from: &Name, to: &Name) -> Option<String> {
    let config = &v.loaded.config;
    let g = config.groups.get(group.as_str())?;
    let (a, b) = (
        config.nodes.get(from.as_str())?,
        config.nodes.get(to.as_str())?,
    );
    if let Some(why) = topology::pair_unsupported(ctx, g, &a.spec, &b.spec) {
        return Some(why);
    }
    // An error the Domain accepted (acknowledgeUnsupported) about the group
    // on that node: accepted, it stays unsupported. The matrix rule's
    // findings name a pair, which the lookup above judged exactly.
    let (gk, nk) = (format!("ResourceGroup/{group}"), format!("Node/{to}"));
    v.findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .filter(|f| {
            f.rule.id != rules::MATRIX_UNSUPPORTED.id
                && f.rule.id != rules::MATRIX_NOT_APPLICABLE.id
        })
        .find(|f| f.objects.contains(&gk) && f.objects.contains(&nk))
        .map(|f| format!("{} ({}, accepted as unsupported)", f.message, f.rule.id))
}

fn node_or_none(n: &Option<Name>) -> &str {
    n.as_ref().map_or("(no node)", |n| n.as_str())
}

fn write_move(out: &mut String, m: &Move) {
    let _ = write!(
        out,
        "{}: {} → {}",
        m.group,
        node_or_none(&m.from),
        node_or_none(&m.to)
    );
    if let Some(why) = &m.unsupported {
        let _ = write!(out, "  UNSUPPORTED: {why}");
    }
}

fn render(config: &Config, r: &Report) -> String {
    let mut out = String::new();
    let names: Vec<&str> = r.failed.iter().map(|n| n.as_str()).collect();
    let _ = match names.as_slice() {
        [] => writeln!(out, "Every node up:"),
        _ => writeln!(out, "With {} failed:", names.join(", ")),
    };
    let width = r
        .placement
        .keys()
        .map(|g| g.as_str().len())
        .max()
        .unwrap_or(0);
    for (group, p) in &r.placement {
        let node = if r.declared_offline.contains(group) {
            "(offline: state: offline)"
        } else {
            node_or_none(&p.node)
        };
        let _ = write!(out, "  {:<width$}  {node}", group.as_str());
        if let Some(m) = r.moves.iter().find(|m| &m.group == group) {
            let _ = write!(out, "  (from {})", node_or_none(&m.from));
            if let Some(why) = &m.unsupported {
                let _ = write!(out, "  UNSUPPORTED: {why}");
            }
        }
        out.push('\n');
    }
    if let Some(losses) = &r.each_node {
        render_losses(&mut out, config, losses, r.n_plus_one == Some(true));
    }
    if !r.homeless.is_empty() {
        let g: Vec<&str> = r.homeless.iter().map(|n| n.as_str()).collect();
        let _ = writeln!(out, "\nerror: no node left for {}", g.join(", "));
    }
    out
}

fn render_losses(out: &mut String, config: &Config, losses: &[Loss], n_plus_one: bool) {
    let _ = writeln!(out, "\nEach node lost in turn (N+1):");
    let width = config
        .nodes
        .iter()
        .map(|n| n.name().as_str().len())
        .max()
        .unwrap_or(0);
    for loss in losses {
        let _ = write!(out, "  {:<width$} lost  ", loss.node.as_str());
        if loss.moves.is_empty() {
            out.push_str("nothing moves\n");
            continue;
        }
        for (i, m) in loss.moves.iter().enumerate() {
            if i > 0 {
                let _ = write!(out, "  {:<width$}       ", "");
            }
            write_move(out, m);
            out.push('\n');
        }
    }
    if n_plus_one {
        let _ = writeln!(
            out,
            "\nN+1: losing any single node leaves every group a supported node."
        );
        return;
    }
    for loss in losses {
        let groups: Vec<&str> = loss.homeless().map(|m| m.group.as_str()).collect();
        if !groups.is_empty() {
            let _ = writeln!(
                out,
                "\nerror: not N+1: losing {} leaves {} without a supported node",
                loss.node,
                groups.join(", ")
            );
        }
    }
}
