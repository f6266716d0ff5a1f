//! The stable JSON report (documented in the README). Bump
//! [`JSON_FORMAT_VERSION`] on any incompatible change.

use serde_json::{Value, json};

use super::{Finding, Location, Sources, Summary};

/// 2: the version key is `formatVersion` (as in every JSON output of
/// asctl), and each finding has `domain`.
pub const JSON_FORMAT_VERSION: u32 = 2;

pub fn render_json(findings: &[Finding], sources: &Sources, documents: usize) -> String {
    let s = Summary::of(findings);
    let report = json!({
        "formatVersion": JSON_FORMAT_VERSION,
        "tool": { "name": "asctl", "version": env!("CARGO_PKG_VERSION") },
        "summary": {
            "files": sources.len(),
            "documents": documents,
            "errors": s.errors,
            "warnings": s.warnings,
            "notes": s.notes,
            "suppressed": s.suppressed,
        },
        "findings": findings.iter().map(|f| finding(f, sources)).collect::<Vec<_>>(),
    });
    let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
    text.push('\n');
    text
}

fn finding(f: &Finding, sources: &Sources) -> Value {
    json!({
        "rule": f.rule.id,
        "name": f.rule.name,
        "severity": f.severity,
        "message": f.message,
        "help": f.help_text(),
        "seedReference": f.rule.seed_reference(),
        "location": f.location.map(|l| location(l, sources)),
        "related": f.related.iter().map(|r| {
            let mut v = location(r.location, sources);
            v["message"] = json!(r.message);
            v
        }).collect::<Vec<_>>(),
        "objects": f.objects,
        "suppressed": f.suppressed.as_ref().map(|reason| json!({ "reason": reason })),
        "domain": f.domain,
    })
}

fn location(l: Location, sources: &Sources) -> Value {
    json!({
        "file": sources.name(l.file),
        "line": l.start.line,
        "column": l.start.column,
        "endLine": l.end.line,
        "endColumn": l.end.column,
    })
}
