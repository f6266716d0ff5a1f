//! The agent that runs on every node. So far: the node reconciler, which
//! drives this node's resources towards what the domain placed on it.

pub mod api;
pub mod auth;
pub mod daemon;
pub mod detector;
pub mod guard;
pub mod ha;
pub mod heartbeat;
pub mod isolation;
pub mod metrics;
pub mod monitor;
pub mod packet;
pub mod reconciler;
pub mod takeover;
pub mod tls;
