//! What the detector watches: this node's peers and the lines it shares
//! with each, its isolation addresses and the tie-break, from the applied
//! configuration.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::model::{Config, LineRole, Name};

/// The lines one peer shares with this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerLines {
    /// Domain lines (heartbeats) shared with the peer.
    pub domain: Vec<Name>,
    /// The verification line, when both are on it.
    pub verification: Option<Name>,
}

/// How isolation addresses decide, beyond "some address answered".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TieBreak {
    /// Three or more voters (nodes, or two nodes and a witness): the domain
    /// database's quorum prevents two sides from both placing a group, so
    /// any isolation address that answers means "not isolated".
    Quorum,
    /// Two nodes without a witness. An isolation address inside a line's
    /// subnet proves that this node and its peer share a working segment, so
    /// it always counts. A routed address does not prove that, so it counts
    /// only for the node ranked first (the lower name): in a symmetric
    /// partition where both still reach a routed address, only the first
    /// keeps its groups.
    TwoNodes { ranked_first: bool },
}

/// One isolation address and whether it lies inside a line's subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsolationTarget {
    pub address: IpAddr,
    pub on_line: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorConfig {
    /// Silence after which a line, and then a peer, is given up.
    pub timeout: Duration,
    /// The heartbeat interval: how often this node sends each peer a
    /// verification request.
    pub interval: Duration,
    /// Every peer that shares at least one line with this node.
    pub peers: BTreeMap<Name, PeerLines>,
    pub isolation: Vec<IsolationTarget>,
    pub tie_break: TieBreak,
}

impl DetectorConfig {
    /// The detector setup of `node`: its peers are the nodes sharing a line
    /// with it; two nodes without a witness use [`TieBreak::TwoNodes`], the
    /// first in name order being ranked first.
    pub fn from_config(config: &Config, node: &Name) -> DetectorConfig {
        let mut peers: BTreeMap<Name, PeerLines> = BTreeMap::new();
        for line in &config.lines {
            if !line.spec.members.contains_key(node.as_str()) {
                continue;
            }
            for peer in line.spec.members.keys().filter(|p| *p != node) {
                let e = peers.entry(peer.clone()).or_insert(PeerLines {
                    domain: Vec::new(),
                    verification: None,
                });
                match line.spec.role {
                    LineRole::Domain => e.domain.push(line.name().clone()),
                    // With several verification lines the first one is used.
                    LineRole::Verification => {
                        e.verification.get_or_insert_with(|| line.name().clone());
                    }
                }
            }
        }
        let domain = config.domain.as_ref().map(|d| &d.spec);
        let isolation = domain
            .and_then(|d| d.isolation.as_ref())
            .map(|i| {
                i.addresses
                    .iter()
                    .map(|a| IsolationTarget {
                        address: *a,
                        on_line: config.lines.iter().any(|l| l.spec.subnet.contains(a)),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let witness = domain.is_some_and(|d| d.witness.is_some());
        let tie_break = if config.nodes.len() == 2 && !witness {
            let first = config.nodes.iter().map(|n| n.name()).min();
            TieBreak::TwoNodes {
                ranked_first: first == Some(node),
            }
        } else {
            TieBreak::Quorum
        };
        DetectorConfig {
            timeout: domain.map_or(std::time::Duration::from_secs(1), |d| {
                d.heartbeat.timeout.get()
            }),
            interval: domain.map_or(std::time::Duration::from_millis(250), |d| {
                d.heartbeat.interval.get()
            }),
            peers,
            isolation,
            tie_break,
        }
    }
}
