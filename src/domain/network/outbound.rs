//! Raft RPCs over the agents' authenticated HTTPS API (`/raft/*`).
//!
//! The receiving side ([`super::inbound`]) answers with the JSON of
//! `Result<Response, RaftError>`, so a remote raft error comes back as the
//! same typed error openraft produced there.

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Instant;

use crate::domain::client::{Client, ClientError};
use crate::domain::contact::Contact;
use crate::domain::{Member, NodeId, TypeConfig};

/// Makes one [`Peer`] per member openraft talks to.
#[derive(Clone, Debug)]
pub struct Network {
    pub client: Client,
    pub contact: Arc<Contact>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Peer {
        Peer {
            client: self.client.clone(),
            addr: node.addr.clone(),
            target,
            contact: self.contact.clone(),
        }
    }
}

pub struct Peer {
    client: Client,
    addr: String,
    target: NodeId,
    contact: Arc<Contact>,
}

impl Peer {
    async fn rpc<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Member, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = self.client.clone().with_timeout(option.hard_ttl());
        let res: Result<Result<Resp, RaftError<NodeId, E>>, ClientError> =
            client.post(&self.addr, path, req).await;
        match res {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(RPCError::RemoteError(openraft::error::RemoteError::new(
                // The id of the answering node is not needed by openraft's
                // handling; it only carries it into logs.
                0, e,
            ))),
            Err(e) if e.is_unreachable() => Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        // The quorum lease (super::contact): the follower learns how fresh
        // this leader's quorum is, and the leader when the follower last
        // accepted one of its appends.
        // and how long ago this leader last heard back from the follower:
        // the follower's evidence is the older of the two, so a follower
        // whose replies no longer arrive (its outbound traffic cut) stops
        // counting the appends it still receives.
        let sent = Instant::now();
        let heard = self.contact.last_append_ok(self.target);
        let path = match (self.contact.leader_quorum_at(sent), heard) {
            (Some(at), Some(heard)) => format!(
                "/raft/append?quorum_ack_ms={}&heard_ms={}",
                (sent - at).as_millis(),
                sent.saturating_duration_since(heard).as_millis()
            ),
            _ => "/raft/append".to_owned(),
        };
        let term = rpc.vote.leader_id.term;
        let res = self.rpc(&path, &rpc, &option).await;
        if let Ok(r) = &res
            && !matches!(r, AppendEntriesResponse::HigherVote(_))
        {
            self.contact.append_ok(self.target, term, sent);
        }
        res
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc("/raft/snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.rpc("/raft/vote", &rpc, &option).await
    }
}
