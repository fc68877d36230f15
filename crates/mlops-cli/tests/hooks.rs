//! End-to-end tests of `mlops hooks run|install|list` and of the `.pre-commit-hooks.yaml`
//! manifest at the repository root: exit codes, error text, JSON shape, a real `git commit`
//! stopped by the installed hook.
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

fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn repo() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    assert!(git(d.path(), &["init", "-q"]).status.success());
    d
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn run_exits_0_when_clean_and_1_listing_findings_grouped_by_check() {
    let d = repo();
    write(d.path(), "ok.py", "x = 1\n");
    git(d.path(), &["add", "."]);
    mlops(d.path())
        .args(["hooks", "run"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("hooks: passed (1 file checked)"));

    write(d.path(), "params.yaml", "lr: [0.1\n");
    write(
        d.path(),
        "s.py",
        "TOKEN = 'ghp_R4nd0mT0k3nV4lu3xQ9zW2yL7kP5mN8bC1dF'  \n",
    );
    git(d.path(), &["add", "."]);
    mlops(d.path())
        .args(["hooks", "run", "--staged"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "secrets (1)\n  s.py:1:10: github-token: GitHub token ghp_…(40 chars)",
        ))
        .stdout(predicate::str::contains(
            "syntax (1)\n  params.yaml:2:1: YAML does not parse",
        ))
        .stdout(predicate::str::contains("trailing-whitespace (1)"))
        .stdout(predicate::str::contains(
            "hooks: failed: 3 findings in 2 files",
        ))
        .stdout(predicate::str::contains("R4nd0mT0k3n").not());
}

#[test]
fn json_output_is_stable_and_alone_on_stdout() {
    let d = repo();
    write(d.path(), "a.json", "{\"a\": 1, \"a\": 2}\n");
    git(d.path(), &["add", "."]);
    let out = mlops(d.path())
        .args(["--json", "hooks", "run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], false);
    assert_eq!(v["files_checked"], 1);
    assert_eq!(v["source"], "index");
    assert_eq!(v["findings"][0]["check"], "syntax");
    assert_eq!(v["findings"][0]["path"], "a.json");
    assert_eq!(v["findings"][0]["line"], 1);
    assert_eq!(v["findings"][0]["fixed"], false);
    assert!(
        v["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("duplicate key `a`")
    );
}

#[test]
fn fix_repairs_and_the_next_run_passes() {
    let d = repo();
    write(d.path(), "notes.md", "trailing   \nno end");
    git(d.path(), &["add", "."]);
    mlops(d.path())
        .args(["hooks", "run", "--all-files", "--fix"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("[fixed]"))
        .stdout(predicate::str::contains("passed after fixes"));
    assert_eq!(
        std::fs::read_to_string(d.path().join("notes.md")).unwrap(),
        "trailing\nno end\n"
    );
    mlops(d.path())
        .args(["hooks", "run", "--all-files"])
        .assert()
        .code(0);
}

#[test]
fn bad_input_exits_2_with_the_reason() {
    let d = repo();
    write(d.path(), "a.txt", "x\n");
    mlops(d.path())
        .args(["hooks", "run", "--only", "secret"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown check `secret`"));
    mlops(d.path())
        .args(["hooks", "run", "--all-files", "--staged"])
        .assert()
        .code(2);
    mlops(d.path())
        .args(["hooks", "run", "--from-ref", "main"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--to-ref"));
    mlops(d.path())
        .args(["hooks", "run", "--from-ref", "nope", "--to-ref", "HEAD"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown revision `nope`"));
    write(d.path(), "mlops.toml", "[hooks]\ndisable = [\"secret\"]\n");
    mlops(d.path())
        .args(["hooks", "run", "a.txt"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("mlops.toml:2:"))
        .stderr(predicate::str::contains("unknown check `secret`"));
    mlops(d.path()).args(["hooks", "list"]).assert().code(2);
}

#[test]
fn outside_git_staged_mode_fails_clearly_and_file_lists_work() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "c.toml", "a = 1\n");
    mlops(d.path())
        .args(["hooks", "run"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a git repository"));
    mlops(d.path())
        .args(["hooks", "run", "c.toml"])
        .assert()
        .code(0);
    mlops(d.path())
        .args(["hooks", "run", "missing.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("missing.toml: no such file"));
}

#[test]
fn list_shows_checks_and_rules() {
    let d = repo();
    write(
        d.path(),
        "mlops.toml",
        "[hooks]\ndisable = [\"syntax\"]\n[hooks.secrets]\ndisable-rules = [\"jwt\"]\n",
    );
    let out = mlops(d.path())
        .args(["--json", "hooks", "list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 11);
    let syntax = checks.iter().find(|c| c["id"] == "syntax").unwrap();
    assert_eq!(syntax["enabled"], false);
    let jwt = v["secret_rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "jwt")
        .unwrap();
    assert_eq!(jwt["enabled"], false);
    mlops(d.path())
        .args(["hooks", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("no-commit-to-branch  off"));
}

#[test]
fn installed_hook_stops_a_bad_commit_and_lets_a_good_one_through() {
    let d = repo();
    mlops(d.path())
        .args(["hooks", "install"])
        .assert()
        .success()
        .stdout(predicate::str::contains("installed"));
    write(d.path(), "good.py", "x = 1\n");
    git(d.path(), &["add", "."]);
    let ok = git(d.path(), &["commit", "-qm", "good"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    write(d.path(), "conf.yaml", "password: q8Zr2LmX9vTb4NcW\n");
    git(d.path(), &["add", "."]);
    let bad = git(d.path(), &["commit", "-qm", "bad"]);
    assert!(!bad.status.success());
    // Git sends a hook's output to stderr.
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("conf.yaml:1:11: generic-secret"), "{said}");

    // Installing over a foreign hook keeps it, and it runs first.
    let hooks = d.path().join(".git/hooks");
    std::fs::write(
        hooks.join("pre-commit"),
        "#!/bin/sh\necho legacy ran\nexit 0\n",
    )
    .unwrap();
    mlops(d.path())
        .args(["hooks", "install"])
        .assert()
        .success()
        .stdout(predicate::str::contains("kept as"));
    git(d.path(), &["rm", "-q", "--cached", "conf.yaml"]);
    write(d.path(), "more.py", "y = 2\n");
    git(d.path(), &["add", "more.py"]);
    let out = git(d.path(), &["commit", "-qm", "more"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("legacy ran"));
}

#[derive(serde::Deserialize)]
struct ManifestHook {
    id: String,
    entry: String,
    language: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default = "yes")]
    pass_filenames: bool,
}

fn yes() -> bool {
    true
}

fn manifest() -> Vec<ManifestHook> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.pre-commit-hooks.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_pre_commit_manifest_entry_runs_as_pre_commit_would_call_it() {
    let hooks = manifest();
    assert!(hooks.iter().any(|h| h.language == "rust"));
    assert!(hooks.iter().any(|h| h.language == "system"));
    let mut ids: Vec<&str> = hooks.iter().map(|h| h.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), hooks.len(), "hook ids are unique");
    for hook in &hooks {
        assert!(
            matches!(hook.language.as_str(), "rust" | "system"),
            "{}",
            hook.id
        );
        let mut words = hook.entry.split_whitespace();
        assert_eq!(
            words.next(),
            Some("mlops"),
            "{}: the entry runs the mlops binary",
            hook.id
        );
        let rest: Vec<&str> = words.collect();
        // pre-commit stashes unstaged changes and passes the staged names: the files given here.
        let d = repo();
        write(d.path(), "clean.py", "x = 1\n");
        write(d.path(), "leak.py", "k = 'AKIAZ7QWERTY2345UIOP'\n");
        git(d.path(), &["add", "."]);
        let run = |files: &[&str]| {
            let mut c = Command::cargo_bin("mlops").unwrap();
            c.current_dir(d.path()).args(&rest).args(&hook.args);
            if hook.pass_filenames {
                c.args(files);
            }
            c.output().unwrap()
        };
        let clean = run(&["clean.py"]);
        assert_eq!(
            clean.status.code(),
            Some(0),
            "{}: {}",
            hook.id,
            String::from_utf8_lossy(&clean.stdout)
        );
        let leak = run(&["clean.py", "leak.py"]);
        assert_eq!(leak.status.code(), Some(1), "{}", hook.id);
        assert!(
            String::from_utf8_lossy(&leak.stdout).contains("leak.py:1:6: aws-access-key-id"),
            "{}",
            hook.id
        );
    }
}
