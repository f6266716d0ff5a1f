//! systemd units through `systemctl`, and resources that have no driver.

use super::*;

/// A stand-in `systemctl` that logs its arguments and fails for units named
/// `broken*`, so the driver's calls can be checked without systemd.
fn fake_systemctl(dir: &Path) -> (PathBuf, PathBuf) {
    let calls = dir.join("calls");
    let script = dir.join("systemctl");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\ncase \"$*\" in *broken*) echo 'unit is broken' >&2; exit 1;; esac\nexit 0\n",
            calls.display()
        ),
    )
    .expect("write script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (script, calls)
}

#[tokio::test]
async fn systemd_units_go_through_systemctl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (systemctl, calls) = fake_systemctl(dir.path());
    let mut unit = ServiceDriver::new("web.service".into(), systemctl.clone());
    unit.start().await.expect("starts");
    assert!(unit.is_active().await.is_healthy());
    unit.stop().await.expect("stops");
    let log = std::fs::read_to_string(&calls).expect("calls");
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "start web.service",
            "is-active --quiet web.service",
            "stop web.service"
        ]
    );

    let mut broken = ServiceDriver::new("broken.service".into(), systemctl);
    let err = broken.start().await.expect_err("fails");
    assert!(err.to_string().contains("unit is broken"), "{err}");
    assert!(!broken.is_active().await.is_healthy());
}

#[tokio::test]
async fn without_systemctl_services_are_unavailable() {
    let mut unit = ServiceDriver::new("web.service".into(), "/nonexistent/systemctl".into());
    let err = unit.start().await.expect_err("no systemctl");
    assert!(err.is_permanent(), "{err:?}");
    assert!(
        err.to_string()
            .contains("systemd services are not available on this node"),
        "{err}"
    );
}

// --- resources without a driver on this platform ---------------------------------------

#[tokio::test]
async fn unimplemented_resources_fail_clearly_and_never_pretend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec: ResourceGroupSpec = serde_json::from_value(json(
        r#"{"preferredNodes": ["node1"], "dataSources": ["disk1"],
            "ipAddresses": [{"address": "10.1.0.100/24", "line": "lan"}],
            "nodeAlias": "sqlalias", "module": {"type": "sql-server-2005"}}"#,
    ))
    .expect("valid group spec");
    // A type without a built-in driver and without an OCF `agent`.
    let mut sources = asctl::drivers::datasource::DataSources::new();
    sources.insert(
        name("disk1"),
        serde_json::from_value(json(
            r#"{"type": "mirroring", "device": {"backing": "rdm-physical", "path": "/dev/sdz"}}"#,
        ))
        .expect("valid data source"),
    );
    let mut resources = Resource::for_group(&ctx(dir.path()), &spec, &sources);
    let labels: Vec<String> = resources.iter().map(Resource::label).collect();
    assert_eq!(
        labels,
        [
            "data source disk1",
            "ip 10.1.0.100/24",
            "node alias sqlalias",
            "module sql-server-2005"
        ]
    );
    let mut messages = Vec::new();
    for r in &mut resources {
        let err = r.start().await.expect_err("must not pretend");
        assert!(err.is_permanent(), "{err:?}");
        assert!(!r.check().await.is_healthy());
        r.stop().await.expect("nothing to stop");
        messages.push(err.to_string());
    }
    assert!(
        messages[0]
            .contains("no driver for `mirroring` on linux: give data source `disk1` an `agent`"),
        "{}",
        messages[0]
    );
    // The IP driver is real: on a node without the line's subnet it says so.
    assert!(messages[1].contains("no interface on this node has an address in 10.1.0.0/24"));
    assert!(messages[2].contains(
        "node alias `sqlalias` (a Windows NetBIOS name) is unsupported on this platform"
    ));
    assert!(messages[3].contains("unsupported on this platform"));
}
