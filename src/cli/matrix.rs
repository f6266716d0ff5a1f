//! `asctl matrix [TYPE]`: the seed's support tables, printed from the data
//! the rules use, in the seed's layout so they can be compared with it.

use std::fmt::Write as _;
use std::process::ExitCode;

use asctl::model::Qualification;
use asctl::rules::profile;
use asctl::rules::tables::{RowKey, Subject, Table, Topology, table_for};
use clap::Args;
use serde_json::json;

use super::catalog::ListFormat;
use super::{EXIT_OK, EXIT_USAGE};

#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// A data source type (`sharedDisk`, `mirrorView`, ...), `managedIp`,
    /// `nodeAlias`, or a table number; all tables when omitted.
    #[arg(value_name = "TYPE")]
    pub subject: Option<String>,
    /// The qualification profile whose tables to print.
    #[arg(long, default_value = "autostart-vmware-2009", value_name = "PROFILE")]
    pub qualification: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Human)]
    pub format: ListFormat,
}

pub fn run(args: MatrixArgs) -> anyhow::Result<ExitCode> {
    let Some(q) = [Qualification::AutostartVmware2009, Qualification::Generic]
        .into_iter()
        .find(|q| q.as_str() == args.qualification)
    else {
        eprintln!(
            "error: no qualification profile `{}`; use autostart-vmware-2009 or generic",
            args.qualification
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    };
    let tables = profile::profile(q).tables;
    if tables.is_empty() {
        // A profile without a matrix (`generic`): say so, rather than an
        // empty list of tables to choose from.
        match args.format {
            ListFormat::Human => println!(
                "profile {} has no support tables: it checks asctl's structural rules only, \
                 not the VMware matrix (`asctl matrix --qualification {}` prints the seed's tables)",
                q.as_str(),
                Qualification::default().as_str()
            ),
            ListFormat::Json => println!("[]"),
        }
        return Ok(ExitCode::from(EXIT_OK));
    }
    let selected: Vec<&Table> = match &args.subject {
        None => tables.iter().collect(),
        Some(s) => {
            if let Ok(n) = s.parse::<u8>() {
                tables.iter().filter(|t| t.number == n).collect()
            } else if let Some(subject) = Subject::parse(s) {
                match table_for(tables, subject) {
                    Some(t) => vec![t],
                    None => {
                        println!(
                            "{} has no table in {}: the matrix does not judge it",
                            subject.as_str(),
                            q.as_str()
                        );
                        return Ok(ExitCode::from(EXIT_OK));
                    }
                }
            } else {
                Vec::new()
            }
        }
    };
    if selected.is_empty() {
        let names: Vec<&str> = tables
            .iter()
            .flat_map(|t| t.subjects.iter().map(|s| s.as_str()))
            .collect();
        eprintln!(
            "error: no table for `{}`; use a table number or one of: {}",
            args.subject.as_deref().unwrap_or_default(),
            names.join(", ")
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    match args.format {
        ListFormat::Human => print!("{}", render_human(&selected)),
        ListFormat::Json => println!("{}", serde_json::to_string_pretty(&render_json(&selected))?),
    }
    Ok(ExitCode::from(EXIT_OK))
}

/// Each table as the seed prints it: caption, then a row per backing (or
/// per object) and a column per topology.
fn render_human(tables: &[&Table]) -> String {
    let mut out = String::new();
    for (i, t) in tables.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "Table {}. {} (seed: {})", t.number, t.title, t.section);
        let first = t
            .rows
            .iter()
            .map(|r| r.label.chars().count())
            .max()
            .unwrap_or(0);
        let widths: Vec<usize> = Topology::ALL
            .iter()
            .map(|c| c.seed_label().chars().count())
            .collect();
        let mut header = format!("| {:first$} |", "");
        let mut rule = format!("|{}|", "-".repeat(first + 2));
        for (c, w) in Topology::ALL.iter().zip(&widths) {
            let _ = write!(header, " {:w$} |", c.seed_label());
            let _ = write!(rule, "{}|", "-".repeat(w + 2));
        }
        let _ = writeln!(out, "\n{header}\n{rule}");
        for r in t.rows {
            let mut line = format!("| {:first$} |", r.label);
            for (c, w) in Topology::ALL.iter().zip(&widths) {
                let _ = write!(line, " {:w$} |", r.cell(*c).as_str());
            }
            let _ = writeln!(out, "{line}");
        }
        if t.subjects.contains(&Subject::DataSource(
            asctl::model::DataSourceType::Composite,
        )) {
            let _ = writeln!(
                out,
                "\nA composite's support is also the intersection of its members' tables \
                 (members: mirroring, sharedDisk, repliStor, vxvm)."
            );
        }
    }
    out
}

fn render_json(tables: &[&Table]) -> serde_json::Value {
    let list: Vec<_> = tables
        .iter()
        .map(|t| {
            let rows: Vec<_> = t
                .rows
                .iter()
                .map(|r| {
                    let cells: serde_json::Map<String, serde_json::Value> = Topology::ALL
                        .iter()
                        .map(|c| (c.as_str().to_owned(), json!(r.cell(*c).as_str())))
                        .collect();
                    let key = match r.key {
                        RowKey::Backing(b) => json!({ "backing": b.as_str() }),
                        RowKey::Subject(s) => json!({ "subject": s.as_str() }),
                    };
                    json!({ "key": key, "label": r.label, "cells": cells })
                })
                .collect();
            let columns: Vec<_> = Topology::ALL
                .iter()
                .map(|c| json!({ "topology": c.as_str(), "label": c.seed_label() }))
                .collect();
            json!({
                "table": t.number,
                "title": t.title,
                "section": t.section,
                "subjects": t.subjects.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                "columns": columns,
                "rows": rows,
            })
        })
        .collect();
    json!(list)
}
