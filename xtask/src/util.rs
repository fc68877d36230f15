//! Small helpers shared by the tasks: locating the workspace, running commands loudly.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The workspace root (the folder holding the root `Cargo.toml`).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// A `cargo` command in the workspace root, with the environment `cargo run` gave this
/// process removed: variables such as `CARGO_MANIFEST_DIR=.../xtask` leak into the nested
/// build, where build scripts that watch them (`ring`'s watches `CARGO_MANIFEST_DIR`) count as
/// changed, so the build and everything above it was redone whenever a shell `cargo` built in
/// between: 5-7 minutes for the release `mlops`.
pub(crate) fn cargo() -> Command {
    let mut c = Command::new(env!("CARGO"));
    c.current_dir(workspace_root());
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(set_by_cargo_run) {
            c.env_remove(key);
        }
    }
    c
}

/// Whether `cargo run` sets `name` for the program it runs (the package's own variables).
fn set_by_cargo_run(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
        )
}

/// Runs `cmd`, echoing it first; fails with the command line when it exits non-zero.
pub(crate) fn run_loud(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {}", describe(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", describe(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", describe(cmd));
    }
    Ok(())
}

/// The command line of `cmd`, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Builds the release `mlops` binary and returns its path.
pub(crate) fn build_mlops_release() -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    run_loud(cargo().args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "mlops-cli",
        "--bin",
        "mlops",
    ]))?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("release").join("mlops"))
}

/// Builds the debug `mlops` binary and returns its path.
pub(crate) fn build_mlops_debug() -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    run_loud(cargo().args(["build", "--quiet", "-p", "mlops-cli", "--bin", "mlops"]))?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("debug").join("mlops"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_cargo_runs_without_the_variables_cargo_run_set_for_xtask() {
        // `cargo test` sets these for the test binary just as `cargo run` does for xtask.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let c = cargo();
        let removed: Vec<_> = c
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert!(
            removed.iter().any(|k| k == "CARGO_MANIFEST_DIR"),
            "{removed:?}"
        );
        assert!(removed.iter().any(|k| k == "CARGO_PKG_NAME"), "{removed:?}");
        assert!(
            !removed
                .iter()
                .any(|k| k == "PATH" || k == "RUSTUP_TOOLCHAIN")
        );
        assert_eq!(c.get_current_dir(), Some(workspace_root().as_path()));
    }
}
