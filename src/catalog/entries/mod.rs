//! The catalog's entries, one file per rule family — the same families as
//! the checks in `src/rules/` — so that a rule's texts sit next to its
//! siblings'. Examples live in `src/rules/examples/<ID>/{fail,pass}.yaml`;
//! `asctl explain` prints them and the catalog tests run them.

use super::Rule;

mod accept;
mod composites;
mod consistency;
mod datasources;
mod exec_limits;
mod guest_os;
mod hypervisor;
mod loading;
mod mirroring;
mod modules;
mod network;
mod replication;
mod sharing;
mod structure;
mod topology;
mod vm_hardware;
mod vmotion;

pub use accept::*;
pub use composites::*;
pub use consistency::*;
pub use datasources::*;
pub use exec_limits::*;
pub use guest_os::*;
pub use hypervisor::*;
pub use loading::*;
pub use mirroring::*;
pub use modules::*;
pub use network::*;
pub use replication::*;
pub use sharing::*;
pub use structure::*;
pub use topology::*;
pub use vm_hardware::*;
pub use vmotion::*;

const FAMILIES: &[&[&Rule]] = &[
    LOADING_FAMILY,
    STRUCTURE_FAMILY,
    ACCEPT_FAMILY,
    TOPOLOGY_FAMILY,
    HYPERVISOR_FAMILY,
    GUEST_OS_FAMILY,
    MODULES_FAMILY,
    MIRRORING_FAMILY,
    SHARING_FAMILY,
    REPLICATION_FAMILY,
    COMPOSITES_FAMILY,
    VMOTION_FAMILY,
    NETWORK_FAMILY,
    VM_HARDWARE_FAMILY,
    CONSISTENCY_FAMILY,
    DATASOURCES_FAMILY,
    EXEC_LIMITS_FAMILY,
];

const COUNT: usize = {
    let mut n = 0;
    let mut f = 0;
    while f < FAMILIES.len() {
        n += FAMILIES[f].len();
        f += 1;
    }
    n
};

/// The whole catalog, in ID order (whatever the order of the families).
pub static ALL: &[&Rule] = &in_id_order::<COUNT>(FAMILIES);

/// Every family's rules in one array sorted by ID, at compile time.
const fn in_id_order<const N: usize>(families: &[&[&'static Rule]]) -> [&'static Rule; N] {
    let mut all = [families[0][0]; N];
    let mut n = 0;
    let mut f = 0;
    while f < families.len() {
        let mut i = 0;
        while i < families[f].len() {
            all[n] = families[f][i];
            n += 1;
            i += 1;
        }
        f += 1;
    }
    let mut i = 1;
    while i < N {
        let mut j = i;
        while j > 0 && id_before(all[j].id, all[j - 1].id) {
            let moved = all[j];
            all[j] = all[j - 1];
            all[j - 1] = moved;
            j -= 1;
        }
        i += 1;
    }
    all
}

/// Byte order of two IDs (`AS` and four digits, so also numeric order).
const fn id_before(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}
