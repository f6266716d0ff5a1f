//! The start-up grace and failure details of a process, pure where it can
//! be: when a probe's failure counts (`startTimeout`), and the tail of a
//! process's log that a failure report quotes.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use crate::drivers::ResourceHealth;
use crate::model::Name;

/// The log lines a failure report quotes.
pub const LOG_TAIL_LINES: usize = 5;
/// How much of the end of a log is read for its tail, and the longest line quoted.
const LOG_TAIL_BYTES: u64 = 16 * 1024;
const LOG_LINE_CHARS: usize = 300;
/// The marker the driver writes to the log before each run.
pub(super) const RUN_MARKER: &str = "--- asctl: starting ";

/// What a process driver can say about a failure beyond its message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureDetails {
    pub probe: Option<String>,
    pub exit: Option<String>,
    pub log_tail: Vec<String>,
}

/// Where a run stands after one probe.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Readiness {
    Ready,
    /// Not passed yet, still within the start-up grace.
    Waiting,
    /// Never passed within the grace: a failed start.
    NotReadyInTime(String),
    /// Failed after it had passed: a failure like any other.
    Failed(String),
}

/// The start-up grace, pure: a probe's failures before its first success
/// are not failures until `elapsed` reaches `grace`.
pub(super) fn start_up_verdict(
    ready: bool,
    probe: ResourceHealth,
    elapsed: Duration,
    grace: Duration,
) -> Readiness {
    match (probe, ready) {
        (ResourceHealth::Healthy, _) => Readiness::Ready,
        (ResourceHealth::Unhealthy(why) | ResourceHealth::Starting(why), true) => {
            Readiness::Failed(why)
        }
        (ResourceHealth::Unhealthy(why) | ResourceHealth::Starting(why), false)
            if elapsed >= grace =>
        {
            Readiness::NotReadyInTime(why)
        }
        (_, false) => Readiness::Waiting,
    }
}

pub(super) fn waiting(name: &Name, grace: crate::model::Duration, last: &Option<String>) -> String {
    let mut m = format!("process {name}: waiting for its probe to pass (startTimeout {grace})");
    if let Some(last) = last {
        m.push_str(": ");
        m.push_str(last);
    }
    m
}

/// The last `n` lines of the log at `path` written by the last run (after
/// its start marker), each cut to a readable length; empty when there is
/// no log.
pub(super) fn read_log_tail(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Seek, SeekFrom};
    let Ok(mut f) = fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let from = len.saturating_sub(LOG_TAIL_BYTES);
    let mut bytes = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    // A read from the middle of the file starts with part of a line.
    let text = if from > 0 {
        text.split_once('\n').map_or("", |(_, rest)| rest)
    } else {
        &text
    };
    log_tail(text, n)
}

/// The last `n` non-empty lines of `text` after the last run marker.
fn log_tail(text: &str, n: usize) -> Vec<String> {
    let run = match text.rfind(RUN_MARKER) {
        Some(i) => text[i..].split_once('\n').map_or("", |(_, rest)| rest),
        None => text,
    };
    let lines: Vec<&str> = run
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| match l.char_indices().nth(LOG_LINE_CHARS) {
            Some((cut, _)) => format!("{}…", &l[..cut]),
            None => (*l).to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_tail_is_the_end_of_the_last_run() {
        let log = "--- asctl: starting server on node1 at 2026-01-01T00:00:00Z ---\n\
                   old run\n\
                   --- asctl: starting server on node1 at 2026-01-01T00:01:00Z ---\n\
                   a\nb\n\nc\nd\ne\nf\n";
        assert_eq!(log_tail(log, 5), ["b", "c", "d", "e", "f"]);
        assert_eq!(log_tail(log, 2), ["e", "f"]);
        // A run that printed nothing has no tail, not the previous run's.
        let silent =
            "--- asctl: starting x on n at t ---\nold\n--- asctl: starting x on n at t ---\n";
        assert!(log_tail(silent, 5).is_empty());
        // Without a marker (a log of another origin), its last lines.
        assert_eq!(log_tail("1\n2\n3", 2), ["2", "3"]);
        let long = "x".repeat(LOG_LINE_CHARS + 10);
        let tail = log_tail(&long, 1);
        assert_eq!(tail[0].chars().count(), LOG_LINE_CHARS + 1);
        assert!(tail[0].ends_with('…'));
    }

    #[test]
    fn the_log_tail_of_a_big_log_starts_at_a_whole_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.log");
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!("line {i}\n"));
        }
        fs::write(&path, &text).expect("write");
        assert_eq!(
            read_log_tail(&path, 3),
            ["line 4997", "line 4998", "line 4999"]
        );
        assert!(read_log_tail(&dir.path().join("none.log"), 3).is_empty());
    }

    #[test]
    fn probe_failures_before_the_first_pass_are_not_failures_within_the_grace() {
        let s = Duration::from_secs;
        let no = || ResourceHealth::Unhealthy("refused".into());
        // Within the grace: waiting; at or past it: a failed start.
        assert_eq!(
            start_up_verdict(false, no(), s(1), s(30)),
            Readiness::Waiting
        );
        assert_eq!(
            start_up_verdict(false, no(), s(30), s(30)),
            Readiness::NotReadyInTime("refused".into())
        );
        // The first pass makes it ready, however late within the grace.
        assert_eq!(
            start_up_verdict(false, ResourceHealth::Healthy, s(29), s(30)),
            Readiness::Ready
        );
        // Once ready, a failed probe is a failure at once.
        assert_eq!(
            start_up_verdict(true, no(), s(1), s(30)),
            Readiness::Failed("refused".into())
        );
        assert_eq!(
            start_up_verdict(true, ResourceHealth::Healthy, s(100), s(30)),
            Readiness::Ready
        );
        // A zero grace: the first failed probe fails the start.
        assert_eq!(
            start_up_verdict(false, no(), Duration::ZERO, Duration::ZERO),
            Readiness::NotReadyInTime("refused".into())
        );
    }
}
