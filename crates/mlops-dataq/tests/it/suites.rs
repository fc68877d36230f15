use mlops_dataq::{CheckOptions, Error, infer_suite, parse_config, parse_suite_file, run_suite};
use proptest::prelude::*;

use crate::*;

const CONFIG: &str = r#"
[stages.train]
cmd = "python train.py"

[checks.people]
data = "people.csv"
sample_rows = 3

[[checks.people.expect]]
type = "between"
column = "age"
min = 0
max = 120
mostly = 0.5

[[checks.people.expect]]
type = "not_null"
column = "age"
sentinels = [-3]
severity = "warn"

[[checks.people.expect]]
type = "drift"
columns = ["score"]
method = "psi"
reference = "people.csv"

[gates.x]
whatever = 1
"#;

#[test]
fn checks_sections_parse_and_other_sections_are_ignored() {
    let path = testdata().join("mlops.toml");
    let suites = parse_config(&path, CONFIG).unwrap();
    assert_eq!(suites.len(), 1);
    let s = &suites[0];
    assert_eq!(s.name, "people");
    assert_eq!(s.sample_rows, 3);
    assert_eq!(s.expectations.len(), 3);
    let r = run_suite(s, &CheckOptions::default()).unwrap();
    assert!(r.results[0].passed, "mostly 0.5");
    assert!(!r.results[1].passed);
    assert!(r.passed, "the failure is a warning");
    assert!(r.results[2].passed, "same data has no drift");
}

fn suite_err(text: &str) -> (usize, usize, String) {
    match parse_config(std::path::Path::new("mlops.toml"), text).unwrap_err() {
        Error::Suite {
            line,
            column,
            message,
            ..
        } => (line, column, message),
        other => panic!("{other}"),
    }
}

#[test]
fn errors_name_line_and_column() {
    let (line, _, msg) = suite_err(
        "[checks.a]\ndata = \"x.csv\"\n[[checks.a.expect]]\ntype = \"between\"\ncolumn = \"age\"\nminn = 3\n",
    );
    assert_eq!(line, 6);
    assert!(msg.contains("unknown field `minn`"), "{msg}");
    let (line, _, msg) = suite_err(
        "[checks.a]\ndata = \"x.csv\"\n\n[[checks.a.expect]]\ntype = \"betwen\"\ncolumn = \"age\"\n",
    );
    assert_eq!(line, 4);
    assert!(msg.contains("unknown expectation type `betwen`"), "{msg}");
    let (_, _, msg) = suite_err(
        "[checks.a]\ndata = \"x.csv\"\n[[checks.a.expect]]\ntype = \"between\"\ncolumn = \"age\"\n",
    );
    assert!(msg.contains("needs `min` or `max`"), "{msg}");
    let (_, _, msg) = suite_err(
        "[checks.a]\ndata = \"x.csv\"\n[[checks.a.expect]]\ntype = \"regex\"\ncolumn = \"a\"\npattern = \"(\"\n",
    );
    assert!(msg.contains("bad pattern"), "{msg}");
    let (_, _, msg) = suite_err(
        "[checks.a]\ndata = \"x.csv\"\n[[checks.a.expect]]\ntype = \"mean\"\ncolumn = \"a\"\nmin = 1\nmostly = 0.5\n",
    );
    assert!(msg.contains("`mostly` applies only to row-level"), "{msg}");
    let (_, _, msg) = suite_err(
        "[checks.a]\ndata = \"x.csv\"\n[[checks.a.expect]]\ntype = \"in_set\"\ncolumn = \"a\"\nvalues = [1]\npattern = \"x\"\n",
    );
    assert!(msg.contains("unknown option `pattern`"), "{msg}");
    let (line, col, _) = suite_err("[checks.a]\ndata = 3\n");
    assert_eq!((line, col), (2, 8));
}

#[test]
fn standalone_file_is_one_suite_named_after_the_file() {
    let path = testdata().join("suite.toml");
    let suites = parse_suite_file(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(suites[0].name, "suite");
    let r = run_suite(&suites[0], &CheckOptions::default()).unwrap();
    assert_eq!((r.errors, r.warnings), (1, 1));
}

#[test]
fn inferred_suite_parses_and_passes_on_its_own_data() {
    let text = infer_suite("people", "people.csv", &testdata()).unwrap();
    assert!(text.contains("[checks.people]"), "{text}");
    assert!(text.contains("type = \"in_set\""), "{text}");
    assert!(
        text.contains("column = \"churned\"\nvalues = [0, 1]"),
        "{text}"
    );
    assert!(
        !text.contains("column = \"id\"\nvalues"),
        "ids are not a set: {text}"
    );
    assert!(
        text.contains("type = \"between\"\ncolumn = \"age\"\nmin = -3\nmax = 151"),
        "{text}"
    );
    let suites = parse_config(&testdata().join("mlops.toml"), &text).unwrap();
    let r = run_suite(&suites[0], &CheckOptions::default()).unwrap();
    assert!(
        r.passed,
        "{:#?}",
        r.results.iter().filter(|x| !x.passed).collect::<Vec<_>>()
    );
    assert!(
        !text.contains("type = \"not_null\"\ncolumn = \"age\""),
        "age has a null: {text}"
    );
}

proptest! {
    /// Arbitrary text never panics the parser: it parses or names a line and column.
    #[test]
    fn parser_never_panics(text in "\\PC{0,200}") {
        match parse_config(std::path::Path::new("m.toml"), &text) {
            Ok(_) => {}
            Err(Error::Suite { line, column, .. }) => prop_assert!(line >= 1 && column >= 1),
            Err(other) => prop_assert!(false, "unexpected error kind {other}"),
        }
    }

    /// Any between bounds written to TOML come back as the same expectation.
    #[test]
    fn between_bounds_round_trip(min in -1e6f64..1e6, span in 0f64..1e6) {
        let max = min + span;
        let text = format!("[checks.a]\ndata = \"d.csv\"\n[[checks.a.expect]]\ntype = \"between\"\ncolumn = \"x\"\nmin = {min:?}\nmax = {max:?}\n");
        let suites = parse_config(std::path::Path::new("m.toml"), &text).unwrap();
        match &suites[0].expectations[0].kind {
            mlops_dataq::Kind::Between { min: a, max: b, .. } => { prop_assert_eq!(*a, Some(min)); prop_assert_eq!(*b, Some(max)); }
            other => prop_assert!(false, "{other:?}"),
        }
    }
}
