//! Isolation probes: can this node still reach the outside world?
//!
//! The method is chosen once, at start, in this order:
//! 1. **ICMP echo over an unprivileged datagram socket**
//!    (`socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)`), allowed when the agent's
//!    group is inside `net.ipv4.ping_group_range`. The kernel fills in the
//!    identifier and routes replies to this socket only.
//! 2. **ICMP echo over a raw socket**, when the agent runs as root (or with
//!    `CAP_NET_RAW`). Replies to every ping on the machine arrive, so they are
//!    matched on source, identifier and sequence.
//! 3. **TCP connect** to `isolation.tcpPort` on each address, when neither
//!    ICMP socket may be opened. An accepted connection and a refusal (RST)
//!    both prove the address reachable; only silence does not.
//!
//! Without any of them the agent cannot tell isolation and says so at start
//! ([`IsolationError::NoMethod`]) rather than guessing.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    #[error(
        "cannot probe isolation addresses: ICMP is not allowed ({icmp}) and `isolation.tcpPort` is not set; \
         widen net.ipv4.ping_group_range, run the agent with CAP_NET_RAW, or set isolation.tcpPort"
    )]
    NoMethod { icmp: io::Error },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    IcmpDatagram,
    IcmpRaw,
    Tcp(u16),
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::IcmpDatagram => "icmp (datagram socket)",
            Method::IcmpRaw => "icmp (raw socket)",
            Method::Tcp(_) => "tcp connect",
        }
    }
}

#[derive(Debug)]
pub struct Prober {
    method: Method,
    sequence: AtomicU16,
    ident: u16,
}

fn icmp_socket(ty: Type, v6: bool) -> io::Result<Socket> {
    let (domain, proto) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    Socket::new(domain, ty, Some(proto))
}

impl Prober {
    /// Picks the first method this process may use; `force` skips the choice
    /// (tests exercise each method).
    pub fn new(tcp_port: Option<u16>, force: Option<Method>) -> Result<Self, IsolationError> {
        let method = match force {
            Some(m) => m,
            None => match icmp_socket(Type::DGRAM, false) {
                Ok(_) => Method::IcmpDatagram,
                Err(dgram) => match (icmp_socket(Type::RAW, false), tcp_port) {
                    (Ok(_), _) => Method::IcmpRaw,
                    (Err(_), Some(p)) => Method::Tcp(p),
                    (Err(_), None) => return Err(IsolationError::NoMethod { icmp: dgram }),
                },
            },
        };
        Ok(Prober {
            method,
            sequence: AtomicU16::new(1),
            ident: (std::process::id() & 0xffff) as u16,
        })
    }

    pub fn method(&self) -> Method {
        self.method
    }

    /// Whether `addr` answered within `timeout`. Errors (no route, a
    /// refused socket) are "not reachable": isolation is exactly the state
    /// in which such errors are expected.
    pub async fn probe(&self, addr: IpAddr, timeout: Duration) -> bool {
        let attempt = async {
            match self.method {
                Method::IcmpDatagram => self.echo(addr, Type::DGRAM).await,
                Method::IcmpRaw => self.echo(addr, Type::RAW).await,
                Method::Tcp(port) => tcp(addr, port).await,
            }
        };
        matches!(tokio::time::timeout(timeout, attempt).await, Ok(Ok(true)))
    }

    async fn echo(&self, addr: IpAddr, ty: Type) -> io::Result<bool> {
        let v6 = addr.is_ipv6();
        let s = icmp_socket(ty, v6)?;
        s.set_nonblocking(true)?;
        let sock = UdpSocket::from_std(s.into())?;
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        let request = echo_request(v6, self.ident, seq);
        sock.send_to(&request, SocketAddr::new(addr, 0)).await?;
        let mut buf = [0u8; 1500];
        loop {
            let (len, from) = sock.recv_from(&mut buf).await?;
            if from.ip() != addr {
                continue;
            }
            let mut icmp = &buf[..len];
            // A raw IPv4 socket hands over the IP header too; IPv6 raw and
            // both datagram sockets start at the ICMP header.
            if ty == Type::RAW && !v6 {
                let ihl = usize::from(icmp.first().copied().unwrap_or(0) & 0x0f) * 4;
                icmp = icmp.get(ihl..).unwrap_or(&[]);
            }
            if is_echo_reply(icmp, v6, (ty == Type::RAW).then_some(self.ident), seq) {
                return Ok(true);
            }
        }
    }
}

async fn tcp(addr: IpAddr, port: u16) -> io::Result<bool> {
    match tokio::net::TcpStream::connect(SocketAddr::new(addr, port)).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(true),
        Err(e) => Err(e),
    }
}

fn echo_request(v6: bool, ident: u16, seq: u16) -> Vec<u8> {
    let ty = if v6 { 128 } else { 8 };
    let mut p = vec![ty, 0, 0, 0];
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(b"asctl-isolation");
    // ICMPv6 checksums cover a pseudo-header and are filled in by the kernel.
    if !v6 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// `ident`: checked only on raw sockets (datagram sockets get the kernel's
/// own identifier and only their own replies).
fn is_echo_reply(icmp: &[u8], v6: bool, ident: Option<u16>, seq: u16) -> bool {
    let reply = if v6 { 129 } else { 0 };
    icmp.len() >= 8
        && icmp[0] == reply
        && icmp[1] == 0
        && ident.is_none_or(|id| icmp[4..6] == id.to_be_bytes())
        && icmp[6..8] == seq.to_be_bytes()
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], chunk.get(1).copied().unwrap_or(0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_request_verifies_to_zero() {
        let p = echo_request(false, 0x1234, 7);
        assert_eq!(checksum(&p), 0);
    }

    #[test]
    fn reply_matching() {
        let mut r = echo_request(false, 9, 3);
        r[0] = 0;
        assert!(is_echo_reply(&r, false, Some(9), 3));
        assert!(is_echo_reply(&r, false, None, 3));
        assert!(!is_echo_reply(&r, false, Some(8), 3));
        assert!(!is_echo_reply(&r, false, Some(9), 4));
        assert!(!is_echo_reply(&r[..7], false, None, 3));
    }

    #[tokio::test]
    async fn tcp_refusal_counts_as_reachable() {
        // A port nobody listens on, on loopback: refused at once.
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let p = Prober::new(Some(port), Some(Method::Tcp(port))).expect("prober");
        assert!(
            p.probe("127.0.0.1".parse().expect("ip"), Duration::from_secs(2))
                .await
        );
    }
}
