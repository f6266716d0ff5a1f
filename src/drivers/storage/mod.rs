//! Storage on Linux: shared block devices and the file systems mounted from
//! them (see `docs/storage.md`).

pub mod holders;
pub mod io_check;
pub mod mount;
pub mod mountinfo;
pub mod records;
pub mod shared_disk;
mod umount;
