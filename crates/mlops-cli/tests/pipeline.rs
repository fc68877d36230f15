//! End-to-end tests of the pipeline commands: repro, dag, metrics, params, stage add.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions panic on setup failures"
)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

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

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Git repository with mlops initialised and `spec` as mlops.toml.
fn repo(spec: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    git(d.path(), &["init", "-q"]);
    mlops(d.path()).arg("init").assert().success();
    std::fs::write(d.path().join("mlops.toml"), spec).unwrap();
    d
}

const SPEC: &str = r#"# the demo pipeline
[stages.prepare]
cmd = "tr a-z A-Z < raw.txt > prepared.txt"
deps = ["raw.txt"]
outs = ["prepared.txt"]

[stages.train]
cmd = "cat prepared.txt > model.txt; printf '{\"acc\": 0.8}' > metrics.json"
deps = ["prepared.txt"]
params = ["params.yaml:model.lr"]
outs = ["model.txt"]
metrics = ["metrics.json"]
"#;

fn demo() -> tempfile::TempDir {
    let d = repo(SPEC);
    std::fs::write(d.path().join("raw.txt"), "abc\n").unwrap();
    std::fs::write(d.path().join("params.yaml"), "model:\n  lr: 0.1\n").unwrap();
    d
}

#[test]
fn repro_runs_what_is_out_of_date_then_nothing() {
    let d = demo();
    mlops(d.path())
        .arg("repro")
        .assert()
        .success()
        .stderr(predicate::str::contains("running prepare: never run"))
        .stderr(predicate::str::contains("2 ran"));
    assert_eq!(
        std::fs::read_to_string(d.path().join("model.txt")).unwrap(),
        "ABC\n"
    );
    assert!(d.path().join("mlops.lock").exists());
    let out = mlops(d.path()).args(["--json", "repro"]).output().unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["succeeded"], true);
    assert!(
        json["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["action"] == "up_to_date"),
        "{json}"
    );
}

#[test]
fn dry_run_says_why_and_runs_nothing() {
    let d = demo();
    mlops(d.path()).arg("repro").assert().success();
    std::fs::write(d.path().join("params.yaml"), "model:\n  lr: 0.2\n").unwrap();
    mlops(d.path())
        .args(["repro", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "train    would run   param params.yaml:model.lr changed (0.1 -> 0.2)",
        ))
        .stdout(predicate::str::contains("prepare  up to date"));
    let lock = std::fs::read_to_string(d.path().join("mlops.lock")).unwrap();
    assert!(
        lock.contains("\"params.yaml:model.lr\" = \"0.1\""),
        "{lock}"
    );
}

#[test]
fn malformed_spec_is_exit_2_with_line_and_column() {
    let d = repo("[stages.a]\ncmd = \"x\"\ndeps = [\"a\"\n");
    mlops(d.path())
        .arg("repro")
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with(
            "error: mlops.toml:3:12: unclosed array",
        ));
    mlops(d.path()).arg("dag").assert().code(2);
}

#[test]
fn missing_dep_and_unknown_stage_are_exit_2() {
    let d = demo();
    std::fs::remove_file(d.path().join("raw.txt")).unwrap();
    mlops(d.path())
        .arg("repro")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "stage prepare: dependency raw.txt does not exist and no stage produces it",
        ));
    mlops(d.path())
        .args(["repro", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "unknown stage `nope`; stages: prepare, train",
        ));
}

#[test]
fn a_failing_stage_is_exit_1_with_status_and_log_tail() {
    let d =
        repo("[stages.bad]\ncmd = \"echo starting; echo 'ValueError: bad input' >&2; exit 4\"\n");
    mlops(d.path())
        .arg("repro")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "stage bad failed: command failed (exit status 4)",
        ))
        .stderr(predicate::str::contains("  | ValueError: bad input"))
        .stderr(predicate::str::contains(".mlops/logs/bad.log"));
}

#[test]
fn ctrl_c_stops_running_stages_and_keeps_finished_ones() {
    let d = repo(
        "[stages.quick]\ncmd = \"echo q > q.txt\"\nouts = [\"q.txt\"]\n[stages.slow]\ncmd = \"sleep 60\"\n[stages.slow2]\ncmd = \"sleep 60\"\n",
    );
    let mut child = mlops(d.path()).args(["repro", "-j", "3"]).spawn().unwrap();
    // Wait for the quick stage to be recorded, then interrupt.
    let start = Instant::now();
    while !std::fs::read_to_string(d.path().join("mlops.lock"))
        .is_ok_and(|l| l.contains("[stages.quick]"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "quick stage never recorded"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    assert!(start.elapsed() < Duration::from_secs(20));
    let lock = std::fs::read_to_string(d.path().join("mlops.lock")).unwrap();
    assert!(
        lock.contains("[stages.quick]") && !lock.contains("slow"),
        "{lock}"
    );
    // The stopped stages run again next time: they are still out of date.
    mlops(d.path())
        .args(["repro", "--dry-run", "slow"])
        .assert()
        .success()
        .stdout(predicate::str::contains("slow   would run  never run"));
}

#[test]
fn dag_formats() {
    let d = demo();
    mlops(d.path())
        .arg("dag")
        .assert()
        .success()
        .stdout("prepare\n└── train\n");
    mlops(d.path())
        .args(["dag", "--format", "dot"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "\"prepare\" -> \"train\" [label=\"prepared.txt\"];",
        ));
    let out = mlops(d.path())
        .args(["dag", "--format", "json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["edges"][0]["from"], "prepare");
    mlops(d.path())
        .args(["dag", "--format", "svg"])
        .assert()
        .code(2);
}

#[test]
fn metrics_show_and_diff_and_params_diff() {
    let d = demo();
    mlops(d.path()).arg("repro").assert().success();
    git(d.path(), &["add", "-A"]);
    git(d.path(), &["commit", "-qm", "first"]);
    mlops(d.path())
        .args(["metrics", "show"])
        .assert()
        .success()
        .stdout("file          key  value\nmetrics.json  acc  0.8\n");
    std::fs::write(d.path().join("metrics.json"), r#"{"acc": 0.9}"#).unwrap();
    std::fs::write(d.path().join("params.yaml"), "model:\n  lr: 0.5\n").unwrap();
    let out = mlops(d.path())
        .args(["--json", "metrics", "diff"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["changes"][0]["key"], "acc");
    assert_eq!(json["changes"][0]["old"], 0.8);
    assert_eq!(json["changes"][0]["new"], 0.9);
    mlops(d.path())
        .args(["params", "diff", "HEAD"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "params.yaml  model.lr  0.1   0.5        +0.4",
        ));
    mlops(d.path())
        .args(["metrics", "diff", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("git rev-parse nope"));
    std::fs::write(d.path().join("metrics.json"), "{ \"acc\": ").unwrap();
    mlops(d.path())
        .args(["metrics", "show"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("metrics.json:1:"));
}

#[test]
fn stage_add_keeps_comments_and_refuses_duplicates() {
    let d = demo();
    mlops(d.path())
        .args([
            "stage",
            "add",
            "evaluate",
            "--cmd",
            "cat model.txt",
            "-d",
            "model.txt",
            "-m",
            "eval.json",
        ])
        .assert()
        .success();
    let text = std::fs::read_to_string(d.path().join("mlops.toml")).unwrap();
    assert!(text.starts_with("# the demo pipeline\n"), "{text}");
    assert!(text.ends_with("[stages.evaluate]\ncmd = \"cat model.txt\"\ndeps = [\"model.txt\"]\nmetrics = [\"eval.json\"]\n"), "{text}");
    mlops(d.path())
        .args(["stage", "add", "evaluate", "--cmd", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "stage evaluate already exists; pass --force to replace it",
        ));
}

#[test]
fn outside_a_repository_is_exit_2() {
    let d = tempfile::tempdir().unwrap();
    mlops(d.path())
        .arg("repro")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not an mlops repository"));
}
