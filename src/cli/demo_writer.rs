//! `asctl demo-writer`: a tiny database for trying data failover. Every
//! line a client sends becomes a sequence-numbered record appended to
//! `DIR/records.log`; the client gets `ack SEQ` only after the record is
//! fsynced, so an acknowledged record must survive any failover of the
//! group that holds DIR's disk. Sequence numbers continue from the last
//! complete record on start-up (on whichever node); a record cut short by
//! a crash was never acknowledged and is dropped.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::Args;

use super::EXIT_OK;

#[derive(Debug, Args)]
pub struct DemoWriterArgs {
    /// The directory of the log (the group's mount point).
    #[arg(long)]
    pub dir: PathBuf,
    /// TCP port to listen on.
    #[arg(long)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
}

/// The log file and the last sequence number in it.
pub struct Log {
    file: File,
    last: u64,
}

impl Log {
    /// Opens (or creates) `dir/records.log`, cutting off a final record
    /// without its newline.
    pub fn open(dir: &Path) -> anyhow::Result<Log> {
        let path = dir.join("records.log");
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let mut text = Vec::new();
        file.read_to_end(&mut text)?;
        let (complete, last) = recover(&text);
        if complete < text.len() {
            file.set_len(complete as u64)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::End(0))?;
        Ok(Log { file, last })
    }

    /// Appends one record and fsyncs it; returns its sequence number.
    pub fn append(&mut self, payload: &str) -> std::io::Result<u64> {
        let seq = self.last + 1;
        let line = format!("{seq} {}\n", payload.replace(['\n', '\r'], " "));
        self.file.write_all(line.as_bytes())?;
        self.file.sync_data()?;
        self.last = seq;
        Ok(seq)
    }
}

/// The length of the complete records of a log and the last sequence number
/// among them.
pub fn recover(text: &[u8]) -> (usize, u64) {
    let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let last = text[..complete]
        .split(|&b| b == b'\n')
        .filter_map(|l| {
            std::str::from_utf8(l)
                .ok()?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    (complete, last)
}

pub fn run(args: DemoWriterArgs) -> anyhow::Result<ExitCode> {
    let log = Arc::new(Mutex::new(Log::open(&args.dir)?));
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let log = Arc::clone(&log);
        std::thread::spawn(move || serve(stream, &log));
    }
    Ok(ExitCode::from(EXIT_OK))
}

/// One client: a record per line, `ack SEQ` after its fsync. A failed write
/// answers `error ...` and ends the process: the storage is not to be
/// trusted any more, and the agent's monitor will see the writer gone.
fn serve(stream: TcpStream, log: &Mutex<Log>) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let result = log.lock().unwrap_or_else(|p| p.into_inner()).append(&line);
        match result {
            Ok(seq) => {
                if writeln!(out, "ack {seq}").is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = writeln!(out, "error {e}");
                eprintln!("demo-writer: cannot write the log: {e}");
                std::process::exit(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_drops_a_torn_record_and_continues_the_sequence() {
        assert_eq!(recover(b""), (0, 0));
        assert_eq!(recover(b"1 a\n2 b\n3 c"), (8, 2));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("records.log"), b"1 a\n2 b\n3 tor").unwrap();
        let mut log = Log::open(dir.path()).unwrap();
        assert_eq!(log.append("c").unwrap(), 3);
        drop(log);
        let text = std::fs::read_to_string(dir.path().join("records.log")).unwrap();
        assert_eq!(text, "1 a\n2 b\n3 c\n");
    }
}
