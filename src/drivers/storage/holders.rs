//! Which processes use a file system, as `fuser -m` finds them: by the
//! device number of what each process has open, has as its working or root
//! directory, runs, or has mapped.
//!
//! Comparing device numbers rather than paths is what makes this work
//! across mount namespaces: `/proc/<pid>/fd/<n>` is a link the kernel
//! resolves to the open file itself, so `stat` through it gives the file's
//! device even when its path means nothing in this namespace.
//!
//! [`openers`] finds the other kind of user: a process that has the block
//! device itself open (a file system check, `mkfs`, `dd`), which writes to
//! the disk without any mount.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// A process that uses the file system, and how (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: i32,
    pub how: &'static str,
}

/// `st_dev` of a file system whose device is `major:minor`, as the kernel
/// encodes it (glibc's `makedev`).
pub fn dev_number(major: u32, minor: u32) -> u64 {
    libc::makedev(major, minor)
}

/// Every process under `proc_root` (normally `/proc`) that uses the file
/// system with device number `dev`, except `skip` (the caller itself).
/// Processes that exit during the search, or that this process may not
/// inspect, are passed over: the caller retries until the unmount succeeds.
pub fn find(proc_root: &Path, dev: u64, skip: i32) -> Vec<Holder> {
    search(proc_root, dev, skip, Maps::Read)
}

/// [`find`] without the memory maps: the processes with a file of the file
/// system open or as working directory, root or executable. Those are
/// nearly always the whole answer, and a process's map is the one costly
/// read (the kernel writes out every mapping with its path: a search of
/// every map on a busy machine takes tens to hundreds of milliseconds of
/// CPU), so an unmount tries this first and reads the maps only when it
/// finds nobody.
pub fn find_without_maps(proc_root: &Path, dev: u64, skip: i32) -> Vec<Holder> {
    search(proc_root, dev, skip, Maps::Skip)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Maps {
    Read,
    Skip,
}

fn search(proc_root: &Path, dev: u64, skip: i32, maps: Maps) -> Vec<Holder> {
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut out: Vec<Holder> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != skip)
        .filter_map(|pid| {
            uses(&proc_root.join(pid.to_string()), dev, maps).map(|how| Holder { pid, how })
        })
        .collect();
    out.sort_by_key(|h| h.pid);
    out
}

/// Every process under `proc_root` that has the block device `rdev` (its
/// `st_rdev`, as [`dev_number`] encodes it) open, except the pids in
/// `skip`. Matched by device number, not by path, so a device node bound
/// elsewhere or seen from another mount namespace is found as well.
pub fn openers(proc_root: &Path, rdev: u64, skip: &[i32]) -> Vec<Holder> {
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let opens = |fd: &Path| {
        std::fs::metadata(fd).is_ok_and(|m| m.file_type().is_block_device() && m.rdev() == rdev)
    };
    let mut out: Vec<Holder> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| !skip.contains(pid))
        .filter(|pid| {
            task_dirs(&proc_root.join(pid.to_string())).iter().any(|d| {
                std::fs::read_dir(d.join("fd"))
                    .is_ok_and(|fds| fds.flatten().any(|fd| opens(&fd.path())))
            })
        })
        .map(|pid| Holder {
            pid,
            how: "the device open",
        })
        .collect();
    out.sort_by_key(|h| h.pid);
    out
}

/// The directories to search for what process `dir` (`/proc/<pid>`) uses:
/// its own, and — when its leader thread has exited (its working directory
/// can no longer be read) — each of its other threads' (`task/<tid>`).
/// A killed multithreaded process passes through that state: the leader is
/// a zombie with no files of its own while the other threads, still on
/// their way out, hold the process's open files, and with them the mount.
fn task_dirs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if std::fs::metadata(dir.join("cwd")).is_ok() {
        return out;
    }
    let leader = dir.file_name();
    if let Ok(tasks) = std::fs::read_dir(dir.join("task")) {
        out.extend(
            tasks
                .flatten()
                .filter(|t| Some(t.file_name().as_os_str()) != leader)
                .map(|t| t.path()),
        );
    }
    out
}

/// What each thread of process `pid` is doing, for the message of a mount
/// or device that could not be released: `TID STATE [WCHAN]` per thread
/// (`D` is uninterruptible sleep in the kernel, which no signal ends; `Z` a
/// thread that has exited; `R` one waiting for a CPU), or `gone`.
pub fn thread_states(proc_root: &Path, pid: i32) -> String {
    let task = proc_root.join(pid.to_string()).join("task");
    let Ok(dir) = std::fs::read_dir(&task) else {
        return "gone".into();
    };
    let mut tids: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    let states: Vec<String> = tids
        .iter()
        .map(|tid| {
            let t = task.join(tid.to_string());
            let stat = std::fs::read_to_string(t.join("stat")).unwrap_or_default();
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next())
                .unwrap_or("?");
            let wchan = std::fs::read_to_string(t.join("wchan")).unwrap_or_default();
            match wchan.trim() {
                "" | "0" => format!("{tid} {state}"),
                w => format!("{tid} {state} {w}"),
            }
        })
        .collect();
    if states.is_empty() {
        "gone".into()
    } else {
        format!("threads {}", states.join(", "))
    }
}

/// How the process at `dir` (`/proc/<pid>`) uses device `dev`, if it does:
/// through its leader thread, or through another thread once the leader
/// has exited ([`task_dirs`]).
fn uses(dir: &Path, dev: u64, maps: Maps) -> Option<&'static str> {
    task_dirs(dir)
        .iter()
        .find_map(|d| thread_uses(d, dev, maps))
}

/// How the thread at `dir` (`/proc/<pid>` or `/proc/<pid>/task/<tid>`)
/// uses device `dev`, if it does.
fn thread_uses(dir: &Path, dev: u64, maps: Maps) -> Option<&'static str> {
    let on_dev = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.dev() == dev);
    for (link, how) in [
        ("cwd", "working directory"),
        ("root", "root directory"),
        ("exe", "executable"),
    ] {
        if on_dev(&dir.join(link)) {
            return Some(how);
        }
    }
    if let Ok(fds) = std::fs::read_dir(dir.join("fd")) {
        if fds.flatten().any(|fd| on_dev(&fd.path())) {
            return Some("open file");
        }
    }
    if maps == Maps::Skip {
        return None;
    }
    let text = std::fs::read_to_string(dir.join("maps")).unwrap_or_default();
    maps_use(&text, dev).then_some("mapped file")
}

/// Whether a `/proc/<pid>/maps` text maps a file of device `dev`. The
/// device column is `major:minor` in hex.
pub fn maps_use(maps: &str, dev: u64) -> bool {
    // Most processes map nothing of the device: one substring search (the
    // kernel writes the column as `%02x:%02x`) rules them out without
    // parsing every line, which is most of a holder search's CPU — and the
    // lease guard searches at real-time priority, in a fence.
    let column = format!(" {:02x}:{:02x} ", libc::major(dev), libc::minor(dev));
    if !maps.contains(&column) {
        return false;
    }
    maps.lines().any(|line| {
        let mut f = line.split_ascii_whitespace();
        let dev_field = f.nth(3);
        let inode = f.next();
        let (Some(d), Some(inode)) = (dev_field, inode) else {
            return false;
        };
        if inode == "0" {
            return false; // anonymous memory, not a file
        }
        let Some((ma, mi)) = d.split_once(':') else {
            return false;
        };
        match (u32::from_str_radix(ma, 16), u32::from_str_radix(mi, 16)) {
            (Ok(ma), Ok(mi)) => dev_number(ma, mi) == dev,
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    #[test]
    fn maps_match_by_hex_device_and_skip_anonymous() {
        let maps = "\
55d0c0a00000-55d0c0a21000 r--p 00000000 fd:01 1311 /usr/bin/cat
7f00-7f01 rw-p 00000000 00:00 0 [heap]
7f02-7f03 r--p 00000000 07:28 12 /srv/db/lib.so
7f04-7f05 r--p 00000000 103:10a 5 /srv/nvme/lib.so
";
        assert!(maps_use(maps, dev_number(7, 40)));
        assert!(maps_use(maps, dev_number(0xfd, 1)));
        assert!(
            !maps_use(maps, dev_number(0, 0)),
            "anonymous memory is no use"
        );
        assert!(
            maps_use(maps, dev_number(0x103, 0x10a)),
            "numbers past two digits"
        );
        assert!(!maps_use(maps, dev_number(7, 41)));
        assert!(!maps_use(maps, dev_number(0x10, 0x3a)));
        assert!(!maps_use("garbage\n\n", dev_number(7, 40)));
    }

    /// A fake /proc in a temporary directory, built one task at a time: a
    /// process ("10") or a thread of one ("30/task/31").
    struct FakeProc(tempfile::TempDir);

    impl FakeProc {
        fn new() -> FakeProc {
            FakeProc(tempfile::tempdir().unwrap())
        }

        fn root(&self) -> &Path {
            self.0.path()
        }

        /// The directory of `task`, made with its `fd/` if it is new.
        fn task(&self, task: &str) -> PathBuf {
            let d = self.root().join(task);
            std::fs::create_dir_all(d.join("fd")).unwrap();
            d
        }

        /// `task` has `target` open as descriptor `fd`.
        fn fd(&self, task: &str, fd: u32, target: &Path) -> &Self {
            symlink(target, self.task(task).join("fd").join(fd.to_string())).unwrap();
            self
        }

        /// `task`'s `cwd`, `root` or `exe` is `target`.
        fn link(&self, task: &str, name: &str, target: &Path) -> &Self {
            symlink(target, self.task(task).join(name)).unwrap();
            self
        }

        fn maps(&self, task: &str, text: &str) -> &Self {
            std::fs::write(self.task(task).join("maps"), text).unwrap();
            self
        }
    }

    /// A block device node of this machine: the kernel's, since only it can
    /// make `metadata` say "block device". Without one (a container with a
    /// bare /dev) the callers' device checks cannot run, and say so.
    fn block_device() -> Option<(PathBuf, u64)> {
        let found = std::fs::read_dir("/dev").ok()?.flatten().find_map(|e| {
            let m = std::fs::metadata(e.path()).ok()?;
            m.file_type()
                .is_block_device()
                .then(|| (e.path(), m.rdev()))
        });
        if found.is_none() {
            eprintln!("no block device in /dev: the device openers are not checked");
        }
        found
    }

    /// A fake /proc whose processes have device nodes open: only a block
    /// device of the right number counts (a character device with the same
    /// number does not), and skipped pids are passed over.
    #[test]
    fn finds_the_openers_of_a_block_device() {
        let proc = FakeProc::new();
        let null = std::fs::metadata("/dev/null").unwrap().rdev();
        proc.fd("20", 0, Path::new("/dev/null"));
        assert!(openers(proc.root(), null, &[]).is_empty());
        if let Some((block, rdev)) = block_device() {
            proc.fd("21", 4, &block).fd("22", 5, &block);
            let found: Vec<i32> = openers(proc.root(), rdev, &[22])
                .iter()
                .map(|h| h.pid)
                .collect();
            assert_eq!(found, [21]);
            assert!(openers(proc.root(), rdev + 1, &[]).is_empty());
        }
    }

    /// A fake /proc: process 10 has a file of the target file system open,
    /// 11 has its working directory there, 12 maps a library from it, 13
    /// uses nothing of it (its links lead elsewhere), 14 is the caller. The
    /// "file system" is the temporary directory's, so its device number is
    /// the real one of a file the links point at.
    #[test]
    fn finds_holders_in_a_fake_proc_tree() {
        let data = tempfile::tempdir().unwrap();
        let file = data.path().join("table.db");
        std::fs::write(&file, b"x").unwrap();
        let dev = std::fs::metadata(&file).unwrap().dev();
        let (ma, mi) = (libc::major(dev), libc::minor(dev));
        let proc = FakeProc::new();
        // Readable and elsewhere: procfs is never the test file's system.
        let elsewhere = Path::new("/proc");
        proc.fd("10", 3, &file)
            .link("11", "cwd", data.path())
            .maps(
                "12",
                &format!("7f02-7f03 r--p 00000000 {ma:02x}:{mi:02x} 12 /x/lib.so\n"),
            )
            .link("13", "cwd", elsewhere)
            .link("13", "root", elsewhere)
            .fd("13", 1, Path::new("/dev/null"))
            .fd("14", 0, &file);
        std::fs::create_dir(proc.root().join("not-a-pid")).unwrap();

        let quick = find_without_maps(proc.root(), dev, 14);
        assert_eq!(
            quick.iter().map(|h| h.pid).collect::<Vec<_>>(),
            [10, 11],
            "without the maps, the mapping process is not searched"
        );
        let found = find(proc.root(), dev, 14);
        assert_eq!(
            found,
            [
                Holder {
                    pid: 10,
                    how: "open file"
                },
                Holder {
                    pid: 11,
                    how: "working directory"
                },
                Holder {
                    pid: 12,
                    how: "mapped file"
                },
            ]
        );
    }

    /// A fake /proc where process 30's leader has exited (its working
    /// directory unreadable, no files of its own) while its thread 31 still
    /// has a file of the file system open, as a killed multithreaded
    /// process has until its last thread is gone; process 40 is live, its
    /// leader using nothing and a thread holding a file (threads of a live
    /// leader share its files, so only the leader is searched).
    #[test]
    fn a_zombie_leader_is_found_through_its_threads() {
        let data = tempfile::tempdir().unwrap();
        let file = data.path().join("log");
        std::fs::write(&file, b"x").unwrap();
        let dev = std::fs::metadata(&file).unwrap().dev();
        let proc = FakeProc::new();
        proc.task("30/task/30");
        proc.link("30/task/31", "cwd", data.path())
            .fd("30/task/31", 4, &file)
            // Readable and elsewhere: procfs is never the test file's system.
            .link("40", "cwd", Path::new("/proc"))
            .fd("40/task/41", 4, &file);

        let found = find_without_maps(proc.root(), dev, 0);
        assert_eq!(
            found,
            [Holder {
                pid: 30,
                how: "working directory"
            }]
        );
        // The same for the device's openers: the block device itself held
        // by a thread of a process whose leader has exited.
        if let Some((block, rdev)) = block_device() {
            proc.fd("30/task/31", 5, &block);
            let found: Vec<i32> = openers(proc.root(), rdev, &[])
                .iter()
                .map(|h| h.pid)
                .collect();
            assert_eq!(found, [30]);
        }
    }
}
