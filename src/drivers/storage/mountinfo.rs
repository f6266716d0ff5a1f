//! `/proc/self/mountinfo`: which file systems are mounted where, in this
//! process's mount namespace (see proc(5)).

use std::path::{Path, PathBuf};

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_id: u32,
    /// The device number of the mounted file system (`major:minor`); for a
    /// block device file system, the block device's own number.
    pub dev: (u32, u32),
    /// The directory of the file system that is mounted (`/` unless a bind
    /// mount of a subdirectory).
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    pub fs_type: String,
    /// The mount source, e.g. `/dev/sdb1`.
    pub source: String,
}

/// Parses mountinfo text. Lines that do not have the documented shape are
/// skipped: the kernel writes this file, a malformed line is not ours to fix.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    let (before, after) = line.split_once(" - ")?;
    let mut f = before.split(' ');
    let mount_id = f.next()?.parse().ok()?;
    let _parent = f.next()?;
    let (major, minor) = f.next()?.split_once(':')?;
    let dev = (major.parse().ok()?, minor.parse().ok()?);
    let root = PathBuf::from(unescape(f.next()?));
    let mount_point = PathBuf::from(unescape(f.next()?));
    let mut a = after.split(' ');
    let fs_type = a.next()?.to_string();
    let source = unescape(a.next()?);
    Some(MountEntry {
        mount_id,
        dev,
        root,
        mount_point,
        fs_type,
        source,
    })
}

/// Undoes the kernel's octal escapes (`\040` for a space, `\011`, `\012`,
/// `\134`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads this process's mountinfo.
pub fn read() -> std::io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// The entries mounted exactly at `path`, last (topmost) first.
pub fn mounted_at<'a>(entries: &'a [MountEntry], path: &Path) -> Vec<&'a MountEntry> {
    let mut v: Vec<_> = entries.iter().filter(|e| e.mount_point == path).collect();
    v.reverse();
    v
}

/// The entries of the file system on device `dev`, wherever mounted.
pub fn mounts_of(entries: &[MountEntry], dev: (u32, u32)) -> Vec<&MountEntry> {
    entries.iter().filter(|e| e.dev == dev).collect()
}

/// The entries mounted strictly below `path` (submounts), deepest first, so
/// they can be unmounted in that order.
pub fn below<'a>(entries: &'a [MountEntry], path: &Path) -> Vec<&'a MountEntry> {
    let mut v: Vec<_> = entries
        .iter()
        .filter(|e| e.mount_point != path && e.mount_point.starts_with(path))
        .collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.mount_point.components().count()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
36 22 7:40 / /srv/db rw,noatime - ext4 /dev/loop40 rw
37 36 7:41 / /srv/db/logs rw - xfs /dev/loop41 rw,attr2
38 22 0:45 /sub /mnt/with\\040space rw - tmpfs tmpfs rw
garbage line
39 22 7:40 /data /bind rw - ext4 /dev/loop40 rw
";

    #[test]
    fn parses_fields_and_escapes() {
        let e = parse(SAMPLE);
        assert_eq!(e.len(), 5, "{e:?}");
        assert_eq!(e[1].dev, (7, 40));
        assert_eq!(e[1].mount_point, Path::new("/srv/db"));
        assert_eq!(e[1].fs_type, "ext4");
        assert_eq!(e[1].source, "/dev/loop40");
        assert_eq!(e[3].mount_point, Path::new("/mnt/with space"));
        assert_eq!(e[3].root, Path::new("/sub"));
    }

    #[test]
    fn finds_mounts_by_place_and_device() {
        let e = parse(SAMPLE);
        assert_eq!(mounted_at(&e, Path::new("/srv/db"))[0].mount_id, 36);
        assert!(mounted_at(&e, Path::new("/srv")).is_empty());
        let ids: Vec<u32> = mounts_of(&e, (7, 40)).iter().map(|m| m.mount_id).collect();
        assert_eq!(ids, [36, 39]);
        let sub: Vec<u32> = below(&e, Path::new("/srv/db"))
            .iter()
            .map(|m| m.mount_id)
            .collect();
        assert_eq!(sub, [37]);
        // `/srv/dbx` is not below `/srv/db`: components, not string prefixes.
        let e2 = parse("40 22 7:42 / /srv/dbx rw - ext4 /dev/loop42 rw\n");
        assert!(below(&e2, Path::new("/srv/db")).is_empty());
    }
}
