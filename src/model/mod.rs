//! The kinds of an asctl configuration, as typed Rust values.
//!
//! Every type here derives `serde` (to read it) and `schemars` (to publish the
//! JSON Schema editors and `asctl validate` use). Doc comments on fields are
//! the hover text users see in their editor, so they are written for users.
//!
//! This module is pure data: no I/O, no validation beyond what the types
//! themselves can express. Cross-object rules live in `crate::rules`.

mod common;
mod config;
mod datasource;
mod domain;
pub mod exec_limits;
mod group;
mod host;
mod line;
mod node;
mod ocf;
pub mod ocf_metadata;
pub mod schema;
mod small_map;

pub use common::*;
pub use config::*;
pub use datasource::*;
pub use domain::*;
pub use group::*;
pub use host::*;
pub use line::*;
pub use node::*;
pub use ocf::*;
pub use small_map::SmallMap;

/// Helpers for the crate's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::Name;

    /// A name the test knows to be valid.
    pub fn n(s: &str) -> Name {
        s.parse().expect("valid name")
    }
}

/// The only `apiVersion` this build understands.
pub const API_VERSION: &str = "asctl/v1";

/// The kinds a document may declare, in the order the schema lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Domain,
    Host,
    Node,
    NetworkLine,
    DataSource,
    ResourceGroup,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Domain,
        Kind::Host,
        Kind::Node,
        Kind::NetworkLine,
        Kind::DataSource,
        Kind::ResourceGroup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Domain => "Domain",
            Kind::Host => "Host",
            Kind::Node => "Node",
            Kind::NetworkLine => "NetworkLine",
            Kind::DataSource => "DataSource",
            Kind::ResourceGroup => "ResourceGroup",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The `Kind/name` key of an object, as findings, `accept.objects` and
    /// plan addresses write it.
    pub fn key(self, name: &str) -> String {
        format!("{self}/{name}")
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
