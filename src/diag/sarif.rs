//! SARIF 2.1.0 for code scanning (GitHub accepts it as uploaded).

use serde_json::{Value, json};

use super::{Finding, Location, Severity, Sources};
use crate::catalog::ALL;

pub fn render_sarif(findings: &[Finding], sources: &Sources) -> String {
    let rules: Vec<Value> = ALL
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "shortDescription": { "text": r.title },
                "fullDescription": { "text": r.explanation },
                "help": { "text": r.fix },
                "defaultConfiguration": { "level": level(r.severity) },
                "properties": {
                    "seedReference": r.seed_reference(),
                    "origin": if r.seed_reference().is_some() { "seed" } else { "asctl" },
                },
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let index = ALL.iter().position(|r| r.id == f.rule.id).unwrap_or(0);
            // Code scanning needs a location: whole-configuration findings
            // point at the start of the first file.
            let loc = f.location.or_else(|| {
                (!sources.is_empty()).then_some(Location {
                    file: 0,
                    start: super::Pos { line: 1, column: 1 },
                    end: super::Pos { line: 1, column: 1 },
                })
            });
            let mut result = json!({
                "ruleId": f.rule.id,
                "ruleIndex": index,
                "level": level(f.severity),
                "message": { "text": format!("{} ({})", f.message, f.help_text()) },
                "locations": loc.map(|l| vec![physical(l, sources)]).unwrap_or_default(),
            });
            if !f.related.is_empty() {
                result["relatedLocations"] = f
                    .related
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let mut v = physical(r.location, sources);
                        v["id"] = json!(i + 1);
                        v["message"] = json!({ "text": r.message });
                        v
                    })
                    .collect();
            }
            if let Some(d) = &f.domain {
                result["properties"] = json!({ "domain": d });
            }
            if let Some(reason) = &f.suppressed {
                result["suppressions"] = json!([{ "kind": "inSource", "justification": reason }]);
            }
            result
        })
        .collect();
    let report = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "asctl",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/asctl/asctl",
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
    text.push('\n');
    text
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

fn physical(l: Location, sources: &Sources) -> Value {
    // Standard input keeps its one spelling, `<stdin>`, percent-encoded
    // as a URI reference must be.
    let uri = match sources.name(l.file) {
        super::STDIN_NAME => "%3Cstdin%3E".to_owned(),
        name => name.replace('\\', "/").trim_start_matches("./").to_owned(),
    };
    json!({
        "physicalLocation": {
            "artifactLocation": { "uri": uri },
            "region": {
                "startLine": l.start.line,
                "startColumn": l.start.column,
                "endLine": l.end.line.max(l.start.line),
                "endColumn": if l.end.line > l.start.line || l.end.column > l.start.column { l.end.column } else { l.start.column + 1 },
            },
        },
    })
}
