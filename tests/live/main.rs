//! Tier 2, live: real processes on loopback, no root — agents of a local
//! domain driven through the CLI (apply, plan, restarts, membership, the
//! lease guard), the node reconciler with real processes, the drivers
//! against real processes, sockets and programs (OCF agents included), and
//! `asctl credentials`. A test here that needs root or a package is
//! `#[ignore = "needs root …: run with --include-ignored"]`.
//!
//! `support` starts a real local domain (the quickstart on free ports, one
//! `asctl agent` process per node). A test that needs no agent goes in
//! `tests/checker/`; one that needs root or network namespaces in
//! `tests/root/`.
//!
//! Run: `cargo test --test live [filter]` (slow-ish: agents start for real).

mod support;

mod composite;
mod connections;
mod credentials;
mod domain;
mod drivers;
mod events;
mod failstop;
mod guard;
mod leader;
mod membership;
mod ocf;
mod ocf_cancel;
mod ocf_guard;
mod operate;
mod private_files;
mod readiness;
mod reconciler;
mod returning;
mod self_fencing;
mod supervise;
mod terminal;
mod unclean;
mod up;
