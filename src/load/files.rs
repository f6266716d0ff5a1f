//! Reading the files of the inputs: directories walked recursively in
//! sorted order (by path, component by component), every file read once,
//! only regular files. Anything else (a FIFO, a device, a socket) is never
//! opened — opening a FIFO blocks until a writer comes — and becomes a
//! finding of its own ([`Content::NotRegular`]).
//!
//! The files of a directory are read in parallel (tens of thousands of
//! small files cost more in system calls than in bytes); the results are
//! taken in sorted order, so the first error and the first appearance of a
//! file are those of a sequential read.

use std::borrow::Cow;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{Content, LoadError, MAX_FILE_BYTES, STDIN_NAME};

/// The files read so far, as shown and with their bytes, and the identity
/// (device, inode) of each so that none is read twice: the same file named
/// twice, a file and its directory, a symbolic or hard link to it.
#[derive(Default)]
pub(super) struct Files {
    pub read: Vec<(String, Content<'static>)>,
    seen: foldhash::HashSet<(u64, u64)>,
}

/// A file found by the walk; `regular` when its directory entry says it is
/// a regular file (not a link), so that no `stat` is needed before opening.
struct Found {
    path: PathBuf,
    regular: bool,
}

/// One file read: as shown, its identity, its bytes (or what it is, if it
/// is not a regular file).
type Read1 = (String, (u64, u64), Content<'static>);

impl Files {
    pub fn push_stdin(&mut self, bytes: Vec<u8>) {
        self.read
            .push((STDIN_NAME.into(), Content::Bytes(Cow::Owned(bytes))));
    }

    /// Reads a file, or every `*.yaml` / `*.yml` below a directory.
    pub fn read_path(&mut self, path: &Path) -> Result<(), LoadError> {
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                LoadError::NotFound(shown.clone())
            } else {
                LoadError::Io {
                    path: shown.clone(),
                    err: source,
                }
            }
        })?;
        if !meta.is_dir() {
            let one = read_file(&Found {
                path: path.to_owned(),
                regular: false,
            })?;
            self.keep(one);
            return Ok(());
        }
        let mut found = Vec::new();
        walk(path, &mut found)?;
        if found.is_empty() {
            return Err(LoadError::EmptyDirectory(shown));
        }
        let results: Vec<Result<Read1, LoadError>> = found.par_iter().map(read_file).collect();
        for r in results {
            self.keep(r?);
        }
        Ok(())
    }

    fn keep(&mut self, (shown, id, content): Read1) {
        if self.seen.insert(id) {
            self.read.push((shown, content));
        }
    }
}

/// Depth first, each directory's entries sorted by name: the order of the
/// paths compared component by component (`Path`'s order), without
/// comparing whole paths.
fn walk(dir: &Path, found: &mut Vec<Found>) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: dir.display().to_string(),
        err: source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    entries.sort_by_cached_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let ty = entry.file_type().map_err(io)?;
        if ty.is_dir() {
            walk(&path, found)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            found.push(Found {
                path,
                regular: ty.is_file(),
            });
        }
    }
    Ok(())
}

fn file_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

fn read_file(f: &Found) -> Result<Read1, LoadError> {
    let shown = f.path.display().to_string();
    let io = |source| LoadError::Io {
        path: shown.clone(),
        err: source,
    };
    let not_regular = |meta: &std::fs::Metadata| {
        (!meta.is_file()).then(|| {
            let kind = Content::NotRegular(file_kind(meta.file_type()));
            (shown.clone(), (meta.dev(), meta.ino()), kind)
        })
    };
    // Checked before opening — opening a device can have effects of its
    // own — unless the directory entry already said "regular file".
    if !f.regular {
        let meta = std::fs::metadata(&f.path).map_err(io)?;
        if let Some(skipped) = not_regular(&meta) {
            return Ok(skipped);
        }
    }
    // Non-blocking, and checked again on what was opened: a file swapped
    // for a FIFO in between must not hang the command.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&f.path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if let Some(skipped) = not_regular(&meta) {
        return Ok(skipped);
    }
    let size = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    let bytes = read_bytes(file, size).map_err(io)?;
    Ok((
        shown,
        (meta.dev(), meta.ino()),
        Content::Bytes(Cow::Owned(bytes)),
    ))
}

/// The bytes of a regular file of `size` bytes (as its metadata says), up
/// to one past the size limit. A file is read until it has `size` bytes,
/// without a last read that would only confirm the end: one system call
/// for a small file. A size of 0 (files of `/proc` say so) or past the
/// limit reads to the end, or to the limit.
fn read_bytes(mut file: std::fs::File, size: usize) -> std::io::Result<Vec<u8>> {
    if size == 0 || size > MAX_FILE_BYTES {
        let mut bytes = Vec::with_capacity(size.min(MAX_FILE_BYTES) + 1);
        file.take(MAX_FILE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)?;
        return Ok(bytes);
    }
    let mut bytes = vec![0; size];
    let mut filled = 0;
    while filled < size {
        match file.read(&mut bytes[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    // A file that shrank since its size was read is what is left of it.
    bytes.truncate(filled);
    Ok(bytes)
}
