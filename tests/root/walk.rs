//! The walk on file systems of its own (loop-mounted images).
//!
//! On one whose directory entries do not say what each entry is (ext4
//! without its `filetype` feature: every entry is `DT_UNKNOWN`, as on some
//! network and FUSE file systems), the walk asks each entry itself, without
//! following links; the report must be the one the same tree gets on an
//! ordinary file system — directories descended into, a link to a file
//! read, a FIFO reported and never opened.
//!
//! On one freshly mounted (nothing cached), the reads of files that lie
//! side by side must reach the disk as a few merged requests.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use crate::storage_support::{is_root, sh};

/// The loop-mounted image, unmounted (and its loop device freed) on drop.
struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

/// Two of the examples' domains, a link to a file outside the tree (a
/// node with a mistake), a link to one of the domains' directories, a FIFO
/// and a file that is not YAML, under `root`.
fn write_tree(root: &Path, outside: &Path) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for domain in ["quickstart", "linux-database"] {
        let to = root.join(domain);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(examples.join(domain)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    symlink(outside, root.join("linked.yaml")).unwrap();
    // A link to a directory, named like a file: never descended into.
    symlink("quickstart", root.join("dir-link.yaml")).unwrap();
    nix::unistd::mkfifo(
        &root.join("quickstart/pipe.yaml"),
        nix::sys::stat::Mode::S_IRWXU,
    )
    .unwrap();
    std::fs::write(root.join("quickstart/notes.txt"), "not YAML\n").unwrap();
}

/// `asctl validate --format json DIR`, with `DIR` written as `<root>` so
/// that two trees' reports compare.
fn report(dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_asctl"))
        .args(["validate", "--format", "json"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "validate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .replace(dir.to_str().unwrap(), "<root>")
}

#[test]
#[ignore = "needs root: run with --include-ignored"]
fn a_tree_without_file_types_in_its_directory_entries_validates_as_any_other() {
    assert!(is_root(), "needs root (mount)");
    let tmp = tempfile::tempdir().unwrap();
    let image = ext4_image(tmp.path(), 32, &["-O", "^filetype"]);
    let untyped = tmp.path().join("untyped");
    std::fs::create_dir(&untyped).unwrap();
    let _mounted = mount(&image, &untyped);
    let typed = tmp.path().join("typed");
    std::fs::create_dir(&typed).unwrap();
    let outside = tmp.path().join("outside.yaml");
    std::fs::write(
        &outside,
        "apiVersion: asctl/v1\nkind: Node\nmetadata:\n  name: n1\nspec:\n  nics: three\n",
    )
    .unwrap();
    write_tree(&untyped, &outside);
    write_tree(&typed, &outside);

    // The file system really leaves the type out: otherwise this test
    // would not reach the walk's fallback.
    let dir = std::fs::File::open(&untyped).unwrap();
    let mut buf = Vec::with_capacity(8192);
    let mut entries = rustix::fs::RawDir::new(&dir, buf.spare_capacity_mut());
    let mut unknown = 0;
    while let Some(entry) = entries.next() {
        if entry.unwrap().file_type() == rustix::fs::FileType::Unknown {
            unknown += 1;
        }
    }
    assert!(unknown >= 3, "entries without a type: {unknown}");

    let expected = report(&typed);
    // The tree's own findings are there (the FIFO never opened, the link
    // read), so the comparison is of a report with something in it.
    assert!(expected.contains("not-regular-file"), "{expected}");
    assert!(expected.contains("<root>/linked.yaml"), "{expected}");
    assert!(expected.contains("a directory"), "{expected}");
    assert_eq!(report(&untyped), expected);
}

/// A file system image of `mib` MiB in `dir`, made with `mkfs.ext4`'s
/// `options`.
fn ext4_image(dir: &Path, mib: u64, options: &[&str]) -> std::path::PathBuf {
    let image = dir.join("ext4.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(mib << 20)
        .unwrap();
    let mut args = vec!["-q", "-F"];
    args.extend_from_slice(options);
    args.push(image.to_str().unwrap());
    sh("mkfs.ext4", &args);
    image
}

/// `image` loop-mounted on `mnt` until the result is dropped.
fn mount<'a>(image: &Path, mnt: &'a Path) -> Mounted<'a> {
    sh(
        "mount",
        &["-o", "loop", image.to_str().unwrap(), mnt.to_str().unwrap()],
    );
    Mounted(mnt)
}

/// Read requests the block device `dev` (`/dev/loop3`) has completed.
fn reads_completed(dev: &str) -> u64 {
    let name = dev.rsplit('/').next().unwrap();
    let stat = std::fs::read_to_string(format!("/sys/block/{name}/stat")).unwrap();
    stat.split_whitespace().next().unwrap().parse().unwrap()
}

/// Files written one after the other lie in consecutive blocks; when none
/// of them is cached, the walk's reads of a batch reach the disk together
/// and are merged into a few requests. With each file's read chained to its
/// own open, as it once was, every file cost a request of its own (539 for
/// these 512 files, against about 30).
#[test]
#[ignore = "needs root: run with --include-ignored"]
fn uncached_files_side_by_side_are_read_in_few_requests() {
    assert!(is_root(), "needs root (mount)");
    const FILES: usize = 512;
    let tmp = tempfile::tempdir().unwrap();
    let image = ext4_image(tmp.path(), 64, &[]);
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    {
        let _mounted = mount(&image, &mnt);
        let dir = mnt.join("hosts");
        std::fs::create_dir(&dir).unwrap();
        for i in 0..FILES {
            std::fs::write(
                dir.join(format!("h{i:03}.yaml")),
                format!(
                    "apiVersion: asctl/v1\nkind: Host\nmetadata:\n  name: h{i}\nspec:\n  hypervisor: {{product: esx, version: \"4.0\"}}\n"
                ),
            )
            .unwrap();
        }
    }
    // Mounted again: nothing of the file system (names, inodes, contents)
    // is cached.
    let _mounted = mount(&image, &mnt);
    let dev = sh("findmnt", &["-n", "-o", "SOURCE", mnt.to_str().unwrap()]);
    let before = reads_completed(&dev);
    let report = report(&mnt.join("hosts"));
    let requests = reads_completed(&dev) - before;
    assert!(
        report.contains(&format!("\"files\": {FILES},")) && report.contains("\"errors\": 0,"),
        "{report}"
    );
    assert!(
        requests < (FILES / 4) as u64,
        "{requests} read requests for {FILES} uncached files"
    );
}
