//! The `db` group: data that must survive every fault, checked from outside
//! the nodes.
//!
//! One backing file formatted ext4 is the SAN LUN. Every node gets its own
//! loop device over it (direct I/O, so no page cache hides the other
//! nodes' writes): distinct block devices have distinct superblocks, so a
//! double mount is the real hazard it is with two hosts on one LUN (one
//! loop device shared by two nodes would hide it — the kernel reuses the
//! superblock of a block device already mounted). Every node also gets its
//! own mount namespace, made once per boot by a process that lives as long
//! as the node ([`boot`]): its loop device is bound on the same
//! `device.path` there, its agent, guard and group processes enter it, and
//! a crash (every process of the node killed) takes the namespace and its
//! mounts with it — the lab's stand-in for a power fence, not one.
//!
//! Group `db` = shared disk + mount point + `asctl demo-writer` + the
//! managed address [`DB_VIP`]. The observer checks that the file system is
//! mounted in at most one node's mount namespace (on every change of a
//! node's mount table: `mount_watch`), that every write the
//! client saw acknowledged is in the log after each round, and, at the
//! end, that `e2fsck -fn` finds the file system clean.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::netns_support::Netns;
use super::{run, text};

/// The managed address of group `db` (on line d1).
pub const DB_VIP: &str = "10.210.1.101";
/// The writer's port.
pub const DB_PORT: u16 = 5433;
/// The LUN's size: ext4, sparse.
const LUN_SIZE: u64 = 64 << 20;
/// How long a `StopWriter` fault may take to heal: the probe's failure,
/// the stop (SIGTERM, SIGKILL after the 2 s stop timeout), the unmount and
/// the start again, on a loaded machine.
const STOP_WRITER_LIMIT: Duration = Duration::from_secs(30);

/// The LUN and every node's own loop device over it; the loop devices are
/// detached on drop (after the nodes' processes, and so their mounts, are
/// gone: [`super::Lab`] kills them first).
pub struct Lun {
    /// The backing file.
    pub file: PathBuf,
    /// `device.path`: in every node's mount namespace, that node's loop
    /// device is bound here (an empty file outside them).
    pub device: PathBuf,
    /// The mount point's `path`.
    pub mount: PathBuf,
    /// Node index → its loop device.
    loops: Vec<PathBuf>,
    /// The loop devices as mountinfo's `MAJOR:MINOR`.
    pub devnums: Arc<Vec<String>>,
}

impl Lun {
    pub fn new(dir: &Path, nodes: usize) -> Lun {
        let file = dir.join("lun.img");
        std::fs::File::create(&file)
            .and_then(|f| f.set_len(LUN_SIZE))
            .expect("LUN file");
        let o = run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&file));
        assert!(o.status.success(), "mkfs.ext4: {}", text(&o));
        let device = dir.join("dev/db-lun");
        std::fs::create_dir_all(dir.join("dev")).expect("mkdir dev");
        std::fs::File::create(&device).expect("bind target");
        let mut lun = Lun {
            file,
            device,
            mount: dir.join("srv/db"),
            loops: Vec::new(),
            devnums: Arc::new(Vec::new()),
        };
        let mut devnums = Vec::new();
        for _ in 0..nodes {
            let o = run(Command::new("losetup")
                .args(["--direct-io=on", "--find", "--show"])
                .arg(&lun.file));
            assert!(o.status.success(), "losetup: {}", text(&o));
            let dev = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            let rdev = std::fs::metadata(&dev).expect("loop device").rdev();
            devnums.push(format!("{}:{}", libc::major(rdev), libc::minor(rdev)));
            lun.loops.push(dev);
        }
        lun.devnums = Arc::new(devnums);
        lun
    }

    /// `e2fsck -fn` of the backing file, once no node has it mounted: `Err`
    /// with its report unless the file system is clean.
    pub fn fsck(&self) -> Result<(), String> {
        self.wait_unmounted(Duration::from_secs(10))?;
        let o = run(Command::new("e2fsck").args(["-f", "-n"]).arg(&self.file));
        if o.status.success() {
            Ok(())
        } else {
            Err(format!(
                "e2fsck -fn found the file system not clean ({}):\n{}",
                o.status,
                text(&o)
            ))
        }
    }
}

impl Lun {
    /// Waits until no loop device of the LUN is mounted anywhere. A mount
    /// namespace dies with its last process, but the kernel unmounts its
    /// file systems (journal commit, clean flag) only afterwards, on its
    /// own time: a check run before that sees a journal still to replay.
    /// A mounted block device refuses an exclusive open (EBUSY).
    fn wait_unmounted(&self, limit: Duration) -> Result<(), String> {
        use std::os::unix::fs::OpenOptionsExt;
        let start = Instant::now();
        loop {
            let busy: Vec<&PathBuf> = self
                .loops
                .iter()
                .filter(|dev| {
                    std::fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_EXCL)
                        .open(dev)
                        .is_err()
                })
                .collect();
            if busy.is_empty() {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "still mounted (or held) {limit:?} after every node's processes were killed: {busy:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The superblock's mount count (ext4 adds one at every mount).
    pub fn mount_count(&self) -> Result<u64, String> {
        let o = run(Command::new("dumpe2fs").arg("-h").arg(&self.file));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("Mount count:"))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| format!("dumpe2fs -h gave no mount count: {}", text(&o)))
    }
}

impl Drop for Lun {
    fn drop(&mut self) {
        for dev in &self.loops {
            let _ = Command::new("losetup").arg("-d").arg(dev).status();
        }
    }
}

/// The YAML of group `db` and its data sources, preferring the nodes in
/// `preferred` order.
pub fn config(lun: &Lun, preferred: &[&str]) -> String {
    // The probe writes a record, as a database's health check would: a
    // writer frozen with SIGSTOP still has the kernel accept connections,
    // so only an answer tells it is alive.
    let probe = format!(
        "exec 3<>/dev/tcp/{DB_VIP}/{DB_PORT} && echo probe >&3 && read -r a <&3 && [ \"${{a%% *}}\" = ack ]"
    );
    format!(
        "---\napiVersion: asctl/v1\nkind: DataSource\nmetadata: {{name: db-disk}}\nspec:\n  \
         type: sharedDisk\n  device: {{backing: rdm-physical, path: {dev}}}\n  \
         monitor: {{interval: 1s, timeout: 2s}}\n\
         ---\napiVersion: asctl/v1\nkind: DataSource\nmetadata: {{name: db-data}}\nspec:\n  \
         type: mountPoint\n  on: db-disk\n  path: {mnt}\n  fsType: ext4\n  options: noatime\n  \
         stopTimeout: 2s\n  monitor: {{interval: 1s, timeout: 2s}}\n\
         ---\napiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {{name: db}}\nspec:\n  \
         preferredNodes: [{preferred}]\n  dataSources: [db-disk, db-data]\n  \
         ipAddresses: [{{address: {DB_VIP}/24, line: d1}}]\n  processes:\n    \
         - name: writer\n      command: [asctl, demo-writer, --dir, {mnt}, --bind, \"{DB_VIP}\", --port, \"{DB_PORT}\"]\n      \
         stopTimeout: 2s\n      monitor: {{interval: 500ms, timeout: 1s, probe: {{exec: [bash, -c, {probe:?}]}}}}\n",
        dev = lun.device.display(),
        mnt = lun.mount.display(),
        preferred = preferred.join(", "),
    )
}

/// Boots node `idx`'s mount namespace inside its network namespace `ns`: a
/// process (`sleep`, exec'd by `unshare`, so its pid is the child's) in a
/// mount namespace of its own, the node's loop device bound on
/// `device.path`. Its mounts are slaves of the host's: what the node mounts
/// stays its own, while the harness's unmount and mount of a node's data
/// file system (`storage.rs`, a shared mount) still reach it. Returns once
/// the bind is there.
pub fn boot(ns: &str, lun: &Lun, idx: usize) -> Child {
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "unshare", "--mount", "--propagation"])
        .args(["slave", "sh", "-c"])
        .arg("mount --bind \"$1\" \"$2\" && exec sleep infinity")
        .arg("sh")
        .arg(&lun.loops[idx])
        .arg(&lun.device)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("boot the node's mount namespace");
    let pid = child.id() as i32;
    let t0 = Instant::now();
    while !mountinfo(pid)
        .lines()
        .any(|l| l.split(' ').nth(4) == lun.device.to_str())
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{ns}: the loop device was not bound on {} in its mount namespace",
            lun.device.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

/// `nsenter` arguments that put a command into the node whose mount
/// namespace `init` holds (its network namespace too).
pub fn enter(init: &Child) -> Command {
    let mut c = Command::new("nsenter");
    c.arg("-t").arg(init.id().to_string()).args(["-m", "-n"]);
    // Entering a mount namespace moves the working directory to its root.
    if let Ok(cwd) = std::env::current_dir() {
        c.arg(format!("--wd={}", cwd.display()));
    }
    c.arg("--");
    c
}

fn mountinfo(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default()
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).into_owned())
        .unwrap_or_default()
}

/// Whether `pid` is a writer of group `db`.
pub fn is_writer(pid: i32) -> bool {
    cmdline(pid).contains("demo-writer")
}

/// Where one node has the LUN mounted: the pid it was seen through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounted {
    pub pid: i32,
}

/// Whether any of `pids` (one node's processes) sees one of the LUN's loop
/// devices mounted; each mount namespace is read once.
pub fn mounted_among(pids: &[i32], devnums: &[String]) -> Option<Mounted> {
    let mut namespaces = HashSet::new();
    for &pid in pids {
        let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/mnt")) else {
            continue;
        };
        if !namespaces.insert(ns) {
            continue;
        }
        for line in mountinfo(pid).lines() {
            let f: Vec<&str> = line.splitn(4, ' ').collect();
            if f.len() == 4 && devnums.iter().any(|d| d == f[2]) {
                return Some(Mounted { pid });
            }
        }
    }
    None
}

/// The processes of network namespace `ns`.
pub fn pids_of(ns: &str) -> Vec<i32> {
    let o = run(Command::new("ip").args(["netns", "pids", ns]));
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Each node (name, namespace) that has the LUN mounted.
pub fn mounts(nodes: &[(String, String)], devnums: &[String]) -> Vec<(String, Mounted)> {
    nodes
        .iter()
        .filter_map(|(name, ns)| Some((name.clone(), mounted_among(&pids_of(ns), devnums)?)))
        .collect()
}

/// Each attempt of the client: when it began, when it ended, and the
/// sequence number acknowledged.
type Attempts = Arc<Mutex<Vec<(Instant, Instant, Option<u64>)>>>;

/// The `db` client: from the client's namespace, one record every 50 ms on
/// a connection of its own, keeping every acknowledgement.
pub struct Client {
    stop: Arc<AtomicBool>,
    answers: Attempts,
    /// Every acknowledged record: (sequence number, payload).
    acked: Arc<Mutex<Vec<(u64, String)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Client {
    pub fn start(client_ns: &str) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let ns = client_ns.to_owned();
        let thread = {
            let (stop, answers, acked) = (stop.clone(), answers.clone(), acked.clone());
            std::thread::spawn(move || {
                let ns = Netns { name: ns };
                ns.enter();
                // The namespace belongs to the lab, which deletes it.
                std::mem::forget(ns);
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    k += 1;
                    let payload = format!("c{k}");
                    let began = Instant::now();
                    let seq = write_one(&payload);
                    answers
                        .lock()
                        .expect("answers")
                        .push((began, Instant::now(), seq));
                    if let Some(seq) = seq {
                        acked.lock().expect("acked").push((seq, payload));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        Client {
            stop,
            answers,
            acked,
            thread: Some(thread),
        }
    }

    /// When the first request sent after `t` was acknowledged. A request
    /// sent before `t` does not count even if its answer is read after:
    /// the writer may have answered it just before a crash at `t` (seen
    /// once in 50 crashes, as a 0.01 s "failover" on a loaded machine).
    pub fn answered_after(&self, t: Instant) -> Option<Instant> {
        self.answers
            .lock()
            .expect("answers")
            .iter()
            .find(|(began, _, seq)| *began > t && seq.is_some())
            .map(|(_, ended, _)| *ended)
    }

    pub fn acked(&self) -> Vec<(u64, String)> {
        self.acked.lock().expect("acked").clone()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One record: `Some(seq)` once the writer acknowledged it (after its
/// fsync).
fn write_one(payload: &str) -> Option<u64> {
    let addr: SocketAddr = format!("{DB_VIP}:{DB_PORT}").parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    writeln!(s, "{payload}").ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.trim().strip_prefix("ack ")?.parse().ok()
}

/// Every acknowledged record (taken before the log is read, so each was
/// fsynced before) is in the log with its sequence number, read through
/// the one node that has the file system mounted. `Ok` is the number
/// checked.
pub fn check_acked(
    nodes: &[(String, String)],
    lun: &Lun,
    client: &Client,
) -> Result<usize, String> {
    let acked = client.acked();
    let m = mounts(nodes, &lun.devnums);
    let [(node, at)] = m.as_slice() else {
        return Err(format!(
            "db's file system should be mounted on exactly one node to check the log, it is on {:?}",
            m.iter().map(|(n, _)| n).collect::<Vec<_>>()
        ));
    };
    let path = format!("/proc/{}/root{}/records.log", at.pid, lun.mount.display());
    let log = std::fs::read_to_string(&path).map_err(|e| format!("{node}: {path}: {e}"))?;
    let records: BTreeMap<u64, &str> = log
        .lines()
        .filter_map(|l| {
            let (seq, payload) = l.split_once(' ')?;
            Some((seq.parse().ok()?, payload))
        })
        .collect();
    let lost: Vec<&(u64, String)> = acked
        .iter()
        .filter(|(seq, payload)| records.get(seq) != Some(&payload.as_str()))
        .collect();
    if !lost.is_empty() {
        return Err(format!(
            "lost acknowledged writes: {} of {} are not in the log read on {node} (first: {:?}, \
             the log has {:?} there)",
            lost.len(),
            acked.len(),
            lost[0],
            records.get(&lost[0].0)
        ));
    }
    Ok(acked.len())
}

/// `StopWriter` on `ns` (node `name`): SIGSTOP of the writer, a hung
/// application holding the mount. The agent's probe must fail, its stop
/// kill the writer and unmount, and the group come back (here or on
/// another node) on a new mount. The time until the writer answers again.
pub fn stop_writer(
    nodes: &[(String, String)],
    victim: &(String, String),
    lun: &Lun,
    client: &Client,
) -> Result<Duration, String> {
    let (name, ns) = victim;
    let writer = pids_of(ns)
        .into_iter()
        .find(|p| is_writer(*p))
        .ok_or_else(|| format!("{name} runs no writer to stop"))?;
    let before = lun.mount_count()?;
    // SAFETY: kill(2) on a pid just listed.
    unsafe { libc::kill(writer, libc::SIGSTOP) };
    let t0 = Instant::now();
    // An acknowledgement sent just before the signal may be read after it:
    // only one after the writer's death counts.
    let mut dead_at = None;
    let answered = loop {
        if dead_at.is_none() && !alive(writer) {
            dead_at = Some(Instant::now());
        }
        if let Some(at) = dead_at.and_then(|d| client.answered_after(d)) {
            break at;
        }
        if t0.elapsed() > STOP_WRITER_LIMIT {
            // SAFETY: as above; the harness must not leave it stopped.
            unsafe { libc::kill(writer, libc::SIGCONT) };
            return Err(format!(
                "{name}'s writer (pid {writer}) stopped with SIGSTOP: {}",
                if alive(writer) {
                    format!("still there {STOP_WRITER_LIMIT:?} later (the stop did not kill it)")
                } else {
                    format!("killed, but db did not answer again within {STOP_WRITER_LIMIT:?}")
                }
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Mount ids are reused, so the proof of a new mount is the superblock's
    // mount count: a block device mounted twice in one kernel shares one
    // superblock, counted once, so a new count means the old mount went.
    let after = lun.mount_count()?;
    if after == before {
        return Err(format!(
            "{name}'s writer answered again on a file system mounted {after} times, as before \
             the fault: the stop did not unmount ({:?})",
            mounts(nodes, &lun.devnums)
        ));
    }
    Ok(answered - t0)
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| t.rsplit_once(')').map(|(_, r)| r.trim().to_string()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

/// A clean switchover: `asctl move db NODE` to the next node of `nodes`
/// that does not hold it, through `asctl` (`move_db(node)`); the time from
/// the command to the writer answering on the target. `Err` says why not.
pub fn switchover(
    nodes: &[(String, String)],
    lun: &Lun,
    client: &Client,
    move_db: impl Fn(&str) -> Result<(), String>,
) -> Result<(String, Duration), String> {
    let holder = mounts(nodes, &lun.devnums)
        .first()
        .map(|(n, _)| n.clone())
        .ok_or("db is mounted nowhere before the switchover")?;
    let pos = nodes.iter().position(|(n, _)| *n == holder).unwrap_or(0);
    let target = nodes[(pos + 1) % nodes.len()].0.clone();
    let t0 = Instant::now();
    move_db(&target)?;
    // The writer starts after the mount: an answer after the mount is seen
    // on the target comes from the target.
    let mut mounted_at = None;
    loop {
        if mounted_at.is_none()
            && mounts(nodes, &lun.devnums)
                .iter()
                .any(|(n, _)| *n == target)
        {
            mounted_at = Some(Instant::now());
        }
        if let Some(at) = mounted_at.and_then(|m| client.answered_after(m)) {
            return Ok((target, at - t0));
        }
        if t0.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "db did not answer from {target} within 30 s of `asctl move db {target}`"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
