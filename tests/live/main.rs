//! Tier 2, live: real processes on loopback, no root — agents of a local
//! domain driven through the CLI (apply, plan, restarts, membership, the
//! lease guard), the node reconciler with real processes, the drivers
//! against real processes, sockets and programs, and `asctl credentials`.
//!
//! `support` starts a real local domain (the quickstart on free ports, one
//! `asctl agent` process per node). A test that needs no agent goes in
//! `tests/checker/`; one that needs root or network namespaces in
//! `tests/netns/`.
//!
//! Run: `cargo test --test live [filter]` (slow-ish: agents start for real).

mod support;

mod credentials;
mod domain;
mod drivers;
mod guard;
mod membership;
mod reconciler;
