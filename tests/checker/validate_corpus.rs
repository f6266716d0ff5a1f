//! The broken-file corpus: one fixture per failure kind of the loader, each
//! with the exact rule and line:column it must be reported at, and snapshots
//! of the human and JSON output.

use asctl::diag::{render_human, render_json};
use asctl::load::{Input, load};
use asctl::rules::validate;

const FIXTURES: &str = "tests/fixtures/broken";

/// A finding as (rule, line, column).
type At = (&'static str, u32, u32);

/// (fixture, every active finding in output order).
const EXPECTED: &[(&str, &[At])] = &[
    // At the unclosed `[`, not where the parser stopped (15:1).
    ("syntax.yaml", &[("AS0001", 14, 9)]),
    ("duplicate-key.yaml", &[("AS0002", 15, 3)]),
    ("non-utf8.yaml", &[("AS0003", 13, 13)]),
    ("empty-document.yaml", &[("AS0004", 7, 1)]),
    ("billion-laughs.yaml", &[("AS0005", 18, 14)]),
    ("deep-nesting.yaml", &[("AS0005", 12, 73)]),
    ("deep-flow-nesting.yaml", &[("AS0005", 16, 17)]),
    ("missing-api-version.yaml", &[("AS0006", 8, 1)]),
    ("missing-kind.yaml", &[("AS0006", 8, 1)]),
    ("unknown-api-version.yaml", &[("AS0007", 8, 13)]),
    ("unknown-kind.yaml", &[("AS0008", 9, 7)]),
    ("unknown-field.yaml", &[("AS0009", 14, 3)]),
    ("wrong-type.yaml", &[("AS0010", 15, 14), ("AS0010", 16, 9)]),
    ("not-a-mapping.yaml", &[("AS0010", 8, 1)]),
    ("complex-key.yaml", &[("AS0010", 15, 5)]),
    ("invalid-name.yaml", &[("AS0011", 11, 9)]),
    ("duplicate-names", &[("AS0012", 4, 9)]),
    ("two-domains.yaml", &[("AS0013", 9, 7)]),
    ("dangling-reference.yaml", &[("AS0014", 20, 27)]),
    ("missing-field.yaml", &[("AS0015", 12, 1)]),
    ("invalid-enum.yaml", &[("AS0016", 13, 9)]),
    ("invalid-duration.yaml", &[("AS0016", 8, 15)]),
    ("invalid-address.yaml", &[("AS0016", 32, 16)]),
    (
        "many-errors.yaml",
        &[
            ("AS0010", 13, 13),
            ("AS0016", 14, 9),
            ("AS0009", 15, 3),
            ("AS0016", 18, 11),
        ],
    ),
];

fn run(fixture: &str) -> asctl::rules::Validation {
    let path = format!("{FIXTURES}/{fixture}");
    validate(load(&[Input::Path(path.into())]).expect("fixture is readable"))
}

#[test]
fn every_fixture_is_reported_at_the_exact_place() {
    for (fixture, expected) in EXPECTED {
        let v = run(fixture);
        let got: Vec<(&str, u32, u32)> = v
            .findings
            .iter()
            .filter(|f| f.is_active())
            .map(|f| {
                let loc = f.location.expect("corpus findings have a location");
                (f.rule.id, loc.start.line, loc.start.column)
            })
            .collect();
        assert_eq!(&got, expected, "fixture {fixture}");
    }
}

#[test]
fn a_file_without_domain_is_checked_alone_and_refused_by_plan() {
    let v = run("no-domain.yaml");
    assert_eq!(v.findings, Vec::new(), "a valid file alone has no finding");
    assert_eq!(v.loaded.units.len(), 1);
    assert!(v.loaded.units[0].alone());
    assert!(matches!(
        v.loaded.single_domain(),
        Err(asctl::load::DomainsError::NoDomain)
    ));
}

#[test]
fn duplicates_point_back_at_the_first_definition() {
    let v = run("duplicate-key.yaml");
    let related = &v.findings[0].related;
    assert_eq!(related.len(), 1);
    assert_eq!(
        (
            related[0].location.start.line,
            related[0].location.start.column
        ),
        (14, 3)
    );

    let v = run("duplicate-names");
    let f = &v.findings[0];
    assert!(
        v.loaded
            .sources
            .name(f.location.unwrap().file)
            .ends_with("b.yaml")
    );
    let first = f.related[0].location;
    assert!(v.loaded.sources.name(first.file).ends_with("a.yaml"));
    assert_eq!((first.start.line, first.start.column), (11, 9));
}

#[test]
fn unknown_fields_and_kinds_suggest_the_closest_name() {
    let v = run("unknown-field.yaml");
    assert_eq!(
        v.findings[0].help.as_deref(),
        Some("did you mean `failback`?")
    );
    let v = run("unknown-kind.yaml");
    assert_eq!(
        v.findings[0].help.as_deref(),
        Some("did you mean `ResourceGroup`?")
    );
    let v = run("dangling-reference.yaml");
    assert_eq!(v.findings[0].help.as_deref(), Some("did you mean `node1`?"));
}

#[test]
fn a_file_over_the_size_limit_is_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let line = "# padding padding padding padding padding padding padding padding\n";
    let text = line.repeat(asctl::load::MAX_FILE_BYTES / line.len() + 2);
    std::fs::write(&path, text).unwrap();
    let v = validate(load(&[Input::Path(path)]).unwrap());
    assert_eq!(v.findings.len(), 1);
    assert_eq!(v.findings[0].rule.id, "AS0005");
    assert!(v.findings[0].message.contains("larger than 32 MiB"));
}

#[test]
fn snapshots_of_human_and_json_output() {
    let mut names: Vec<&str> = EXPECTED.iter().map(|(f, _)| *f).collect();
    names.push("no-domain.yaml");
    for fixture in names {
        let v = run(fixture);
        let docs = v.loaded.docs.len();
        let human = render_human(&v.findings, &v.loaded.sources, docs);
        let json = render_json(&v.findings, &v.loaded.sources, docs);
        let name = fixture.trim_end_matches(".yaml");
        insta::assert_snapshot!(format!("{name}.human"), human);
        insta::assert_snapshot!(format!("{name}.json"), json);
    }
}
