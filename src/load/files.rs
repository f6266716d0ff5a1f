//! Reading the files of the inputs: directories walked recursively in
//! sorted order (by path, component by component), every file read once,
//! only regular files. Anything else (a FIFO, a device, a socket) is never
//! opened — opening a FIFO blocks until a writer comes — and becomes a
//! finding of its own ([`Content::NotRegular`]).
//!
//! The files of a directory are read in parallel (tens of thousands of
//! small files cost more in system calls than in bytes), each opened
//! relative to its directory, in batches of two system calls each where the
//! kernel allows ([`super::uring`]); the results are taken in sorted order,
//! so the first error and the first appearance of a file are those of a
//! sequential read.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use rayon::prelude::*;

use super::uring::{self, Outcome, Request};
use super::{Content, LoadError, MAX_FILE_BYTES, STDIN_NAME};

/// The files read so far, as shown and with their bytes, and the identity
/// (device, inode) of each so that none is read twice: the same file named
/// twice, a file and its directory, a symbolic or hard link to it.
#[derive(Default)]
pub(super) struct Files {
    pub read: Vec<(String, Content<'static>)>,
    seen: foldhash::HashSet<(u64, u64)>,
}

/// A file found by the walk (or named on the command line).
struct Found {
    /// As shown in findings: the path's display form.
    shown: String,
    at: Place,
}

enum Place {
    /// A regular file (its directory entry says so, without following a
    /// link) in one of the walk's open directories, by its name there:
    /// opened relative to the directory, so that the kernel resolves one
    /// name rather than the whole path, and no `stat` comes first.
    Entry {
        /// Which of the walk's open directories.
        dir: usize,
        /// The name is the end of the shown path, from this byte offset.
        name: usize,
        /// The inode number the directory entry gives.
        ino: u64,
    },
    /// Anything else, by its path: looked at (`stat`) before it is opened.
    Path(PathBuf),
}

/// One file read: as shown, its identity, its bytes (or what it is, if it
/// is not a regular file).
type Read1 = (String, (u64, u64), Content<'static>);

/// A directory the walk keeps open, and the device it is on.
struct OpenDir {
    fd: OwnedFd,
    dev: u64,
}

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
            let one = read_file(shown, &Place::Path(path.to_owned()), &[]);
            return self.keep(vec![one]);
        }
        let mut found = Vec::new();
        let mut dirs = Vec::new();
        walk(path, &shown, &mut found, &mut dirs, open_dirs_allowed())?;
        if found.is_empty() {
            return Err(LoadError::EmptyDirectory(shown));
        }
        self.keep(read_found(found, &dirs, Batches::Ring))
    }

    /// Keeps the files read, in order, each the first time it is seen;
    /// stops at the first error. Filtered where the results lie: the list
    /// is reused, not copied (tens of thousands of files).
    fn keep(&mut self, results: Vec<Result<Read1, LoadError>>) -> Result<(), LoadError> {
        self.seen.reserve(results.len());
        let seen = &mut self.seen;
        let mut kept = results
            .into_iter()
            .filter_map(|r| match r {
                Ok((shown, id, content)) => seen.insert(id).then_some(Ok((shown, content))),
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.read.is_empty() {
            self.read = kept;
        } else {
            self.read.append(&mut kept);
        }
        Ok(())
    }
}

/// How the walk's files are read.
#[derive(Clone, Copy, PartialEq)]
enum Batches {
    /// A batch at a time through the ring where the kernel allows.
    Ring,
    /// One file at a time (what the ring leaves behind is read this way).
    #[cfg(test)]
    Ordinary,
}

/// Reads the files found, in parallel, each result in the place of its
/// file.
fn read_found(
    mut found: Vec<Found>,
    dirs: &[OpenDir],
    batches: Batches,
) -> Vec<Result<Read1, LoadError>> {
    found
        .par_chunks_mut(uring::BATCH)
        .flat_map_iter(|chunk| {
            // The ring reads what it can of the directory entries; an
            // outcome for each entry, in order.
            let outcomes = if batches == Batches::Ring {
                let requests: Vec<Request> = chunk
                    .iter()
                    .filter_map(|f| match f.at {
                        Place::Entry { dir, name, .. } => Some(Request {
                            dir: dirs[dir].fd.as_fd(),
                            name: &f.shown.as_bytes()[name..],
                        }),
                        Place::Path(_) => None,
                    })
                    .collect();
                (!requests.is_empty())
                    .then(|| uring::read_small(&requests))
                    .flatten()
            } else {
                None
            };
            let mut outcomes = outcomes.into_iter().flatten();
            chunk
                .iter_mut()
                .map(|f| {
                    let shown = std::mem::take(&mut f.shown);
                    if let Place::Entry { dir, ino, .. } = f.at
                        && let Some(Outcome::Read(bytes)) = outcomes.next()
                    {
                        // The identity from the directory entry: the same
                        // as the file's own (`stat`) on local file systems.
                        return Ok((
                            shown,
                            (dirs[dir].dev, ino),
                            Content::Bytes(Cow::Owned(bytes)),
                        ));
                    }
                    read_file(shown, &f.at, dirs)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The most directories the walk keeps open (the usual limit of a
/// process is 1,024 descriptors, and the reading threads open files too).
const MAX_OPEN_DIRS: usize = 256;

/// How many directories this walk may keep open: [`MAX_OPEN_DIRS`], or a
/// quarter of the process's limit of descriptors where a shell or a
/// service manager has set it lower.
fn open_dirs_allowed() -> usize {
    use rustix::process::{Resource, getrlimit};
    getrlimit(Resource::Nofile)
        .current
        .map_or(MAX_OPEN_DIRS, |limit| {
            usize::try_from(limit / 4).unwrap_or(MAX_OPEN_DIRS)
        })
        .min(MAX_OPEN_DIRS)
}

/// Depth first, each directory's entries sorted by name: the order of the
/// paths compared component by component (`Path`'s order), without
/// comparing whole paths. Each directory, up to `keep_open` of them, is
/// kept open in `dirs` for its files to be opened relative to it.
fn walk(
    dir: &Path,
    shown: &str,
    found: &mut Vec<Found>,
    dirs: &mut Vec<OpenDir>,
    keep_open: usize,
) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: shown.to_owned(),
        err: source,
    };
    let fd = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(e.into()))?;
    let listing = list(&fd).map_err(io)?;
    // A tree of thousands of directories must not run out of descriptors:
    // past the first few hundred, files are opened by their whole path.
    let at = if dirs.len() < keep_open {
        let dev = nix::sys::stat::fstat(&fd).map_err(|e| io(e.into()))?.st_dev;
        dirs.push(OpenDir { fd, dev });
        Some(dirs.len() - 1)
    } else {
        None
    };
    // Nearly every entry of a configuration directory is a file to read.
    found.reserve(listing.entries.len());
    for entry in &listing.entries {
        let name = listing.name(entry);
        let ty = match entry.ty {
            Some(ty) => ty,
            // The file system did not say (`DT_UNKNOWN`): asked of the entry
            // itself, without following a link, as `DirEntry::file_type`.
            None => std::fs::symlink_metadata(dir.join(OsStr::from_bytes(name)))
                .map_err(io)?
                .file_type()
                .into(),
        };
        if ty == EntryType::Directory {
            let path = dir.join(OsStr::from_bytes(name));
            let shown = path.display().to_string();
            walk(&path, &shown, found, dirs, keep_open)?;
        } else if is_yaml_name(name) {
            // What `dir.join(name).display()` shows, built without
            // converting the whole path again when the name is UTF-8.
            let found1 = match (std::str::from_utf8(name), at) {
                (Ok(n), Some(at)) if ty == EntryType::File => {
                    let sep = if shown.ends_with('/') { "" } else { "/" };
                    let mut path = String::with_capacity(shown.len() + sep.len() + n.len());
                    path.push_str(shown);
                    path.push_str(sep);
                    path.push_str(n);
                    Found {
                        at: Place::Entry {
                            dir: at,
                            name: path.len() - n.len(),
                            ino: entry.ino,
                        },
                        shown: path,
                    }
                }
                _ => {
                    let path = dir.join(OsStr::from_bytes(name));
                    Found {
                        shown: path.display().to_string(),
                        at: Place::Path(path),
                    }
                }
            };
            found.push(found1);
        }
    }
    Ok(())
}

/// What a directory entry is, as far as the walk cares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum EntryType {
    Directory,
    File,
    /// A link, a FIFO, a device: opened (or not) by its path.
    Other,
}

impl From<std::fs::FileType> for EntryType {
    fn from(t: std::fs::FileType) -> Self {
        if t.is_dir() {
            EntryType::Directory
        } else if t.is_file() {
            EntryType::File
        } else {
            EntryType::Other
        }
    }
}

/// One directory's entries, sorted by name, their names in one buffer: a
/// directory of tens of thousands of files is listed without an
/// allocation per entry.
struct Listing {
    names: Vec<u8>,
    entries: Vec<ListedEntry>,
}

struct ListedEntry {
    /// The name's first bytes ([`name_prefix`]): nearly always enough to
    /// order two names without reading the buffer.
    prefix: u64,
    /// The name, `names[start..end]`.
    start: u32,
    end: u32,
    /// `None` when the file system does not say (`DT_UNKNOWN`).
    ty: Option<EntryType>,
    ino: u64,
}

impl Listing {
    fn name(&self, e: &ListedEntry) -> &[u8] {
        &self.names[e.start as usize..e.end as usize]
    }
}

/// Lists the directory open at `fd`, `.` and `..` left out, sorted by
/// name: the order of `Path`'s comparison within one directory. The
/// kernel's entries are read straight from one buffer (`getdents64`), so
/// a name costs no allocation of its own.
fn list(fd: &OwnedFd) -> std::io::Result<Listing> {
    use rustix::fs::{FileType, RawDir};
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut stream = RawDir::new(fd, buf.spare_capacity_mut());
    let mut listing = Listing {
        names: Vec::new(),
        entries: Vec::new(),
    };
    while let Some(entry) = stream.next() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let start = listing.names.len();
        listing.names.extend_from_slice(name);
        let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(listing.names.len()))
        else {
            return Err(std::io::Error::other(
                "a directory with over 4 GiB of names",
            ));
        };
        listing.entries.push(ListedEntry {
            prefix: name_prefix(name),
            start,
            end,
            ty: match entry.file_type() {
                FileType::Directory => Some(EntryType::Directory),
                FileType::RegularFile => Some(EntryType::File),
                FileType::Unknown => None,
                _ => Some(EntryType::Other),
            },
            ino: entry.ino(),
        });
    }
    // Names within one directory are distinct.
    let Listing { names, entries } = &mut listing;
    entries.sort_unstable_by(|a, b| {
        a.prefix.cmp(&b.prefix).then_with(|| {
            names[a.start as usize..a.end as usize].cmp(&names[b.start as usize..b.end as usize])
        })
    });
    Ok(listing)
}

/// The first eight bytes of a name as a number that sorts as they do (a
/// shorter name is padded with zeros, and no name holds a zero byte).
fn name_prefix(name: &[u8]) -> u64 {
    let mut first = [0u8; 8];
    let n = name.len().min(8);
    first[..n].copy_from_slice(&name[..n]);
    u64::from_be_bytes(first)
}

/// Whether a file name has the extension `yaml` or `yml`, as
/// `Path::extension` says it (`.yaml` alone is a name without one), without
/// parsing it as a path — the walk asks it of every name.
fn is_yaml_name(name: &[u8]) -> bool {
    [&b".yaml"[..], b".yml"]
        .iter()
        .any(|ext| name.len() > ext.len() && name.ends_with(ext))
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

fn read_file(shown: String, at: &Place, dirs: &[OpenDir]) -> Result<Read1, LoadError> {
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
    // Non-blocking, and checked again on what was opened: a file swapped
    // for a FIFO in between must not hang the command.
    let file = match at {
        Place::Entry { dir, name, .. } => open_nonblocking(dirs[*dir].fd.as_fd(), &shown[*name..]),
        Place::Path(path) => {
            // Looked at before opening — opening a device can have effects
            // of its own.
            let meta = std::fs::metadata(path).map_err(io)?;
            if let Some(skipped) = not_regular(&meta) {
                return Ok(skipped);
            }
            open_nonblocking(nix::fcntl::AT_FDCWD, path.as_path())
        }
    }
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

/// Opens `path` (relative to `dir`) for reading, non-blocking — a FIFO
/// without a writer must not hang the command — and never as the
/// controlling terminal.
fn open_nonblocking<P: nix::NixPath + ?Sized>(
    dir: BorrowedFd,
    path: &P,
) -> std::io::Result<std::fs::File> {
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(dir, path, flags, Mode::empty())?;
    Ok(std::fs::File::from(fd))
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

    fn text<'a>(c: &'a Content<'a>) -> &'a [u8] {
        match c {
            Content::Bytes(b) => b,
            Content::NotRegular(what) => panic!("not read: {what}"),
        }
    }

    /// Past the directories the walk keeps open, files are opened by their
    /// path: every file is still read, in order, under the name a user
    /// gave.
    #[test]
    fn a_tree_of_more_directories_than_are_kept_open_is_read_whole() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let n = MAX_OPEN_DIRS + 20;
        for i in 0..n {
            let dir = tmp.path().join(format!("d{i:04}"));
            std::fs::create_dir(&dir).expect("dir");
            std::fs::write(dir.join("a.yaml"), format!("n: {i}\n")).expect("file");
        }
        let mut files = Files::default();
        files.read_path(tmp.path()).expect("read");
        assert_eq!(files.read.len(), n);
        for (i, (shown, content)) in files.read.iter().enumerate() {
            let expected = tmp.path().join(format!("d{i:04}")).join("a.yaml");
            assert_eq!(shown, &expected.display().to_string());
            assert_eq!(text(content), format!("n: {i}\n").as_bytes());
        }
    }

    /// The batched reading and the one-file-at-a-time reading give the same
    /// files, bytes and identities, in the same order: empty, small and
    /// large files (past the batches' buffers), a hard link, a symbolic
    /// link, in more files than one batch holds.
    #[test]
    fn batched_and_ordinary_reading_agree() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        std::fs::create_dir(root.join("sub")).expect("dir");
        for i in 0..(3 * uring::BATCH + 5) {
            let dir = if i % 3 == 0 {
                root.join("sub")
            } else {
                root.to_owned()
            };
            let size = match i % 7 {
                0 => 0,
                1 => 100 * 1024,
                _ => 10 * i,
            };
            let bytes: Vec<u8> = (0..size).map(|b| b"abc\n"[b % 4]).collect();
            std::fs::write(dir.join(format!("f{i:03}.yaml")), bytes).expect("file");
        }
        std::fs::hard_link(root.join("f001.yaml"), root.join("g-hard.yaml")).expect("link");
        std::os::unix::fs::symlink("f002.yaml", root.join("g-soft.yaml")).expect("link");
        let read = |batches| {
            let mut found = Vec::new();
            let mut dirs = Vec::new();
            walk(
                root,
                &root.display().to_string(),
                &mut found,
                &mut dirs,
                MAX_OPEN_DIRS,
            )
            .expect("walk");
            read_found(found, &dirs, batches)
                .into_iter()
                .map(|r| {
                    let (shown, id, content) = r.expect("read");
                    (shown, id, text(&content).to_vec())
                })
                .collect::<Vec<_>>()
        };
        let ordinary = read(Batches::Ordinary);
        assert_eq!(ordinary.len(), 3 * uring::BATCH + 5 + 2);
        assert!(ordinary.iter().any(|(_, _, b)| b.len() == 100 * 1024));
        assert_eq!(read(Batches::Ring), ordinary);
        let id = |name: &str| {
            ordinary
                .iter()
                .find(|(s, ..)| s.ends_with(name))
                .map(|r| r.1)
        };
        assert_eq!(id("/g-hard.yaml"), id("/f001.yaml"));
        assert_eq!(id("/g-soft.yaml"), id("/f002.yaml"));
    }

    /// Files come in the order of their names' bytes, whether their first
    /// eight bytes decide or not.
    #[test]
    fn files_come_in_the_order_of_their_names() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut names = vec![
            "abcdefgh2.yaml",
            "abcdefgh10.yaml",
            "abc.yaml",
            "abcdefgh.yaml",
            "b.yaml",
            "ab.yml",
            "\u{e9}.yaml",
            "Z.yaml",
            "abcdefgh-.yaml",
            "a b.yaml",
        ];
        for n in &names {
            std::fs::write(tmp.path().join(n), "a: 1\n").expect("file");
        }
        let mut files = Files::default();
        files.read_path(tmp.path()).expect("read");
        let got: Vec<&str> = files
            .read
            .iter()
            .map(|(s, _)| s.rsplit('/').next().unwrap_or_default())
            .collect();
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(got, names);
    }

    /// The names the walk reads are those whose extension, as a path's, is
    /// `yaml` or `yml`.
    #[test]
    fn yaml_names_are_those_of_the_paths_extension() {
        for name in [
            "a.yaml",
            "a.yml",
            ".yaml",
            ".yml",
            "yaml",
            "a.yaml.bak",
            "a.YAML",
            "..yaml",
            "a.",
            "a.xyml",
            "a.ayaml",
        ] {
            let by_path = matches!(
                Path::new(name).extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            );
            assert_eq!(is_yaml_name(name.as_bytes()), by_path, "{name}");
        }
    }

    /// A name shown as given, whether the directory was named with a
    /// trailing slash or not, and a link to a file read once.
    #[test]
    fn names_are_shown_as_joined_and_a_link_is_read_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("b.yaml"), "b: 1\n").expect("file");
        std::os::unix::fs::symlink("b.yaml", tmp.path().join("c.yaml")).expect("link");
        let root = format!("{}/", tmp.path().display());
        let mut files = Files::default();
        files.read_path(Path::new(&root)).expect("read");
        let shown: Vec<&str> = files.read.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(shown, [format!("{root}b.yaml")]);
    }
}
