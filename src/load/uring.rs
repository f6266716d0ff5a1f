//! Many small files read with one system call per batch (`io_uring`).
//!
//! A tree of one document per file is tens of thousands of files of a few
//! hundred bytes, and their cost is the kernel's: an `openat`, an `fstat`,
//! a `read` and a `close` each. Here a batch of files goes to the kernel
//! in two submissions: first every file opened into a slot of the ring's
//! own file table (no descriptor in the process's table), then every file
//! read into its slot's buffer and closed, the close chained to the read.
//! A batch of 128 files costs two system calls instead of 512, and
//! no descriptor is installed or removed.
//!
//! The reads go in a submission of their own so that they reach the disk
//! together: files written one after the other (as a checkout or a
//! generator writes them) lie in consecutive blocks, and the kernel merges
//! their reads into a few large requests when they are not cached. With
//! each read chained to its own open, every read went to the disk alone: on
//! a tree of 50,001 files whose contents had left the page cache, 50,365
//! read requests against 1,312 now, and 0.87 s against 0.46 s.
//!
//! Only what this path can be sure of is taken from it: a file whose read
//! came back shorter than the buffer, which is then the whole of a regular
//! file. Anything else — a failed open (its error is reported by the
//! ordinary path, word for word), a file as long as the buffer or longer,
//! a kernel without `io_uring` (or a sandbox that forbids it) — is
//! [`Outcome::Retry`] and goes the ordinary way.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use io_uring::{IoUring, opcode, squeue, types};

/// Files per batch: the work is spread over the reading threads in pieces
/// this size. Larger batches merge more reads of uncached files (0.85× the
/// time of 32 on a cold tree) and cost nothing on a cached one.
pub(super) const BATCH: usize = 128;

/// Each slot's buffer. Configuration files are a few kilobytes; a file of
/// this size or more is read by the ordinary path (after this path has
/// read its first part: a tree of large files costs each ring up to
/// `BATCH` × this much resident memory, 2 MiB). The pages of a
/// buffer the kernel never writes to are never made resident.
const BUFFER_BYTES: usize = 16 * 1024;

/// How long a batch may take before it is given up (and its files read
/// the ordinary way). A file found as a regular file by the directory
/// listing and swapped for a FIFO with a silent writer before it is opened
/// would otherwise hold the read for ever: the ring retries a read that
/// would block, even on a non-blocking file.
const BATCH_TIMEOUT: Duration = if cfg!(test) {
    Duration::from_secs(1)
} else {
    Duration::from_secs(10)
};

/// One file to read: its directory and its name there (without the
/// terminating NUL).
pub(super) struct Request<'a> {
    pub dir: BorrowedFd<'a>,
    pub name: &'a [u8],
}

#[derive(Debug)]
pub(super) enum Outcome {
    /// The whole file.
    Read(Vec<u8>),
    /// Not read here: the ordinary path reads it, or says what is wrong.
    Retry,
}

thread_local! {
    /// The ring of this reading thread: `None` until first used, then
    /// `Some(None)` where `io_uring` cannot be had.
    static RING: RefCell<Option<Option<Ring>>> = const { RefCell::new(None) };
}

/// Reads up to [`BATCH`] files, an outcome for each request in order; `None`
/// when this thread cannot use `io_uring` (every file then goes the
/// ordinary way).
pub(super) fn read_small(requests: &[Request<'_>]) -> Option<Vec<Outcome>> {
    debug_assert!(requests.len() <= BATCH);
    RING.with(|cell| {
        let mut cell = cell.borrow_mut();
        let ring = cell.get_or_insert_with(Ring::new).as_mut()?;
        let outcomes = ring.read(requests);
        if outcomes.is_none() {
            // The kernel may still write into this ring's buffers: they are
            // kept (leaked) with it, and this thread reads the ordinary way
            // from now on.
            if let Some(ring) = cell.take().flatten() {
                std::mem::forget(ring);
            }
            *cell = Some(None);
        }
        outcomes
    })
}

struct Ring {
    ring: IoUring,
    /// [`BATCH`] buffers of [`BUFFER_BYTES`], one per slot.
    buffers: Vec<u8>,
    /// The batch's names, each ending in NUL, where the kernel reads them.
    names: Vec<u8>,
}

/// What a completion is the completion of (in its `user_data`).
const OPEN: u64 = 0;
const READ: u64 = 1;
const CLOSE: u64 = 2;

impl Ring {
    fn new() -> Option<Ring> {
        // At most a read and a close per file are queued at once.
        let ring = IoUring::new((2 * BATCH) as u32).ok()?;
        // Opening into the ring's own table (5.15) into sparse slots (5.19)
        // and the wait with a timeout (5.11): an older kernel goes the
        // ordinary way.
        if !ring.params().is_feature_ext_arg() {
            return None;
        }
        ring.submitter().register_files_sparse(BATCH as u32).ok()?;
        Some(Ring {
            ring,
            buffers: vec![0; BATCH * BUFFER_BYTES],
            names: Vec::with_capacity(BATCH * 64),
        })
    }

    /// `None` when the ring failed as a whole: the batch is then read the
    /// ordinary way, and this ring must not be used (or freed) again.
    fn read(&mut self, requests: &[Request<'_>]) -> Option<Vec<Outcome>> {
        let n = requests.len();
        self.names.clear();
        let mut starts = Vec::with_capacity(n);
        for r in requests {
            starts.push(self.names.len());
            self.names.extend_from_slice(r.name);
            self.names.push(0);
        }
        // What each file's open and read returned.
        let mut results = vec![[i32::MIN; 2]; n];
        // First every open, then every read (see the module's comment).
        {
            let mut sq = self.ring.submission();
            for (i, (r, &start)) in requests.iter().zip(&starts).enumerate() {
                let open = opcode::OpenAt::new(
                    types::Fd(r.dir.as_raw_fd()),
                    self.names[start..].as_ptr().cast(),
                )
                .flags(libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY)
                .file_index(Some(
                    types::DestinationSlot::try_from_slot_target(i as u32).ok()?,
                ))
                .build()
                .user_data(((i as u64) << 2) | OPEN);
                // SAFETY: the names the entries point into belong to this
                // ring and are neither moved nor touched until every entry
                // has completed; when that cannot be known, the ring and
                // its memory are leaked, never freed.
                unsafe { sq.push(&open).ok()? };
            }
        }
        self.complete(n, &mut results)?;
        let mut reads = 0;
        {
            let mut sq = self.ring.submission();
            for i in (0..n).filter(|&i| results[i][OPEN as usize] >= 0) {
                let slot = i as u32;
                let tag = (i as u64) << 2;
                let buffer = self.buffers[i * BUFFER_BYTES..].as_mut_ptr();
                let read = opcode::Read::new(types::Fixed(slot), buffer, BUFFER_BYTES as u32)
                    .build()
                    // A short read (every file read whole) would break a
                    // plain link: the slot is closed whatever the read did.
                    .flags(squeue::Flags::IO_HARDLINK)
                    .user_data(tag | READ);
                let close = opcode::Close::new(types::Fixed(slot))
                    .build()
                    .user_data(tag | CLOSE);
                // SAFETY: as for the opens, with the buffers.
                unsafe { sq.push_multiple(&[read, close]).ok()? };
                reads += 1;
            }
        }
        self.complete(2 * reads, &mut results)?;
        Some(
            results
                .iter()
                .enumerate()
                .map(|(i, &[open, read])| match usize::try_from(read) {
                    Ok(len) if open >= 0 && len < BUFFER_BYTES => {
                        let start = i * BUFFER_BYTES;
                        Outcome::Read(self.buffers[start..start + len].to_vec())
                    }
                    _ => Outcome::Retry,
                })
                .collect(),
        )
    }

    /// Submits what is queued and waits for `pending` completions, noting
    /// each open's and read's result; `None` when the ring failed or timed
    /// out (entries may still be running).
    fn complete(&mut self, mut pending: usize, results: &mut [[i32; 2]]) -> Option<()> {
        let timeout = types::Timespec::from(BATCH_TIMEOUT);
        let args = types::SubmitArgs::new().timespec(&timeout);
        while pending > 0 {
            match self.ring.submitter().submit_with_args(pending, &args) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(_) => return None,
            }
            for cqe in self.ring.completion() {
                pending -= 1;
                let (i, what) = ((cqe.user_data() >> 2) as usize, cqe.user_data() & 3);
                if what != CLOSE {
                    results[i][what as usize] = cqe.result();
                }
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// A FIFO with a writer that never writes (a regular file swapped for
    /// one between the listing and the open) does not hold the read: the
    /// batch gives up, and every file of it goes the ordinary way.
    #[test]
    fn a_silent_fifo_does_not_hold_the_batch() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fifo = tmp.path().join("swapped.yaml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        std::fs::write(tmp.path().join("small.yaml"), "a: 1\n").expect("write");
        // Read and write ends held by the test: the FIFO has a writer.
        let _writer = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .expect("open fifo");
        let dir = std::fs::File::open(tmp.path()).expect("open dir");
        // Run where a ring given up cannot affect other tests: a thread of
        // its own, waited for a bounded time, so that a batch that never
        // gives up fails this test instead of hanging it.
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let requests = [
                Request {
                    dir: dir.as_fd(),
                    name: b"small.yaml",
                },
                Request {
                    dir: dir.as_fd(),
                    name: b"swapped.yaml",
                },
            ];
            let _ = done.send(read_small(&requests));
        });
        let outcomes = outcome
            .recv_timeout(3 * BATCH_TIMEOUT)
            .expect("the batch gives up on the silent FIFO within its timeout");
        // Either the ring said at once that the read would block, or the
        // batch timed out (`None`: all of it goes the ordinary way).
        if let Some(outcomes) = outcomes {
            assert!(matches!(outcomes[0], Outcome::Read(_)), "{outcomes:?}");
            assert!(matches!(outcomes[1], Outcome::Retry), "{outcomes:?}");
        }
    }

    /// Small files come back whole; a file as long as a buffer or longer,
    /// a missing file and a directory are left to the ordinary path — and
    /// the ring goes on serving the next batch.
    #[test]
    fn small_files_are_read_whole_and_the_rest_is_left_to_the_ordinary_path() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let sizes = [0, 1, 300, BUFFER_BYTES - 1, BUFFER_BYTES, BUFFER_BYTES + 1];
        for (i, size) in sizes.iter().enumerate() {
            let bytes: Vec<u8> = (0..*size).map(|b| (b % 251) as u8).collect();
            std::fs::write(tmp.path().join(format!("f{i}")), bytes).expect("write");
        }
        std::fs::create_dir(tmp.path().join("sub")).expect("dir");
        let dir = std::fs::File::open(tmp.path()).expect("open dir");
        let mut names: Vec<String> = (0..sizes.len()).map(|i| format!("f{i}")).collect();
        names.push("missing".into());
        names.push("sub".into());
        for _ in 0..3 {
            let requests: Vec<Request> = names
                .iter()
                .map(|n| Request {
                    dir: dir.as_fd(),
                    name: n.as_bytes(),
                })
                .collect();
            let outcomes = read_small(&requests).expect("io_uring on this machine");
            assert_eq!(outcomes.len(), names.len());
            for (i, size) in sizes.iter().enumerate() {
                match &outcomes[i] {
                    Outcome::Read(bytes) if *size < BUFFER_BYTES => {
                        let expected: Vec<u8> = (0..*size).map(|b| (b % 251) as u8).collect();
                        assert_eq!(bytes, &expected, "file {i}");
                    }
                    Outcome::Retry if *size >= BUFFER_BYTES => {}
                    other => panic!("file {i} of {size} bytes: {other:?}"),
                }
            }
            assert!(matches!(outcomes[sizes.len()], Outcome::Retry), "missing");
            assert!(matches!(outcomes[sizes.len() + 1], Outcome::Retry), "dir");
        }
    }
}
