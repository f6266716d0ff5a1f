//! The command a user runs, end to end: `asctl validate DIR` on generated
//! trees, in two layouts (one document per file; 1,000 per file), printing
//! the median wall time of 5 runs and the peak resident memory of the
//! process (from `wait4`'s rusage). Unlike `benches/load.rs` (the library,
//! files in memory), this counts reading the files, process start-up and
//! printing the report.
//!
//! `cargo bench --bench validate_cli` (the binary is built with the bench
//! profile). `cargo bench --bench validate_cli -- --trees DIR` only writes
//! the four trees (`DIR/one-per-file-50001`, ...) and exits, for profiling
//! the binary on them (`perf stat`, `perf record`, `heaptrack`). Target on 2 cores: 50,000 documents under 0.5 s and 100 MB in
//! both layouts, and 10× the documents in at most 11× the time.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/generate.rs"]
mod generate;

const RUNS: usize = 5;

/// Runs the binary once on `dir`: wall time and peak RSS in bytes.
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also gives its rusage"
)]
fn run_once(dir: &Path) -> (Duration, u64) {
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
    // ru_maxrss is in KiB on Linux.
    (wall, usage.ru_maxrss as u64 * 1024)
}

fn write_tree(dir: &Path, docs: usize, per_file: usize) {
    for (name, text) in generate::generate(docs, per_file) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
}

const LAYOUTS: [(&str, usize); 2] = [("one-per-file", 1), ("1000-per-file", 1000)];
const SIZES: [usize; 2] = [5_000, 50_000];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--trees") {
        let dir = Path::new(args.get(i + 1).expect("--trees DIR"));
        for (layout, per_file) in LAYOUTS {
            for docs in SIZES {
                write_tree(&dir.join(format!("{layout}-{}", docs + 1)), docs, per_file);
            }
        }
        return;
    }
    // `cargo bench` passes `--bench`; a filter (a layout name) selects.
    let filter: Option<&String> = args.iter().find(|a| !a.starts_with('-'));
    println!("layout            documents  files    wall (median of {RUNS})  peak RSS");
    for (layout, per_file) in LAYOUTS {
        if filter.is_some_and(|f| !layout.contains(f.as_str())) {
            continue;
        }
        let mut previous: Option<(usize, Duration)> = None;
        for docs in SIZES {
            let dir = tempfile::tempdir().expect("tempdir");
            write_tree(dir.path(), docs, per_file);
            let files = std::fs::read_dir(dir.path().join("gen"))
                .expect("gen")
                .count();
            let mut walls = Vec::new();
            let mut rss = 0;
            for _ in 0..RUNS {
                let (wall, peak) = run_once(dir.path());
                walls.push(wall);
                rss = rss.max(peak);
            }
            walls.sort();
            let median = walls[RUNS / 2];
            println!(
                "{layout:<17} {:>9}  {files:>6}  {:>10.1} ms           {:>6.1} MB",
                docs + 1,
                median.as_secs_f64() * 1e3,
                rss as f64 / 1e6
            );
            if let Some((d0, t0)) = previous {
                println!(
                    "{layout:<17} {}× the documents: {:.1}× the time",
                    docs / d0,
                    median.as_secs_f64() / t0.as_secs_f64()
                );
            }
            previous = Some((docs, median));
        }
    }
}
