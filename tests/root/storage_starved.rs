//! The lease guard's unmount on a starved node, where a killed holder's
//! threads are not all scheduled to exit. Root only.
//!
//! A SIGKILLed multithreaded process (the writer: a thread per connection;
//! the agent: a runtime of threads) holds its open files — and so the mount
//! — until its *last* thread has exited. Its leader often exits first and
//! then reads as a zombie with no files of its own, while the other threads
//! wait for a CPU that a starved node's cgroup does not give them. The
//! guard's fence must see that process as still using the file system
//! (through its threads' `/proc` entries) and make every one of its threads
//! exit at real-time priority, not only the leader.
//!
//! The starvation is made certain rather than likely: the writer runs in a
//! cgroup of its own (cgroup v1 `cpu`, `gu-starve-PID`) capped at 1 % of a
//! CPU and shared with busy loops, and its connection thread is moved to
//! `SCHED_IDLE`, the weakest claim on the CPU there is. Among the busy
//! loops it is not scheduled for the length of the test — the chaos
//! harness's starved node (`CHAOS_STARVE`), where the same thread waited
//! hundreds of milliseconds to seconds, made extreme.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::storage_support::{Lun, mounted, sh};
use asctl::drivers::storage::records::{self, Released};

/// How many busy loops share the writer's cgroup.
const LOOPS: usize = 12;

/// A cgroup v1 `cpu` group: 1 ms of CPU per 100 ms for its normal tasks,
/// 50 ms per second of real-time time (without any, none of its tasks may
/// be given a real-time policy). Its tasks are SIGKILLed and it is removed
/// on drop.
struct Starved {
    dir: PathBuf,
    children: Vec<Child>,
}

impl Starved {
    fn new() -> Starved {
        let dir = PathBuf::from(format!(
            "/sys/fs/cgroup/cpu/gu-starve-{}",
            std::process::id()
        ));
        std::fs::create_dir(&dir).expect("cgroup v1 cpu controller at /sys/fs/cgroup/cpu");
        let s = Starved {
            dir,
            children: Vec::new(),
        };
        s.set("cpu.cfs_period_us", "100000");
        s.set("cpu.cfs_quota_us", "1000");
        s.set("cpu.rt_runtime_us", "50000");
        s
    }

    fn set(&self, file: &str, value: &str) {
        std::fs::write(self.dir.join(file), value)
            .unwrap_or_else(|e| panic!("{}/{file} = {value}: {e}", self.dir.display()));
    }

    /// Runs `cmd` inside the cgroup from its first instruction (a shell
    /// that moves itself in, then `exec`s it).
    fn spawn(&mut self, cmd: &[&str]) -> u32 {
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec \"$@\"",
            self.dir.display()
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }
}

impl Drop for Starved {
    fn drop(&mut self) {
        // Uncapped first, so that what is killed (a test that failed left
        // its starved thread behind) exits at once.
        let _ = std::fs::write(self.dir.join("cpu.cfs_quota_us"), "-1");
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // The tasks' exit is asynchronous; the directory goes once empty.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn threads(pid: u32) -> Vec<i32> {
    asctl::drivers::process::threads(pid as i32)
}

/// Sends one record on `conn` and waits for the writer's `ack`.
fn send(conn: &mut std::net::TcpStream, record: &str) -> String {
    writeln!(conn, "{record}").unwrap();
    let mut line = String::new();
    BufReader::new(conn.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn connect(port: u16) -> std::net::TcpStream {
    let t = Instant::now();
    loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(e) if t.elapsed() > Duration::from_secs(10) => panic!("writer on {port}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[test]
#[ignore = "needs root: run with --include-ignored"]
fn the_fence_unmounts_past_a_killed_writer_whose_starved_thread_still_holds_the_log() {
    let lun = Lun::new("ext4");
    let lo = lun.attach();
    let mnt = lun.dir("gu-mnt");
    std::fs::create_dir(&mnt).unwrap();
    sh(
        "mount",
        &[
            "-t",
            "ext4",
            "-o",
            "noatime",
            lo.dev.to_str().unwrap(),
            mnt.to_str().unwrap(),
        ],
    );
    let rdev = std::fs::metadata(&lo.dev).unwrap().rdev();
    let dev = (libc::major(rdev), libc::minor(rdev));
    let data = tempfile::Builder::new()
        .prefix("gu-data")
        .tempdir()
        .unwrap();
    records::write(data.path(), "db", "db-data", dev, &mnt).unwrap();
    let on_record = records::recorded(data.path());
    assert_eq!(on_record.len(), 1);

    let mut cg = Starved::new();
    let port = free_port();
    let writer = cg.spawn(&[
        env!("CARGO_BIN_EXE_asctl"),
        "demo-writer",
        "--dir",
        mnt.to_str().unwrap(),
        "--port",
        &port.to_string(),
    ]);
    // A client stays connected: its thread in the writer has the log open
    // (open files belong to the process, so any live thread keeps them).
    let mut conn = connect(port);
    let ack = send(&mut conn, "first");
    assert!(ack.starts_with("ack "), "the writer answers: {ack:?}");
    let tids = threads(writer);
    let others: Vec<i32> = tids
        .iter()
        .copied()
        .filter(|&t| t != writer as i32)
        .collect();
    assert!(
        !others.is_empty(),
        "the writer runs a thread per connection: {tids:?}"
    );
    for &tid in &others {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: a system call on a thread of a process this test started.
        let rc = unsafe { libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) };
        assert_eq!(rc, 0, "SCHED_IDLE for thread {tid}");
    }
    for _ in 0..LOOPS {
        cg.spawn(&["sh", "-c", "while :; do :; done"]);
    }

    let t = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let released = rt.block_on(records::release_fenced(on_record));
    let took = t.elapsed();
    eprintln!("fence release in {} ms: {released:?}", took.as_millis());
    assert!(
        matches!(released.as_slice(), [Released::Unmounted(p)] if *p == mnt),
        "the fence must unmount past the killed writer's starved thread: {released:?}"
    );
    assert!(!mounted(&mnt), "{} still mounted", mnt.display());
    assert!(
        !asctl::drivers::process::alive(writer as i32),
        "every thread of the writer has exited: {}",
        asctl::drivers::storage::holders::thread_states(Path::new("/proc"), writer as i32)
    );
    assert!(
        records::recorded(data.path()).is_empty(),
        "the record goes with the mount"
    );
    drop(conn);
    drop(cg);
    drop(lo);
    drop(lun);
}
