//! The lease guard's claim on the CPU and on memory.
//!
//! A fence is worth only as much as its timing bound (docs/ha.md, "Storage
//! in the guard's budget"), and the guard is needed exactly when the node
//! is in trouble: an agent starved of CPU is what makes its lease run out,
//! and the same starvation then delays the guard's wake-up, its kills, its
//! netlink calls and its unmounts. So the guard does what sbd and corosync
//! do: it runs under a real-time policy (`SCHED_RR`, above every normal
//! process, which cannot delay it however many there are) and locks its
//! memory (`mlockall`), so that a node short of memory cannot page it out
//! either. It sleeps in `poll` nearly always; its work is a few system
//! calls per renewal and the fence.
//!
//! The policy is inherited by the threads and processes the guard starts:
//! the unmount's worker thread needs it, and an OCF agent's `stop` run by
//! the fence runs at it too (bounded by its stop timeout; the kernel keeps
//! 5 % of each second for normal processes). The processes the fence kills
//! are given a real-time policy as well once SIGKILLed
//! (`drivers::process::kill`): a
//! killed process must still be scheduled to exit, and until it has, it
//! holds the mount and the fence waits for it.

use std::io;

/// The guard's priority: the highest `SCHED_RR` offers, as sbd's and
/// corosync's. Returns it.
pub fn make_realtime() -> io::Result<i32> {
    // SAFETY: plain system calls on this process, with a valid sched_param.
    unsafe {
        let prio = libc::sched_get_priority_max(libc::SCHED_RR);
        if prio < 0 {
            return Err(io::Error::last_os_error());
        }
        let param = libc::sched_param {
            sched_priority: prio,
        };
        if libc::sched_setscheduler(0, libc::SCHED_RR, &param) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(prio)
    }
}
