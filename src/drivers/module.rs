//! AutoStart application modules (SQL Server, Exchange, Oracle, print
//! services). They drive Windows services, so on any other platform the
//! driver reports "unsupported on this platform".

use crate::model::Module;

use super::{DriverError, ResourceHealth};

#[derive(Debug)]
pub struct ModuleDriver {
    module: Module,
}

impl ModuleDriver {
    pub fn new(module: Module) -> Self {
        ModuleDriver { module }
    }

    pub fn label(&self) -> String {
        format!("module {}", self.module.kind.as_str())
    }

    pub async fn start(&mut self) -> Result<(), DriverError> {
        Err(DriverError::Unsupported {
            what: format!("the {} module", self.module.kind.as_str()),
            platform: std::env::consts::OS,
        })
    }

    /// Nothing can have been started, so there is nothing to stop.
    pub async fn stop(&mut self) -> Result<(), DriverError> {
        Ok(())
    }

    pub fn check(&self) -> ResourceHealth {
        ResourceHealth::Unhealthy(format!(
            "the {} module is unsupported on this platform",
            self.module.kind.as_str()
        ))
    }
}
