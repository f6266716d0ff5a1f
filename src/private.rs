//! Files asctl keeps to itself — raft's log and records, the agent's pid
//! files, logs, address, mount and OCF records, a saved plan: directories
//! created 0700 and files 0600 at their creation, never `chmod`ed after.
//! They hold environment values and agent parameters in clear
//! (docs/runtime.md, "Secrets at rest"), and a directory may exist with a
//! wider mode (made by a package or an operator).

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Creates `dir` and its missing parents 0700. An existing directory keeps
/// its mode: tightening it is the operator's call.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates (or truncates) `path` for writing, 0600 when new.
pub fn create_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Opens `path` for appending, creating it 0600.
pub fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}
