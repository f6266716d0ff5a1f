//! The heartbeat wire format: small, versioned, authenticated.
//!
//! ```text
//! offset size
//!  0     4    magic "ASHB"
//!  4     1    version (1)
//!  5     1    kind: 1 heartbeat, 2 verification request, 3 verification reply
//!  6     1    flags: bit 0 = the sender runs groups outside the domain's
//!               committed placement (FLAG_TAKEOVER); other bits zero
//!  7     1    reserved, zero
//!  8     8    incarnation  (big-endian; the sender's agent run, see below)
//! 16     8    sequence     (per sender and run, strictly increasing)
//! 24     8    timestamp    (sender's wall clock, ms since the Unix epoch)
//! 32     8    echo         (verification reply: the request's sequence; else 0)
//! 40     1+n  domain name  (length byte, then the name)
//!  …     1+n  sender name
//!  …     1+n  line name
//!  …     32   HMAC-SHA256 over every byte before it, keyed by the domain key
//! ```
//!
//! At most 40 + 3·64 + 32 = 264 bytes: one datagram on any network.
//!
//! Replays: each receiver keeps, per sender, line and kind, the highest
//! (incarnation, sequence) it accepted and drops anything not newer. The
//! incarnation is chosen by the sender at start (microseconds since the
//! epoch, or a persisted counter) so a restarted agent is accepted at once
//! while packets captured from an earlier run are not. The timestamp is
//! informational (clocks are not assumed to be in sync) and never decides.

use std::collections::HashMap;
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::model::Name;

pub const MAGIC: [u8; 4] = *b"ASHB";
pub const VERSION: u8 = 1;
const HEADER: usize = 40;
const TAG: usize = 32;
/// Receive buffer size: larger than any valid packet, so an oversized one is
/// seen as such and not silently truncated into something that parses.
pub const MAX_PACKET: usize = 512;

/// The shared secret of a domain. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct DomainKey(Vec<u8>);

impl DomainKey {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        DomainKey(bytes.into())
    }

    /// The heartbeat key derived from another domain secret (the API token),
    /// so an agent needs no second secret: HMAC-SHA256(secret, label). The
    /// label keeps the two uses apart: a heartbeat tag never doubles as
    /// anything the API accepts.
    pub fn derive(secret: &[u8]) -> Self {
        let mut m =
            <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC accepts any key length");
        m.update(b"asctl/v1 heartbeat key");
        DomainKey(m.finalize().into_bytes().to_vec())
    }
}

impl fmt::Debug for DomainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DomainKey(…)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Heartbeat = 1,
    VerifyRequest = 2,
    VerifyReply = 3,
}

/// The sender runs groups that the domain's committed placement does not
/// put on it (a local takeover, or a group still stopping after a move):
/// a two-node peer starts nothing new while it sees this (docs/ha.md).
pub const FLAG_TAKEOVER: u8 = 0x01;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub kind: Kind,
    /// [`FLAG_TAKEOVER`]; unknown bits are ignored by readers.
    pub flags: u8,
    pub incarnation: u64,
    pub sequence: u64,
    pub timestamp_ms: u64,
    pub echo: u64,
    pub domain: Name,
    pub sender: Name,
    pub line: Name,
}

/// Why a received packet was dropped; each one is a counter per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Not an asctl heartbeat of a version we read, or cut short.
    Malformed,
    /// A heartbeat of another domain on the same network.
    ForeignDomain,
    /// The HMAC does not match: forged, or sent with another key.
    BadMac,
    /// Authenticated, but the sender is not a member of the line, or the
    /// packet came from an address other than the sender's on that line.
    UnknownSender,
    /// Not newer than what was already accepted from that sender on that line.
    Replay,
}

impl DropReason {
    pub const ALL: [DropReason; 5] = [
        DropReason::Malformed,
        DropReason::ForeignDomain,
        DropReason::BadMac,
        DropReason::UnknownSender,
        DropReason::Replay,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::ForeignDomain => "foreign_domain",
            DropReason::BadMac => "bad_mac",
            DropReason::UnknownSender => "unknown_sender",
            DropReason::Replay => "replay",
        }
    }
}

fn mac(key: &DomainKey) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    <Hmac<Sha256> as KeyInit>::new_from_slice(&key.0).expect("HMAC accepts any key length")
}

impl Packet {
    pub fn encode(&self, key: &DomainKey) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER + 3 * 64 + TAG);
        b.extend_from_slice(&MAGIC);
        b.push(VERSION);
        b.push(self.kind as u8);
        b.extend_from_slice(&[self.flags, 0]);
        for v in [
            self.incarnation,
            self.sequence,
            self.timestamp_ms,
            self.echo,
        ] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        for name in [&self.domain, &self.sender, &self.line] {
            // Names are at most 63 bytes (model::NAME_MAX_LEN).
            let s = name.as_str().as_bytes();
            b.push(s.len() as u8);
            b.extend_from_slice(s);
        }
        let mut m = mac(key);
        m.update(&b);
        b.extend_from_slice(&m.finalize().into_bytes());
        b
    }

    /// Parses and authenticates `bytes`. The domain is compared before the
    /// MAC so that a neighbouring domain's traffic is counted as foreign,
    /// not as forged.
    pub fn decode(bytes: &[u8], domain: &str, key: &DomainKey) -> Result<Packet, DropReason> {
        if bytes.len() < HEADER + 3 + TAG || bytes[..4] != MAGIC || bytes[4] != VERSION {
            return Err(DropReason::Malformed);
        }
        let (body, tag) = bytes.split_at(bytes.len() - TAG);
        let kind = match body[5] {
            1 => Kind::Heartbeat,
            2 => Kind::VerifyRequest,
            3 => Kind::VerifyReply,
            _ => return Err(DropReason::Malformed),
        };
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&body[o..o + 8]);
            u64::from_be_bytes(a)
        };
        let mut rest = &body[HEADER..];
        let mut names = Vec::with_capacity(3);
        for _ in 0..3 {
            let (&len, tail) = rest.split_first().ok_or(DropReason::Malformed)?;
            let len = usize::from(len);
            if tail.len() < len {
                return Err(DropReason::Malformed);
            }
            let s = std::str::from_utf8(&tail[..len]).map_err(|_| DropReason::Malformed)?;
            names.push(s);
            rest = &tail[len..];
        }
        if !rest.is_empty() {
            return Err(DropReason::Malformed);
        }
        if names[0] != domain {
            return Err(DropReason::ForeignDomain);
        }
        let mut m = mac(key);
        m.update(body);
        // verify_slice compares in constant time.
        m.verify_slice(tag).map_err(|_| DropReason::BadMac)?;
        let name = |s: &str| s.parse::<Name>().map_err(|_| DropReason::Malformed);
        Ok(Packet {
            flags: body[6],
            kind,
            incarnation: u64_at(8),
            sequence: u64_at(16),
            timestamp_ms: u64_at(24),
            echo: u64_at(32),
            domain: name(names[0])?,
            sender: name(names[1])?,
            line: name(names[2])?,
        })
    }
}

/// The newest (incarnation, sequence) accepted per sender, line and kind.
///
/// Per kind, because a sender numbers all its packets from one counter but
/// sends them from different tasks — heartbeats and verification requests
/// from its send task, verification replies from its receive task — so two
/// kinds can leave it in the opposite order of their numbers (a request
/// numbered 10 sent after a reply numbered 11). Within one kind the order
/// sent is the order numbered, and a replay is still refused.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: HashMap<(Name, Name, Kind), (u64, u64)>,
}

impl ReplayGuard {
    /// Accepts the packet and records it if it is newer than anything
    /// accepted from that sender on that line; otherwise it is a replay (or
    /// a reordered duplicate, which the detector has no use for either).
    pub fn accept(&mut self, p: &Packet) -> Result<(), DropReason> {
        let key = (p.sender.clone(), p.line.clone(), p.kind);
        let new = (p.incarnation, p.sequence);
        match self.seen.get_mut(&key) {
            Some(old) if *old >= new => Err(DropReason::Replay),
            Some(old) => {
                *old = new;
                Ok(())
            }
            None => {
                self.seen.insert(key, new);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::model::testing::n;

    fn sample() -> Packet {
        Packet {
            flags: FLAG_TAKEOVER,
            kind: Kind::Heartbeat,
            incarnation: 17,
            sequence: 42,
            timestamp_ms: 1_700_000_000_000,
            echo: 0,
            domain: n("sales"),
            sender: n("node1"),
            line: n("public"),
        }
    }

    fn key() -> DomainKey {
        DomainKey::new(b"correct horse battery staple".to_vec())
    }

    #[test]
    fn round_trip() {
        let p = sample();
        let b = p.encode(&key());
        assert_eq!(b.len(), 40 + 6 + 6 + 7 + 32);
        assert_eq!(Packet::decode(&b, "sales", &key()), Ok(p));
    }

    #[test]
    fn derived_keys_differ_by_secret_and_from_the_secret() {
        let a = DomainKey::derive(b"token-a");
        assert_eq!(a, DomainKey::derive(b"token-a"));
        assert_ne!(a, DomainKey::derive(b"token-b"));
        assert_ne!(a, DomainKey::new(b"token-a".to_vec()));
    }

    #[test]
    fn wrong_key_is_bad_mac() {
        let b = sample().encode(&DomainKey::new(b"other".to_vec()));
        assert_eq!(Packet::decode(&b, "sales", &key()), Err(DropReason::BadMac));
    }

    #[test]
    fn other_domain_is_foreign() {
        let b = sample().encode(&key());
        assert_eq!(
            Packet::decode(&b, "hr", &key()),
            Err(DropReason::ForeignDomain)
        );
    }

    #[test]
    fn truncated_or_padded_is_malformed() {
        let b = sample().encode(&key());
        for cut in 0..b.len() {
            assert!(Packet::decode(&b[..cut], "sales", &key()).is_err());
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(Packet::decode(&longer, "sales", &key()).is_err());
    }

    #[test]
    fn replay_guard_orders_by_incarnation_then_sequence() {
        let mut g = ReplayGuard::default();
        let mut p = sample();
        assert_eq!(g.accept(&p), Ok(()));
        assert_eq!(g.accept(&p), Err(DropReason::Replay));
        p.sequence = 41;
        assert_eq!(g.accept(&p), Err(DropReason::Replay));
        // A restarted sender starts its sequence again under a newer run.
        p.incarnation = 18;
        p.sequence = 1;
        assert_eq!(g.accept(&p), Ok(()));
        // The old run's packets are replays now.
        p.incarnation = 17;
        p.sequence = 1000;
        assert_eq!(g.accept(&p), Err(DropReason::Replay));
        // Lines are tracked apart.
        p.line = n("private");
        assert_eq!(g.accept(&p), Ok(()));
    }

    #[test]
    fn kinds_sent_by_different_tasks_may_arrive_out_of_order() {
        let mut g = ReplayGuard::default();
        let mut reply = sample();
        reply.kind = Kind::VerifyReply;
        reply.sequence = 11;
        let mut request = sample();
        request.kind = Kind::VerifyRequest;
        request.sequence = 10;
        assert_eq!(g.accept(&reply), Ok(()));
        assert_eq!(
            g.accept(&request),
            Ok(()),
            "a genuine request, numbered first"
        );
        assert_eq!(g.accept(&request), Err(DropReason::Replay));
        assert_eq!(g.accept(&reply), Err(DropReason::Replay));
    }

    proptest! {
        /// Flipping any bit of a valid packet never yields a packet that
        /// passes as authentic.
        #[test]
        fn any_bit_flip_is_rejected(bit in 0usize..(91 * 8)) {
            let mut b = sample().encode(&key());
            let bit = bit % (b.len() * 8);
            b[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(Packet::decode(&b, "sales", &key()).is_err());
        }

        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn garbage_never_panics(b in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = Packet::decode(&b, "sales", &key());
        }
    }
}
