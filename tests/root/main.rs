//! Tier 3, root only: what needs root to be real — network namespaces
//! (heartbeats and failure detection between namespaces, isolation, the
//! managed IP driver with gratuitous ARP, the lease guard fencing a real
//! address, the README's walk-through of `scripts/netns-domain.sh`) and
//! block devices (`storage.rs`: shared disks and mount points on loop
//! devices over ext4 and xfs; `storage_group.rs`: a group with its data
//! through the node reconciler; `storage_guard.rs` and `storage_fence.rs`:
//! the lease guard and the node's own fence releasing storage, a file
//! system check under way included; `storage_starved.rs`: the guard's
//! unmount past a killed writer whose thread a starved CPU does not run),
//! and the loader's walk on loop-mounted file systems: one whose directory
//! entries carry no file type, and one with nothing cached (`walk.rs`).
//!
//! Every test here is `#[ignore = "needs root: run with --include-ignored"]`,
//! so a plain `cargo test` reports it as ignored, never as passed; without
//! root, run anyway, it fails rather than skips. `support` builds network
//! namespaces, links and addresses; `storage_support` backing files and
//! loop devices; both remove what they made when their guards drop.
//!
//! Run as root: `cargo test --test root -- --include-ignored [filter]`
//! (or `scripts/test`, which does so for every tier and installs the
//! packages these tests use).

mod storage_support;
mod support;

mod demo;
mod guard;
mod heartbeat;
mod ip;
mod isolation;
mod storage;
mod storage_fence;
mod storage_group;
mod storage_guard;
mod storage_starved;
mod walk;
