//! A whole configuration: every object of every kind, typed, with the
//! document each one came from (for locating findings).

// Names are looked up once per reference in the rules: a fast hasher, still
// seeded per process.
use foldhash::HashMap;

use serde::Serialize;

use super::*;

/// Index of a document in the loaded set (`crate::load::Loaded::docs`).
pub type DocId = usize;

/// One typed object: its metadata, its spec, and where it was read from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Object<S> {
    pub metadata: Metadata,
    pub spec: S,
    #[serde(skip)]
    pub doc: DocId,
}

impl<S> Object<S> {
    pub fn name(&self) -> &Name {
        &self.metadata.name
    }
}

/// Objects of one kind, in document order, with a name index.
///
/// Each object has an allocation of its own: the loader types the objects
/// of every file in parallel and hands them over here by pointer, so a
/// large configuration never holds its objects twice (once per file, once
/// here), and an object takes its own size, not that of the largest kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Objects<S> {
    items: Vec<Box<Object<S>>>,
    #[serde(skip)]
    by_name: HashMap<Name, usize>,
}

/// Indexes the object at `i` by its name, unless an earlier object has it.
fn index_first(by_name: &mut HashMap<Name, usize>, name: &Name, i: usize) {
    by_name.entry(name.clone()).or_insert(i);
}

impl<S> Default for Objects<S> {
    fn default() -> Self {
        Objects {
            items: Vec::new(),
            by_name: HashMap::default(),
        }
    }
}

impl<S> Objects<S> {
    /// Adds an object. The first object of a name wins the index; the loader
    /// reports later duplicates.
    pub fn push(&mut self, obj: Object<S>) {
        self.push_boxed(Box::new(obj));
    }

    /// [`Objects::push`] of an object already in its own allocation.
    pub fn push_boxed(&mut self, obj: Box<Object<S>>) {
        index_first(&mut self.by_name, &obj.metadata.name, self.items.len());
        self.items.push(obj);
    }

    /// Objects in document order, indexed by name (the first object of a
    /// name wins, as with [`Objects::push`]). The list is kept as it is
    /// given: tens of thousands of pointers are not copied into another.
    pub fn from_boxes(items: Vec<Box<Object<S>>>) -> Self {
        let mut by_name = HashMap::default();
        by_name.reserve(items.len());
        for (i, obj) in items.iter().enumerate() {
            index_first(&mut by_name, &obj.metadata.name, i);
        }
        Objects { items, by_name }
    }

    pub fn get(&self, name: &str) -> Option<&Object<S>> {
        self.by_name.get(name).map(|&i| &*self.items[i])
    }

    pub fn iter(&self) -> Iter<'_, S> {
        Iter(self.items.iter())
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The objects of one kind, in document order.
#[derive(Debug)]
pub struct Iter<'a, S>(std::slice::Iter<'a, Box<Object<S>>>);

impl<S> Clone for Iter<'_, S> {
    fn clone(&self) -> Self {
        Iter(self.0.clone())
    }
}

impl<'a, S> Iterator for Iter<'a, S> {
    type Item = &'a Object<S>;
    fn next(&mut self) -> Option<&'a Object<S>> {
        self.0.next().map(|b| &**b)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
    fn nth(&mut self, n: usize) -> Option<&'a Object<S>> {
        self.0.nth(n).map(|b| &**b)
    }
}

impl<S> DoubleEndedIterator for Iter<'_, S> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|b| &**b)
    }
}

impl<S> ExactSizeIterator for Iter<'_, S> {}

impl<'a, S> IntoIterator for &'a Objects<S> {
    type Item = &'a Object<S>;
    type IntoIter = Iter<'a, S>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The typed configuration: what the rules check and the reconciler applies.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub domain: Option<Object<DomainSpec>>,
    pub hosts: Objects<HostSpec>,
    pub nodes: Objects<NodeSpec>,
    pub lines: Objects<NetworkLineSpec>,
    pub data_sources: Objects<DataSourceSpec>,
    pub groups: Objects<ResourceGroupSpec>,
}

impl Config {
    /// The rule profile in force (the default one when there is no Domain).
    pub fn qualification(&self) -> Qualification {
        self.domain
            .as_ref()
            .map(|d| d.spec.qualification)
            .unwrap_or_default()
    }

    /// Whether an object of `kind` named `name` exists.
    pub fn has(&self, kind: Kind, name: &str) -> bool {
        match kind {
            Kind::Domain => self
                .domain
                .as_ref()
                .is_some_and(|d| d.name().as_str() == name),
            Kind::Host => self.hosts.get(name).is_some(),
            Kind::Node => self.nodes.get(name).is_some(),
            Kind::NetworkLine => self.lines.get(name).is_some(),
            Kind::DataSource => self.data_sources.get(name).is_some(),
            Kind::ResourceGroup => self.groups.get(name).is_some(),
        }
    }
}
