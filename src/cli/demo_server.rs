//! `asctl demo-server`: a tiny HTTP server for the quickstart, so that a
//! local domain needs nothing else installed. It answers `GET /` with the
//! name of the node it runs on, which makes failovers visible with `curl`.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context;
use axum::Router;
use axum::http::HeaderName;
use axum::response::IntoResponse;
use axum::routing::get;
use clap::Args;

use super::EXIT_OK;

#[derive(Debug, Args)]
pub struct DemoServerArgs {
    /// TCP port to listen on.
    #[arg(long)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// The node name to answer with [default: $ASCTL_NODE, which the agent
    /// sets for the processes it starts].
    #[arg(long)]
    pub name: Option<String>,
}

/// `GET /` answers the node name alone on a line, so scripts can compare it;
/// the group (`ASCTL_GROUP`) rides in the `x-asctl-group` header.
/// `GET /health` answers 200 for probes.
pub fn run(args: DemoServerArgs) -> anyhow::Result<ExitCode> {
    let node = args
        .name
        .or_else(|| std::env::var("ASCTL_NODE").ok())
        .context("no node name: pass --name or set ASCTL_NODE")?;
    let group = std::env::var("ASCTL_GROUP").unwrap_or_default();
    let addr = SocketAddr::new(args.bind, args.port);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let app = router(node, group);
        axum::serve(listener, app)
            .with_graceful_shutdown(terminated())
            .await
            .context("the demo server failed")
    })?;
    Ok(ExitCode::from(EXIT_OK))
}

fn router(node: String, group: String) -> Router {
    let root = move || {
        let body = format!("{node}\n");
        let group = group.clone();
        async move { ([(HeaderName::from_static("x-asctl-group"), group)], body).into_response() }
    };
    Router::new()
        .route("/", get(root))
        .route("/health", get(|| async { "ok\n" }))
}

/// SIGTERM (what the agent sends) or Ctrl-C ends the server cleanly.
async fn terminated() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                () = ctrl_c => {}
            }
        }
        Err(_) => ctrl_c.await,
    }
}
