//! Probes (exec, TCP, HTTP) and the demo server they are tested against.

use super::*;

/// A one-shot HTTP responder on a thread: answers every connection with
/// `response`, or never answers when `None`.
fn responder(response: Option<&'static str>) -> u16 {
    let l = crate::support::listener();
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut conn in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            match response {
                Some(r) => {
                    let _ = conn.write_all(r.as_bytes());
                }
                None => held.push(conn),
            }
        }
    });
    port
}

fn unhealthy(h: ResourceHealth) -> String {
    match h {
        ResourceHealth::Unhealthy(why) => why,
        other => panic!("expected unhealthy: {other:?}"),
    }
}

const T: Duration = Duration::from_secs(2);

#[tokio::test]
async fn exec_probe_passes_on_exit_zero_and_fails_otherwise() {
    let ok = Probe::Exec(vec!["true".into()]);
    assert_eq!(probe::run(&ok, T).await, ResourceHealth::Healthy);

    let bad = Probe::Exec(vec!["sh".into(), "-c".into(), "exit 4".into()]);
    assert!(unhealthy(probe::run(&bad, T).await).contains("exit status: 4"));

    let missing = Probe::Exec(vec!["/nonexistent/probe".into()]);
    assert!(unhealthy(probe::run(&missing, T).await).contains("cannot start"));
}

#[tokio::test]
async fn exec_probe_times_out() {
    let slow = Probe::Exec(vec!["sleep".into(), "5".into()]);
    let started = Instant::now();
    let why = unhealthy(probe::run(&slow, Duration::from_millis(200)).await);
    assert!(why.contains("within 200ms"), "{why}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn tcp_probe_passes_on_a_listener_and_fails_on_a_closed_port() {
    let l = crate::support::listener();
    let port = l.local_addr().expect("addr").port();
    let open = Probe::Tcp(Endpoint {
        host: "127.0.0.1".into(),
        port,
    });
    assert_eq!(probe::run(&open, T).await, ResourceHealth::Healthy);

    let closed = Probe::Tcp(Endpoint {
        host: "127.0.0.1".into(),
        port: closed_port(),
    });
    assert!(unhealthy(probe::run(&closed, T).await).contains("tcp probe"));
}

#[tokio::test]
async fn tcp_probe_times_out_on_an_unanswered_connect() {
    // A TEST-NET-1 address (RFC 5737) is never routed to a host; depending on
    // the network the connect hangs (our timeout) or fails at once. Both must
    // be unhealthy, and quickly.
    let nowhere = Probe::Tcp(Endpoint {
        host: "192.0.2.1".into(),
        port: 9,
    });
    let started = Instant::now();
    unhealthy(probe::run(&nowhere, Duration::from_millis(300)).await);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn http_probe_accepts_2xx_and_3xx_only() {
    for (response, healthy) in [
        ("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", true),
        ("HTTP/1.1 204 No Content\r\n\r\n", true),
        (
            "HTTP/1.1 302 Found\r\nlocation: /x\r\ncontent-length: 0\r\n\r\n",
            true,
        ),
        ("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n", false),
        (
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
            false,
        ),
    ] {
        let port = responder(Some(response));
        let p = Probe::Http(format!("http://127.0.0.1:{port}/health"));
        let h = probe::run(&p, T).await;
        assert_eq!(h.is_healthy(), healthy, "{response:?} gave {h:?}");
    }
}

#[tokio::test]
async fn http_probe_fails_on_silence_refusal_and_bad_urls() {
    let silent = responder(None);
    let started = Instant::now();
    let why = unhealthy(
        probe::run(
            &Probe::Http(format!("http://127.0.0.1:{silent}/")),
            Duration::from_millis(300),
        )
        .await,
    );
    assert!(why.contains("within 300ms"), "{why}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let refused = Probe::Http(format!("http://127.0.0.1:{}/", closed_port()));
    assert!(unhealthy(probe::run(&refused, T).await).contains("http probe"));

    let https = Probe::Http("https://127.0.0.1/".into());
    assert!(unhealthy(probe::run(&https, T).await).contains("only http://"));
}

#[tokio::test]
async fn http_probe_against_the_demo_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = closed_port();
    let mut driver = ProcessDriver::new(
        ctx(dir.path()),
        process(&format!(
            r#"{{"name": "demo", "command": ["{}", "demo-server", "--port", "{port}"]}}"#,
            env!("CARGO_BIN_EXE_asctl")
        )),
    );
    driver.start().await.expect("starts");
    let health = Probe::Http(format!("http://127.0.0.1:{port}/health"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !probe::run(&health, T).await.is_healthy() {
        assert!(
            Instant::now() < deadline,
            "demo server never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let missing = Probe::Http(format!("http://127.0.0.1:{port}/missing"));
    assert!(unhealthy(probe::run(&missing, T).await).contains("404"));
    driver.stop().await.expect("stops");
}

#[test]
fn the_demo_server_needs_a_node_name() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_asctl"))
        .args(["demo-server", "--port", "1"])
        .env_remove("ASCTL_NODE")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pass --name or set ASCTL_NODE"), "{stderr}");
}

// --- systemd ------------------------------------------------------------
