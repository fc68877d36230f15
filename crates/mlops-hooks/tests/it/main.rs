//! Integration tests of the public API, on real Git repositories made in temporary folders.

mod corpus;
mod install;
mod pointers;
mod selection;

use std::path::Path;
use std::process::Command;

use mlops_hooks::{CheckId, Report, Runner, Selection};

/// Runs git in `dir` with a fixed identity, failing the test if git fails.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(["-c", "init.defaultBranch=main", "-c", "core.autocrlf=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A new Git repository in a temporary folder.
pub(crate) fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary folder");
    git(dir.path(), &["init", "-q"]);
    dir
}

/// Writes `content` at `rel` under `dir`, creating folders.
pub(crate) fn write(dir: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("a parent folder")).expect("folder created");
    std::fs::write(path, content).expect("file written");
}

/// Runs the checks on `selection` in `dir` with the configuration from its `mlops.toml`.
pub(crate) fn run(dir: &Path, selection: Selection) -> Report {
    Runner::new(dir)
        .selection(selection)
        .run()
        .expect("the run works")
}

/// The (check, path, line) of every finding.
pub(crate) fn summary(report: &Report) -> Vec<(CheckId, String, Option<usize>)> {
    report
        .findings
        .iter()
        .map(|f| (f.check, f.path.clone(), f.line))
        .collect()
}
