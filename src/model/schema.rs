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

/// The name of a kind's whole-document schema among the schema's
/// definitions (`NodeDocument`).
pub fn document_definition(kind: Kind) -> String {
    format!("{kind}Document")
}

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
        let def = document_definition(kind);
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
        describe_enums(def);
    }
    keys_keep_their_description(&mut definitions);
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

/// An enum whose values carry descriptions comes out of schemars as a
/// `oneOf` of `const`s, each with its description. An editor hovering the
/// *field* then shows the matching value's description instead of the
/// field's (`nicTeaming` → "No NIC teaming."). Written as `enum` with
/// `enumDescriptions` (and `markdownEnumDescriptions`, which the YAML and
/// JSON language servers show next to the value and in completion), the
/// field keeps its own description.
fn describe_enums(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    let consts: Option<Vec<(Value, String)>> =
        map.get("oneOf").and_then(Value::as_array).and_then(|alts| {
            alts.iter()
                .map(|a| {
                    let c = a.get("const")?;
                    let d = a.get("description").and_then(Value::as_str).unwrap_or("");
                    Some((c.clone(), d.to_owned()))
                })
                .collect()
        });
    if let Some(consts) = consts.filter(|c| !c.is_empty() && c.iter().all(|(v, _)| v.is_string())) {
        map.remove("oneOf");
        map.insert("type".into(), json!("string"));
        map.insert(
            "enum".into(),
            consts.iter().map(|(v, _)| v.clone()).collect(),
        );
        let descriptions: Vec<&str> = consts.iter().map(|(_, d)| d.as_str()).collect();
        map.insert("enumDescriptions".into(), json!(descriptions));
        map.insert("markdownEnumDescriptions".into(), json!(descriptions));
    }
    map.values_mut().for_each(describe_enums);
}

/// A language server describes a key with the *first* description among
/// the schemas its value matches, deepest first: a referenced definition or
/// an `anyOf` alternative would hide the field's own text. So descriptions
/// live on the properties only: a property without one takes its
/// definition's, then definitions and alternatives lose theirs.
fn keys_keep_their_description(definitions: &mut Map<String, Value>) {
    let described: Map<String, Value> = definitions
        .iter()
        .filter_map(|(k, v)| Some((format!("#/definitions/{k}"), v.get("description")?.clone())))
        .collect();
    for def in definitions.values_mut() {
        fill_property_descriptions(def, &described);
        strip_alternative_descriptions(def);
        if let Value::Object(map) = def {
            map.remove("description");
        }
    }
}

fn fill_property_descriptions(schema: &mut Value, described: &Map<String, Value>) {
    let Value::Object(map) = schema else {
        if let Value::Array(items) = schema {
            items
                .iter_mut()
                .for_each(|i| fill_property_descriptions(i, described));
        }
        return;
    };
    if let Some(Value::Object(props)) = map.get_mut("properties") {
        for prop in props.values_mut() {
            let target = prop
                .get("$ref")
                .or_else(|| prop.pointer("/allOf/0/$ref"))
                .and_then(Value::as_str)
                .and_then(|r| described.get(r))
                .cloned();
            if let (Some(d), Value::Object(p)) = (target, &mut *prop) {
                p.entry("description").or_insert(d);
            }
        }
    }
    map.values_mut()
        .for_each(|v| fill_property_descriptions(v, described));
}

fn strip_alternative_descriptions(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            for key in ["anyOf", "oneOf"] {
                if let Some(Value::Array(alts)) = map.get_mut(key) {
                    for alt in alts.iter_mut().filter_map(Value::as_object_mut) {
                        alt.remove("description");
                    }
                }
            }
            map.values_mut().for_each(strip_alternative_descriptions);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_alternative_descriptions),
        _ => {}
    }
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
