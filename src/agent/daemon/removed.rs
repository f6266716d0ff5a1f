//! A member removed from the domain ([`crate::domain::removal`]) stays up
//! and says so rather than exiting: a service manager would restart an
//! exiting agent into the same state, and whoever looks at the node gets an
//! explicit answer from `status`. It runs no groups and no raft core (whose
//! elections would disturb the members that remain), and refuses writes.

use std::path::Path;

use tracing::{info, warn};

use super::{AgentError, MemberTasks, Server, Shutdown};
use crate::domain::Replica;
use crate::domain::network::Inbound;
use crate::domain::network::inbound::deliver_report;
use crate::domain::removal::{mark, removal_message};

impl MemberTasks {
    /// Leaves the domain: writes are refused from now on, the mark makes a
    /// restart stay removed, the groups go offline, the leader loop and raft
    /// stop. The server is handed back to keep answering `status`.
    pub(super) async fn leave(self, generation: u64, data_dir: &Path, inbound: &Inbound) -> Server {
        self.domain.removed.get_or_init(|| generation);
        warn!("{}", removal_message(generation));
        if let Err(e) = mark(&data_dir.join("raft"), generation) {
            warn!("cannot record the removal in the data directory: {e}");
        }
        let _ = self.stop.send(true);
        if let Some(node) = self.node {
            let reports = node.reports();
            node.stop(false, None).await;
            // The leader starts a group that ran here elsewhere only once
            // this node reported it stopped (break before make): the report
            // of the groups offline goes out before the reporting ends.
            // A removed leader leaves the others electing a new one: the
            // report is tried again until one takes it.
            let last = reports.borrow().clone();
            let deliver = async {
                while let Err(e) = deliver_report(inbound, last.clone()).await {
                    tracing::debug!("last report not delivered yet: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            };
            if tokio::time::timeout(REPORT_WAIT, deliver).await.is_err() {
                warn!("the last report was not delivered within {REPORT_WAIT:?}");
            }
        }
        let _ = self.leader.await;
        stop_raft(&self.domain).await;
        self.server
    }
}

/// How long the removed node tries to deliver its last report.
const REPORT_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Stops this member's raft core: no more elections.
pub(super) async fn stop_raft(domain: &Replica) {
    if let Err(e) = domain.raft.shutdown().await {
        warn!("raft did not stop cleanly: {e}");
    }
}

/// Answers `status` (as removed) until SIGTERM or SIGINT.
pub(super) async fn stay(
    name: &str,
    server: Server,
    shutdown: &Shutdown,
) -> Result<(), AgentError> {
    info!("{name}: removed from the domain; answering only status until stopped");
    shutdown.requested().await;
    server.stop(false).await;
    info!("{name}: stopped");
    Ok(())
}
