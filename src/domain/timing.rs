//! The timing raft runs with, derived from the domain's heartbeat
//! settings, and kept next to the log so that a restart starts with the
//! timing of the configuration last applied.

use std::path::Path;
use std::time::Duration;

use openraft::{Config as RaftConfig, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Applied, DomainError, DomainState};

/// Raft timing derived from the domain's heartbeat settings, so that a
/// crash of the raft leader is repaired before the failure detector has
/// even declared it failed:
///
/// - raft heartbeat = `heartbeat.interval`;
/// - election timeout drawn in `[0.3 T, 0.4 T)` with `T = heartbeat.timeout`
///   (the minimum kept above the raft heartbeat, as openraft requires).
///
/// openraft 0.9 makes a follower that knows a leader (a committed vote) wait
/// `leader_lease + election_timeout` after the leader's last heartbeat, with
/// `leader_lease = election_timeout_max`; voters also refuse a candidate
/// until their own lease expired. The follower's wait is therefore
/// `0.4 T + [0.3 T, 0.4 T)` = **`0.7 T` to `0.8 T`**, and a new leader
/// exists about one round trip later: before the detector declares the old
/// one failed (`T`), so a leader's crash fails over like any node's. That
/// also bounds the quorum lease of domains with a witness
/// (the failure detector's `quorum_lease`). A false election needs about
/// three raft heartbeats lost in a row (a false failure needs four); it
/// moves no group, placement follows the failure detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RaftTiming {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        let hb = crate::model::Heartbeat::default();
        RaftTiming::from_heartbeat(hb.interval.get(), hb.timeout.get())
    }
}

impl RaftTiming {
    /// The timing for `heartbeat.interval` and `heartbeat.timeout`.
    pub fn from_heartbeat(interval: Duration, timeout: Duration) -> RaftTiming {
        let i = (interval.as_millis() as u64).max(10);
        let t = (timeout.as_millis() as u64).max(2 * i);
        // openraft wants the minimum above the heartbeat interval.
        let min = (t * 3 / 10).max(i + i / 5 + 1);
        let max = (t * 2 / 5).max(min + t / 10 + 1);
        RaftTiming {
            heartbeat_ms: i,
            election_min_ms: min,
            election_max_ms: max,
        }
    }

    /// The timing the configuration in `state` asks for, if it has one.
    pub fn of_state(state: &DomainState) -> Option<RaftTiming> {
        let config = state.config()?;
        let hb = &config.domain.as_ref()?.spec.heartbeat;
        Some(RaftTiming::from_heartbeat(
            hb.interval.get(),
            hb.timeout.get(),
        ))
    }
}

/// Where the timing raft runs with is kept, next to the log.
const TIMING_FILE: &str = "timing.json";

/// Raft timing for a domain of a few members on a LAN (see [`RaftTiming`]).
pub(super) fn raft_config(t: RaftTiming) -> Result<RaftConfig, DomainError> {
    RaftConfig {
        cluster_name: "asctl".into(),
        heartbeat_interval: t.heartbeat_ms,
        election_timeout_min: t.election_min_ms,
        election_timeout_max: t.election_max_ms,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(500),
        max_in_snapshot_log_to_keep: 100,
        ..Default::default()
    }
    .validate()
    .map_err(|e| DomainError::Raft(e.to_string()))
}

/// The timing to start raft with: the one saved by the last run (from the
/// configuration it had applied), else the snapshot's configuration, else
/// the defaults of `heartbeat` (250 ms / 1 s).
pub(super) fn start_timing(dir: &Path, applied: &watch::Receiver<Applied>) -> RaftTiming {
    std::fs::read(dir.join(TIMING_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .or_else(|| RaftTiming::of_state(&applied.borrow().state))
        .unwrap_or_default()
}

/// Saves the timing of every newly applied configuration, for the next
/// start: openraft 0.9 cannot change its timeouts while running, so a
/// changed `heartbeat` reaches raft when the agent restarts (the failure
/// detector follows it at once).
pub(super) fn save_timing_on_change(
    dir: &Path,
    running: RaftTiming,
    mut applied: watch::Receiver<Applied>,
) {
    let path = dir.join(TIMING_FILE);
    tokio::spawn(async move {
        let mut saved = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<RaftTiming>(&b).ok());
        loop {
            let want = RaftTiming::of_state(&applied.borrow_and_update().state);
            if let Some(want) = want.filter(|w| saved != Some(*w)) {
                let ok = serde_json::to_vec(&want)
                    .map_err(std::io::Error::other)
                    .and_then(|b| super::store::write_private(&path, &b));
                match ok {
                    Ok(()) => {
                        saved = Some(want);
                        if want != running {
                            tracing::warn!(
                                ?running,
                                ?want,
                                "the heartbeat settings changed: raft takes the new timing at the next agent restart"
                            );
                        }
                    }
                    Err(e) => tracing::warn!("cannot save the raft timing: {e}"),
                }
            }
            if applied.changed().await.is_err() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_timing_follows_the_heartbeat() {
        let t = RaftTiming::default();
        assert_eq!(
            t,
            RaftTiming {
                heartbeat_ms: 250,
                election_min_ms: 301,
                election_max_ms: 402
            }
        );
        // A follower waits lease (= max) + [min, max): 0.7 T .. 0.8 T, an
        // election done before the detector's T.
        assert!(t.election_max_ms + t.election_min_ms >= 700);
        assert!(2 * t.election_max_ms < 1000);
        assert!(raft_config(t).is_ok());
        // Tight and odd settings still give openraft a valid configuration.
        for (i, to) in [
            (100, 200),
            (250, 500),
            (1000, 3000),
            (50, 10_000),
            (300, 400),
        ] {
            let t = RaftTiming::from_heartbeat(Duration::from_millis(i), Duration::from_millis(to));
            assert!(raft_config(t).is_ok(), "{i}/{to}: {t:?}");
            assert!(t.election_min_ms > t.heartbeat_ms);
        }
    }
}
