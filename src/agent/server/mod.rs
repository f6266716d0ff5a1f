//! The agent's HTTPS server: the control API ([`api`]), the bearer token
//! ([`auth`]), TLS ([`tls`]) and the limits every connection lives under
//! ([`hygiene`]). The domain's own member routes are mounted
//! on the same server (`crate::domain::network::inbound`).

pub mod api;
pub mod auth;
pub mod hygiene;
pub mod tls;
