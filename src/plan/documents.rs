//! A [`Config`] as canonical documents, and back.
//!
//! The live state, saved plans and the diff all need a configuration as
//! plain data. The canonical form is one JSON document per object, in the
//! file format of docs/format.md (`apiVersion`, `kind`, `metadata`, `spec`),
//! sorted by kind and then name so that the same configuration gives the same
//! text however it was split into files. Defaults are written out (serde
//! serialises every field), so leaving a field at its default and writing the
//! default explicitly are the same configuration. JSON is valid YAML, so the
//! documents can also be fed back to [`crate::load::load_texts`] for a full
//! validation.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::model::{API_VERSION, Config, Kind, Metadata, Object};

#[derive(Debug, Error)]
pub enum DocumentError {
    #[error("document {index}: {message}")]
    Shape { index: usize, message: String },
    #[error("document {index} ({kind}): {err}")]
    Spec {
        index: usize,
        kind: Kind,
        err: serde_json::Error,
    },
}

/// A digest of `config`'s canonical documents (`None`: nothing applied), so
/// that a saved plan can name the exact configuration it was computed
/// against: `sha256:` and 64 hex digits. Each document is hashed with its
/// length, so no two lists of documents give the same input.
pub fn fingerprint(config: Option<&Config>) -> String {
    let mut h = Sha256::new();
    for doc in config.map(to_document_texts).unwrap_or_default() {
        h.update((doc.len() as u64).to_be_bytes());
        h.update(doc.as_bytes());
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// One object's identity and canonical value (`{metadata, spec}`), in the
/// canonical order. The diff compares these values.
pub(crate) fn canonical_objects(config: &Config) -> Vec<(Kind, String, Value)> {
    fn add<S: Serialize>(out: &mut Vec<(Kind, String, Value)>, kind: Kind, obj: &Object<S>) {
        // Every model type serialises to JSON without failing (string keys,
        // finite numbers); a failure would be a bug in the model, and an
        // object dropped from a diff is worse than a visible `null`.
        let value = serde_json::to_value(obj).unwrap_or(Value::Null);
        out.push((kind, obj.name().as_str().to_owned(), value));
    }
    let mut out = Vec::new();
    if let Some(d) = &config.domain {
        add(&mut out, Kind::Domain, d);
    }
    config
        .hosts
        .iter()
        .for_each(|o| add(&mut out, Kind::Host, o));
    config
        .nodes
        .iter()
        .for_each(|o| add(&mut out, Kind::Node, o));
    config
        .lines
        .iter()
        .for_each(|o| add(&mut out, Kind::NetworkLine, o));
    config
        .data_sources
        .iter()
        .for_each(|o| add(&mut out, Kind::DataSource, o));
    config
        .groups
        .iter()
        .for_each(|o| add(&mut out, Kind::ResourceGroup, o));
    // Stable: duplicates (which validation rejects) keep their order.
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out
}

/// The configuration as canonical documents.
pub fn to_documents(config: &Config) -> Vec<Value> {
    canonical_objects(config)
        .into_iter()
        .map(|(kind, _, value)| {
            let mut doc = Map::new();
            doc.insert("apiVersion".into(), json!(API_VERSION));
            doc.insert("kind".into(), json!(kind.as_str()));
            if let Value::Object(fields) = value {
                doc.extend(fields);
            }
            Value::Object(doc)
        })
        .collect()
}

/// The configuration as canonical JSON texts, one per document.
pub fn to_document_texts(config: &Config) -> Vec<String> {
    to_documents(config)
        .iter()
        .map(|d| serde_json::to_string(d).unwrap_or_default())
        .collect()
}

/// Rebuilds a configuration from documents. This checks types only (what
/// the spec types enforce); cross-object rules are the business of
/// [`crate::rules`], so callers that accept outside input validate it too.
pub fn from_documents(docs: &[Value]) -> Result<Config, DocumentError> {
    let mut config = Config::default();
    for (index, doc) in docs.iter().enumerate() {
        let shape = |message: String| DocumentError::Shape { index, message };
        let Value::Object(map) = doc else {
            return Err(shape("not a JSON object".into()));
        };
        match map.get("apiVersion").and_then(Value::as_str) {
            Some(API_VERSION) => {}
            other => {
                return Err(shape(format!(
                    "apiVersion is {other:?}; this build reads {API_VERSION}"
                )));
            }
        }
        let kind = map
            .get("kind")
            .and_then(Value::as_str)
            .and_then(Kind::parse)
            .ok_or_else(|| shape("missing or unknown kind".into()))?;
        let metadata: Metadata = field(map, "metadata", index, kind)?;
        match kind {
            Kind::Domain => {
                let spec = field(map, "spec", index, kind)?;
                // A second Domain is invalid; the first wins, as in the loader.
                if config.domain.is_none() {
                    config.domain = Some(Object {
                        metadata,
                        spec,
                        doc: index,
                    });
                }
            }
            Kind::Host => config.hosts.push(object(map, metadata, index, kind)?),
            Kind::Node => config.nodes.push(object(map, metadata, index, kind)?),
            Kind::NetworkLine => config.lines.push(object(map, metadata, index, kind)?),
            Kind::DataSource => config
                .data_sources
                .push(object(map, metadata, index, kind)?),
            Kind::ResourceGroup => config.groups.push(object(map, metadata, index, kind)?),
        }
    }
    Ok(config)
}

fn field<T: DeserializeOwned>(
    map: &Map<String, Value>,
    key: &str,
    index: usize,
    kind: Kind,
) -> Result<T, DocumentError> {
    let value = map.get(key).cloned().unwrap_or(Value::Null);
    serde_json::from_value(value).map_err(|source| DocumentError::Spec {
        index,
        kind,
        err: source,
    })
}

fn object<S: DeserializeOwned>(
    map: &Map<String, Value>,
    metadata: Metadata,
    index: usize,
    kind: Kind,
) -> Result<Object<S>, DocumentError> {
    Ok(Object {
        metadata,
        spec: field(map, "spec", index, kind)?,
        doc: index,
    })
}

/// `#[serde(with = "crate::plan::documents::option_config")]` for an
/// `Option<Config>` carried as a list of canonical documents (`null` for none).
pub mod option_config {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value;

    use crate::model::Config;

    pub fn serialize<S: Serializer>(config: &Option<Config>, s: S) -> Result<S::Ok, S::Error> {
        match config {
            Some(c) => s.collect_seq(super::to_documents(c)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Config>, D::Error> {
        let docs = Option::<Vec<Value>>::deserialize(d)?;
        docs.map(|docs| super::from_documents(&docs).map_err(serde::de::Error::custom))
            .transpose()
    }
}
