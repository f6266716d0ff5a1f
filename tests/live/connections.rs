//! Connection hygiene of the API (src/agent/server/hygiene.rs), against a
//! real agent on loopback with short limits: a client that never starts
//! the TLS handshake, one idle after it, one that sends its headers a byte
//! at a time, and one address opening more connections than its cap — each
//! is closed by the agent, and the agent keeps answering.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

use crate::support::LiveDomain;

const LIMITS: &str =
    "connections: {handshakeTimeout: 2s, headerTimeout: 2s, idleTimeout: 3s, perPeer: 16}\n";

/// Node1's agent with [`LIMITS`]; its API address.
fn domain() -> (LiveDomain, SocketAddr) {
    let mut d = LiveDomain::prepare();
    let yaml = d.state.join("nodes/node1/agent.yaml");
    let mut text = std::fs::read_to_string(&yaml).expect("agent.yaml");
    text.push_str(LIMITS);
    std::fs::write(&yaml, text).expect("agent.yaml");
    d.start();
    let addr = d.listen_address("node1").expect("node1's address");
    (d, addr)
}

/// Whether the peer has closed `s` (or reset it) within `within`.
fn closed_within<S: Read>(s: &mut S, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 256];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    s
}

/// A TLS connection to `addr` whose handshake has completed.
fn tls(
    d: &LiveDomain,
    addr: SocketAddr,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let cfg = asctl::agent::server::tls::client_config(&d.state.join("tls/ca.crt")).expect("ca");
    let name = ServerName::from(addr.ip());
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).expect("client");
    let mut s = rustls::StreamOwned::new(conn, raw(addr));
    while s.conn.is_handshaking() {
        match s.conn.complete_io(&mut s.sock) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("TLS handshake: {e}"),
        }
    }
    s
}

#[test]
fn slow_and_greedy_clients_are_closed_and_the_api_keeps_answering() {
    let (mut d, addr) = domain();

    // No handshake: open past 1 s, closed by the 2 s handshake timeout.
    let mut silent = raw(addr);
    assert!(
        !closed_within(&mut silent, Duration::from_secs(1)),
        "closed too early"
    );
    assert!(
        closed_within(&mut silent, Duration::from_secs(4)),
        "a connection without a TLS handshake is still open after 5 s"
    );

    // Idle after the handshake: closed within the header or idle timeout.
    let mut idle = tls(&d, addr);
    assert!(
        closed_within(&mut idle, Duration::from_secs(6)),
        "a connection idle after its TLS handshake is still open after 6 s"
    );

    // Headers a byte every 400 ms (never idle): closed by the 2 s header
    // timeout.
    let mut slow = tls(&d, addr);
    slow.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
        .expect("first bytes");
    let started = Instant::now();
    let mut cut = false;
    while started.elapsed() < Duration::from_secs(8) {
        if slow.write_all(b"X").and_then(|()| slow.flush()).is_err()
            || closed_within(&mut slow, Duration::from_millis(400))
        {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "a client trickling its headers is still connected after 8 s"
    );

    // Over the cap: of 16 + 8 raw connections from 127.0.0.1 (which the
    // other members share), at least 8 are closed at once — long before the
    // handshake timeout.
    let opened = Instant::now();
    let mut many: Vec<TcpStream> = (0..24).map(|_| raw(addr)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut refused = 0;
    for s in &mut many {
        if closed_within(s, Duration::from_millis(20)) {
            refused += 1;
        }
    }
    assert!(
        opened.elapsed() < Duration::from_millis(1500),
        "counted too late to tell the cap from the handshake timeout"
    );
    assert!(
        refused >= 8,
        "only {refused} of 24 connections were refused"
    );
    drop(many);

    // The agent still serves the domain and the CLI once the greedy client
    // is gone. The CLI shares 127.0.0.1 with it, so its first try may still
    // meet the cap until the agent has seen the dropped connections close.
    let mut last = String::new();
    let served = crate::support::poll(Duration::from_secs(5), || {
        let out = d.asctl(&["status", "--endpoint", &addr.to_string()]);
        last = crate::support::text(&out);
        out.status.success().then_some(())
    });
    assert!(served.is_some(), "status still refused 5 s after: {last}");
    d.stop();
}
