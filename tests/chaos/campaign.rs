//! A campaign: the rounds of seeded faults on one topology, the
//! invariants checked after each, and the figures it measures. What a
//! fault does is its entry in [`ARMS`]: the loop here is the same for all.

use super::*;

/// One topology's lab and what a violation report needs to replay it.
struct Campaign {
    lab: Lab,
    topology: Topology,
    seed: u64,
    rounds: usize,
}

/// What the invariants carry from round to round.
#[derive(Default)]
struct Progress {
    last_generation: u64,
    /// The harness's own last acknowledged commit: (round, generation).
    acked: Option<(usize, u64)>,
}

/// Runs `rounds` faults on `topology`; returns its figures, or panics with
/// the replayable seed on a violation.
pub(crate) fn campaign(topology: Topology, seed: u64, rounds: usize, faults: &[Fault]) -> Figures {
    let mut rng = Rng(seed | 1);
    let mut c = Campaign {
        lab: Lab::new(topology),
        topology,
        seed,
        rounds,
    };
    let watch = c.form();
    c.idle(&watch);
    let mut figures = Figures::default();
    let mut progress = Progress::default();
    for round in 0..rounds {
        let fault = c.round(round, &mut rng, faults, &watch, &mut figures);
        c.check_round(round, fault, &watch, &mut figures, &mut progress);
    }
    c.finish(watch, figures, &progress)
}

impl Campaign {
    /// Panics with the replay line, the domain's view and the agents' logs.
    fn fail(&self, why: String) -> ! {
        let lab = &self.lab;
        // The domain's own view (placement, `failedOn`, nodes, lines) from
        // any node that answers, to tell a stuck placement from a dead node.
        let status = lab
            .status()
            .and_then(|s| serde_json::to_string_pretty(&s).ok())
            .unwrap_or_else(|| "no node answered `asctl status`".into());
        panic!(
            "chaos violation ({:?}): {why}\nreplay with CHAOS_SEED={} CHAOS_TOPOLOGIES={} \
             CHAOS_FAULTS={} CHAOS_ROUNDS={}\n--- asctl status --format json\n{status}\n{}\nwhole agent logs kept in {}",
            self.topology,
            self.seed,
            match self.topology {
                Topology::Three => "three",
                Topology::TwoWitness => "two-witness",
                Topology::Two => "two",
            },
            std::env::var("CHAOS_FAULTS").unwrap_or_else(|_| "all".into()),
            self.rounds,
            lab.logs(),
            lab.keep_logs(self.seed, self.topology).display()
        )
    }

    /// Starts every agent, waits for the domain, applies the configuration
    /// and starts the observer once the service answers.
    fn form(&mut self) -> Watch {
        let lab = &mut self.lab;
        for i in 0..lab.nodes.len() {
            lab.start_agent(Some(i));
        }
        if lab.witness.is_some() {
            lab.start_agent(None);
        }
        if wait_until("the domain to form", LIMIT, || {
            lab.status()
                .filter(|s| s.get("leader").is_some_and(|l| !l.is_null()))
        })
        .is_none()
        {
            self.fail("the domain did not form".into());
        }
        let cfg = self.lab.path("config").display().to_string();
        let out = self
            .lab
            .asctl(&["apply", &cfg, "--auto-approve", "--timeout", "60s"], 1);
        if !out.status.success() {
            self.fail(format!("apply failed: {}", text(&out)));
        }
        let watch = Watch::start(&self.lab);
        if wait_until("the service to answer", LIMIT, || {
            watch.answered_after(Instant::now() - Duration::from_secs(1), None)
        })
        .is_none()
        {
            self.fail("the service never answered".into());
        }
        // db starts after web (mount, then writer): round 0 must find it
        // acknowledging too, or a fault aimed at it meets a start.
        if wait_until("db to acknowledge a write", LIMIT, || {
            watch
                .db
                .answered_after(Instant::now() - Duration::from_secs(1))
        })
        .is_none()
        {
            self.fail("db never acknowledged a write".into());
        }
        watch
    }

    /// CHAOS_IDLE_SECS=N: before any fault, watch N seconds with nothing
    /// injected (e.g. under stress-ng) and count false failovers: the
    /// service answered by another node, or a node down in the status.
    fn idle(&self, watch: &Watch) {
        let Some(secs) = std::env::var("CHAOS_IDLE_SECS")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            return;
        };
        let lab = &self.lab;
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

    /// Draws round `round`'s fault and victim, injects and heals it; the
    /// fault and the victim's name.
    fn round(
        &mut self,
        round: usize,
        rng: &mut Rng,
        faults: &[Fault],
        watch: &Watch,
        figures: &mut Figures,
    ) -> (Fault, String) {
        let lab = &mut self.lab;
        let seen = observe(&lab.node_pairs());
        let holder = seen.app_on.first().cloned();
        let db_holder = seen.writer_on.first().cloned();
        // Half the faults hit the holder (a failover), half another node;
        // the failover benchmark (CHAOS_FAULTS=crash-holder) always the
        // holder. CHAOS_FAULTS=crash-leader always crashes the raft leader.
        let faults_env = std::env::var("CHAOS_FAULTS");
        let leader_only = faults_env.as_deref() == Ok("crash-leader");
        let holder_only = faults_env.as_deref() == Ok("crash-holder");
        let leader = lab
            .status()
            .and_then(|s| s.get("leader")?.as_str().map(str::to_owned));
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
        let leader_pos = position(&leader).filter(|_| leader_only);
        let Draw {
            fault,
            mut victim,
            line,
        } = draw(
            rng,
            faults,
            lab.nodes.len(),
            holder_pos,
            leader_pos,
            holder_only,
        );
        let arm = fault.arm();
        if arm.on_writer
            && let Some(d) = position(&db_holder)
        {
            victim = d;
        }
        let vname = lab.nodes[victim].name.clone();
        let what = match fault {
            Fault::LineDown => format!("{fault:?} ({line})"),
            _ => format!("{fault:?}"),
        };
        eprintln!(
            "chaos round {round} at {}: {what} on {vname} (web on {holder:?}, db on {db_holder:?}, raft leader {leader:?})",
            humantime::format_rfc3339_millis(std::time::SystemTime::now())
        );
        lab.starve(victim);
        let mut r = Round {
            lab,
            watch,
            figures,
            topology: self.topology,
            round,
            fault,
            victim,
            was_leader: leader.as_deref() == Some(vname.as_str()),
            vname: vname.clone(),
            line,
            holder,
            db_holder,
            t0: Instant::now(),
            pid: None,
        };
        let done = (arm.inject)(&mut r).and_then(|()| (arm.heal)(&mut r));
        r.lab.relieve(victim);
        if let Err(why) = done {
            self.fail(format!("round {round} ({fault:?} on {vname}): {why}"));
        }
        (fault, vname)
    }

    /// After a round: back to a healthy domain with the service answering
    /// before the next fault, db answering since the fault's end and
    /// mounted once; then the invariants: the generation never goes back,
    /// no acknowledged commit or db write lost, nothing on two nodes.
    fn check_round(
        &self,
        round: usize,
        (fault, vname): (Fault, String),
        watch: &Watch,
        figures: &mut Figures,
        progress: &mut Progress,
    ) {
        let lab = &self.lab;
        let at = |why: String| format!("round {round} ({fault:?} on {vname}): {why}");
        let fault_done = Instant::now();
        let healed = wait_until("the domain to heal", LIMIT, || {
            let s = lab.leader_status()?;
            let all_up = lab
                .nodes
                .iter()
                .all(|n| lab.node_state(&s, &n.name).as_deref() == Some("up"));
            // Two nodes: the committed state cannot have had the node down
            // (no commit without both), and a leader left alone still names
            // itself, so neither says the node is back: every node must
            // answer, name a leader, and have its peer up in its detector.
            let leader = self.topology != Topology::Two || lab.two_node_rejoined();
            let recent = Instant::now() - Duration::from_millis(500);
            (all_up
                && leader
                && watch.answered_after(recent, None).is_some()
                && watch.db.answered_after(recent.max(fault_done)).is_some()
                && db::mounts(&lab.node_pairs(), &lab.lun.devnums).len() == 1)
                .then_some(s)
        });
        let Some(s) = healed else {
            self.fail(at("the domain did not heal".into()))
        };
        let generation = s.get("generation").and_then(|g| g.as_u64()).unwrap_or(0);
        if generation < progress.last_generation {
            self.fail(format!(
                "the committed generation went back from {} to {generation}",
                progress.last_generation
            ));
        }
        progress.last_generation = generation;
        if let Some(acked) = progress.acked {
            if generation < acked.1 {
                self.fail(format!(
                    "lost commit: generation {generation} after generation {} was acknowledged",
                    acked.1
                ));
            }
            if let Err(why) = check_no_lost_commit(lab, acked.0) {
                self.fail(at(why));
            }
        }
        if let Err(why) = db::check_acked(&lab.node_pairs(), &lab.lun, &watch.db) {
            self.fail(at(why));
        }
        match commit_probe(lab, round) {
            Ok(g) => {
                progress.acked = Some((round, g));
                figures.commits += 1;
                progress.last_generation = progress.last_generation.max(g);
            }
            Err(why) => self.fail(why),
        }
        let v = watch.violations();
        if !v.is_empty() {
            self.fail(at(v.join("; ")));
        }
        self.clear_failed(round, &s, figures);
    }

    /// A round can rightly leave a group failed on a node (a line down
    /// under the holder fails it there after its restarts); act like the
    /// operator would, so that later rounds still have somewhere to fail
    /// over to.
    fn clear_failed(&self, round: usize, status: &serde_json::Value, figures: &mut Figures) {
        for group in ["web", "db"] {
            let failed_on = failed_on(status, group);
            if !failed_on.is_empty() {
                eprintln!(
                    "chaos round {round}: {group} failed on {failed_on:?}; the operator runs `asctl clear {group}`"
                );
                if let Err(why) = clear_failures(&self.lab, round, group) {
                    self.fail(why);
                }
                figures.cleared += 1;
            }
        }
    }

    /// After the last round: keep watching, check the commits once more,
    /// switch db over cleanly, stop every node and check db's file system.
    fn finish(mut self, watch: Watch, mut figures: Figures, progress: &Progress) -> Figures {
        // A node that rejoins after the last round (a fenced node catching
        // up, a rebooted one) acts after the domain already looks healed:
        // keep watching long enough for its fence to end (T + W + 1 s and
        // more) before the last verdict. Earlier rounds get this from the
        // next one.
        if self.rounds > 0 {
            std::thread::sleep(SETTLE);
            let v = watch.violations();
            if !v.is_empty() {
                self.fail(format!(
                    "within {SETTLE:?} after the last round: {}",
                    v.join("; ")
                ));
            }
            if let Some((r, _)) = progress.acked
                && let Err(why) = check_no_lost_commit(&self.lab, r)
            {
                self.fail(format!("after the last round: {why}"));
            }
        }
        figures.db_switchover = switchovers(&self.lab, &watch).unwrap_or_else(|why| self.fail(why));
        figures.db_acked = db::check_acked(&self.lab.node_pairs(), &self.lab.lun, &watch.db)
            .unwrap_or_else(|why| self.fail(format!("at the end: {why}")));
        let v = watch.violations();
        if !v.is_empty() {
            self.fail(format!("at the end: {}", v.join("; ")));
        }
        if std::env::var_os("CHAOS_KEEP_LOGS").is_some() {
            eprintln!(
                "chaos {:?}: agent logs kept in {}",
                self.topology,
                self.lab.keep_logs(self.seed, self.topology).display()
            );
        }
        // The end: every node's processes gone, and with them its mount
        // namespace and mounts; then the file system must be clean.
        drop(watch);
        self.lab.halt();
        if let Err(why) = self.lab.lun.fsck() {
            self.fail(why);
        }
        figures
    }
}
