//! `cargo xtask bench [AREA]`: generated workloads, mlops and the peer tool run side by side,
//! alternating, at least three runs each; prints medians, the peer/mlops ratio and peak memory.
//!
//! Peers live in a virtual environment outside the repository (`../shared/bench/setup-peers.sh`),
//! found at `$MLOPS_PEERS` or `~/.cache/mlops-peers`. A missing peer is reported and skipped.

pub(crate) mod cas;
mod dataq;
pub(crate) mod floor;
pub(crate) mod harness;
mod hooks;
mod metrics;
mod pipeline;

use clap::Args;

pub(crate) use harness::{BenchContext, Report};

/// Arguments of `cargo xtask bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Which area to run (all when omitted).
    pub(crate) area: Option<String>,
    /// Runs per side (median reported); at least 3.
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: usize,
    /// Scale workloads down by this factor for a quick look (numbers then not comparable).
    #[arg(long, default_value_t = 1)]
    pub(crate) shrink: usize,
}

type AreaFn = fn(&BenchContext) -> anyhow::Result<Report>;

/// Every benchmark area, in the order `cargo xtask bench` runs them.
const AREAS: &[(&str, AreaFn)] = &[
    ("cas", cas::run),
    ("dataq", dataq::run),
    ("hooks", hooks::run),
    ("metrics", metrics::run),
    ("pipeline", pipeline::run),
];

pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let ctx = BenchContext::new(args)?;
    let selected: Vec<_> = match &args.area {
        Some(name) => {
            let Some(area) = AREAS.iter().find(|(n, _)| n == name) else {
                let names: Vec<_> = AREAS.iter().map(|(n, _)| *n).collect();
                anyhow::bail!("unknown bench area `{name}`; areas: {}", names.join(", "));
            };
            vec![area]
        }
        None => AREAS.iter().collect(),
    };
    for (name, area) in selected {
        eprintln!("== bench {name} ==");
        let report = area(&ctx)?;
        println!("{}", report.render(name));
    }
    Ok(())
}
