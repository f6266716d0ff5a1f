//! The JSON Schema of a configuration document, generated from the types.
//!
//! One draft-07 schema for every kind: the root checks `apiVersion` and
//! `kind`, then an `if kind == K then $ref K` branch per kind applies that
//! kind's own schema. `if`/`then` (rather than `oneOf`) keeps errors precise:
//! a document is only checked against the schema of the kind it declares.

use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;
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
        (Kind::NetworkLine, generator.subschema_for::<NetworkLineSpec>()),
        (Kind::DataSource, generator.subschema_for::<DataSourceSpec>()),
        (Kind::ResourceGroup, generator.subschema_for::<ResourceGroupSpec>()),
    ];
    let metadata = generator.subschema_for::<Metadata>();
    let mut definitions: Map<String, Value> = generator
        .take_definitions(true)
        .into_iter()
        .collect();

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
