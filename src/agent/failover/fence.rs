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
/// Returns whether some storage could not be released: the node still
/// holds it, and the guard retries ([`retry_release`]).
pub(super) fn fence(
    rt: &tokio::runtime::Runtime,
    data_dir: &Path,
    on_record: OnRecord,
    budget: Option<Duration>,
    why: &str,
) -> bool {
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
    if !storage.failed.is_empty() {
        cause = format!(
            "{cause}; could not release {:?}: this node may still hold them while a survivor \
             starts the group (only a fence device closes this window: docs/ha.md, \
             \"Storage in the guard's budget\"); the guard retries until released or the agent \
             renews",
            storage.failed
        );
    }
    if !(killed.is_empty() && removed.is_empty()) || took_storage || !storage.failed.is_empty() {
        if let Err(e) = super::journal::Journal::new(data_dir).record(at, at, &cause, groups) {
            say(format_args!("cannot write the fencing journal: {e}"));
        }
    }
    !storage.failed.is_empty()
}

/// The fence of a lease that ran out. Returns when it was and no retry
/// yet, if it could not release some storage.
pub(super) fn lease_ran_out(
    rt: &tokio::runtime::Runtime,
    data_dir: &Path,
    known: &OnRecord,
    budget: Option<Duration>,
    lease: Option<(Instant, Duration)>,
) -> Option<(Instant, u32)> {
    let late = lease.map_or(Duration::ZERO, |(r, len)| r.elapsed().saturating_sub(len));
    let why = format!(
        "the lease ran out {} ms ago: the agent is frozen or starved",
        late.as_millis()
    );
    let fenced_at = Instant::now();
    fence(rt, data_dir, known.with_current(data_dir), budget, &why).then_some((fenced_at, 0))
}

/// One more release of what the fence at `at` could not release, `attempt`
/// retries ago; the same back while something is still held.
pub(super) fn retry(
    rt: &tokio::runtime::Runtime,
    data_dir: &Path,
    known: &OnRecord,
    (at, attempt): (Instant, u32),
) -> Option<(Instant, u32)> {
    let mounts = known.with_current(data_dir).mounts;
    retry_release(rt, data_dir, mounts, at, attempt + 1).then_some((at, attempt + 1))
}

/// How often the guard tries again to release storage its fence could not.
pub(super) const RETRY_RELEASE: Duration = Duration::from_millis(500);

/// One more release of the storage still on record after a fence that
/// could not release all of it (a mount still busy or an unmount still in
/// the kernel at the guard's limit, an OCF `stop` that failed): the mount's
/// users SIGKILLed again and the unmount retried, each OCF resource still
/// on record stopped again. Only while the agent is frozen — the guard
/// stops retrying at its first renewal, after which the woken agent's own
/// stop owns the release (and reports the node unclean for the group if it
/// fails). Returns whether something is still held; says so on the
/// `attempt`s that are powers of two, and says when it is all released.
pub(super) fn retry_release(
    rt: &tokio::runtime::Runtime,
    data_dir: &Path,
    mounts: Vec<drivers::storage::records::MountRecord>,
    since: Instant,
    attempt: u32,
) -> bool {
    let storage = rt.block_on(super::guard_storage::release(data_dir, mounts));
    let after = since.elapsed().as_millis();
    if storage.failed.is_empty() {
        say(format_args!(
            "released the storage the fence could not, {after} ms after the fence ({storage})"
        ));
        return false;
    }
    if attempt.is_power_of_two() {
        say(format_args!(
            "still could not release {:?} {after} ms after the fence (attempt {attempt}); \
             retrying every {} ms while the agent does not renew",
            storage.failed,
            RETRY_RELEASE.as_millis()
        ));
    }
    true
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
