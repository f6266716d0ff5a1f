//! Failure detection: HMAC'ed UDP heartbeats on every line ([`packet`],
//! [`heartbeat`]), isolation-address probes ([`isolation`]), the pure
//! failure detector ([`detector`]: Up → Suspected → Failed, isolation,
//! stalls) and the node monitor, its I/O shell ([`monitor`]). What the node
//! does about a verdict is not here (`super::failover`).

pub mod detector;
pub mod heartbeat;
pub mod isolation;
pub mod monitor;
pub mod packet;
