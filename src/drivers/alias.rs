//! Node alias: the seed's Windows node alias, a second NetBIOS name that
//! moves with the group. NetBIOS naming exists only on Windows, and the
//! rules already require every preferred node of a group with an alias to
//! run Windows (Windows-only resources are modelled and validated in full,
//! and their drivers say "unsupported" elsewhere). So on
//! any other platform the driver refuses with
//! [`DriverError::Unsupported`]: the group never reports Online with a name
//! nobody answers. On Linux, give clients a DNS name for the group's managed
//! IP address instead (docs/ha.md).

use super::{DriverError, ResourceHealth};

#[derive(Debug)]
pub struct AliasDriver {
    alias: String,
}

impl AliasDriver {
    pub fn new(alias: String) -> Self {
        AliasDriver { alias }
    }

    pub fn label(&self) -> String {
        format!("node alias {}", self.alias)
    }

    pub async fn start(&mut self) -> Result<(), DriverError> {
        Err(DriverError::Unsupported {
            what: format!("node alias `{}` (a Windows NetBIOS name)", self.alias),
            platform: std::env::consts::OS,
        })
    }

    /// Nothing can have been published, so there is nothing to withdraw.
    pub async fn stop(&mut self) -> Result<(), DriverError> {
        Ok(())
    }

    pub fn check(&self) -> ResourceHealth {
        ResourceHealth::Unhealthy(format!(
            "node alias `{}` is not published on this platform",
            self.alias
        ))
    }
}
