//! The HTTPS client of the control API: raft RPCs between agents, writes
//! forwarded to the leader, and the CLI.
//!
//! Connections are pooled (hyper's client), so the raft heartbeats of an
//! idle domain reuse one TLS session per peer instead of a handshake each.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot reach the agent at {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("the agent at {addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("the agent at {addr} refused the token (401): check --token / ASCTL_TOKEN")]
    Unauthorized { addr: String },
    #[error("the agent at {addr} answered {status}: {body}")]
    Status {
        addr: String,
        status: StatusCode,
        body: String,
    },
    #[error("the agent at {addr} sent an unreadable answer: {message}")]
    Decode { addr: String, message: String },
}

impl ClientError {
    /// Whether another member might answer (the agent is down or slow), as
    /// opposed to an answer that would be the same everywhere.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. } | ClientError::Timeout { .. }
        )
    }
}

/// How long a TCP connection to a member may take to open. Members are on
/// one LAN (or loopback): a connection not open by then is a member down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A client bound to a CA and a token.
#[derive(Clone)]
pub struct Client {
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    token: Arc<str>,
    pub timeout: Duration,
    /// Who asks ([`crate::wire::api::BY_HEADER`]), sent with every request.
    by: Option<Arc<str>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// `tls` carries the roots that agents' certificates must chain to.
    pub fn new(tls: rustls::ClientConfig, token: &str) -> Client {
        // A member that is down must cost a caller that has others to ask
        // a second at most, not the whole request timeout.
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(tcp);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Client {
            http,
            token: token.into(),
            timeout: Duration::from_secs(10),
            by: None,
        }
    }

    /// Names who asks in every request (`user@host`; the CLI's own name).
    pub fn with_by(mut self, by: &str) -> Client {
        self.by = Some(by.into());
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// `GET https://addr/path`.
    pub async fn get<R: DeserializeOwned>(&self, addr: &str, path: &str) -> Result<R, ClientError> {
        self.call::<(), R>(Method::GET, addr, path, None).await
    }

    /// `POST https://addr/path` with a JSON body.
    pub async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: &B,
    ) -> Result<R, ClientError> {
        self.call(Method::POST, addr, path, Some(body)).await
    }

    async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        method: Method,
        addr: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<R, ClientError> {
        let decode = |message: String| ClientError::Decode {
            addr: addr.to_owned(),
            message,
        };
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| decode(e.to_string()))?,
            None => Vec::new(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(format!("https://{addr}{path}"))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json");
        if let Some(by) = &self.by {
            req = req.header(crate::wire::api::BY_HEADER, by.as_ref());
        }
        let req = req
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| ClientError::Connect {
                addr: addr.to_owned(),
                message: e.to_string(),
            })?;
        let work = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| ClientError::Connect {
                    addr: addr.to_owned(),
                    message: error_chain(&e),
                })?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Connect {
                    addr: addr.to_owned(),
                    message: e.to_string(),
                })?
                .to_bytes();
            Ok::<_, ClientError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ClientError::Timeout {
                addr: addr.to_owned(),
                timeout: self.timeout,
            })??;
        if status == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized {
                addr: addr.to_owned(),
            });
        }
        if !status.is_success() {
            let body = String::from_utf8_lossy(&body).trim().to_owned();
            return Err(ClientError::Status {
                addr: addr.to_owned(),
                status,
                body,
            });
        }
        serde_json::from_slice(&body).map_err(|e| decode(e.to_string()))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
