//! Time helpers the runtime's loops share (no I/O beyond tokio's timer).

use tokio::time::Instant;

/// Sleeps until `at`; with no deadline, never returns — so a `select!` arm
/// on it is simply never taken.
pub async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
