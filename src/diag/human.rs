//! rustc-style text: a header, the source line, a caret under the value,
//! related locations and a help line.

use std::fmt::Write;

use super::{DomainRef, Finding, Location, Sources, Summary};

/// Findings are expected in output order ([`super::sort_findings`]): those
/// of one domain together. When they come from more than one domain (or
/// from files checked alone as well), each domain's findings follow a
/// header line naming it.
pub fn render_human(findings: &[Finding], sources: &Sources, documents: usize) -> String {
    let mut out = String::new();
    let active = || findings.iter().filter(|f| f.is_active());
    let first = active().next().map(|f| f.domain.as_ref());
    let headers = active().any(|f| Some(f.domain.as_ref()) != first);
    let mut current: Option<Option<&DomainRef>> = None;
    for f in active() {
        if headers && current != Some(f.domain.as_ref()) {
            current = Some(f.domain.as_ref());
            let _ = match &f.domain {
                Some(d) => writeln!(out, "== domain `{}` ({})\n", d.name, d.root),
                None => writeln!(out, "== files checked alone (under no Domain)\n"),
            };
        }
        let _ = writeln!(out, "{}[{}]: {}", f.severity, f.rule.id, f.message);
        let gutter = gutter_width(f);
        if let Some(loc) = f.location {
            snippet(&mut out, sources, loc, "-->", "", gutter, '^');
        }
        for r in &f.related {
            snippet(
                &mut out, sources, r.location, ":::", &r.message, gutter, '-',
            );
        }
        let pad = " ".repeat(gutter);
        if f.location.is_some() || !f.related.is_empty() {
            let _ = writeln!(out, "{pad} |");
        }
        let _ = writeln!(out, "{pad} = help: {}", f.help_text());
        if let Some(seed) = f.rule.seed_reference() {
            let _ = writeln!(out, "{pad} = seed: {seed}");
        }
        let _ = writeln!(out, "{pad} = rule: `asctl explain {}`", f.rule.id);
        out.push('\n');
    }
    let s = Summary::of(findings);
    let files = sources.len();
    let _ = write!(
        out,
        "{}: {} file{}, {} document{}: {} error{}, {} warning{}",
        if s.errors > 0 { "failed" } else { "ok" },
        files,
        plural(files),
        documents,
        plural(documents),
        s.errors,
        plural(s.errors),
        s.warnings,
        plural(s.warnings),
    );
    if s.notes > 0 {
        let _ = write!(out, ", {} note{}", s.notes, plural(s.notes));
    }
    if s.suppressed > 0 {
        let _ = write!(out, " ({} accepted in the Domain)", s.suppressed);
    }
    out.push('\n');
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn gutter_width(f: &Finding) -> usize {
    let max = f
        .location
        .iter()
        .chain(f.related.iter().map(|r| &r.location))
        .map(|l| l.start.line)
        .max()
        .unwrap_or(1);
    max.to_string().len()
}

fn snippet(
    out: &mut String,
    sources: &Sources,
    loc: Location,
    arrow: &str,
    label: &str,
    gutter: usize,
    mark: char,
) {
    let pad = " ".repeat(gutter);
    let _ = writeln!(
        out,
        "{pad}{arrow} {}:{}:{}",
        sources.name(loc.file),
        loc.start.line,
        loc.start.column
    );
    let Some(line) = sources.line(loc.file, loc.start.line) else {
        return;
    };
    let line = line.replace('\t', " ");
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{:>gutter$} | {}", loc.start.line, line);
    let chars = line.chars().count() as u32;
    let start = loc.start.column.saturating_sub(1).min(chars);
    let end = if loc.end.line == loc.start.line && loc.end.column > loc.start.column {
        (loc.end.column - 1).min(chars)
    } else {
        chars
    };
    let width = end.saturating_sub(start).max(1) as usize;
    let marks: String = std::iter::repeat_n(mark, width).collect();
    let label = if label.is_empty() {
        String::new()
    } else {
        format!(" {label}")
    };
    let _ = writeln!(out, "{pad} | {}{marks}{label}", " ".repeat(start as usize));
}
