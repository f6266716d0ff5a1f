//! The agent's control API (HTTPS, JSON, bearer token on every route): what
//! the CLI talks to. Requests and answers are wire types (`crate::wire`).
//!
//! - `GET  /v1/status` — [`StatusView`]: members, nodes, reports, placement.
//! - `GET  /v1/live` — [`crate::plan::LiveState`], what `plan` diffs against.
//! - `POST /v1/apply` — [`ApplyRequest`]: commit through the leader, which
//!   validates first; 422 with the findings when the configuration has
//!   errors, 409 when its base generation is stale.
//! - `GET  /v1/events?after=SEQ` — [`crate::wire::EventsView`]: the
//!   domain's history after event SEQ (all that is kept without it).
//! - `GET  /metrics` — this agent's metrics in the Prometheus text format
//!   ([`crate::agent::metrics::Metrics::render_prometheus`]).
//!
//! The same server also mounts the domain's own routes between members
//! (`/raft/*`, `/v1/write`, `/v1/report`: [`crate::domain::network::inbound`]).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router, middleware};

use crate::agent::metrics::Metrics;
use crate::agent::server::auth::{Caller, Credentials, require_token};
use crate::domain::network::{self, Inbound};
use crate::domain::status::status_of;
use crate::domain::{Command, Outcome, Replica};
use crate::wire::{ApplyRequest, ApplyResponse, EventsView, StatusView};

/// What the control API's handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub domain: Replica,
    pub metrics: Arc<Metrics>,
}

/// The agent's whole router: the control API and the domain's member
/// routes, all behind the token.
pub fn router(state: ApiState, members: Inbound, creds: Arc<Credentials>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics))
        .route("/v1/live", get(live))
        .route("/v1/events", get(events))
        .route("/v1/apply", post(apply))
        .with_state(state)
        .merge(network::routes(members))
        .layer(DefaultBodyLimit::max(32 * 1024 * 1024))
        .layer(middleware::from_fn_with_state(creds, require_token))
}

use crate::domain::network::inbound::error;

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
    Json(status_of(&s.domain).with_lines(s.metrics.detector_view()))
}

async fn live(State(s): State<ApiState>) -> Json<crate::plan::LiveState> {
    let mut live = s.domain.state().live();
    live.now_ms = crate::domain::now_ms();
    Json(live)
}

#[derive(serde::Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
}

async fn events(State(s): State<ApiState>, Query(q): Query<EventsQuery>) -> Json<EventsView> {
    Json(s.domain.events_after(q.after))
}

/// The note the request adds to who asked (`ASCTL_BY`, else the CLI's
/// `user@host`): printable and at most 200 bytes, or none. Who asked is the
/// credential that authenticated the request ([`Caller`]).
fn asked_by(headers: &HeaderMap) -> Option<String> {
    let v = headers
        .get(crate::wire::api::BY_HEADER)?
        .to_str()
        .ok()?
        .trim();
    (!v.is_empty() && v.len() <= 200 && v.chars().all(|c| !c.is_control())).then(|| v.to_owned())
}

async fn apply(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Json(req): Json<ApplyRequest>,
) -> Response {
    // Validated where every write is, on the leader (`Replica::write_local`):
    // a configuration with errors never reaches the domain, whether it came
    // here or to `/v1/write`.
    let cmd = Command::ApplyConfig {
        base_generation: req.base_generation,
        documents: req.documents,
    }
    .by(Some(caller.name))
    .noted(asked_by(&headers));
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
        Err(e @ crate::domain::DomainError::Removed(_)) => error(StatusCode::GONE, e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
