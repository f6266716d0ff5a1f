//! Each fault kind's inject and heal ([`ARMS`] in `faults.rs` names them),
//! and the round they act on.

use super::*;

/// One round's fault as its inject and heal see it: the lab, the observer,
/// the campaign's figures, and what was true when the round was drawn.
pub(crate) struct Round<'a> {
    pub(crate) lab: &'a mut Lab,
    pub(crate) watch: &'a Watch,
    pub(crate) figures: &'a mut Figures,
    pub(crate) topology: Topology,
    pub(crate) round: usize,
    pub(crate) fault: Fault,
    pub(crate) victim: usize,
    pub(crate) vname: String,
    /// The line a `LineDown` cuts.
    pub(crate) line: &'static str,
    /// web's node when the round began.
    pub(crate) holder: Option<String>,
    /// db's node when the round began.
    pub(crate) db_holder: Option<String>,
    /// The victim led the domain when the round began.
    pub(crate) was_leader: bool,
    /// When the fault was injected.
    pub(crate) t0: Instant,
    /// The agent's pid before an agent fault (set by inject, for heal).
    pub(crate) pid: Option<i32>,
}

impl Round<'_> {
    fn holds_web(&self) -> bool {
        self.holder.as_deref() == Some(self.vname.as_str())
    }

    fn holds_db(&self) -> bool {
        self.db_holder.as_deref() == Some(self.vname.as_str())
    }

    /// (name, network namespace) of the victim.
    fn node(&self) -> (String, String) {
        (
            self.vname.clone(),
            self.lab.nodes[self.victim].ns.name.clone(),
        )
    }

    fn links(&self, state: &str) {
        let n = &self.lab.nodes[self.victim];
        for l in ["d1", "d2", "v"] {
            n.ns.ip(&format!("link set {l} {state}"));
        }
    }
}

/// A heal with nothing to do.
pub(crate) fn nothing(_: &mut Round) -> Result<(), String> {
    Ok(())
}

/// `CrashNode`: the machine crashes; the survivors must detect it, elect a
/// leader if it led, and bring back what it ran.
pub(crate) fn crash(r: &mut Round) -> Result<(), String> {
    // Answers after this come from a survivor.
    let killed = r.lab.crash(r.victim);
    let lost = detected(r).ok_or_else(|| format!("{}'s crash was never detected", r.vname))?;
    r.figures.detection.push(lost.as_secs_f64());
    if r.was_leader && r.topology == Topology::Two {
        // Two voters need both to commit: no survivor can be elected, and
        // nothing is committed (the node stays up in the domain) until the
        // node is back. The survivor fails over by local takeover instead
        // (docs/ha.md); the service check below holds it to that.
        eprintln!(
            "chaos round {}: {} was the raft leader of a two-node domain: \
             no new leader expected while it is down (local takeover)",
            r.round, r.vname
        );
    } else if r.was_leader {
        new_leader(r)?;
    }
    if r.holds_web() {
        let at = wait_until("the service to answer again", LIMIT, || {
            r.watch.answered_after(r.t0, Some(&r.vname))
        })
        .ok_or("the service did not come back")?;
        let d = (at - r.t0).as_secs_f64();
        r.figures.service.push(d);
        eprintln!(
            "chaos round {}: the service answered again {d:.2} s after the crash",
            r.round
        );
        if r.was_leader {
            r.figures.service_leader.push(d);
        }
    }
    if r.holds_db() {
        let at = wait_until("db to answer again", LIMIT, || {
            r.watch.db.answered_after(killed)
        })
        .ok_or("db did not come back after its node's crash")?;
        let d = (at - r.t0).as_secs_f64();
        r.figures.db_service.push(d);
        eprintln!(
            "chaos round {}: db's writer answered again {d:.2} s after the crash",
            r.round
        );
    }
    Ok(())
}

/// Detected: a survivor's failure detector reports the crashed node
/// failed (`asctl status`, `lines`), or the domain has it down. The instant
/// of the detector's verdict is read back from its `sinceMsAgo` (taken when
/// the answer arrived, so it errs late by the answer's latency), not from
/// when a poll saw it.
fn detected(r: &Round) -> Option<Duration> {
    let vname = r.vname.as_str();
    wait_until("the crash to be detected", LIMIT, || {
        let s = r.lab.status_from_others(Some(vname))?;
        let answered = r.t0.elapsed();
        let peer = s.pointer(&format!("/lines/peers/{vname}"));
        let failed = peer.and_then(|p| p["state"].as_str()) == Some("failed");
        let since = peer
            .and_then(|p| p["sinceMsAgo"].as_u64())
            .map(Duration::from_millis);
        match (failed, since) {
            (true, Some(ago)) if ago <= answered => Some(answered - ago),
            // Failed since before the crash: no verdict of this fault to
            // read, so the conservative poll instant.
            (true, _) => Some(answered),
            _ => (r.lab.node_state(&s, vname).as_deref() == Some("down")).then_some(answered),
        }
    })
}

/// After the leader's crash, a survivor names another leader, and the
/// domain (which only a leader commits to) has the node down.
fn new_leader(r: &mut Round) -> Result<(), String> {
    let vname = r.vname.as_str();
    let elected = wait_until("a new leader", LIMIT, || {
        let s = r.lab.status_from_others(Some(vname))?;
        let other = s
            .get("leader")
            .and_then(|l| l.as_str())
            .is_some_and(|l| l != vname);
        other.then(|| r.t0.elapsed())
    });
    let down = wait_until("the domain to have the leader down", LIMIT, || {
        r.lab
            .status_from_others(Some(vname))
            .and_then(|s| r.lab.node_state(&s, vname))
            .filter(|s| s == "down")
            .map(|_| r.t0.elapsed())
    });
    match (elected, down) {
        (Some(e), Some(d)) => {
            r.figures.election.push(e.as_secs_f64());
            r.figures.leader_down.push(d.as_secs_f64());
            Ok(())
        }
        _ => Err(format!("no new leader after {vname}'s crash")),
    }
}

/// The crashed node reboots: links up, its agent started.
pub(crate) fn reboot(r: &mut Round) -> Result<(), String> {
    r.links("up");
    r.lab.start_agent(Some(r.victim));
    Ok(())
}

/// `LineDown`: one line of the node down for 3 s.
pub(crate) fn line_down(r: &mut Round) -> Result<(), String> {
    r.lab.nodes[r.victim]
        .ns
        .ip(&format!("link set {} down", r.line));
    std::thread::sleep(Duration::from_secs(3));
    Ok(())
}

pub(crate) fn line_up(r: &mut Round) -> Result<(), String> {
    r.lab.nodes[r.victim]
        .ns
        .ip(&format!("link set {} up", r.line));
    Ok(())
}

/// `Partition`: every line of the node down for 4 s.
pub(crate) fn partition(r: &mut Round) -> Result<(), String> {
    r.links("down");
    std::thread::sleep(Duration::from_secs(4));
    Ok(())
}

pub(crate) fn links_up(r: &mut Round) -> Result<(), String> {
    r.links("up");
    Ok(())
}

/// `CutFromPeers` and `Mute`: packet filtering in the node's namespace for
/// [`CUT`]; meanwhile, seen from outside, when a cut or muted holder has
/// let its address and application go (its own fence: it cannot hear that
/// the majority moved the group), and when the service answered elsewhere.
pub(crate) fn cut(r: &mut Round) -> Result<(), String> {
    let peers = r.lab.peer_addresses(r.victim);
    let node = r.node();
    if r.fault == Fault::Mute {
        mute(&node.1, &peers);
    } else {
        cut_from(&node.1, &peers);
    }
    let mut fenced = None;
    while r.t0.elapsed() < CUT {
        if fenced.is_none() && r.holds_web() {
            let seen = observe(std::slice::from_ref(&node));
            if seen.ip_on.is_empty() && seen.app_on.is_empty() {
                fenced = Some(r.t0.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if r.holds_web() {
        let (fences, services) = if r.fault == Fault::Mute {
            (&mut r.figures.mute_fence, &mut r.figures.mute_service)
        } else {
            (&mut r.figures.cut_fence, &mut r.figures.cut_service)
        };
        if let Some(d) = fenced {
            fences.push(d.as_secs_f64());
        }
        if let Some(at) = r.watch.answered_after(r.t0, Some(&r.vname))
            && at - r.t0 < CUT
        {
            services.push((at - r.t0).as_secs_f64());
        }
    }
    Ok(())
}

/// Removes the filtering of `cut`.
pub(crate) fn uncut_node(r: &mut Round) -> Result<(), String> {
    uncut(&r.lab.nodes[r.victim].ns.name);
    Ok(())
}

/// `DiskFull` (`storage.rs`).
pub(crate) fn disk_full(r: &mut Round) -> Result<(), String> {
    storage::disk_full(r.lab, r.victim)
}

/// `DiskRo` (`storage.rs`).
pub(crate) fn disk_ro(r: &mut Round) -> Result<(), String> {
    let holds = r.holds_web();
    storage::disk_ro(r.lab, r.victim, holds)
}

/// `DiskSlow` (`storage.rs`).
pub(crate) fn disk_slow(r: &mut Round) -> Result<(), String> {
    let holds = r.holds_web();
    storage::disk_slow(r.lab, r.victim, holds)
}

/// `StopWriter` (`db.rs`): db's writer SIGSTOPped on its node.
pub(crate) fn stop_writer(r: &mut Round) -> Result<(), String> {
    let node = r.node();
    // The fault is a hung application under a running group: wait until
    // the victim reports db online (a start in progress would hold the
    // stop back for the start timeout, which is not what this measures).
    wait_until("db online on its node", LIMIT, || {
        r.lab.group_online(&node.0, "db").then_some(())
    })
    .ok_or_else(|| format!("{} never reported db online", node.0))?;
    let d = db::stop_writer(&r.lab.node_pairs(), &node, &r.lab.lun, &r.watch.db)?;
    r.figures.db_stop.push(d.as_secs_f64());
    eprintln!(
        "chaos round {}: db answered again {:.2} s after its writer was stopped",
        r.round,
        d.as_secs_f64()
    );
    Ok(())
}

/// `KillAgent` (`kill -9`) or `Freeze` (SIGSTOP) of the agent alone: the
/// holder's guard must fence it within the lease, and on two nodes the
/// survivor must take over before the agent comes back.
pub(crate) fn agent_gone(r: &mut Round) -> Result<(), String> {
    let n = &mut r.lab.nodes[r.victim];
    r.pid = n.agent.as_ref().map(|c| c.id() as i32);
    if r.fault == Fault::KillAgent {
        if let Some(mut c) = n.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    } else if let Some(pid) = r.pid {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
    }
    let checked = agent_gone_checks(r);
    if checked.is_err()
        && r.fault == Fault::Freeze
        && let Some(pid) = r.pid
    {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(pid, libc::SIGCONT) };
    }
    checked
}

fn agent_gone_checks(r: &mut Round) -> Result<(), String> {
    if !r.holds_web() {
        return Ok(());
    }
    let node = r.node();
    let d = fenced_after(&node, r.t0, LEASE + FENCE_MARGIN).ok_or_else(|| {
        format!(
            "the holder still has the address or the application {:?} later",
            LEASE + FENCE_MARGIN
        )
    })?;
    r.figures.fence.push(d.as_secs_f64());
    // Two nodes without a witness: nothing can be committed while the
    // holder's agent is dead or frozen, so the survivor must take the group
    // over locally (docs/ha.md, "Local takeover") before the agent comes
    // back.
    if r.topology == Topology::Two {
        let at = wait_until("the survivor to answer", LIMIT, || {
            r.watch.answered_after(r.t0, Some(&r.vname))
        })
        .ok_or("the survivor did not take the service over while the holder's agent was down")?;
        r.figures.service_agent.push((at - r.t0).as_secs_f64());
    }
    Ok(())
}

/// 3 s after the fault: the frozen agent woken, the killed one started.
pub(crate) fn agent_back(r: &mut Round) -> Result<(), String> {
    std::thread::sleep(Duration::from_secs(3).saturating_sub(r.t0.elapsed()));
    match (r.fault, r.pid) {
        // SAFETY: a signal to our own child.
        (Fault::Freeze, Some(pid)) => {
            // SAFETY: a signal to our own child.
            unsafe { libc::kill(pid, libc::SIGCONT) };
            r.lab.restart_if_gone(r.victim);
        }
        _ => r.lab.start_agent(Some(r.victim)),
    }
    Ok(())
}
