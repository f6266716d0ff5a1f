//! `agent.yaml`: what one agent needs to start, and the agent's errors.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::agent::server::tls;
use crate::domain::{Member, WITNESS};

/// `agent.yaml`. Relative paths are relative to the file's directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentConfig {
    /// This node's name, as in the configuration (ignored for a witness).
    #[serde(default)]
    pub node: Option<String>,
    /// Where the API listens (default `127.0.0.1:7401`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The address other members and the CLI use (default: `listen`).
    #[serde(default)]
    pub advertise: Option<String>,
    /// Raft log, snapshots, process logs and pid files.
    pub data_dir: PathBuf,
    /// A file whose first line is the domain's API token.
    pub token_file: PathBuf,
    pub tls: TlsFiles,
    /// The founding members, `name: host:port` (this node may be listed).
    #[serde(default)]
    pub peers: BTreeMap<String, String>,
    /// Or: the domain's configuration (file or directory); the founding
    /// members are its nodes (by `agent.address`) and its witness.
    #[serde(default)]
    pub bootstrap: Option<PathBuf>,
    /// Run as the witness: vote, run no groups.
    #[serde(default)]
    pub witness: bool,
    /// Listen on a non-loopback address. Off by default so that a test or
    /// demo agent is never reachable from the network by accident.
    #[serde(default)]
    pub allow_remote: bool,
    /// Time limits and the per-address cap of the API's connections.
    #[serde(default)]
    pub connections: crate::agent::server::hygiene::Limits,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA that signs every member's certificate.
    pub ca: PathBuf,
}

pub(super) fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7401))
}

#[derive(Debug, Error)]
pub enum AgentError {
    #[error("{path}: {message}")]
    Config { path: String, message: String },
    // Transparent: a message of its own plus the same error as its source
    // would print the cause twice in a chain.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Domain(#[from] crate::domain::DomainError),
    /// The agent exits non-zero so that a service manager restarts it.
    #[error(
        "the raft core stopped: {0}; this node's groups were taken offline (fix the cause, then \
         restart the agent)"
    )]
    RaftStopped(String),
    #[error(
        "{0}; this node's groups were taken offline (restart the agent; report the failure if it \
         repeats)"
    )]
    TaskFailed(String),
    #[error("{what}: {err}")]
    Io { what: String, err: std::io::Error },
}

impl AgentConfig {
    /// Reads `agent.yaml` with the project's YAML reader.
    pub fn read(path: &Path) -> Result<AgentConfig, AgentError> {
        let err = |message: String| AgentError::Config {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let parsed = crate::load::yaml::parse(&text);
        if let Some(p) = parsed.problems.first() {
            return Err(err(p.message.clone()));
        }
        let root = parsed
            .documents
            .first()
            .and_then(|d| d.root.as_ref())
            .ok_or_else(|| err("empty file".into()))?;
        let mut cfg: AgentConfig =
            serde_json::from_value(root.to_json()).map_err(|e| err(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut cfg.data_dir);
        abs(&mut cfg.token_file);
        abs(&mut cfg.tls.cert);
        abs(&mut cfg.tls.key);
        abs(&mut cfg.tls.ca);
        if let Some(b) = &mut cfg.bootstrap {
            abs(b);
        }
        if !cfg.allow_remote && !cfg.listen.ip().is_loopback() {
            return Err(err(format!(
                "listen: {} is not a loopback address; set `allowRemote: true` to serve the \
                 network",
                cfg.listen
            )));
        }
        if !cfg.witness && cfg.node.is_none() {
            return Err(err(
                "`node` is required (the node's name in the configuration)".into(),
            ));
        }
        Ok(cfg)
    }

    pub(super) fn member_name(&self) -> String {
        if self.witness {
            WITNESS.into()
        } else {
            self.node.clone().unwrap_or_default()
        }
    }

    /// This member as the others reach it.
    pub(super) fn member(&self) -> Member {
        Member {
            name: self.member_name(),
            addr: self
                .advertise
                .clone()
                .unwrap_or_else(|| self.listen.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(yaml: &str) -> Result<AgentConfig, AgentError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.yaml");
        std::fs::write(&path, yaml).expect("write");
        AgentConfig::read(&path)
    }

    const BASE: &str = "node: node1\ndataDir: data\ntokenFile: token\n\
                        tls: {cert: n.crt, key: n.key, ca: ca.crt}\n";

    #[test]
    fn the_api_listens_on_loopback_unless_remote_access_is_allowed() {
        // The default and explicit loopback addresses are fine.
        let cfg = read(BASE).expect("loopback by default");
        assert_eq!(cfg.listen, default_listen());
        assert!(cfg.listen.ip().is_loopback());
        for listen in ["127.0.0.1:7401", "127.0.5.9:7401", "\"[::1]:7401\""] {
            let cfg = read(&format!("{BASE}listen: {listen}\n"));
            assert!(cfg.is_ok(), "{listen}: {:?}", cfg.err());
        }
        // Any other address is refused, with what to do about it.
        for listen in ["0.0.0.0:7401", "10.0.0.1:7401", "\"[::]:7401\""] {
            let err = read(&format!("{BASE}listen: {listen}\n"))
                .err()
                .unwrap_or_else(|| panic!("{listen} accepted without allowRemote"));
            let message = err.to_string();
            assert!(message.contains("not a loopback address"), "{message}");
            assert!(message.contains("allowRemote: true"), "{message}");
            let cfg = read(&format!("{BASE}listen: {listen}\nallowRemote: true\n"));
            assert!(cfg.is_ok(), "{listen} with allowRemote: {:?}", cfg.err());
        }
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.yaml");
        std::fs::write(&path, BASE).expect("write");
        let cfg = AgentConfig::read(&path).expect("reads");
        assert_eq!(cfg.data_dir, dir.path().join("data"));
        assert_eq!(cfg.tls.ca, dir.path().join("ca.crt"));
    }
}
