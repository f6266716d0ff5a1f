//! The spanned tree seen as JSON: by the schema validator (which reads it in
//! place, through `jsonschema`'s instance traits, instead of a converted
//! copy of every document) and, converted, by whoever needs a JSON value.
//!
//! Both views must agree: a key that is a list or mapping has no JSON form
//! and is left out (the loader reports it), a finite float is a number, and
//! a non-finite one (`.inf`, `.nan`) is the string JSON would need.

use std::borrow::Cow;

use jsonschema::JsonType;
use jsonschema::json::{Array, Json, Node as JNode, NodeIdentity, Object};
use serde_json::{Number, Value as J};

use super::{Node, Span, Value};
use crate::diag::Pos;

impl Node<'_> {
    /// Converts to JSON (the agent's own configuration, tests, and the
    /// instance of a schema error). Entries whose key is a list or mapping
    /// have no JSON form and are left out (the loader reports them, see
    /// [`Node::complex_keys`]).
    pub fn to_json(&self) -> J {
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or_else(|| J::String(f.to_string())),
            Value::Str(s) => J::String(s.to_string()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .filter(|(k, _)| k.is_scalar())
                    .map(|(k, v)| (k.key_text().into_owned(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// The spanned tree as an instance representation of the schema validator.
pub struct YamlJson;

impl Json for YamlJson {
    type Node<'a> = &'a Node<'a>;
    type PreparedKey = String;
    type StringBuffer = ();

    // Mappings are small vectors scanned in order, as serde_json's ordered
    // maps are: the same trade-off as for them.
    const KEYS_PER_LOOKUP: usize = 2;
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>((): &mut (), string: &str, f: impl FnOnce(Self::Node<'_>) -> T) -> T {
        let at = Pos { line: 1, column: 1 };
        let node = Node {
            span: Span { start: at, end: at },
            value: Value::Str(Cow::Borrowed(string)),
        };
        f(&node)
    }
}

/// A mapping's entries, complex keys skipped.
#[derive(Clone, Copy)]
pub struct Entries<'a>(&'a [(Node<'a>, Node<'a>)]);

/// A sequence's items.
#[derive(Clone, Copy)]
pub struct Items<'a>(&'a [Node<'a>]);

impl<'a> JNode<'a, YamlJson> for &'a Node<'a> {
    type Object = Entries<'a>;
    type Array = Items<'a>;
    type Number = Number;

    fn as_object(&self) -> Option<Entries<'a>> {
        match &self.value {
            Value::Map(entries) => Some(Entries(entries)),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<Items<'a>> {
        match &self.value {
            Value::Seq(items) => Some(Items(items)),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match &self.value {
            Value::Str(s) => Some(Cow::Borrowed(s)),
            Value::Float(f) if !f.is_finite() => Some(Cow::Owned(f.to_string())),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<Number> {
        match self.value {
            Value::Int(i) => Some(Number::from(i)),
            Value::Float(f) => Number::from_f64(f),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self.value {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        self.value == Value::Null
    }

    fn json_type(&self) -> JsonType {
        match &self.value {
            Value::Null => JsonType::Null,
            Value::Bool(_) => JsonType::Boolean,
            Value::Int(_) => JsonType::Number,
            Value::Float(f) if f.is_finite() => JsonType::Number,
            Value::Float(_) | Value::Str(_) => JsonType::String,
            Value::Seq(_) => JsonType::Array,
            Value::Map(_) => JsonType::Object,
        }
    }

    fn equals_value(&self, expected: &J) -> bool {
        // `enum` and `const` on strings are most of the checks: compared in
        // place; anything else as JSON.
        match (&self.value, expected) {
            (Value::Str(s), J::String(e)) => s == e,
            (Value::Str(_), _) | (_, J::String(_)) if !matches!(self.value, Value::Float(_)) => {
                false
            }
            _ => jsonschema::json::cmp::equal(&self.to_json(), expected),
        }
    }

    fn to_value(&self) -> Cow<'a, J> {
        Cow::Owned(self.to_json())
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::new(std::ptr::from_ref::<Node>(self) as usize))
    }
}

impl<'a> Object<'a, YamlJson> for Entries<'a> {
    type Node = &'a Node<'a>;
    type MemberName = Cow<'a, str>;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        self.0.iter().filter(|(k, _)| k.is_scalar()).count()
    }

    fn get(&self, key: &String) -> Option<&'a Node<'a>> {
        self.0.iter().find(|(k, _)| k.is_key(key)).map(|(_, v)| v)
    }

    fn members(&self) -> Members<'a> {
        Members(self.0.iter())
    }
}

/// The entries of a mapping whose key is a scalar, with the key's text.
pub struct Members<'a>(std::slice::Iter<'a, (Node<'a>, Node<'a>)>);

impl<'a> Iterator for Members<'a> {
    type Item = (Cow<'a, str>, &'a Node<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        self.0
            .by_ref()
            .find(|(k, _)| k.is_scalar())
            .map(|(k, v)| (k.key_text(), v))
    }
}

impl<'a> Array<'a, YamlJson> for Items<'a> {
    type Node = &'a Node<'a>;
    type ElementsIter = std::slice::Iter<'a, Node<'a>>;

    fn len(&self) -> usize {
        self.0.len()
    }

    fn elements(&self) -> std::slice::Iter<'a, Node<'a>> {
        self.0.iter()
    }
}
