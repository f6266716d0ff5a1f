use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::*;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn process_output_and_pid_files_are_private_from_their_creation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("logs/web/server.log");
    open_log(&log).expect("log");
    let pid = dir.path().join("run/web/server.pid");
    let rec = PidRecord {
        pid: 1,
        start_time: 0,
        fingerprint: String::new(),
    };
    write_pid_record(&pid, &rec).expect("pid");
    assert_eq!(mode(&log), 0o600);
    assert_eq!(mode(&pid), 0o600);
    for d in ["logs", "logs/web", "run", "run/web"] {
        assert_eq!(mode(&dir.path().join(d)), 0o700, "{d}");
    }
}

#[test]
fn stat_fields_are_counted_from_the_last_parenthesis() {
    let line =
        "4242 (we(ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
    let s = parse_stat(line).expect("parses");
    assert_eq!(s.state, 'S');
    assert_eq!(s.pgrp, 4242);
    assert_eq!(s.start_time, 987654);
}

#[test]
fn a_truncated_stat_line_is_rejected() {
    assert!(parse_stat("12 (x) S 1").is_none());
}
