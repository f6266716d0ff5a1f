//! `asctl watch PATH`: the GitOps loop — re-plan on every change of the
//! files, apply with `--apply`.
//!
//! The directory is watched (not the files), so editors that save by
//! writing a new file and renaming it over the old one are seen. A file
//! that does not validate produces findings and leaves the domain alone.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use asctl::plan::{Plan, render_human};
use clap::Args;
use notify::RecursiveMode;
use notify_debouncer_mini::new_debouncer;

use super::EXIT_OK;
use super::apply::commit_and_follow;
use super::plan::load_desired;
use super::remote::{Remote, RemoteArgs, runtime};

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The configuration to watch: a file or a directory.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Apply each valid change (without asking).
    #[arg(long)]
    pub apply: bool,
    /// How long to follow each apply's convergence.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2m")]
    pub timeout: Duration,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let (tx, rx) = mpsc::channel();
    let mut debouncer =
        new_debouncer(Duration::from_millis(300), tx).context("starting the file watcher")?;
    let (dir, mode) = if args.path.is_dir() {
        (args.path.clone(), RecursiveMode::Recursive)
    } else {
        let parent = args
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        (parent, RecursiveMode::NonRecursive)
    };
    debouncer
        .watcher()
        .watch(&dir, mode)
        .with_context(|| format!("watching {}", dir.display()))?;
    let rt = runtime()?;
    println!("Watching {} (Ctrl-C to stop).", args.path.display());
    round(&args, &rt);
    let mut seen = fingerprint(&args.path);
    for events in rx {
        let Ok(events) = events else { continue };
        if !events.iter().any(|e| relevant(&args.path, &e.path)) {
            continue;
        }
        // Reading the files (our own loads included) raises events too: only
        // a change of content starts a round.
        let now = fingerprint(&args.path);
        if now == seen {
            continue;
        }
        seen = now;
        println!("\n--- change detected ---");
        round(&args, &rt);
    }
    Ok(ExitCode::from(EXIT_OK))
}

/// A digest of every configuration file under PATH, names and contents.
fn fingerprint(path: &Path) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut files = Vec::new();
    collect(path, &mut files);
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        h.update(f.to_string_lossy().as_bytes());
        h.update(std::fs::read(&f).unwrap_or_default());
    }
    h.finalize().to_vec()
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        out.push(path.to_owned());
    } else if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                collect(&p, out);
            } else if relevant(path, &p) {
                out.push(p);
            }
        }
    }
}

/// A configuration file of PATH (editors' swap and backup files are not).
fn relevant(watched: &Path, changed: &Path) -> bool {
    if watched.is_file() {
        return changed.file_name() == watched.file_name();
    }
    matches!(
        changed.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// One plan (and apply): errors are printed, never fatal, so the loop goes on.
fn round(args: &WatchArgs, rt: &tokio::runtime::Runtime) {
    let result = (|| -> anyhow::Result<()> {
        let Some(desired) = load_desired(&args.path.to_string_lossy())? else {
            println!("The configuration has errors; the domain is left alone.");
            return Ok(());
        };
        let remote = Remote::resolve(&args.remote, Some(&desired))?;
        rt.block_on(async {
            let live = remote.live().await?;
            let plan = Plan::compute(&desired, &live);
            print!("{}", render_human(&plan));
            if args.apply && !plan.is_empty() {
                commit_and_follow(&remote, &desired, &plan, args.timeout).await?;
            }
            Ok(())
        })
    })();
    if let Err(e) = result {
        eprintln!("error: {e:#}");
    }
}
