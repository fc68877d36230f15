//! The `mlops` binary: parses arguments, loads configuration, calls the library crates and renders
//! their results. No domain logic lives here; exit codes are decided in one place, [`main`].
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the binary is where output happens"
)]

mod commands;
mod exit;
mod interrupt;
mod output;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit::{ExitKind, Outcome};

/// Reproducible, reviewable ML repositories: data and models by content hash beside Git,
/// pipelines, data-quality and model-quality gates, guardrails, Kubernetes Jobs.
#[derive(Debug, Parser)]
#[command(name = "mlops", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every command accepts.
#[derive(Debug, clap::Args)]
pub(crate) struct GlobalArgs {
    /// Run as if mlops was started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// More logging (repeat for more); RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub(crate) verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Stable machine-readable output on stdout, and nothing else there.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

impl GlobalArgs {
    /// The folder the command works in: `-C DIR` or the current directory.
    pub(crate) fn work_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.dir {
            Some(dir) => {
                if !dir.is_dir() {
                    return Err(exit::usage(anyhow::anyhow!(
                        "-C {}: not a directory",
                        dir.display()
                    )));
                }
                // Relative paths on the command line are taken against this folder, so it must
                // be absolute itself: `-C ws add data` means `ws/data`, not `ws/ws/data`.
                Ok(std::path::absolute(dir)?)
            }
            None => Ok(std::env::current_dir()?),
        }
    }

    /// Whether progress bars may be drawn: not in JSON mode, not when quiet, only on a terminal.
    pub(crate) fn progress_allowed(&self) -> bool {
        use std::io::IsTerminal;
        !self.json && !self.quiet && std::io::stderr().is_terminal()
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Data(commands::data::Command),
    /// Run data-quality suites ([checks.NAME] in mlops.toml, or suite files).
    Check(commands::check::CheckArgs),
    /// Compute model-quality metrics and judge the gates ([gates.NAME] in mlops.toml).
    Evaluate(commands::evaluate::EvaluateArgs),
    #[command(flatten)]
    Pipeline(commands::pipeline::Command),
    /// Guardrails: large files, secrets, conflicts, syntax, whitespace, notebooks, stale pointers.
    #[command(subcommand)]
    Hooks(commands::hooks::Command),
    /// Run stages as Kubernetes Jobs: print a stage's Job manifest, or run it on a cluster.
    #[command(subcommand)]
    K8s(commands::k8s::Command),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version to stdout with code 0, usage errors to stderr with code 2.
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    init_logging(&cli.global);
    let result = match cli.command {
        Command::Data(cmd) => commands::data::run(cmd, &cli.global),
        Command::Check(args) => commands::check::run(args, &cli.global),
        Command::Evaluate(args) => commands::evaluate::run(args, &cli.global),
        Command::Pipeline(cmd) => commands::pipeline::run(cmd, &cli.global),
        Command::Hooks(cmd) => commands::hooks::run(cmd, &cli.global),
        Command::K8s(cmd) => commands::k8s::run(cmd, &cli.global),
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failure) => ExitCode::from(1),
        Err(err) => {
            let kind = exit::kind_of(&err);
            eprintln!("error: {}", exit::render(&err));
            ExitCode::from(kind as u8)
        }
    }
}

fn init_logging(global: &GlobalArgs) {
    use tracing_subscriber::EnvFilter;
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    let _ = ExitKind::Usage;
}
