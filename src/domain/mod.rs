//! The replicated domain database: the applied configuration with its
//! generation, the placement of every group and the state of every node,
//! kept by the agents with raft (openraft, pinned).
//!
//! - [`state`]: the state machine itself, pure ([`DomainState::apply`]).
//! - [`store`]: the raft log, vote and snapshot in the data directory.
//! - [`network`]: raft RPCs over the agents' HTTPS API; [`client`] is the
//!   HTTPS client the CLI uses too.
//! - [`leader`]: what the leader does — placement on every change of
//!   configuration, reports or health, and membership following the
//!   configuration's nodes.
//!
//! Not here: serving the API (`crate::agent::api`), running groups
//! (`crate::agent::reconciler`), deciding placement (`crate::plan::place`).

pub mod client;
pub mod leader;
pub mod network;
pub mod state;
pub mod store;
pub mod view;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{Config as RaftConfig, Raft, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::sync::watch;

pub use client::{Client, ClientError};
pub use state::{Command, DomainState, NodeRecord, Outcome};
pub use store::Applied;

use store::{LogStore, StateMachine};

/// Raft node ids are derived from member names ([`node_id`]).
pub type NodeId = u64;

/// The member name of the witness (`Domain.spec.witness`): it votes and runs
/// no groups. A Node may not use this name in a domain with a witness.
pub const WITNESS: &str = "witness";

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

#[derive(Debug, Error)]
pub enum DomainError {
    #[error("cannot open the domain database in {dir}: {source}")]
    Open {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start raft: {0}")]
    Raft(String),
    #[error("the domain has no leader (is a majority of its members running?)")]
    NoLeader,
    #[error("forwarding to the leader failed: {0}")]
    Forward(#[from] ClientError),
    #[error("the domain database stopped: {0}")]
    Fatal(String),
}

/// The answer of `/v1/write`: an outcome, or "not the leader" for the
/// forwarder to try again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WriteAnswer {
    Committed(Outcome),
    NotLeader,
}

/// One member's handle on the domain database.
#[derive(Clone)]
pub struct Domain {
    pub raft: Raft<TypeConfig>,
    pub me: Member,
    pub id: NodeId,
    pub client: Client,
    pub applied: watch::Receiver<Applied>,
    log: LogStore,
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Domain").field("me", &self.me).finish()
    }
}

/// Raft timing for a domain of a few members on a LAN: heartbeats often
/// enough to elect within seconds, rarely enough for an idle agent to cost
/// nothing measurable.
fn raft_config() -> Result<RaftConfig, DomainError> {
    RaftConfig {
        cluster_name: "asctl".into(),
        heartbeat_interval: 300,
        election_timeout_min: 1500,
        election_timeout_max: 3000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(500),
        max_in_snapshot_log_to_keep: 100,
        ..Default::default()
    }
    .validate()
    .map_err(|e| DomainError::Raft(e.to_string()))
}

impl Domain {
    /// Opens this member's database under `dir` and starts raft.
    pub async fn open(dir: &Path, me: Member, client: Client) -> Result<Domain, DomainError> {
        let open = |source| DomainError::Open {
            dir: dir.display().to_string(),
            source,
        };
        let log = LogStore::open(dir).map_err(open)?;
        let (sm, applied) = StateMachine::open(dir).map_err(open)?;
        let id = node_id(&me.name);
        let network = network::Network {
            client: client.clone(),
        };
        let raft = Raft::new(id, Arc::new(raft_config()?), network, log.clone(), sm)
            .await
            .map_err(|e| DomainError::Raft(e.to_string()))?;
        Ok(Domain {
            raft,
            me,
            id,
            client,
            applied,
            log,
        })
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

    /// Commits `cmd` here if this member leads; otherwise `NotLeader`.
    pub async fn write_local(&self, cmd: Command) -> Result<WriteAnswer, DomainError> {
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
                WriteAnswer::NotLeader if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                WriteAnswer::NotLeader => return Err(DomainError::NoLeader),
            }
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

/// The snapshot payload type openraft moves around (declared by the
/// `declare_raft_types!` defaults).
pub type SnapshotData = Cursor<Vec<u8>>;
