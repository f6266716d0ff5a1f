//! `sharedDisk`: a block device every preferred node sees (a SAN LUN).
//!
//! Online means: the device is there, is a block device, and nothing else on
//! this node holds it — no device-mapper or md device stacked on it, no
//! exclusive opener, no mount other than the group's own mount points of
//! this disk. Keeping the disk on one node at a time is the domain's job
//! (placement, the lease); this driver makes sure this node does not already
//! use it behind the domain's back.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::drivers::{DriverError, ResourceHealth};
use crate::model::Name;

use super::io_check::{IoCheck, bounded};
use super::mountinfo;

#[derive(Debug)]
pub struct SharedDisk {
    name: Name,
    path: PathBuf,
    /// Where the group's own mount points mount this disk: a mount there is
    /// the group's, not someone else's hold.
    own_mounts: Vec<PathBuf>,
    check: IoCheck,
}

impl SharedDisk {
    pub fn new(
        name: Name,
        path: PathBuf,
        own_mounts: Vec<PathBuf>,
        interval: Duration,
        timeout: Duration,
    ) -> Self {
        SharedDisk {
            name,
            path,
            own_mounts,
            check: IoCheck::new(interval, timeout),
        }
    }

    pub fn label(&self) -> String {
        format!("shared disk {} ({})", self.name, self.path.display())
    }

    pub async fn start(&mut self) -> Result<(), DriverError> {
        let (path, own) = (self.path.clone(), self.own_mounts.clone());
        bounded(self.check.timeout(), move || claim(&path, &own))
            .await
            .unwrap_or_else(|| {
                Err(DriverError::Failed(format!(
                    "{}: the device did not answer within {:?}",
                    self.path.display(),
                    self.check.timeout()
                )))
            })
    }

    /// The disk itself needs no release; but if it is still mounted here
    /// (a mount point's stop failed, or someone mounted it by hand), this
    /// node has not let go of it and must not say it has.
    pub async fn stop(&mut self) -> Result<(), DriverError> {
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return Ok(()); // gone from this node: nothing here can use it
        };
        let dev = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
        let entries = mountinfo::read().map_err(|e| DriverError::io("reading mountinfo", e))?;
        let still: Vec<String> = mountinfo::mounts_of(&entries, dev)
            .iter()
            .map(|e| e.mount_point.display().to_string())
            .collect();
        if still.is_empty() {
            Ok(())
        } else {
            Err(DriverError::Failed(format!(
                "{} is still mounted on this node at {}",
                self.path.display(),
                still.join(", ")
            )))
        }
    }

    pub async fn check(&mut self) -> ResourceHealth {
        let path = self.path.clone();
        let what = self.label();
        self.check
            .check(&what, move || read_first_block(&path))
            .await
    }
}

/// Checks that this node may take the disk (see the module doc).
fn claim(path: &Path, own_mounts: &[PathBuf]) -> Result<(), DriverError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        DriverError::Unavailable(format!(
            "{}: no such device on this node ({e})",
            path.display()
        ))
    })?;
    if !meta.file_type().is_block_device() {
        return Err(DriverError::Unavailable(format!(
            "{} is not a block device",
            path.display()
        )));
    }
    let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
    let holders_dir = format!("/sys/dev/block/{major}:{minor}/holders");
    let stacked: Vec<String> = std::fs::read_dir(&holders_dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if !stacked.is_empty() {
        return Err(DriverError::Failed(format!(
            "{} is held on this node by {}",
            path.display(),
            stacked.join(", ")
        )));
    }
    let entries = mountinfo::read().map_err(|e| DriverError::io("reading mountinfo", e))?;
    let mounts = mountinfo::mounts_of(&entries, (major, minor));
    if let Some(other) = mounts.iter().find(|m| !own_mounts.contains(&m.mount_point)) {
        return Err(DriverError::Failed(format!(
            "{} is already mounted on this node at {}",
            path.display(),
            other.mount_point.display()
        )));
    }
    if mounts.is_empty() {
        // The kernel refuses an exclusive open of a block device that is
        // mounted or claimed by another exclusive opener (a file system,
        // mkfs, an array driver): the same test it applies itself.
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EXCL)
            .open(path)
            .map_err(|e| {
                DriverError::Failed(format!(
                    "{} is in exclusive use by another program on this node ({e})",
                    path.display()
                ))
            })?;
    }
    Ok(())
}

/// One 4 KiB block, aligned for direct I/O.
#[repr(align(4096))]
struct Block([u8; 4096]);

/// Reads the first block of the device, bypassing the page cache where the
/// device allows it, so the read really reaches the storage.
pub(crate) fn read_first_block(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("the device is gone ({e})"))?;
    if !meta.file_type().is_block_device() {
        return Err("no longer a block device".into());
    }
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .or_else(|_| OpenOptions::new().read(true).open(path))
        .map_err(|e| format!("cannot open the device: {e}"))?;
    let mut block = Box::new(Block([0; 4096]));
    match file.read(&mut block.0) {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err("read returned no data".into()),
        Err(e) => Err(format!("read failed: {e}")),
    }
}
