//! Tier 3, network namespaces: root only. Heartbeats and failure detection
//! between namespaces, isolation, the managed IP driver with gratuitous ARP,
//! the lease guard fencing a real address, and the README's walk-through
//! (`scripts/netns-domain.sh`).
//!
//! Every test here is `#[ignore = "needs root: run with --include-ignored"]`,
//! so a plain `cargo test` reports it as ignored, never as passed; it calls
//! `support::require_root()` first, which fails (not skips) without root.
//! `support` builds namespaces, links and addresses and removes them when
//! its guards drop.
//!
//! Run as root: `cargo test --test netns -- --include-ignored [filter]`
//! (or `scripts/test`, which does so for every tier).

mod support;

mod demo;
mod guard;
mod heartbeat;
mod ip;
mod isolation;
