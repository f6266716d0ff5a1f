//! systemd units through the real `systemctl` binary.
//!
//! `systemctl start` of an active unit and `systemctl stop` of an inactive
//! one are no-ops, which makes this driver idempotent for free.

use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::time::Instant;

use super::{DriverError, ResourceHealth};

/// How often an online unit is asked `is-active`: a `systemctl` call per
/// reconciler tick would be a fork every quarter second for nothing.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct ServiceDriver {
    unit: String,
    systemctl: PathBuf,
    next_check: Option<Instant>,
    last: ResourceHealth,
}

impl ServiceDriver {
    /// `systemctl` is the program to run (a name looked up in `PATH`, or a path).
    pub fn new(unit: String, systemctl: PathBuf) -> Self {
        ServiceDriver {
            unit,
            systemctl,
            next_check: None,
            last: ResourceHealth::Healthy,
        }
    }

    pub fn label(&self) -> String {
        format!("service {}", self.unit)
    }

    /// `systemctl start` returns once the unit started (or failed) for
    /// the usual unit types, but the unit counts as ready only once
    /// `is-active` said so: the first check runs at once.
    pub async fn start(&mut self) -> Result<(), DriverError> {
        self.systemctl("start").await?;
        self.next_check = None;
        self.last = ResourceHealth::Starting(format!(
            "unit {}: waiting for `systemctl is-active`",
            self.unit
        ));
        Ok(())
    }

    pub async fn stop(&mut self) -> Result<(), DriverError> {
        self.next_check = None;
        self.systemctl("stop").await
    }

    pub async fn check(&mut self) -> ResourceHealth {
        let now = Instant::now();
        if self.next_check.is_some_and(|t| t > now) {
            return self.last.clone();
        }
        self.next_check = Some(now + CHECK_INTERVAL);
        self.last = self.is_active().await;
        self.last.clone()
    }

    /// `systemctl is-active`: exit status 0 means active.
    pub async fn is_active(&self) -> ResourceHealth {
        match self.run(&["is-active", "--quiet", &self.unit]).await {
            Ok(out) if out.status.success() => ResourceHealth::Healthy,
            Ok(_) => ResourceHealth::Unhealthy(format!("unit {} is not active", self.unit)),
            Err(e) => ResourceHealth::Unhealthy(e.to_string()),
        }
    }

    async fn systemctl(&self, verb: &str) -> Result<(), DriverError> {
        let out = self.run(&[verb, &self.unit]).await?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(DriverError::Failed(format!(
            "`systemctl {verb} {}` failed ({}): {}",
            self.unit,
            out.status,
            stderr.trim()
        )))
    }

    async fn run(&self, args: &[&str]) -> Result<std::process::Output, DriverError> {
        let out = Command::new(&self.systemctl)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await;
        out.map_err(|e| match e.kind() {
            ErrorKind::NotFound => DriverError::Unavailable(format!(
                "systemd services are not available on this node: `{}` was not found \
                 (unit {} needs systemd)",
                self.systemctl.display(),
                self.unit
            )),
            _ => DriverError::Spawn {
                what: format!("`{}`", self.systemctl.display()),
                err: e,
            },
        })
    }
}
