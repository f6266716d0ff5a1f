//! The lab: the nodes' namespaces, bridges and router, the agents
//! started in them, and what a crash or a reboot does to a node.

use super::*;

pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) ns: Netns,
    /// `i` in 10.210.{1,2,3}.i
    pub(crate) host: u8,
    pub(crate) agent: Option<Child>,
    /// The process holding the node's mount namespace (`db::boot`): gone
    /// with a crash, made again at the reboot.
    pub(crate) init: Option<Child>,
}

pub(crate) struct Lab {
    /// Each node's data file system; unmounted after the agents are gone.
    pub(crate) data_fs: Vec<storage::DataFs>,
    /// Group db's LUN and the nodes' loop devices over it.
    pub(crate) lun: db::Lun,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) token: String,
    pub(crate) nodes: Vec<Node>,
    pub(crate) witness: Option<Node>,
    pub(crate) client: Netns,
    /// `CHAOS_STARVE`: the cgroup that caps the node processes' CPU.
    pub(crate) starve: Option<starve::Starve>,
    /// Holds the bridges and the router; dropped last.
    pub(crate) _sw: Netns,
}

pub(crate) fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run command")
}

pub(crate) fn text_of(o: &Output) -> String {
    text(o)
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Lab {
    pub(crate) fn new(topology: Topology) -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let sw = Netns::new("chsw");
        for b in ["b1", "b2", "b3"] {
            sw.ip(&format!("link add {b} type bridge"));
            sw.ip(&format!("link set {b} up"));
        }
        // The isolation router answers ICMP on the d1 segment.
        sw.ip(&format!("addr add {ROUTER}/24 dev b1"));
        let mut nodes = Vec::new();
        for i in 1..=topology.nodes() {
            let ns = Netns::new(&format!("chn{i}"));
            for (line, b) in [("d1", "b1"), ("d2", "b2"), ("v", "b3")] {
                let k = &b[1..];
                bridge_port(
                    &sw,
                    b,
                    &format!("n{i}{line}"),
                    &ns,
                    line,
                    &format!("10.210.{k}.{i}/24"),
                );
            }
            nodes.push(Node {
                name: format!("node{i}"),
                ns,
                host: i as u8,
                agent: None,
                init: None,
            });
        }
        let witness = (topology == Topology::TwoWitness).then(|| {
            let ns = Netns::new("chw");
            bridge_port(&sw, "b1", "wd1", &ns, "d1", "10.210.1.50/24");
            Node {
                name: "witness".into(),
                ns,
                host: 50,
                agent: None,
                init: None,
            }
        });
        let client = Netns::new("chc");
        bridge_port(&sw, "b1", "cd1", &client, "d1", "10.210.1.200/24");
        let mut token = [0u8; 16];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut token))
            .expect("random token");
        let token: String = token.iter().map(|b| format!("{b:02x}")).collect();
        let data_fs = nodes
            .iter()
            .map(|n| storage::DataFs::mount(&dir.path().join(format!("nodes/{}/data", n.name))))
            .collect();
        let lun = db::Lun::new(dir.path(), nodes.len());
        let lab = Lab {
            data_fs,
            lun,
            dir,
            token,
            nodes,
            witness,
            client,
            starve: starve::Starve::from_env(topology.nodes()),
            _sw: sw,
        };
        lab.write_files();
        lab
    }

    /// Node `i`'s data file system.
    pub(crate) fn data_fs(&self, i: usize) -> &storage::DataFs {
        &self.data_fs[i]
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub(crate) fn write_files(&self) {
        let cfg = self.path("config");
        std::fs::create_dir_all(&cfg).expect("mkdir");
        let mut y = String::from(
            "apiVersion: asctl/v1\nkind: Domain\nmetadata: {name: chaos}\nspec:\n  qualification: generic\n  \
             heartbeat: {interval: 250ms, timeout: 1s}\n",
        );
        y += &format!("  isolation: {{addresses: [{ROUTER}], response: offline}}\n");
        if self.witness.is_some() {
            y += &format!("  witness: \"10.210.1.50:{API_PORT}\"\n");
        }
        for n in &self.nodes {
            y += &format!(
                "---\napiVersion: asctl/v1\nkind: Node\nmetadata: {{name: {}}}\nspec: {{physical: true, agent: {{address: \"10.210.1.{}:{API_PORT}\"}}}}\n",
                n.name, n.host
            );
        }
        for (k, line, role) in [
            (1, "d1", "domain"),
            (2, "d2", "domain"),
            (3, "v", "verification"),
        ] {
            let members: Vec<String> = self
                .nodes
                .iter()
                .map(|n| format!("{}: 10.210.{k}.{}", n.name, n.host))
                .collect();
            y += &format!(
                "---\napiVersion: asctl/v1\nkind: NetworkLine\nmetadata: {{name: {line}}}\nspec:\n  role: {role}\n  subnet: 10.210.{k}.0/24\n  members: {{{}}}\n",
                members.join(", ")
            );
        }
        let preferred: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        y += &format!(
            "---\napiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {{name: web}}\nspec:\n  \
             preferredNodes: [{}]\n  ipAddresses: [{{address: {VIP}/24, line: d1}}]\n  processes:\n    \
             - name: server\n      command: [asctl, demo-server, --bind, \"{VIP}\", --port, \"{APP_PORT}\"]\n      stopTimeout: 2s\n",
            preferred.join(", ")
        );
        std::fs::write(cfg.join("domain.yaml"), y).expect("write config");
        // db prefers the nodes the other way round: on most rounds each
        // group has a node of its own.
        let mut reversed = preferred.clone();
        reversed.reverse();
        std::fs::write(cfg.join("db.yaml"), db::config(&self.lun, &reversed))
            .expect("write db config");
        std::fs::write(self.path("token"), format!("{}\n", self.token)).expect("token");
        let mut members: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        let mut hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("10.210.1.{}", n.host))
            .collect();
        if self.witness.is_some() {
            members.push("witness".into());
            hosts.push("10.210.1.50".into());
        }
        asctl::agent::server::tls::generate_local_ca(&self.path("tls"), &members, &hosts)
            .expect("certs");
        for n in self.nodes.iter().chain(&self.witness) {
            let d = self.path(&format!("nodes/{}", n.name));
            std::fs::create_dir_all(&d).expect("mkdir");
            let who = if n.name == "witness" {
                "witness: true\n".to_string()
            } else {
                format!("node: {}\n", n.name)
            };
            let yaml = format!(
                "{who}listen: \"10.210.1.{}:{API_PORT}\"\nallowRemote: true\ndataDir: data\ntokenFile: ../../token\n\
                 tls: {{cert: ../../tls/{n}.crt, key: ../../tls/{n}.key, ca: ../../tls/ca.crt}}\nbootstrap: \"{}\"\n",
                n.host,
                cfg.display(),
                n = n.name,
            );
            std::fs::write(d.join("agent.yaml"), yaml).expect("agent.yaml");
        }
    }

    pub(crate) fn start_agent(&mut self, idx: Option<usize>) {
        let dir = self.dir.path().to_owned();
        let n = match idx {
            Some(i) => &mut self.nodes[i],
            None => self.witness.as_mut().expect("witness"),
        };
        let d = dir.join(format!("nodes/{}", n.name));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("agent.log"))
            .expect("log");
        // A node boots its mount namespace first (again after a crash);
        // its agent, and so its guard and groups, run inside it.
        let mut cmd = match idx {
            Some(i) => {
                if n.init
                    .as_mut()
                    .is_none_or(|c| c.try_wait().ok().flatten().is_some())
                {
                    n.init = Some(db::boot(&n.ns.name, &self.lun, i));
                }
                db::enter(n.init.as_ref().expect("booted"))
            }
            None => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &n.ns.name]);
                c
            }
        };
        if let (Some(s), Some(i)) = (&self.starve, idx) {
            s.enter(i, &mut cmd);
        }
        let child = cmd
            .args([ASCTL, "agent", "--config"])
            .arg(d.join("agent.yaml"))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start agent");
        n.agent = Some(child);
    }

    /// `asctl ARGS` from the client namespace, against the first node.
    pub(crate) fn asctl(&self, args: &[&str], endpoint_host: u8) -> Output {
        run(&mut self.asctl_command(args, endpoint_host))
    }

    /// The command [`Lab::asctl`] runs, for a caller that must not wait for it.
    pub(crate) fn asctl_command(&self, args: &[&str], endpoint_host: u8) -> Command {
        let endpoint = format!("10.210.1.{endpoint_host}:{API_PORT}");
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.client.name, ASCTL])
            .args(args)
            .args(["--endpoint", &endpoint, "--token", &self.token, "--ca"])
            .arg(self.path("tls/ca.crt"));
        c
    }

    /// Status from any node that answers.
    pub(crate) fn status(&self) -> Option<serde_json::Value> {
        self.status_from_others(None)
    }

    /// Status from a node other than `skip` (a crashed node would make the
    /// CLI wait for its connection timeout, spoiling the measurement).
    pub(crate) fn status_from_others(&self, skip: Option<&str>) -> Option<serde_json::Value> {
        self.nodes
            .iter()
            .filter(|n| Some(n.name.as_str()) != skip)
            .find_map(|n| self.own_status(n.host))
    }

    /// The status the member at `host` answers from its own copy.
    fn own_status(&self, host: u8) -> Option<serde_json::Value> {
        let o = self.asctl(&["status", "--format", "json"], host);
        if !o.status.success() {
            return None;
        }
        serde_json::from_slice(&o.stdout).ok()
    }

    /// The leader's own status: the domain's committed state, whose
    /// generation never goes back. Every member answers from its own copy,
    /// and a member back from a partition may answer before it has caught
    /// up, or while its return forces an election.
    pub(crate) fn leader_status(&self) -> Option<serde_json::Value> {
        self.leader().map(|(_, s)| s)
    }

    /// The host of the member that leads, and its own status.
    pub(crate) fn leader(&self) -> Option<(u8, serde_json::Value)> {
        self.nodes
            .iter()
            .chain(self.witness.as_ref())
            .find_map(|n| {
                let s = self.own_status(n.host)?;
                let leads = s.get("leader").and_then(|l| l.as_str()).is_some()
                    && s.get("leader") == s.get("answeredBy");
                leads.then_some((n.host, s))
            })
    }

    /// Whether the domain's status has `node` reporting `group` online. A
    /// writer that answers is not yet an online group: the agent counts the
    /// start done only when every resource's probe has passed, and a fault
    /// that hangs the writer before then meets a start still waiting for
    /// its timeout, not a monitor failure.
    pub(crate) fn group_online(&self, node: &str, group: &str) -> bool {
        self.status()
            .and_then(|s| {
                let state = s.pointer(&format!("/nodes/{node}/report/groups/{group}/state"))?;
                Some(state.as_str()? == "online")
            })
            .unwrap_or(false)
    }

    /// Topology `two`: every node answers `asctl status` itself, names a
    /// leader, and its failure detector has its peer up.
    pub(crate) fn two_node_rejoined(&self) -> bool {
        self.nodes.iter().all(|n| {
            let Some(s) = self.own_status(n.host) else {
                return false;
            };
            let leader = s.get("leader").is_some_and(|l| !l.is_null());
            let peers_up = s
                .pointer("/lines/peers")
                .and_then(|p| p.as_object())
                .is_some_and(|p| {
                    !p.is_empty() && p.values().all(|v| v["state"].as_str() == Some("up"))
                });
            leader && peers_up
        })
    }

    /// Every address of the nodes other than `idx` and of the witness.
    pub(crate) fn peer_addresses(&self, idx: usize) -> Vec<String> {
        let mut out = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if i != idx {
                out.extend((1..=3).map(|k| format!("10.210.{k}.{}", n.host)));
            }
        }
        out.extend(self.witness.iter().map(|w| format!("10.210.1.{}", w.host)));
        out
    }

    pub(crate) fn node_state(&self, status: &serde_json::Value, node: &str) -> Option<String> {
        Some(
            status
                .get("nodes")?
                .get(node)?
                .get("state")?
                .as_str()?
                .to_owned(),
        )
    }

    /// Copies every member's whole agent log to a directory that outlives
    /// the lab (the temporary one goes with it); the directory's path.
    pub(crate) fn keep_logs(&self, seed: u64, topology: Topology) -> PathBuf {
        let keep = std::env::temp_dir().join(format!("asctl-chaos-{seed}-{topology:?}"));
        let _ = std::fs::create_dir_all(&keep);
        for n in self.nodes.iter().chain(&self.witness) {
            let p = self.path(&format!("nodes/{}/agent.log", n.name));
            let _ = std::fs::copy(&p, keep.join(format!("{}.log", n.name)));
        }
        keep
    }

    pub(crate) fn logs(&self) -> String {
        let mut out = String::new();
        for n in self.nodes.iter().chain(&self.witness) {
            let p = self.path(&format!("nodes/{}/agent.log", n.name));
            let t = std::fs::read_to_string(&p).unwrap_or_default();
            let tail: Vec<&str> = t.lines().rev().take(40).collect();
            out += &format!("--- {} (last lines)\n", n.name);
            for l in tail.into_iter().rev() {
                out += l;
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.halt();
        if let Some(s) = &self.starve {
            for i in 0..s.nodes() {
                eprintln!(
                    "chaos: node{}'s cgroup at {} %: {}",
                    i + 1,
                    s.pct,
                    s.stat(i)
                );
            }
        }
    }
}

impl Lab {
    /// A machine crash of node `i`: every process of its namespace killed
    /// (its mount namespace goes with the last one), its managed addresses
    /// gone and its links down. Returns the instant the processes were
    /// gone: answers after it come from a survivor.
    pub(crate) fn crash(&mut self, i: usize) -> Instant {
        let n = &mut self.nodes[i];
        kill_namespace(&n.ns);
        for mut c in [n.agent.take(), n.init.take()].into_iter().flatten() {
            let _ = c.wait();
        }
        let killed = Instant::now();
        for vip in [VIP, db::DB_VIP] {
            let _ = run(Command::new("ip").args([
                "-n",
                &n.ns.name,
                "addr",
                "del",
                &format!("{vip}/24"),
                "dev",
                "d1",
            ]));
        }
        for l in ["d1", "d2", "v"] {
            n.ns.ip(&format!("link set {l} down"));
        }
        killed
    }
}

impl Lab {
    /// `CHAOS_STARVE`: node `i` starved from now (a round's victim).
    pub(crate) fn starve(&mut self, i: usize) {
        if let Some(s) = &mut self.starve {
            s.starve(i);
        }
    }

    /// `CHAOS_STARVE`: node `i` no longer starved (unless all are).
    pub(crate) fn relieve(&mut self, i: usize) {
        if let Some(s) = &mut self.starve {
            s.relieve(i);
        }
    }

    /// Starts node `i`'s agent again if it has exited: a frozen agent that
    /// held `db`'s file system open (its monitor's write check) is one of
    /// the users the guard's fence SIGKILLs to unmount it, and a real node's
    /// service manager would restart it.
    pub(crate) fn restart_if_gone(&mut self, i: usize) {
        let gone = self.nodes[i]
            .agent
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_some());
        if gone {
            eprintln!(
                "chaos: {}'s agent exited while frozen (its guard killed it as a user of db's mount): started again",
                self.nodes[i].name
            );
            self.start_agent(Some(i));
        }
    }

    /// Every member's processes killed and reaped: with the last process
    /// of a node, its mount namespace and its mounts are gone.
    pub(crate) fn halt(&mut self) {
        for n in self.nodes.iter_mut().chain(self.witness.as_mut()) {
            kill_namespace(&n.ns);
            for mut c in [n.agent.take(), n.init.take()].into_iter().flatten() {
                let _ = c.wait();
            }
        }
    }

    /// (name, network namespace) of every node.
    pub(crate) fn node_pairs(&self) -> Vec<(String, String)> {
        self.nodes
            .iter()
            .map(|n| (n.name.clone(), n.ns.name.clone()))
            .collect()
    }
}

/// Every process in `ns`, by pid (from `ip netns pids`).
pub(crate) fn pids(ns: &Netns) -> Vec<i32> {
    let o = run(Command::new("ip").args(["netns", "pids", &ns.name]));
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

pub(crate) fn kill_namespace(ns: &Netns) {
    // The observer's address monitors run there but are not the node's.
    for pid in pids(ns).into_iter().filter(|p| !addr_watch::is_monitor(*p)) {
        // SAFETY: kill(2) on a pid we just listed; ESRCH is harmless.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}
