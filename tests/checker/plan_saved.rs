//! Saved plans (bound to the domain, generation and configuration they
//! were computed against) and the live state's JSON form, on the
//! quickstart of `plan_diff.rs`.

use asctl::plan::{LiveState, Plan, PlanMismatch, SavedPlan, SavedPlanError};
use asctl::rules::validate;

use crate::plan_diff::{all_up, config, edit, live, quickstart};

#[test]
fn saved_plan_round_trip_and_staleness() {
    let mut files = quickstart();
    edit(&mut files, "group-web.yaml", "\"8081\"]", "\"9081\"]");
    let desired = config(&files);
    let plan = Plan::compute(&desired, &live());
    let saved = SavedPlan::new(plan.clone(), &desired, &live());
    assert_eq!(saved.base_generation, 3);
    assert_eq!(saved.domain.as_deref(), Some("quickstart"));

    let text = saved.to_json();
    let back = SavedPlan::from_json(&text).expect("reads back");
    assert_eq!(back, saved);
    assert_eq!(back.check_current(&live(), &desired), Ok(()));
    let moved_on = LiveState {
        generation: 4,
        ..live()
    };
    let stale = back.check_current(&moved_on, &desired).expect_err("stale");
    assert_eq!(
        stale,
        PlanMismatch::Stale {
            planned: 3,
            live: 4
        }
    );
    assert!(stale.to_string().contains("run `asctl plan` again"));

    // The documents are the desired configuration: re-planning from them
    // gives the same plan, and they pass the loader and the rules.
    let restored = back.desired().expect("typed documents");
    assert_eq!(Plan::compute(&restored, &live()), plan);
    let v = validate(back.load());
    assert!(!v.has_errors(), "{:#?}", v.findings);
    assert_eq!(Plan::compute(&v.loaded.config, &live()), plan);

    let future = text.replacen("\"formatVersion\": 2", "\"formatVersion\": 3", 1);
    assert!(matches!(
        SavedPlan::from_json(&future),
        Err(SavedPlanError::Version { found: 3 })
    ));
    // A file of format 1 had no domain binding: refused, not half-checked.
    let old = text.replacen("\"formatVersion\": 2", "\"formatVersion\": 1", 1);
    assert!(matches!(
        SavedPlan::from_json(&old),
        Err(SavedPlanError::Version { found: 1 })
    ));
    let tampered = text.replacen("\"baseGeneration\": 3", "\"baseGeneration\": 9", 1);
    assert!(matches!(
        SavedPlan::from_json(&tampered),
        Err(SavedPlanError::Inconsistent { .. })
    ));
    assert!(matches!(
        SavedPlan::from_json("{}"),
        Err(SavedPlanError::Json(_))
    ));
}

/// The live quickstart at generation 3 under another Domain name.
fn renamed(live: &LiveState, to: &str) -> LiveState {
    let mut files = quickstart();
    edit(
        &mut files,
        "domain.yaml",
        "name: quickstart",
        &format!("name: {to}"),
    );
    LiveState {
        config: Some(config(&files)),
        ..live.clone()
    }
}

#[test]
fn a_saved_plan_is_refused_by_another_domain_or_another_configuration() {
    let mut files = quickstart();
    edit(&mut files, "group-web.yaml", "\"8081\"]", "\"9081\"]");
    let desired = config(&files);
    let saved = SavedPlan::new(Plan::compute(&desired, &live()), &desired, &live());

    // Another domain at the same generation.
    let other = renamed(&live(), "elsewhere");
    assert_eq!(
        saved.check_current(&other, &desired),
        Err(PlanMismatch::OtherDomain {
            planned: Some("quickstart".into()),
            live: Some("elsewhere".into())
        })
    );
    // A domain with nothing applied yet is not the domain of the plan.
    let empty = LiveState {
        health: all_up(),
        ..LiveState::default()
    };
    let err = saved.check_current(&empty, &desired).expect_err("refused");
    assert!(matches!(err, PlanMismatch::OtherDomain { live: None, .. }));
    assert!(err.to_string().contains("nothing applied yet"), "{err}");

    // Same name and generation, another configuration (the api group's
    // port differs): the fingerprint tells them apart.
    let mut twin_files = quickstart();
    edit(&mut twin_files, "group-api.yaml", "\"8082\"]", "\"9082\"]");
    let twin = LiveState {
        config: Some(config(&twin_files)),
        ..live()
    };
    assert_eq!(
        saved.check_current(&twin, &desired),
        Err(PlanMismatch::OtherConfiguration { generation: 3 })
    );

    // A plan computed against the empty domain binds to it.
    let first = SavedPlan::new(Plan::compute(&desired, &empty), &desired, &empty);
    assert_eq!(first.domain, None);
    assert_eq!(first.check_current(&empty, &desired), Ok(()));
    assert!(matches!(
        first.check_current(&live(), &desired),
        Err(PlanMismatch::OtherDomain { .. })
    ));
}

#[test]
fn a_saved_plan_edited_after_it_was_written_is_refused() {
    let mut files = quickstart();
    edit(&mut files, "group-web.yaml", "\"8081\"]", "\"9081\"]");
    let desired = config(&files);
    let saved = SavedPlan::new(Plan::compute(&desired, &live()), &desired, &live());
    let text = saved.to_json();

    // The documents now change something the reviewed plan does not show.
    // (Inside the documents, which are JSON strings, the quotes are escaped.)
    let edited = text.replacen(r#"\"9081\""#, r#"\"9999\""#, 1);
    assert_ne!(edited, text);
    let back = SavedPlan::from_json(&edited).expect("still a well-formed file");
    let v = validate(back.load());
    assert!(!v.has_errors(), "{:#?}", v.findings);
    assert_eq!(
        back.check_current(&live(), &v.loaded.config),
        Err(PlanMismatch::Tampered)
    );

    // Or the plan was edited to hide a change.
    let mut hidden = saved.clone();
    hidden.plan.changes.clear();
    assert_eq!(
        hidden.check_current(&live(), &desired),
        Err(PlanMismatch::Tampered)
    );
    // The binding itself cannot be moved to another configuration either.
    let mut rebound = saved.clone();
    rebound.live_fingerprint = "sha256:00".into();
    assert_eq!(
        rebound.check_current(&live(), &desired),
        Err(PlanMismatch::OtherConfiguration { generation: 3 })
    );
}

#[test]
fn live_state_json_round_trip() {
    let live = live();
    let text = serde_json::to_string(&live).expect("serialisable");
    assert!(text.starts_with("{\"formatVersion\":1,"));
    let back: LiveState = serde_json::from_str(&text).expect("reads back");
    assert_eq!(
        Plan::compute(&config(&quickstart()), &back),
        Plan::compute(&config(&quickstart()), &live)
    );
    assert_eq!(back.placement, live.placement);
    assert_eq!(back.health, live.health);

    let empty: LiveState =
        serde_json::from_str(r#"{"formatVersion":1,"generation":0,"config":null}"#).expect("empty");
    assert_eq!(empty, LiveState::default());
    let future = serde_json::from_str::<LiveState>(r#"{"formatVersion":2,"generation":0}"#);
    assert!(future.is_err());
}
