//! The JSON Schema of a configuration document, generated from the types.
//!
//! One draft-07 schema for every kind: the root checks `apiVersion` and
//! `kind`, then an `if kind == K then $ref K` branch per kind applies that
//! kind's own schema. `if`/`then` (rather than `oneOf`) keeps errors precise:
//! a document is only checked against the schema of the kind it declares.

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::*;

/// The URL editors see as the schema's `$id`.
pub const SCHEMA_ID: &str = "https://asctl.dev/schemas/asctl.schema.json";

/// Builds the schema. Deterministic: the committed `schemas/asctl.schema.json`
/// is this value pretty-printed, and a test keeps the two equal.
pub fn root_schema() -> Value {
    let mut generator = SchemaGenerator::new(SchemaSettings::draft07());
    let specs = [
        (Kind::Domain, generator.subschema_for::<DomainSpec>()),
        (Kind::Host, generator.subschema_for::<HostSpec>()),
        (Kind::Node, generator.subschema_for::<NodeSpec>()),
        (
            Kind::NetworkLine,
            generator.subschema_for::<NetworkLineSpec>(),
        ),
        (
            Kind::DataSource,
            generator.subschema_for::<DataSourceSpec>(),
        ),
        (
            Kind::ResourceGroup,
            generator.subschema_for::<ResourceGroupSpec>(),
        ),
    ];
    let metadata = generator.subschema_for::<Metadata>();
    let mut definitions: Map<String, Value> =
        generator.take_definitions(true).into_iter().collect();

    let mut branches = Vec::new();
    for (kind, spec) in specs {
        let def = format!("{kind}Document");
        definitions.insert(
            def.clone(),
            json!({
                "type": "object",
                "description": format!("A `{kind}` document."),
                "required": ["apiVersion", "kind", "metadata", "spec"],
                "properties": {
                    "apiVersion": { "const": API_VERSION },
                    "kind": { "const": kind.as_str() },
                    "metadata": metadata,
                    "spec": spec,
                },
                "additionalProperties": false,
            }),
        );
        branches.push(json!({
            "if": { "properties": { "kind": { "const": kind.as_str() } }, "required": ["kind"] },
            "then": { "$ref": format!("#/definitions/{def}") },
        }));
    }

    for def in definitions.values_mut() {
        strip_null(def);
    }
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        "title": "asctl configuration document",
        "description": "One document of an asctl HA domain: Domain, Host, Node, NetworkLine, DataSource or ResourceGroup.",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {
                "description": "The format version; this build reads `asctl/v1`.",
                "type": "string",
                "enum": [API_VERSION],
            },
            "kind": {
                "description": "What the document describes.",
                "type": "string",
                "enum": kinds,
            },
            "metadata": metadata.clone(),
            "spec": { "description": "The object's settings; their form depends on `kind`.", "type": "object" },
        },
        "allOf": branches,
        "definitions": definitions,
    })
}

/// The schema as committed in `schemas/asctl.schema.json`.
pub fn schema_text() -> String {
    serde_json::to_string_pretty(&root_schema()).unwrap_or_default()
}

/// Optional fields are written by leaving them out, not by `null`: remove the
/// `null` alternative schemars adds for `Option<T>`, so that `nics:` with no
/// value is reported instead of silently meaning "unset".
fn strip_null(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Value::Array(alts)) = map.get_mut(key) {
                    alts.retain(|a| a.get("type").is_none_or(|t| t != "null"));
                    if alts.len() == 1 {
                        let only = alts.remove(0);
                        map.remove(key);
                        if let Value::Object(inner) = only {
                            for (k, v) in inner {
                                map.entry(k).or_insert(v);
                            }
                        }
                    }
                }
            }
            map.values_mut().for_each(strip_null);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}
