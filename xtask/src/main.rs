//! Repository maintenance, run as `cargo xtask <task>`:
//!
//! - `ci`: the whole local gate: fmt, clippy `-D warnings`, tests, docs, cargo-deny when installed.
//! - `demo`: the end-to-end workflow on built-in defaults, in a temporary folder.
//! - `bench [AREA]`: side-by-side comparisons with the peer tools (see `../shared/BENCH.md`).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "xtask reports to the terminal"
)]

mod bench;
mod ci;
mod demo;
mod e2e_k8s;
mod util;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "mlops repository maintenance")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// fmt, clippy -D warnings, tests, docs, cargo-deny (when installed).
    Ci,
    /// The end-to-end workflow in a temporary folder, on a local-folder remote.
    Demo {
        /// Keep the temporary folder and print its path.
        #[arg(long)]
        keep: bool,
    },
    /// Benchmarks against the peer tools; AREA is one of cas, pipeline, dataq, metrics, hooks.
    Bench(bench::BenchArgs),
    /// The Kubernetes runner's scenarios against the real cluster KUBECONFIG points at.
    E2eK8s(e2e_k8s::E2eArgs),
    /// The kernel work alone of adding a folder to a hard-link cache; timed by `bench cas`.
    #[command(hide = true)]
    AddFloor(bench::floor::FloorArgs),
    /// The kernel work alone of pulling from a folder remote; timed by `bench cas`.
    #[command(hide = true)]
    PullFloor(bench::floor::PullFloorArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Ci => ci::run(),
        Task::Demo { keep } => demo::run(keep),
        Task::Bench(args) => bench::run(&args),
        Task::E2eK8s(args) => e2e_k8s::run(&args),
        Task::AddFloor(args) => bench::floor::run(&args),
        Task::PullFloor(args) => bench::floor::run_pull(&args),
    }
}
