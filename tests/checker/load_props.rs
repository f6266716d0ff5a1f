//! The loader never panics: arbitrary bytes, and valid documents mutated at
//! random, always give a result with findings (and the CLI an exit code of
//! 0, 1 or 2).

use std::path::Path;

use asctl::load::load_texts;
use asctl::rules::validate;
use proptest::prelude::*;

/// Every directory of `examples/` (new ones are picked up), sorted.
fn example_dirs() -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir("examples")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Each example domain as one multi-document text: its YAML files (found
/// recursively, sorted) joined with `---`.
fn example_texts() -> Vec<Vec<u8>> {
    fn yaml_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                yaml_files(&p, out);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for dir in example_dirs() {
        let mut files = Vec::new();
        yaml_files(&dir, &mut files);
        files.sort();
        let mut all = Vec::new();
        for f in &files {
            all.extend(std::fs::read(f).unwrap());
            all.extend(b"\n---\n");
        }
        out.push(all);
    }
    out
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Replace { at: usize, byte: u8 },
    SwapLines { a: usize, b: usize },
    Duplicate { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(vec![
        b":".to_vec(),
        b"- ".to_vec(),
        b"---\n".to_vec(),
        b"&a ".to_vec(),
        b"*a".to_vec(),
        b"[".to_vec(),
        b"{".to_vec(),
        b"\"".to_vec(),
        b"'".to_vec(),
        b"\t".to_vec(),
        b"\n  ".to_vec(),
        b"!!str ".to_vec(),
        b"\xff".to_vec(),
        b"? ".to_vec(),
        b"|".to_vec(),
        b"kind: Node\n".to_vec(),
        b"name: x\n".to_vec(),
        b"~".to_vec(),
    ]);
    prop_oneof![
        (any::<usize>(), 1usize..20).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), interesting).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Replace { at, byte }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        (any::<usize>(), 1usize..200).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
    ]
}

fn apply(text: &mut Vec<u8>, m: &Mutation) {
    let n = text.len().max(1);
    match m {
        Mutation::Delete { at, len } => {
            let at = at % n;
            let end = (at + len).min(text.len());
            text.drain(at.min(text.len())..end);
        }
        Mutation::Insert { at, bytes } => {
            let at = at % (text.len() + 1);
            text.splice(at..at, bytes.iter().copied());
        }
        Mutation::Replace { at, byte } => {
            if !text.is_empty() {
                let at = at % text.len();
                text[at] = *byte;
            }
        }
        Mutation::SwapLines { a, b } => {
            let mut lines: Vec<Vec<u8>> = text.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
            let (a, b) = (a % lines.len(), b % lines.len());
            lines.swap(a, b);
            *text = lines.join(&b'\n');
        }
        Mutation::Duplicate { at, len } => {
            let at = at % n;
            let end = (at + len).min(text.len());
            if at < end {
                let piece = text[at..end].to_vec();
                text.splice(end..end, piece);
            }
        }
    }
}

fn check(bytes: &[u8]) {
    let v = validate(load_texts([("fuzz.yaml", bytes)]));
    // Every finding with a location points inside the file.
    let lines = String::from_utf8_lossy(bytes).split('\n').count() as u32;
    for f in &v.findings {
        if let Some(l) = f.location {
            assert!(l.start.line >= 1 && l.start.line <= lines + 1, "{f:?}");
            assert!(l.start.column >= 1, "{f:?}");
        }
    }
    // Rendering never fails either.
    let docs = v.loaded.docs.len();
    let _ = asctl::diag::render_human(&v.findings, &v.loaded.sources, docs);
    let _ = asctl::diag::render_sarif(&v.findings, &v.loaded.sources);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes);
    }

    #[test]
    fn arbitrary_yaml_like_text_never_panics(text in "[a-z:\\-\\[\\]{}&*!|>'\"#\n ]{0,400}") {
        check(text.as_bytes());
    }

    #[test]
    fn mutated_examples_never_panic(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let texts = example_texts();
        let mut text = texts[which.index(texts.len())].clone();
        for m in &mutations {
            apply(&mut text, m);
        }
        check(&text);
    }
}

proptest! {
    // The real binary, fewer cases: each one is a process.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_cli_always_exits_0_1_or_2(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 0..6),
        format in prop::sample::select(vec!["human", "json", "sarif", "github"]),
    ) {
        let texts = example_texts();
        let mut text = texts[which.index(texts.len())].clone();
        for m in &mutations {
            apply(&mut text, m);
        }
        let out = assert_cmd::Command::cargo_bin("asctl").unwrap()
            .args(["validate", "--format", format, "-"])
            .write_stdin(text)
            .output()
            .unwrap();
        let code = out.status.code();
        prop_assert!(matches!(code, Some(0..=2)), "exit {code:?}: {}", String::from_utf8_lossy(&out.stderr));
        prop_assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
}

#[test]
fn the_examples_used_as_seeds_are_valid() {
    let dirs = example_dirs();
    for name in [
        "cluster-across-boxes",
        "cluster-in-a-box",
        "quickstart",
        "standby-host",
    ] {
        assert!(
            dirs.iter().any(|d| d.ends_with(name)),
            "examples/{name} is a seed"
        );
    }
    let texts = example_texts();
    assert_eq!(texts.len(), dirs.len(), "one seed per example directory");
    for (dir, text) in dirs.iter().zip(&texts) {
        let v = validate(load_texts([("seed.yaml", text.as_slice())]));
        assert!(!v.has_errors(), "{}: {:?}", dir.display(), v.findings);
    }
}
