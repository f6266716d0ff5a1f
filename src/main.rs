//! The `asctl` command line. Thin: it parses arguments and dispatches to the
//! library; each command lives in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

// `validate` builds and drops millions of small values (parsed trees,
// strings) on every core at once, where the system allocator spends a
// fifth of the run; the agent is the same binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    return_freed_memory_at_once();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cli::EXIT_USAGE)
        }
    }
}

/// mimalloc returns freed pages to the system some milliseconds after they
/// are freed; `validate` on a large tree frees parse trees faster than
/// that, and its peak resident memory was a fifth higher for it. At once
/// costs a little system time; an idle agent frees little.
fn return_freed_memory_at_once() {
    // `mi_option_purge_delay` of mimalloc.h (the same in its versions 2
    // and 3), which the Rust bindings do not name.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets one integer option, which mimalloc reads at each purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}
