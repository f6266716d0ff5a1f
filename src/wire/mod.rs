//! The wire contract: every type that crosses a process boundary between
//! the CLI, the agents and the domain database, stated once. The serde
//! shape of these types *is* the interface (JSON over the agents' HTTPS API,
//! and node reports committed in the raft log), so a change here is a
//! protocol change: keep fields additive (`#[serde(default)]`).
//!
//! - [`report`]: what a node reports about itself (`POST /v1/report`).
//! - [`lines`]: a failure detector's view of its peers and lines.
//! - [`api`]: the control API's requests and answers (`/v1/apply`,
//!   `/v1/status`).
//! - [`events`]: the domain's history (`/v1/events`).
//!
//! Not here: raft's own messages and the members' write forwarding
//! (`crate::domain::network`: both ends are the domain), the heartbeat
//! packet (a binary format of its own, `the agent's detection`).
//!
//! This module depends only on `model` and `plan` types; the agent and the
//! domain depend on it, never the other way.

pub mod api;
pub mod events;
pub mod lines;
pub mod report;

pub use api::{ApplyRequest, ApplyResponse, MemberView, NodeView, StatusView};
pub use events::{Event, EventKind, EventsView, SelfFencing};
pub use lines::{LineView, LinesView, PeerLinesView, PeerState};
pub use report::{GroupState, LocalGroupStatus, NodeReport, ResourceError};
