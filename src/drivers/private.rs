//! The agent's own records under its data directory (pid files, logs,
//! address, mount and OCF records): directories created 0700 and files
//! 0600 at their creation, never `chmod`ed after. The data directory may
//! exist with a wider mode (made by a package or an operator), and an OCF
//! record holds the agent's parameters in clear (docs/runtime.md, "Secrets
//! at rest").

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Creates `dir` and its missing parents 0700; an existing one keeps its
/// mode.
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
