//! The checks a campaign runs between and after rounds: acknowledged
//! commits, failures cleared by the operator, clean switchovers of db.

use super::*;

/// Whether round `round` aims at db's holder rather than web's:
/// `CHAOS_GROUP=db` always, `web` never; unset, every other round (the
/// failover benchmark, `crash-holder`, stays on web).
pub(crate) fn targets_db(round: usize, holder_only: bool) -> bool {
    match std::env::var("CHAOS_GROUP").as_deref() {
        Ok("db") => true,
        Ok("web") => false,
        Ok(other) => panic!("CHAOS_GROUP: `web` or `db`, not `{other}`"),
        Err(_) => !holder_only && round % 2 == 1,
    }
}

/// `CHAOS_SWITCHOVERS` (default 1) clean switchovers of db with `asctl
/// move`, each to the next node; the time from the command to the writer
/// answering on the new node.
pub(crate) fn switchovers(lab: &Lab, watch: &Watch) -> Result<Vec<f64>, String> {
    let n: usize = std::env::var("CHAOS_SWITCHOVERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut out = Vec::new();
    for i in 0..n {
        // A switchover starts from a healthy db: mounted on one node and
        // answering. A local restart (its probe failed on a loaded machine)
        // can be under way when the rounds end.
        let since = Instant::now();
        wait_until("db to be mounted once and answering", LIMIT, || {
            (db::mounts(&lab.node_pairs(), &lab.lun.devnums).len() == 1
                && watch.db.answered_after(since).is_some())
            .then_some(())
        })
        .ok_or_else(|| {
            format!("switchover {i}: db not mounted once and answering within {LIMIT:?}")
        })?;
        let move_db = |node: &str| {
            let out = lab.asctl(&["move", "db", node], lab.nodes[0].host);
            let out = if out.status.success() {
                out
            } else {
                lab.asctl(&["move", "db", node], lab.nodes[1].host)
            };
            out.status
                .success()
                .then_some(())
                .ok_or_else(|| format!("asctl move db {node}: {}", text(&out)))
        };
        match db::switchover(&lab.node_pairs(), &lab.lun, &watch.db, move_db) {
            Ok((node, d)) => {
                eprintln!(
                    "chaos switchover {i}: db answered on {node} {:.2} s after `asctl move`",
                    d.as_secs_f64()
                );
                out.push(d.as_secs_f64());
            }
            Err(why) => return Err(format!("switchover {i}: {why}")),
        }
        // The writer on its new node gets a moment before the next move.
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(out)
}

/// The nodes `status` has `group` failed on.
pub(crate) fn failed_on(status: &serde_json::Value, group: &str) -> Vec<String> {
    status
        .pointer(&format!("/placement/{group}/failedOn"))
        .and_then(|f| f.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `asctl clear web`, as an operator would after a round that failed the
/// group somewhere (asking each node in turn); then the domain's status must
/// show `failedOn` empty. `Err` says why not.
/// Lost commits: after every round the harness commits a configuration
/// change of its own (a label on the Domain, which restarts nothing) and
/// keeps the acknowledged one on disk; after every later round `asctl plan
/// --detailed-exitcode` of it must find no changes — the domain still has
/// exactly what it acknowledged, whatever crashed, froze or was cut since.
/// Returns the generation the domain acknowledged.
pub(crate) fn commit_probe(lab: &Lab, round: usize) -> Result<u64, String> {
    let file = lab.path("config/domain.yaml");
    let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
    let labelled: String = text
        .lines()
        .map(|l| {
            if l.starts_with("metadata: {name: chaos") {
                format!("metadata: {{name: chaos, labels: {{round: \"{round}\"}}}}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    std::fs::write(&file, labelled).map_err(|e| e.to_string())?;
    let cfg = lab.path("config").display().to_string();
    let mut why = String::new();
    for n in &lab.nodes {
        let out = lab.asctl(
            &["apply", &cfg, "--auto-approve", "--timeout", "20s"],
            n.host,
        );
        let said = text_of(&out);
        if out.status.success() {
            let generation = said
                .split("the domain is at generation ")
                .nth(1)
                .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|g| g.parse().ok());
            // "No changes": an earlier attempt through another member was
            // committed although its wait for the groups ran out.
            let generation = generation.or_else(|| {
                said.contains("No changes")
                    .then(|| lab.status()?.get("generation")?.as_u64())
                    .flatten()
            });
            return generation
                .ok_or_else(|| format!("round {round}: apply said no generation: {said}"));
        }
        why = said;
    }
    Err(format!(
        "round {round}: the harness's own commit was refused: {why}"
    ))
}

/// The acknowledged configuration is still the domain's (see
/// [`commit_probe`]).
pub(crate) fn check_no_lost_commit(lab: &Lab, acked_round: usize) -> Result<(), String> {
    let cfg = lab.path("config").display().to_string();
    // Planned against the leader's own state: any other member answers
    // from its own copy, which may lag (one back from a freeze or a
    // partition), and a lagging copy is not a lost commit.
    let Some((host, _)) = wait_until("a leader", LIMIT, || lab.leader()) else {
        return Err("no member answered `asctl status` as the leader".into());
    };
    let out = lab.asctl(&["plan", &cfg, "--detailed-exitcode"], host);
    match out.status.code() {
        Some(0) => Ok(()),
        Some(2) => Err(format!(
            "lost commit: the configuration acknowledged after round {acked_round} is not the domain's any more:\n{}",
            text_of(&out)
        )),
        _ => Err(format!(
            "the leader did not answer `asctl plan`: {}",
            text_of(&out)
        )),
    }
}

pub(crate) fn clear_failures(lab: &Lab, round: usize, group: &str) -> Result<(), String> {
    let mut why = String::new();
    let done = lab.nodes.iter().any(|n| {
        let out = lab.asctl(&["clear", group], n.host);
        if out.status.success() {
            eprintln!("chaos round {round}: {}", text(&out).trim());
        } else {
            why = text(&out);
        }
        out.status.success()
    });
    if !done {
        return Err(format!(
            "round {round}: `asctl clear {group}` failed: {why}"
        ));
    }
    wait_until(
        "the group's failedOn to be cleared",
        Duration::from_secs(10),
        || {
            lab.status()
                .filter(|s| failed_on(s, group).is_empty())
                .map(|_| ())
        },
    )
    .ok_or_else(|| {
        format!("round {round}: {group}'s failedOn is still set after `asctl clear {group}`")
    })
}
