//! What the lease guard does when it fires ([`super::guard`]): kill the
//! recorded process groups, remove the recorded addresses, release the
//! node's storage — and measure it against its budget.

use std::path::Path;
use std::time::{Duration, Instant};

use super::guard::OnRecord;
use crate::drivers;

/// One line to the agent's log (the guard's stderr), stamped like the
/// agent's own lines so that a fence can be placed among them.
pub(super) fn say(what: std::fmt::Arguments<'_>) {
    eprintln!(
        "{} asctl guard: {what}",
        humantime::format_rfc3339_micros(std::time::SystemTime::now())
    );
}

/// Kills every recorded process group, removes every recorded address,
/// then releases the storage (mounts on record and OCF resources, newest
/// first): the processes go first because they are the storage's main
/// users. `budget` is how long the whole fence may take for the survivors'
/// takeover wait to cover it (sent by the agent with each renewal); a fence
/// that released storage and took longer is said loudly and journalled,
/// since a survivor may have started the group before the release was over.
pub(super) fn fence(
    rt: &tokio::runtime::Runtime,
    data_dir: &Path,
    on_record: OnRecord,
    budget: Option<Duration>,
    why: &str,
) {
    let t = Instant::now();
    let at = std::time::SystemTime::now();
    let killed = drivers::process::kill(data_dir, &on_record.processes);
    let t_kill = t.elapsed();
    let groups = fenced_groups(&on_record.processes, &killed);
    let removed = rt.block_on(drivers::ip::remove_addresses(
        data_dir,
        &on_record.addresses,
    ));
    let t_addr = t.elapsed();
    let storage = rt.block_on(super::guard_storage::release(data_dir, on_record.mounts));
    let took = t.elapsed();
    for f in &storage.failed {
        say(format_args!(
            "could not release {f}; this node still holds it"
        ));
    }
    say(format_args!(
        "fenced the node ({why}): killed process groups {killed:?}, removed addresses \
         {removed:?}, {storage} in {} ms (kill {} ms, addresses {} ms, storage {} ms)",
        took.as_millis(),
        t_kill.as_millis(),
        (t_addr - t_kill).as_millis(),
        (took - t_addr).as_millis(),
    ));
    // Only a fence that took something down is the domain's business.
    let took_storage = storage.took_something();
    let mut cause = format!("its lease guard fenced it: {why}");
    if let Some(b) = budget.filter(|b| took_storage && took > *b) {
        let over = format!(
            "the fence took {} ms, beyond its budget of {} ms: a survivor may have started \
             the group while this node still held {:?} (only a fence device closes this \
             window: docs/ha.md, \"Storage in the guard's budget\")",
            took.as_millis(),
            b.as_millis(),
            storage
                .unmounted
                .iter()
                .chain(&storage.killed)
                .chain(&storage.stopped)
                .collect::<Vec<_>>()
        );
        say(format_args!("{over}"));
        cause = format!("{cause}; {over}");
    }
    if !(killed.is_empty() && removed.is_empty()) || took_storage {
        if let Err(e) = super::journal::Journal::new(data_dir).record(at, at, &cause, groups) {
            say(format_args!("cannot write the fencing journal: {e}"));
        }
    }
}

/// The groups of the processes the fence killed, for the fencing journal.
fn fenced_groups(
    processes: &[drivers::process::Recorded],
    killed: &[i32],
) -> Vec<crate::model::Name> {
    let mut groups: Vec<crate::model::Name> = processes
        .iter()
        .filter(|p| killed.contains(&p.pid))
        .filter_map(|p| p.group.parse().ok())
        .collect();
    groups.sort();
    groups.dedup();
    groups
}
