//! A campaign: the rounds of seeded faults on one topology, the
//! invariants checked after each, and the figures it measures.

use super::*;

/// Runs `rounds` faults on `topology`; returns its figures, or panics with
/// the replayable seed on a violation.
pub(crate) fn campaign(topology: Topology, seed: u64, rounds: usize, faults: &[Fault]) -> Figures {
    let mut rng = Rng(seed | 1);
    let mut lab = Lab::new(topology);
    for i in 0..lab.nodes.len() {
        lab.start_agent(Some(i));
    }
    if lab.witness.is_some() {
        lab.start_agent(None);
    }
    let fail = |lab: &Lab, why: String| -> ! {
        // The domain's own view (placement, `failedOn`, nodes, lines) from
        // any node that answers, to tell a stuck placement from a dead node.
        let status = lab
            .status()
            .and_then(|s| serde_json::to_string_pretty(&s).ok())
            .unwrap_or_else(|| "no node answered `asctl status`".into());
        panic!(
            "chaos violation ({topology:?}): {why}\nreplay with CHAOS_SEED={seed} CHAOS_TOPOLOGIES={} \
             CHAOS_FAULTS={} CHAOS_ROUNDS={rounds}\n--- asctl status --format json\n{status}\n{}\nwhole agent logs kept in {}",
            match topology {
                Topology::Three => "three",
                Topology::TwoWitness => "two-witness",
                Topology::Two => "two",
            },
            std::env::var("CHAOS_FAULTS").unwrap_or_else(|_| "all".into()),
            lab.logs(),
            lab.keep_logs(seed, topology).display()
        )
    };
    if wait_until("the domain to form", LIMIT, || {
        lab.status()
            .filter(|s| s.get("leader").is_some_and(|l| !l.is_null()))
    })
    .is_none()
    {
        fail(&lab, "the domain did not form".into());
    }
    let cfg = lab.path("config").display().to_string();
    let out = lab.asctl(&["apply", &cfg, "--auto-approve", "--timeout", "60s"], 1);
    if !out.status.success() {
        fail(&lab, format!("apply failed: {}", text(&out)));
    }
    let watch = Watch::start(&lab);
    if wait_until("the service to answer", LIMIT, || {
        watch.answered_after(Instant::now() - Duration::from_secs(1), None)
    })
    .is_none()
    {
        fail(&lab, "the service never answered".into());
    }
    // CHAOS_IDLE_SECS=N: before any fault, watch N seconds with nothing
    // injected (e.g. under stress-ng) and count false failovers: the
    // service answered by another node, or a node down in the status.
    if let Some(secs) = std::env::var("CHAOS_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        let start = Instant::now();
        let first = watch
            .answers
            .lock()
            .expect("answers")
            .last()
            .and_then(|(_, a)| a.clone());
        let mut downs = 0;
        let mut polls = 0;
        while start.elapsed() < Duration::from_secs(secs) {
            if let Some(s) = lab.status() {
                polls += 1;
                downs += lab
                    .nodes
                    .iter()
                    .filter(|n| lab.node_state(&s, &n.name).as_deref() == Some("down"))
                    .count();
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        let answers = watch.answers.lock().expect("answers").clone();
        let after: Vec<&(Instant, Option<String>)> =
            answers.iter().filter(|(t, _)| *t >= start).collect();
        let moves = after
            .windows(2)
            .filter(|w| w[0].1.is_some() && w[1].1.is_some() && w[0].1 != w[1].1)
            .count();
        let missed = after.iter().filter(|(_, a)| a.is_none()).count();
        eprintln!(
            "chaos idle {secs}s: service first on {first:?}, moved {moves} times; {missed} of {} polls unanswered; nodes seen down {downs} times in {polls} status polls; violations {:?}",
            after.len(),
            watch.violations()
        );
    }
    let mut last_generation = 0;
    let mut detection = Vec::new();
    let mut service = Vec::new();
    let mut service_leader = Vec::new();
    let mut election = Vec::new();
    let mut leader_down = Vec::new();
    let leader_only = std::env::var("CHAOS_FAULTS").as_deref() == Ok("crash-leader");
    let mut fence = Vec::new();
    let holder_only = std::env::var("CHAOS_FAULTS").as_deref() == Ok("crash-holder");
    let mut cut_fence = Vec::new();
    let mut cut_service = Vec::new();
    let mut mute_fence = Vec::new();
    let mut mute_service = Vec::new();
    let mut service_agent = Vec::new();
    let mut cleared = 0;
    // The harness's own last acknowledged commit: (round, generation).
    let mut acked: Option<(usize, u64)> = None;
    let mut commits = 0;
    let mut db_service = Vec::new();
    let mut db_stop = Vec::new();
    for round in 0..rounds {
        let seen = observe(&lab.node_pairs(), &[]);
        let holder = seen.app_on.first().cloned();
        let db_holder = seen.writer_on.first().cloned();
        // Half the crashes hit the holder (a failover), half another node;
        // the failover benchmark (CHAOS_FAULTS=crash-holder) always the holder.
        // CHAOS_FAULTS=crash-leader always crashes the raft leader.
        let leader = lab
            .status()
            .and_then(|s| s.get("leader")?.as_str().map(str::to_owned));
        let leader_pos = leader
            .as_ref()
            .and_then(|l| lab.nodes.iter().position(|n| &n.name == l));
        let position = |h: &Option<String>| {
            h.as_ref()
                .and_then(|h| lab.nodes.iter().position(|n| &n.name == h))
        };
        // The holder a round aims at: web's or db's (`targets_db`).
        let holder_pos = if targets_db(round, holder_only) {
            position(&db_holder)
        } else {
            position(&holder)
        };
        let Draw {
            fault,
            mut victim,
            line,
        } = draw(
            &mut rng,
            faults,
            lab.nodes.len(),
            holder_pos,
            leader_pos.filter(|_| leader_only),
            holder_only,
        );
        if fault == Fault::StopWriter
            && let Some(d) = position(&db_holder)
        {
            victim = d;
        }
        let vname = lab.nodes[victim].name.clone();
        let was_leader = leader.as_deref() == Some(vname.as_str());
        let what = match fault {
            Fault::LineDown => format!("{fault:?} ({line})"),
            _ => format!("{fault:?}"),
        };
        eprintln!(
            "chaos round {round} at {}: {what} on {vname} (web on {holder:?}, db on {db_holder:?}, raft leader {leader:?})",
            humantime::format_rfc3339_millis(std::time::SystemTime::now())
        );
        lab.starve(victim);
        let t0 = Instant::now();
        match fault {
            Fault::CrashNode => {
                // Answers after this come from a survivor.
                let killed = lab.crash(victim);
                // Detected: a survivor's failure detector reports the node
                // failed (`asctl status`, `lines`), or the domain has it down.
                // The instant of the detector's verdict is read back from its
                // `sinceMsAgo` (taken when the answer arrived, so it errs late
                // by the answer's latency), not from when a poll saw it.
                let lost = wait_until("the crash to be detected", LIMIT, || {
                    let s = lab.status_from_others(Some(&vname))?;
                    let answered = t0.elapsed();
                    let peer = s.pointer(&format!("/lines/peers/{vname}"));
                    let failed = peer.and_then(|p| p["state"].as_str()) == Some("failed");
                    let since = peer
                        .and_then(|p| p["sinceMsAgo"].as_u64())
                        .map(Duration::from_millis);
                    match (failed, since) {
                        (true, Some(ago)) if ago <= answered => Some(answered - ago),
                        // Failed since before the crash: no verdict of this
                        // fault to read, so the conservative poll instant.
                        (true, _) => Some(answered),
                        _ => (lab.node_state(&s, &vname).as_deref() == Some("down"))
                            .then_some(answered),
                    }
                });
                match lost {
                    Some(d) => detection.push(d.as_secs_f64()),
                    None => fail(&lab, format!("{vname}'s crash was never detected")),
                }
                if was_leader && topology == Topology::Two {
                    // Two voters need both to commit: no survivor can be
                    // elected, and nothing is committed (the node stays up
                    // in the domain) until the node is back. The survivor
                    // fails over by local takeover instead (docs/ha.md);
                    // the service check below holds it to that.
                    eprintln!(
                        "chaos round {round}: {vname} was the raft leader of a two-node domain: \
                         no new leader expected while it is down (local takeover)"
                    );
                } else if was_leader {
                    // A survivor names another leader, and the domain (which
                    // only a leader commits to) has the node down.
                    let elected = wait_until("a new leader", LIMIT, || {
                        let s = lab.status_from_others(Some(&vname))?;
                        let other = s
                            .get("leader")
                            .and_then(|l| l.as_str())
                            .is_some_and(|l| l != vname);
                        other.then(|| t0.elapsed())
                    });
                    let down = wait_until("the domain to have the leader down", LIMIT, || {
                        lab.status_from_others(Some(&vname))
                            .and_then(|s| lab.node_state(&s, &vname))
                            .filter(|s| s == "down")
                            .map(|_| t0.elapsed())
                    });
                    match (elected, down) {
                        (Some(e), Some(d)) => {
                            election.push(e.as_secs_f64());
                            leader_down.push(d.as_secs_f64());
                        }
                        _ => fail(&lab, format!("no new leader after {vname}'s crash")),
                    }
                }
                if holder.as_deref() == Some(vname.as_str()) {
                    match wait_until("the service to answer again", LIMIT, || {
                        watch.answered_after(t0, Some(&vname))
                    }) {
                        Some(at) => {
                            service.push((at - t0).as_secs_f64());
                            eprintln!(
                                "chaos round {round}: the service answered again {:.2} s after the crash",
                                (at - t0).as_secs_f64()
                            );
                            if was_leader {
                                service_leader.push((at - t0).as_secs_f64());
                            }
                        }
                        None => fail(&lab, "the service did not come back".into()),
                    }
                }
                if db_holder.as_deref() == Some(vname.as_str()) {
                    match wait_until("db to answer again", LIMIT, || {
                        watch.db.answered_after(killed)
                    }) {
                        Some(at) => {
                            db_service.push((at - t0).as_secs_f64());
                            eprintln!(
                                "chaos round {round}: db's writer answered again {:.2} s after the crash",
                                (at - t0).as_secs_f64()
                            );
                        }
                        None => fail(&lab, "db did not come back after its node's crash".into()),
                    }
                }
                // Reboot.
                let n = &lab.nodes[victim];
                for l in ["d1", "d2", "v"] {
                    n.ns.ip(&format!("link set {l} up"));
                }
                lab.start_agent(Some(victim));
            }
            Fault::LineDown => {
                let n = &lab.nodes[victim];
                n.ns.ip(&format!("link set {line} down"));
                std::thread::sleep(Duration::from_secs(3));
                n.ns.ip(&format!("link set {line} up"));
            }
            Fault::Partition => {
                let n = &lab.nodes[victim];
                for l in ["d1", "d2", "v"] {
                    n.ns.ip(&format!("link set {l} down"));
                }
                std::thread::sleep(Duration::from_secs(4));
                for l in ["d1", "d2", "v"] {
                    n.ns.ip(&format!("link set {l} up"));
                }
            }
            Fault::CutFromPeers => {
                let peers = lab.peer_addresses(victim);
                let ns = lab.nodes[victim].ns.name.clone();
                cut_from(&ns, &peers);
                // While cut, see from outside when the cut holder has let
                // its address and application go (its own fence: it cannot
                // hear that the majority moved the group).
                let node = (vname.clone(), ns.clone());
                let mut fenced = None;
                while t0.elapsed() < CUT {
                    if fenced.is_none() && holder.as_deref() == Some(vname.as_str()) {
                        let seen = observe(std::slice::from_ref(&node), &[]);
                        if seen.ip_on.is_empty() && seen.app_on.is_empty() {
                            fenced = Some(t0.elapsed());
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                uncut(&ns);
                if holder.as_deref() == Some(vname.as_str()) {
                    if let Some(d) = fenced {
                        cut_fence.push(d.as_secs_f64());
                    }
                    if let Some(at) = watch.answered_after(t0, Some(&vname))
                        && at - t0 < CUT
                    {
                        cut_service.push((at - t0).as_secs_f64());
                    }
                }
            }
            Fault::Mute => {
                let peers = lab.peer_addresses(victim);
                let ns = lab.nodes[victim].ns.name.clone();
                mute(&ns, &peers);
                // While muted, see from outside when a muted holder has let
                // its address and application go.
                let node = (vname.clone(), ns.clone());
                let mut fenced = None;
                while t0.elapsed() < CUT {
                    if fenced.is_none() && holder.as_deref() == Some(vname.as_str()) {
                        let seen = observe(std::slice::from_ref(&node), &[]);
                        if seen.ip_on.is_empty() && seen.app_on.is_empty() {
                            fenced = Some(t0.elapsed());
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                uncut(&ns);
                if holder.as_deref() == Some(vname.as_str()) {
                    if let Some(d) = fenced {
                        mute_fence.push(d.as_secs_f64());
                    }
                    if let Some(at) = watch.answered_after(t0, Some(&vname))
                        && at - t0 < CUT
                    {
                        mute_service.push((at - t0).as_secs_f64());
                    }
                }
            }
            Fault::DiskFull => {
                if let Err(why) = storage::disk_full(&mut lab, victim) {
                    fail(&lab, format!("round {round} ({fault:?} on {vname}): {why}"));
                }
            }
            Fault::DiskRo => {
                let holds = holder.as_deref() == Some(vname.as_str());
                if let Err(why) = storage::disk_ro(&mut lab, victim, holds) {
                    fail(&lab, format!("round {round} ({fault:?} on {vname}): {why}"));
                }
            }
            Fault::StopWriter => {
                let node = (vname.clone(), lab.nodes[victim].ns.name.clone());
                match db::stop_writer(&lab.node_pairs(), &node, &lab.lun, &watch.db) {
                    Ok(d) => {
                        db_stop.push(d.as_secs_f64());
                        eprintln!(
                            "chaos round {round}: db answered again {:.2} s after its writer was stopped",
                            d.as_secs_f64()
                        );
                    }
                    Err(why) => fail(&lab, format!("round {round} ({fault:?} on {vname}): {why}")),
                }
            }
            Fault::KillAgent | Fault::Freeze => {
                let n = &mut lab.nodes[victim];
                let pid = n.agent.as_ref().map(|c| c.id() as i32);
                if fault == Fault::KillAgent {
                    if let Some(mut c) = n.agent.take() {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                } else if let Some(pid) = pid {
                    // SAFETY: a signal to our own child.
                    unsafe { libc::kill(pid, libc::SIGSTOP) };
                }
                // The holder's guard must fence it within the lease.
                if holder.as_deref() == Some(vname.as_str()) {
                    let node = (vname.clone(), lab.nodes[victim].ns.name.clone());
                    match fenced_after(&node, t0, LEASE + FENCE_MARGIN) {
                        Some(d) => fence.push(d.as_secs_f64()),
                        None => {
                            if let Some(pid) = pid.filter(|_| fault == Fault::Freeze) {
                                // SAFETY: a signal to our own child.
                                unsafe { libc::kill(pid, libc::SIGCONT) };
                            }
                            fail(
                                &lab,
                                format!(
                                    "round {round} ({fault:?} on {vname}): the holder still \
                                     has the address or the application {:?} later",
                                    LEASE + FENCE_MARGIN
                                ),
                            )
                        }
                    }
                }
                // Two nodes without a witness: nothing can be committed while
                // the holder's agent is dead or frozen, so the survivor must
                // take the group over locally (docs/ha.md, "Local
                // takeover") before the agent comes back.
                if topology == Topology::Two && holder.as_deref() == Some(vname.as_str()) {
                    match wait_until("the survivor to answer", LIMIT, || {
                        watch.answered_after(t0, Some(&vname))
                    }) {
                        Some(at) => service_agent.push((at - t0).as_secs_f64()),
                        None => {
                            if let Some(pid) = pid.filter(|_| fault == Fault::Freeze) {
                                // SAFETY: a signal to our own child.
                                unsafe { libc::kill(pid, libc::SIGCONT) };
                            }
                            fail(
                                &lab,
                                format!(
                                    "round {round} ({fault:?} on {vname}): the survivor did not \
                                     take the service over while the holder's agent was down"
                                ),
                            )
                        }
                    }
                }
                std::thread::sleep(Duration::from_secs(3).saturating_sub(t0.elapsed()));
                match (fault, pid) {
                    // SAFETY: a signal to our own child.
                    (Fault::Freeze, Some(pid)) => {
                        // SAFETY: a signal to our own child.
                        unsafe { libc::kill(pid, libc::SIGCONT) };
                        lab.restart_if_gone(victim);
                    }
                    _ => lab.start_agent(Some(victim)),
                }
            }
        }
        // Back to a healthy domain with the service answering before the
        // next fault; db answering since the fault's end, mounted once.
        let fault_done = Instant::now();
        lab.relieve(victim);
        let healed = wait_until("the domain to heal", LIMIT, || {
            let s = lab.status()?;
            let all_up = lab
                .nodes
                .iter()
                .all(|n| lab.node_state(&s, &n.name).as_deref() == Some("up"));
            // Two nodes: the committed state cannot have had the node down
            // (no commit without both), and a leader left alone still names
            // itself, so neither says the node is back: every node must
            // answer, name a leader, and have its peer up in its detector.
            let leader = topology != Topology::Two || lab.two_node_rejoined();
            let recent = Instant::now() - Duration::from_millis(500);
            (all_up
                && leader
                && watch.answered_after(recent, None).is_some()
                && watch.db.answered_after(recent.max(fault_done)).is_some()
                && db::mounts(&lab.node_pairs(), &lab.lun.devnums).len() == 1)
                .then_some(s)
        });
        let Some(s) = healed else {
            fail(
                &lab,
                format!("round {round} ({fault:?} on {vname}): the domain did not heal"),
            )
        };
        let generation = s.get("generation").and_then(|g| g.as_u64()).unwrap_or(0);
        if generation < last_generation {
            fail(
                &lab,
                format!(
                    "the committed generation went back from {last_generation} to {generation}"
                ),
            );
        }
        last_generation = generation;
        if let Some(acked) = acked {
            if generation < acked.1 {
                fail(
                    &lab,
                    format!(
                        "lost commit: generation {generation} after generation {} was acknowledged",
                        acked.1
                    ),
                );
            }
            if let Err(why) = check_no_lost_commit(&lab, acked.0) {
                fail(&lab, format!("round {round} ({fault:?} on {vname}): {why}"));
            }
        }
        if let Err(why) = db::check_acked(&lab.node_pairs(), &lab.lun, &watch.db) {
            fail(&lab, format!("round {round} ({fault:?} on {vname}): {why}"));
        }
        match commit_probe(&lab, round) {
            Ok(g) => {
                acked = Some((round, g));
                commits += 1;
                last_generation = last_generation.max(g);
            }
            Err(why) => fail(&lab, why),
        }
        let v = watch.violations();
        if !v.is_empty() {
            fail(
                &lab,
                format!("round {round} ({fault:?} on {vname}): {}", v.join("; ")),
            );
        }
        // A round can rightly leave the group failed on a node (a line
        // down under the holder fails it there after its restarts); act
        // like the operator would, so that later rounds still have
        // somewhere to fail over to.
        for group in ["web", "db"] {
            let failed_on = failed_on(&s, group);
            if !failed_on.is_empty() {
                eprintln!(
                    "chaos round {round}: {group} failed on {failed_on:?}; the operator runs `asctl clear {group}`"
                );
                if let Err(why) = clear_failures(&lab, round, group) {
                    fail(&lab, why);
                }
                cleared += 1;
            }
        }
    }
    // A node that rejoins after the last round (a fenced node catching up,
    // a rebooted one) acts after the domain already looks healed: keep
    // watching long enough for its fence to end (T + W + 1 s and more)
    // before the last verdict. Earlier rounds get this from the next one.
    if rounds > 0 {
        std::thread::sleep(SETTLE);
        let v = watch.violations();
        if !v.is_empty() {
            fail(
                &lab,
                format!("within {SETTLE:?} after the last round: {}", v.join("; ")),
            );
        }
        if let Some((r, _)) = acked
            && let Err(why) = check_no_lost_commit(&lab, r)
        {
            fail(&lab, format!("after the last round: {why}"));
        }
    }
    let db_switchover = switchovers(&lab, &watch).unwrap_or_else(|why| fail(&lab, why));
    let db_acked = db::check_acked(&lab.node_pairs(), &lab.lun, &watch.db)
        .unwrap_or_else(|why| fail(&lab, format!("at the end: {why}")));
    let v = watch.violations();
    if !v.is_empty() {
        fail(&lab, format!("at the end: {}", v.join("; ")));
    }
    if std::env::var_os("CHAOS_KEEP_LOGS").is_some() {
        eprintln!(
            "chaos {topology:?}: agent logs kept in {}",
            lab.keep_logs(seed, topology).display()
        );
    }
    // The end: every node's processes gone, and with them its mount
    // namespace and mounts; then the file system must be clean.
    drop(watch);
    lab.halt();
    if let Err(why) = lab.lun.fsck() {
        fail(&lab, why);
    }
    Figures {
        detection,
        service,
        service_leader,
        election,
        leader_down,
        fence,
        cut_fence,
        cut_service,
        mute_fence,
        mute_service,
        service_agent,
        cleared,
        commits,
        db_service,
        db_stop,
        db_switchover,
        db_acked,
    }
}
