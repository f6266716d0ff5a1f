//! How raft's files are written and read back: every record is one line,
//! `CRC32C-HEX SPACE JSON NEWLINE`, the checksum (CRC-32C, as etcd's WAL)
//! over the JSON bytes. Files are created 0600 in a directory created 0700
//! ([`crate::private`]): the log holds process environment values in clear.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

/// The marker of a data directory whose files are all sealed. A directory
/// with raft files but no marker was written by a version without
/// checksums (see [`upgrade_legacy`]).
pub(crate) const FORMAT_FILE: &str = "format";
const FORMAT: &[u8] = b"asctl-raft 2 crc32c\n";

/// The files [`upgrade_legacy`] seals.
const RECORD_FILES: [&str; 4] = [
    "vote.json",
    "committed.json",
    "purged.json",
    "snapshot.json",
];
pub(crate) const LOG_FILE: &str = "log.jsonl";

/// Writes `bytes` to `path` durably: a temporary file created 0600, fsync,
/// rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = crate::private::create_file(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file created 0600 and a
/// rename, without fsync: the old or the new content survives a crash,
/// maybe the old one.
pub(crate) fn write_unsynced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    crate::private::create_file(&tmp)?.write_all(bytes)?;
    fs::rename(&tmp, path)
}

/// `json` as one sealed line.
pub(crate) fn seal(json: &[u8]) -> Vec<u8> {
    let mut out = format!("{:08x} ", crc32c::crc32c(json)).into_bytes();
    out.extend_from_slice(json);
    out.push(b'\n');
    out
}

/// Why a line is not a sealed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unsealed {
    /// No `CRC SPACE` prefix: not written by this format.
    NoChecksum,
    /// The checksum does not match the bytes: they changed after the write.
    Mismatch { stored: u32, computed: u32 },
}

impl std::fmt::Display for Unsealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unsealed::NoChecksum => write!(f, "no checksum"),
            Unsealed::Mismatch { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:08x}, the bytes give {computed:08x}): \
                 the record changed after it was written"
            ),
        }
    }
}

/// Whether `line` starts like a sealed record.
fn has_seal(line: &[u8]) -> bool {
    line.len() > 9 && line[8] == b' ' && line[..8].iter().all(u8::is_ascii_hexdigit)
}

/// The JSON of a sealed line (without its newline), its checksum verified.
pub(crate) fn unseal(line: &[u8]) -> Result<&[u8], Unsealed> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if !has_seal(line) {
        return Err(Unsealed::NoChecksum);
    }
    let hex = std::str::from_utf8(&line[..8]).map_err(|_| Unsealed::NoChecksum)?;
    let stored = u32::from_str_radix(hex, 16).map_err(|_| Unsealed::NoChecksum)?;
    let json = &line[9..];
    let computed = crc32c::crc32c(json);
    if stored != computed {
        return Err(Unsealed::Mismatch { stored, computed });
    }
    Ok(json)
}

/// Reads the sealed record in `path` (`None` if there is no such file).
pub(crate) fn read_record<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(path, "reading", e)),
    };
    let damaged = |why: String| StoreError::damaged(path, None, why);
    let json = unseal(&bytes).map_err(|e| damaged(e.to_string()))?;
    serde_json::from_slice(json)
        .map(Some)
        .map_err(|e| damaged(format!("not a valid record: {e}")))
}

/// Writes `value` to `path` as a sealed record, durably.
pub(crate) fn write_record<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let json = serde_json::to_vec(value).map_err(|e| StoreError::io(path, "encoding", e.into()))?;
    write_atomic(path, &seal(&json)).map_err(|e| StoreError::io(path, "writing", e))
}

/// Seals the files of a data directory written before records carried
/// checksums, once: each unsealed record or log line is checked to be JSON
/// and rewritten sealed (a torn last log line is dropped, as at any start),
/// then the format marker is written. A directory with the marker is never
/// upgraded again, so an unsealed line there is damage. An empty directory
/// just gets the marker.
pub(crate) fn upgrade_legacy(dir: &Path) -> Result<(), StoreError> {
    let marker = dir.join(FORMAT_FILE);
    if marker.exists() {
        return Ok(());
    }
    let mut upgraded = Vec::new();
    for name in RECORD_FILES {
        let path = dir.join(name);
        let Ok(bytes) = fs::read(&path) else { continue };
        if unseal(&bytes).is_ok() {
            continue;
        }
        let text = bytes.trim_ascii();
        serde_json::from_slice::<serde_json::Value>(text).map_err(|e| {
            StoreError::damaged(&path, None, format!("neither sealed nor plain JSON: {e}"))
        })?;
        write_atomic(&path, &seal(text)).map_err(|e| StoreError::io(&path, "sealing", e))?;
        upgraded.push(name);
    }
    if upgrade_legacy_log(&dir.join(LOG_FILE))? {
        upgraded.push(LOG_FILE);
    }
    if !upgraded.is_empty() {
        tracing::warn!(
            dir = %dir.display(),
            files = ?upgraded,
            "raft files written without checksums were sealed (a one-time upgrade)"
        );
    }
    write_atomic(&marker, FORMAT).map_err(|e| StoreError::io(&marker, "writing", e))
}

/// Seals every unsealed line of a legacy log; whether it rewrote the file.
fn upgrade_legacy_log(path: &Path) -> Result<bool, StoreError> {
    let Ok(bytes) = fs::read(path) else {
        return Ok(false);
    };
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8);
    let mut changed = false;
    let lines: Vec<&[u8]> = bytes.split_inclusive(|b| *b == b'\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let last = i + 1 == lines.len();
        if unseal(line).is_ok() {
            out.extend_from_slice(line);
            continue;
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        changed = true;
        // Torn by a crash mid-append (its newline never written): never
        // acknowledged. A whole line that is not JSON is damage, last or
        // not, as the reader of sealed logs judges it.
        if last && !line.ends_with(b"\n") {
            continue;
        }
        let parsed = serde_json::from_slice::<serde_json::Value>(text);
        if let Err(e) = parsed {
            return Err(StoreError::damaged(
                path,
                Some(format!("line {}", i + 1)),
                format!("neither sealed nor plain JSON: {e}"),
            ));
        }
        out.extend_from_slice(&seal(text));
    }
    if changed {
        write_atomic(path, &out).map_err(|e| StoreError::io(path, "sealing", e))?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_line_reads_back_and_any_changed_byte_is_caught() {
        let json = br#"{"env":{"TOKEN":"s3cret"}}"#;
        let line = seal(json);
        assert_eq!(unseal(&line), Ok(&json[..]));
        for i in 0..line.len() - 1 {
            let mut bad = line.clone();
            bad[i] ^= 0x04;
            assert!(unseal(&bad).is_err(), "byte {i} changed");
        }
        assert_eq!(unseal(json), Err(Unsealed::NoChecksum));
    }
}
