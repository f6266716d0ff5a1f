//! Rules about the configuration as a whole: unique names, one Domain,
//! references that resolve.

use foldhash::HashMap;

use super::Ctx;
use crate::catalog as cat;
use crate::diag::Finding;
use crate::load::did_you_mean;
use crate::model::{Config, DocId, Kind, Name};

pub fn check(ctx: &mut Ctx) {
    duplicate_names(ctx);
    domain_count(ctx);
    references(ctx);
}

fn duplicate_names(ctx: &mut Ctx) {
    let mut first: HashMap<(Kind, &str), DocId> = HashMap::default();
    first.reserve(ctx.unit.docs.len());
    for (id, doc) in ctx.docs() {
        let Some(name) = doc.name.as_deref() else {
            continue;
        };
        if let Some(&prev) = first.get(&(doc.kind, name)) {
            let f = Finding::new(
                &cat::DUPLICATE_NAME,
                format!("{} `{name}` is defined twice", doc.kind),
                ctx.at(id, "/metadata/name"),
            )
            .with_related(ctx.at(prev, "/metadata/name"), "first defined here")
            .about(doc.kind, name);
            ctx.report(f);
        } else {
            first.insert((doc.kind, name), id);
        }
    }
}

fn domain_count(ctx: &mut Ctx) {
    let domains: Vec<DocId> = ctx
        .docs()
        .filter(|(_, d)| d.kind == Kind::Domain)
        .map(|(i, _)| i)
        .collect();
    match domains.as_slice() {
        [] if !ctx.unit.incomplete => ctx.report(
            Finding::new(&cat::DOMAIN_COUNT, "the configuration has no Domain", None)
                .with_help("add a document with `kind: Domain` describing the domain"),
        ),
        [first, rest @ ..] => {
            for &other in rest {
                let name = ctx.loaded.docs[other].name.clone().unwrap_or_default();
                let f = Finding::new(
                    &cat::DOMAIN_COUNT,
                    format!("a second Domain `{name}`: a configuration has exactly one"),
                    ctx.at(other, "/kind"),
                )
                .with_related(ctx.at(*first, "/kind"), "the first Domain is here")
                .about(Kind::Domain, &name);
                ctx.report(f);
            }
        }
        [] => {}
    }
}

/// One reference: which object refers, where, and to what.
struct Ref<'a> {
    from: (Kind, &'a Name),
    doc: DocId,
    at: Field<'a>,
    target: Kind,
    name: &'a str,
}

/// Where a reference is written; its JSON pointer is built only for a
/// reference that dangles (most of them resolve).
#[derive(Clone, Copy)]
enum Field<'a> {
    /// `/spec/host`
    Fixed(&'static str),
    /// `/spec/preferredNodes/3` (prefix, index, suffix)
    Item(&'static str, usize, &'static str),
    /// `/spec/members/node1`: a line's member is a mapping key.
    Key(&'static str, &'a str),
}

impl Field<'_> {
    fn pointer(self) -> String {
        match self {
            Field::Fixed(p) => p.to_owned(),
            Field::Item(prefix, i, suffix) => format!("{prefix}{i}{suffix}"),
            Field::Key(prefix, key) => format!("{prefix}{key}"),
        }
    }
}

fn references(ctx: &mut Ctx) {
    // A dropped document may be the one referred to.
    if ctx.unit.incomplete {
        return;
    }
    let cfg = ctx.config;
    // Each reference is judged as it is met: the configuration holds
    // several per object, and a list of them all would be a large share
    // of the memory of a large domain.
    let mut judge = |r: Ref| {
        if !ctx.declares(r.target, r.name) {
            dangling(ctx, r);
        }
    };
    node_refs(cfg, &mut judge);
    for l in &cfg.lines {
        let from = (Kind::NetworkLine, l.name());
        for m in l.spec.members.keys() {
            judge(Ref {
                from,
                doc: l.doc,
                at: Field::Key("/spec/members/", m.as_str()),
                target: Kind::Node,
                name: m.as_str(),
            });
        }
    }
    data_source_refs(cfg, &mut judge);
    group_refs(cfg, &mut judge);
}

fn node_refs<'a>(cfg: &'a Config, refs: &mut impl FnMut(Ref<'a>)) {
    for n in &cfg.nodes {
        let from = (Kind::Node, n.name());
        let to_host = |at, h: &'a Name| Ref {
            from,
            doc: n.doc,
            at,
            target: Kind::Host,
            name: h.as_str(),
        };
        if let Some(h) = &n.spec.host {
            refs(to_host(Field::Fixed("/spec/host"), h));
        }
        if let crate::model::Vmotion::Targets(hosts) = &n.spec.vmotion {
            for (i, h) in hosts.iter().enumerate() {
                refs(to_host(Field::Item("/spec/vmotion/", i, ""), h));
            }
        }
    }
}

fn data_source_refs<'a>(cfg: &'a Config, refs: &mut impl FnMut(Ref<'a>)) {
    for d in &cfg.data_sources {
        let from = (Kind::DataSource, d.name());
        let to_source = |at, name: &'a Name| Ref {
            from,
            doc: d.doc,
            at,
            target: Kind::DataSource,
            name: name.as_str(),
        };
        if let Some(on) = &d.spec.on {
            refs(to_source(Field::Fixed("/spec/on"), on));
        }
        if let Some(p) = &d.spec.paired_with {
            refs(to_source(Field::Fixed("/spec/pairedWith"), p));
        }
        for (i, m) in d.spec.members.iter().enumerate() {
            refs(to_source(Field::Item("/spec/members/", i, ""), m));
        }
    }
}

fn group_refs<'a>(cfg: &'a Config, refs: &mut impl FnMut(Ref<'a>)) {
    for g in &cfg.groups {
        let from = (Kind::ResourceGroup, g.name());
        let to = |at, target, name: &'a Name| Ref {
            from,
            doc: g.doc,
            at,
            target,
            name: name.as_str(),
        };
        for (i, n) in g.spec.preferred_nodes.iter().enumerate() {
            refs(to(
                Field::Item("/spec/preferredNodes/", i, ""),
                Kind::Node,
                n,
            ));
        }
        for (i, d) in g.spec.data_sources.iter().enumerate() {
            let at = Field::Item("/spec/dataSources/", i, "");
            refs(to(at, Kind::DataSource, d));
        }
        for (i, ip) in g.spec.ip_addresses.iter().enumerate() {
            let at = Field::Item("/spec/ipAddresses/", i, "/line");
            refs(to(at, Kind::NetworkLine, &ip.line));
        }
    }
}

fn dangling(ctx: &mut Ctx, r: Ref) {
    let candidates = names_of(ctx, r.target);
    let candidates: Vec<&str> = candidates.iter().map(String::as_str).collect();
    let help = match did_you_mean(r.name, &candidates) {
        Some(s) => format!("did you mean `{s}`?"),
        None if candidates.is_empty() => format!("no {} is defined; add one", r.target),
        None => format!("defined {}s: {}", r.target, candidates.join(", ")),
    };
    let pointer = r.at.pointer();
    // Members of a line are map keys: point at the key.
    let loc = if matches!(r.at, Field::Key(..)) {
        ctx.at_key(r.doc, &pointer)
    } else {
        ctx.at(r.doc, &pointer)
    };
    let f = Finding::new(
        &cat::DANGLING_REFERENCE,
        format!(
            "{} `{}` refers to {} `{}`, which does not exist",
            r.from.0, r.from.1, r.target, r.name
        ),
        loc,
    )
    .with_help(help)
    .about(r.from.0, r.from.1.as_str());
    ctx.report(f);
}

fn names_of(ctx: &Ctx, kind: Kind) -> Vec<String> {
    ctx.docs()
        .map(|(_, d)| d)
        .filter(|d| d.kind == kind)
        .filter_map(|d| d.name.as_deref().map(str::to_owned))
        .collect()
}
