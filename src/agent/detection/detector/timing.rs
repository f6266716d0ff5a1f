//! The bounds of the timing argument of docs/ha.md: how long a survivor
//! waits before taking over, and how long a node's evidence of a quorum
//! lasts.

use std::time::Duration;

/// The scheduling slack assumed for an agent (`ε` in docs/ha.md): how late
/// its detector may run, beyond its own tick, under load.
pub const SCHEDULING_SLACK: Duration = Duration::from_millis(100);

/// The bound on the isolation response (`S` in docs/ha.md): removing the
/// managed addresses and killing the groups' process groups.
pub const ISOLATION_STOP_BOUND: Duration = Duration::from_millis(100);

/// The bound on the lease guard's fence (`K` in docs/ha.md): SIGKILL to the
/// recorded process groups and removal of the recorded addresses, measured
/// at 3–15 ms (tests/root/guard.rs).
pub const GUARD_KILL_BOUND: Duration = Duration::from_millis(100);

/// How long a survivor waits after declaring a peer failed before its
/// groups may start elsewhere (docs/ha.md). Two ways the peer's groups stop,
/// and W covers the slower:
///
/// - the peer's agent runs but is cut off: it notices and stops them by
///   `I + τ + ε + S` after the survivor may declare it failed;
/// - the peer's agent is frozen or killed: its lease guard fires `L` after
///   the last renewal and has them down `ε + K` later. The agent's heartbeats
///   stopped at the same moment, the last one up to `I` earlier, so the
///   survivor declares the peer failed no earlier than `T − I` after the
///   freeze: `W ≥ L + ε + K − (T − I)`. With `L = T`
///   ([`crate::agent::failover::guard::lease_time`]) that is `I + ε + K`.
pub fn takeover_wait(interval: Duration) -> Duration {
    let cut_off = interval + interval / 4 + SCHEDULING_SLACK + ISOLATION_STOP_BOUND;
    let frozen = interval + SCHEDULING_SLACK + GUARD_KILL_BOUND;
    cut_off.max(frozen)
}

/// How long the lease guard's whole fence — kill, addresses, and the
/// release of the node's storage — may take for the survivors' wait to
/// cover it (docs/ha.md, "Storage in the guard's budget"): the guard fires
/// by `f + L + ε` after the agent froze at `f`, a survivor starts no earlier
/// than `f − I + T + W`, so the fence must be over within
/// `T + W − I − L − ε`: `I/4 + S` (162 ms) with `L = T` and the defaults.
/// The kill and the addresses take a few milliseconds; the rest is the
/// storage's. A fence that takes longer may overlap the survivor's start.
pub fn fence_budget(timeout: Duration, interval: Duration, lease: Duration) -> Duration {
    (timeout + takeover_wait(interval)).saturating_sub(interval + lease + SCHEDULING_SLACK)
}

/// The quorum lease `Lq` of docs/ha.md: how long a node's evidence of being
/// in touch with a quorum of the domain database lasts. `T` where the nodes
/// alone can hear a majority; with a witness (which sends no heartbeats) the
/// evidence is raft's alone, and it must outlast a raft election after a
/// leader's crash (openraft's leader lease plus the longest election
/// timeout), plus two raft heartbeats for the new leader's first quorum to
/// reach the follower.
pub fn quorum_lease(
    timeout: Duration,
    witness: bool,
    raft_heartbeat: Duration,
    election_max: Duration,
) -> Duration {
    if witness {
        timeout.max(2 * election_max + 2 * raft_heartbeat)
    } else {
        timeout
    }
}
