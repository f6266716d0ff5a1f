//! The replicated domain database: the applied configuration with its
//! generation, the placement of every group and the state of every node,
//! kept by the agents with raft (openraft, pinned).
//!
//! - [`state`]: the state machine itself, pure ([`DomainState::apply`]).
//! - [`store`]: the raft log, vote and snapshot in the data directory.
//! - `timing`: raft's timeouts derived from the heartbeat settings
//!   ([`RaftTiming`]).
//! - [`network`]: both directions of the members' RPCs over the agents'
//!   HTTPS API (raft, write forwarding, read-index, node reports);
//!   [`client`] is the HTTPS client the CLI uses too.
//! - [`status`]: `GET /v1/status` built from this member's state.
//! - [`leader`]: what the leader does — placement on every change of
//!   configuration, reports or health, and membership following the
//!   configuration's nodes.
//!
//! Not here: the control API the CLI uses and running groups (both the
//! agent's), deciding placement (`crate::plan::place`). The domain knows a
//! node only by what crosses the wire: its [`crate::wire::NodeReport`].

pub mod client;
pub mod contact;
pub mod leader;
pub mod network;
pub mod removal;
pub mod state;
pub mod status;
pub mod store;
mod timing;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::Raft;
use openraft::error::{ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::model::Name;
use tokio::sync::watch;

pub use client::{Client, ClientError};
pub use state::{Command, DomainState, NodeRecord, Outcome};
pub use store::Applied;
pub use timing::RaftTiming;
use timing::{raft_config, save_timing_on_change, start_timing};

use store::{LogStore, StateMachine};

/// Raft node ids are derived from member names ([`node_id`]).
pub type NodeId = u64;

pub use crate::wire::api::WITNESS;

/// A member of the domain database: its name and its agent's address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.addr)
    }
}

openraft::declare_raft_types!(
    /// The raft types of the domain database.
    pub TypeConfig:
        D = Command,
        R = Outcome,
        NodeId = NodeId,
        Node = Member,
);

/// The raft id of a member: stable across restarts and the same on every
/// member, so it is computed from the name rather than assigned.
pub fn node_id(name: &str) -> NodeId {
    let digest = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

/// What a member answers a write with when it found no leader to commit it
/// ([`DomainError::NoLeader`]): an election, a domain without a quorum, or a
/// member removed from the domain, which raft no longer tells of any leader.
/// The CLI asks the next member on it.
pub const NO_LEADER: &str = "the domain has no leader (is a majority of its members running?)";

#[derive(Debug, Error)]
pub enum DomainError {
    /// The store's message names the file and, for damage, how to rejoin.
    #[error("cannot open the domain database: {0}")]
    Open(store::StoreError),
    #[error("cannot start raft: {0}")]
    Raft(String),
    #[error("{}", NO_LEADER)]
    NoLeader,
    #[error("forwarding to the leader failed: {0}")]
    Forward(ClientError),
    #[error("the domain database stopped: {0}")]
    Fatal(String),
    #[error("{}", removal::removal_message(*.0))]
    Removed(u64),
}

// Not `#[from]`: the message already holds the cause's text, and a `source`
// would make a printed chain (`{:#}`) say it again.
impl From<store::StoreError> for DomainError {
    fn from(e: store::StoreError) -> DomainError {
        DomainError::Open(e)
    }
}

impl From<ClientError> for DomainError {
    fn from(e: ClientError) -> DomainError {
        DomainError::Forward(e)
    }
}

/// The answer of `/raft/read-index`: the leader's commit point, confirmed
/// with a quorum ([`Replica::catch_up`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReadIndex {
    At(u64),
    NotLeader,
}

/// The answer of `/v1/write`: an outcome, "not the leader" for the
/// forwarder to try again, or a command refused before it was committed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WriteAnswer {
    Committed(Outcome),
    NotLeader,
    /// Never committed: a configuration with validation errors
    /// ([`state::validate_documents`]); the message lists the findings.
    Refused {
        message: String,
    },
}

/// One member's replica of the domain database: raft, the applied state
/// and the quorum evidence (apart from the `Domain` kind of a configuration).
#[derive(Clone)]
pub struct Replica {
    pub raft: Raft<TypeConfig>,
    pub me: Member,
    pub id: NodeId,
    pub client: Client,
    pub applied: watch::Receiver<Applied>,
    /// Evidence of being in touch with a quorum (the quorum lease).
    pub contact: Arc<contact::Contact>,
    /// The raft timing this member runs with (until its next start).
    pub timing: RaftTiming,
    log: LogStore,
    /// The log's and the state machine's writing calls in progress.
    storage: [Arc<store::InFlight>; 2],
    /// Set, with the generation that removed it, once this member was
    /// removed from the domain ([`removal`]): it writes nothing after that.
    pub removed: Arc<std::sync::OnceLock<u64>>,
}

impl fmt::Debug for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replica").field("me", &self.me).finish()
    }
}

impl Replica {
    /// Opens this member's database under `dir` and starts raft.
    pub async fn open(dir: &Path, me: Member, client: Client) -> Result<Replica, DomainError> {
        let log = LogStore::open(dir)?;
        let (sm, applied) = StateMachine::open(dir)?;
        let storage = [log.calls(), sm.calls()];
        let id = node_id(&me.name);
        let contact = Arc::new(contact::Contact::new());
        let network = network::Network {
            client: client.clone(),
            contact: contact.clone(),
        };
        let timing = start_timing(dir, &applied);
        tracing::info!(?timing, "raft timing");
        let raft = Raft::new(id, Arc::new(raft_config(timing)?), network, log.clone(), sm)
            .await
            .map_err(|e| DomainError::Raft(e.to_string()))?;
        save_timing_on_change(dir, timing, applied.clone());
        contact.attach(raft.metrics());
        Ok(Replica {
            raft,
            me,
            id,
            client,
            applied,
            contact,
            timing,
            log,
            storage,
            removed: Arc::default(),
        })
    }

    /// The raft storage calls in progress (the log's, the state
    /// machine's): what tells a raft core stuck in a write.
    pub fn storage_calls(&self) -> &[Arc<store::InFlight>] {
        &self.storage
    }

    /// Forms the domain with `members` if this member has never been part
    /// of one. Every founding member calls this with the same set, which
    /// openraft allows; a member that already has a log skips it.
    pub async fn bootstrap(&self, members: BTreeMap<NodeId, Member>) -> Result<(), DomainError> {
        if !self.log.is_pristine() {
            return Ok(());
        }
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(e)) => {
                tracing::debug!("not initialising: {e}");
                Ok(())
            }
            Err(e) => Err(DomainError::Fatal(e.to_string())),
        }
    }

    /// Waits until the state machine has re-applied what was committed
    /// before the last stop, so that what this member acts on first is the
    /// real state, not an empty one.
    pub async fn caught_up(&self, timeout: Duration) -> bool {
        let Some(committed) = self.log.saved_committed() else {
            return true;
        };
        let mut rx = self.applied.clone();
        tokio::time::timeout(timeout, rx.wait_for(|a| a.index >= committed.index))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// As the leader: confirms the leadership with a quorum and waits until
    /// this member has applied everything committed before (openraft's
    /// `ensure_linearizable`); the index of that point. `NotLeader` (as
    /// [`WriteAnswer`]) on any other member.
    pub async fn read_index_local(&self) -> Result<ReadIndex, DomainError> {
        if !self.is_leader() {
            return Ok(ReadIndex::NotLeader);
        }
        match self.raft.ensure_linearizable().await {
            Ok(id) => Ok(ReadIndex::At(id.map_or(0, |l| l.index))),
            Err(RaftError::APIError(_)) => Ok(ReadIndex::NotLeader),
            Err(e) => Err(DomainError::Fatal(e.to_string())),
        }
    }

    /// Waits until this member has applied everything the domain committed
    /// before the call (the read-index protocol): the leader names its
    /// commit point after confirming with a quorum that it still leads, and
    /// this member waits until it has applied that far. The way to know a
    /// member is caught up after it was cut off, frozen or restarted:
    /// entries may arrive in batches, and a member that cannot reach a
    /// leader never counts as caught up. Fails after `timeout`.
    pub async fn catch_up(&self, timeout: Duration) -> Result<u64, DomainError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let index = loop {
            let answer = match self.leader() {
                Some((id, _)) if id == self.id => {
                    tokio::time::timeout_at(deadline, self.read_index_local())
                        .await
                        .map_err(|_| DomainError::NoLeader)??
                }
                Some((_, leader)) => {
                    let client = self.client.clone().with_timeout(
                        deadline.saturating_duration_since(tokio::time::Instant::now()),
                    );
                    match client.post(&leader.addr, "/raft/read-index", &()).await {
                        Ok(a) => a,
                        Err(e) if e.is_unreachable() => ReadIndex::NotLeader,
                        Err(e) => return Err(e.into()),
                    }
                }
                None => ReadIndex::NotLeader,
            };
            match answer {
                ReadIndex::At(index) => break index,
                ReadIndex::NotLeader if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                ReadIndex::NotLeader => return Err(DomainError::NoLeader),
            }
        };
        let asked = self.leader().map(|(_, m)| m.name);
        tracing::info!(index, leader = ?asked, "catching up: applying up to the leader's read index");
        let mut rx = self.applied.clone();
        tokio::time::timeout_at(deadline, rx.wait_for(|a| a.index >= index))
            .await
            .map_err(|_| DomainError::NoLeader)?
            .map_err(|_| DomainError::Fatal("the state machine stopped".into()))?;
        Ok(index)
    }

    /// The current committed state.
    pub fn state(&self) -> Arc<DomainState> {
        self.applied.borrow().state.clone()
    }

    /// The leader as this member knows it.
    pub fn leader(&self) -> Option<(NodeId, Member)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?.clone();
        Some((id, node))
    }

    pub fn is_leader(&self) -> bool {
        self.leader().is_some_and(|(id, _)| id == self.id)
    }

    /// Commits `cmd` here if this member leads; otherwise `NotLeader`. A
    /// configuration is validated first and `Refused` with its findings when
    /// it has errors: every write, from any route, ends here on the leader,
    /// so this is the one place that keeps invalid configurations out.
    pub async fn write_local(&self, cmd: Command) -> Result<WriteAnswer, DomainError> {
        // Every command carries the leader's time: the state machine has no
        // clock of its own (events, overrides' expiry).
        let cmd = cmd.at(now_ms());
        if let Command::MoveGroup { group, node, .. } = cmd.inner() {
            if !self.is_leader() {
                return Ok(WriteAnswer::NotLeader);
            }
            let (state, group, node) = (self.state(), group.clone(), node.clone());
            // Loading the domain for the rules takes a while: off the workers.
            let refusal = tokio::task::spawn_blocking(move || seed_refusal(&state, &group, &node))
                .await
                .map_err(|e| DomainError::Fatal(format!("the move check stopped: {e}")))?;
            if let Some(reason) = refusal {
                return Ok(WriteAnswer::Committed(Outcome::Refused { reason }));
            }
        }
        if let Command::ApplyConfig { documents, .. } = cmd.inner() {
            if !self.is_leader() {
                // Not validated here for nothing: the leader does it.
                return Ok(WriteAnswer::NotLeader);
            }
            // Validating a large domain takes a while: off the async workers.
            let documents = documents.clone();
            let checked =
                tokio::task::spawn_blocking(move || state::validate_documents(&documents))
                    .await
                    .map_err(|e| DomainError::Fatal(format!("validation stopped: {e}")))?;
            if let Err(message) = checked {
                return Ok(WriteAnswer::Refused { message });
            }
        }
        match self.raft.client_write(cmd).await {
            Ok(r) => Ok(WriteAnswer::Committed(r.data)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Ok(WriteAnswer::NotLeader)
            }
            Err(e) => Err(DomainError::Fatal(e.to_string())),
        }
    }

    /// Commits `cmd` through the leader, wherever it is. Retries while an
    /// election is under way, for a few seconds.
    pub async fn write(&self, cmd: Command) -> Result<Outcome, DomainError> {
        if let Some(generation) = self.removed.get() {
            return Err(DomainError::Removed(*generation));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        loop {
            let answer = match self.leader() {
                Some((id, _)) if id == self.id => self.write_local(cmd.clone()).await?,
                Some((_, leader)) => {
                    match self
                        .client
                        .post::<_, WriteAnswer>(&leader.addr, "/v1/write", &cmd)
                        .await
                    {
                        Ok(a) => a,
                        Err(e) if e.is_unreachable() => WriteAnswer::NotLeader,
                        Err(e) => return Err(e.into()),
                    }
                }
                None => WriteAnswer::NotLeader,
            };
            match answer {
                WriteAnswer::Committed(o) => return Ok(o),
                WriteAnswer::Refused { message } => return Ok(Outcome::Invalid { message }),
                WriteAnswer::NotLeader if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                WriteAnswer::NotLeader => return Err(DomainError::NoLeader),
            }
        }
    }

    /// The events after `seq` ([`crate::wire::EventsView`]).
    pub fn events_after(&self, seq: u64) -> crate::wire::EventsView {
        let state = self.state();
        crate::wire::EventsView {
            format_version: crate::plan::FORMAT_VERSION,
            events: state.events.after(seq),
            last_seq: state.events.last_seq(),
        }
    }

    /// Members and learners as the current membership has them.
    pub fn members(&self) -> (BTreeMap<NodeId, Member>, std::collections::BTreeSet<NodeId>) {
        let m = self.raft.metrics();
        let m = m.borrow();
        let mem = m.membership_config.membership();
        let nodes = mem.nodes().map(|(id, n)| (*id, n.clone())).collect();
        let voters = mem.voter_ids().collect();
        (nodes, voters)
    }
}

/// The leader's clock, in ms since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Why the seed's support tables do not let `group` move to `node` from
/// where it runs now: the pair judgement `asctl simulate` makes. Checked by
/// the leader before a move is committed (the state machine checks the
/// domain's own rules, `DomainState::move_refusal`).
fn seed_refusal(state: &DomainState, group: &Name, node: &Name) -> Option<String> {
    let config = state.config()?;
    let from = state.placement.get(group)?.node.clone()?;
    if from == *node {
        return None;
    }
    let names: Vec<String> = (0..state.documents.len())
        .map(|i| format!("domain/{i}.json"))
        .collect();
    let loaded = crate::load::load_texts(
        names
            .iter()
            .zip(&state.documents)
            .map(|(n, d)| (n.as_str(), d.as_bytes())),
    );
    let unit = loaded.units.first()?;
    let index = crate::rules::Index::new(loaded.config_of(unit), unit);
    let ctx = crate::rules::Ctx::new(&loaded, unit, &index);
    let g = config.groups.get(group.as_str())?;
    let (a, b) = (
        config.nodes.get(from.as_str())?,
        config.nodes.get(node.as_str())?,
    );
    crate::rules::topology::pair_unsupported(&ctx, g, &a.spec, &b.spec)
        .map(|why| format!("the support tables do not allow {group} on {from} and {node}: {why}"))
}

/// The snapshot payload type openraft moves around (declared by the
/// `declare_raft_types!` defaults).
pub type SnapshotData = Cursor<Vec<u8>>;

#[cfg(test)]
mod tests {
    use super::*;

    /// `path` applied to a fresh state with every node of it up.
    fn applied(path: &str) -> DomainState {
        let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let config = crate::load::load(&[crate::load::Input::Path(full)])
            .expect("loads")
            .config;
        let mut s = DomainState::default();
        let health = config
            .nodes
            .iter()
            .map(|n| (n.name().clone(), crate::plan::NodeState::Up))
            .collect();
        s.apply(Command::SetPlacement {
            generation: 0,
            placement: Default::default(),
            health,
            base: None,
        });
        let out = s.apply(Command::ApplyConfig {
            base_generation: 0,
            documents: crate::plan::documents::to_document_texts(&config),
        });
        assert_eq!(out, Outcome::Applied { generation: 1 });
        s
    }

    #[test]
    fn a_move_between_nodes_the_support_tables_reject_is_refused() {
        let n = |x: &str| -> Name { x.parse().expect("name") };
        let s = applied("tests/fixtures/simulate/unsupported-failover.yaml");
        assert_eq!(s.placement["sql"].node, Some(n("sql1")));
        let why = seed_refusal(&s, &n("sql"), &n("sql2")).expect("refused");
        assert!(why.contains("sql on sql1 and sql2"), "{why}");
        assert!(why.contains("Table 3"), "{why}");
        // Where it already runs, and a pair the tables support: allowed.
        assert_eq!(seed_refusal(&s, &n("sql"), &n("sql1")), None);
        let q = applied("examples/quickstart");
        assert_eq!(seed_refusal(&q, &n("web"), &n("node2")), None);
    }
}
