//! Managed IP addresses. Adding an address to an interface and announcing it
//! (netlink, gratuitous ARP) comes with a later issue; until then the driver
//! refuses, so a group with a managed address never claims to be online.

use crate::model::ManagedIp;

use super::{DriverError, Health};

#[derive(Debug)]
pub struct IpDriver {
    ip: ManagedIp,
}

impl IpDriver {
    pub fn new(ip: ManagedIp) -> Self {
        IpDriver { ip }
    }

    pub fn label(&self) -> String {
        format!("ip {}", self.ip.address)
    }

    pub async fn start(&mut self) -> Result<(), DriverError> {
        Err(DriverError::Unavailable(format!(
            "managed IP addresses are not available on this node yet: cannot add {} on line {}",
            self.ip.address, self.ip.line
        )))
    }

    /// Nothing can have been added by this driver, so there is nothing to remove.
    pub async fn stop(&mut self) -> Result<(), DriverError> {
        Ok(())
    }

    pub fn check(&self) -> Health {
        Health::Unhealthy(format!("{} is not managed on this node", self.ip.address))
    }
}
