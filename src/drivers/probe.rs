//! Health probes: `exec` (a command exits 0), `tcp` (a connection is
//! accepted), `http` (a GET answers 2xx/3xx) — each within a timeout.
//!
//! A probe never fails the caller: whatever goes wrong (timeout, refused
//! connection, bad URL) is an [`ResourceHealth::Unhealthy`] with the reason, because
//! to the reconciler all of them mean the same thing.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::model::Probe;

use super::ResourceHealth;

/// Runs one probe, bounded by `timeout`.
pub async fn run(probe: &Probe, timeout: Duration) -> ResourceHealth {
    let work = async {
        match probe {
            Probe::Exec(argv) => exec(argv).await,
            Probe::Tcp(ep) => tcp(&ep.host, ep.port).await,
            Probe::Http(url) => http(url).await,
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(health) => health,
        Err(_) => ResourceHealth::Unhealthy(format!(
            "{} probe did not answer within {}",
            kind(probe),
            humantime::format_duration(timeout)
        )),
    }
}

fn kind(probe: &Probe) -> &'static str {
    match probe {
        Probe::Exec(_) => "exec",
        Probe::Tcp(_) => "tcp",
        Probe::Http(_) => "http",
    }
}

async fn exec(argv: &[String]) -> ResourceHealth {
    let Some((program, args)) = argv.split_first() else {
        return ResourceHealth::Unhealthy("exec probe has an empty command".into());
    };
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Dropped on timeout: the probe must not outlive its verdict.
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return ResourceHealth::Unhealthy(format!("exec probe `{program}` cannot start: {e}"));
        }
    };
    match child.wait().await {
        Ok(s) if s.success() => ResourceHealth::Healthy,
        Ok(s) => ResourceHealth::Unhealthy(format!("exec probe `{program}` exited with {s}")),
        Err(e) => ResourceHealth::Unhealthy(format!("exec probe `{program}`: {e}")),
    }
}

async fn tcp(host: &str, port: u16) -> ResourceHealth {
    match TcpStream::connect((host, port)).await {
        Ok(_) => ResourceHealth::Healthy,
        Err(e) => ResourceHealth::Unhealthy(format!("tcp probe {host}:{port}: {e}")),
    }
}

async fn http(url: &str) -> ResourceHealth {
    match http_status(url).await {
        Ok(status) if status.is_success() || status.is_redirection() => ResourceHealth::Healthy,
        Ok(status) => ResourceHealth::Unhealthy(format!("http probe {url} answered {status}")),
        Err(reason) => ResourceHealth::Unhealthy(format!("http probe {url}: {reason}")),
    }
}

/// One HTTP/1.1 GET on a fresh connection. A full client (pooling, TLS,
/// redirects) would be dead weight for a local health check.
async fn http_status(url: &str) -> Result<hyper::StatusCode, String> {
    let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// URLs can be probed".into());
    }
    let host = uri.host().ok_or("the URL has no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let stream = TcpStream::connect((bare_host, port))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    // The connection future drives the socket; the guard aborts it however
    // this function ends, a timeout included, so no socket outlives the probe.
    let _driver = AbortOnDrop(tokio::spawn(conn));
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or(host.as_str(), |a| a.as_str());
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "asctl-probe")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
    Ok(res.status())
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
