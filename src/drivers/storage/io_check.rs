//! Storage checks run off the async runtime, bounded by a timeout.
//!
//! I/O on hung storage blocks the calling thread in the kernel (state D),
//! where no signal or timeout reaches it. So a check runs on a thread of its
//! own and the agent waits for it only up to the timeout; past it the check
//! counts as failed and the thread is left behind. While a check is still
//! stuck, the next one is not started — one stuck thread per data source at
//! most, and it keeps reporting the failure.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::drivers::ResourceHealth;

/// A periodic check of one data source.
#[derive(Debug)]
pub struct IoCheck {
    interval: Duration,
    timeout: Duration,
    next_due: Instant,
    last: ResourceHealth,
    /// A check that outlived its timeout, and since when it runs.
    stuck: Option<(oneshot::Receiver<Result<(), String>>, Instant)>,
}

impl IoCheck {
    pub fn new(interval: Duration, timeout: Duration) -> Self {
        IoCheck {
            interval,
            timeout,
            next_due: Instant::now(),
            last: ResourceHealth::Healthy,
            stuck: None,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The result of the check, running `work` when one is due. `work`
    /// returns why the data source is unhealthy, if it is.
    pub async fn check<F>(&mut self, what: &str, work: F) -> ResourceHealth
    where
        F: FnOnce() -> Result<(), String> + Send + 'static,
    {
        if let Some((rx, since)) = &mut self.stuck {
            match rx.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => {
                    return ResourceHealth::Unhealthy(format!(
                        "{what}: I/O still hung after {:.1?}",
                        since.elapsed()
                    ));
                }
                // It finished (or its thread died): check afresh now.
                _ => {
                    self.stuck = None;
                    self.next_due = Instant::now();
                }
            }
        }
        if Instant::now() < self.next_due {
            return self.last.clone();
        }
        let (tx, mut rx) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("asctl-io-check".into())
            .spawn(move || {
                let _ = tx.send(work());
            });
        let started = Instant::now();
        let health = match spawned {
            Err(e) => ResourceHealth::Unhealthy(format!("{what}: cannot start the check: {e}")),
            Ok(_) => match tokio::time::timeout(self.timeout, &mut rx).await {
                Ok(Ok(Ok(()))) => ResourceHealth::Healthy,
                Ok(Ok(Err(why))) => ResourceHealth::Unhealthy(format!("{what}: {why}")),
                Ok(Err(_)) => ResourceHealth::Unhealthy(format!("{what}: the check thread died")),
                Err(_) => {
                    self.stuck = Some((rx, started));
                    ResourceHealth::Unhealthy(format!(
                        "{what}: I/O did not complete within {:?}",
                        self.timeout
                    ))
                }
            },
        };
        self.next_due = Instant::now() + self.interval;
        self.last = health.clone();
        health
    }
}

/// Runs blocking `work` on its own thread and waits up to `timeout`; for
/// one-off steps (start, stop) that may touch hung storage.
pub async fn bounded<T: Send + 'static>(
    timeout: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("asctl-io".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .ok()?;
    tokio::time::timeout(timeout, rx).await.ok()?.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hung_check_fails_at_its_timeout_and_is_not_repeated() {
        // Generous against scheduling on a loaded machine: a fresh check is
        // a thread start that must finish within the timeout, and two
        // checks in a row must fall within one interval.
        const INTERVAL: Duration = Duration::from_millis(800);
        let mut c = IoCheck::new(INTERVAL, Duration::from_secs(1));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let h = c
            .check("disk", move || {
                let _ = wait.recv();
                Ok(())
            })
            .await;
        assert!(
            matches!(&h, ResourceHealth::Unhealthy(w) if w.contains("did not complete")),
            "{h:?}"
        );
        // Still stuck: the new work is not run (it would panic the thread).
        tokio::time::sleep(Duration::from_millis(20)).await;
        let h = c.check("disk", || panic!("must not run")).await;
        assert!(
            matches!(&h, ResourceHealth::Unhealthy(w) if w.contains("still hung")),
            "{h:?}"
        );
        release.send(()).unwrap();
        // Once the stuck check has ended, the next call checks afresh at
        // once, whatever the interval.
        let deadline = Instant::now() + Duration::from_secs(10);
        let h = loop {
            let h = c.check("disk", || Ok(())).await;
            let still_hung = matches!(&h, ResourceHealth::Unhealthy(w) if w.contains("still hung"));
            if !still_hung || Instant::now() > deadline {
                break h;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(h, ResourceHealth::Healthy);
        let h = c.check("disk", || Err("x".into())).await;
        assert_eq!(
            h,
            ResourceHealth::Healthy,
            "not due yet: the last result stands"
        );
        tokio::time::sleep(INTERVAL).await;
        let h = c.check("disk", || Err("short read".into())).await;
        assert_eq!(h, ResourceHealth::Unhealthy("disk: short read".into()));
    }
}
