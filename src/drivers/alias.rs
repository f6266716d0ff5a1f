//! Node alias: a second network name that moves with the group (NetBIOS on
//! Windows, DNS elsewhere). Not implemented on this node yet; the driver
//! refuses rather than pretend the name answers.

use super::{DriverError, Health};

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
        Err(DriverError::Unavailable(format!(
            "node aliases are not available on this node yet: cannot publish `{}`",
            self.alias
        )))
    }

    /// Nothing can have been published, so there is nothing to withdraw.
    pub async fn stop(&mut self) -> Result<(), DriverError> {
        Ok(())
    }

    pub fn check(&self) -> Health {
        Health::Unhealthy(format!(
            "node alias `{}` is not managed on this node",
            self.alias
        ))
    }
}
