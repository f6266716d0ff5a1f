//! Connection hygiene: no client holds a connection of the API without
//! doing its part. Anyone who can reach the port can open connections
//! before any token is checked, so each is bounded in time and their
//! number per peer address is capped:
//!
//! - the TLS handshake must finish within `handshakeTimeout`;
//! - a request's headers must arrive within `headerTimeout`;
//! - a connection that moves no byte either way for `idleTimeout` is closed;
//! - at most `perPeer` connections from one IP address are open at once;
//!   one more is closed as soon as it is accepted.

use std::collections::HashMap;
use std::future::Ready;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// `connections:` in agent.yaml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Limits {
    pub handshake_timeout: crate::model::Duration,
    pub header_timeout: crate::model::Duration,
    /// Longer than the members' own idle pool (30 s), so that a member's
    /// kept-alive connection is retired by the member, not cut under a
    /// request it is about to send.
    pub idle_timeout: crate::model::Duration,
    pub per_peer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        use crate::model::Duration as D;
        Limits {
            handshake_timeout: D::from_secs(5),
            header_timeout: D::from_secs(10),
            idle_timeout: D::from_secs(60),
            // Every member, `asctl` and a local domain's agents share
            // 127.0.0.1: room for all of them, not for a descriptor flood.
            per_peer: 64,
        }
    }
}

/// The open connections per peer address.
#[derive(Debug, Clone, Default)]
struct Counts(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl Counts {
    fn take(&self, ip: IpAddr, cap: usize) -> Option<Permit> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Permit {
            counts: self.clone(),
            ip,
        })
    }
}

/// One open connection of `ip`, given back when the connection is dropped.
#[derive(Debug)]
struct Permit {
    counts: Counts,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// The acceptor under TLS: counts the peer's connections and arms the idle
/// timeout on the raw stream (so it covers the handshake too).
#[derive(Debug, Clone)]
pub struct Hygiene {
    limits: Limits,
    counts: Counts,
}

impl Hygiene {
    pub fn new(limits: Limits) -> Hygiene {
        Hygiene {
            limits,
            counts: Counts::default(),
        }
    }
}

impl<S> axum_server::accept::Accept<TcpStream, S> for Hygiene {
    type Stream = Guarded<TcpStream>;
    type Service = S;
    type Future = Ready<io::Result<(Guarded<TcpStream>, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let accepted = stream.peer_addr().and_then(|peer| {
            let permit = self
                .counts
                .take(peer.ip(), self.limits.per_peer)
                .ok_or_else(|| {
                    tracing::debug!(%peer, "connection refused: too many from this address");
                    io::Error::other("too many connections from this address")
                })?;
            Ok((
                Guarded::new(stream, permit, self.limits.idle_timeout.get()),
                service,
            ))
        });
        std::future::ready(accepted)
    }
}

/// A stream closed (reads and writes fail with `TimedOut`) once it moved no
/// byte for its idle time.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    _permit: Permit,
}

impl<S> Guarded<S> {
    fn new(inner: S, permit: Permit, idle: Duration) -> Self {
        Guarded {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            _permit: permit,
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }

    fn moved(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }
}

fn idle_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "idle connection closed")
}

use std::future::Future as _;

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_open_connections_per_address() {
        let counts = Counts::default();
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let one = counts.take(a, 2).expect("first");
        let two = counts.take(a, 2).expect("second");
        assert!(counts.take(a, 2).is_none(), "a third from the same address");
        assert!(counts.take(b, 2).is_some(), "another address has its own");
        drop(one);
        assert!(counts.take(a, 2).is_some(), "a closed one makes room");
        drop(two);
    }

    #[test]
    fn defaults_and_overrides() {
        let l: Limits = serde_json::from_str(r#"{"idleTimeout": "2s", "perPeer": 3}"#).expect("ok");
        assert_eq!(l.idle_timeout.get(), Duration::from_secs(2));
        assert_eq!(l.per_peer, 3);
        assert_eq!(l.handshake_timeout.get(), Duration::from_secs(5));
        assert!(serde_json::from_str::<Limits>(r#"{"idle": "2s"}"#).is_err());
    }
}
