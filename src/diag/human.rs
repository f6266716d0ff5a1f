//! rustc-style text: a header, the source line, a caret under the value,
//! related locations and a help line.

use std::fmt::Write;

use anstyle::{AnsiColor, Style};

use super::{DomainRef, Finding, Location, Severity, Sources, Summary};

/// The styles of human output; all plain when colour is off.
#[derive(Debug, Clone, Copy, Default)]
struct Paint {
    on: bool,
}

impl Paint {
    fn severity(self, s: Severity) -> Style {
        if !self.on {
            return Style::new();
        }
        let color = match s {
            Severity::Error => AnsiColor::BrightRed,
            Severity::Warning => AnsiColor::BrightYellow,
            Severity::Note => AnsiColor::BrightGreen,
        };
        Style::new().bold().fg_color(Some(color.into()))
    }

    fn frame(self) -> Style {
        if self.on {
            Style::new()
                .bold()
                .fg_color(Some(AnsiColor::BrightBlue.into()))
        } else {
            Style::new()
        }
    }

    fn bold(self) -> Style {
        if self.on {
            Style::new().bold()
        } else {
            Style::new()
        }
    }
}

/// [`render_human`] with ANSI colours, as rustc shows them on a terminal.
/// Print it through `anstream`, which removes the colours where they do not
/// belong (not a terminal, `--color never`, `NO_COLOR`).
pub fn render_human_styled(findings: &[Finding], sources: &Sources, documents: usize) -> String {
    render(findings, sources, documents, Paint { on: true })
}

/// Findings are expected in output order ([`super::sort_findings`]): those
/// of one domain together. When they come from more than one domain (or
/// from files checked alone as well), each domain's findings follow a
/// header line naming it.
pub fn render_human(findings: &[Finding], sources: &Sources, documents: usize) -> String {
    render(findings, sources, documents, Paint::default())
}

fn render(findings: &[Finding], sources: &Sources, documents: usize, paint: Paint) -> String {
    let mut out = String::new();
    let active = || findings.iter().filter(|f| f.is_active());
    let first = active().next().map(|f| f.domain.as_ref());
    let headers = active().any(|f| Some(f.domain.as_ref()) != first);
    let mut current: Option<Option<&DomainRef>> = None;
    for f in active() {
        if headers && current != Some(f.domain.as_ref()) {
            current = Some(f.domain.as_ref());
            let b = paint.bold();
            let _ = match &f.domain {
                Some(d) => writeln!(out, "{b}== domain `{}` ({}){b:#}\n", d.name, d.root),
                None => writeln!(out, "{b}== files checked alone (under no Domain){b:#}\n"),
            };
        }
        finding(&mut out, f, sources, paint);
    }
    summary(&mut out, findings, sources.len(), documents, paint);
    out
}

/// One finding: its headline, its location and related ones as snippets,
/// and its help, seed reference and rule.
fn finding(out: &mut String, f: &Finding, sources: &Sources, paint: Paint) {
    let (sev, b) = (paint.severity(f.severity), paint.bold());
    let _ = writeln!(
        out,
        "{sev}{}[{}]{sev:#}{b}: {}{b:#}",
        f.severity, f.rule.id, f.message
    );
    let gutter = gutter_width(f);
    if let Some(loc) = f.location {
        let mark = Mark {
            arrow: "-->",
            label: "",
            gutter,
            mark: '^',
            style: sev,
        };
        snippet(out, sources, loc, mark, paint);
    }
    for r in &f.related {
        let mark = Mark {
            arrow: ":::",
            label: &r.message,
            gutter,
            mark: '-',
            style: paint.frame(),
        };
        snippet(out, sources, r.location, mark, paint);
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

/// The last line: the verdict and the counts.
fn summary(out: &mut String, findings: &[Finding], files: usize, documents: usize, paint: Paint) {
    let s = Summary::of(findings);
    let verdict = if s.errors > 0 {
        paint.severity(Severity::Error)
    } else {
        paint.severity(Severity::Note)
    };
    let _ = write!(
        out,
        "{verdict}{}{verdict:#}: {} file{}, {} document{}: {} error{}, {} warning{}",
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

/// How one location is drawn: its arrow, label, gutter width and marks.
struct Mark<'a> {
    arrow: &'a str,
    label: &'a str,
    gutter: usize,
    mark: char,
    style: Style,
}

fn snippet(out: &mut String, sources: &Sources, loc: Location, m: Mark, paint: Paint) {
    let Mark {
        arrow,
        label,
        gutter,
        mark,
        style,
    } = m;
    let frame = paint.frame();
    let pad = " ".repeat(gutter);
    let _ = writeln!(
        out,
        "{pad}{frame}{arrow}{frame:#} {}:{}:{}",
        sources.name(loc.file),
        loc.start.line,
        loc.start.column
    );
    let Some(line) = sources.line(loc.file, loc.start.line) else {
        return;
    };
    let line = line.replace('\t', " ");
    let _ = writeln!(out, "{pad} {frame}|{frame:#}");
    let _ = writeln!(
        out,
        "{frame}{:>gutter$} |{frame:#} {}",
        loc.start.line, line
    );
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
    let _ = writeln!(
        out,
        "{pad} {frame}|{frame:#} {}{style}{marks}{label}{style:#}",
        " ".repeat(start as usize)
    );
}
