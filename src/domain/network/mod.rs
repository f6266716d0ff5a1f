//! Both directions of the members' RPCs, as openraft's examples lay them
//! out: [`outbound`] is raft's network (requests to a peer over HTTPS),
//! [`inbound`] the routes that answer them, mounted on every agent's API.
//! Both ends are the domain: nothing here is part of the control API the
//! CLI uses (that is `crate::wire`).

pub mod inbound;
pub mod outbound;

pub use inbound::{Inbound, routes};
pub use outbound::{Network, Peer};
