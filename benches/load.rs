//! Validation throughput: generated domains of 1k, 10k and 50k documents,
//! measured end to end (YAML → spans → schema → typed model → rules).
//!
//! `cargo bench --bench load` prints criterion's figures; the README's
//! performance section records them. Target (2 cores): 50k documents in
//! under 1 s, and 10× the documents in at most 11× the time.

use asctl::load::load_texts;
use asctl::rules::validate;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Documents per generated file, as in a repository of many small files.
const DOCS_PER_FILE: usize = 1000;

#[path = "support/generate.rs"]
mod generate;
use generate::generate;

fn run(files: &[(String, String)]) -> usize {
    let v = validate(load_texts(
        files.iter().map(|(n, t)| (n.as_str(), t.as_bytes())),
    ));
    v.loaded.docs.len()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    group.sample_size(10);
    for docs in [1_000, 10_000, 50_000] {
        let files = generate(docs, DOCS_PER_FILE);
        let loaded = run(&files);
        let v = validate(load_texts(
            files.iter().map(|(n, t)| (n.as_str(), t.as_bytes())),
        ));
        let errors = v
            .findings
            .iter()
            .filter(|f| f.severity == asctl::diag::Severity::Error)
            .count();
        eprintln!(
            "{docs} requested: {loaded} documents, {errors} errors, {} findings",
            v.findings.len()
        );
        if let Some(f) = v.findings.first() {
            eprintln!("  first finding: {} {}", f.rule.id, f.message);
        }
        group.throughput(Throughput::Elements(loaded as u64));
        group.bench_with_input(BenchmarkId::from_parameter(docs), &files, |b, files| {
            b.iter(|| run(files))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
