//! JUnit XML, for CI systems that show test reports (GitLab, Jenkins,
//! Azure Pipelines). One test case per file read: it fails with one
//! `<failure>` per error in it; warnings and notes are listed in its
//! `<system-out>`. Findings without a location form a test case of their
//! own.

use std::fmt::Write;

use super::{Finding, Severity, Sources};

pub fn render_junit(findings: &[Finding], sources: &Sources) -> String {
    let active: Vec<&Finding> = findings.iter().filter(|f| f.is_active()).collect();
    let mut cases = String::new();
    let mut failures = 0;
    let mut case = |name: &str, of_case: &[&Finding]| {
        let errors: Vec<&&Finding> = of_case
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        failures += usize::from(!errors.is_empty());
        let _ = writeln!(
            cases,
            "    <testcase classname=\"asctl.validate\" name=\"{}\">",
            escape(name)
        );
        for f in &errors {
            let _ = writeln!(
                cases,
                "      <failure type=\"{}\" message=\"{}\">{}</failure>",
                f.rule.id,
                escape(&f.message),
                escape(&detail(f, sources))
            );
        }
        let others: Vec<String> = of_case
            .iter()
            .filter(|f| f.severity != Severity::Error)
            .map(|f| detail(f, sources))
            .collect();
        if !others.is_empty() {
            let _ = writeln!(
                cases,
                "      <system-out>{}</system-out>",
                escape(&others.join("\n"))
            );
        }
        cases.push_str("    </testcase>\n");
    };
    let unlocated: Vec<&Finding> = active
        .iter()
        .copied()
        .filter(|f| f.location.is_none())
        .collect();
    if !unlocated.is_empty() {
        case("configuration", &unlocated);
    }
    for file in 0..sources.len() {
        let of_file: Vec<&Finding> = active
            .iter()
            .copied()
            .filter(|f| f.location.is_some_and(|l| l.file == file))
            .collect();
        case(sources.name(file), &of_file);
    }
    let tests = sources.len() + usize::from(!unlocated.is_empty());
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"asctl\" tests=\"{tests}\" failures=\"{failures}\">\n  <testsuite name=\"asctl validate\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\">\n{cases}  </testsuite>\n</testsuites>\n"
    )
}

/// One finding as a line: where, severity, rule, message and help.
fn detail(f: &Finding, sources: &Sources) -> String {
    let at = f.location.map_or(String::new(), |l| {
        format!(
            "{}:{}:{}: ",
            sources.name(l.file),
            l.start.line,
            l.start.column
        )
    });
    let domain = f
        .domain
        .as_ref()
        .map_or(String::new(), |d| format!(" (domain `{}`)", d.name));
    format!(
        "{at}{}[{}]: {}{domain}\nhelp: {}",
        f.severity,
        f.rule.id,
        f.message,
        f.help_text()
    )
}

/// Escapes text for an XML attribute or element; drops the control
/// characters XML 1.0 cannot carry.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}
