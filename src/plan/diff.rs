//! Object-level and field-level differences between two configurations.
//!
//! Objects are compared through their canonical JSON value
//! ([`super::documents`]), so the diff sees exactly what would be stored and
//! nothing of how the YAML was written (comments, key order, defaults left
//! out). Secrets are masked here, when the diff is built, so that no
//! renderer — and no saved or JSON plan — can ever show them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::documents::canonical_objects;
use crate::model::{Config, Kind, Name};

/// What shows in place of a secret value, in every rendering.
pub const SENSITIVE: &str = "(sensitive)";

/// What happens to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// `+`: the object is new.
    Create,
    /// `~`: the object changes in place.
    Update,
    /// `-`: the object is removed.
    Delete,
    /// `-/+`: a field that cannot change in place changed; the object is
    /// removed and created again (see [`forces_replacement`]).
    Replace,
}

impl Op {
    /// The Terraform-style marker.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Create => "+",
            Op::Update => "~",
            Op::Delete => "-",
            Op::Replace => "-/+",
        }
    }
}

/// One changed leaf value. `before` is absent for a value that is added,
/// `after` for one that is removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDiff {
    /// Where the value is, e.g. `spec.processes[0].command`.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    /// Some value here was replaced by `"(sensitive)"`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
    /// This field cannot change in place: the object is replaced.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forces_replacement: bool,
}

/// One object that differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectChange {
    #[serde(with = "kind_serde")]
    pub kind: Kind,
    pub name: Name,
    pub op: Op,
    /// Every changed leaf value; for a created or deleted object, every value.
    pub fields: Vec<FieldDiff>,
}

impl ObjectChange {
    /// `Kind/name`, as findings and acceptances write it.
    pub fn address(&self) -> String {
        self.kind.key(self.name.as_str())
    }
}

/// Fields whose change cannot be applied to a running object. A Node's
/// `host` or `physical` says which machine it is: a VM moved to another host,
/// or turned into a physical machine, is a different machine with the same
/// name. A DataSource's `type` selects its driver, so the old driver must
/// release the data before the new one takes it. Everything else is updated
/// in place (for a group, possibly with a restart: see the actions).
pub fn forces_replacement(kind: Kind, path: &str) -> bool {
    let fields: &[&str] = match kind {
        Kind::Node => &["spec.host", "spec.physical"],
        Kind::DataSource => &["spec.type"],
        _ => &[],
    };
    fields.iter().any(|f| {
        path.strip_prefix(f)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    })
}

/// Whether the value at `path` of an object of `kind` is a secret: the value
/// of a process environment variable.
fn is_secret(kind: Kind, path: &[Seg]) -> bool {
    kind == Kind::ResourceGroup
        && matches!(
            path,
            [Seg::Key(spec), Seg::Key(processes), Seg::Index(_), Seg::Key(env), Seg::Key(_)]
                if spec == "spec" && processes == "processes" && env == "env"
        )
}

/// The object changes from `old` (the live configuration, `None` before the
/// first apply) to `new`, by kind and then name.
pub fn diff_configs(old: Option<&Config>, new: &Config) -> Vec<ObjectChange> {
    type Key = (Kind, String);
    let mut before: BTreeMap<Key, Value> = BTreeMap::new();
    if let Some(old) = old {
        for (kind, name, value) in canonical_objects(old) {
            before.entry((kind, name)).or_insert(value);
        }
    }
    let mut after: BTreeMap<Key, Value> = BTreeMap::new();
    for (kind, name, value) in canonical_objects(new) {
        after.entry((kind, name)).or_insert(value);
    }
    let mut keys: Vec<&Key> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();

    let mut changes = Vec::new();
    for key @ (kind, name) in keys {
        let (b, a) = (before.get(key), after.get(key));
        if b == a {
            continue;
        }
        // Names come from parsed objects, so they are valid; skip rather than
        // panic if that ever stops being true.
        let Ok(name) = name.parse::<Name>() else {
            continue;
        };
        let mut fields = diff_values(*kind, b, a);
        let op = match (b, a) {
            (None, _) => Op::Create,
            (_, None) => Op::Delete,
            _ if fields.iter().any(|f| f.forces_replacement) => Op::Replace,
            _ => Op::Update,
        };
        if matches!(op, Op::Create | Op::Delete) {
            // Only a change of an existing object can force its replacement.
            fields.iter_mut().for_each(|f| f.forces_replacement = false);
        }
        changes.push(ObjectChange {
            kind: *kind,
            name,
            op,
            fields,
        });
    }
    changes
}

/// The changed leaves between two canonical object values.
pub fn diff_values(kind: Kind, before: Option<&Value>, after: Option<&Value>) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    walk(kind, &mut Vec::new(), before, after, &mut out);
    // The name is the object's identity, already in its address; a renamed
    // object is a different object (one deleted, one created).
    out.retain(|f| f.path != "metadata.name");
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

struct Path<'a>(&'a [Seg]);

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) if is_plain_key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                // Label keys such as `app.kubernetes.io/name` would make a
                // dotted path ambiguous.
                Seg::Key(k) => write!(f, "[{}]", Value::String(k.clone()))?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Objects are compared key by key and lists of objects item by item, so a
/// change deep in a process shows as that one field. Anything else (scalars,
/// lists of scalars such as a command line) is a leaf: a command is one value
/// to the user, and its diff reads best whole.
fn walk(
    kind: Kind,
    path: &mut Vec<Seg>,
    before: Option<&Value>,
    after: Option<&Value>,
    out: &mut Vec<FieldDiff>,
) {
    if before == after {
        return;
    }
    match (before, after) {
        (Some(Value::Object(_)) | None, Some(Value::Object(_)) | None) => {
            let empty = serde_json::Map::new();
            let b = before.and_then(Value::as_object).unwrap_or(&empty);
            let a = after.and_then(Value::as_object).unwrap_or(&empty);
            let keys = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k)));
            for key in keys {
                path.push(Seg::Key(key.clone()));
                walk(kind, path, b.get(key), a.get(key), out);
                path.pop();
            }
        }
        (b, a) if is_object_list(b) && is_object_list(a) => {
            let (b, a) = (as_list(b), as_list(a));
            for i in 0..b.len().max(a.len()) {
                path.push(Seg::Index(i));
                walk(kind, path, b.get(i), a.get(i), out);
                path.pop();
            }
        }
        _ => out.push(leaf(kind, path, before, after)),
    }
}

fn is_object_list(v: Option<&Value>) -> bool {
    match v {
        None => true,
        Some(Value::Array(items)) => !items.is_empty() && items.iter().all(Value::is_object),
        Some(_) => false,
    }
}

fn as_list(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn leaf(
    kind: Kind,
    path: &mut Vec<Seg>,
    before: Option<&Value>,
    after: Option<&Value>,
) -> FieldDiff {
    let mut sensitive = false;
    let mut masked = |v: Option<&Value>| {
        v.map(|v| {
            let mut v = v.clone();
            sensitive |= redact(kind, path, &mut v);
            v
        })
    };
    let (before, after) = (masked(before), masked(after));
    let path_text = Path(path).to_string();
    FieldDiff {
        forces_replacement: forces_replacement(kind, &path_text),
        path: path_text,
        before,
        after,
        sensitive,
    }
}

/// Replaces every secret in `value` (found at `path`) by [`SENSITIVE`].
/// Returns whether it replaced anything.
fn redact(kind: Kind, path: &mut Vec<Seg>, value: &mut Value) -> bool {
    if is_secret(kind, path) {
        *value = Value::String(SENSITIVE.into());
        return true;
    }
    let mut any = false;
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                path.push(Seg::Key(k.clone()));
                any |= redact(kind, path, v);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                path.push(Seg::Index(i));
                any |= redact(kind, path, v);
                path.pop();
            }
        }
        _ => {}
    }
    any
}

/// Serde for [`Kind`] as its YAML name (`ResourceGroup`).
pub(crate) mod kind_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::model::Kind;

    pub fn serialize<S: Serializer>(kind: &Kind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Kind::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown kind `{s}`")))
    }
}
