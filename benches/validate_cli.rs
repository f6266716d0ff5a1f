//! The command a user runs, end to end: `asctl validate DIR` on generated
//! trees, in three layouts (one document per file; 1,000 per file; one per
//! file in domains of 1,000, each in a directory of its own), printing
//! the median wall time and CPU time (user + system) of 11 runs, the
//! slowest run's wall time (the target is for every run, not only the
//! middle one), the peak resident memory of the process (from `wait4`'s
//! rusage), and the CPU time the hypervisor took from this machine during
//! the runs (`steal` in `/proc/stat`): on a virtual machine, a slow series
//! with steal is the host's doing. Unlike `benches/load.rs` (the library,
//! files in memory), this counts reading the files, process start-up and
//! printing the report.
//!
//! The tree is written, flushed to disk (`sync`) and read once before the
//! runs are timed: the kernel's write-back of a freshly written tree (a
//! quarter of a gigabyte of dirty pages) could otherwise start during the
//! runs and take CPU from them.
//!
//! `cargo bench --bench validate_cli` (the binary is built with the bench
//! profile). `cargo bench --bench validate_cli -- --trees DIR` only writes
//! the six trees (`DIR/one-per-file-50001`, ...) and exits, for profiling
//! the binary on them (`perf stat`, `perf record`, `heaptrack`).
//!
//! Target on 2 cores: 50,000 documents under 0.5 s and 100 MB in every
//! layout, and 10× the documents in at most 11× the time.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/generate.rs"]
mod generate;

const RUNS: usize = 11;

/// One run of the binary.
struct Run {
    wall: Duration,
    /// User and system time.
    cpu: Duration,
    /// Peak resident memory, in bytes.
    peak: u64,
}

/// The CPU time stolen from this (virtual) machine so far: the `steal`
/// column of `/proc/stat`'s `cpu` line, in clock ticks (`None` where there
/// is none).
fn stolen_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?;
    cpu.split_whitespace().nth(8)?.parse().ok()
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Runs the binary once on `dir`.
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also gives its rusage"
)]
fn run_once(dir: &Path) -> Run {
    let start = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_asctl"))
        .args(["validate", "--format", "json"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("asctl starts");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet waited for; the pointers are valid.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(waited, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the generated domain validates without errors"
    );
    Run {
        wall,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        // ru_maxrss is in KiB on Linux.
        peak: usage.ru_maxrss as u64 * 1024,
    }
}

/// Writes a tree of `docs` (+1 per domain) documents: one domain, or
/// `domains` of them in directories of their own (`gen/d00/`, ...), as a
/// GitOps repository keeps them. Returns how many files it wrote.
fn write_tree(dir: &Path, layout: &Layout, docs: usize) -> usize {
    let domains = layout.domains(docs);
    let mut files = 0;
    for d in 0..domains {
        for (name, text) in generate::generate(docs / domains, layout.per_file) {
            let (name, text) = if domains == 1 {
                (name, text)
            } else {
                let name = name.replacen("gen/", &format!("gen/d{d:02}/"), 1);
                (
                    name,
                    text.replacen("name: bench\n", &format!("name: bench{d}\n"), 1),
                )
            };
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
            files += 1;
        }
    }
    files
}

/// How a tree's documents are laid out in files and directories.
struct Layout {
    name: &'static str,
    per_file: usize,
    /// Documents per domain, where the tree holds several.
    per_domain: Option<usize>,
}

impl Layout {
    fn domains(&self, docs: usize) -> usize {
        self.per_domain.map_or(1, |n| docs / n)
    }

    /// The documents of a tree of `docs`: each domain has one more.
    fn documents(&self, docs: usize) -> usize {
        docs + self.domains(docs)
    }
}

const LAYOUTS: [Layout; 3] = [
    Layout {
        name: "one-per-file",
        per_file: 1,
        per_domain: None,
    },
    Layout {
        name: "1000-per-file",
        per_file: 1000,
        per_domain: None,
    },
    Layout {
        name: "domains-of-1000",
        per_file: 1,
        per_domain: Some(1000),
    },
];
const SIZES: [usize; 2] = [5_000, 50_000];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--trees") {
        let dir = Path::new(args.get(i + 1).expect("--trees DIR"));
        for layout in &LAYOUTS {
            for docs in SIZES {
                let name = format!("{}-{}", layout.name, layout.documents(docs));
                write_tree(&dir.join(name), layout, docs);
            }
        }
        return;
    }
    // `cargo bench` passes `--bench`; a filter (a layout name) selects.
    let filter: Option<&String> = args.iter().find(|a| !a.starts_with('-'));
    // SAFETY: sysconf has no preconditions.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    println!(
        "layout            documents  files  wall (median of {RUNS})   slowest  CPU (median)  peak RSS  stolen"
    );
    for layout in &LAYOUTS {
        let name = layout.name;
        if filter.is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let mut previous: Option<(usize, Duration)> = None;
        for docs in SIZES {
            let dir = tempfile::tempdir().expect("tempdir");
            let files = write_tree(dir.path(), layout, docs);
            let total = layout.documents(docs);
            // SAFETY: sync has no preconditions.
            unsafe { libc::sync() };
            run_once(dir.path());
            let stolen_before = stolen_ticks();
            let runs: Vec<Run> = (0..RUNS).map(|_| run_once(dir.path())).collect();
            let stolen = stolen_ticks()
                .zip(stolen_before)
                .map(|(after, before)| after.saturating_sub(before) as f64 / ticks_per_s);
            let wall = median(runs.iter().map(|r| r.wall).collect());
            let slowest = runs.iter().map(|r| r.wall).max().unwrap_or_default();
            let cpu = median(runs.iter().map(|r| r.cpu).collect());
            let rss = runs.iter().map(|r| r.peak).max().unwrap_or(0);
            println!(
                "{name:<17} {total:>9}  {files:>5}  {:>16.1} ms  {:>5.1} ms  {:>9.1} ms  {:>5.1} MB  {}",
                wall.as_secs_f64() * 1e3,
                slowest.as_secs_f64() * 1e3,
                cpu.as_secs_f64() * 1e3,
                rss as f64 / 1e6,
                stolen.map_or("-".to_owned(), |s| format!("{:.2} s", s)),
            );
            if let Some((d0, t0)) = previous {
                println!(
                    "{name:<17} {}× the documents: {:.1}× the time",
                    docs / d0,
                    wall.as_secs_f64() / t0.as_secs_f64()
                );
            }
            previous = Some((docs, wall));
        }
    }
    let speed = calibration();
    println!(
        "this machine's speed at the end (median of 11; each larger when the machine is slower): \
         integer loop {:.1} ms, memory {:.0} ns per dependent load, {:.2} µs per page first touched",
        speed.integer.as_secs_f64() * 1e3,
        speed.load_ns,
        speed.fault_us,
    );
}

/// The middle value of a series of measurements.
fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

/// The same work timed at every run, so that figures taken at different
/// hours on a machine whose speed drifts can be told apart from changes
/// of the code: four chains of integer work on one thread (the core), a chain
/// of dependent loads over 64 MiB (the memory), and 64 MiB of fresh pages
/// touched once (the kernel's page faults, which validating a large tree
/// takes tens of thousands of).
struct Speed {
    integer: Duration,
    load_ns: f64,
    fault_us: f64,
}

/// One step of a xorshift generator: cheap integer work whose every step
/// depends on the one before.
fn xorshift(v: &mut u64) {
    *v ^= *v << 13;
    *v ^= *v >> 7;
    *v ^= *v << 17;
}

fn calibration() -> Speed {
    const BYTES: usize = 64 << 20;
    let integer = median(
        (0..11)
            .map(|_| {
                let start = Instant::now();
                // Four independent chains: the core's throughput, which a
                // busy sibling thread on the same physical core shares.
                let mut x = [
                    0x9E37_79B9_7F4A_7C15_u64,
                    0x2545_F491_4F6C_DD1D,
                    0xBF58_476D_1CE4_E5B9,
                    0x94D0_49BB_1331_11EB,
                ];
                for _ in 0..20_000_000 {
                    x.iter_mut().for_each(xorshift);
                }
                std::hint::black_box(x);
                start.elapsed()
            })
            .collect(),
    );
    // One cycle through every slot in a random order (Sattolo's shuffle),
    // so that each load waits for the one before it.
    let slots = BYTES / 8;
    let mut next: Vec<usize> = (0..slots).collect();
    let mut rng: u64 = 0x2545_F491_4F6C_DD1D;
    for i in (1..slots).rev() {
        xorshift(&mut rng);
        let j = (rng % i as u64) as usize;
        next.swap(i, j);
    }
    const LOADS: usize = 2_000_000;
    let load_ns = median(
        (0..11)
            .map(|_| {
                let start = Instant::now();
                let mut at = 0;
                for _ in 0..LOADS {
                    at = next[at];
                }
                std::hint::black_box(at);
                start.elapsed().as_secs_f64() * 1e9 / LOADS as f64
            })
            .collect(),
    );
    let pages = BYTES / 4096;
    let fault_us = median(
        (0..11)
            .map(|_| {
                let mut fresh: Vec<u8> = Vec::with_capacity(BYTES);
                let start = Instant::now();
                let spare = fresh.spare_capacity_mut();
                for page in 0..pages {
                    spare[page * 4096].write(1);
                }
                let took = start.elapsed();
                std::hint::black_box(&mut fresh);
                took.as_secs_f64() * 1e6 / pages as f64
            })
            .collect(),
    );
    Speed {
        integer,
        load_ns,
        fault_us,
    }
}
