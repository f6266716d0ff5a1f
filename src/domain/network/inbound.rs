//! The receiving side of the members' RPCs: the routes through which the
//! domain's members talk to each other, served on the agents' HTTPS API
//! beside the control API ([`routes`]).
//!
//! - `POST /raft/{append,vote,snapshot}` — raft's RPCs; each answers with
//!   the JSON of `Result<Response, RaftError>` ([`super::outbound`] reads it).
//! - `POST /raft/read-index` — the leader's commit point, confirmed with a
//!   quorum ([`ReadIndex`], for [`Replica::catch_up`]).
//! - `POST /v1/write` — a raw [`Command`] for the leader (members forward
//!   writes here); a configuration is validated as for `/v1/apply` and
//!   `refused` with its findings ([`WriteAnswer`]).
//! - `POST /v1/report` — a node's [`NodeReport`], to the leader (forwarded
//!   by a member that does not lead).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use tokio::sync::Notify;

use crate::domain::leader::ReportFreshness;
use crate::domain::{Command, NodeId, ReadIndex, Replica, TypeConfig, WriteAnswer};
use crate::wire::NodeReport;

/// What the members' routes share: this member's handle on the domain, the
/// freshness of node reports (the leader's fallback health) and the leader
/// loop's wake-up.
#[derive(Clone)]
pub struct Inbound {
    pub domain: Replica,
    pub freshness: Arc<ReportFreshness>,
    pub kick: Arc<Notify>,
}

/// The members' routes, to merge into the agent's router (which adds
/// authentication and the body limit to every route).
pub fn routes(state: Inbound) -> Router {
    Router::new()
        .route("/v1/report", post(report))
        .route("/v1/write", post(write))
        .route("/raft/append", post(raft_append))
        .route("/raft/vote", post(raft_vote))
        .route("/raft/snapshot", post(raft_snapshot))
        .route("/raft/read-index", post(raft_read_index))
        .with_state(state)
}

/// An error answer: the message as plain text, one line.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let mut m = message.into();
    if !m.ends_with('\n') {
        m.push('\n');
    }
    (status, m).into_response()
}

async fn report(State(s): State<Inbound>, Json(report): Json<NodeReport>) -> Response {
    match deliver_report(&s, report).await {
        Ok(()) => Json(()).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// Gives a node report to the leader: here when this member leads (the
/// report refreshes the node's health and is committed when it changed),
/// otherwise forwarded.
pub async fn deliver_report(s: &Inbound, report: NodeReport) -> Result<(), String> {
    let d = &s.domain;
    match d.leader() {
        Some((id, _)) if id == d.id => {
            s.freshness.heard(&report.node);
            let changed = d
                .state()
                .nodes
                .get(&report.node)
                .and_then(|r| r.last_report.as_ref())
                != Some(&report);
            if changed {
                d.write(Command::NodeReport { report })
                    .await
                    .map_err(|e| format!("cannot commit the node report: {e}"))?;
            }
            s.kick.notify_one();
            Ok(())
        }
        Some((_, leader)) => d
            .client
            .post::<_, ()>(&leader.addr, "/v1/report", &report)
            .await
            .map_err(|e| e.to_string()),
        // A member removed from the domain (the node left the
        // configuration) learns of no leader any more, yet its report of
        // what it still runs is what the group's new node waits for (break
        // before make): any member forwards it to the leader.
        None if !d.members().0.contains_key(&d.id) => through_a_member(d, &report).await,
        None => Err("the domain has no leader".into()),
    }
}

/// Delivers `report` through the first member that takes it.
async fn through_a_member(d: &Replica, report: &NodeReport) -> Result<(), String> {
    let mut why = String::from("no member to deliver to");
    for m in d.members().0.values() {
        match d.client.post::<_, ()>(&m.addr, "/v1/report", report).await {
            Ok(()) => return Ok(()),
            Err(e) => why = format!("{m}: {e}"),
        }
    }
    Err(why)
}

async fn write(State(s): State<Inbound>, Json(cmd): Json<Command>) -> Response {
    match s.domain.write_local(cmd).await {
        Ok(a) => Json::<WriteAnswer>(a).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// The read-index protocol's question to the leader (`Replica::catch_up`).
async fn raft_read_index(State(s): State<Inbound>) -> Response {
    // A leader that cannot confirm itself with a quorum soon is no leader
    // to catch up with.
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        s.domain.read_index_local(),
    )
    .await
    .unwrap_or(Ok(ReadIndex::NotLeader));
    match answer {
        Ok(a) => Json(a).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// The leader's quorum age and how long ago it last heard back from this
/// member (`crate::domain::contact`), on its appends.
#[derive(Debug, serde::Deserialize)]
struct AppendQuery {
    quorum_ack_ms: Option<u64>,
    heard_ms: Option<u64>,
}

async fn raft_append(
    State(s): State<Inbound>,
    Query(q): Query<AppendQuery>,
    Json(req): Json<AppendEntriesRequest<TypeConfig>>,
) -> Response {
    let arrived = std::time::Instant::now();
    let res = s.domain.raft.append_entries(req).await;
    if let (Some(quorum), Some(heard), Ok(r)) = (q.quorum_ack_ms, q.heard_ms, &res)
        && !matches!(r, openraft::raft::AppendEntriesResponse::HigherVote(_))
    {
        // In touch as of the older of: the leader's quorum, and the leader
        // last hearing from this member (a one-way link proves nothing).
        s.domain
            .contact
            .append_accepted(std::time::Duration::from_millis(quorum.max(heard)), arrived);
    }
    Json(res).into_response()
}

async fn raft_vote(State(s): State<Inbound>, Json(req): Json<VoteRequest<NodeId>>) -> Response {
    Json(s.domain.raft.vote(req).await).into_response()
}

async fn raft_snapshot(
    State(s): State<Inbound>,
    Json(req): Json<InstallSnapshotRequest<TypeConfig>>,
) -> Response {
    Json(s.domain.raft.install_snapshot(req).await).into_response()
}
