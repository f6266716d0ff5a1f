//! Runs every placement scenario of `tests/scenarios/place/` (see the README
//! there): config + live state → expected placement.
//!
//! All cases run before the test fails, and each mismatch is shown as a line
//! diff of the placements, so a change of behaviour reads as "which groups
//! land where now".

use std::fmt::Write;
use std::path::{Path, PathBuf};

use asctl::load::{load_texts, yaml};
use asctl::plan::{Health, Placement, place};
use asctl::rules::validate;
use serde::Deserialize;
use similar::TextDiff;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    #[serde(default)]
    health: Health,
    #[serde(default)]
    placement: Placement,
}

fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let parsed = yaml::parse(&text);
    if let Some(p) = parsed.problems.first() {
        return Err(format!("{}: {}", path.display(), p.message));
    }
    let value = parsed
        .documents
        .first()
        .and_then(|d| d.root.as_ref())
        .map(|n| n.to_json())
        .unwrap_or(serde_json::Value::Null);
    serde_json::from_value(value).map_err(|e| format!("{}: {e}", path.display()))
}

/// One line per group, sorted: the form the diff is shown in.
fn lines(p: &Placement) -> String {
    let mut out = String::new();
    for (group, gp) in p {
        let node = gp.node.as_ref().map_or("(offline)", |n| n.as_str());
        let _ = write!(out, "{group}: {node}");
        if !gp.failed_on.is_empty() {
            let failed: Vec<&str> = gp.failed_on.iter().map(|n| n.as_str()).collect();
            let _ = write!(out, "  failedOn: [{}]", failed.join(", "));
        }
        out.push('\n');
    }
    out
}

fn to_yaml(p: &Placement) -> String {
    let mut out = String::new();
    for (group, gp) in p {
        let node = gp.node.as_ref().map_or("null", |n| n.as_str());
        let _ = write!(out, "{group}: {{node: {node}");
        if !gp.failed_on.is_empty() {
            let failed: Vec<&str> = gp.failed_on.iter().map(|n| n.as_str()).collect();
            let _ = write!(out, ", failedOn: [{}]", failed.join(", "));
        }
        out.push_str("}\n");
    }
    out
}

fn run(dir: &Path) -> Result<(), String> {
    let config_path = dir.join("config.yaml");
    let text =
        std::fs::read(&config_path).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let loaded = load_texts([(config_path.to_string_lossy().as_ref(), text.as_slice())]);
    let validation = validate(loaded);
    if validation.has_errors() {
        return Err(format!(
            "config.yaml is not a valid configuration:\n{:#?}",
            validation.findings
        ));
    }
    let state: State = read_yaml(&dir.join("state.yaml"))?;
    let actual = place(&validation.loaded.config, &state.health, &state.placement);

    let expected_path = dir.join("expected.yaml");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&expected_path, to_yaml(&actual)).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let expected: Placement = read_yaml(&expected_path)?;
    if actual == expected {
        return Ok(());
    }
    let (want, got) = (lines(&expected), lines(&actual));
    let diff = TextDiff::from_lines(&want, &got)
        .unified_diff()
        .header("expected.yaml", "place()")
        .to_string();
    Err(format!("placement differs:\n{diff}"))
}

#[test]
fn every_scenario() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/place");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/scenarios/place exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 12,
        "expected at least 12 scenarios, found {}",
        dirs.len()
    );

    let failures: Vec<String> = dirs
        .iter()
        .filter_map(|dir| {
            let name = dir.file_name().unwrap_or_default().to_string_lossy();
            run(dir).err().map(|e| format!("--- scenario {name}: {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} placement scenarios failed:\n\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}
