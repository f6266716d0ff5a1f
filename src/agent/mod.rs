//! The agent that runs on every node (and on the witness), by concern:
//!
//! - [`server`]: the HTTPS control API the CLI talks to, its token and TLS.
//! - [`detection`]: heartbeats on every line, isolation probes, and the pure
//!   failure detector with its I/O shell (the node monitor).
//! - [`failover`]: what the node does with the detector's verdicts — the
//!   fence (isolation, stall, lost quorum), local takeover with two nodes,
//!   the lease guard, and the node health the leader places from.
//! - [`execution`]: the node reconciler, which runs the groups placed here.
//! - [`daemon`]: wiring one agent together from the above and the domain
//!   member (`crate::domain`); [`metrics`]: what `/metrics` shows;
//!   [`vital`]: the supervision of the tasks the node cannot do without.

pub mod daemon;
pub mod detection;
pub mod execution;
pub mod failover;
pub mod metrics;
pub mod server;
pub mod vital;
