//! End-to-end tests of `mlops check`: suites from mlops.toml and suite files on the committed
//! fixtures in testdata/dataq, output formats and exit codes.
#![allow(clippy::unwrap_used, reason = "test helpers unwrap")]

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;
use predicates::prelude::*;

fn mlops(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("mlops").unwrap();
    c.arg("-C")
        .arg(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG");
    c
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/dataq")
}

/// A temporary folder with the fixtures copied in and `config` as mlops.toml.
fn project(config: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixtures()).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), d.path().join(e.file_name())).unwrap();
        }
    }
    std::fs::write(d.path().join("mlops.toml"), config).unwrap();
    d
}

const CONFIG: &str = r#"
[stages.prepare]
cmd = "true"

[checks.people]
data = "people.csv"

[[checks.people.expect]]
type = "between"
column = "age"
min = 0
max = 120

[checks.plans]
data = "people.csv"

[[checks.plans.expect]]
type = "in_set"
column = "plan"
values = ["basic", "pro", "enterprise"]
severity = "warn"

[[checks.plans.expect]]
type = "freshness"
column = "signup"
max_age = "7d"
"#;

#[test]
fn failing_error_expectation_exits_1_with_rows_in_the_table() {
    let d = project(CONFIG);
    mlops(d.path())
        .args(["check", "people"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL    between(age)"))
        .stdout(predicate::str::contains("at rows [1, 4]"));
}

#[test]
fn warnings_fail_only_with_fail_on_warn() {
    let d = project(CONFIG);
    let now = ["--now", "2026-11-27T00:00:00Z"];
    mlops(d.path())
        .args(["check", "plans"])
        .args(now)
        .assert()
        .success()
        .stdout(predicate::str::contains("warn"));
    mlops(d.path())
        .args(["check", "plans", "--fail-on", "warn"])
        .args(now)
        .assert()
        .code(1);
}

#[test]
fn freshness_uses_now_from_the_command_line() {
    let d = project(CONFIG);
    mlops(d.path())
        .args(["check", "plans", "--now", "2027-01-01T00:00:00Z"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL    freshness(signup)"));
    mlops(d.path())
        .args(["check", "plans", "--now", "yesterday"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--now yesterday"));
}

#[test]
fn json_output_is_stable_and_alone_on_stdout() {
    let d = project(CONFIG);
    let out = mlops(d.path())
        .args(["--json", "check", "--now", "2026-11-27T00:00:00Z"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], false);
    let suites = v["suites"].as_array().unwrap();
    assert_eq!(
        suites.len(),
        2,
        "every suite of mlops.toml when none is named"
    );
    let r = &suites[0]["results"][0];
    for key in [
        "expectation",
        "name",
        "columns",
        "severity",
        "passed",
        "observed",
        "element_count",
        "unexpected_count",
        "unexpected_fraction",
        "mostly",
        "failing_rows",
        "details",
        "message",
    ] {
        assert!(r.get(key).is_some(), "missing {key}");
    }
    assert_eq!(
        r["failing_rows"][0],
        serde_json::json!({"row": 1, "value": 151})
    );
}

#[test]
fn unknown_suite_is_a_usage_error_listing_the_suites() {
    let d = project(CONFIG);
    mlops(d.path())
        .args(["check", "peple"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "unknown suite `peple`; suites in mlops.toml: people, plans",
        ));
}

#[test]
fn malformed_config_names_file_line_and_column() {
    let d = project(
        "[checks.a]\ndata = \"people.csv\"\n[[checks.a.expect]]\ntype = \"between\"\ncolumn = \"age\"\nmax = \"old\"\n",
    );
    mlops(d.path()).arg("check").assert().code(2).stderr(
        predicate::str::contains("mlops.toml:3:1")
            .and(predicate::str::contains("`max` must be a number")),
    );
}

#[test]
fn missing_column_is_exit_2_with_closest_names() {
    let d = project(
        "[checks.a]\ndata = \"people.csv\"\n[[checks.a.expect]]\ntype = \"not_null\"\ncolumn = \"emial\"\n",
    );
    mlops(d.path())
        .arg("check")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no column `emial`; closest: `email`",
        ));
}

#[test]
fn bad_data_files_exit_3_naming_file_and_line() {
    let d = project(
        "[checks.a]\ndata = \"ragged.csv\"\n[[checks.a.expect]]\ntype = \"not_null\"\ncolumn = \"age\"\n\n[checks.b]\ndata = \"broken.parquet\"\n[[checks.b.expect]]\ntype = \"row_count\"\nmin = 1\n",
    );
    mlops(d.path())
        .args(["check", "a"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("ragged.csv").and(predicate::str::contains("line 4")));
    mlops(d.path())
        .args(["check", "b"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "broken.parquet: unreadable parquet",
        ));
}

#[test]
fn missing_data_and_missing_suite_file_are_usage_errors() {
    let d = project(
        "[checks.a]\ndata = \"gone.parquet\"\n[[checks.a.expect]]\ntype = \"row_count\"\nmin = 1\n",
    );
    mlops(d.path())
        .arg("check")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("gone.parquet: no such file"));
    mlops(d.path())
        .args(["check", "other.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("other.toml: no such suite file"));
}

#[test]
fn standalone_suite_file_runs_without_mlops_toml() {
    let d = project("");
    std::fs::remove_file(d.path().join("mlops.toml")).unwrap();
    mlops(d.path())
        .args(["check", "suite.toml"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "suite suite (people.csv, 6 rows): FAILED",
        ));
    mlops(d.path())
        .arg("check")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("mlops.toml: not found"));
}

#[test]
fn infer_writes_a_suite_that_passes_on_its_data() {
    let d = project("");
    mlops(d.path())
        .args(["check", "--infer", "people.csv", "-o", "inferred.toml"])
        .assert()
        .success();
    let text = std::fs::read_to_string(d.path().join("inferred.toml")).unwrap();
    assert!(
        text.contains("[checks.people]") && text.contains("type = \"schema\""),
        "{text}"
    );
    mlops(d.path())
        .args(["check", "inferred.toml"])
        .assert()
        .success()
        .stdout(predicate::str::contains("passed"));
    mlops(d.path())
        .args(["check", "--infer", "missing.csv"])
        .assert()
        .code(2);
}
