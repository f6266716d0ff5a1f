//! Reading the files of the inputs: directories walked recursively in
//! sorted order (by path, component by component), every file read once,
//! only regular files. Anything else (a FIFO, a device, a socket) is never
//! opened — opening a FIFO blocks until a writer comes — and becomes a
//! finding of its own ([`Content::NotRegular`]).
//!
//! The files of a directory are read in parallel (tens of thousands of
//! small files cost more in system calls than in bytes), starting while the
//! walk is still listing directories; the results are taken in sorted
//! order, so the first error and the first appearance of a file are those
//! of a sequential read (an error of the walk itself comes first, as when
//! the walk ended before any file was read).

use std::borrow::Cow;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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
        // The files are read while the directories are still being listed
        // (listing a directory of tens of thousands of entries takes as
        // long as reading a good part of them); the walk records the sorted
        // order, and the results are taken in that order afterwards.
        let (tx, rx) = std::sync::mpsc::channel();
        let mut order = Vec::new();
        let walked = rayon::scope(|scope| {
            let mut walker = Walker {
                scope,
                tx,
                batch: Vec::new(),
                next: 0,
            };
            let walked = walker.walk(path, &mut order);
            walker.flush();
            walked
        });
        // Every read has ended with the scope; a walk error is the error,
        // as when the whole walk came before the first read.
        walked?;
        if order.is_empty() {
            return Err(LoadError::EmptyDirectory(shown));
        }
        let mut results: Vec<Option<Result<Read1, LoadError>>> = Vec::new();
        results.resize_with(order.len(), || None);
        for batch in rx {
            for (id, r) in batch {
                results[id] = Some(r);
            }
        }
        for id in order {
            if let Some(r) = results[id].take() {
                self.keep(r?);
            }
        }
        Ok(())
    }

    fn keep(&mut self, (shown, id, content): Read1) {
        if self.seen.insert(id) {
            self.read.push((shown, content));
        }
    }
}

/// Files found and not yet handed to a reader.
const BATCH: usize = 64;

/// The walk, handing the files it finds to readers in batches as it goes.
struct Walker<'s, 'scope> {
    scope: &'s rayon::Scope<'scope>,
    tx: std::sync::mpsc::Sender<Vec<(usize, Result<Read1, LoadError>)>>,
    batch: Vec<(usize, Found)>,
    /// Files found so far: the next one's number.
    next: usize,
}

/// An entry of a directory that the walk keeps.
enum Kept {
    File(usize),
    Dir,
    /// Its type could not be read: the error, where a sequential walk
    /// would meet it.
    Failed(std::io::Error),
}

impl Walker<'_, '_> {
    /// Depth first, each directory's entries sorted by name: pushes the
    /// numbers of the files found in the order of the paths compared
    /// component by component (`Path`'s order), without comparing whole
    /// paths. The files are handed to readers in the order of the listing.
    fn walk(&mut self, dir: &Path, order: &mut Vec<usize>) -> Result<(), LoadError> {
        let io = |source| LoadError::Io {
            path: dir.display().to_string(),
            err: source,
        };
        let mut kept = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let what = match entry.file_type() {
                Err(e) => Kept::Failed(e),
                Ok(ty) if ty.is_dir() => Kept::Dir,
                Ok(ty) if is_yaml(&name) => Kept::File(self.found(Found {
                    path: entry.path(),
                    regular: ty.is_file(),
                })),
                Ok(_) => continue,
            };
            kept.push((name, what));
        }
        // Names are unique within a directory.
        kept.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (name, what) in kept {
            match what {
                Kept::File(id) => order.push(id),
                Kept::Dir => self.walk(&dir.join(name), order)?,
                Kept::Failed(e) => return Err(io(e)),
            }
        }
        Ok(())
    }

    fn found(&mut self, file: Found) -> usize {
        let id = self.next;
        self.next += 1;
        self.batch.push((id, file));
        if self.batch.len() == BATCH {
            self.flush();
        }
        id
    }

    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let tx = self.tx.clone();
        self.scope.spawn(move |_| {
            let read = batch
                .into_iter()
                .map(|(id, f)| (id, read_file(&f)))
                .collect();
            // The receiver lives until the scope has ended.
            let _ = tx.send(read);
        });
    }
}

fn is_yaml(name: &std::ffi::OsStr) -> bool {
    matches!(
        Path::new(name).extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The reads start in the order of the listing, several batches at a
    /// time; the files still come out in `Path`'s order (`a/z.yaml` before
    /// `a-b.yaml`, though `/` sorts after `-` as text), once each.
    #[test]
    fn files_read_during_the_walk_come_out_sorted_and_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("a")).expect("mkdir");
        std::fs::create_dir_all(root.join("b")).expect("mkdir");
        let mut expected = vec!["a/z.yaml", "a-b.yaml", "a.yaml"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        for i in (0..3 * BATCH).rev() {
            let name = format!("b/f{i:04}.yaml");
            std::fs::write(root.join(&name), format!("n: {i}\n")).expect("write");
            expected.push(name);
        }
        expected[3..].sort();
        for name in ["a/z.yaml", "a-b.yaml", "a.yaml", "c.txt"] {
            std::fs::write(root.join(name), name).expect("write");
        }
        // The same file again, through a link: read where it first appears.
        std::os::unix::fs::symlink(root.join("a.yaml"), root.join("link.yaml")).expect("link");
        let mut files = Files::default();
        files.read_path(root).expect("read");
        let prefix = format!("{}/", root.display());
        let names: Vec<&str> = files
            .read
            .iter()
            .map(|(n, _)| n.strip_prefix(&prefix).unwrap_or(n))
            .collect();
        assert_eq!(names, expected);
        let Content::Bytes(b) = &files.read[2].1 else {
            panic!("a.yaml is a regular file");
        };
        assert_eq!(&b[..], b"a.yaml");
    }
}
