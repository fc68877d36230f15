//! End-to-end tests of `mlops evaluate`: gates from mlops.toml on real predictions files, output
//! formats and exit codes.
#![allow(clippy::unwrap_used, reason = "test helpers unwrap")]

use std::path::Path;
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

/// 100 rows: candidate accuracy 0.9 (errors in region `us`), baseline accuracy 0.8.
fn repo(requirements: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let mut cand = String::from("id,label,pred,proba,region\n");
    let mut base = String::from("id,label,pred,proba,region\n");
    for i in 0..100 {
        let t = i % 2;
        let region = if i % 4 < 2 { "eu" } else { "us" };
        let cp = if region == "us" && i % 10 == 2 {
            1 - t
        } else {
            t
        };
        let cp = if region == "us" && i % 10 == 7 {
            1 - t
        } else {
            cp
        };
        let bp = if i % 5 == 0 { 1 - t } else { t };
        cand.push_str(&format!(
            "{i},{t},{cp},{},{region}\n",
            if cp == 1 { 0.9 } else { 0.1 }
        ));
        base.push_str(&format!(
            "{i},{t},{bp},{},{region}\n",
            if bp == 1 { 0.7 } else { 0.3 }
        ));
    }
    std::fs::write(d.path().join("cand.csv"), cand).unwrap();
    std::fs::write(d.path().join("base.csv"), base).unwrap();
    std::fs::create_dir(d.path().join("metrics")).unwrap();
    std::fs::write(d.path().join("metrics/latency.json"), r#"{"p95_ms": 40}"#).unwrap();
    let toml = format!(
        "[stages.train]\ncmd = \"true\"\n\n[gates.release]\npredictions = \"cand.csv\"\nbaseline = \"base.csv\"\nid = \"id\"\ny_true = \"label\"\ny_pred = \"pred\"\nscore = \"proba\"\nsegments = [\"region\"]\nrequirements = [\n{requirements}\n]\n"
    );
    std::fs::write(d.path().join("mlops.toml"), toml).unwrap();
    d
}

const PASSING: &str = r#"  { metric = "accuracy", min = 0.85 },
  { metric = "accuracy", max_regression = 0.0 },
  "metrics/latency.json:p95_ms <= 50","#;

#[test]
fn passing_gate_prints_tables_and_exits_0() {
    let d = repo(PASSING);
    mlops(d.path())
        .arg("evaluate")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("gate release: passed"))
        .stdout(predicate::str::contains("accuracy"))
        .stdout(predicate::str::contains("region"))
        .stdout(predicate::str::contains(
            "metrics/latency.json:p95_ms <= 50",
        ));
}

#[test]
fn failing_requirement_exits_1_and_json_has_the_documented_shape() {
    let d = repo(
        r#"  { metric = "accuracy", min = 0.95 }, { metric = "accuracy", segment = "region", max_segment_gap = 0.1 },"#,
    );
    let out = mlops(d.path())
        .args([
            "--json",
            "evaluate",
            "release",
            "--write",
            "out/metrics.json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let gate = &json["gates"][0];
    assert_eq!(gate["name"], "release");
    assert_eq!(gate["passed"], false);
    assert_eq!(gate["metrics"]["overall"]["accuracy"], 0.9);
    assert_eq!(gate["metrics"]["segments"]["region"]["us"]["accuracy"], 0.8);
    assert!(gate["metrics"]["per_class"]["1"]["f1"].is_number());
    assert_eq!(gate["requirements"][0]["observed"], 0.9);
    assert_eq!(gate["requirements"][0]["passed"], false);
    assert!((gate["requirements"][1]["observed"].as_f64().unwrap() - 0.2).abs() < 1e-12);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("out/metrics.json")).unwrap())
            .unwrap();
    assert_eq!(written["release"]["overall"]["accuracy"], 0.9);
}

#[test]
fn unknown_gate_and_bad_config_exit_2() {
    let d = repo(PASSING);
    mlops(d.path())
        .args(["evaluate", "nightly"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("unknown gate `nightly`")
                .and(predicate::str::contains("release")),
        );
    let d = repo(r#"  { metric = "acuracy", min = 0.5 },"#);
    mlops(d.path()).arg("evaluate").assert().code(2).stderr(
        predicate::str::contains("mlops.toml:13:3")
            .and(predicate::str::contains("unknown metric `acuracy`")),
    );
    let empty = tempfile::tempdir().unwrap();
    mlops(empty.path())
        .arg("evaluate")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("mlops.toml"));
}

#[test]
fn missing_column_exits_2_and_missing_file_exits_3() {
    let d = repo(PASSING);
    std::fs::write(
        d.path().join("cand.csv"),
        "id,label,proba,region\n1,0,0.1,eu\n",
    )
    .unwrap();
    mlops(d.path())
        .arg("evaluate")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no column `pred`"));
    std::fs::remove_file(d.path().join("cand.csv")).unwrap();
    mlops(d.path())
        .arg("evaluate")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("cand.csv"));
}

#[test]
fn baseline_that_does_not_join_exits_2_with_counts() {
    let d = repo(PASSING);
    let text = std::fs::read_to_string(d.path().join("base.csv")).unwrap();
    let shifted: String = text.lines().take(51).map(|l| format!("{l}\n")).collect();
    std::fs::write(d.path().join("base.csv"), shifted).unwrap();
    mlops(d.path())
        .arg("evaluate")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "50 of 100 candidate rows have no baseline row",
        ));
}
