//! Where node health comes from: the [`HealthSource`] the leader places
//! from, and the freshness of node reports, the fallback.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::model::Name;
use crate::plan::{Health, NodeState};

/// Where node health comes from: implemented by the agent (its failure
/// detector, falling back to the freshness of node reports,
/// [`ReportFreshness`]), so the leader places from health without knowing
/// how it was observed.
pub trait HealthSource: Send + Sync + 'static {
    /// The state of each of `nodes` now.
    fn health(&self, nodes: &[Name]) -> Health;
    /// This member just became leader; `up` were Up in the committed state.
    fn leadership_gained(&self, up: &[Name]);
    /// When [`Self::health`] will next change by itself (a failed node's
    /// takeover wait ending), so the leader re-places at that instant rather
    /// than at its next tick.
    fn next_change(&self) -> Option<Instant> {
        None
    }
    /// Why `node` is considered lost, as evidence for the domain's history
    /// (e.g. which lines went silent); `None` when there is nothing to add.
    fn evidence(&self, _node: &Name) -> Option<String> {
        None
    }
}

/// A node is Up while its agent reported within `down_after`
/// (`heartbeat.timeout` × 3).
#[derive(Debug)]
pub struct ReportFreshness {
    seen: Mutex<HashMap<Name, Instant>>,
    down_after: Mutex<Duration>,
}

impl Default for ReportFreshness {
    fn default() -> Self {
        ReportFreshness {
            seen: Mutex::new(HashMap::new()),
            down_after: Mutex::new(Duration::from_secs(3)),
        }
    }
}

impl ReportFreshness {
    pub fn heard(&self, node: &Name) {
        if let Ok(mut s) = self.seen.lock() {
            s.insert(node.clone(), Instant::now());
        }
    }

    /// Whether a report of `node` arrived within `d`.
    pub fn heard_within(&self, node: &Name, d: Duration) -> bool {
        self.seen
            .lock()
            .map(|s| s.get(node).is_some_and(|t| t.elapsed() <= d))
            .unwrap_or(false)
    }

    pub fn set_down_after(&self, d: Duration) {
        if let Ok(mut x) = self.down_after.lock() {
            *x = d;
        }
    }
}

impl HealthSource for ReportFreshness {
    fn health(&self, nodes: &[Name]) -> Health {
        let down_after = self.down_after.lock().map(|d| *d).unwrap_or_default();
        let seen = match self.seen.lock() {
            Ok(s) => s,
            Err(_) => return Health::new(),
        };
        nodes
            .iter()
            .map(|n| {
                let fresh = seen.get(n).is_some_and(|t| t.elapsed() <= down_after);
                let state = if fresh {
                    NodeState::Up
                } else {
                    NodeState::Down
                };
                (n.clone(), state)
            })
            .collect()
    }

    fn leadership_gained(&self, up: &[Name]) {
        // A new leader has heard nobody yet: give the nodes the committed
        // state says are Up one full period to report before calling them
        // Down, instead of failing over everything at each election. Reports
        // go to the leader only, so what this member heard when it last led
        // is stale and must not count against them.
        if let Ok(mut s) = self.seen.lock() {
            let now = Instant::now();
            for n in up {
                s.insert(n.clone(), now);
            }
        }
    }
}
