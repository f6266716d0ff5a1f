//! The leader's loop: node health, placement and membership.
//!
//! Every member runs [`run`]; it acts only while this member leads. On every
//! change of the committed state, on every report and on a tick, it
//! recomputes node health ([`HealthSource`]) and the placement
//! ([`crate::plan::place`], the same function `plan` predicts with), and
//! commits them when they differ from what is committed. A group that a node
//! reports Failed (for the current generation) gets that node added to its
//! `failed_on`, so `place` moves it. The operator's overrides are an input
//! (`place_with`), and the leader removes each one at its end
//! (`Command::ExpireOverrides`).
//!
//! Membership follows the configuration: members are the configuration's
//! nodes (by their agent address) plus the witness; a change adds the new
//! members as learners, moves members whose agent address changed (once the
//! agent answers there), then makes the new set the voters.
//!
//! Files: `health.rs`, where node health comes from ([`HealthSource`],
//! [`ReportFreshness`]); `decide.rs`, the pure placement decision
//! ([`decide`]); `membership.rs`, raft membership from the configuration;
//! this file, the loop.

mod decide;
mod health;
mod membership;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Command, DomainState, Outcome, Replica, WITNESS, WriteAnswer};
use crate::clock::sleep_until;
use crate::model::{Config, Name};
use crate::plan::NodeState;

pub use decide::{adopted_placement, decide, decide_at, with_failures};
use decide::{log_moves, with_evidence};
pub use health::{HealthSource, ReportFreshness};
use membership::sync_membership;
pub use membership::{MembershipChange, desired_members, membership_change};

/// The nodes whose health the leader decides: the configuration's nodes, or
/// before any configuration, the members that are not the witness.
fn tracked_nodes(domain: &Replica, config: Option<&Config>) -> Vec<Name> {
    match config {
        Some(c) => c.nodes.iter().map(|n| n.name().clone()).collect(),
        None => domain
            .members()
            .0
            .values()
            .filter(|m| m.name != WITNESS)
            .filter_map(|m| m.name.parse().ok())
            .collect(),
    }
}

/// Runs until `stop` changes. `kick` wakes it early (a report arrived).
pub async fn run(
    domain: Replica,
    health: Arc<dyn HealthSource>,
    freshness: Arc<ReportFreshness>,
    kick: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut applied = domain.applied.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = false;
    let mut membership: Option<JoinHandle<()>> = None;
    loop {
        let wake = if leading {
            earliest(health.next_change(), expiry(&domain.state()))
        } else {
            None
        };
        tokio::select! {
            _ = tick.tick() => {}
            _ = sleep_until(wake) => {}
            r = applied.changed() => if r.is_err() { return },
            _ = kick.notified() => {}
            _ = stop.changed() => return,
        }
        if !domain.is_leader() {
            leading = false;
            continue;
        }
        let state = domain.state();
        let config = state.config();
        if !leading {
            leading = true;
            info!("leading the domain at generation {}", state.generation);
            let up: Vec<Name> = state
                .nodes
                .iter()
                .filter(|(_, r)| r.state == NodeState::Up)
                .map(|(n, _)| n.clone())
                .collect();
            health.leadership_gained(&up);
        }
        let timeout = state.heartbeat().unwrap_or_default().timeout.get();
        freshness.set_down_after(timeout * 3);
        let nodes = tracked_nodes(&domain, config.as_deref());
        let now = super::now_ms();
        if state.overrides.any_expired_at(now) {
            // Removed through the log, so every member sees it go; the
            // commit wakes this loop again to place without it.
            if let Err(e) = domain.write_local(Command::ExpireOverrides).await {
                warn!("cannot remove the expired overrides: {e}");
            }
            continue;
        }
        if let Some(cmd) = decide_at(&state, health.health(&nodes), now) {
            let cmd = with_evidence(&state, cmd, health.as_ref());
            // Committed here or not at all: a decision is this leader's,
            // from its own view of node health. Forwarded to whoever leads
            // next (a deposed leader's, decided while it was cut off), it
            // would move groups on health nobody else saw. `base` makes
            // the state machine drop it if anything was decided meanwhile.
            log_moves(&state.placement, &cmd);
            match domain.write_local(cmd).await {
                Ok(WriteAnswer::Committed(Outcome::Ignored)) => {
                    info!("the placement decision was overtaken by another; deciding again")
                }
                Ok(_) => {}
                Err(e) => warn!("cannot commit the placement: {e}"),
            }
        }
        if let Some(config) = &config {
            let busy = membership.as_ref().is_some_and(|t| !t.is_finished());
            if !busy {
                membership = sync_membership(&domain, config);
            }
        }
    }
}

/// The sooner of two wake-up times.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// When the next override in `state` ends, on this member's clock.
fn expiry(state: &DomainState) -> Option<Instant> {
    let until = state.overrides.next_expiry()?;
    let wait = until.saturating_sub(super::now_ms());
    Some(Instant::now() + Duration::from_millis(wait))
}
