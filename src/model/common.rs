//! Value types shared by several kinds: names, durations, addresses.
//!
//! Each one is parsed into a real type when the document is read, so the rest
//! of the program never re-parses strings.

use super::SmallMap;
use compact_str::CompactString;
use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The naming rule of every object (DNS label, as in Kubernetes).
pub const NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
pub const NAME_MAX_LEN: usize = 63;

/// Implements `Serialize`/`Deserialize` through `Display`/`FromStr`, so that
/// parse errors carry the type's own message.
macro_rules! string_serde {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = Cow::<str>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// An object name: lower-case letters, digits and `-`, at most 63 characters,
/// starting and ending with a letter or digit.
///
/// Kept inline up to 24 bytes (nearly every name): no allocation when a
/// name is read or copied into an index, and comparing two names (the
/// rules look names up by the hundred thousand) reads no other memory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(CompactString);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_valid(s: &str) -> bool {
        let b = s.as_bytes();
        let ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !b.is_empty()
            && b.len() <= NAME_MAX_LEN
            && ok(b[0])
            && ok(b[b.len() - 1])
            && b.iter().all(|&c| ok(c) || c == b'-')
    }
}

impl FromStr for Name {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if Name::is_valid(s) {
            Ok(Name(CompactString::new(s)))
        } else {
            Err(format!(
                "`{s}` is not a valid name: use lower-case letters, digits and `-`, \
                 at most {NAME_MAX_LEN} characters, starting and ending with a letter or digit"
            ))
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

string_serde!(Name);

impl JsonSchema for Name {
    fn schema_name() -> Cow<'static, str> {
        "Name".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "An object name: lower-case letters, digits and `-`, at most 63 characters, starting and ending with a letter or digit.",
            "pattern": NAME_PATTERN,
            "maxLength": NAME_MAX_LEN,
        })
    }
}

/// A duration written as a string: `250ms`, `1s`, `2m`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }
    pub const fn from_secs(s: u64) -> Self {
        Duration(std::time::Duration::from_secs(s))
    }
    pub fn get(self) -> std::time::Duration {
        self.0
    }
}

impl FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s)
            .map(Duration)
            .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. `250ms`, `1s`, `2m`"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

string_serde!(Duration);

/// Accepts what humantime accepts for the units users write in practice.
pub const DURATION_PATTERN: &str = r"^\s*[0-9]+\s*(ns|us|ms|s|sec|secs|m|min|mins|h|hr|hrs|d)(\s*[0-9]+\s*(ns|us|ms|s|sec|secs|m|min|mins|h|hr|hrs|d))*\s*$";

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration: a number and a unit (`ms`, `s`, `m`, `h`), e.g. `250ms`, `1s`, `15m`.",
            "pattern": DURATION_PATTERN,
        })
    }
}

/// An IP network or an address with its prefix length, e.g. `10.1.0.0/24` or
/// `10.1.0.100/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(pub ipnet::IpNet);

impl Cidr {
    pub fn addr(&self) -> IpAddr {
        self.0.addr()
    }
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.contains(ip)
    }
    /// True when the address has no host bits set (`10.1.0.0/24`, not `10.1.0.5/24`).
    pub fn is_network(&self) -> bool {
        self.0.addr() == self.0.network()
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<ipnet::IpNet>().map(Cidr).map_err(|_| {
            format!("`{s}` is not an address with a prefix length; write e.g. `10.1.0.0/24`")
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

string_serde!(Cidr);

impl JsonSchema for Cidr {
    fn schema_name() -> Cow<'static, str> {
        "Cidr".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "An IPv4 or IPv6 address with a prefix length, e.g. `10.1.0.0/24`.",
            "pattern": r"^[0-9a-fA-F:.]+/[0-9]{1,3}$",
        })
    }
}

/// An IPv4 multicast group (224.0.0.0 to 239.255.255.255), e.g. `239.192.0.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MulticastGroup(std::net::Ipv4Addr);

impl MulticastGroup {
    pub fn addr(self) -> std::net::Ipv4Addr {
        self.0
    }
}

impl TryFrom<std::net::Ipv4Addr> for MulticastGroup {
    type Error = String;
    fn try_from(ip: std::net::Ipv4Addr) -> Result<Self, String> {
        if ip.is_multicast() {
            Ok(MulticastGroup(ip))
        } else {
            Err(format!(
                "{ip} is not a multicast group: use an address of 224.0.0.0/4, e.g. `239.192.0.1`"
            ))
        }
    }
}

impl FromStr for MulticastGroup {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ip: std::net::Ipv4Addr = s
            .parse()
            .map_err(|_| format!("`{s}` is not an IPv4 address; write e.g. `239.192.0.1`"))?;
        ip.try_into()
    }
}

impl fmt::Display for MulticastGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

string_serde!(MulticastGroup);

/// The first octet of a multicast group: 224 to 239.
pub const MULTICAST_PATTERN: &str = r"^2(2[4-9]|3[0-9])\.";

impl JsonSchema for MulticastGroup {
    fn schema_name() -> Cow<'static, str> {
        "MulticastGroup".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "ipv4",
            "description": "An IPv4 multicast group (224.0.0.0 to 239.255.255.255), e.g. `239.192.0.1`.",
            "pattern": MULTICAST_PATTERN,
        })
    }
}

/// A `host:port` endpoint, e.g. `127.0.0.1:7401` or `node1.example.com:7400`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("`{s}` is not a `host:port` endpoint; write e.g. `127.0.0.1:7401`");
        let (host, port) = s.rsplit_once(':').ok_or_else(err)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(err());
        }
        let port = port.parse().map_err(|_| err())?;
        Ok(Endpoint {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

string_serde!(Endpoint);

impl JsonSchema for Endpoint {
    fn schema_name() -> Cow<'static, str> {
        "Endpoint".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A `host:port` endpoint, e.g. `127.0.0.1:7401`.",
            "pattern": r"^\S+:[0-9]{1,5}$",
        })
    }
}

/// Identity of every object: its name and optional labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// The object's name, unique among objects of its kind. Other objects refer
    /// to it by this name.
    pub name: Name,
    /// Free-form labels for people and tools; asctl does not interpret them.
    #[serde(default, skip_serializing_if = "SmallMap::is_empty")]
    pub labels: SmallMap<String, String>,
}
