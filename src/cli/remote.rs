//! Reaching a running domain from the CLI: credentials, endpoints, and
//! the calls `plan`, `apply`, `status`, `watch` and `clear` share.
//!
//! Credentials come from flags (`--endpoint`, `--token` or `ASCTL_TOKEN`,
//! `--ca`) for a real domain, or from the state directory `asctl up`
//! writes (`domain.json`, `token`, `tls/ca.crt`), found in this order:
//! `--state-dir` / `ASCTL_STATE_DIR`, `./.asctl/`,
//! `$XDG_STATE_HOME/asctl/<domain>/` (default `~/.local/state`), and the
//! only domain there when the command does not name one. Flags override
//! what the state directory says.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use asctl::agent::server::tls;
use asctl::domain::{Client, ClientError, Command, NO_LEADER, Outcome, WriteAnswer};
use asctl::model::Config;
use asctl::plan::LiveState;
use asctl::wire::StatusView;
use clap::Args;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// An agent's `host:port` (repeat for fallbacks) [default: from the state
    /// directory, else the configuration's agent addresses].
    #[arg(long = "endpoint", value_name = "HOST:PORT")]
    pub endpoints: Vec<String>,
    /// The domain's API token [default: $ASCTL_TOKEN, else the state directory's].
    #[arg(long)]
    pub token: Option<String>,
    /// The CA certificate (PEM) the agents' certificates chain to.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// The state directory of a domain started by `asctl up` [default:
    /// $ASCTL_STATE_DIR, ./.asctl, $XDG_STATE_HOME/asctl/<domain>].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `domain.json` in a state directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateFile {
    pub domain: String,
    pub endpoints: Vec<String>,
    /// Relative to the state directory.
    pub ca: PathBuf,
    pub token_file: PathBuf,
}

pub const STATE_FILE: &str = "domain.json";

/// `$XDG_STATE_HOME/asctl` (default `~/.local/state/asctl`).
pub fn state_root() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from(".asctl-state"));
    base.join("asctl")
}

fn find_state_dir(explicit: Option<&Path>, domain: Option<&str>) -> Option<PathBuf> {
    let has = |d: &Path| d.join(STATE_FILE).is_file();
    if let Some(d) = explicit {
        return Some(d.to_owned());
    }
    if let Some(d) = std::env::var_os("ASCTL_STATE_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d));
    }
    let local = PathBuf::from(".asctl");
    if has(&local) {
        return Some(local);
    }
    let root = state_root();
    if let Some(name) = domain {
        let d = root.join(name);
        return has(&d).then_some(d);
    }
    let found: Vec<PathBuf> = std::fs::read_dir(&root)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|d| has(d))
        .collect();
    match found.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// A connection to a domain: a client and the members to try, in order
/// (the member that answered last first).
pub struct Remote {
    pub client: Client,
    pub endpoints: Vec<String>,
    /// Where the member that answered last is remembered (in the state
    /// directory), so that the next command asks it first.
    memory: Option<PathBuf>,
    /// The endpoints were named on the command line (`--endpoint`): `status`
    /// shows the view of the member asked, not the leader's.
    pinned: bool,
}

/// The file of a state directory naming the member that answered last.
pub const LAST_MEMBER_FILE: &str = "last-member";

/// How long a member has to answer a read before the next one is asked as
/// well: a member that is down or frozen costs this, not a timeout.
const HEDGE: Duration = Duration::from_millis(300);

/// How long a status read waits for the leader's answer once a member that
/// does not lead answered first; past it, that member's answer is used.
const LEADER_WAIT: Duration = Duration::from_secs(1);

const STATUS: &str = "/v1/status";

/// Whether `s` is the leader's own answer.
fn leads(s: &StatusView) -> bool {
    s.leader.as_deref() == Some(s.answered_by.as_str())
}

/// A member's answer that it found no leader for a write: nothing was handed
/// to a leader through it, and another member may know one. (A write that a
/// leader did commit meanwhile is refused the second time: an apply names
/// the generation it was planned on.)
fn knows_no_leader(err: &ClientError) -> bool {
    matches!(err, ClientError::Status { status, body, .. }
        if status.as_u16() == 503 && body.contains(NO_LEADER))
}

/// The address of the leader `s` names, from its member list.
fn leader_address(s: &StatusView) -> Option<String> {
    let leader = s.leader.as_deref()?;
    s.members
        .iter()
        .find(|m| m.name == leader)
        .map(|m| m.address.clone())
}

impl Remote {
    /// Resolves credentials for the domain of `config` (when known).
    pub fn resolve(args: &RemoteArgs, config: Option<&Config>) -> anyhow::Result<Remote> {
        tls::install_provider();
        let domain = config.and_then(|c| c.domain.as_ref().map(|d| d.name().to_string()));
        let state_dir = find_state_dir(args.state_dir.as_deref(), domain.as_deref());
        let state: Option<(PathBuf, StateFile)> = match &state_dir {
            Some(d) => {
                let path = d.join(STATE_FILE);
                let text = std::fs::read_to_string(&path);
                match text {
                    Ok(t) => Some((
                        d.clone(),
                        serde_json::from_str(&t)
                            .with_context(|| format!("reading {}", path.display()))?,
                    )),
                    Err(_) if args.state_dir.is_none() => None,
                    Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
                }
            }
            None => None,
        };
        let token = match (&args.token, std::env::var("ASCTL_TOKEN").ok(), &state) {
            (Some(t), _, _) => t.clone(),
            (None, Some(t), _) if !t.is_empty() => t,
            (_, _, Some((dir, s))) => {
                let path = dir.join(&s.token_file);
                asctl::agent::server::auth::read_token(&path)
                    .with_context(|| format!("reading the token from {}", path.display()))?
            }
            _ => bail!(
                "no credentials for the domain: pass --token (or set ASCTL_TOKEN) and --ca, or \
                 run the command where `asctl up` can be found (see docs/runtime.md)"
            ),
        };
        let ca = match (&args.ca, &state) {
            (Some(ca), _) => ca.clone(),
            (None, Some((dir, s))) => dir.join(&s.ca),
            (None, None) => bail!("no CA certificate for the domain's agents: pass --ca FILE"),
        };
        let tls = tls::client_config(&ca)
            .with_context(|| format!("loading the CA certificate {}", ca.display()))?;
        let mut endpoints = args.endpoints.clone();
        if endpoints.is_empty() {
            if let Some((_, s)) = &state {
                endpoints = s.endpoints.clone();
            }
        }
        if endpoints.is_empty() {
            if let Some(c) = config {
                endpoints = c
                    .nodes
                    .iter()
                    .filter_map(|n| n.spec.agent.as_ref().map(|a| a.address.to_string()))
                    .collect();
            }
        }
        if endpoints.is_empty() {
            bail!("no agent to ask: pass --endpoint HOST:PORT");
        }
        let memory = state.as_ref().map(|(dir, _)| dir.join(LAST_MEMBER_FILE));
        if let Some(last) = memory
            .as_deref()
            .and_then(|m| std::fs::read_to_string(m).ok())
            && let Some(i) = endpoints.iter().position(|e| e == last.trim())
        {
            let e = endpoints.remove(i);
            endpoints.insert(0, e);
        }
        Ok(Remote {
            client: Client::new(tls, &token)
                .with_timeout(Duration::from_secs(10))
                .with_by(&who()),
            endpoints,
            memory,
            pinned: !args.endpoints.is_empty(),
        })
    }

    /// Remembers `endpoint` as the member that answered. Best effort: a
    /// state directory that cannot be written only costs the order.
    fn answered(&self, endpoint: &str) {
        if let Some(m) = &self.memory
            && self.endpoints.first().map(String::as_str) != Some(endpoint)
        {
            let _ = std::fs::write(m, endpoint);
        }
    }

    /// `GET path` from the first member that answers. The members are asked
    /// in order, each [`HEDGE`] after the previous one (at once when it
    /// failed), and the first answer wins: a member that is down or frozen
    /// delays the answer by [`HEDGE`], not by the request timeout.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let (v, e) = self.get_from(path).await?;
        self.answered(&e);
        Ok(v)
    }

    /// [`Self::get`] without remembering who answered: the answer and the
    /// endpoint it came from.
    async fn get_from<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<(T, String)> {
        use futures_util::StreamExt;
        use futures_util::stream::FuturesUnordered;
        let ask = |e: &String| {
            let e = e.clone();
            async move { (self.client.get::<T>(&e, path).await, e) }
        };
        let mut waiting = self.endpoints.iter();
        let mut asking = FuturesUnordered::new();
        let mut last = None;
        loop {
            if asking.is_empty() {
                match waiting.next() {
                    Some(e) => asking.push(ask(e)),
                    None => return Err(unreachable(last, &self.endpoints)),
                }
            }
            tokio::select! {
                Some((answer, e)) = asking.next() => match answer {
                    Ok(v) => return Ok((v, e)),
                    Err(err) if err.is_unreachable() => {
                        last = Some(err);
                        if let Some(e) = waiting.next() {
                            asking.push(ask(e));
                        }
                    }
                    Err(err) => return Err(err.into()),
                },
                () = tokio::time::sleep(HEDGE) => {
                    if let Some(e) = waiting.next() {
                        asking.push(ask(e));
                    }
                }
            }
        }
    }

    /// `POST path` to the first member that answers, one after the other (a
    /// write is not sent twice): a member that is down costs at most the
    /// client's connect timeout. The leader, as [`Self::leader_status`]
    /// finds it, is asked first: a member that was removed from the domain
    /// may know no leader any more, and would answer that the domain has
    /// none rather than forward the write.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let status = self.leader_status().await.ok();
        let mut targets: Vec<String> = status
            .as_ref()
            .and_then(leader_address)
            .into_iter()
            .collect();
        // The members the answering member knows of before the other
        // endpoints (a removed member among those last).
        let known = |e: &&String| {
            status
                .as_ref()
                .is_some_and(|s| s.members.iter().any(|m| m.address == **e))
        };
        let (members, others): (Vec<&String>, Vec<&String>) =
            self.endpoints.iter().partition(known);
        for e in members.into_iter().chain(others) {
            if !targets.contains(e) {
                targets.push(e.clone());
            }
        }
        let mut last = None;
        for e in &targets {
            match self.client.post(e, path, body).await {
                Ok(v) => {
                    self.answered(e);
                    return Ok(v);
                }
                Err(err) if err.is_unreachable() || knows_no_leader(&err) => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or(ClientError::Connect {
            addr: String::new(),
            message: "no endpoint".into(),
        }))
    }

    pub async fn live(&self) -> anyhow::Result<LiveState> {
        self.get("/v1/live").await
    }

    /// The domain's status: the leader's ([`Self::leader_status`]), or with
    /// `--endpoint` the view of the first member named that answers.
    pub async fn status(&self) -> anyhow::Result<StatusView> {
        if self.pinned {
            return self.get(STATUS).await;
        }
        self.leader_status().await
    }

    /// The status as the leader has it, whenever the leader answers within
    /// [`LEADER_WAIT`] of another member. Every member answers from its own
    /// copy of the domain state, and a copy can stop for good while its
    /// agent answers on: a member removed from the domain is no longer
    /// replicated to (nor told that it was removed), so it shows the
    /// generation and the node reports of the moment it left, forever. Once
    /// remembered as the member to ask first, it was every later read's
    /// answer, and `apply` waited on reports that member would never see.
    /// So the first answer is kept only when it comes from the leader, or
    /// when no leader answers (an election, a domain without a quorum);
    /// otherwise the leader it names and every other member are asked at
    /// once, and the leader's answer is used and remembered.
    pub async fn leader_status(&self) -> anyhow::Result<StatusView> {
        let (first, from) = self.get_from::<StatusView>(STATUS).await?;
        if leads(&first) {
            self.answered(&from);
            return Ok(first);
        }
        let mut others: Vec<String> = leader_address(&first).into_iter().collect();
        for e in &self.endpoints {
            if *e != from && !others.contains(e) {
                others.push(e.clone());
            }
        }
        let found = tokio::time::timeout(LEADER_WAIT, self.a_leaders_status(&others)).await;
        match found.ok().flatten() {
            Some((s, e)) => {
                self.answered(&e);
                Ok(s)
            }
            None => {
                self.answered(&from);
                Ok(first)
            }
        }
    }

    /// The first status from `targets` (asked all at once) that comes from
    /// the leader.
    async fn a_leaders_status(&self, targets: &[String]) -> Option<(StatusView, String)> {
        use futures_util::StreamExt;
        use futures_util::stream::FuturesUnordered;
        let mut asking: FuturesUnordered<_> = targets
            .iter()
            .map(|e| async move { (self.client.get::<StatusView>(e, STATUS).await, e) })
            .collect();
        while let Some((answer, e)) = asking.next().await {
            match answer {
                Ok(s) if leads(&s) => return Some((s, e.clone())),
                _ => {}
            }
        }
        None
    }

    /// Commits `cmd` through the raft leader (`POST /v1/write`, which only
    /// the leader accepts) and returns its outcome. The leader named by a
    /// member's status is asked first, then every endpoint; while no member
    /// leads (an election, or a domain without a quorum) it asks again until
    /// `within` has passed.
    pub async fn write(&self, cmd: &Command, within: Duration) -> anyhow::Result<Outcome> {
        let deadline = tokio::time::Instant::now() + within;
        let mut last: Option<ClientError> = None;
        loop {
            let mut targets = Vec::new();
            if let Ok(status) = self.status().await
                && let Some(leader) = &status.leader
                && let Some(m) = status.members.iter().find(|m| m.name == *leader)
            {
                targets.push(m.address.clone());
            }
            for e in &self.endpoints {
                if !targets.contains(e) {
                    targets.push(e.clone());
                }
            }
            let mut answered = false;
            for t in &targets {
                match self
                    .client
                    .post::<_, WriteAnswer>(t, "/v1/write", cmd)
                    .await
                {
                    Ok(WriteAnswer::Committed(outcome)) => return Ok(outcome),
                    Ok(WriteAnswer::Refused { message }) => {
                        return Ok(Outcome::Invalid { message });
                    }
                    Ok(WriteAnswer::NotLeader) => answered = true,
                    Err(err) if err.is_unreachable() => last = Some(err),
                    Err(err) => return Err(err.into()),
                }
            }
            if !answered {
                // No member answered at all: waiting for a leader is futile.
                return Err(unreachable(last, &self.endpoints));
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Err(anyhow::anyhow!(
            "no leader of the domain committed the change within {within:?} (asked {}{}): \
             nothing can be committed until a majority of its members is back",
            self.endpoints.join(", "),
            last.map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
        ))
    }
}

fn unreachable(last: Option<ClientError>, endpoints: &[String]) -> anyhow::Error {
    match last {
        Some(e) => anyhow::anyhow!(
            "no member of the domain answered ({}); last error: {e}",
            endpoints.join(", ")
        ),
        None => anyhow::anyhow!("no member of the domain to ask"),
    }
}

/// The answers every write command reads the same way: a name the domain
/// does not know (exit 1, nothing changed), or an outcome the command did
/// not ask for.
pub fn unknown_or_unexpected(outcome: &Outcome) -> anyhow::Result<u8> {
    match outcome {
        Outcome::UnknownGroup { group } => {
            eprintln!("error: the domain has no group {group}; nothing was changed");
            Ok(super::EXIT_FINDINGS)
        }
        Outcome::UnknownNode { node } => {
            eprintln!("error: the domain has no node {node}; nothing was changed");
            Ok(super::EXIT_FINDINGS)
        }
        other => bail!("the domain answered an unexpected outcome: {other:?}"),
    }
}

/// What the CLI says about who runs it, recorded as the note beside the
/// credential's name with applies and overrides in the domain's history:
/// `ASCTL_BY` when set, else `user@host`. Declared, not proven. Kept to
/// printable ASCII (an HTTP header).
pub fn who() -> String {
    let declared = std::env::var("ASCTL_BY")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let name = declared.unwrap_or_else(|| {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        format!("{user}@{host}")
    });
    name.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(200)
        .collect()
}

/// A current-thread runtime: the CLI waits on one thing at a time.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
