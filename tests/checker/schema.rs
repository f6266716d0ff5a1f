//! The committed JSON Schema: fresh, accepting every example, rejecting the
//! broken fixtures — the same file editors use for completion.

use std::path::{Path, PathBuf};

use asctl::load::yaml;
use serde_json::Value;

const COMMITTED: &str = "schemas/asctl.schema.json";

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    out.sort();
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    yaml::parse(&text)
        .documents
        .into_iter()
        .filter_map(|d| d.root)
        .map(|n| n.to_json())
        .collect()
}

fn committed_validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(COMMITTED).unwrap()).unwrap();
    jsonschema::draft7::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

#[test]
fn committed_schema_is_up_to_date() {
    let committed = std::fs::read_to_string(COMMITTED).unwrap();
    let generated = asctl::model::schema::schema_text();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "{COMMITTED} is stale: run `cargo run -- schema > {COMMITTED}`"
    );
}

#[test]
fn committed_schema_is_draft_07_and_dispatches_on_kind() {
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(COMMITTED).unwrap()).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    let branches = schema["allOf"].as_array().unwrap();
    assert_eq!(branches.len(), 6);
    for b in branches {
        let kind = b["if"]["properties"]["kind"]["const"].as_str().unwrap();
        assert_eq!(b["then"]["$ref"], format!("#/definitions/{kind}Document"));
    }
}

#[test]
fn every_example_is_accepted_and_has_the_modeline() {
    let validator = committed_validator();
    let mut files = Vec::new();
    yaml_files(Path::new("examples"), &mut files);
    assert!(files.len() >= 4);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let depth = file.components().count() - 1;
        let modeline = format!(
            "# yaml-language-server: $schema={}schemas/asctl.schema.json",
            "../".repeat(depth)
        );
        assert!(
            text.starts_with(&modeline),
            "{} must start with `{modeline}`",
            file.display()
        );
        for doc in documents(&file) {
            let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", file.display());
        }
    }
}

#[test]
fn the_schema_level_fixtures_are_rejected() {
    let validator = committed_validator();
    for fixture in [
        "unknown-api-version.yaml",
        "unknown-kind.yaml",
        "missing-kind.yaml",
        "missing-api-version.yaml",
        "unknown-field.yaml",
        "wrong-type.yaml",
        "invalid-name.yaml",
        "missing-field.yaml",
        "invalid-enum.yaml",
        "invalid-duration.yaml",
        "not-a-mapping.yaml",
        "many-errors.yaml",
    ] {
        let docs = documents(&Path::new("tests/fixtures/broken").join(fixture));
        assert!(
            docs.iter().any(|d| !validator.is_valid(d)),
            "the committed schema accepts every document of {fixture}"
        );
    }
}

/// Every description a language server could show for a key, deepest
/// first: the referenced definition's and the combinator alternatives'.
fn descriptions_under(schema: &Value, defs: &Value, out: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let def = &defs[r.trim_start_matches("#/definitions/")];
        if let Some(d) = def.get("description") {
            out.push(format!("{r}: {d}"));
        }
        descriptions_under(def, defs, out);
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for alt in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(d) = alt.get("description") {
                out.push(format!("{key}: {d}"));
            }
            descriptions_under(alt, defs, out);
        }
    }
}

/// Hovering a key shows the field's description, never a value's (an enum
/// variant's) or its type's: those would come first for a language server.
#[test]
fn keys_are_described_by_their_own_field_description() {
    let schema = asctl::model::schema::root_schema();
    let defs = &schema["definitions"];
    let mut hidden = Vec::new();
    let mut described = 0;
    for (name, def) in defs.as_object().unwrap() {
        for (key, prop) in def["properties"].as_object().into_iter().flatten() {
            if prop.get("description").is_some() {
                described += 1;
            }
            let mut under = Vec::new();
            descriptions_under(prop, defs, &mut under);
            if !under.is_empty() {
                hidden.push(format!("{name}.{key}: {under:?}"));
            }
        }
    }
    assert!(hidden.is_empty(), "{}", hidden.join("\n"));
    assert!(described > 50, "fields keep descriptions ({described})");
    let teaming = &defs["NodeSpec"]["properties"]["nicTeaming"];
    assert!(
        teaming["description"]
            .as_str()
            .unwrap()
            .starts_with("NIC teaming:")
    );
    let values = &defs["NicTeaming"];
    assert_eq!(
        values["enum"],
        serde_json::json!(["none", "hypervisor", "guest"])
    );
    assert_eq!(values["enumDescriptions"][0], "No NIC teaming.");
    let failback = &defs["ResourceGroupSpec"]["properties"]["failback"];
    assert!(
        failback["description"]
            .as_str()
            .unwrap()
            .contains("after a failover")
    );
}
