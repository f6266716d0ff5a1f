//! Rules about the configuration as a whole: unique names, one Domain,
//! references that resolve.

use std::collections::HashMap;

use super::Ctx;
use crate::catalog as cat;
use crate::diag::Finding;
use crate::load::did_you_mean;
use crate::model::{DocId, Kind, Name};

pub fn check(ctx: &mut Ctx) {
    duplicate_names(ctx);
    domain_count(ctx);
    references(ctx);
}

fn duplicate_names(ctx: &mut Ctx) {
    let mut first: HashMap<(Kind, &str), DocId> = HashMap::new();
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
    pointer: String,
    target: Kind,
    name: &'a str,
}

fn references(ctx: &mut Ctx) {
    let cfg = ctx.config;
    let mut refs: Vec<Ref> = Vec::new();
    fn add<'a>(
        refs: &mut Vec<Ref<'a>>,
        from: (Kind, &'a Name),
        doc: DocId,
        pointer: String,
        target: Kind,
        name: &'a str,
    ) {
        refs.push(Ref {
            from,
            doc,
            pointer,
            target,
            name,
        });
    }
    for n in &cfg.nodes {
        if let Some(h) = &n.spec.host {
            add(
                &mut refs,
                (Kind::Node, n.name()),
                n.doc,
                "/spec/host".into(),
                Kind::Host,
                h.as_str(),
            );
        }
        if let crate::model::Vmotion::Targets(hosts) = &n.spec.vmotion {
            for (i, h) in hosts.iter().enumerate() {
                add(
                    &mut refs,
                    (Kind::Node, n.name()),
                    n.doc,
                    format!("/spec/vmotion/{i}"),
                    Kind::Host,
                    h.as_str(),
                );
            }
        }
    }
    for l in &cfg.lines {
        for member in l.spec.members.keys() {
            add(
                &mut refs,
                (Kind::NetworkLine, l.name()),
                l.doc,
                format!("/spec/members/{member}"),
                Kind::Node,
                member.as_str(),
            );
        }
    }
    for d in &cfg.data_sources {
        let from = (Kind::DataSource, d.name());
        if let Some(on) = &d.spec.on {
            add(
                &mut refs,
                from,
                d.doc,
                "/spec/on".into(),
                Kind::DataSource,
                on.as_str(),
            );
        }
        if let Some(p) = &d.spec.paired_with {
            add(
                &mut refs,
                from,
                d.doc,
                "/spec/pairedWith".into(),
                Kind::DataSource,
                p.as_str(),
            );
        }
        for (i, m) in d.spec.members.iter().enumerate() {
            add(
                &mut refs,
                from,
                d.doc,
                format!("/spec/members/{i}"),
                Kind::DataSource,
                m.as_str(),
            );
        }
    }
    for g in &cfg.groups {
        let from = (Kind::ResourceGroup, g.name());
        for (i, n) in g.spec.preferred_nodes.iter().enumerate() {
            add(
                &mut refs,
                from,
                g.doc,
                format!("/spec/preferredNodes/{i}"),
                Kind::Node,
                n.as_str(),
            );
        }
        for (i, d) in g.spec.data_sources.iter().enumerate() {
            add(
                &mut refs,
                from,
                g.doc,
                format!("/spec/dataSources/{i}"),
                Kind::DataSource,
                d.as_str(),
            );
        }
        for (i, ip) in g.spec.ip_addresses.iter().enumerate() {
            add(
                &mut refs,
                from,
                g.doc,
                format!("/spec/ipAddresses/{i}/line"),
                Kind::NetworkLine,
                ip.line.as_str(),
            );
        }
    }
    if ctx.unit.incomplete {
        return;
    }
    for r in refs {
        if ctx.declares(r.target, r.name) {
            continue;
        }
        let candidates = names_of(ctx, r.target);
        let candidates: Vec<&str> = candidates.iter().map(String::as_str).collect();
        let help = match did_you_mean(r.name, &candidates) {
            Some(s) => format!("did you mean `{s}`?"),
            None if candidates.is_empty() => format!("no {} is defined; add one", r.target),
            None => format!("defined {}s: {}", r.target, candidates.join(", ")),
        };
        // Members of a line are map keys: point at the key.
        let loc = if r.pointer.contains("/members/") && r.from.0 == Kind::NetworkLine {
            ctx.at_key(r.doc, &r.pointer)
        } else {
            ctx.at(r.doc, &r.pointer)
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
}

fn names_of(ctx: &Ctx, kind: Kind) -> Vec<String> {
    ctx.docs()
        .map(|(_, d)| d)
        .filter(|d| d.kind == kind)
        .filter_map(|d| d.name.clone())
        .collect()
}
