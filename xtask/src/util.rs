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
    run_loud(Command::new(env!("CARGO")).current_dir(&root).args([
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
    run_loud(Command::new(env!("CARGO")).current_dir(&root).args([
        "build",
        "--quiet",
        "-p",
        "mlops-cli",
        "--bin",
        "mlops",
    ]))?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("debug").join("mlops"))
}
