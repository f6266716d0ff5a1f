//! `asctl apply PATH | plan.json`: commit a configuration and follow the
//! domain until it runs what the plan said.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use asctl::domain::ClientError;
use asctl::model::{Config, Name};
use asctl::plan::documents::to_document_texts;
use asctl::plan::{NodeState, Plan, SavedPlan, render_human};
use asctl::wire::StatusView;
use asctl::wire::{ApplyRequest, ApplyResponse};
use asctl::wire::{GroupState, ResourceError};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::plan::{load_desired, validated};
use super::remote::{Remote, RemoteArgs, runtime};
use super::{EXIT_FINDINGS, EXIT_OK};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A configuration (file or directory), or a plan saved by `asctl plan -o`.
    #[arg(value_name = "PATH")]
    pub path: String,
    /// Apply without asking (required when standard input is not a terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// How long to follow the convergence before summarising.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2m")]
    pub timeout: Duration,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// What to apply: a configuration, or a saved plan (which carries its own).
enum ToApply {
    Config(Config),
    Saved(Box<SavedPlan>, Config),
}

fn read_desired(path: &str) -> anyhow::Result<Option<ToApply>> {
    if path.ends_with(".json") {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
        if let Ok(saved) = SavedPlan::from_json(&text) {
            return Ok(validated(saved.load()).map(|c| ToApply::Saved(Box::new(saved), c)));
        }
        // Not a saved plan: a configuration written in JSON, or a saved plan
        // this build cannot read — say which.
        if let Err(e) = SavedPlan::from_json(&text) {
            if text.contains("\"basePlan\"") || text.contains("\"baseGeneration\"") {
                bail!("{path}: {e}");
            }
        }
    }
    Ok(load_desired(path)?.map(ToApply::Config))
}

pub fn run(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let Some(desired) = read_desired(&args.path)? else {
        return Ok(ExitCode::from(EXIT_FINDINGS));
    };
    let config = match &desired {
        ToApply::Config(c) | ToApply::Saved(_, c) => c,
    };
    let remote = Remote::resolve(&args.remote, Some(config))?;
    let rt = runtime()?;
    rt.block_on(async {
        let live = remote.live().await?;
        let plan = match &desired {
            ToApply::Config(c) => Plan::compute(c, &live),
            ToApply::Saved(saved, desired) => {
                if let Err(mismatch) = saved.check_current(&live, desired) {
                    eprintln!("error: {mismatch}; nothing was applied");
                    return Ok(ExitCode::from(EXIT_FINDINGS));
                }
                saved.plan.clone()
            }
        };
        print!("{}", render_human(&plan));
        if plan.is_empty() {
            return Ok(ExitCode::from(EXIT_OK));
        }
        if !args.auto_approve && !confirm()? {
            eprintln!("Apply cancelled; nothing was changed.");
            return Ok(ExitCode::from(EXIT_FINDINGS));
        }
        let followed = commit_and_follow(&remote, config, &plan, args.timeout).await?;
        Ok(ExitCode::from(if followed == Followed::Converged {
            EXIT_OK
        } else {
            EXIT_FINDINGS
        }))
    })
}

/// Asks on the terminal. Without one, refuses: an unattended apply must say
/// so with `--auto-approve`.
fn confirm() -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to apply without confirmation: standard input is not a terminal; pass \
             --auto-approve to apply unattended"
        );
    }
    print!("\nDo you want to apply this plan? Only 'yes' will be accepted: ");
    std::io::stdout().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}

/// How following an apply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// Every group is where the plan said, and ready.
    Converged,
    /// Every group that did not converge failed on every node it could
    /// run on: the domain has none left to try.
    NoNodeLeft,
    /// The timeout ran out first.
    TimedOut,
}

/// Commits `config` on top of the plan's base generation, then follows the
/// domain.
pub async fn commit_and_follow(
    remote: &Remote,
    config: &Config,
    plan: &Plan,
    timeout: Duration,
) -> anyhow::Result<Followed> {
    let req = ApplyRequest {
        base_generation: plan.base_generation,
        documents: to_document_texts(config),
    };
    let resp: ApplyResponse = match remote.post("/v1/apply", &req).await {
        Ok(r) => r,
        Err(ClientError::Status { body, .. }) => {
            bail!("the domain refused the configuration: {body}")
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "\nApplied: the domain is at generation {}.",
        resp.generation
    );
    follow(remote, plan, resp.generation, timeout).await
}

/// One group's convergence: `Ok` with where it is, or why not yet.
///
/// The target is where the domain's committed placement puts the group
/// (nowhere for a removed one), not the plan's prediction: the plan was
/// computed with the node health of its moment, and the leader decides with
/// the health it has now (a node added by this very apply that is not up
/// yet, a node that went down meanwhile). Where the two differ, the result
/// says so.
fn group_converged(
    status: &StatusView,
    group: &Name,
    planned: Option<&Name>,
    removed: bool,
    generation: u64,
) -> Result<String, String> {
    if status.generation < generation {
        return Err(format!(
            "the answering member has not applied generation {generation} yet"
        ));
    }
    let target = if removed {
        None
    } else {
        status.placement.get(group).and_then(|p| p.node.as_ref())
    };
    let active = |s: GroupState| {
        matches!(
            s,
            GroupState::Starting | GroupState::Online | GroupState::Stopping
        )
    };
    let mut elsewhere = Vec::new();
    let mut at_target = None;
    for (node, view) in &status.nodes {
        // A node the domain has declared Down reported last before it died
        // (or was cut off and fenced itself): its report is history, not a
        // group still running there. The failover already counted it out.
        if view.state == NodeState::Down && Some(node) != target {
            continue;
        }
        let Some(report) = &view.report else { continue };
        let Some(g) = report.groups.get(group) else {
            continue;
        };
        if Some(node) == target {
            at_target = Some((report.generation_seen, g.clone()));
        } else if active(g.state) {
            elsewhere.push(format!("still {:?} on {node}", g.state).to_lowercase());
        }
    }
    if !elsewhere.is_empty() {
        return Err(elsewhere.join(", "));
    }
    let Some(target) = target else {
        return match (removed, planned) {
            (true, _) | (false, None) => Ok("offline".into()),
            (false, Some(p)) => Err(format!("the domain could not place it (the plan said {p})")),
        };
    };
    let note = match planned {
        Some(p) if p == target => String::new(),
        Some(p) => {
            format!(" (the plan said {p}; the domain placed it with the node health it has now)")
        }
        None => {
            " (the plan said offline; the domain placed it with the node health it has now)".into()
        }
    };
    match at_target {
        Some((seen, g)) if seen >= generation && g.state == GroupState::Online => {
            Ok(format!("online on {target}{note}"))
        }
        Some((seen, _)) if seen < generation => Err(format!(
            "{target} has not acted on generation {generation} yet"
        )),
        Some((_, g)) => Err(format!(
            "{:?} on {target}{}",
            g.state,
            g.message.map(|m| format!(": {m}")).unwrap_or_default()
        )
        .to_lowercase()),
        None => Err(format!("{target} has not reported it yet")),
    }
}

/// A group the domain has given up on: placed nowhere although the plan
/// placed it, after failing on some node. No node is left to try until the
/// operator acts (`asctl clear`, a fix applied), so waiting longer is
/// pointless.
fn given_up(status: &StatusView, group: &Name, planned: Option<&Name>) -> Option<String> {
    let p = status.placement.get(group)?;
    if p.node.is_some() || p.failed_on.is_empty() || planned.is_none() {
        return None;
    }
    let nodes: Vec<&str> = p.failed_on.iter().map(|n| n.as_str()).collect();
    Some(format!(
        "failed on {}; no node is left to try (`asctl status` says why; `asctl clear {group}` \
         retries)",
        nodes.join(", ")
    ))
}

/// Failures of the plan's groups, each once (by group, node and when it
/// failed): what `apply` prints the moment the domain knows. A failure is a
/// group reported `failed` by a node that acted on `generation`, or one the
/// domain counts as failed on a node (its `failedOn`) with the reason that
/// node still reports after the group moved on.
fn new_failures(
    status: &StatusView,
    plan: &Plan,
    generation: u64,
    seen: &mut BTreeSet<(Name, Name, std::time::SystemTime)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (node, view) in &status.nodes {
        let Some(report) = &view.report else { continue };
        for group in plan.placement.keys() {
            let Some(g) = report.groups.get(group) else {
                continue;
            };
            let failed_on = status
                .placement
                .get(group)
                .is_some_and(|p| p.failed_on.contains(node));
            let failed_now = g.state == GroupState::Failed && report.generation_seen >= generation;
            let newest = ResourceError::newest(&g.errors).map(|(_, e)| e.at);
            let when = match (failed_now, failed_on, newest) {
                (true, _, at) => at.unwrap_or(g.since),
                (false, true, Some(at)) => at,
                _ => continue,
            };
            if seen.insert((group.clone(), node.clone(), when)) {
                out.extend(super::status::failure_lines(group, node, g));
            }
        }
    }
    out
}

/// Every group of the plan (and every removed one) against `status`.
fn convergence(
    status: &StatusView,
    plan: &Plan,
    generation: u64,
    removed: &BTreeSet<Name>,
) -> Vec<(Name, Result<String, String>)> {
    let mut out: Vec<(Name, Result<String, String>)> = plan
        .placement
        .iter()
        .map(|(g, p)| {
            (
                g.clone(),
                group_converged(status, g, p.node.as_ref(), false, generation),
            )
        })
        .collect();
    for g in removed {
        out.push((
            g.clone(),
            group_converged(status, g, None, true, generation),
        ));
    }
    out
}

/// Polls the domain until every group is where the plan said, or `timeout`.
pub async fn follow(
    remote: &Remote,
    plan: &Plan,
    generation: u64,
    timeout: Duration,
) -> anyhow::Result<Followed> {
    let removed: BTreeSet<Name> = plan
        .changes
        .iter()
        .filter(|c| c.kind == asctl::model::Kind::ResourceGroup && c.op == asctl::plan::Op::Delete)
        .map(|c| c.name.clone())
        .collect();
    let total = (plan.placement.len() + removed.len()) as u64;
    let bar = progress_bar(total);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = Vec::new();
    let mut seen_failures = BTreeSet::new();
    let mut gave_up: Vec<(Name, String)> = Vec::new();
    loop {
        // The leader's view even with `--endpoint`: a member's own copy may
        // have stopped (one removed from the domain by this very apply).
        match remote.leader_status().await {
            Ok(status) => {
                // Said the moment the domain knows, not at the timeout.
                for line in new_failures(&status, plan, generation, &mut seen_failures) {
                    // A failure's first line is marked; its details under it.
                    let mark = if line.starts_with(' ') { "  " } else { "✗ " };
                    bar.suspend(|| println!("  {mark}{line}"));
                }
                last = convergence(&status, plan, generation, &removed);
                gave_up = last
                    .iter()
                    .filter(|(_, r)| r.is_err())
                    .filter_map(|(g, _)| {
                        let planned = plan.placement.get(g).and_then(|p| p.node.as_ref());
                        given_up(&status, g, planned).map(|why| (g.clone(), why))
                    })
                    .collect();
                let done = last.iter().filter(|(_, r)| r.is_ok()).count() as u64;
                bar.set_position(done);
                if let Some((g, Err(why))) = last.iter().find(|(_, r)| r.is_err()) {
                    bar.set_message(format!("{g}: {why}"));
                }
                if done + gave_up.len() as u64 == total {
                    break;
                }
            }
            Err(e) => bar.set_message(format!("{e:#}")),
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish_and_clear();
    let ok = !last.is_empty() && last.iter().all(|(_, r)| r.is_ok()) || total == 0;
    Ok(summarize(ok, &last, &gave_up, timeout))
}

/// The bar `follow` shows while groups converge.
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} groups converged {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Prints a line per group (✓ where the plan said, ✗ with why not) and the
/// verdict.
fn summarize(
    ok: bool,
    last: &[(Name, Result<String, String>)],
    gave_up: &[(Name, String)],
    timeout: Duration,
) -> Followed {
    println!();
    for (g, r) in last {
        match (r, gave_up.iter().find(|(f, _)| f == g)) {
            (Ok(where_), _) => println!("  ✓ {g}: {where_}"),
            (Err(_), Some((_, why))) => println!("  ✗ {g}: {why}"),
            (Err(why), None) => println!("  ✗ {g}: not converged: {why}"),
        }
    }
    if ok {
        println!("Converged: every group is where the plan said.");
        Followed::Converged
    } else if !gave_up.is_empty()
        && gave_up.len() == last.iter().filter(|(_, r)| r.is_err()).count()
    {
        println!("Failed: the domain has no node left to try for what is marked ✗ above.");
        Followed::NoNodeLeft
    } else {
        println!(
            "Not converged within {}; the domain keeps working on it (`asctl status`).",
            humantime::format_duration(timeout)
        );
        Followed::TimedOut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        s.parse().expect("name")
    }

    /// The domain at generation 2: web placed on node1, where node1 runs it.
    fn status(web_state: &str, seen: u64) -> StatusView {
        serde_json::from_value(serde_json::json!({
            "formatVersion": 1,
            "domain": "d",
            "generation": 2,
            "answeredBy": "node1",
            "leader": "node1",
            "members": [],
            "nodes": {
                "node1": {"state": "up", "report": {"node": "node1", "generationSeen": seen,
                    "groups": {"web": {"state": web_state, "since": "2026-11-25T00:00:00Z", "restarts": 0}}}},
                "node2": {"state": "up", "report": {"node": "node2", "generationSeen": 2, "groups": {}}}
            },
            "placement": {"web": {"node": "node1"}}
        }))
        .expect("a status")
    }

    #[test]
    fn converged_where_the_domain_placed_it_saying_when_the_plan_differed() {
        let s = status("online", 2);
        assert_eq!(
            group_converged(&s, &n("web"), Some(&n("node1")), false, 2),
            Ok("online on node1".into())
        );
        // The plan said node4 (added by this apply, not up yet).
        let r = group_converged(&s, &n("web"), Some(&n("node4")), false, 2);
        assert!(
            r.as_ref()
                .is_ok_and(|m| m.starts_with("online on node1 (the plan said node4")),
            "{r:?}"
        );
        // Not yet: the node has not acted on the generation, or it starts.
        assert!(
            group_converged(&status("online", 1), &n("web"), Some(&n("node1")), false, 2).is_err()
        );
        assert!(
            group_converged(
                &status("starting", 2),
                &n("web"),
                Some(&n("node1")),
                false,
                2
            )
            .is_err()
        );
        // Not given up on while it has a node.
        assert_eq!(given_up(&s, &n("web"), Some(&n("node1"))), None);
        // Removed: converged only once nothing runs it.
        assert!(group_converged(&s, &n("web"), None, true, 2).is_err());
        // The answering member is behind the applied generation.
        assert!(group_converged(&s, &n("web"), Some(&n("node1")), false, 3).is_err());
    }

    #[test]
    fn a_failure_is_said_once_and_a_group_failed_everywhere_is_given_up() {
        let mut s = status("failed", 2);
        let plan: Plan = serde_json::from_value(serde_json::json!({
            "formatVersion": 1, "baseGeneration": 1, "changes": [], "placement": {"web": {"node": "node1"}}, "actions": []
        }))
        .unwrap_or_else(|e| panic!("a plan: {e}"));
        let mut seen = BTreeSet::new();
        let first = new_failures(&s, &plan, 2, &mut seen);
        assert_eq!(first, ["web failed on node1: no reason reported"]);
        assert!(new_failures(&s, &plan, 2, &mut seen).is_empty());
        // A report older than the applied generation is not this apply's failure.
        let mut seen = BTreeSet::new();
        assert!(new_failures(&s, &plan, 3, &mut seen).is_empty());
        // The domain placed it nowhere after it failed on node1: given up.
        let p = s.placement.get_mut(&n("web")).expect("web");
        p.node = None;
        p.failed_on.insert(n("node1"));
        let why = given_up(&s, &n("web"), Some(&n("node1"))).expect("given up");
        assert!(
            why.starts_with("failed on node1; no node is left to try"),
            "{why}"
        );
        // Planned offline: nothing to give up on.
        assert_eq!(given_up(&s, &n("web"), None), None);
    }
}
