//! Data sources on a Linux node.
//!
//! `sharedDisk`, `mountPoint` and `composite` have built-in drivers
//! ([`super::storage`]); any data source with an `agent` runs through that
//! OCF agent ([`super::ocf`]), whatever its type. Every other type has no
//! driver here and refuses to start with a permanent error — a group never
//! runs without its data.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::model::{Config, DataSourceSpec, DataSourceType, Name, ResourceGroupSpec};

use super::ocf::{self, OcfDriver};
use super::storage::mount::{MountPoint, MountSpec};
use super::storage::shared_disk::SharedDisk;
use super::{DriverError, GroupContext, ResourceHealth};

/// The data sources a group uses — its own and, through `members` and `on`,
/// those they refer to — by name.
pub type DataSources = BTreeMap<Name, DataSourceSpec>;

/// The data sources `spec` uses, from `config`. Names the configuration
/// does not have are left out; their drivers then refuse.
pub fn resolve(config: &Config, spec: &ResourceGroupSpec) -> DataSources {
    let mut out = DataSources::new();
    let mut todo: Vec<Name> = spec.data_sources.clone();
    while let Some(name) = todo.pop() {
        if out.contains_key(&name) {
            continue;
        }
        if let Some(d) = config.data_sources.get(name.as_str()) {
            todo.extend(d.spec.members.iter().cloned());
            todo.extend(d.spec.on.iter().cloned());
            out.insert(name, d.spec.clone());
        }
    }
    out
}

/// The stop timeout of a mount point when the configuration gives none.
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub enum DataSourceDriver {
    SharedDisk(SharedDisk),
    Mount(Box<MountPoint>),
    Composite {
        name: Name,
        members: Vec<DataSourceDriver>,
    },
    Ocf(Box<OcfDriver>),
    /// No driver can run this data source here: starting it fails.
    Refused {
        name: Name,
        why: String,
    },
}

impl DataSourceDriver {
    /// The driver of data source `name` of a group.
    pub fn new(ctx: &GroupContext, name: &Name, sources: &DataSources) -> Self {
        Self::build(ctx, name, sources, &mut BTreeSet::new())
    }

    fn build(
        ctx: &GroupContext,
        name: &Name,
        sources: &DataSources,
        seen: &mut BTreeSet<Name>,
    ) -> Self {
        let refuse = |why: String| DataSourceDriver::Refused {
            name: name.clone(),
            why,
        };
        let Some(spec) = sources.get(name) else {
            return refuse(format!("data source `{name}` is not in the configuration"));
        };
        if !seen.insert(name.clone()) {
            return refuse(format!("composite data source `{name}` contains itself"));
        }
        let monitor = spec.monitor.unwrap_or_default();
        let (interval, timeout) = (monitor.interval.get(), monitor.timeout.get());
        if let Some(agent) = &spec.agent {
            let label = format!("data source {name} ({})", agent.ocf);
            return DataSourceDriver::Ocf(Box::new(
                OcfDriver::new(label, name.as_str(), agent.clone(), ocf::ocf_root())
                    .recorded_in(ctx.data_dir.clone(), ctx.group.as_str()),
            ));
        }
        match spec.kind {
            DataSourceType::SharedDisk => match device_path(spec) {
                Some(path) => {
                    let own = own_mounts(name, sources);
                    DataSourceDriver::SharedDisk(SharedDisk::new(
                        name.clone(),
                        path,
                        own,
                        interval,
                        timeout,
                    ))
                }
                None => refuse(format!("shared disk `{name}` has no `device.path`")),
            },
            DataSourceType::MountPoint => match mount_spec(ctx, name, spec, sources) {
                Ok(m) => DataSourceDriver::Mount(Box::new(MountPoint::new(m, interval, timeout))),
                Err(why) => refuse(why),
            },
            DataSourceType::Composite => DataSourceDriver::Composite {
                name: name.clone(),
                members: spec
                    .members
                    .iter()
                    .map(|m| Self::build(ctx, m, sources, seen))
                    .collect(),
            },
            other => refuse(format!(
                "no driver for `{other}` on linux: give data source `{name}` an `agent` (an OCF resource agent)"
            )),
        }
    }

    pub fn label(&self) -> String {
        match self {
            DataSourceDriver::SharedDisk(d) => d.label(),
            DataSourceDriver::Mount(d) => d.label(),
            DataSourceDriver::Composite { name, .. } => format!("composite data source {name}"),
            DataSourceDriver::Ocf(d) => d.label(),
            DataSourceDriver::Refused { name, .. } => format!("data source {name}"),
        }
    }

    /// Members of a composite start in order; the first failure ends the
    /// start (the caller then stops the whole composite, which is safe:
    /// every stop is idempotent).
    pub async fn start(&mut self) -> Result<(), DriverError> {
        match self {
            DataSourceDriver::SharedDisk(d) => d.start().await,
            DataSourceDriver::Mount(d) => d.start().await,
            DataSourceDriver::Composite { members, .. } => {
                for m in members.iter_mut() {
                    Box::pin(m.start()).await.map_err(|e| in_member(m, e))?;
                }
                Ok(())
            }
            DataSourceDriver::Ocf(d) => d.start().await,
            DataSourceDriver::Refused { why, .. } => Err(DriverError::Unavailable(why.clone())),
        }
    }

    /// Members stop in reverse order, every one even after a failure; the
    /// first failure is returned.
    pub async fn stop(&mut self) -> Result<(), DriverError> {
        match self {
            DataSourceDriver::SharedDisk(d) => d.stop().await,
            DataSourceDriver::Mount(d) => d.stop().await,
            DataSourceDriver::Composite { members, .. } => {
                let mut first = None;
                for m in members.iter_mut().rev() {
                    if let Err(e) = Box::pin(m.stop()).await {
                        first.get_or_insert(in_member(m, e));
                    }
                }
                first.map_or(Ok(()), Err)
            }
            DataSourceDriver::Ocf(d) => d.stop().await,
            DataSourceDriver::Refused { .. } => Ok(()),
        }
    }

    /// Healthy when every member is.
    pub async fn check(&mut self) -> ResourceHealth {
        match self {
            DataSourceDriver::SharedDisk(d) => d.check().await,
            DataSourceDriver::Mount(d) => d.check().await,
            DataSourceDriver::Composite { members, .. } => {
                for m in members.iter_mut() {
                    let h = Box::pin(m.check()).await;
                    if !h.is_healthy() {
                        return h;
                    }
                }
                ResourceHealth::Healthy
            }
            DataSourceDriver::Ocf(d) => d.check().await,
            DataSourceDriver::Refused { why, .. } => ResourceHealth::Unhealthy(why.clone()),
        }
    }
}

fn in_member(m: &DataSourceDriver, e: DriverError) -> DriverError {
    let text = format!("{}: {e}", m.label());
    if e.is_fatal() {
        DriverError::Misconfigured(text)
    } else if e.is_permanent() {
        DriverError::Unavailable(text)
    } else {
        DriverError::Failed(text)
    }
}

fn device_path(spec: &DataSourceSpec) -> Option<PathBuf> {
    spec.device.as_ref()?.path.as_ref().map(PathBuf::from)
}

/// Where this group's mount points mount shared disk `disk`.
fn own_mounts(disk: &Name, sources: &DataSources) -> Vec<PathBuf> {
    sources
        .values()
        .filter(|s| s.kind == DataSourceType::MountPoint && s.on.as_ref() == Some(disk))
        .filter_map(|s| s.path.as_ref().map(PathBuf::from))
        .collect()
}

fn mount_spec(
    ctx: &GroupContext,
    name: &Name,
    spec: &DataSourceSpec,
    sources: &DataSources,
) -> Result<MountSpec, String> {
    let on = spec
        .on
        .as_ref()
        .ok_or_else(|| format!("mount point `{name}` has no `on` (the shared disk it mounts)"))?;
    let disk = sources.get(on).ok_or_else(|| {
        format!("mount point `{name}`: data source `{on}` is not in the configuration")
    })?;
    let device = device_path(disk)
        .ok_or_else(|| format!("mount point `{name}`: data source `{on}` has no `device.path`"))?;
    let path = spec
        .path
        .as_ref()
        .ok_or_else(|| format!("mount point `{name}` has no `path`"))?;
    if !path.starts_with('/') || path == "/" {
        return Err(format!(
            "mount point `{name}`: `path` must be an absolute directory other than /"
        ));
    }
    let fs_type = spec
        .fs_type
        .clone()
        .ok_or_else(|| format!("mount point `{name}` has no `fsType`"))?;
    Ok(MountSpec {
        name: name.clone(),
        device,
        path: PathBuf::from(path),
        fs_type,
        options: spec.options.clone(),
        fsck: ctx.fsck.clone(),
        stop_timeout: spec.stop_timeout.map_or(DEFAULT_STOP_TIMEOUT, |d| d.get()),
        node: ctx.node.clone(),
        record_in: Some((ctx.data_dir.clone(), ctx.group.clone())),
    })
}
