//! `cargo xtask ci`: the local gate. Every step must pass; the first failure stops the run.

use crate::util::run_loud;

/// The README's test command; `.ci/run` calls the same.
pub(crate) const TEST_ARGS: &[&str] = &["test", "--workspace", "--all-targets", "--no-fail-fast"];

pub(crate) fn run() -> anyhow::Result<()> {
    let cmd = |args: &[&str]| {
        let mut c = crate::util::cargo();
        c.args(args);
        c
    };
    run_loud(&mut cmd(&["fmt", "--all", "--", "--check"]))?;
    run_loud(&mut cmd(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run_loud(&mut cmd(TEST_ARGS))?;
    run_loud(&mut cmd(&["test", "--workspace", "--doc"]))?;
    run_loud(cmd(&["doc", "--workspace", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings"))?;
    let has_deny = cmd(&["deny", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_deny {
        run_loud(&mut cmd(&[
            "deny",
            "--offline",
            "check",
            "licenses",
            "bans",
            "sources",
        ]))?;
    } else {
        eprintln!(
            "cargo-deny not installed: skipping `cargo deny check` (cargo install cargo-deny)"
        );
    }
    eprintln!("ci: all steps passed");
    Ok(())
}
