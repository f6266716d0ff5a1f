//! The agent's control API (HTTPS, JSON, bearer token on every route).
//!
//! - `GET  /v1/status` — [`StatusView`]: members, nodes, reports, placement.
//! - `GET  /v1/live` — [`crate::plan::LiveState`], what `plan` diffs against.
//! - `POST /v1/apply` — [`ApplyRequest`]: commit through the leader, which
//!   validates first; 422 with the findings when the configuration has
//!   errors, 409 when its base generation is stale.
//! - `POST /v1/report` — a node's [`NodeReport`], to the leader (forwarded).
//! - `POST /v1/write` — a raw [`Command`] for the leader (members forward
//!   writes here); a configuration is validated as for `/v1/apply` and
//!   `refused` with its findings.
//! - `GET  /metrics` — this agent's metrics in the Prometheus text format
//!   ([`super::metrics::Metrics::render_prometheus`]).
//! - `POST /raft/{append,vote,snapshot}` — raft RPCs between members.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::auth::{Token, require_token};
use super::metrics::Metrics;
use super::reconciler::NodeReport;
use crate::domain::leader::ReportFreshness;
use crate::domain::view::StatusView;
use crate::domain::{Command, Domain, NodeId, Outcome, TypeConfig, WriteAnswer};

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub domain: Domain,
    pub freshness: Arc<ReportFreshness>,
    pub kick: Arc<Notify>,
    pub metrics: Arc<Metrics>,
}

/// `POST /v1/apply`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRequest {
    /// The generation the plan was computed against.
    pub base_generation: u64,
    /// Canonical JSON documents ([`crate::plan::documents`]).
    pub documents: Vec<String>,
}

/// The answer of a successful `POST /v1/apply`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResponse {
    pub generation: u64,
}

pub fn router(state: ApiState, token: Token) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics))
        .route("/v1/live", get(live))
        .route("/v1/apply", post(apply))
        .route("/v1/report", post(report))
        .route("/v1/write", post(write))
        .route("/raft/append", post(raft_append))
        .route("/raft/vote", post(raft_vote))
        .route("/raft/snapshot", post(raft_snapshot))
        .route("/raft/read-index", post(raft_read_index))
        .layer(DefaultBodyLimit::max(32 * 1024 * 1024))
        .layer(middleware::from_fn_with_state(token, require_token))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let mut m = message.into();
    if !m.ends_with('\n') {
        m.push('\n');
    }
    (status, m).into_response()
}

async fn metrics(State(s): State<ApiState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render_prometheus(),
    )
        .into_response()
}

async fn status(State(s): State<ApiState>) -> Json<StatusView> {
    Json(StatusView::of(&s.domain).with_lines(s.metrics.detector_view()))
}

async fn live(State(s): State<ApiState>) -> Json<crate::plan::LiveState> {
    Json(s.domain.state().live())
}

async fn apply(State(s): State<ApiState>, Json(req): Json<ApplyRequest>) -> Response {
    // Validated where every write is, on the leader (`Domain::write_local`):
    // a configuration with errors never reaches the domain, whether it came
    // here or to `/v1/write`.
    let cmd = Command::ApplyConfig {
        base_generation: req.base_generation,
        documents: req.documents,
    };
    match s.domain.write(cmd).await {
        Ok(Outcome::Applied { generation }) => Json(ApplyResponse { generation }).into_response(),
        Ok(Outcome::Stale { expected, current }) => error(
            StatusCode::CONFLICT,
            format!(
                "the plan was computed against generation {expected} but the domain is at \
                 generation {current}; nothing was applied: plan again"
            ),
        ),
        Ok(Outcome::Invalid { message }) => error(StatusCode::UNPROCESSABLE_ENTITY, message),
        Ok(other) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unexpected outcome {other:?}"),
        ),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn report(State(s): State<ApiState>, Json(report): Json<NodeReport>) -> Response {
    match deliver_report(&s, report).await {
        Ok(()) => Json(()).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// Gives a node report to the leader: here when this member leads (the
/// report refreshes the node's health and is committed when it changed),
/// otherwise forwarded.
pub async fn deliver_report(s: &ApiState, report: NodeReport) -> Result<(), String> {
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
        None => Err("the domain has no leader".into()),
    }
}

async fn write(State(s): State<ApiState>, Json(cmd): Json<Command>) -> Response {
    match s.domain.write_local(cmd).await {
        Ok(a) => Json::<WriteAnswer>(a).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// The read-index protocol's question to the leader (`Domain::catch_up`).
async fn raft_read_index(State(s): State<ApiState>) -> Response {
    // A leader that cannot confirm itself with a quorum soon is no leader
    // to catch up with.
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        s.domain.read_index_local(),
    )
    .await
    .unwrap_or(Ok(crate::domain::ReadIndex::NotLeader));
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
    State(s): State<ApiState>,
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

async fn raft_vote(State(s): State<ApiState>, Json(req): Json<VoteRequest<NodeId>>) -> Response {
    Json(s.domain.raft.vote(req).await).into_response()
}

async fn raft_snapshot(
    State(s): State<ApiState>,
    Json(req): Json<InstallSnapshotRequest<TypeConfig>>,
) -> Response {
    Json(s.domain.raft.install_snapshot(req).await).into_response()
}
