//! `asctl credentials`: the files a domain's members and the CLI need. The
//! certificates are used for real by tests/root/demo.rs (agents on
//! 10.220.1.x, the CLI verifying them against the CA).

use std::path::Path;

use assert_cmd::Command;

fn config(dir: &std::path::Path, node2_agent: bool) -> std::path::PathBuf {
    let agent2 = if node2_agent {
        "\n  agent: {address: \"10.9.0.2:7401\"}"
    } else {
        ""
    };
    let text = format!(
        "apiVersion: asctl/v1\nkind: Domain\nmetadata: {{name: lab}}\nspec:\n  qualification: generic\n  witness: \"10.9.0.50:7401\"\n\
         ---\napiVersion: asctl/v1\nkind: Node\nmetadata: {{name: node1}}\nspec:\n  physical: true\n  os: {{name: linux, bits: 64}}\n  agent: {{address: \"10.9.0.1:7401\"}}\n\
         ---\napiVersion: asctl/v1\nkind: Node\nmetadata: {{name: node2}}\nspec:\n  physical: true\n  os: {{name: linux, bits: 64}}{agent2}\n"
    );
    let p = dir.join("domain.yaml");
    std::fs::write(&p, text).expect("write");
    p
}

/// `asctl credentials CFG [--force] --out OUT`, not yet asserted on.
fn credentials(cfg: &Path, out: &Path, force: bool) -> assert_cmd::assert::Assert {
    let mut cmd = Command::cargo_bin("asctl").expect("binary");
    cmd.args(["credentials", cfg.to_str().expect("utf-8")]);
    if force {
        cmd.arg("--force");
    }
    cmd.arg("--out").arg(out).assert()
}

/// The token and node1's certificate written in `out`.
fn token_and_cert(out: &Path) -> (String, String) {
    let read = |f: &str| std::fs::read_to_string(out.join(f)).expect(f);
    (read("token"), read("tls/node1.crt"))
}

#[test]
fn writes_a_token_a_ca_and_a_certificate_per_member_and_keeps_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), true);
    let out = dir.path().join("creds");
    credentials(&cfg, &out, false).success();
    for f in [
        "token",
        "tls/ca.crt",
        "tls/node1.crt",
        "tls/node1.key",
        "tls/node2.crt",
        "tls/node2.key",
        "tls/witness.crt",
        "tls/witness.key",
        "domain.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("domain.json")).expect("read"))
            .expect("json");
    assert_eq!(state["domain"], "lab");
    assert_eq!(
        state["endpoints"],
        serde_json::json!(["10.9.0.1:7401", "10.9.0.2:7401", "10.9.0.50:7401"])
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("token"))
        .expect("token")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the token is private");

    // Again: nothing replaced (running agents keep working) unless --force.
    let (token, cert) = token_and_cert(&out);
    credentials(&cfg, &out, false).success();
    assert_eq!(token_and_cert(&out), (token.clone(), cert.clone()));
    credentials(&cfg, &out, true).success();
    let (new_token, new_cert) = token_and_cert(&out);
    assert_ne!(new_token, token);
    assert_ne!(new_cert, cert);
}

#[test]
fn a_node_without_an_agent_address_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), false);
    let out = dir.path().join("creds");
    let assert = credentials(&cfg, &out, false).code(2);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.contains("node node2 has no agent address"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing written");
}
