//! GitHub Actions workflow commands: one `::error`/`::warning`/`::notice`
//! line per finding, shown as annotations on the pull request.

use std::fmt::Write;

use super::{Finding, Severity, Sources};

pub fn render_github(findings: &[Finding], sources: &Sources) -> String {
    let mut out = String::new();
    for f in findings.iter().filter(|f| f.is_active()) {
        let command = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "notice",
        };
        let mut props = Vec::new();
        if let Some(l) = f.location {
            props.push(format!("file={}", property(sources.name(l.file))));
            props.push(format!("line={}", l.start.line));
            props.push(format!("col={}", l.start.column));
            if l.end.line >= l.start.line {
                props.push(format!("endLine={}", l.end.line));
            }
            if l.end.line == l.start.line && l.end.column > l.start.column {
                props.push(format!("endColumn={}", l.end.column));
            }
        }
        props.push(format!(
            "title={}",
            property(&format!("{} {}", f.rule.id, f.rule.title))
        ));
        let message = format!("{}\nhelp: {}", f.message, f.help_text());
        let _ = writeln!(out, "::{command} {}::{}", props.join(","), data(&message));
    }
    out
}

fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}
