//! SARIF output checked against the SARIF 2.1.0 schema: conformance, rule
//! IDs and regions, suppressions of accepted findings.

use serde_json::Value;

use crate::cli::{accepted_example, asctl, json_of};

/// The SARIF 2.1.0 schema as shipped in the serde-sarif package (a
/// dev-dependency), read from cargo's registry sources.
fn sarif_schema() -> Value {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")))
        .expect("CARGO_HOME or HOME is set");
    let registry = cargo_home.join("registry/src");
    let schema = std::fs::read_dir(&registry)
        .unwrap()
        .flat_map(|index| std::fs::read_dir(index.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("serde-sarif-"))
        })
        .map(|p| p.join("src/schema.json"))
        .find(|p| p.exists())
        .expect("serde-sarif (dev-dependency) ships the SARIF schema");
    serde_json::from_str(&std::fs::read_to_string(schema).unwrap()).unwrap()
}

/// The SARIF 2.1.0 schema, compiled (draft-07).
fn sarif_validator() -> jsonschema::Validator {
    let mut schema = sarif_schema();
    assert!(schema["title"].as_str().unwrap().contains("2.1.0"));
    // The published schema's `language` patterns have a stray `]` that
    // strict regex engines reject; asctl never emits `language`.
    fn drop_bad_patterns(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if map.get("pattern").and_then(Value::as_str) == Some(BAD_LANGUAGE_PATTERN) {
                    map.remove("pattern");
                }
                map.values_mut().for_each(drop_bad_patterns);
            }
            Value::Array(items) => items.iter_mut().for_each(drop_bad_patterns),
            _ => {}
        }
    }
    const BAD_LANGUAGE_PATTERN: &str = "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$";
    drop_bad_patterns(&mut schema);
    jsonschema::draft7::options().build(&schema).unwrap()
}

/// Errors of `sarif` against the SARIF 2.1.0 schema.
fn sarif_errors(validator: &jsonschema::Validator, sarif: &Value) -> Vec<String> {
    validator
        .iter_errors(sarif)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn sarif_output_conforms_to_sarif_2_1_0() {
    let validator = sarif_validator();
    for (target, code) in [
        ("tests/fixtures/broken/many-errors.yaml", 1),
        ("tests/fixtures/broken/duplicate-names", 1),
        ("tests/fixtures/broken/no-domain.yaml", 0),
        ("examples", 0),
    ] {
        let sarif = json_of(
            asctl().args(["validate", "--format", "sarif", target]),
            code,
        );
        let errors = sarif_errors(&validator, &sarif);
        assert!(errors.is_empty(), "{target}: {errors:#?}");
        // And it reads back as typed SARIF.
        let typed: serde_sarif::sarif::Sarif = serde_json::from_value(sarif.clone()).unwrap();
        assert_eq!(typed.runs.len(), 1);
    }
}

#[test]
fn sarif_output_carries_suppressions_and_stays_valid() {
    let dir = accepted_example();
    let sarif = json_of(
        asctl()
            .args(["validate", "--format", "sarif"])
            .arg(dir.path()),
        0,
    );
    let validator = sarif_validator();
    let errors = sarif_errors(&validator, &sarif);
    assert!(errors.is_empty(), "{errors:#?}");
    // The schema does check suppressions: a kind SARIF does not know fails.
    let mut bad = sarif.clone();
    bad["runs"][0]["results"][0]["suppressions"] = serde_json::json!([{ "kind": "onPurpose" }]);
    assert!(!sarif_errors(&validator, &bad).is_empty());
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let mut got: Vec<(&str, &Value)> = results
        .iter()
        .map(|r| (r["ruleId"].as_str().unwrap(), &r["suppressions"]))
        .collect();
    got.sort_by_key(|r| r.0);
    assert_eq!(
        got,
        [
            (
                "AS0210",
                &serde_json::json!([{ "kind": "inSource", "justification": "lab disk, thin on purpose" }])
            ),
            (
                "AS0219",
                &serde_json::json!([{ "kind": "inSource", "justification": "test domain on one host" }])
            ),
        ]
    );
    let typed: serde_sarif::sarif::Sarif = serde_json::from_value(sarif.clone()).unwrap();
    let suppressed = typed.runs[0]
        .results
        .as_ref()
        .unwrap()
        .iter()
        .filter(|r| r.suppressions.as_ref().is_some_and(|s| !s.is_empty()))
        .count();
    assert_eq!(suppressed, 2);
}

#[test]
fn sarif_results_carry_rule_ids_and_regions() {
    let sarif = json_of(
        asctl().args([
            "validate",
            "--format",
            "sarif",
            "tests/fixtures/broken/duplicate-names",
        ]),
        1,
    );
    let run = &sarif["runs"][0];
    let result = &run["results"][0];
    assert_eq!(result["ruleId"], "AS0012");
    let index = result["ruleIndex"].as_u64().unwrap() as usize;
    assert_eq!(run["tool"]["driver"]["rules"][index]["id"], "AS0012");
    let region = &result["locations"][0]["physicalLocation"]["region"];
    assert_eq!(region["startLine"], 4);
    assert_eq!(region["startColumn"], 9);
    assert_eq!(
        result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "tests/fixtures/broken/duplicate-names/b.yaml"
    );
    assert_eq!(
        result["relatedLocations"][0]["message"]["text"],
        "first defined here"
    );
}
