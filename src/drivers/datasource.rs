//! Data sources (shared disks, mirrors, array replication, mounts). Each type
//! needs hardware or an array interface that a later issue brings; until then
//! the driver refuses, so a group never runs without its data.

use crate::model::Name;

use super::{DriverError, Health};

#[derive(Debug)]
pub struct DataSourceDriver {
    name: Name,
}

impl DataSourceDriver {
    pub fn new(name: Name) -> Self {
        DataSourceDriver { name }
    }

    pub fn label(&self) -> String {
        format!("data source {}", self.name)
    }

    pub async fn start(&mut self) -> Result<(), DriverError> {
        Err(DriverError::Unavailable(format!(
            "data sources are not available on this node yet: cannot bring `{}` online",
            self.name
        )))
    }

    /// Nothing can have been brought online, so there is nothing to release.
    pub async fn stop(&mut self) -> Result<(), DriverError> {
        Ok(())
    }

    pub fn check(&self) -> Health {
        Health::Unhealthy(format!(
            "data source `{}` is not managed on this node",
            self.name
        ))
    }
}
