//! `cargo bench --bench live`: a running three-node domain on loopback.
//! Prints `plan` end to end (process start to exit, against the live
//! domain; target < 100 ms) and, per node, the RSS (target < 20 MB) and CPU
//! over 10 s (target < 1 %) of the idle agent and of its lease guard
//! (`asctl guard`, the agent's child), and of both together, read from
//! /proc.

#[path = "../tests/live/support/mod.rs"]
mod live_support;

use std::time::{Duration, Instant};

use live_support::LiveDomain;

/// A `kB` field of /proc/PID/smaps_rollup.
fn smaps_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// utime + stime in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// The lease guard the agent `agent` started: its child running `asctl guard`.
fn guard_of(agent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        // The 4th field of the whole line, after the parenthesised name.
        let ppid: u32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let guard = cmdline.split(|b| *b == 0).nth(1) == Some(b"guard".as_slice());
        (ppid == agent && guard).then_some(pid)
    })
}

fn main() {
    let mut d = LiveDomain::prepare();
    d.start();
    let cfg = d.config.to_string_lossy().into_owned();
    let out = d.asctl(&["apply", &cfg, "--auto-approve", "--timeout", "60s"]);
    assert!(out.status.success(), "{}", live_support::text(&out));

    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let out = d.asctl(&["plan", &cfg, "--detailed-exitcode"]);
        times.push(t.elapsed());
        assert_eq!(out.status.code(), Some(0), "{}", live_support::text(&out));
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "plan end to end (20 runs): min {:.1} ms, median {:.1} ms, max {:.1} ms (target < 100 ms)",
        ms(times[0]),
        ms(times[10]),
        ms(times[19])
    );

    // Let the domain settle, then measure it idle.
    std::thread::sleep(Duration::from_secs(3));
    let mut pids: Vec<(String, u32)> = Vec::new();
    for (name, agent) in &d.agents {
        let agent = agent.id();
        let guard =
            guard_of(agent).unwrap_or_else(|| panic!("no lease guard under {name}'s agent"));
        pids.push((format!("{name} agent"), agent));
        pids.push((format!("{name} guard"), guard));
    }
    let before: Vec<u64> = pids.iter().map(|(_, p)| cpu_ticks(*p)).collect();
    let window = Duration::from_secs(10);
    std::thread::sleep(window);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut node = (0.0, 0.0, 0.0);
    for ((name, pid), b) in pids.iter().zip(before) {
        let cpu = 100.0 * (cpu_ticks(*pid) - b) as f64 / hz / window.as_secs_f64();
        let mb = |field| smaps_kb(*pid, field) as f64 / 1024.0;
        // RSS counts the executable's pages, which every agent, guard and
        // demo server on the machine shares; PSS and anonymous memory are
        // what one more process costs.
        println!(
            "idle {name}: RSS {:.1} MB (PSS {:.1} MB, private anonymous {:.1} MB), CPU {:.2} % \
             over {}s",
            mb("Rss:"),
            mb("Pss:"),
            mb("Anonymous:"),
            cpu,
            window.as_secs()
        );
        if name.ends_with(" agent") {
            node = (mb("Pss:"), mb("Anonymous:"), cpu);
        } else {
            // Agent and guard of one node together: PSS adds up (shared
            // pages are split between the processes sharing them), RSS
            // would count the shared executable twice.
            println!(
                "  node {}: agent + guard PSS {:.1} MB, private anonymous {:.1} MB, CPU {:.2} % \
                 (targets for an agent: < 20 MB, < 1 %)",
                name.trim_end_matches(" guard"),
                node.0 + mb("Pss:"),
                node.1 + mb("Anonymous:"),
                node.2 + cpu
            );
        }
    }
}
