//! A `composite` data source through a real agent (docs/storage.md, "The
//! drivers"): its members go online in order and offline in reverse, and
//! it is healthy only while every member is. The members are two data
//! sources driven by asctl's test OCF agent (`Probe`, whose `monitor`
//! answers 7 once its state file is gone), logging every action to one
//! file: `lower` then `upper` at the start; when `upper` stops running the
//! composite is unhealthy and the group restarts here — `upper` stopped
//! before `lower`, then both started again in order.

use std::path::Path;
use std::time::Duration;

use crate::support::{LiveDomain, ocf_actions};

const LONG: Duration = Duration::from_secs(60);

fn store_state(d: &LiveDomain) -> Option<String> {
    let s = d.status_json()?;
    let g = &s["nodes"]["node1"]["report"]["groups"]["store"];
    Some(format!(
        "{} restarts={}",
        g["state"].as_str()?,
        g["restarts"].as_u64()?
    ))
}

#[test]
fn a_composite_starts_its_members_in_order_stops_them_in_reverse_and_is_healthy_only_with_all() {
    let mut d = LiveDomain::prepare();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("ocf.log");
    let (lower, upper) = (dir.path().join("lower"), dir.path().join("upper"));
    let member = |name: &str, state: &Path| {
        format!(
            "apiVersion: asctl/v1\nkind: DataSource\nmetadata: {{name: {name}}}\nspec:\n  \
             type: vxvm\n  device: {{backing: rdm-physical, path: /dev/null}}\n  \
             agent: {{ocf: \"asctl-test:Probe\", params: {{state: {}, log: {}}}}}\n---\n",
            state.display(),
            log.display(),
        )
    };
    std::fs::write(
        d.config.join("group-store.yaml"),
        format!(
            "{}{}apiVersion: asctl/v1\nkind: DataSource\nmetadata: {{name: both}}\nspec:\n  \
             type: composite\n  members: [lower, upper]\n---\n\
             apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata: {{name: store}}\nspec:\n  \
             preferredNodes: [node1]\n  dataSources: [both]\n  \
             restart: {{limit: 2, window: 10m}}\n",
            member("lower", &lower),
            member("upper", &upper),
        ),
    )
    .expect("group file");
    d.start_agents_with_test_ocf();
    let out = d.apply();
    assert!(out.status.success(), "{}", crate::support::text(&out));
    d.eventually("store online on node1", LONG, || {
        (store_state(&d).as_deref() == Some("online restarts=0")).then_some(())
    });
    assert_eq!(
        ocf_actions(&log, 0),
        ["start lower", "start upper"],
        "members online in order"
    );

    // One member not running: the composite is unhealthy, the group
    // restarts here.
    let from = std::fs::metadata(&log).expect("log").len() as usize;
    std::fs::remove_file(&upper).expect("upper's state");
    d.eventually("store restarted once on node1", LONG, || {
        (store_state(&d).as_deref() == Some("online restarts=1")).then_some(())
    });
    assert_eq!(
        ocf_actions(&log, from),
        ["stop upper", "stop lower", "start lower", "start upper"],
        "offline in reverse, then online in order\n{}",
        d.agent_logs()
    );
    assert!(lower.exists() && upper.exists());
}
