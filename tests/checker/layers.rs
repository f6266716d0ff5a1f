//! The layering of `src/`: which top-level module may name which.
//!
//! Data flows one way (ARCHITECTURE.md, "Invariants"): a module names only
//! the modules below it. This test reads every file under `src/<module>/`
//! (and `src/<module>.rs`), collects the `crate::<module>` paths its code
//! names (comments excluded), and fails on any path the table below does
//! not allow. A new top-level module must be added to the table.
//!
//! It also keeps the runtime's pure state machines pure ([`PURE`]): none
//! of them names I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Per module, the modules its code may name. `cli`, `main.rs` and `lib.rs`
/// are the top and may name anything; they are not scanned.
const ALLOWED: &[(&str, &[&str])] = &[
    // The typed configuration: names nothing.
    ("model", &[]),
    // What each rule is (IDs, severities, texts): names nothing.
    ("catalog", &[]),
    // Findings and renderers: know the catalog, never the checks.
    ("diag", &["catalog", "model"]),
    // Files to typed objects, with findings: never the checks.
    ("load", &["catalog", "diag", "model"]),
    // The checks.
    ("rules", &["catalog", "diag", "load", "model"]),
    // The pure reconciler core: placement and the plan.
    ("plan", &["catalog", "diag", "load", "model", "rules"]),
    // What a driver does on a node (processes, addresses, storage).
    ("drivers", &["model", "private"]),
    // Timer helpers of the runtime's loops: names nothing.
    ("clock", &[]),
    // Files asctl keeps to itself (0700 directories, 0600 files): names nothing.
    ("private", &[]),
    // What crosses a process boundary: never the agent or the domain.
    (
        "wire",
        &[
            "catalog", "diag", "load", "model", "rules", "plan", "drivers",
        ],
    ),
    // The replicated domain: knows nothing of what runs on a node.
    (
        "domain",
        &[
            "catalog", "diag", "load", "model", "rules", "plan", "wire", "clock", "private",
        ],
    ),
    // The node agent: everything below it.
    (
        "agent",
        &[
            "catalog", "diag", "load", "model", "rules", "plan", "drivers", "domain", "wire",
            "clock", "private",
        ],
    ),
];

/// Violations being removed, each (file, module it names) with a comment
/// saying which work removes it. The test fails on any violation not listed
/// here and on any entry that no longer occurs, so the list only shrinks.
/// (The runtime restructuring emptied it of the domain's climbs into the
/// agent.)
const KNOWN: &[(&str, &str)] = &[];

/// Top-level modules that are entry points, not layers.
const TOP: &[&str] = &["cli", "main", "lib"];

/// The top-level modules `code` names through `crate::`, comments excluded.
fn named_modules(code: &str) -> BTreeSet<String> {
    let code: String = code
        .lines()
        .map(|line| line.find("//").map_or(line, |i| &line[..i]))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        // `crate::` must start a path, not end an identifier (`mycrate::`).
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            out.extend(group_heads(group));
        } else {
            out.insert(ident(rest).to_owned());
        }
    }
    out.remove("");
    out.remove("self");
    out
}

/// The first segment of each item of a `{a, b::c, d::{e}}` group, up to
/// the group's closing brace.
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut at_item = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_item = true,
            c if at_item && (c.is_alphanumeric() || c == '_') => {
                heads.push(ident(&group[i..]).to_owned());
                at_item = false;
            }
            _ => {}
        }
    }
    heads
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every (file relative to the crate root, top-level module it belongs to).
fn source_files(root: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut out: Vec<(String, String)> = files
        .into_iter()
        .filter_map(|p| {
            let rel = p
                .strip_prefix(root)
                .ok()?
                .to_string_lossy()
                .replace('\\', "/");
            let module = rel
                .strip_prefix("src/")?
                .split('/')
                .next()?
                .trim_end_matches(".rs")
                .to_owned();
            Some((rel, module))
        })
        .collect();
    out.sort();
    out
}

/// Every (file, named module) that the table does not allow, and every
/// module the table does not know.
fn violations(root: &Path) -> (BTreeSet<(String, String)>, BTreeSet<String>) {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut found = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    for (file, module) in source_files(root) {
        if TOP.contains(&module.as_str()) {
            continue;
        }
        let Some(may) = allowed.get(module.as_str()) else {
            unknown.insert(module);
            continue;
        };
        let code = std::fs::read_to_string(root.join(&file)).expect("source file is readable");
        for named in named_modules(&code) {
            if named != module && !may.contains(&named.as_str()) {
                found.insert((file.clone(), named));
            }
        }
    }
    (found, unknown)
}

#[test]
fn no_module_names_a_module_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (found, unknown) = violations(root);
    assert!(
        unknown.is_empty(),
        "top-level modules missing from the layer table in tests/checker/layers.rs: {unknown:?}"
    );
    let known: BTreeSet<(String, String)> = KNOWN
        .iter()
        .map(|(f, m)| ((*f).to_owned(), (*m).to_owned()))
        .collect();
    let new: Vec<_> = found.difference(&known).collect();
    assert!(
        new.is_empty(),
        "a module names one above it (file, named module): {new:?}\nsee the layer table in tests/checker/layers.rs and ARCHITECTURE.md"
    );
    let gone: Vec<_> = known.difference(&found).collect();
    assert!(
        gone.is_empty(),
        "known violations that no longer occur; remove them from KNOWN: {gone:?}"
    );
}

#[test]
fn the_scanner_sees_paths_and_groups_and_skips_comments() {
    let code = "use crate::diag::Finding;\n\
                use crate::{\n    load::Loaded,\n    model::{Kind, Name}, self};\n\
                // crate::agent in a comment\n\
                let x = crate::rules::validate(l); // crate::domain\n\
                let y = mycrate::plan::x;\n";
    let names: Vec<String> = named_modules(code).into_iter().collect();
    assert_eq!(names, ["diag", "load", "model", "rules"]);
}

#[test]
fn every_layer_in_the_table_exists_or_is_expected() {
    // The table names only modules below it: an allowed module must itself
    // be a layer, so that a typo cannot allow a module by accident.
    let layers: BTreeSet<&str> = ALLOWED.iter().map(|(m, _)| *m).collect();
    for (module, may) in ALLOWED {
        for m in *may {
            assert!(
                layers.contains(m),
                "`{module}` may name `{m}`, which is not a layer"
            );
        }
    }
}

/// The pure state machines: every decision of the runtime that can be made
/// without I/O is made in one of these, and their drivers do the I/O. They
/// must stay testable with made-up instants and no sockets.
const PURE: &[&str] = &[
    "src/agent/detection/detector/mod.rs",
    "src/agent/detection/detector/setup.rs",
    "src/agent/detection/detector/timing.rs",
    "src/agent/failover/policy/machine.rs",
    "src/agent/failover/takeover.rs",
    "src/domain/state/mod.rs",
    "src/domain/state/command.rs",
    "src/domain/state/documents.rs",
    "src/domain/leader/decide.rs",
];

/// What a pure file must not name: the async runtime, files, processes,
/// sockets, the clock, the drivers and the runtime's timers.
const IMPURE: &[&str] = &[
    "tokio",
    "std::fs",
    "std::process",
    "std::thread",
    "UdpSocket",
    "TcpStream",
    "TcpListener",
    "Instant::now",
    "SystemTime::now",
    "crate::drivers",
    "crate::clock",
];

/// (file, name) pairs allowed anyway, each with the reason.
const IMPURE_ALLOWED: &[(&str, &str)] = &[
    // The fallback of `PeerWatch::last_heard` for a peer without lines,
    // which is never watched: unreachable, but not a panic.
    ("src/agent/detection/detector/mod.rs", "Instant::now"),
];

/// `code` without comments and without its `#[cfg(test)]` inline modules.
fn non_test_code(code: &str) -> String {
    let mut out = String::new();
    let mut lines = code.lines().peekable();
    while let Some(line) = lines.next() {
        let is_test_module = line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.contains("mod ") && next.trim_end().ends_with('{'));
        if is_test_module {
            let mut depth = 0i32;
            for inner in lines.by_ref() {
                depth += inner.matches('{').count() as i32 - inner.matches('}').count() as i32;
                if depth <= 0 {
                    break;
                }
            }
            continue;
        }
        out.push_str(line.find("//").map_or(line, |i| &line[..i]));
        out.push('\n');
    }
    out
}

#[test]
fn the_pure_state_machines_do_no_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for file in PURE {
        let code = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("{file} is listed as pure but cannot be read: {e}"));
        let code = non_test_code(&code);
        for name in IMPURE {
            if code.contains(name) && !IMPURE_ALLOWED.contains(&(file, name)) {
                found.push((*file, *name));
            }
        }
    }
    assert!(
        found.is_empty(),
        "a pure state machine names I/O (file, name): {found:?}; do it in the driver"
    );
}

#[test]
fn the_purity_scan_skips_comments_and_test_modules() {
    let code = "use std::time::Instant; // tokio in a comment\n\
                fn f() {}\n\
                #[cfg(test)]\n\
                mod tests {\n    fn g() { let _ = std::fs::read(\"x\"); }\n}\n\
                fn h() { tokio::spawn(x); }\n";
    let kept = non_test_code(code);
    assert!(kept.contains("fn h() { tokio::spawn"), "{kept}");
    assert!(!kept.contains("std::fs"), "{kept}");
    assert!(!kept.contains("in a comment"), "{kept}");
}
