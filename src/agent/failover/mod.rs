//! What the node does with the failure detector's verdicts:
//!
//! - [`policy`]: the fence (every group offline on isolation, a stall or a
//!   lost quorum, until caught up with the domain), local takeover with two
//!   nodes, and the node health the leader places from; a pure state
//!   machine (`policy::machine`) and its driver.
//! - [`takeover`]: the pure rules of local takeover and of what the
//!   reconciler may run (break before make).
//! - [`guard`]: the lease guard, a separate process that fences the node
//!   when the agent stops renewing its lease; [`guard_storage`], its
//!   release of the node's mounts and OCF resources; [`fence`], what it
//!   does when it fires; [`realtime`], its real-time priority and locked
//!   memory.
//! - [`journal`]: the node's record of the fences it put on itself, for the
//!   domain's history once it is back in contact.

pub mod fence;
pub mod guard;
pub mod guard_storage;
pub mod journal;
pub mod policy;
pub mod realtime;
pub mod takeover;
